#!/bin/sh
# Makes the AAC test data under tests/fixtures/aac/ (see
# tests/fixtures/README.md) with GStreamer's voaacenc (AAC LC), the encoder
# of tests/support/gst_rtsp_server.py --audio aac|latm:
#   sine1k_48k_mono.aac       2 s of a 1 kHz sine, 48 kHz mono, ADTS
#   sine440_44k1_stereo.aac   2 s of a 440 Hz sine, 44.1 kHz stereo, ADTS
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
