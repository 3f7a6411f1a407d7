//! The integer micro-kernels on 128-bit SSE vectors, for x86_64 CPUs without AVX2: the
//! Celeron J4125 / J4105 / N5105 of Synology and QNAP NAS boxes (Goldmont Plus, Tremont),
//! Atoms, Nehalem to Ivy Bridge. The same loop as the AVX2 kernels on four vectors of four
//! channels per pixel; `pmaddubsw` (SSSE3) where the weights' pairs keep its saturating i16
//! sums exact, `pmaddwd` on u16 / i16 pairs otherwise (twins:
//! [`crate::kernels::generic::tile::tile_quads`], [`crate::kernels::generic::tile::tile_pairs`]).

use std::arch::x86_64::*;

use crate::kernels::{GROUP_BYTES, OC_BLOCK, WGROUP_BYTES};

/// Per tap and k-group, four weight vectors (channels 0..4, .., 12..16) and one 32-bit
/// broadcast per pixel, folded into the accumulators by `$mac`.
macro_rules! kernel_loop_sse {
    ($x:ident, $step:ident, $taps:ident, $groups:ident, $w:ident, $init:ident, $acc:ident, |$a:ident, $b:ident, $wv:ident| $mac:expr) => {{
        let start: [__m128i; 4] = std::array::from_fn(|v| _mm_loadu_si128($init.as_ptr().add(4 * v) as *const __m128i));
        let mut acc_v: [[__m128i; 4]; P] = [start; P];
        let mut offsets = [0usize; P];
        for (j, o) in offsets.iter_mut().enumerate() {
            *o = j * $step;
        }
        let mut wp = $w;
        for &tap in $taps {
            let xt = $x.add(tap);
            for g in 0..$groups {
                let wv: [__m128i; 4] = std::array::from_fn(|v| _mm_loadu_si128(wp.add(16 * v) as *const __m128i));
                wp = wp.add(WGROUP_BYTES);
                let xg = xt.add(g * GROUP_BYTES);
                for j in 0..P {
                    let $b = _mm_set1_epi32((xg.add(offsets[j]) as *const i32).read_unaligned());
                    for v in 0..4 {
                        let ($a, $wv) = (acc_v[j][v], wv[v]);
                        acc_v[j][v] = $mac;
                    }
                }
            }
        }
        for j in 0..P {
            for v in 0..4 {
                _mm_storeu_si128($acc[j].as_mut_ptr().add(4 * v) as *mut __m128i, acc_v[j][v]);
            }
        }
    }};
}

/// `acc += maddubs(x, w)` widened to i32; exact for pair-bounded weights
/// ([`crate::kernels::WeightRange::max_pair`]).
///
/// # Safety
/// The CPU has SSSE3; `x` is readable for `(P - 1) * step + max(taps) + groups * 4` bytes and
/// `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "ssse3")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn maddubs<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees SSSE3 and the reads.
    unsafe {
        let ones = _mm_set1_epi16(1);
        kernel_loop_sse!(x, step, taps, groups, w, init, acc, |a, b, wv| _mm_add_epi32(
            a,
            _mm_madd_epi16(_mm_maddubs_epi16(b, wv), ones)
        ))
    }
}

/// `acc += madd16(x, w)` on u16 / i16 pairs: exact for any int8 weights.
///
/// # Safety
/// As [`maddubs`] (`pmaddwd` itself is SSE2, part of every x86_64 CPU).
#[target_feature(enable = "ssse3")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn madd16<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees SSSE3 and the reads.
    unsafe { kernel_loop_sse!(x, step, taps, groups, w, init, acc, |a, b, wv| _mm_add_epi32(a, _mm_madd_epi16(b, wv))) }
}
