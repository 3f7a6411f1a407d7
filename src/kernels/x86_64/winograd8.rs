//! The image transform of [`crate::kernels::winograd8`] on AVX2 and SSE4.1 vectors: a block's
//! 24 values per channel widened to i16 as they load (`vpmovzxbw`) and combined with adds and
//! shifts, 16 (AVX2) or 8 channels a vector. Twin: that module's portable transform, which
//! the tests hold these to value for value.

use std::arch::x86_64::*;

use crate::kernels::{fits, span};

/// Where the blocks of one block row are read and written; see [`input_row`].
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Bytes per value: 1 (u8) or 2 (little-endian u16).
    pub vb: usize,
    /// Bytes per pixel.
    pub px: usize,
    /// Pixels per padded image row.
    pub wp: usize,
    /// The block row's first image row.
    pub y0: usize,
    /// Blocks, each 4 x 6 pixels four pixels apart, all inside the image.
    pub tiles: usize,
    /// Channels, a multiple of 16, at most a pixel's.
    pub channels: usize,
    /// Values per block in the output (its channels rounded up to pairs).
    pub cp: usize,
    /// Values between two transform points in the output.
    pub plane: usize,
}

/// `B^T d B` of the blocks of `r` into `v` (`v[xi * plane + tile * cp + c]`), with AVX2
/// where the CPU has it, else SSE4.1; `false` (nothing written) without either.
///
/// # Panics
/// If a read or a write would leave `img` or `v`, or `r` is not as documented.
pub fn input_row(img: &[u8], r: &Row, v: &mut [i16]) -> bool {
    use crate::kernels::cpu::{has, Feature::*};
    assert!(r.channels.is_multiple_of(16) && r.channels * r.vb <= r.px && r.channels <= r.cp, "{r:?}");
    assert!(matches!(r.vb, 1 | 2), "{r:?}");
    if r.tiles == 0 || r.channels == 0 {
        return true;
    }
    // The last block's last pixel, and the last value written.
    let reach = r.tiles.checked_mul(4).and_then(|x| x.checked_add(2));
    let last = r.y0.checked_add(3).and_then(|y| y.checked_mul(r.wp)?.checked_add(reach? - 1));
    let read = last.and_then(|p| p.checked_mul(r.px)).and_then(|b| b.checked_add(r.channels * r.vb));
    assert!(reach.is_some_and(|x| x <= r.wp) && fits(img.len(), read), "blocks past the image: {r:?}");
    let written = span(r.tiles, r.cp, r.channels).and_then(|t| r.plane.checked_mul(23)?.checked_add(t));
    assert!(fits(v.len(), written), "blocks past the output: {r:?}");
    if has(Avx2) {
        // SAFETY: AVX2 is available; every read is within `img` and every write within `v`
        // (asserted above: the farthest of each on sums that cannot wrap).
        unsafe { input_row_avx2(img.as_ptr(), r, v.as_mut_ptr()) };
        true
    } else if has(Sse41) {
        // SAFETY: SSE4.1 is available; as above.
        unsafe { input_row_sse41(img.as_ptr(), r, v.as_mut_ptr()) };
        true
    } else {
        false
    }
}

/// `B_y^T d B_x` of a 4 x 6 block of vectors: along each row F(4, 3)'s `B^T`, then down each
/// column F(2, 3)'s; `$add`, `$sub` and `$shl` the lanes' i16 arithmetic.
macro_rules! transform {
    ($d:ident, $add:ident, $sub:ident, $shl:ident) => {{
        let bt6 = |d: [_; 6]| {
            let (d1_4, d2_4, d3_4) = ($shl::<2>(d[1]), $shl::<2>(d[2]), $shl::<2>(d[3]));
            let (d1_2, d3_2) = ($shl::<1>(d[1]), $shl::<1>(d[3]));
            [
                $add($sub($shl::<2>(d[0]), $add(d2_4, d[2])), d[4]),
                $sub($add(d[3], d[4]), $add(d1_4, d2_4)),
                $add($sub(d1_4, d2_4), $sub(d[4], d[3])),
                $sub($add(d3_2, d[4]), $add(d1_2, d[2])),
                $sub($add(d1_2, d[4]), $add(d3_2, d[2])),
                $add($sub(d1_4, $add(d3_4, d[3])), d[5]),
            ]
        };
        let bt4 = |a: [_; 4]| [$sub(a[0], a[2]), $add(a[1], a[2]), $sub(a[2], a[1]), $sub(a[1], a[3])];
        let rows: [[_; 6]; 4] = std::array::from_fn(|i| bt6($d[i]));
        // out[p][q]: column q of the rows through F(2, 3)'s B^T.
        let cols: [[_; 4]; 6] = std::array::from_fn(|q| bt4([rows[0][q], rows[1][q], rows[2][q], rows[3][q]]));
        cols
    }};
}

/// # Safety
/// AVX2; the reads and writes of [`input_row`]'s checks are in bounds.
#[target_feature(enable = "avx2")]
unsafe fn input_row_avx2(img: *const u8, r: &Row, v: *mut i16) {
    for tx in 0..r.tiles {
        for c0 in (0..r.channels).step_by(16) {
            let at = |i: usize, j: usize| ((r.y0 + i) * r.wp + 4 * tx + j) * r.px + c0 * r.vb;
            let d: [[__m256i; 6]; 4] = std::array::from_fn(|i| {
                // SAFETY: within the pixels and channels `input_row` checked.
                std::array::from_fn(|j| unsafe {
                    let p = img.add(at(i, j));
                    match r.vb {
                        1 => _mm256_cvtepu8_epi16(_mm_loadu_si128(p.cast())),
                        _ => _mm256_loadu_si256(p.cast()),
                    }
                })
            });
            let out = transform!(d, _mm256_add_epi16, _mm256_sub_epi16, _mm256_slli_epi16);
            for (q, col) in out.iter().enumerate() {
                for (p, x) in col.iter().enumerate() {
                    // SAFETY: within the values `input_row` checked.
                    unsafe { _mm256_storeu_si256(v.add((p * 6 + q) * r.plane + tx * r.cp + c0).cast(), *x) };
                }
            }
        }
    }
}

/// # Safety
/// SSE4.1; as [`input_row_avx2`].
#[target_feature(enable = "sse4.1")]
unsafe fn input_row_sse41(img: *const u8, r: &Row, v: *mut i16) {
    for tx in 0..r.tiles {
        for c0 in (0..r.channels).step_by(8) {
            let at = |i: usize, j: usize| ((r.y0 + i) * r.wp + 4 * tx + j) * r.px + c0 * r.vb;
            let d: [[__m128i; 6]; 4] = std::array::from_fn(|i| {
                // SAFETY: within the pixels and channels `input_row` checked (8 bytes or 16).
                std::array::from_fn(|j| unsafe {
                    let p = img.add(at(i, j));
                    match r.vb {
                        1 => _mm_cvtepu8_epi16(_mm_loadl_epi64(p.cast())),
                        _ => _mm_loadu_si128(p.cast()),
                    }
                })
            });
            let out = transform!(d, _mm_add_epi16, _mm_sub_epi16, _mm_slli_epi16);
            for (q, col) in out.iter().enumerate() {
                for (p, x) in col.iter().enumerate() {
                    // SAFETY: within the values `input_row` checked.
                    unsafe { _mm_storeu_si128(v.add((p * 6 + q) * r.plane + tx * r.cp + c0).cast(), *x) };
                }
            }
        }
    }
}
