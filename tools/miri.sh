#!/usr/bin/env bash
# Miri over the kernel tests whose unsafe code it can execute: the portable twins, the checks
# in front of the SIMD kernels (offsets past usize refused), segments' saturating `scaled`,
# the SSE2 interleaves x86_64 runs on every CPU, the image written from parts into memory it
# does not zero, and the thread team's shared job pointer. Miri has no CPU to probe (every
# `cpu::has` is false, and under Miri the CPU class defaults to `baseline`), so the AVX2,
# AVX-512 and VNNI tiles, epilogues and transposes do not run here: their twins' tests
# (`cargo test --lib kernels`) hold them to the portable code, and these the code around them.
#
# Not part of .ci/run: on 2 busy cores of a Xeon, Miri's sysroot and the dependencies (tract,
# image, ...) took 8 minutes to build the first time, then these tests 1.5 minutes; CI's
# time budget has no room for that. Run it by hand after touching unsafe code in
# src/kernels/. Left out as too slow to interpret: the conv-level tests
# (outputs::run_to_tensors_writes_every_byte ran over 6 minutes without finishing) and the
# thread team's long loops (threads::tests::every_index_runs_once_per_section).
#
# Needs the nightly toolchain with Miri:
#   rustup toolchain install nightly --component miri,rust-src --profile minimal
set -euo pipefail
cd "$(dirname "$0")/.."
# The thread team's helpers live as long as the process, never joined, which Miri otherwise
# reports as a leak.
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-ignore-leaks"
tests=(
    kernels::tests::bounds::
    kernels::tests::segments::scaled
    kernels::tests::conv::simd_interleave_equals_scalar
    kernels::tests::fconv::pixel_gathers_equal_their_twin
    kernels::tests::concat_image::
    kernels::threads::tests::a_panic_reaches_the_caller_after_the_other_indices
)
cargo +nightly miri test --locked -p qdet --lib --no-default-features -- "${tests[@]}"
