//! The convolution epilogue on SSE4.1 for CPUs without FMA (the Celeron J / N of NAS boxes):
//! four xmm of four channels per pixel, each multiply-add a `mulps` then an `addps` as the
//! unfused twin ([`crate::kernels::generic::epilogue::row_with`]`::<false>`) does them, in
//! its order, so the bits are the twin's (tested). The portable loop compiled for SSE4.1 kept
//! a pixel's 16 lanes of every intermediate live at once and spent most of its instructions
//! moving them between registers and the stack: 18% of the SSE int8 time on the COCO yolov8n.

use std::arch::x86_64::*;

use crate::kernels::generic::epilogue::{Affine, Dest};
use crate::kernels::quantize::{Quantizer, BYTE_BIAS, NEAR_HALF};
use crate::kernels::silu::{LN2_HI, LN2_LO, LOG2E, POLY, POW2_BIAS, ROUND};
use crate::kernels::OC_BLOCK;

pub fn available() -> bool {
    crate::kernels::cpu::has(crate::kernels::cpu::Feature::Sse41)
}

/// [`crate::kernels::epilogue::row`] on SSE4.1, unfused.
///
/// # Panics
/// If the CPU lacks SSE4.1, or `dest` cannot hold the pixels of `acc`.
pub fn row(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
    assert!(available());
    dest.check(acc.len());
    // SAFETY: SSE4.1 is available (asserted); `dest` holds the pixels of `acc` (checked): 16
    // floats per pixel, or 16 bytes at each `j * stride`.
    unsafe {
        match dest {
            Dest::F32(out) => f32_row(acc, f, out),
            Dest::U8 { out, stride, q } => u8_row(acc, f, &q, out.as_mut_ptr(), stride),
        }
    }
}

/// [`crate::kernels::epilogue::quantize_pixels`] on SSE4.1.
///
/// # Panics
/// If the CPU lacks SSE4.1, or `out` cannot hold the pixels of `y`.
pub fn quantize(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: &mut [u8], stride: usize) {
    assert!(available());
    Dest::U8 { out: &mut *out, stride, q: *q }.check(y.len());
    // SAFETY: as in `row`.
    unsafe {
        for (j, v) in y.iter().enumerate() {
            let p: [__m128; 4] = std::array::from_fn(|i| _mm_loadu_ps(v.as_ptr().add(4 * i)));
            store(out.as_mut_ptr().add(j * stride), quantize_pixel(p, q));
        }
    }
}

/// # Safety
/// The CPU has the target features.
#[target_feature(enable = "sse4.1")]
unsafe fn f32_row(acc: &[[i32; OC_BLOCK]], f: &Affine, out: &mut [[f32; OC_BLOCK]]) {
    // SAFETY: 16 lanes in each `a` and `y`; unaligned accesses.
    unsafe {
        for (y, a) in out.iter_mut().zip(acc) {
            for (i, v) in pixel(a, f).into_iter().enumerate() {
                _mm_storeu_ps(y.as_mut_ptr().add(4 * i), v);
            }
        }
    }
}

/// # Safety
/// The CPU has the target features; `out` is writable for 16 bytes at each `j * stride`, `j <
/// acc.len()`.
#[target_feature(enable = "sse4.1")]
unsafe fn u8_row(acc: &[[i32; OC_BLOCK]], f: &Affine, q: &Quantizer, out: *mut u8, stride: usize) {
    // SAFETY: the caller guarantees 16 writable bytes at each `out + j * stride`.
    unsafe {
        for (j, a) in acc.iter().enumerate() {
            store(out.add(j * stride), quantize_pixel(pixel(a, f), q));
        }
    }
}

/// `acc * scale + bias`, then SiLU if `f.silu`, for one pixel.
#[inline]
#[target_feature(enable = "sse4.1")]
fn pixel(a: &[i32; OC_BLOCK], f: &Affine) -> [__m128; 4] {
    std::array::from_fn(|i| {
        // SAFETY: lanes 4 i..4 i + 4 of 16-lane arrays; unaligned loads.
        let (acc, s, b) = unsafe {
            (
                _mm_loadu_si128(a.as_ptr().add(4 * i) as *const __m128i),
                _mm_loadu_ps(f.scale.as_ptr().add(4 * i)),
                _mm_loadu_ps(f.bias.as_ptr().add(4 * i)),
            )
        };
        let y = madd(_mm_cvtepi32_ps(acc), s, b);
        if f.silu {
            silu(y)
        } else {
            y
        }
    })
}

/// `a * b + c`, rounded twice (the twin's `madd::<false>`).
#[inline]
#[target_feature(enable = "sse4.1")]
fn madd(a: __m128, b: __m128, c: __m128) -> __m128 {
    _mm_add_ps(_mm_mul_ps(a, b), c)
}

#[inline]
#[target_feature(enable = "sse4.1")]
fn clamp(x: __m128, lo: f32, hi: f32) -> __m128 {
    // minps/maxps return their second operand when either is NaN: a NaN x passes, as in
    // `f32::clamp`.
    _mm_min_ps(_mm_set1_ps(hi), _mm_max_ps(_mm_set1_ps(lo), x))
}

/// [`crate::kernels::silu::silu_one`]`::<false>`.
#[inline]
#[target_feature(enable = "sse4.1")]
fn silu(y: __m128) -> __m128 {
    let c = _mm_set1_ps;
    let x = clamp(_mm_xor_ps(y, c(-0.0)), -87.0, 88.0);
    let n = _mm_sub_ps(madd(x, c(LOG2E), c(ROUND)), c(ROUND));
    let r = madd(n, c(-LN2_LO), madd(n, c(-LN2_HI), x));
    let r2 = _mm_mul_ps(r, r);
    let pair = |i: usize| madd(c(POLY[i]), r, c(POLY[i + 1]));
    let p = madd(madd(pair(0), r2, pair(2)), r2, pair(4));
    let e = _mm_add_ps(madd(p, r2, r), c(1.0));
    let pow2 = _mm_castsi128_ps(_mm_slli_epi32::<23>(_mm_castps_si128(_mm_add_ps(n, c(POW2_BIAS)))));
    let s = _mm_div_ps(y, _mm_add_ps(c(1.0), _mm_mul_ps(e, pow2)));
    _mm_andnot_ps(_mm_cmplt_ps(y, c(-87.0)), s)
}

/// [`Quantizer::chunk`] of one pixel: each lane's low byte is the value.
#[inline]
#[target_feature(enable = "sse4.1")]
fn quantize_pixel(y: [__m128; 4], q: &Quantizer) -> [__m128i; 4] {
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    let fast = q.inv.and_then(|inv| {
        let quot = y.map(|v| _mm_mul_ps(v, _mm_set1_ps(inv)));
        let rounded = quot.map(|v| _mm_round_ps::<NEAREST>(v));
        let mut near = _mm_setzero_ps();
        for (&q, &r) in quot.iter().zip(&rounded) {
            // |q - r| > 0.5 - NEAR_HALF, the sign cleared by the and.
            let from_int = _mm_and_ps(_mm_sub_ps(q, r), _mm_castsi128_ps(_mm_set1_epi32(0x7fff_ffff)));
            near = _mm_or_ps(near, _mm_cmpgt_ps(from_int, _mm_set1_ps(0.5 - NEAR_HALF)));
        }
        (_mm_movemask_ps(near) == 0).then_some(rounded)
    });
    let rounded = fast.unwrap_or_else(|| y.map(|v| _mm_round_ps::<NEAREST>(_mm_div_ps(v, _mm_set1_ps(q.scale)))));
    rounded.map(|r| {
        _mm_castps_si128(_mm_add_ps(clamp(_mm_add_ps(r, _mm_set1_ps(q.zp)), 0.0, 255.0), _mm_set1_ps(BYTE_BIAS)))
    })
}

/// The low bytes of a pixel's 16 lanes, in order, to `out`.
///
/// # Safety
/// `out` is writable for 16 bytes.
#[inline]
#[target_feature(enable = "sse4.1")]
unsafe fn store(out: *mut u8, v: [__m128i; 4]) {
    let low = _mm_set1_epi32(0xff);
    let b = v.map(|v| _mm_and_si128(v, low));
    let bytes = _mm_packus_epi16(_mm_packus_epi32(b[0], b[1]), _mm_packus_epi32(b[2], b[3]));
    // SAFETY: the caller guarantees 16 writable bytes; storeu needs no alignment.
    unsafe { _mm_storeu_si128(out as *mut __m128i, bytes) }
}
