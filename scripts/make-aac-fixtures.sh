#!/bin/sh
# Makes the AAC test data under tests/fixtures/aac/ (see
# tests/fixtures/README.md) with GStreamer's voaacenc (AAC LC), the encoder
# of tests/support/gst_rtsp_server.py --audio aac|latm:
#   sine1k_48k_mono.aac       2 s of a 1 kHz sine, 48 kHz mono, ADTS
#   sine440_44k1_stereo.aac   2 s of a 440 Hz sine, 44.1 kHz stereo, ADTS
#   two_tones_44k1_stereo.aac 2 s of 440 Hz on the left and 1 kHz on the
#                             right, 44.1 kHz stereo, ADTS
#   mp4g_48k_mono.rtp         the first file's access units as RTP packets
#                             from rtpmp4gpay (RFC 3640 AAC-hbr), mtu 120 so
#                             most access units are fragmented, RFC 4571
#                             framed (a 16-bit length before each packet)
#   mp4a_48k_mono.rtp         the same from rtpmp4apay (RFC 6416 LATM,
#                             cpresent=0, config=40002310)
# The ADTS and RTP files of one run carry the same access units (the
# encoder is deterministic). Run from anywhere; needs gst-launch-1.0 with voaacenc
# (gstreamer1.0-plugins-bad). The outputs are committed; regenerating them
# changes bytes (encoder versions), not shapes.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tests/fixtures/aac"
mkdir -p "$dir"
gst=${GST_LAUNCH:-gst-launch-1.0}

src="audiotestsrc wave=sine freq=1000 volume=0.5 samplesperbuffer=960 num-buffers=100
    ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! voaacenc bitrate=64000 ! aacparse"
# shellcheck disable=SC2086 # $src is a pipeline description, split on purpose
"$gst" -q $src ! audio/mpeg,stream-format=adts ! filesink location="$dir/sine1k_48k_mono.aac"
# shellcheck disable=SC2086
"$gst" -q $src ! rtpmp4gpay mtu=120 ! rtpstreampay ! filesink location="$dir/mp4g_48k_mono.rtp"
# shellcheck disable=SC2086
"$gst" -q $src ! rtpmp4apay mtu=120 ! rtpstreampay ! filesink location="$dir/mp4a_48k_mono.rtp"
"$gst" -q audiotestsrc wave=sine freq=440 volume=0.5 samplesperbuffer=882 num-buffers=100 \
    ! audio/x-raw,format=S16LE,rate=44100,channels=2 ! voaacenc bitrate=96000 ! aacparse \
    ! audio/mpeg,stream-format=adts ! filesink location="$dir/sine440_44k1_stereo.aac"
# A different tone in each channel (audiopanorama puts each mono sine on
# one side, audiomixer adds them).
"$gst" -q audiomixer name=m ! audio/x-raw,format=S16LE,rate=44100,channels=2 \
    ! voaacenc bitrate=96000 ! aacparse ! audio/mpeg,stream-format=adts \
    ! filesink location="$dir/two_tones_44k1_stereo.aac" \
    audiotestsrc wave=sine freq=440 volume=0.5 samplesperbuffer=882 num-buffers=100 \
    ! audio/x-raw,format=F32LE,rate=44100,channels=1 ! audiopanorama panorama=-1 ! m. \
    audiotestsrc wave=sine freq=1000 volume=0.5 samplesperbuffer=882 num-buffers=100 \
    ! audio/x-raw,format=F32LE,rate=44100,channels=1 ! audiopanorama panorama=1 ! m.

# Seeds of the aac_depacketizer fuzz target (fuzz/src/aac_depacketizer.rs):
# the RTP packets above as its records.
/usr/bin/python3 - "$dir" "$root/fuzz/corpus/aac_depacketizer" <<'PY'
import os, struct, sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


def packets(name, limit):
    data = open(os.path.join(src, name), "rb").read()
    i, pkts = 0, []
    while i + 2 <= len(data) and len(pkts) < limit:
        (n,) = struct.unpack(">H", data[i : i + 2])
        p = data[i + 2 : i + 2 + n]
        i += 2 + n
        cc = p[0] & 15
        pkts.append((p[1] >> 7, struct.unpack(">I", p[4:8])[0], p[12 + 4 * cc :]))
    return pkts


def records(pkts, lose=()):
    body, last = b"", None
    for n, (marker, ts, payload) in enumerate(pkts):
        step = 0 if last is None or ts == last else 1
        last = ts
        control = marker | (step << 1) | (8 if n in lose else 0)
        body += bytes([control]) + struct.pack(">H", len(payload)) + payload
    return body


def write(name, data):
    open(os.path.join(out, name), "wb").write(data)


mp4g, mp4a = packets("mp4g_48k_mono.rtp", 40), packets("mp4a_48k_mono.rtp", 40)
write("seed-mp4g", bytes([0]) + records(mp4g))
write("seed-mp4g-loss", bytes([0]) + records(mp4g[:7] + mp4g[8:], lose={7, 15}))
write("seed-mp4a", bytes([4]) + records(mp4a))
config = bytes.fromhex("40002310")
write("seed-mp4a-config", bytes([0x84, 0]) + struct.pack(">H", len(config)) + config + records(mp4a[:12]))
# In band: useSameStreamMux=0, the 44-bit StreamMuxConfig of 400023103fc0,
# then a 2-byte payload, not byte-aligned.
bits = "0" + "".join(f"{b:08b}" for b in bytes.fromhex("400023103fc0"))[:44]
bits += "".join(f"{b:08b}" for b in b"\x02hi")
bits += "0" * (-len(bits) % 8)
inband = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
write("seed-latm-inband", bytes([5]) + records([(1, 0, inband), (1, 1024, b"\x80\x80")]))
PY
