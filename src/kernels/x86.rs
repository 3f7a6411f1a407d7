//! AVX2 and VNNI micro-kernels (x86_64). Each is the SIMD form of a twin in
//! [`super::scalar`]; callers go through [`super::tile`], which checks the CPU features and
//! the operand lengths.

use std::arch::x86_64::*;

use super::{Isa, GROUP_BYTES, OC_BLOCK, WGROUP_BYTES};

pub fn vnni_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512vl")
}

pub fn vnni512_available() -> bool {
    std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512f")
}

/// Runs one tile of 1 to [`super::PX`] pixels on a SIMD `isa`. `x` starts at the tile's
/// first pixel.
pub(super) fn tile(isa: Isa, x: &[u8], step: usize, taps: &[usize], groups: usize, w: &[u8], acc: &mut [[i32; OC_BLOCK]]) {
    match acc.len() {
        1 => run::<1>(isa, x, step, taps, groups, w, acc),
        2 => run::<2>(isa, x, step, taps, groups, w, acc),
        3 => run::<3>(isa, x, step, taps, groups, w, acc),
        4 => run::<4>(isa, x, step, taps, groups, w, acc),
        5 => run::<5>(isa, x, step, taps, groups, w, acc),
        6 => run::<6>(isa, x, step, taps, groups, w, acc),
        n => panic!("a tile has 1 to {} pixels, not {n}", super::PX),
    }
}

fn run<const P: usize>(isa: Isa, x: &[u8], step: usize, taps: &[usize], groups: usize, w: &[u8], acc: &mut [[i32; OC_BLOCK]]) {
    let acc: &mut [[i32; OC_BLOCK]; P] = acc.try_into().expect("tile() dispatches on the length");
    let (x, w) = (x.as_ptr(), w.as_ptr());
    // SAFETY: `super::tile` checked that this CPU has the ISA's features and that every read,
    // up to `(P - 1) * step + max(taps) + groups * 4` bytes of `x` and
    // `taps.len() * groups * 64` bytes of `w`, is in bounds.
    unsafe {
        match isa {
            Isa::Avx512Vnni => vnni512::<P>(x, step, taps, groups, w, acc),
            Isa::AvxVnni => vnni::<P>(x, step, taps, groups, w, acc),
            Isa::Avx2Maddubs => maddubs::<P>(x, step, taps, groups, w, acc),
            Isa::Avx2Madd16 => madd16::<P>(x, step, taps, groups, w, acc),
            Isa::ScalarPairs | Isa::ScalarQuads => unreachable!("scalar kernels are not in this module"),
        }
    }
}

/// The loop the three kernels share: per tap and k-group, two weight vectors (channels 0..8,
/// 8..16) and one 32-bit broadcast per pixel, folded into the accumulators by `$mac`.
macro_rules! kernel_loop {
    ($x:ident, $step:ident, $taps:ident, $groups:ident, $w:ident, $acc:ident, |$a:ident, $b:ident, $wv:ident| $mac:expr) => {{
        let mut acc_v: [[__m256i; 2]; P] = std::array::from_fn(|j| {
            let p = $acc[j].as_ptr() as *const __m256i;
            [_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))]
        });
        let offsets: [usize; P] = std::array::from_fn(|j| j * $step);
        let mut wp = $w;
        for &tap in $taps {
            let xt = $x.add(tap);
            for g in 0..$groups {
                let w0 = _mm256_loadu_si256(wp as *const __m256i);
                let w1 = _mm256_loadu_si256(wp.add(32) as *const __m256i);
                wp = wp.add(WGROUP_BYTES);
                let xg = xt.add(g * GROUP_BYTES);
                for j in 0..P {
                    let $b = _mm256_set1_epi32((xg.add(offsets[j]) as *const i32).read_unaligned());
                    let ($a, $wv) = (acc_v[j][0], w0);
                    acc_v[j][0] = $mac;
                    let ($a, $wv) = (acc_v[j][1], w1);
                    acc_v[j][1] = $mac;
                }
            }
        }
        for j in 0..P {
            let p = $acc[j].as_mut_ptr() as *mut __m256i;
            _mm256_storeu_si256(p, acc_v[j][0]);
            _mm256_storeu_si256(p.add(1), acc_v[j][1]);
        }
    }};
}

/// `acc += dpbusd(x, w)`: four u8 x s8 products per lane (twin: [`super::scalar::tile_quads`]).
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
unsafe fn vnni<const P: usize>(x: *const u8, step: usize, taps: &[usize], groups: usize, w: *const u8, acc: &mut [[i32; OC_BLOCK]; P]) {
    // SAFETY: the caller guarantees the features and the reads (see `run`).
    unsafe { kernel_loop!(x, step, taps, groups, w, acc, |a, b, wv| _mm256_dpbusd_epi32(a, b, wv)) }
}

/// `acc += dpbusd(x, w)` with 512-bit vectors: one vector holds the block's 16 channels, so
/// a k-group is one weight load and one instruction per pixel (twin:
/// [`super::scalar::tile_quads`]).
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn vnni512<const P: usize>(x: *const u8, step: usize, taps: &[usize], groups: usize, w: *const u8, acc: &mut [[i32; OC_BLOCK]; P]) {
    // SAFETY: the caller guarantees the features and the reads (see `run`).
    unsafe {
        let mut acc_v: [__m512i; P] = std::array::from_fn(|j| _mm512_loadu_si512(acc[j].as_ptr() as *const _));
        let offsets: [usize; P] = std::array::from_fn(|j| j * step);
        let mut wp = w;
        for &tap in taps {
            let xt = x.add(tap);
            for g in 0..groups {
                let wv = _mm512_loadu_si512(wp as *const _);
                wp = wp.add(WGROUP_BYTES);
                let xg = xt.add(g * GROUP_BYTES);
                for j in 0..P {
                    let b = _mm512_set1_epi32((xg.add(offsets[j]) as *const i32).read_unaligned());
                    acc_v[j] = _mm512_dpbusd_epi32(acc_v[j], b, wv);
                }
            }
        }
        for j in 0..P {
            _mm512_storeu_si512(acc[j].as_mut_ptr() as *mut _, acc_v[j]);
        }
    }
}

/// `acc += maddubs(x, w)` widened to i32 (twin: [`super::scalar::tile_quads`]); exact for
/// `|w| <= 63` only.
#[target_feature(enable = "avx2")]
unsafe fn maddubs<const P: usize>(x: *const u8, step: usize, taps: &[usize], groups: usize, w: *const u8, acc: &mut [[i32; OC_BLOCK]; P]) {
    // SAFETY: the caller guarantees AVX2 and the reads (see `run`).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        kernel_loop!(x, step, taps, groups, w, acc, |a, b, wv| _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(b, wv), ones)))
    }
}

/// `acc += madd16(x, w)` on u16/i16 pairs (twin: [`super::scalar::tile_pairs`]).
#[target_feature(enable = "avx2")]
unsafe fn madd16<const P: usize>(x: *const u8, step: usize, taps: &[usize], groups: usize, w: *const u8, acc: &mut [[i32; OC_BLOCK]; P]) {
    // SAFETY: the caller guarantees AVX2 and the reads (see `run`).
    unsafe { kernel_loop!(x, step, taps, groups, w, acc, |a, b, wv| _mm256_add_epi32(a, _mm256_madd_epi16(b, wv))) }
}

/// `out[4 * j + t] = rows[t][j]`: 16 pixels of four channel planes into channels-last quads
/// (SSE2, part of x86_64). Twin: [`super::pack::interleave4_scalar`].
pub fn interleave4(rows: [&[u8; 16]; 4], out: &mut [u8; 64]) {
    // SAFETY: SSE2 is part of x86_64; each row is 16 readable bytes and `out` 64 writable
    // ones; loadu/storeu have no alignment requirement.
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

/// 16 pixels of two channel planes as little-endian u16 pairs `(rows[0][j], rows[1][j])`
/// (SSE2). Twin: [`super::pack::interleave2_scalar`].
pub fn interleave2(rows: [&[u8; 16]; 2], out: &mut [u8; 64]) {
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
