#!/bin/sh
# Makes assets/sim-clip.h265, the clip the built-in simulated camera (src/sim)
# sends for `codec=h265`: the H.264 clip's picture (scripts/make-sim-clip.sh)
# in H.265 Main, 640x360, 25 fps, 4 s (100 frames), one IDR every 50 frames
# (closed GOPs, as cameras send), no B-frames, ~1.8 Mbit/s CBR-ish, 4 slices
# per picture, Annex B with VPS/SPS/PPS before every IDR. Run from anywhere;
# needs ffmpeg with libx265.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/assets/sim-clip.h265"
ffmpeg=${FFMPEG:-ffmpeg}

command -v "$ffmpeg" >/dev/null 2>&1 || { echo "make-sim-clip-h265: ffmpeg not found" >&2; exit 1; }
"$ffmpeg" -hide_banner -encoders 2>/dev/null | grep -q ' libx265 ' ||
    { echo "make-sim-clip-h265: ffmpeg has no libx265" >&2; exit 1; }

# A frame counter makes loss and loop boundaries visible in a viewer; it needs
# the drawtext filter (libfreetype) and a font, so it is optional.
src="testsrc2=size=640x360:rate=25"
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf
if "$ffmpeg" -hide_banner -filters 2>/dev/null | grep -q ' drawtext ' && [ -f "$font" ]; then
    src="$src,drawtext=fontfile=$font:text='camgate sim H.265 %{frame_num}':x=16:y=16:fontsize=28:fontcolor=white:box=1:boxcolor=black@0.6"
fi

# keyint/min-keyint 50 and no scene cuts: an IRAP exactly every 50 frames;
# no-open-gop: IDR, not CRA; info=0: no x265 version SEI in the stream.
"$ffmpeg" -hide_banner -loglevel error -y \
    -f lavfi -i "$src" -t 4 \
    -an -c:v libx265 -profile:v main -pix_fmt yuv420p \
    -b:v 1800k -maxrate 1800k -bufsize 1800k \
    -x265-params "log-level=error:keyint=50:min-keyint=50:scenecut=0:open-gop=0:bframes=0:slices=4:repeat-headers=1:aud=0:info=0" \
    -f hevc "$out"

size=$(wc -c <"$out")
echo "make-sim-clip-h265: wrote $out ($size bytes)"
if [ "$size" -ge 1048576 ]; then
    echo "make-sim-clip-h265: clip is over 1 MB" >&2
    exit 1
fi
