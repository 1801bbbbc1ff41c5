#!/bin/sh
# Stand-in for the JPEG 2000 validator: `check_jp2.sh <image>` passes a file that starts with
# the JP2 signature box, and fails (exit 1, the reason on stderr) otherwise.
set -eu
sleep "${ASSET_STEP_DELAY:-0}"
signature=$(head -c 12 "$1" | od -An -tx1 | tr -d ' \n')
if [ "$signature" != "0000000c6a5020200d0a870a" ]; then
  echo "not a JPEG 2000 file: $1" >&2
  exit 1
fi
echo '{"compliant": true}'
