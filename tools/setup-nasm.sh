#!/usr/bin/env bash
# nasm, which gives the bundled libjpeg-turbo decoder its x86 SIMD code (mozjpeg-sys's
# `nasm_simd`; without nasm the build silently uses the C code, the same pixels, about 2.5x
# slower). Installed if missing; needs root (or sudo) only then. CI runs it so the tests
# check the SIMD decoder against OpenCV's pixels (tests/it/decode_opencv.rs).
set -euo pipefail
command -v nasm >/dev/null && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nasm >/dev/null
