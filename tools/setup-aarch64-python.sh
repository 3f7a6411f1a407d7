#!/usr/bin/env bash
# An ARM64 CPython 3.11 (Debian bookworm's packages, unpacked, not installed) and numpy's
# aarch64 wheel, under target/aarch64-python/, to run the aarch64 qdet wheel under
# qemu-aarch64: QEMU_LD_PREFIX=target/aarch64-python/root qemu-aarch64 \
#   target/aarch64-python/root/usr/bin/python3.11 (with site/ on sys.path).
# Needs the arm64 package lists (dpkg --add-architecture arm64), added here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/aarch64-python
[ -x $dir/root/usr/bin/python3.11 ] && [ -d $dir/site/numpy ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
fi
$sudo apt-get update -qq
rm -rf $dir && mkdir -p $dir/debs $dir/root $dir/site
(cd $dir/debs && apt-get download -qq python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
    libpython3.11-stdlib:arm64 zlib1g:arm64 libexpat1:arm64 libffi8:arm64 libc6:arm64 \
    libgcc-s1:arm64 libstdc++6:arm64 2>/dev/null)
for d in $dir/debs/*.deb; do dpkg -x "$d" $dir/root; done
python3 -m pip download --quiet --platform manylinux_2_28_aarch64 --python-version 3.11 \
    --only-binary=:all: -r python/requirements-aarch64.txt -d $dir/debs
for w in $dir/debs/*.whl; do python3 -m zipfile -e "$w" $dir/site; done
