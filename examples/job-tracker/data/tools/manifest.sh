#!/bin/sh
# Stand-in for the manifest service: `manifest.sh <asset id> <source>` prints a mock IIIF-like
# manifest as JSON.
set -eu
sleep "${ASSET_STEP_DELAY:-0}"
printf '{"asset_id": "%s", "source": "%s", "label": "Asset %s", "format": "image/jp2"}\n' "$1" "$2" "$1"
