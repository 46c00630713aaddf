#!/bin/sh
# Makes the H.265 test clips under tests/fixtures/h265/ (see
# tests/fixtures/README.md), all 640x360 testsrc2 at 25 fps, 4 slices per
# picture, Annex B:
#   p.h265  50 pictures, no B-frames, IDR then CRA at 25, VPS/SPS/PPS before
#           each IRAP (repeat-headers, as cameras send them);
#   b.h265  40 pictures, up to 3 B-frames, open GOP: the CRA at 20 is
#           followed by RASL pictures;
#   p.h264  the H.264 twin of p.h265 (same size, frame count, slices, GOP),
#           for benches/depacketize.rs.
# Run from anywhere; needs ffmpeg with libx265 and libx264. The outputs are
# committed; regenerating them changes bytes (encoder versions), not shapes.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tests/fixtures/h265"
ffmpeg=${FFMPEG:-ffmpeg}
command -v "$ffmpeg" >/dev/null 2>&1 || { echo "make-h265-fixtures: ffmpeg not found" >&2; exit 1; }
mkdir -p "$dir"
src="testsrc2=size=640x360:rate=25"

"$ffmpeg" -hide_banner -loglevel error -y -f lavfi -i "$src" -t 2 -an \
    -c:v libx265 -x265-params "crf=34:slices=4:keyint=25:min-keyint=25:bframes=0:repeat-headers=1:log-level=error" \
    -f hevc "$dir/p.h265"
"$ffmpeg" -hide_banner -loglevel error -y -f lavfi -i "$src" -t 1.6 -an \
    -c:v libx265 -x265-params "crf=34:slices=4:keyint=20:min-keyint=20:bframes=3:open-gop=1:log-level=error" \
    -f hevc "$dir/b.h265"
"$ffmpeg" -hide_banner -loglevel error -y -f lavfi -i "$src" -t 2 -an \
    -c:v libx264 -x264-params "crf=30:slices=4:keyint=25:min-keyint=25:bframes=0:scenecut=0:repeat-headers=1" \
    -f h264 "$dir/p.h264"

for f in p.h265 b.h265 p.h264; do
    echo "$dir/$f: $(wc -c <"$dir/$f") bytes"
done
