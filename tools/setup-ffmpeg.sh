#!/usr/bin/env bash
# ffmpeg and ffprobe, which `qdet detect` runs as child processes to decode video files,
# streams and cameras (src/video.rs); the tests make a clip with it and compare its frames
# (tests/it/video.rs). Debian 12 ships 5.1. Installed if missing; needs root (or sudo) only
# then.
set -euo pipefail
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
