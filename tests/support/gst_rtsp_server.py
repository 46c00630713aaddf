#!/usr/bin/python3
"""An RTSP server nobody on this team wrote: GStreamer's rtsp-server, for
interop tests. Serves /test (H.264 + PCMU) on 127.0.0.1 with Digest auth.

Usage: gst_rtsp_server.py USER PASSWORD [PORT]
Prints "READY <port>" once listening; runs until killed.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

Gst.init(None)
user, password = sys.argv[1], sys.argv[2]
port = sys.argv[3] if len(sys.argv) > 3 else "0"

server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)

factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball "
    "! video/x-raw,width=640,height=360,framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=50 bitrate=1500 "
    "! video/x-h264,profile=main ! rtph264pay name=pay0 pt=96 config-interval=-1 "
    "audiotestsrc is-live=true wave=sine freq=1000 "
    "! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 )"
)
# Not shared: each session starts its own encoder, so it begins at a keyframe.
factory.set_shared(False)
factory.add_role_from_structure(
    Gst.Structure.from_string(
        "camgate, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
    )[0]
)

auth = GstRtspServer.RTSPAuth()
token = GstRtspServer.RTSPToken()
token.set_string("media.factory.role", "camgate")
auth.add_digest(user, password, token)
auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
server.set_auth(auth)

server.get_mount_points().add_factory("/test", factory)
server.attach(None)
print("READY", server.get_bound_port(), flush=True)
GLib.MainLoop().run()
