//! AVX2 and VNNI micro-kernels (x86_64). Each is the SIMD form of a twin in
//! [`super::scalar`]; callers go through [`super::tile`], which checks the CPU features.

use std::arch::x86_64::*;

use super::{MR, NR};

pub fn vnni_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512vl")
}

/// `acc += madd16(w, x)` over `kg` k-pairs (twin: [`super::scalar::tile_pairs`]).
pub fn tile_madd16(kg: usize, w: &[u8], x: &[u8], acc: &mut [i32; MR * NR]) {
    debug_assert!(w.len() >= kg * MR * 4 && x.len() >= kg * NR * 4);
    // SAFETY: `tile` checked AVX2 is available and the operand lengths for `kg` groups.
    unsafe { madd16(kg, w.as_ptr(), x.as_ptr(), acc) }
}

/// `acc += maddubs(x, w)` over `kg` k-quads (twin: [`super::scalar::tile_quads`]); exact for
/// `|w| <= 63` only.
pub fn tile_maddubs(kg: usize, w: &[u8], x: &[u8], acc: &mut [i32; MR * NR]) {
    debug_assert!(w.len() >= kg * MR * 4 && x.len() >= kg * NR * 4);
    // SAFETY: `tile` checked AVX2 is available and the operand lengths for `kg` groups.
    unsafe { maddubs(kg, w.as_ptr(), x.as_ptr(), acc) }
}

/// `acc += dpbusd(x, w)` over `kg` k-quads (twin: [`super::scalar::tile_quads`]).
pub fn tile_vnni(kg: usize, w: &[u8], x: &[u8], acc: &mut [i32; MR * NR]) {
    debug_assert!(w.len() >= kg * MR * 4 && x.len() >= kg * NR * 4);
    // SAFETY: `tile` checked AVX512-VNNI and AVX512-VL are available and the operand lengths.
    unsafe { vnni(kg, w.as_ptr(), x.as_ptr(), acc) }
}

/// Loads the tile's accumulators: row `r` is two 8-lane vectors (pixels 0..8, 8..16).
#[inline(always)]
unsafe fn load_acc(acc: &[i32; MR * NR]) -> [[__m256i; 2]; MR] {
    let p = acc.as_ptr();
    // SAFETY: `MR * NR` i32 are readable; loadu has no alignment requirement.
    unsafe {
        std::array::from_fn(|r| {
            [_mm256_loadu_si256(p.add(r * NR) as *const __m256i), _mm256_loadu_si256(p.add(r * NR + 8) as *const __m256i)]
        })
    }
}

#[inline(always)]
unsafe fn store_acc(acc: &mut [i32; MR * NR], v: &[[__m256i; 2]; MR]) {
    let p = acc.as_mut_ptr();
    for (r, row) in v.iter().enumerate() {
        // SAFETY: `MR * NR` i32 are writable; storeu has no alignment requirement.
        unsafe {
            _mm256_storeu_si256(p.add(r * NR) as *mut __m256i, row[0]);
            _mm256_storeu_si256(p.add(r * NR + 8) as *mut __m256i, row[1]);
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn madd16(kg: usize, w: *const u8, x: *const u8, acc: &mut [i32; MR * NR]) {
    // SAFETY: the caller guarantees AVX2 and `kg * MR * 4` bytes at `w`, `kg * NR * 4` at `x`.
    unsafe {
        let mut a = load_acc(acc);
        for g in 0..kg {
            let xp = x.add(g * NR * 4);
            let x0 = _mm256_loadu_si256(xp as *const __m256i);
            let x1 = _mm256_loadu_si256(xp.add(32) as *const __m256i);
            let wp = w.add(g * MR * 4) as *const i32;
            for (r, row) in a.iter_mut().enumerate() {
                let wb = _mm256_set1_epi32(wp.add(r).read_unaligned());
                row[0] = _mm256_add_epi32(row[0], _mm256_madd_epi16(wb, x0));
                row[1] = _mm256_add_epi32(row[1], _mm256_madd_epi16(wb, x1));
            }
        }
        store_acc(acc, &a);
    }
}

#[target_feature(enable = "avx2")]
unsafe fn maddubs(kg: usize, w: *const u8, x: *const u8, acc: &mut [i32; MR * NR]) {
    // SAFETY: the caller guarantees AVX2 and `kg * MR * 4` bytes at `w`, `kg * NR * 4` at `x`.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut a = load_acc(acc);
        for g in 0..kg {
            let xp = x.add(g * NR * 4);
            let x0 = _mm256_loadu_si256(xp as *const __m256i);
            let x1 = _mm256_loadu_si256(xp.add(32) as *const __m256i);
            let wp = w.add(g * MR * 4) as *const i32;
            for (r, row) in a.iter_mut().enumerate() {
                let wb = _mm256_set1_epi32(wp.add(r).read_unaligned());
                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(x0, wb), ones);
                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(x1, wb), ones);
                row[0] = _mm256_add_epi32(row[0], p0);
                row[1] = _mm256_add_epi32(row[1], p1);
            }
        }
        store_acc(acc, &a);
    }
}

#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
unsafe fn vnni(kg: usize, w: *const u8, x: *const u8, acc: &mut [i32; MR * NR]) {
    // SAFETY: the caller guarantees the features and `kg * MR * 4` bytes at `w`, `kg * NR * 4` at `x`.
    unsafe {
        let mut a = load_acc(acc);
        for g in 0..kg {
            let xp = x.add(g * NR * 4);
            let x0 = _mm256_loadu_si256(xp as *const __m256i);
            let x1 = _mm256_loadu_si256(xp.add(32) as *const __m256i);
            let wp = w.add(g * MR * 4) as *const i32;
            for (r, row) in a.iter_mut().enumerate() {
                let wb = _mm256_set1_epi32(wp.add(r).read_unaligned());
                row[0] = _mm256_dpbusd_epi32(row[0], x0, wb);
                row[1] = _mm256_dpbusd_epi32(row[1], x1, wb);
            }
        }
        store_acc(acc, &a);
    }
}

/// `out[4 * j + t] = rows[t][j]`: four k-rows of a panel into quads (SSE2, part of x86_64).
/// Twin: [`super::pack::interleave4_scalar`].
pub fn interleave4(rows: &[[u8; NR]; 4], out: &mut [u8]) {
    assert!(out.len() >= 4 * NR);
    // SAFETY: SSE2 is part of x86_64; `rows` holds 4 x 16 readable bytes and `out` at least
    // 64 writable bytes (asserted); loadu/storeu have no alignment requirement.
    unsafe {
        let r = |t: usize| _mm_loadu_si128(rows[t].as_ptr() as *const __m128i);
        let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
        let (lo01, hi01) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
        let (lo23, hi23) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));
        let p = out.as_mut_ptr() as *mut __m128i;
        _mm_storeu_si128(p, _mm_unpacklo_epi16(lo01, lo23));
        _mm_storeu_si128(p.add(1), _mm_unpackhi_epi16(lo01, lo23));
        _mm_storeu_si128(p.add(2), _mm_unpacklo_epi16(hi01, hi23));
        _mm_storeu_si128(p.add(3), _mm_unpackhi_epi16(hi01, hi23));
    }
}

/// `out` as i16 pairs: `(rows[0][j], rows[1][j])` zero-extended (SSE2). Twin:
/// [`super::pack::interleave2_scalar`].
pub fn interleave2(rows: &[[u8; NR]; 4], out: &mut [u8]) {
    assert!(out.len() >= 4 * NR);
    // SAFETY: as in `interleave4`.
    unsafe {
        let zero = _mm_setzero_si128();
        let r0 = _mm_loadu_si128(rows[0].as_ptr() as *const __m128i);
        let r1 = _mm_loadu_si128(rows[1].as_ptr() as *const __m128i);
        let (a_lo, a_hi) = (_mm_unpacklo_epi8(r0, zero), _mm_unpackhi_epi8(r0, zero));
        let (b_lo, b_hi) = (_mm_unpacklo_epi8(r1, zero), _mm_unpackhi_epi8(r1, zero));
        let p = out.as_mut_ptr() as *mut __m128i;
        _mm_storeu_si128(p, _mm_unpacklo_epi16(a_lo, b_lo));
        _mm_storeu_si128(p.add(1), _mm_unpackhi_epi16(a_lo, b_lo));
        _mm_storeu_si128(p.add(2), _mm_unpacklo_epi16(a_hi, b_hi));
        _mm_storeu_si128(p.add(3), _mm_unpackhi_epi16(a_hi, b_hi));
    }
}
