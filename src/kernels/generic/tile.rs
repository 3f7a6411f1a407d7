//! Portable micro-kernels: the twins the SIMD kernels are tested against, and the fallback
//! on CPUs without them. Same layouts ([`crate::kernels::pack`]), plain integer arithmetic; each
//! starts every pixel's sums at `init`.

use crate::kernels::{GROUP_BYTES, OC_BLOCK, WGROUP_BYTES};

/// Pairs layout: a pixel's group is two i16 channels, a weight group `OC_BLOCK` x two i16,
/// little-endian. Signed as `pmaddwd` reads them: images hold 0..=255 either way, the
/// transformed blocks of [`crate::kernels::winograd8`] negative values too.
pub fn tile_pairs(
    x: &[u8],
    step: usize,
    taps: &[usize],
    groups: usize,
    w: &[u8],
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]],
) {
    acc.fill(*init);
    let i16_at = |s: &[u8], i: usize| i32::from(i16::from_le_bytes([s[i], s[i + 1]]));
    for (t, &tap) in taps.iter().enumerate() {
        for g in 0..groups {
            let wg = &w[(t * groups + g) * WGROUP_BYTES..][..WGROUP_BYTES];
            for (j, a) in acc.iter_mut().enumerate() {
                let xg = &x[j * step + tap + g * GROUP_BYTES..][..GROUP_BYTES];
                let (x0, x1) = (i16_at(xg, 0), i16_at(xg, 2));
                for (o, v) in a.iter_mut().enumerate() {
                    // Wrapping, as `pmaddwd` and `paddd` do: Winograd's sums rely on it.
                    let pair = (x0 * i16_at(wg, 4 * o)).wrapping_add(x1 * i16_at(wg, 4 * o + 2));
                    *v = v.wrapping_add(pair);
                }
            }
        }
    }
}

/// Quads layout: a pixel's group is four u8 channels, a weight group `OC_BLOCK` x four i8.
pub fn tile_quads(
    x: &[u8],
    step: usize,
    taps: &[usize],
    groups: usize,
    w: &[u8],
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]],
) {
    quads::<0>(x, step, taps, groups, w, init, acc)
}

/// [`tile_quads`] of `x - 128`, as the Arm kernels that multiply signed by signed compute it.
pub fn tile_quads_shifted(
    x: &[u8],
    step: usize,
    taps: &[usize],
    groups: usize,
    w: &[u8],
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]],
) {
    quads::<128>(x, step, taps, groups, w, init, acc)
}

fn quads<const OFFSET: i32>(
    x: &[u8],
    step: usize,
    taps: &[usize],
    groups: usize,
    w: &[u8],
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]],
) {
    acc.fill(*init);
    for (t, &tap) in taps.iter().enumerate() {
        for g in 0..groups {
            let wg = &w[(t * groups + g) * WGROUP_BYTES..][..WGROUP_BYTES];
            for (j, a) in acc.iter_mut().enumerate() {
                let xg = &x[j * step + tap + g * GROUP_BYTES..][..GROUP_BYTES];
                for (o, v) in a.iter_mut().enumerate() {
                    *v += (0..4).map(|q| (i32::from(xg[q]) - OFFSET) * i32::from(wg[4 * o + q] as i8)).sum::<i32>();
                }
            }
        }
    }
}
