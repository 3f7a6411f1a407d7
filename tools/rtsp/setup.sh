#!/usr/bin/env bash
# GStreamer's RTSP server for Debian's python3 (tools/rtsp/server.py): installed if missing;
# needs root (or sudo) only then.
set -euo pipefail
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' \
  2>/dev/null && gst-inspect-1.0 h264parse >/dev/null 2>&1 && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-gi \
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
  gstreamer1.0-tools >/dev/null
