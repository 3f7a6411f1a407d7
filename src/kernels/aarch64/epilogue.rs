//! The convolution epilogue on NEON: a pixel's 16 channels as four 4-lane vectors. Each step
//! is the same IEEE operation, in the same order, as in the portable twin
//! [`crate::kernels::generic::epilogue::row_scalar`] (which the compiler vectorizes across
//! pixels, with gathers, when left to itself): multiply then add for the scale and bias,
//! `FMLA` where [`crate::kernels::silu::exp_approx`] has `mul_add`, `FRINTN` for
//! `round_ties_even`, `FMAX`/`FMIN` for `clamp`. The tests compare the bits.

use std::arch::aarch64::*;

use crate::kernels::generic::epilogue::Affine;
use crate::kernels::quantize::{Quantizer, BYTE_BIAS, NEAR_HALF};
use crate::kernels::silu::{LN2_HI, LN2_LO, LOG2E, POLY, POW2_BIAS, ROUND};
use crate::kernels::{fits, span, OC_BLOCK};

/// Floats `acc * scale + bias` (then SiLU if `f.silu`), 16 channels a pixel.
pub fn row_f32(acc: &[[i32; OC_BLOCK]], f: &Affine, out: &mut [[f32; OC_BLOCK]]) {
    // SAFETY: NEON is part of aarch64; 16 lanes of `f.scale`, `f.bias`, each `a` and each `y`
    // are read and written; these loads and stores need no alignment.
    unsafe {
        let (s, b) = (quarters(f.scale.as_ptr()), quarters(f.bias.as_ptr()));
        for (y, a) in out.iter_mut().zip(acc) {
            for h in 0..4 {
                vst1q_f32(y.as_mut_ptr().add(4 * h), affine(vld1q_s32(a.as_ptr().add(4 * h)), s[h], b[h], f.silu));
            }
        }
    }
}

/// Those floats quantized with `q`, pixel `j` at `out[j * stride..][..16]`.
///
/// # Panics
/// If `out` is too short for the pixels of `acc`.
pub fn row_u8(acc: &[[i32; OC_BLOCK]], f: &Affine, q: &Quantizer, out: &mut [u8], stride: usize) {
    assert!(fits(out.len(), span(acc.len(), stride, OC_BLOCK)), "{} bytes for {} pixels", out.len(), acc.len());
    // SAFETY: as in `row_f32`; the writes, 16 bytes at each `j * stride` for
    // `j < acc.len()`, are within `out` (asserted).
    unsafe {
        let (s, b) = (quarters(f.scale.as_ptr()), quarters(f.bias.as_ptr()));
        let out = out.as_mut_ptr();
        for (j, a) in acc.iter().enumerate() {
            let y: [float32x4_t; 4] =
                std::array::from_fn(|h| affine(vld1q_s32(a.as_ptr().add(4 * h)), s[h], b[h], f.silu));
            vst1q_u8(out.add(j * stride), quantize(y, q));
        }
    }
}

/// Floats quantized with `q`, pixel `j` at `out[j * stride..][..16]`: for several quantized
/// outputs of one block, which share the floats.
///
/// # Panics
/// If `out` is too short for the pixels of `y`.
pub fn quantize_pixels(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: &mut [u8], stride: usize) {
    assert!(fits(out.len(), span(y.len(), stride, OC_BLOCK)), "{} bytes for {} pixels", out.len(), y.len());
    // SAFETY: 16 floats in each `v`; the writes are within `out` (asserted).
    unsafe {
        let out = out.as_mut_ptr();
        for (j, v) in y.iter().enumerate() {
            vst1q_u8(out.add(j * stride), quantize(quarters(v.as_ptr()), q));
        }
    }
}

/// 16 floats as four vectors.
///
/// # Safety
/// `p` must point to 16 readable floats.
#[inline(always)]
unsafe fn quarters(p: *const f32) -> [float32x4_t; 4] {
    // SAFETY: the caller guarantees the 16 floats.
    unsafe { [vld1q_f32(p), vld1q_f32(p.add(4)), vld1q_f32(p.add(8)), vld1q_f32(p.add(12))] }
}

#[inline(always)]
fn clamp(x: float32x4_t, lo: f32, hi: f32) -> float32x4_t {
    // SAFETY: NEON is part of aarch64. FMAX/FMIN pass a NaN x on, as `f32::clamp` does.
    unsafe { vminq_f32(vdupq_n_f32(hi), vmaxq_f32(vdupq_n_f32(lo), x)) }
}

/// `a * b + c`, rounded once, as `f32::mul_add(a, b, c)`.
#[inline(always)]
fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of aarch64.
    unsafe { vfmaq_f32(c, a, b) }
}

/// [`crate::kernels::silu::silu_one`].
#[inline(always)]
fn silu(y: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of aarch64.
    unsafe {
        let x = clamp(vnegq_f32(y), -87.0, 88.0);
        let round = vdupq_n_f32(ROUND);
        let n = vsubq_f32(fma(x, vdupq_n_f32(LOG2E), round), round);
        let r = fma(n, vdupq_n_f32(-LN2_LO), fma(n, vdupq_n_f32(-LN2_HI), x));
        let r2 = vmulq_f32(r, r);
        let pair = |i: usize| fma(vdupq_n_f32(POLY[i]), r, vdupq_n_f32(POLY[i + 1]));
        let p = fma(fma(pair(0), r2, pair(2)), r2, pair(4));
        let e = vaddq_f32(fma(p, r2, r), vdupq_n_f32(1.0));
        let pow2 =
            vreinterpretq_f32_u32(vshlq_n_u32::<23>(vreinterpretq_u32_f32(vaddq_f32(n, vdupq_n_f32(POW2_BIAS)))));
        let s = vdivq_f32(y, vaddq_f32(vdupq_n_f32(1.0), vmulq_f32(e, pow2)));
        let tiny = vcltq_f32(y, vdupq_n_f32(-87.0));
        vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(s), tiny))
    }
}

#[inline(always)]
fn affine(acc: int32x4_t, scale: float32x4_t, bias: float32x4_t, with_silu: bool) -> float32x4_t {
    // SAFETY: NEON is part of aarch64.
    let y = fma(unsafe { vcvtq_f32_s32(acc) }, scale, bias);
    if with_silu {
        silu(y)
    } else {
        y
    }
}

/// [`Quantizer::chunk`] of one pixel: the reciprocal's quotients unless one of the 16 is near
/// a rounding tie, then the division's; the 16 bytes in order.
#[inline(always)]
fn quantize(y: [float32x4_t; 4], q: &Quantizer) -> uint8x16_t {
    // SAFETY: NEON is part of aarch64.
    unsafe {
        let fast = q.inv.and_then(|inv| {
            let quot = y.map(|v| vmulq_n_f32(v, inv));
            let rounded = quot.map(|v| vrndnq_f32(v));
            let limit = vdupq_n_f32(0.5 - NEAR_HALF);
            let near = (0..4)
                .fold(vdupq_n_u32(0), |m, h| vorrq_u32(m, vcgtq_f32(vabsq_f32(vsubq_f32(quot[h], rounded[h])), limit)));
            (vmaxvq_u32(near) == 0).then_some(rounded)
        });
        let rounded = fast.unwrap_or_else(|| y.map(|v| vrndnq_f32(vdivq_f32(v, vdupq_n_f32(q.scale)))));
        // `finish`: each lane's low byte is the value.
        let lanes = rounded.map(|r| {
            vreinterpretq_u32_f32(vaddq_f32(clamp(vaddq_f32(r, vdupq_n_f32(q.zp)), 0.0, 255.0), vdupq_n_f32(BYTE_BIAS)))
        });
        let lo = vcombine_u16(vmovn_u32(lanes[0]), vmovn_u32(lanes[1]));
        let hi = vcombine_u16(vmovn_u32(lanes[2]), vmovn_u32(lanes[3]));
        vcombine_u8(vmovn_u16(lo), vmovn_u16(hi))
    }
}
