#!/usr/bin/env bash
# What cross-building for ARM64 and running it under emulation needs, installed if missing:
# the Rust target, Debian's cross gcc (linker, and the C compiler for the bundled
# libjpeg-turbo) with the arm64 C library, and qemu-user. .cargo/config.toml points cargo at
# them. Idempotent; needs root (or sudo) only when a Debian package is missing.
set -euo pipefail
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi
