#!/usr/bin/env bash
# Older x86_64 CPUs under qemu-user: Debian's qemu 7.2 runs SSE4.2 and AVX2 code exactly (it has
# no AVX-512 or AVX-VNNI, which the native run on the CI machine covers where it has them).
# The native test binaries the README's test command built run on two CPU models, so that
# every x86 dispatch path runs: Nehalem (SSE4.2, no AVX: the SSE int8 kernels, the unfused
# float loops of CPUs without FMA, the Celeron J / N of NAS boxes) and Haswell (AVX2 + FMA:
# the AVX2 kernels and the fused loops, AMD Zen 1-3 and Intel before Ice Lake). On each: the
# kernel tests (every kernel against its twin, on what the CPU model has), the fixture's
# int8 detections (and on Nehalem the fp32 ones) against the native build's (arch_parity), and `qdet bench`
# naming the integer kernel that class of CPU gets. qemu cannot time code.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-x86_64 >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
fi
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=qemu-x86_64
cargo test --release --locked --lib --test it --no-run
# A hang under emulation must fail CI here, not eat its time limit.
limit=900
# Emulated AVX2 + FMA is slow on fp32: under Haswell the fp32 model's detections took over 10
# minutes and the fp32 direct-convolution test 12 (one thread), so both run on Nehalem only
# (the SSE fp32 tile there, 42 and 32 s); under Haswell the AVX2 fp32 tiles are held to their twin bit
# for bit (kernels::tests::fconv::simd_fp32_tiles_equal_their_scalar_twin).
for cpu in Nehalem Haswell; do
    echo "== qemu-x86_64 -cpu $cpu"
    skip=() parity=arch_parity:: kernels=
    # Haswell's model-level parity runs the AVX2 kernels only: its SSE kernels, with the same
    # fused float loops, are the native run's (each kernel is 1-2 minutes of emulation here).
    [ $cpu = Nehalem ] || { skip=(--skip fp32_convolutions_equal_a_direct_convolution); parity=arch_parity::int8_; kernels=maddubs,madd16; }
    QEMU_CPU=$cpu timeout $limit cargo test --release --locked --lib kernels:: -- "${skip[@]}"
    QDET_PARITY_KERNELS=$kernels QEMU_CPU=$cpu timeout $limit cargo test --release --locked --test it $parity
done
bench() { # cpu model -> the bench JSON
    QEMU_CPU=$1 qemu-x86_64 target/release/qdet bench --model "$2" --runs 1 --warmup 0 --json
}
check() { # cpu model field kernel
    json=$(bench "$1" "$2")
    echo "$json" | grep -q "\"$3\": \"$4\"" || { echo "qdet bench under -cpu $1 did not run $4 on $2:"; echo "$json"; exit 1; }
    echo "qdet bench under qemu-x86_64 -cpu $1: $2 on $4"
}
check Nehalem models/shapes-yolov8n.int8.onnx int8_kernel SseMaddubs
check Nehalem models/shapes-yolov8n.onnx fp32_kernel sse
check Haswell models/shapes-yolov8n.int8.onnx int8_kernel Avx2Maddubs
