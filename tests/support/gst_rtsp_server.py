#!/usr/bin/python3
"""An RTSP server nobody on this team wrote: GStreamer's rtsp-server, for
interop tests. Serves /test (H.264 + PCMU) on 127.0.0.1 with Digest auth.

Usage: gst_rtsp_server.py USER PASSWORD [PORT] [--gop FRAMES]
                          [--ignore-keyframe-requests]

--gop FRAMES sets the encoder's keyframe interval (default 50, 2 s at
25 fps; scene-cut keyframes are off then, so keyframes come exactly every
FRAMES pictures). --ignore-keyframe-requests makes the camera deaf to PLI
and FIR: GStreamer's RTP session turns them into an upstream
GstForceKeyUnit event, which a probe drops before it reaches the encoder,
like a camera that only ever sends its fixed GOP.

--file PATH serves, instead of the test pattern, the H.264 Annex B
elementary stream in PATH (video only, 25 fps, starting with a keyframe
and its parameter sets), looped for ever and paced by the clock as a
camera paces its pictures, so nothing is encoded while it plays. One
pipeline is shared by every client.

--mp4 PATH serves, instead of the test pattern, the MP4 file in PATH
(H.264 video and AAC audio, as ffmpeg writes them) once from its start
for each client, in real time: demuxed, the H.264 as pay0 (rtph264pay,
parameter sets in band) and the AAC as pay1 (rtpmp4gpay, or rtpmp4apay
with --audio latm), each buffer held until its time so both streams leave
together as a camera sends them. For content-timed tests (audio/video
offset), so nothing is encoded while it plays.

--relay URL re-serves the RTSP camera at URL (pulled once over TCP,
depayloaded and payloaded again) to every client: GStreamer's own RTSP
server as a restreaming gateway, the baseline of benches/rtsp_clients.rs.

--codec h265 encodes the test pattern with x265 (H.265 Main, several
slice segments per picture, no B-frames) and sends it with rtph265pay
(RFC 7798, parameter sets in band and in the SDP) instead of x264.

--audio aac sends the sine as AAC LC (voaacenc) with rtpmp4gpay (RFC 3640
mpeg4-generic, AAC-hbr); --audio latm with rtpmp4apay (RFC 6416
MP4A-LATM, cpresent=0); the default, pcmu, as G.711 mu-law at 8 kHz.
--audio-rate HZ sets the AAC sampling rate (default 48000; 44100 makes
camgate resample for Opus), mono.

--no-auth serves without authentication (USER and PASSWORD are then
ignored).

Prints "READY <port>" once listening; runs until killed.
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("user")
parser.add_argument("password")
parser.add_argument("port", nargs="?", default="0")
parser.add_argument("--gop", type=int, default=None)
parser.add_argument("--ignore-keyframe-requests", action="store_true")
parser.add_argument("--file", default=None)
parser.add_argument("--relay", default=None)
parser.add_argument("--mp4", default=None)
parser.add_argument("--no-auth", action="store_true")
parser.add_argument("--codec", choices=["h264", "h265"], default="h264")
parser.add_argument("--audio", choices=["pcmu", "aac", "latm"], default="pcmu")
parser.add_argument("--audio-rate", type=int, default=48000)
args = parser.parse_args()

Gst.init(None)

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(args.port)

gop = args.gop if args.gop else 50
# With a fixed GOP asked for, no extra keyframes at scene cuts either.
x264_options = ' option-string="scenecut=0"' if args.gop else ""

factory = GstRtspServer.RTSPMediaFactory()
if args.codec == "h265":
    scenecut = ":scenecut=0" if args.gop else ""
    video_encoder = (
        "! x265enc name=enc tune=zerolatency speed-preset=ultrafast "
        f'key-int-max={gop} bitrate=1500 option-string="slices=4:bframes=0{scenecut}" '
        "! video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=-1 "
    )
else:
    video_encoder = (
        "! x264enc name=enc tune=zerolatency speed-preset=ultrafast bframes=0 "
        f"key-int-max={gop} bitrate=1500{x264_options} "
        "! video/x-h264,profile=main ! rtph264pay name=pay0 pt=96 config-interval=-1 "
    )
if args.audio == "pcmu":
    audio_encoder = "! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 )"
else:
    payloader = "rtpmp4gpay" if args.audio == "aac" else "rtpmp4apay"
    audio_encoder = (
        f"! audio/x-raw,rate={args.audio_rate},channels=1 ! voaacenc bitrate=64000 "
        f"! {payloader} name=pay1 pt=97 )"
    )
launch = (
    "( videotestsrc is-live=true pattern=ball "
    "! video/x-raw,width=640,height=360,framerate=25/1 "
    + video_encoder +
    "audiotestsrc is-live=true wave=sine freq=1000 "
    + audio_encoder
)
# Not shared: each session starts its own encoder, so it begins at a keyframe.
shared = False
if args.file:
    # multifilesrc rereads the file at its end; h264parse carries the
    # timestamps on across the loop (from the caps' frame rate, as DTS
    # only: set_pts copies them, there are no B-frames), and identity holds
    # each picture until its time.
    location = args.file.replace("\\", "\\\\").replace('"', '\\"')
    launch = (
        f'( multifilesrc location="{location}" loop=true '
        '! video/x-h264,stream-format=byte-stream,framerate=25/1 '
        "! h264parse ! video/x-h264,stream-format=avc,alignment=au "
        "! identity name=pace sync=true "
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    shared = True
if args.mp4:
    location = args.mp4.replace("\\", "\\\\").replace('"', '\\"')
    payloader = "rtpmp4apay" if args.audio == "latm" else "rtpmp4gpay"
    # identity sync=true holds each buffer until its running time, on each
    # branch after its queue, so neither stream runs ahead of the other.
    launch = (
        f'( filesrc location="{location}" ! qtdemux name=demux '
        "demux.video_0 ! queue ! h264parse ! identity sync=true "
        "! rtph264pay name=pay0 pt=96 config-interval=-1 "
        "demux.audio_0 ! queue ! aacparse ! identity sync=true "
        f"! {payloader} name=pay1 pt=97 )"
    )
if args.relay:
    url = args.relay.replace("\\", "\\\\").replace('"', '\\"')
    launch = (
        f'( rtspsrc location="{url}" latency=0 protocols=tcp '
        "! rtph264depay ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    shared = True
factory.set_launch(launch)
factory.set_shared(shared)


def drop_keyframe_requests(pad, info):
    event = info.get_event()
    structure = event.get_structure() if event else None
    if structure is not None and structure.get_name() == "GstForceKeyUnit":
        print("dropped a keyframe request", file=sys.stderr, flush=True)
        return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.OK


def on_media_configure(_factory, media):
    encoder = media.get_element().get_by_name("enc")
    encoder.get_static_pad("src").add_probe(
        Gst.PadProbeType.EVENT_UPSTREAM, drop_keyframe_requests
    )


if args.ignore_keyframe_requests:
    factory.connect("media-configure", on_media_configure)


def set_pts(_pad, info):
    buffer = info.get_buffer()
    if buffer is not None and buffer.pts == Gst.CLOCK_TIME_NONE:
        buffer.pts = buffer.dts
    return Gst.PadProbeReturn.OK


def on_file_media_configure(_factory, media):
    pace = media.get_element().get_by_name("pace")
    pace.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, set_pts)


if args.file:
    factory.connect("media-configure", on_file_media_configure)

factory.add_role_from_structure(
    Gst.Structure.from_string(
        "camgate, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )[0]
)

if not args.no_auth:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "camgate")
    auth.add_digest(args.user, args.password, token)
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    server.set_auth(auth)

server.get_mount_points().add_factory("/test", factory)
server.attach(None)
print("READY", server.get_bound_port(), flush=True)
GLib.MainLoop().run()
