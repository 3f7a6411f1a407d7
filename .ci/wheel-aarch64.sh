#!/usr/bin/env bash
# The aarch64 wheel under qemu-aarch64 (cortex-a72: plain NEON): unpacked next to an ARM64
# CPython and numpy, it imports, detects in a fixture image through the module (the int8
# model: integer kernels give the same boxes on every CPU, so the x86_64 command's YOLO
# lines are the reference), and its bundled command runs.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-aarch64-python.sh
py=target/aarch64-python
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
python3 -m zipfile -e "$(ls target/wheels/qdet-*-manylinux_*_aarch64.whl | tail -1)" "$site"
model=models/shapes-yolov8n.int8.onnx image=datasets/shapes/images/val/val_0000.jpg
target/release/qdet detect --model $model --save-txt --no-json --out "$site/want" $image 2>/dev/null
got=$(QEMU_LD_PREFIX=$PWD/$py/root QEMU_CPU=cortex-a72 qemu-aarch64 $py/root/usr/bin/python3.11 -c "
import sys
sys.path[:0] = ['$site', '$PWD/$py/site']
import qdet
print(qdet.Detector('$model')('$image').to_yolo(), end='')
")
if [ "$got" != "$(cat "$site/want/labels/val_0000.txt")" ]; then
    echo "the aarch64 module's detections differ from the x86_64 command's:"
    echo "$got"
    exit 1
fi
chmod +x "$site/qdet/bin/qdet"
QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 "$site/qdet/bin/qdet" --version
echo "aarch64 wheel under qemu: imports, detects as x86_64 does, its command runs"
