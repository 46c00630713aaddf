#!/bin/sh
# Makes assets/sim-clip.h264, the clip the built-in simulated camera (src/sim)
# embeds: 640x360, 25 fps, 4 s (100 frames), one IDR every 50 frames, no
# B-frames, ~1.8 Mbit/s CBR-ish, 4 slices per frame, Annex B with SPS/PPS
# before every IDR. Run from anywhere; needs ffmpeg with libx264.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/assets/sim-clip.h264"
ffmpeg=${FFMPEG:-ffmpeg}

command -v "$ffmpeg" >/dev/null 2>&1 || { echo "make-sim-clip: ffmpeg not found" >&2; exit 1; }

# A frame counter makes loss and loop boundaries visible in a viewer; it needs
# the drawtext filter (libfreetype) and a font, so it is optional.
src="testsrc2=size=640x360:rate=25"
font=/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf
if "$ffmpeg" -hide_banner -filters 2>/dev/null | grep -q ' drawtext ' && [ -f "$font" ]; then
    src="$src,drawtext=fontfile=$font:text='camgate sim %{frame_num}':x=16:y=16:fontsize=28:fontcolor=white:box=1:boxcolor=black@0.6"
fi

"$ffmpeg" -hide_banner -loglevel error -y \
    -f lavfi -i "$src" -t 4 \
    -an -c:v libx264 -profile:v main -pix_fmt yuv420p \
    -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
    -b:v 1800k -maxrate 1800k -bufsize 1800k \
    -slices 4 -x264-params repeat-headers=1:aud=0 \
    -bsf:v h264_mp4toannexb -f h264 "$out"

size=$(wc -c <"$out")
echo "make-sim-clip: wrote $out ($size bytes)"
if [ "$size" -ge 1048576 ]; then
    echo "make-sim-clip: clip is over 1 MB" >&2
    exit 1
fi
