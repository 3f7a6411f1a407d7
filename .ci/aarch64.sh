#!/usr/bin/env bash
# ARM64 under qemu-user: cross-builds the tests and runs, on three CPU models so that every
# NEON dispatch path runs (max without SVE: i8mm + dotprod + plain NEON; cortex-a76: dotprod + plain;
# cortex-a72: plain NEON only), the library's unit tests, among them the kernel property tests
# (src/kernels/tests/), but for the model-level ones too slow under emulation (calibration
# against ONNX Runtime, val against Ultralytics: quant::tests::calibrate, val::parity_tests),
# and the fixture's fp32 and int8 detections on each kernel against the x86_64 build's (the
# arch_parity module of the integration tests, tests/it/arch_parity.rs); then checks that
# `qdet bench` reports an ARM integer kernel. qemu runs ARM code exactly but cannot time it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-aarch64.sh
target=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
cargo test --release --locked --target $target --lib --test it --no-run
# Each run takes 1-2 minutes; a hang under emulation must fail CI here, not eat its time limit.
limit=900
# SVE off: qdet has no SVE code, and with it on qemu 7.2 ran the same library tests 7x slower
# (557 s against 76 s on a Xeon Sapphire Rapids host); i8mm stays on.
for cpu in max,sve=off cortex-a76 cortex-a72; do
    echo "== qemu-aarch64 -cpu $cpu"
    QEMU_CPU=$cpu timeout $limit cargo test --release --locked --target $target --lib -- \
        --skip quant::tests::calibrate:: --skip val::parity_tests::
    QEMU_CPU=$cpu timeout $limit cargo test --release --locked --target $target --test it arch_parity::
done
# libjpeg-turbo's NEON decoding against OpenCV's pixels (the same on every CPU model).
QEMU_CPU=cortex-a72 timeout $limit cargo test --release --locked --target $target --test it decode_opencv::
# `cargo test` built the binary for the integration tests.
json=$(QEMU_CPU=max,sve=off qemu-aarch64 target/$target/release/qdet bench --model models/shapes-yolov8n.int8.onnx --runs 1 --warmup 0 --json)
echo "$json" | grep -q '"int8_kernel": "NeonI8mm"' || { echo "qdet bench under -cpu max did not run NeonI8mm:"; echo "$json"; exit 1; }
echo "qdet bench under qemu-aarch64 -cpu max: int8 on NeonI8mm"
