//! The portable fp32 micro-kernel: the twin the SIMD fp32 kernels are tested against, bit for
//! bit, and the fallback. Every product is added in the SIMD kernels' order (tap, then
//! channel) with one fused multiply-add (`mul_add`) when `FUSED`, as the FMA kernels do, or a
//! multiply then an add, as the SSE kernel does (CPUs without FMA), so every compilation of
//! a kind rounds the same way.

use crate::kernels::madd::madd;
use crate::kernels::OC_BLOCK;

/// `acc[j][o] = init[o] + sum_t sum_c x[j * step + taps[t] + c] * w[t][c][o]`, accumulated in
/// that order with multiply-adds, fused when `FUSED`.
pub fn tile_f32<const FUSED: bool>(
    x: &[f32],
    step: usize,
    taps: &[usize],
    in_c: usize,
    w: &[f32],
    init: &[f32; OC_BLOCK],
    acc: &mut [[f32; OC_BLOCK]],
) {
    acc.fill(*init);
    for (t, &tap) in taps.iter().enumerate() {
        for c in 0..in_c {
            let wv = &w[(t * in_c + c) * OC_BLOCK..][..OC_BLOCK];
            for (j, a) in acc.iter_mut().enumerate() {
                let xv = x[j * step + tap + c];
                for (v, &wo) in a.iter_mut().zip(wv) {
                    *v = madd::<FUSED>(xv, wo, *v);
                }
            }
        }
    }
}
