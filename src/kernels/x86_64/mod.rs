//! SSE, AVX2, AVX-VNNI and AVX-512 VNNI micro-kernels (x86_64). Each is the SIMD form of a twin in
//! [`crate::kernels::generic::tile`]; callers go through [`crate::kernels::tile`], which checks the CPU features and
//! the operand lengths.

pub mod epilogue;
pub mod epilogue_sse;
pub mod ftile;
mod sse;
pub mod winograd8;

use std::arch::x86_64::*;

/// `widest!((a: A, b: B) -> R => body)` runs `body(a, b)` compiled again with AVX-512F + FMA,
/// AVX2 + FMA or SSE4.1 (the widest this CPU has; `Some(result)`), else gives `None`. `body`
/// is a portable `#[inline(always)]` loop the compiler vectorizes at each width; with its
/// multiply-adds explicit and nothing else contracted, every compilation gives the same bits
/// as the plain one, its twin. A loop with multiply-adds passes its fused and unfused forms,
/// `=> body::<true>, body::<false>` ([`crate::kernels::madd`]): the SSE4.1 compilation, for
/// CPUs without FMA, runs the unfused one.
macro_rules! widest {
    (($($arg:ident: $ty:ty),*) -> $ret:ty => $body:path) => {
        $crate::kernels::x86_64::widest!(($($arg: $ty),*) -> $ret => $body, $body)
    };
    (($($arg:ident: $ty:ty),*) -> $ret:ty => $body:path, $unfused:path) => {{
        /// # Safety
        /// The CPU has AVX-512F and FMA.
        #[target_feature(enable = "avx512f,fma")]
        unsafe fn avx512($($arg: $ty),*) -> $ret {
            $body($($arg),*)
        }
        /// # Safety
        /// The CPU has AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($arg: $ty),*) -> $ret {
            $body($($arg),*)
        }
        /// # Safety
        /// The CPU has SSE4.1.
        #[target_feature(enable = "sse4.1")]
        unsafe fn sse41($($arg: $ty),*) -> $ret {
            $unfused($($arg),*)
        }
        use $crate::kernels::cpu::{has, Feature::*};
        if has(Avx512F) && has(Fma) {
            // SAFETY: AVX-512F and FMA are available (checked above); the function is safe
            // Rust otherwise.
            Some(unsafe { avx512($($arg),*) })
        } else if has(Avx2) && has(Fma) {
            // SAFETY: AVX2 and FMA are available (checked above); as above.
            Some(unsafe { avx2($($arg),*) })
        } else if has(Sse41) {
            // SAFETY: SSE4.1 is available (checked above); as above.
            Some(unsafe { sse41($($arg),*) })
        } else {
            None
        }
    }};
}
pub(crate) use widest;

use crate::kernels::{fits, span, Isa, GROUP_BYTES, OC_BLOCK, WGROUP_BYTES};

/// Runs one tile of 1 to [`crate::kernels::PX`] pixels on a SIMD `isa`. `x` starts at the tile's
/// first pixel.
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
    // SAFETY: the caller's promise, for the `acc.len()` pixels `run` is given.
    unsafe {
        match acc.len() {
            1 => run::<1>(isa, x, step, taps, groups, w, init, acc),
            2 => run::<2>(isa, x, step, taps, groups, w, init, acc),
            3 => run::<3>(isa, x, step, taps, groups, w, init, acc),
            4 => run::<4>(isa, x, step, taps, groups, w, init, acc),
            5 => run::<5>(isa, x, step, taps, groups, w, init, acc),
            6 => run::<6>(isa, x, step, taps, groups, w, init, acc),
            7 => run::<7>(isa, x, step, taps, groups, w, init, acc),
            8 => run::<8>(isa, x, step, taps, groups, w, init, acc),
            9 => run::<9>(isa, x, step, taps, groups, w, init, acc),
            10 => run::<10>(isa, x, step, taps, groups, w, init, acc),
            11 => run::<11>(isa, x, step, taps, groups, w, init, acc),
            12 => run::<12>(isa, x, step, taps, groups, w, init, acc),
            13 => run::<13>(isa, x, step, taps, groups, w, init, acc),
            14 => run::<14>(isa, x, step, taps, groups, w, init, acc),
            15 => run::<15>(isa, x, step, taps, groups, w, init, acc),
            16 => run::<16>(isa, x, step, taps, groups, w, init, acc),
            n => panic!("a tile has 1 to {} pixels, not {n}", crate::kernels::PX),
        }
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
    let acc: &mut [[i32; OC_BLOCK]; P] = acc.try_into().expect("tile() dispatches on the length");
    let (x, w) = (x.as_ptr(), w.as_ptr());
    // SAFETY: the caller guarantees that this CPU has the ISA's features and that every
    // read, up to `(P - 1) * step + max(taps) + groups * 4` bytes of `x` and
    // `taps.len() * groups * 64` bytes of `w`, is in bounds.
    unsafe {
        match isa {
            Isa::Avx512Vnni => vnni512::<P>(x, step, taps, groups, w, init, acc),
            Isa::Avx512VnniYmm => vnni::<P>(x, step, taps, groups, w, init, acc),
            Isa::AvxVnni => avxvnni::<P>(x, step, taps, groups, w, init, acc),
            Isa::Avx2Maddubs => maddubs::<P>(x, step, taps, groups, w, init, acc),
            Isa::Avx2Madd16 => madd16::<P>(x, step, taps, groups, w, init, acc),
            Isa::SseMaddubs => sse::maddubs::<P>(x, step, taps, groups, w, init, acc),
            Isa::SseMadd16 => sse::madd16::<P>(x, step, taps, groups, w, init, acc),
            _ => unreachable!("{isa:?} is not an x86 kernel"),
        }
    }
}

/// The loop the three kernels share: per tap and k-group, two weight vectors (channels 0..8,
/// 8..16) and one 32-bit broadcast per pixel, folded into the accumulators by `$mac`.
macro_rules! kernel_loop {
    ($x:ident, $step:ident, $taps:ident, $groups:ident, $w:ident, $init:ident, $acc:ident, |$a:ident, $b:ident, $wv:ident| $mac:expr) => {{
        let start = [
            _mm256_loadu_si256($init.as_ptr() as *const __m256i),
            _mm256_loadu_si256($init.as_ptr().add(8) as *const __m256i),
        ];
        let mut acc_v: [[__m256i; 2]; P] = [start; P];
        let mut offsets = [0usize; P];
        for (j, o) in offsets.iter_mut().enumerate() {
            *o = j * $step;
        }
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

/// `acc += dpbusd(x, w)`: four u8 x s8 products per lane (twin: [`crate::kernels::generic::tile::tile_quads`]).
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + groups *
/// 4` bytes and `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn vnni<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees the features and the reads (see `run`).
    unsafe { kernel_loop!(x, step, taps, groups, w, init, acc, |a, b, wv| _mm256_dpbusd_epi32(a, b, wv)) }
}

/// `acc += dpbusd(x, w)` in AVX-VNNI's VEX encoding, for CPUs without AVX-512 (twin:
/// [`crate::kernels::generic::tile::tile_quads`]).
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + groups *
/// 4` bytes and `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "avx2,avxvnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn avxvnni<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees the features and the reads (see `run`).
    unsafe { kernel_loop!(x, step, taps, groups, w, init, acc, |a, b, wv| _mm256_dpbusd_avx_epi32(a, b, wv)) }
}

/// `acc += dpbusd(x, w)` with 512-bit vectors: one vector holds the block's 16 channels, so
/// a k-group is one weight load and one instruction per pixel (twin:
/// [`crate::kernels::generic::tile::tile_quads`]).
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + groups *
/// 4` bytes and `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "avx512f,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn vnni512<const P: usize>(
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
        let start = _mm512_loadu_si512(init.as_ptr() as *const _);
        let mut acc_v: [__m512i; P] = [start; P];
        let mut offsets = [0usize; P];
        for (j, o) in offsets.iter_mut().enumerate() {
            *o = j * step;
        }
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

/// `acc += maddubs(x, w)` widened to i32 (twin: [`crate::kernels::generic::tile::tile_quads`]); exact for
/// `|w| <= 63` only.
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + groups *
/// 4` bytes and `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn maddubs<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees AVX2 and the reads (see `run`).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        kernel_loop!(x, step, taps, groups, w, init, acc, |a, b, wv| _mm256_add_epi32(
            a,
            _mm256_madd_epi16(_mm256_maddubs_epi16(b, wv), ones)
        ))
    }
}

/// `acc += madd16(x, w)` on u16/i16 pairs (twin: [`crate::kernels::generic::tile::tile_pairs`]).
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + groups *
/// 4` bytes and `w` for `taps.len() * groups * 64`.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn madd16<const P: usize>(
    x: *const u8,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: *const u8,
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees AVX2 and the reads (see `run`).
    unsafe {
        kernel_loop!(x, step, taps, groups, w, init, acc, |a, b, wv| _mm256_add_epi32(a, _mm256_madd_epi16(b, wv)))
    }
}

/// `out[4 * j + t] = rows[t][j]`: 16 pixels of four channel planes into channels-last quads
/// (SSE2, part of x86_64). Twin: [`crate::kernels::pack::interleave4_scalar`].
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
/// (SSE2). Twin: [`crate::kernels::pack::interleave2_scalar`].
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

/// `rows[o][j] = t[16 j + o]`: one row per channel from pixel-major floats, 8 pixels at a time
/// through 8x8 AVX2 transposes (twin: [`crate::kernels::epilogue::transpose_scalar`]).
pub(super) fn transpose_f32(t: &[f32], rows: &mut [&mut [f32]]) {
    let n = rows.first().map_or(0, |r| r.len());
    assert!(crate::kernels::cpu::has(crate::kernels::cpu::Feature::Avx2));
    assert!(rows.len() <= OC_BLOCK && rows.iter().all(|r| r.len() == n) && fits(t.len(), n.checked_mul(OC_BLOCK)));
    let full = n / 8 * 8;
    // SAFETY: AVX2 is available; every read is below `16 * full <= t.len()` and every write
    // below `full <= rows[o].len()` (asserted).
    unsafe { transpose_f32_avx2(t, rows, full) }
    for (o, row) in rows.iter_mut().enumerate() {
        for j in full..n {
            row[j] = t[OC_BLOCK * j + o];
        }
    }
}

/// The 8x8 transpose of 8 rows of 8 floats: `out[j][i] = r[i][j]`.
#[target_feature(enable = "avx2")]
fn transpose8x8(r: [__m256; 8]) -> [__m256; 8] {
    let lo = |a, b| _mm256_unpacklo_ps(a, b);
    let hi = |a, b| _mm256_unpackhi_ps(a, b);
    let (t0, t1, t2, t3) = (lo(r[0], r[1]), hi(r[0], r[1]), lo(r[2], r[3]), hi(r[2], r[3]));
    let (t4, t5, t6, t7) = (lo(r[4], r[5]), hi(r[4], r[5]), lo(r[6], r[7]), hi(r[6], r[7]));
    let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
    let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
    let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
    let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// # Safety
/// The CPU has AVX2; `t` holds 16 floats for each of the first `full` pixels, a multiple of 8,
/// and each row at least `full`.
#[target_feature(enable = "avx2")]
unsafe fn transpose_f32_avx2(t: &[f32], rows: &mut [&mut [f32]], full: usize) {
    // SAFETY: the caller guarantees AVX2 and the bounds; loadu/storeu need no alignment.
    unsafe {
        for j0 in (0..full).step_by(8) {
            for h in 0..2 {
                if 8 * h >= rows.len() {
                    break;
                }
                let mut r = [_mm256_setzero_ps(); 8];
                for (i, r) in r.iter_mut().enumerate() {
                    *r = _mm256_loadu_ps(t.as_ptr().add(OC_BLOCK * (j0 + i) + 8 * h));
                }
                let c = transpose8x8(r);
                for (o, v) in c.into_iter().enumerate() {
                    if let Some(row) = rows.get_mut(8 * h + o) {
                        _mm256_storeu_ps(row.as_mut_ptr().add(j0), v);
                    }
                }
            }
        }
    }
}

/// `out[j * stride + i] = rows[i][j]`: 8 channel rows into pixels of a channels-last image, 8
/// pixels at a time through 8x8 AVX2 transposes (twin:
/// [`crate::kernels::fconv::gather_pixels_scalar`]).
///
/// # Panics
/// If AVX2 is missing, the rows differ in length or `out` cannot hold them.
pub fn gather_pixels(rows: &[&[f32]; 8], out: &mut [f32], stride: usize) {
    let n = rows[0].len();
    assert!(crate::kernels::cpu::has(crate::kernels::cpu::Feature::Avx2));
    assert!(rows.iter().all(|r| r.len() == n) && stride >= 8 && fits(out.len(), span(n, stride, 8)));
    let full = n / 8 * 8;
    // SAFETY: AVX2 is available; every read is below `full <= rows[i].len()` and every write
    // below `(full - 1) * stride + 8 <= (n - 1) * stride + 8 <= out.len()` (asserted, without
    // wrapping).
    unsafe { gather_pixels_avx2(rows, out, stride, full) }
    for j in full..n {
        for (i, r) in rows.iter().enumerate() {
            out[j * stride + i] = r[j];
        }
    }
}

/// # Safety
/// The CPU has AVX2; each row holds at least `full` floats, a multiple of 8, and `out` at least
/// `(full - 1) * stride + 8`.
#[target_feature(enable = "avx2")]
unsafe fn gather_pixels_avx2(rows: &[&[f32]; 8], out: &mut [f32], stride: usize, full: usize) {
    // SAFETY: the caller guarantees AVX2 and the bounds; loadu/storeu need no alignment.
    unsafe {
        for j0 in (0..full).step_by(8) {
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(rows[i].as_ptr().add(j0)));
            let c = transpose8x8(r);
            for (j, v) in c.into_iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add((j0 + j) * stride), v);
            }
        }
    }
}

/// `rows[o][j] = t[16 j + o]` for bytes, 16 pixels at a time through a 16x16 SSE2 transpose:
/// four rounds of the perfect shuffle `x'[2k], x'[2k+1] = unpack_lo/hi(x[k], x[k+8])` (twin:
/// [`crate::kernels::epilogue::transpose_scalar`]).
pub(super) fn transpose_u8(t: &[u8], rows: &mut [&mut [u8]]) {
    let n = rows.first().map_or(0, |r| r.len());
    assert!(rows.len() <= OC_BLOCK && rows.iter().all(|r| r.len() == n) && fits(t.len(), n.checked_mul(OC_BLOCK)));
    let full = n / 16 * 16;
    for j0 in (0..full).step_by(16) {
        // SAFETY: SSE2 is part of x86_64; reads are below `16 * full <= t.len()` and writes
        // below `full <= rows[o].len()` (asserted); loadu/storeu need no alignment.
        unsafe {
            let mut x = [_mm_setzero_si128(); 16];
            for (i, x) in x.iter_mut().enumerate() {
                *x = _mm_loadu_si128(t.as_ptr().add(OC_BLOCK * (j0 + i)) as *const __m128i);
            }
            for _ in 0..4 {
                let y = x;
                for k in 0..8 {
                    x[2 * k] = _mm_unpacklo_epi8(y[k], y[k + 8]);
                    x[2 * k + 1] = _mm_unpackhi_epi8(y[k], y[k + 8]);
                }
            }
            for (o, row) in rows.iter_mut().enumerate() {
                _mm_storeu_si128(row.as_mut_ptr().add(j0) as *mut __m128i, x[o]);
            }
        }
    }
    for (o, row) in rows.iter_mut().enumerate() {
        for j in full..n {
            row[j] = t[OC_BLOCK * j + o];
        }
    }
}
