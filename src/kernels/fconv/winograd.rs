//! Winograd's F(4x4, 3x3) for the 3x3 stride-1 convolutions (Lavin & Gray, "Fast Algorithms
//! for Convolutional Neural Networks", 2015): each 4x4 block of outputs from a 6x6 block of
//! the padded image with 36 multiplies per input and output channel pair instead of 144. The
//! image block goes through `B^T d B` (36 values per channel), each of the 36 values is a
//! matrix product over the channels with the weights' `G g G^T` (the micro-kernel of
//! [`super::ftile`], as a 1x1 convolution over the blocks), and `A^T m A` gives the 16
//! outputs. The transforms are portable loops with no fused multiply-adds, so every kernel
//! still gives the twin's bits. Their rounding adds error: the tests bound it against a
//! direct convolution in f64.

use super::{ftile, FIsa};
use crate::kernels::OC_BLOCK;

/// Outputs per block side.
pub const M: usize = 4;
/// Image values per block side.
pub const ALPHA: usize = M + 2;
const XI: usize = ALPHA * ALPHA;

/// `G` of the interpolation points 0, 1, -1, 2, -2 and infinity (`B^T` and `A^T`, of the same
/// points, are written out in [`bt`] and [`at`]).
const G: [[f64; 3]; ALPHA] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// The transformed weights: per block of [`OC_BLOCK`] output channels, per transform point
/// `xi`, per input channel, 16 values (zero past `out_c`).
#[derive(Debug, Clone)]
pub struct Winograd {
    u: Vec<f32>,
    in_c: usize,
}

impl Winograd {
    /// `w` is `[out_c][in_c][3][3]`. `G g G^T` in f64, rounded once.
    pub fn new(out_c: usize, in_c: usize, w: &[f32]) -> Winograd {
        assert_eq!(w.len(), out_c * in_c * 9, "weights are not out_c x in_c x 3 x 3");
        let blocks = out_c.div_ceil(OC_BLOCK);
        let mut u = vec![0f32; blocks * XI * in_c * OC_BLOCK];
        for c in 0..out_c {
            for ci in 0..in_c {
                let g = &w[(c * in_c + ci) * 9..][..9];
                // t = G g (ALPHA x 3), then t G^T (ALPHA x ALPHA).
                let t: [[f64; 3]; ALPHA] = std::array::from_fn(|p| {
                    std::array::from_fn(|k| (0..3).map(|i| G[p][i] * f64::from(g[i * 3 + k])).sum())
                });
                for p in 0..ALPHA {
                    for q in 0..ALPHA {
                        let v: f64 = (0..3).map(|k| t[p][k] * G[q][k]).sum();
                        u[(((c / OC_BLOCK) * XI + p * ALPHA + q) * in_c + ci) * OC_BLOCK + c % OC_BLOCK] = v as f32;
                    }
                }
            }
        }
        Winograd { u, in_c }
    }

    fn weights(&self, b: usize, xi: usize) -> &[f32] {
        let n = self.in_c * OC_BLOCK;
        &self.u[(b * XI + xi) * n..][..n]
    }
}

/// Scratch of one band: the transformed image blocks of a block row, their products, and
/// the output rows.
#[derive(Default)]
pub(super) struct Scratch {
    /// `[xi][tile][in_c]`.
    v: Vec<f32>,
    /// `[xi][tile][16]`.
    m: Vec<[f32; OC_BLOCK]>,
    /// `[row][tile * M + j][16]`.
    pub rows: Vec<[f32; OC_BLOCK]>,
}

thread_local! {
    /// The last band's scratch on this thread, kept for its allocations (zeroing a fresh one
    /// per band showed as 2% of an inference).
    static SCRATCH: std::cell::Cell<Scratch> =
        const { std::cell::Cell::new(Scratch { v: Vec::new(), m: Vec::new(), rows: Vec::new() }) };
}

impl Scratch {
    /// This thread's scratch, sized for `tiles` blocks a row of `in_c` channels. Its values
    /// are stale: each step writes what the next reads.
    pub fn take(tiles: usize, in_c: usize) -> Scratch {
        let mut s = SCRATCH.take();
        s.v.resize(XI * tiles * in_c, 0.0);
        s.m.resize(XI * tiles, [0.0; OC_BLOCK]);
        s.rows.resize(M * tiles * M, [0.0; OC_BLOCK]);
        s
    }

    /// Gives the scratch back to this thread.
    pub fn put(self) {
        SCRATCH.set(self);
    }
}

/// `B^T` applied to 6 values (`x[i]` of each lane), as written (exact for the powers of
/// two; the same order on every lane, so every width rounds alike).
#[inline(always)]
fn bt<const N: usize>(x: &[[f32; N]; ALPHA]) -> [[f32; N]; ALPHA] {
    let [d0, d1, d2, d3, d4, d5] = x;
    let mut out = [[0f32; N]; ALPHA];
    for l in 0..N {
        out[0][l] = 4.0 * d0[l] - 5.0 * d2[l] + d4[l];
        out[1][l] = -4.0 * d1[l] - 4.0 * d2[l] + d3[l] + d4[l];
        out[2][l] = 4.0 * d1[l] - 4.0 * d2[l] - d3[l] + d4[l];
        out[3][l] = -2.0 * d1[l] - d2[l] + 2.0 * d3[l] + d4[l];
        out[4][l] = 2.0 * d1[l] - d2[l] - 2.0 * d3[l] + d4[l];
        out[5][l] = 4.0 * d1[l] - 5.0 * d3[l] + d5[l];
    }
    out
}

/// `A^T` applied to 6 values per lane.
#[inline(always)]
fn at<const N: usize>(m: &[[f32; N]; ALPHA]) -> [[f32; N]; M] {
    let [m0, m1, m2, m3, m4, m5] = m;
    let mut out = [[0f32; N]; M];
    for l in 0..N {
        let (a, b, c, d) = (m1[l] + m2[l], m1[l] - m2[l], m3[l] + m4[l], m3[l] - m4[l]);
        out[0][l] = m0[l] + a + c;
        out[1][l] = b + 2.0 * d;
        out[2][l] = a + 4.0 * c;
        out[3][l] = b + 8.0 * d + m5[l];
    }
    out
}

/// `B^T d B` of one image block, channels `c0..c0 + N` (the image has `c` channels a pixel,
/// `img_w` pixels a row, the block's top-left pixel at `at`), into `v` (`[xi][tile][c]`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn input_block<const N: usize>(
    img: &[f32],
    at: usize,
    img_w: usize,
    c: usize,
    c0: usize,
    v: &mut [f32],
    tile: usize,
    tiles: usize,
) {
    let mut t = [[[0f32; N]; ALPHA]; ALPHA];
    for j in 0..ALPHA {
        let col: [[f32; N]; ALPHA] =
            std::array::from_fn(|i| img[at + (i * img_w + j) * c + c0..][..N].try_into().expect("N values"));
        let out = bt(&col);
        for p in 0..ALPHA {
            t[p][j] = out[p];
        }
    }
    for (p, row) in t.iter().enumerate() {
        for (q, vals) in bt(row).iter().enumerate() {
            v[((p * ALPHA + q) * tiles + tile) * c + c0..][..N].copy_from_slice(vals);
        }
    }
}

#[inline(always)]
fn transform_input_body(img: &[f32], img_w: usize, c: usize, ty: usize, tiles: usize, v: &mut [f32]) {
    for tx in 0..tiles {
        let at = (ty * M * img_w + tx * M) * c;
        let whole = c / OC_BLOCK * OC_BLOCK;
        for c0 in (0..whole).step_by(OC_BLOCK) {
            input_block::<OC_BLOCK>(img, at, img_w, c, c0, v, tx, tiles);
        }
        for c0 in whole..c {
            input_block::<1>(img, at, img_w, c, c0, v, tx, tiles);
        }
    }
}

/// `B^T d B` of every block of block row `ty` (image `img_w` pixels wide, `c` channels) into
/// the scratch, on the widest vectors this CPU has.
pub(super) fn transform_input(img: &[f32], img_w: usize, c: usize, ty: usize, tiles: usize, s: &mut Scratch) {
    let v = &mut s.v[..];
    #[cfg(target_arch = "x86_64")]
    if let Some(()) = crate::kernels::x86_64::widest!((img: &[f32], img_w: usize, c: usize, ty: usize, tiles: usize, v: &mut [f32]) -> () => transform_input_body)
    {
        return;
    }
    transform_input_body(img, img_w, c, ty, tiles, v)
}

#[inline(always)]
fn transform_output_body(m: &[[f32; OC_BLOCK]], bias: &[f32; OC_BLOCK], tiles: usize, rows: &mut [[f32; OC_BLOCK]]) {
    for tx in 0..tiles {
        let mut t = [[[0f32; OC_BLOCK]; ALPHA]; M];
        for q in 0..ALPHA {
            let col: [[f32; OC_BLOCK]; ALPHA] = std::array::from_fn(|p| m[(p * ALPHA + q) * tiles + tx]);
            for (i, v) in at(&col).into_iter().enumerate() {
                t[i][q] = v;
            }
        }
        for (i, ti) in t.iter().enumerate() {
            for (j, y) in at(ti).iter().enumerate() {
                let out = &mut rows[i * tiles * M + tx * M + j];
                for l in 0..OC_BLOCK {
                    out[l] = y[l] + bias[l];
                }
            }
        }
    }
}

/// For channel block `b`: the 36 products over the channels, then `A^T m A + bias` into
/// the scratch's rows (M rows of `tiles * M` pixels).
pub(super) fn multiply_and_transform_output(
    wg: &Winograd,
    isa: FIsa,
    b: usize,
    bias: &[f32; OC_BLOCK],
    tiles: usize,
    s: &mut Scratch,
) {
    let (c, tp) = (wg.in_c, isa.tile_pixels());
    for xi in 0..XI {
        let w = wg.weights(b, xi);
        for (k, chunk) in s.m[xi * tiles..(xi + 1) * tiles].chunks_mut(tp).enumerate() {
            ftile(isa, &s.v, (xi * tiles + k * tp) * c, c, &[0], c, w, &[0.0; OC_BLOCK], chunk);
        }
    }
    let (m, rows) = (&s.m[..], &mut s.rows[..]);
    #[cfg(target_arch = "x86_64")]
    if let Some(()) = crate::kernels::x86_64::widest!((m: &[[f32; OC_BLOCK]], bias: &[f32; OC_BLOCK], tiles: usize, rows: &mut [[f32; OC_BLOCK]]) -> () => transform_output_body)
    {
        return;
    }
    transform_output_body(m, bias, tiles, rows)
}
