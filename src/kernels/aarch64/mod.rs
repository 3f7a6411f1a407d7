//! NEON micro-kernels (aarch64), on the quads layout of [`crate::kernels::pack`]: a pixel's k-group is
//! 4 u8 channels, a weight group 16 output channels x 4 i8, so one 128-bit weight vector holds
//! 4 output channels x 4 channels of k, which is exactly the operand of the Arm dot products.
//! Each kernel is the SIMD form of a twin in [`crate::kernels::generic::tile`]; callers go through
//! [`crate::kernels::tile`], which checks the CPU features and the operand lengths.
//!
//! * [`Isa::NeonI8mm`] (`i8mm`: Cortex-A510/A710/X2, Neoverse V1/N2): `SUDOT` by element
//!   multiplies the signed weights with the unsigned activations directly: 16 multiply-adds
//!   per instruction, no correction. (`USMMLA`, 32 per instruction, needs 8-deep k groups
//!   from two pixels interleaved, another image layout; not done.)
//! * [`Isa::NeonDot`] (`dotprod`: Cortex-A55/A76/A78, Neoverse N1): `SDOT` needs both
//!   operands signed, so the activations are shifted by 128 (`x ^ 0x80` reads `x - 128` as
//!   an i8) and the zero point moves with them, `zp - 128` ([`Isa::activation_offset`]):
//!   `sum (x - zp) w = sum ((x - 128) - (zp - 128)) w`, exact, and the correction stays the
//!   per-channel `zp * sum w` the convolution already starts from. One `EOR` serves 4 k-groups
//!   of a pixel (a 16-byte load, then `SDOT` by element on each 4-byte lane). The other way,
//!   weights offset by 128 for `UDOT`, needs `128 * sum x` per output pixel: a second dot
//!   product per pixel, more work than the `EOR`.
//! * [`Isa::NeonMull`] (plain ARMv8 NEON: Cortex-A53/A72, Pi 3 and 4): activations shifted
//!   as for `SDOT`, `SMULL` of 8 i8 x i8 products into i16, `SMLAL` adds the next k-group's
//!   product (two products of `|x - 128| <= 128` and `|w| <= 127` stay below 2^15), `SADALP`
//!   widens pairs into i32. Exact for `|w| <= 127` ([`Isa::exact_for`]); weights of -128
//!   (only in files from other quantizers) take the portable kernel.
//!
//! The dot products are not yet stable `core::arch` intrinsics (`stdarch_neon_dotprod`,
//! `stdarch_neon_i8mm`), so they are single `asm!` instructions inside functions compiled
//! with the target feature; the loads and the rest are intrinsics.

pub mod epilogue;
pub mod ftile;

use std::arch::aarch64::*;
use std::arch::asm;

use crate::kernels::{fits, Isa, GROUP_BYTES, OC_BLOCK, WGROUP_BYTES};

/// Runs one tile of 1 to [`crate::kernels::PX`] pixels on a NEON `isa`, in pieces of at most
/// [`Isa::tile_pixels`]. `x` starts at the tile's first pixel.
///
/// # Safety
/// The CPU has `isa`'s features, and `x` is readable for `(acc.len() - 1) * step + max(taps) +
/// groups * 4` bytes and `w` for `taps.len() * groups * 64` ([`crate::kernels::tile`] checks
/// both).
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile(
    isa: Isa,
    x: &[u8],
    step: usize,
    taps: &[usize],
    groups: usize,
    w: &[u8],
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]],
) {
    let most = isa.tile_pixels();
    for (i, acc) in acc.chunks_mut(most).enumerate() {
        let x = &x[i * most * step..];
        macro_rules! by_len {
            ($($p:literal)*) => {
                match acc.len() {
                    // SAFETY: the caller's promise, for this piece's pixels.
                    $($p => unsafe { run::<$p>(isa, x, step, taps, groups, w, init, acc) },)*
                    n => unreachable!("{isa:?} tiles have at most 5 pixels, not {n}"),
                }
            };
        }
        by_len!(1 2 3 4 5)
    }
}

/// # Safety
/// As [`tile`], for `P` pixels.
#[allow(clippy::too_many_arguments)]
unsafe fn run<const P: usize>(
    isa: Isa,
    x: &[u8],
    step: usize,
    taps: &[usize],
    groups: usize,
    w: &[u8],
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]],
) {
    assert!(P <= isa.tile_pixels(), "{isa:?} tiles have at most {} pixels", isa.tile_pixels());
    let acc: &mut [[i32; OC_BLOCK]; P] = acc.try_into().expect("tile() dispatches on the length");
    let (x, w) = (x.as_ptr(), w.as_ptr());
    // SAFETY: the caller guarantees that this CPU has the ISA's features and that every read,
    // up to `(P - 1) * step + max(taps) + groups * 4` bytes of `x` and
    // `taps.len() * groups * 64` bytes of `w`, is in bounds. The 16-byte pixel loads cover
    // 4 whole k-groups of one tap, all inside that reach.
    unsafe {
        match isa {
            Isa::NeonI8mm => i8mm::<P>(x, step, taps, groups, w, init, acc),
            Isa::NeonDot => dot::<P>(x, step, taps, groups, w, init, acc),
            Isa::NeonMull => mull::<P>(x, step, taps, groups, w, init, acc),
            _ => unreachable!("{isa:?} is not an aarch64 kernel"),
        }
    }
}

/// The loop `SDOT` and `SUDOT` share: per tap, k-groups 4 at a time, each pixel's 16 bytes
/// loaded (and passed through `$prep`) once; per k-group, 4 weight vectors and, per pixel,
/// the by-element dot product `$dot` of each with that group's lane. A last partial set of
/// groups loads each pixel's 4 bytes into lane 0.
macro_rules! dot_loop {
    ($x:ident, $step:ident, $taps:ident, $groups:ident, $w:ident, $init:ident, $acc:ident, $prep:expr, $dot:literal) => {{
        let ip = $init.as_ptr();
        let start = [vld1q_s32(ip), vld1q_s32(ip.add(4)), vld1q_s32(ip.add(8)), vld1q_s32(ip.add(12))];
        let mut acc_v: [[int32x4_t; 4]; P] = [start; P];
        let mut offsets = [0usize; P];
        for (j, o) in offsets.iter_mut().enumerate() {
            *o = j * $step;
        }
        let prep = $prep;
        let mut wp = $w;
        macro_rules! group {
            ($xv:ident, $lane:literal) => {{
                let wv = [vld1q_u8(wp), vld1q_u8(wp.add(16)), vld1q_u8(wp.add(32)), vld1q_u8(wp.add(48))];
                wp = wp.add(WGROUP_BYTES);
                for j in 0..P {
                    for v in 0..4 {
                        asm!(concat!($dot, " {a:v}.4s, {w:v}.16b, {x:v}.4b[", $lane, "]"), a = inout(vreg) acc_v[j][v], w = in(vreg) wv[v], x = in(vreg) $xv[j], options(pure, nomem, nostack, preserves_flags));
                    }
                }
            }};
        }
        for &tap in $taps {
            let xt = $x.add(tap);
            let mut g = 0;
            while g + 4 <= $groups {
                let xg = xt.add(g * GROUP_BYTES);
                let mut xv = [vdupq_n_u8(0); P];
                for j in 0..P {
                    xv[j] = prep(vld1q_u8(xg.add(offsets[j])));
                }
                group!(xv, "0");
                group!(xv, "1");
                group!(xv, "2");
                group!(xv, "3");
                g += 4;
            }
            while g < $groups {
                let xg = xt.add(g * GROUP_BYTES);
                let mut xv = [vdupq_n_u8(0); P];
                for j in 0..P {
                    xv[j] = prep(vreinterpretq_u8_u32(vld1q_dup_u32(xg.add(offsets[j]) as *const u32)));
                }
                group!(xv, "0");
                g += 1;
            }
        }
        for j in 0..P {
            let p = $acc[j].as_mut_ptr();
            for v in 0..4 {
                vst1q_s32(p.add(4 * v), acc_v[j][v]);
            }
        }
    }};
}

/// `acc += sudot(w, x)`: four i8 x u8 products per lane (twin: [`crate::kernels::generic::tile::tile_quads`]).
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + groups *
/// 4` bytes and `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "neon,i8mm")]
#[allow(clippy::too_many_arguments)]
unsafe fn i8mm<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees the features and the reads (see `run`).
    unsafe { dot_loop!(x, step, taps, groups, w, init, acc, |v: uint8x16_t| v, "sudot") }
}

/// `acc += sdot(w, x - 128)` (twin: [`crate::kernels::generic::tile::tile_quads_shifted`]).
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + groups *
/// 4` bytes and `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "neon,dotprod")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees the features and the reads (see `run`).
    unsafe {
        let flip = vdupq_n_u8(0x80);
        dot_loop!(x, step, taps, groups, w, init, acc, |v: uint8x16_t| veorq_u8(v, flip), "sdot")
    }
}

/// `acc += (x - 128) . w` by `SMULL`/`SMLAL`/`SADALP` (twin:
/// [`crate::kernels::generic::tile::tile_quads_shifted`]). Per pixel, 8 accumulators: weight vector `v`'s
/// low half (channels `4v`, `4v + 1`) and high half (`4v + 2`, `4v + 3`), each lane the sum
/// of two of a channel's k; `ADDP` folds them at the end.
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + groups *
/// 4` bytes and `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "neon")]
#[allow(clippy::too_many_arguments)]
unsafe fn mull<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees the reads (see `run`); NEON is part of aarch64.
    unsafe {
        let flip = vdupq_n_u8(0x80);
        let mut acc_v: [[int32x4_t; 8]; P] = [[vdupq_n_s32(0); 8]; P];
        let mut offsets = [0usize; P];
        for (j, o) in offsets.iter_mut().enumerate() {
            *o = j * step;
        }
        // Pixel `j`'s 4 bytes of the group at `xg`, minus 128, in every 32-bit lane.
        let load = |xg: *const u8, j: usize| {
            vreinterpretq_s8_u8(veorq_u8(vreinterpretq_u8_u32(vld1q_dup_u32(xg.add(offsets[j]) as *const u32)), flip))
        };
        let mut wp = w;
        for &tap in taps {
            let xt = x.add(tap);
            let mut g = 0;
            while g + 2 <= groups {
                let (xg0, xg1) = (xt.add(g * GROUP_BYTES), xt.add((g + 1) * GROUP_BYTES));
                let mut x0 = [vdupq_n_s8(0); P];
                let mut x1 = [vdupq_n_s8(0); P];
                for j in 0..P {
                    x0[j] = load(xg0, j);
                    x1[j] = load(xg1, j);
                }
                for v in 0..4 {
                    let w0 = vld1q_s8(wp.add(16 * v) as *const i8);
                    let w1 = vld1q_s8(wp.add(WGROUP_BYTES + 16 * v) as *const i8);
                    for j in 0..P {
                        let lo = vmlal_s8(
                            vmull_s8(vget_low_s8(w0), vget_low_s8(x0[j])),
                            vget_low_s8(w1),
                            vget_low_s8(x1[j]),
                        );
                        let hi = vmlal_high_s8(vmull_high_s8(w0, x0[j]), w1, x1[j]);
                        acc_v[j][2 * v] = vpadalq_s16(acc_v[j][2 * v], lo);
                        acc_v[j][2 * v + 1] = vpadalq_s16(acc_v[j][2 * v + 1], hi);
                    }
                }
                wp = wp.add(2 * WGROUP_BYTES);
                g += 2;
            }
            if g < groups {
                let xg = xt.add(g * GROUP_BYTES);
                for v in 0..4 {
                    let w0 = vld1q_s8(wp.add(16 * v) as *const i8);
                    for (j, a) in acc_v.iter_mut().enumerate() {
                        let x0 = load(xg, j);
                        a[2 * v] = vpadalq_s16(a[2 * v], vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));
                        a[2 * v + 1] = vpadalq_s16(a[2 * v + 1], vmull_high_s8(w0, x0));
                    }
                }
                wp = wp.add(WGROUP_BYTES);
            }
        }
        let ip = init.as_ptr();
        for j in 0..P {
            let p = acc[j].as_mut_ptr();
            for v in 0..4 {
                let sums = vpaddq_s32(acc_v[j][2 * v], acc_v[j][2 * v + 1]);
                vst1q_s32(p.add(4 * v), vaddq_s32(sums, vld1q_s32(ip.add(4 * v))));
            }
        }
    }
}

/// `out[4 * j + t] = rows[t][j]`: 16 pixels of four channel planes into channels-last quads,
/// one `ST4` (twin: [`crate::kernels::pack::interleave4_scalar`]).
pub fn interleave4(rows: [&[u8; 16]; 4], out: &mut [u8; 64]) {
    // SAFETY: NEON is part of aarch64; each row is 16 readable bytes and `out` 64 writable
    // ones; these loads and stores have no alignment requirement.
    unsafe {
        let r = |t: usize| vld1q_u8(rows[t].as_ptr());
        vst4q_u8(out.as_mut_ptr(), uint8x16x4_t(r(0), r(1), r(2), r(3)));
    }
}

/// 16 pixels of two channel planes as little-endian u16 pairs `(rows[0][j], rows[1][j])`,
/// one `ST4` with zero planes (twin: [`crate::kernels::pack::interleave2_scalar`]).
pub fn interleave2(rows: [&[u8; 16]; 2], out: &mut [u8; 64]) {
    // SAFETY: as in `interleave4`.
    unsafe {
        let zero = vdupq_n_u8(0);
        vst4q_u8(out.as_mut_ptr(), uint8x16x4_t(vld1q_u8(rows[0].as_ptr()), zero, vld1q_u8(rows[1].as_ptr()), zero));
    }
}

/// `rows[o][j] = t[16 j + o]` for bytes, 16 pixels at a time: four rounds of the perfect
/// shuffle `x'[2k], x'[2k+1] = zip1/zip2(x[k], x[k+8])`, the SSE2 form's `unpacklo/hi` (twin:
/// [`crate::kernels::epilogue::transpose_scalar`]).
pub(super) fn transpose_u8(t: &[u8], rows: &mut [&mut [u8]]) {
    let n = rows.first().map_or(0, |r| r.len());
    assert!(rows.len() <= OC_BLOCK && rows.iter().all(|r| r.len() == n) && fits(t.len(), n.checked_mul(OC_BLOCK)));
    let full = n / 16 * 16;
    for j0 in (0..full).step_by(16) {
        // SAFETY: NEON is part of aarch64; reads are below `16 * full <= t.len()` and writes
        // below `full <= rows[o].len()` (asserted); these loads and stores need no alignment.
        unsafe {
            let mut x = [vdupq_n_u8(0); 16];
            for (i, x) in x.iter_mut().enumerate() {
                *x = vld1q_u8(t.as_ptr().add(OC_BLOCK * (j0 + i)));
            }
            for _ in 0..4 {
                let y = x;
                for k in 0..8 {
                    x[2 * k] = vzip1q_u8(y[k], y[k + 8]);
                    x[2 * k + 1] = vzip2q_u8(y[k], y[k + 8]);
                }
            }
            for (o, row) in rows.iter_mut().enumerate() {
                vst1q_u8(row.as_mut_ptr().add(j0), x[o]);
            }
        }
    }
    for (o, row) in rows.iter_mut().enumerate() {
        for j in full..n {
            row[j] = t[OC_BLOCK * j + o];
        }
    }
}

/// `rows[o][j] = t[16 j + o]` for floats, 4 pixels x 4 channels at a time through `TRN1/TRN2`
/// on 32- then 64-bit lanes (twin: [`crate::kernels::epilogue::transpose_scalar`]).
pub(super) fn transpose_f32(t: &[f32], rows: &mut [&mut [f32]]) {
    let n = rows.first().map_or(0, |r| r.len());
    assert!(rows.len() <= OC_BLOCK && rows.iter().all(|r| r.len() == n) && fits(t.len(), n.checked_mul(OC_BLOCK)));
    let full = n / 4 * 4;
    for j0 in (0..full).step_by(4) {
        for h in 0..rows.len().div_ceil(4) {
            // SAFETY: NEON is part of aarch64; reads are below `16 * full <= t.len()` and the
            // writes below `full <= rows[o].len()` (asserted); no alignment is required.
            unsafe {
                let r = |i: usize| vld1q_f32(t.as_ptr().add(OC_BLOCK * (j0 + i) + 4 * h));
                let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                let (t0, t1) = (vreinterpretq_f64_f32(vtrn1q_f32(r0, r1)), vreinterpretq_f64_f32(vtrn2q_f32(r0, r1)));
                let (t2, t3) = (vreinterpretq_f64_f32(vtrn1q_f32(r2, r3)), vreinterpretq_f64_f32(vtrn2q_f32(r2, r3)));
                let c = [vtrn1q_f64(t0, t2), vtrn1q_f64(t1, t3), vtrn2q_f64(t0, t2), vtrn2q_f64(t1, t3)];
                for (o, v) in c.into_iter().enumerate() {
                    if let Some(row) = rows.get_mut(4 * h + o) {
                        vst1q_f32(row.as_mut_ptr().add(j0), vreinterpretq_f32_f64(v));
                    }
                }
            }
        }
    }
    for (o, row) in rows.iter_mut().enumerate() {
        for j in full..n {
            row[j] = t[OC_BLOCK * j + o];
        }
    }
}
