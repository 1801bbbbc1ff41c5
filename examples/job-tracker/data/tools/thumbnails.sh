#!/bin/sh
# Stand-in for the thumbnail maker: `thumbnails.sh <image> <dir>` writes one file per size and
# prints their names as JSON.
set -eu
sleep "${ASSET_STEP_DELAY:-0}"
mkdir -p "$2"
for size in 150 600; do
  head -c 12 "$1" > "$2/thumb_$size.jp2"
done
echo '{"thumbnails": ["thumb_150.jp2", "thumb_600.jp2"]}'
