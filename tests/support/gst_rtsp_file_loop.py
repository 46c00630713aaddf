#!/usr/bin/python3
"""N cameras from one H.264 file: GStreamer's RTSP server serving the
Annex B elementary stream in FILE on /c0 .. /c{N-1} of 127.0.0.1, without
authentication, each mount its own shared pipeline (the file looped for
ever, each picture held until its time and each packet written on its
own, as a camera paces them),
so nothing is encoded while it plays. The camera side of benches/relay.rs.

Usage: gst_rtsp_file_loop.py FILE [--mounts N] [--fps FPS] [--port PORT]

FILE must be video only, start with a keyframe and its parameter sets,
and have no B-frames (decode order is presentation order). --fps is the
file's frame rate (default 30), --mounts the number of cameras (default
1), --port the TCP port (default 0: any free one).

Prints "READY <port>" once listening; runs until killed.
"""
import argparse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("file")
parser.add_argument("--mounts", type=int, default=1)
parser.add_argument("--fps", type=int, default=30)
parser.add_argument("--port", default="0")
args = parser.parse_args()

Gst.init(None)

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(args.port)

# multifilesrc rereads the file at its end; h264parse carries the
# timestamps on across the loop (from the caps' frame rate, as DTS only:
# set_pts copies them, there are no B-frames), and identity holds each
# picture until its time. rtph264pay pushes a picture's packets as one
# buffer list, which the server writes to a TCP client in one sendmsg; the
# identity named pay0 after it passes them on one by one, so each packet
# is its own write, as a camera sends them (strace: about 2,400 sendmsg in
# 6 s of a 4 Mbit/s camera, against 197 with the list).
location = args.file.replace("\\", "\\\\").replace('"', '\\"')
launch = (
    f'( multifilesrc location="{location}" loop=true '
    f"! video/x-h264,stream-format=byte-stream,framerate={args.fps}/1 "
    "! h264parse ! video/x-h264,stream-format=avc,alignment=au "
    "! identity name=pace sync=true "
    "! rtph264pay pt=96 config-interval=-1 "
    "! identity name=pay0 )"
)


def set_pts(_pad, info):
    buffer = info.get_buffer()
    if buffer is not None and buffer.pts == Gst.CLOCK_TIME_NONE:
        buffer.pts = buffer.dts
    return Gst.PadProbeReturn.OK


def on_media_configure(_factory, media):
    pace = media.get_element().get_by_name("pace")
    pace.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, set_pts)


mounts = server.get_mount_points()
for i in range(args.mounts):
    # One factory per mount: each camera has its own pipeline, shared by
    # whoever plays that mount.
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    factory.connect("media-configure", on_media_configure)
    mounts.add_factory(f"/c{i}", factory)

server.attach(None)
print("READY", server.get_bound_port(), flush=True)
GLib.MainLoop().run()
