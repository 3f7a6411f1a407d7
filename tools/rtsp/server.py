#!/usr/bin/python3
"""A real RTSP server on loopback for qdet's stream tests (tools/rtsp/test.sh): GStreamer's
rtsp-server (Debian: gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good and -bad,
python3-gi) serving an mp4's H.264 track at rtsp://127.0.0.1:PORT/cam, packetized as it is,
so a client decodes the very frames of the file. Each client session plays the file once
from the start; the server runs until killed.

Usage: server.py CLIP.mp4 PORT
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    clip, port = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # Paced by the pipeline clock, as a camera sends: qtdemux -> h264parse -> RTP.
    factory.set_launch(f"( filesrc location={clip} ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(False)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print(f"rtsp://127.0.0.1:{port}/cam", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
