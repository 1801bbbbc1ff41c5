#!/bin/sh
# Stand-in for the origin fetch: `retrieve.sh <source> <target>` copies the image and prints
# its size as JSON.
set -eu
sleep "${ASSET_STEP_DELAY:-0}"
mkdir -p "$(dirname "$2")"
cp "$1" "$2"
printf '{"path": "%s", "bytes": %d}\n' "$2" "$(wc -c < "$2")"
