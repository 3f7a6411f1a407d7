//! The convolution epilogue with explicit vectors along a pixel's 16 channels: one zmm on
//! AVX-512, two ymm halves on AVX2. (Left to itself, the compiler vectorized the portable
//! loop across pixels, with gathers and scatters.) Each step is the same IEEE operation, in
//! the same order, as in the scalar twin [`crate::kernels::epilogue::row_scalar`]: multiply then add
//! for the scale and bias, fused multiply-adds where [`crate::kernels::silu::exp_approx`] has
//! `mul_add`, and `min(hi, max(lo, x))` for `clamp`, operands in the order that passes a NaN
//! on as `f32::clamp` does. The tests compare the bits.

use std::arch::x86_64::*;

use crate::kernels::generic::epilogue::Affine;
use crate::kernels::quantize::{Quantizer, BYTE_BIAS, NEAR_HALF};
use crate::kernels::silu::{LN2_HI, LN2_LO, LOG2E, POLY, ROUND};
use crate::kernels::{fits, span, OC_BLOCK};

pub fn avx512_available() -> bool {
    use crate::kernels::cpu::{has, Feature::*};
    has(Avx512F) && has(Fma)
}

pub fn avx2_available() -> bool {
    use crate::kernels::cpu::{has, Feature::*};
    has(Avx2) && has(Fma)
}

/// Floats `acc * scale + bias` (then SiLU if `f.silu`), 16 channels a pixel, on AVX-512.
///
/// # Panics
/// If the CPU lacks AVX-512F or FMA.
pub fn row_f32_avx512(acc: &[[i32; OC_BLOCK]], f: &Affine, out: &mut [[f32; OC_BLOCK]]) {
    assert!(avx512_available());
    // SAFETY: the features are checked above; the function only touches `acc`, `f` and `out`
    // within their lengths.
    unsafe { f32_512(acc, f, out) }
}

/// Those floats quantized with `q`, pixel `j` at `out[j * stride..][..16]`, on AVX-512.
///
/// # Panics
/// If the CPU lacks AVX-512F or FMA, or `out` is too short for the pixels of `acc`.
pub fn row_u8_avx512(acc: &[[i32; OC_BLOCK]], f: &Affine, q: &Quantizer, out: &mut [u8], stride: usize) {
    assert!(avx512_available());
    assert!(fits(out.len(), span(acc.len(), stride, OC_BLOCK)), "{} bytes for {} pixels", out.len(), acc.len());
    // SAFETY: the features are checked above, and the writes, 16 bytes at each
    // `j * stride` for `j < acc.len()`, are within `out` (asserted).
    unsafe { u8_512(acc, f, q, out.as_mut_ptr(), stride) }
}

/// [`row_f32_avx512`] in two 8-lane halves per pixel, on AVX2.
///
/// # Panics
/// If the CPU lacks AVX2 or FMA.
pub fn row_f32_avx2(acc: &[[i32; OC_BLOCK]], f: &Affine, out: &mut [[f32; OC_BLOCK]]) {
    assert!(avx2_available());
    // SAFETY: as in `row_f32_avx512`.
    unsafe { f32_256(acc, f, out) }
}

/// [`row_u8_avx512`] on AVX2.
///
/// # Panics
/// If the CPU lacks AVX2 or FMA, or `out` is too short for the pixels of `acc`.
pub fn row_u8_avx2(acc: &[[i32; OC_BLOCK]], f: &Affine, q: &Quantizer, out: &mut [u8], stride: usize) {
    assert!(avx2_available());
    assert!(fits(out.len(), span(acc.len(), stride, OC_BLOCK)), "{} bytes for {} pixels", out.len(), acc.len());
    // SAFETY: as in `row_u8_avx512`.
    unsafe { u8_256(acc, f, q, out.as_mut_ptr(), stride) }
}

/// Floats of [`row_f32_avx512`] quantized with `q`, pixel `j` at `out[j * stride..][..16]`:
/// for several quantized outputs of one block, which share the floats.
///
/// # Panics
/// If the CPU lacks AVX-512F or FMA, or `out` is too short for the pixels of `y`.
pub fn quantize_avx512(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: &mut [u8], stride: usize) {
    assert!(avx512_available());
    assert!(fits(out.len(), span(y.len(), stride, OC_BLOCK)), "{} bytes for {} pixels", out.len(), y.len());
    // SAFETY: as in `row_u8_avx512`.
    unsafe { q_512(y, q, out.as_mut_ptr(), stride) }
}

/// [`quantize_avx512`] on AVX2.
///
/// # Panics
/// If the CPU lacks AVX2 or FMA, or `out` is too short for the pixels of `y`.
pub fn quantize_avx2(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: &mut [u8], stride: usize) {
    assert!(avx2_available());
    assert!(fits(out.len(), span(y.len(), stride, OC_BLOCK)), "{} bytes for {} pixels", out.len(), y.len());
    // SAFETY: as in `row_u8_avx512`.
    unsafe { q_256(y, q, out.as_mut_ptr(), stride) }
}

/// # Safety
/// The CPU has the target features; `out` is writable for 16 bytes at each `j * stride`, `j <
/// y.len()`.
#[target_feature(enable = "avx512f,fma")]
unsafe fn q_512(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: *mut u8, stride: usize) {
    // SAFETY: 16 floats in each `v`; the caller guarantees 16 writable bytes at each
    // `out + j * stride`.
    unsafe {
        for (j, v) in y.iter().enumerate() {
            let bytes = _mm512_cvtepi32_epi8(z::quantize(_mm512_loadu_ps(v.as_ptr()), q));
            _mm_storeu_si128(out.add(j * stride) as *mut __m128i, bytes);
        }
    }
}

/// # Safety
/// The CPU has the target features; `out` is writable for 16 bytes at each `j * stride`, `j <
/// y.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn q_256(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: *mut u8, stride: usize) {
    // SAFETY: as in `q_512`.
    unsafe {
        for (j, v) in y.iter().enumerate() {
            let bytes = y8::quantize_pixel(_mm256_loadu_ps(v.as_ptr()), _mm256_loadu_ps(v.as_ptr().add(8)), q);
            _mm_storeu_si128(out.add(j * stride) as *mut __m128i, bytes);
        }
    }
}

/// # Safety
/// The CPU has the target features.
#[target_feature(enable = "avx512f,fma")]
unsafe fn f32_512(acc: &[[i32; OC_BLOCK]], f: &Affine, out: &mut [[f32; OC_BLOCK]]) {
    // SAFETY: 16 lanes of `f.scale`, `f.bias`, each `a` and each `y`; unaligned accesses.
    unsafe {
        let (s, b) = (_mm512_loadu_ps(f.scale.as_ptr()), _mm512_loadu_ps(f.bias.as_ptr()));
        for (y, a) in out.iter_mut().zip(acc) {
            let v = z::affine(_mm512_loadu_si512(a.as_ptr() as *const _), s, b, f.silu);
            _mm512_storeu_ps(y.as_mut_ptr(), v);
        }
    }
}

/// # Safety
/// The CPU has the target features; `out` is writable for 16 bytes at each `j * stride`, `j <
/// acc.len()`.
#[target_feature(enable = "avx512f,fma")]
unsafe fn u8_512(acc: &[[i32; OC_BLOCK]], f: &Affine, q: &Quantizer, out: *mut u8, stride: usize) {
    // SAFETY: as in `f32_512`; the caller guarantees 16 writable bytes at each
    // `out + j * stride`.
    unsafe {
        let (s, b) = (_mm512_loadu_ps(f.scale.as_ptr()), _mm512_loadu_ps(f.bias.as_ptr()));
        for (j, a) in acc.iter().enumerate() {
            let y = z::affine(_mm512_loadu_si512(a.as_ptr() as *const _), s, b, f.silu);
            // Each lane's low byte is the value (see `z::finish`).
            _mm_storeu_si128(out.add(j * stride) as *mut __m128i, _mm512_cvtepi32_epi8(z::quantize(y, q)));
        }
    }
}

/// # Safety
/// The CPU has the target features.
#[target_feature(enable = "avx2,fma")]
unsafe fn f32_256(acc: &[[i32; OC_BLOCK]], f: &Affine, out: &mut [[f32; OC_BLOCK]]) {
    // SAFETY: as in `f32_512`, for lanes 0..8 and 8..16.
    unsafe {
        let (s0, s1) = (_mm256_loadu_ps(f.scale.as_ptr()), _mm256_loadu_ps(f.scale.as_ptr().add(8)));
        let (b0, b1) = (_mm256_loadu_ps(f.bias.as_ptr()), _mm256_loadu_ps(f.bias.as_ptr().add(8)));
        for (y, a) in out.iter_mut().zip(acc) {
            let p = a.as_ptr() as *const __m256i;
            _mm256_storeu_ps(y.as_mut_ptr(), y8::affine(_mm256_loadu_si256(p), s0, b0, f.silu));
            _mm256_storeu_ps(y.as_mut_ptr().add(8), y8::affine(_mm256_loadu_si256(p.add(1)), s1, b1, f.silu));
        }
    }
}

/// # Safety
/// The CPU has the target features; `out` is writable for 16 bytes at each `j * stride`, `j <
/// acc.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn u8_256(acc: &[[i32; OC_BLOCK]], f: &Affine, q: &Quantizer, out: *mut u8, stride: usize) {
    // SAFETY: as in `u8_512`.
    unsafe {
        let (s0, s1) = (_mm256_loadu_ps(f.scale.as_ptr()), _mm256_loadu_ps(f.scale.as_ptr().add(8)));
        let (b0, b1) = (_mm256_loadu_ps(f.bias.as_ptr()), _mm256_loadu_ps(f.bias.as_ptr().add(8)));
        for (j, a) in acc.iter().enumerate() {
            let p = a.as_ptr() as *const __m256i;
            let lo = y8::affine(_mm256_loadu_si256(p), s0, b0, f.silu);
            let hi = y8::affine(_mm256_loadu_si256(p.add(1)), s1, b1, f.silu);
            _mm_storeu_si128(out.add(j * stride) as *mut __m128i, y8::quantize_pixel(lo, hi, q));
        }
    }
}

/// One 16-lane zmm per pixel.
mod z {
    use super::*;

    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn clamp(x: __m512, lo: f32, hi: f32) -> __m512 {
        // vmaxps/vminps return their second operand when either is NaN: a NaN x passes.
        _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), x))
    }

    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn abs(x: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fff_ffff)))
    }

    /// [`crate::kernels::silu::silu_one`].
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn silu(y: __m512) -> __m512 {
        let neg = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(y), _mm512_set1_epi32(i32::MIN)));
        let x = clamp(neg, -87.0, 88.0);
        let round = _mm512_set1_ps(ROUND);
        let n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(LOG2E), round), round);
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x));
        let r2 = _mm512_mul_ps(r, r);
        let pair = |i: usize| _mm512_fmadd_ps(_mm512_set1_ps(POLY[i]), r, _mm512_set1_ps(POLY[i + 1]));
        let p = _mm512_fmadd_ps(_mm512_fmadd_ps(pair(0), r2, pair(2)), r2, pair(4));
        let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
        // e * 2^n in one step: exact like the twin's multiply by the power of two, which is
        // a normal float for n in [-126, 127].
        let s = _mm512_div_ps(y, _mm512_add_ps(_mm512_set1_ps(1.0), _mm512_scalef_ps(e, n)));
        let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(y, _mm512_set1_ps(-87.0));
        _mm512_maskz_mov_ps(!tiny, s)
    }

    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn affine(acc: __m512i, scale: __m512, bias: __m512, with_silu: bool) -> __m512 {
        let y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), scale, bias);
        if with_silu {
            silu(y)
        } else {
            y
        }
    }

    /// `finish` of [`crate::kernels::quantize`]: each lane's low byte is the value.
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    fn finish(r: __m512, zp: f32) -> __m512i {
        _mm512_castps_si512(_mm512_add_ps(
            clamp(_mm512_add_ps(r, _mm512_set1_ps(zp)), 0.0, 255.0),
            _mm512_set1_ps(BYTE_BIAS),
        ))
    }

    /// [`Quantizer::chunk`].
    #[inline]
    #[target_feature(enable = "avx512f,fma")]
    pub(super) fn quantize(y: __m512, q: &Quantizer) -> __m512i {
        // Round to nearest, ties to even (0x08: that mode, no precision exception).
        let fast = match q.inv {
            Some(inv) => {
                let quot = _mm512_mul_ps(y, _mm512_set1_ps(inv));
                let rounded = _mm512_roundscale_ps::<0x08>(quot);
                let from_int = abs(_mm512_sub_ps(quot, rounded));
                let near = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(from_int, _mm512_set1_ps(0.5 - NEAR_HALF));
                (near == 0).then_some(rounded)
            }
            None => None,
        };
        let rounded = match fast {
            Some(r) => r,
            None => _mm512_roundscale_ps::<0x08>(_mm512_div_ps(y, _mm512_set1_ps(q.scale))),
        };
        finish(rounded, q.zp)
    }
}

/// Two 8-lane ymm halves per pixel. The reciprocal shortcut is checked per half: for values
/// it accepts it gives the division's integer, so where the check is made does not change the
/// result.
mod y8 {
    use super::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn clamp(x: __m256, lo: f32, hi: f32) -> __m256 {
        // As on AVX-512: a NaN x passes.
        _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), x))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn abs(x: __m256) -> __m256 {
        _mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fff_ffff)))
    }

    /// [`crate::kernels::silu::silu_one`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn silu(y: __m256) -> __m256 {
        let neg = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(y), _mm256_set1_epi32(i32::MIN)));
        let x = clamp(neg, -87.0, 88.0);
        let round = _mm256_set1_ps(ROUND);
        // t = n + ROUND exactly, n an integer in [-126, 127].
        let t = _mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), round);
        let n = _mm256_sub_ps(t, round);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x));
        let r2 = _mm256_mul_ps(r, r);
        let pair = |i: usize| _mm256_fmadd_ps(_mm256_set1_ps(POLY[i]), r, _mm256_set1_ps(POLY[i + 1]));
        let p = _mm256_fmadd_ps(_mm256_fmadd_ps(pair(0), r2, pair(2)), r2, pair(4));
        let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        // The twin's 2^n, `(n + POW2_BIAS).to_bits() << 23`, from t's bits with an integer
        // add (off the float ports): t's low mantissa bits hold n + 2^22, and the shift drops
        // everything above n + 127.
        let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_castps_si256(t),
            _mm256_set1_epi32(127),
        )));
        let s = _mm256_div_ps(y, _mm256_add_ps(_mm256_set1_ps(1.0), _mm256_mul_ps(e, pow2)));
        let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(y, _mm256_set1_ps(-87.0));
        _mm256_andnot_ps(tiny, s)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn affine(acc: __m256i, scale: __m256, bias: __m256, with_silu: bool) -> __m256 {
        let y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), scale, bias);
        if with_silu {
            silu(y)
        } else {
            y
        }
    }

    /// [`Quantizer::chunk`] of one pixel (channels 0..8 in `lo`, 8..16 in `hi`), packed into
    /// its 16 bytes: one check of the reciprocal shortcut for the pixel, as the twin's.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn quantize_pixel(lo: __m256, hi: __m256, q: &Quantizer) -> __m128i {
        // Round to nearest, ties to even (0x08: that mode, no precision exception).
        let fast = q.inv.and_then(|inv| {
            let (ql, qh) = (_mm256_mul_ps(lo, _mm256_set1_ps(inv)), _mm256_mul_ps(hi, _mm256_set1_ps(inv)));
            let (rl, rh) = (_mm256_round_ps::<0x08>(ql), _mm256_round_ps::<0x08>(qh));
            let edge = _mm256_set1_ps(0.5 - NEAR_HALF);
            let near = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(abs(_mm256_sub_ps(ql, rl)), edge),
                _mm256_cmp_ps::<_CMP_GT_OQ>(abs(_mm256_sub_ps(qh, rh)), edge),
            );
            (_mm256_movemask_ps(near) == 0).then_some((rl, rh))
        });
        let (rl, rh) = fast.unwrap_or_else(|| {
            let scale = _mm256_set1_ps(q.scale);
            (_mm256_round_ps::<0x08>(_mm256_div_ps(lo, scale)), _mm256_round_ps::<0x08>(_mm256_div_ps(hi, scale)))
        });
        // `clamp(r + zp, 0, 255)` through the packs' saturation: r is integral, and past 2^30
        // it saturates to 255 either way; below -2^31, and for NaN, the conversion gives
        // i32::MIN, which saturates to 0, as the twin's clamp and byte do.
        let zp = _mm256_set1_epi32(q.zp as i32);
        let int =
            |r: __m256| _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_set1_ps(1_073_741_824.0), r)), zp);
        // To i16 then u8; the packs work within 128-bit lanes, so the 64-bit quarters are put
        // back in order in between.
        let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(int(rl), int(rh)));
        _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256::<1>(words))
    }
}
