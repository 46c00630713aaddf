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

# Fuzz seeds for the h265_depacketizer and h265_analyzer targets, in the
# framed formats their fuzz/src/*.rs describe: real parameter sets and slice
# headers from the clips, slice data cut short to keep the seeds small.
command -v python3 >/dev/null 2>&1 || { echo "make-h265-fixtures: no python3, seeds not written" >&2; exit 0; }
python3 - "$dir" "$root/fuzz/corpus" <<'PY'
import os, struct, sys
fixtures, corpus = sys.argv[1], sys.argv[2]

def nal_units(path):
    d = open(path, 'rb').read()
    starts, i = [], 0
    while (j := d.find(b'\0\0\1', i)) >= 0:
        starts.append(j + 3); i = j + 3
    ends = [s - 3 for s in starts[1:]] + [len(d)]
    return [d[s:e].rstrip(b'\0') for s, e in zip(starts, ends)]

def pictures(path):
    aus, cur, has_slice = [], [], False
    for n in nal_units(path):
        t = (n[0] >> 1) & 0x3f
        vcl = t < 32
        starts = (n[2] & 0x80) if vcl else t != 40
        if has_slice and starts:
            aus.append(cur); cur, has_slice = [], False
        has_slice |= vcl
        cur.append(n)
    return aus + [cur]

def cut(n, keep):
    return n if (n[0] >> 1) & 0x3f >= 32 else n[:keep]

def write(target, name, data):
    os.makedirs(os.path.join(corpus, target), exist_ok=True)
    open(os.path.join(corpus, target, name), 'wb').write(data)

def packets(nals, max_payload, ap=False):
    """RFC 7798 payloads: an AP of the parameter sets, single NAL units, FUs."""
    out, params = [], [n for n in nals if 32 <= (n[0] >> 1) & 0x3f <= 34]
    if ap and params:
        out.append(bytes([0x60, 0x01]) + b''.join(struct.pack('>H', len(n)) + n for n in params))
        nals = [n for n in nals if n not in params]
    for n in nals:
        if len(n) <= max_payload:
            out.append(n); continue
        body, chunk = n[2:], max_payload - 3
        pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)]
        for k, p in enumerate(pieces):
            fu = ((n[0] >> 1) & 0x3f) | (0x80 if k == 0 else 0) | (0x40 if k == len(pieces) - 1 else 0)
            out.append(bytes([(n[0] & 0x81) | (49 << 1), n[1], fu]) + p)
    return out

def depack_script(options, aus, max_payload, ap=False, lose=None):
    s, k = bytearray([options]), 0
    for a, au in enumerate(aus):
        pl = packets(au, max_payload, ap)
        for i, p in enumerate(pl):
            control = (1 if i == len(pl) - 1 else 0) | ((1 << 3) if i == 0 and a > 0 else 0)
            if lose == k:
                control |= 2 << 1
            s += bytes([control]) + struct.pack('>H', len(p)) + p
            k += 1
    return bytes(s)

def analyzer_script(options, aus, controls=None):
    s = bytearray([options])
    for i, au in enumerate(aus):
        s += bytes([controls[i] if controls else 0, len(au)])
        for n in au:
            s += struct.pack('>H', len(n)) + n
    return bytes(s)

p = pictures(os.path.join(fixtures, 'p.h265'))
b = pictures(os.path.join(fixtures, 'b.h265'))
short = lambda au, keep=48: [cut(n, keep) for n in au]
bare = lambda au: [n for n in au if not 32 <= (n[0] >> 1) & 0x3f <= 34]

write('h265_depacketizer', 'seed-irap-fu', depack_script(0, [short(p[0], 400), short(p[1], 300)], 200))
write('h265_depacketizer', 'seed-sdp-ap', depack_script(1, [short(p[25], 200), short(p[26], 100)], 300, ap=True))
write('h265_depacketizer', 'seed-loss-mid-fu', depack_script(0, [short(p[0], 400)], 150, lose=6))
write('h265_analyzer', 'seed-clean', analyzer_script(0, [short(a) for a in p[:4]]))
write('h265_analyzer', 'seed-cut-keyframe', analyzer_script(0, [short(a) for a in p[:4]] + [short(p[25])[:-2]]))
write('h265_analyzer', 'seed-sdp-only', analyzer_script(1, [bare(short(a)) for a in p[23:28]]))
cra = next(i for i, a in enumerate(b) if any((n[0] >> 1) & 0x3f == 21 for n in a))
write('h265_analyzer', 'seed-cra-rasl-b', analyzer_script(0, [short(a) for a in b[cra:cra + 6]]))
write('h265_analyzer', 'seed-loss-forward', analyzer_script(2, [short(a) for a in p[:6]], [0, 0, 1, 2, 8, 12]))
PY
echo "fuzz seeds written under $root/fuzz/corpus/h265_*"
