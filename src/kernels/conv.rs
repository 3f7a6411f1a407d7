//! A whole 2-D convolution (group 1) from the micro-kernels: im2col packing of blocks of output
//! pixels, every channel tile over each block, zero-point correction and the float epilogue.

use rayon::prelude::*;

use super::pack::{self, PackedWeights};
use super::{tile, Isa, MR, NR};

/// Pixels per block: one block's packed panels stay in L2 while every channel tile reads them.
const BLOCK_PANELS: usize = 16;

/// Shape of a convolution on one image (NCHW, batch 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    /// Top, left, bottom, right.
    pub pad: [usize; 4],
    pub dilation: (usize, usize),
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        (self.in_h + self.pad[0] + self.pad[2] - self.dilation.0 * (self.kh - 1) - 1) / self.stride.0 + 1
    }

    pub fn out_w(&self) -> usize {
        (self.in_w + self.pad[1] + self.pad[3] - self.dilation.1 * (self.kw - 1) - 1) / self.stride.1 + 1
    }

    /// Reduction length: `in_c * kh * kw`.
    pub fn k(&self) -> usize {
        self.in_c * self.kh * self.kw
    }

    /// Multiply-adds per image.
    pub fn macs(&self) -> u64 {
        (self.out_c * self.k() * self.out_h() * self.out_w()) as u64
    }
}

/// What happens to `acc - zp * sum(w)` of channel `c`.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// `input_scale * weight_scale[c]`.
    pub scale: &'a [f32],
    /// Float bias (`bias_q[c] * bias_scale[c]`).
    pub bias: &'a [f32],
    /// Apply SiLU (`y * sigmoid(y)`).
    pub silu: bool,
}

/// A convolution with packed int8 weights, ready to run on uint8 images.
#[derive(Debug, Clone)]
pub struct QConv {
    pub shape: ConvShape,
    pub weights: PackedWeights,
    /// Per reduction index `k = (c, ky, kx)`: offset of plane `c` in the input and the tap's
    /// `(dy, dx)`, so packing needs no divisions.
    taps: Vec<(usize, isize, isize)>,
}

impl QConv {
    /// `w` is `[out_c][in_c][kh][kw]` int8.
    ///
    /// # Panics
    /// If `isa` is not exact for these weights (see [`Isa::exact_for`]) or `w` has the wrong size.
    pub fn new(shape: ConvShape, w: &[i8], isa: Isa) -> QConv {
        let weights = PackedWeights::new(isa, w, shape.out_c, shape.k());
        assert!(isa.exact_for(weights.max_abs), "{isa:?} is not exact for weights up to {}", weights.max_abs);
        let mut taps = Vec::with_capacity(shape.k());
        for c in 0..shape.in_c {
            for ky in 0..shape.kh {
                for kx in 0..shape.kw {
                    taps.push((c * shape.in_h * shape.in_w, (ky * shape.dilation.0) as isize, (kx * shape.dilation.1) as isize));
                }
            }
        }
        QConv { shape, weights, taps }
    }

    /// Packs pixels `p0 .. p0 + NR` into one panel; padding and pixels past the image read `zp`
    /// (real 0.0; the latter are dropped anyway). Gathers one `k` row of `NR` pixels at a time,
    /// by runs of pixels in one output row (a straight copy where a run's taps lie inside the
    /// image), then interleaves `G` rows into the layout of [`pack`].
    fn pack_panel(&self, x: &[u8], zp: u8, p0: usize, panel: &mut [u8]) {
        let s = &self.shape;
        let (ow, op) = (s.out_w().max(1), s.out_h() * s.out_w());
        let isa = self.weights.isa;
        let g = isa.k_group();
        let two = pack::is_two_bytes(isa);
        let (ih, iw) = (s.in_h as isize, s.in_w as isize);
        let (sy, sx) = (s.stride.0 as isize, s.stride.1 as isize);
        // A 1x1 stride-1 unpadded conv reads pixel p at input pixel p: rows are slices.
        let pointwise = s.kh == 1 && s.kw == 1 && s.stride == (1, 1) && s.pad == [0; 4] && p0 + NR <= op;
        // The panel's pixels as runs within one output row: (first j, length, oy, ox).
        let mut runs = [(0usize, 0usize, 0isize, 0isize); NR];
        let mut n_runs = 0;
        let mut j = 0;
        while j < NR && p0 + j < op {
            let p = p0 + j;
            let len = (ow - p % ow).min(NR - j).min(op - p);
            runs[n_runs] = (j, len, (p / ow) as isize, (p % ow) as isize);
            n_runs += 1;
            j += len;
        }
        let real = j;
        let mut rows = [[zp; NR]; 4];
        let k = s.k();
        let kg = k.div_ceil(g);
        let mut kk = 0;
        for group in 0..kg {
            for row in rows.iter_mut().take(g) {
                if kk >= k {
                    *row = [0; NR];
                    kk += 1;
                    continue;
                }
                let (offset, dy, dx) = self.taps[kk];
                let plane = &x[offset..][..s.in_h * s.in_w];
                if pointwise {
                    row.copy_from_slice(&plane[p0..p0 + NR]);
                } else {
                    row[real..].fill(zp);
                    for &(j0, len, oy, ox) in &runs[..n_runs] {
                        let out = &mut row[j0..j0 + len];
                        let iy = oy * sy - s.pad[0] as isize + dy;
                        let ix0 = ox * sx - s.pad[1] as isize + dx;
                        let ix_last = ix0 + (len as isize - 1) * sx;
                        if iy < 0 || iy >= ih {
                            out.fill(zp);
                            continue;
                        }
                        // Taps left of the image, inside it, right of it.
                        let lo = if ix0 >= 0 { 0 } else { ((-ix0 + sx - 1) / sx) as usize }.min(len);
                        let hi = if ix_last < iw {
                            len
                        } else if ix0 > iw - 1 {
                            0
                        } else {
                            (((iw - 1 - ix0) / sx + 1) as usize).min(len)
                        };
                        out[..lo].fill(zp);
                        if hi > lo {
                            out[hi..].fill(zp);
                            let start = ix0 + lo as isize * sx;
                            let line = &plane[(iy * iw + start) as usize..][..(hi - lo - 1) * sx as usize + 1];
                            if sx == 1 {
                                out[lo..hi].copy_from_slice(line);
                            } else {
                                for (t, v) in out[lo..hi].iter_mut().enumerate() {
                                    *v = line[t * sx as usize];
                                }
                            }
                        } else {
                            out[lo..].fill(zp);
                        }
                    }
                }
                kk += 1;
            }
            pack::interleave(two, &rows, &mut panel[group * NR * 4..][..NR * 4]);
        }
    }

    /// Exact `sum_k (x[k] - zp) * w[c][k]` for every channel and output pixel, `[out_c][oh * ow]`.
    pub fn run_i32(&self, x: &[u8], zp: u8) -> Vec<i32> {
        let op = self.shape.out_h() * self.shape.out_w();
        let mut out = vec![0i32; self.shape.out_c * op];
        let step = NR * BLOCK_PANELS;
        for p0 in (0..op).step_by(step) {
            let n = (op - p0).min(step);
            self.block(x, zp, p0, n, &mut Vec::new(), |c, j0, acc| out[c * op + p0 + j0..][..acc.len()].copy_from_slice(acc));
        }
        out
    }

    /// Float outputs `[out_c][oh * ow]`: `(acc - zp * sum(w)) * scale[c] + bias[c]`, then SiLU
    /// if asked. Blocks of pixels run in parallel on the kernels' own pool, if one is set
    /// ([`super::threads`]).
    pub fn run_f32(&self, x: &[u8], zp: u8, e: Epilogue) -> Vec<f32> {
        let op = self.shape.out_h() * self.shape.out_w();
        let oc = self.shape.out_c;
        let step = NR * BLOCK_PANELS;
        let n_blocks = op.div_ceil(step);
        let mut out = vec![0f32; oc * op];
        // Writes one block's outputs into `dst` (`oc` rows of `stride`, from column `at`).
        let run_block = |b: usize, dst: &mut [f32], stride: usize, at: usize, packed: &mut Vec<u8>| {
            let p0 = b * step;
            let n = (op - p0).min(step);
            self.block(x, zp, p0, n, packed, |c, j0, acc| {
                let (sc, bi) = (e.scale[c], e.bias[c]);
                for (d, &a) in dst[c * stride + at + j0..][..acc.len()].iter_mut().zip(acc) {
                    *d = a as f32 * sc + bi;
                }
            });
            if e.silu {
                for c in 0..oc {
                    super::silu::silu(&mut dst[c * stride + at..][..n]);
                }
            }
        };
        match super::threads::pool() {
            Some(pool) => {
                let blocks: Vec<(usize, Vec<f32>)> = pool.install(|| {
                    (0..n_blocks)
                        .into_par_iter()
                        .map(|b| {
                            let n = (op - b * step).min(step);
                            let mut local = vec![0f32; oc * n];
                            run_block(b, &mut local, n, 0, &mut Vec::new());
                            (b * step, local)
                        })
                        .collect()
                });
                for (p0, local) in blocks {
                    let n = local.len() / oc.max(1);
                    for c in 0..oc {
                        out[c * op + p0..][..n].copy_from_slice(&local[c * n..][..n]);
                    }
                }
            }
            None => {
                let mut packed = Vec::new();
                for b in 0..n_blocks {
                    run_block(b, &mut out, op, b * step, &mut packed);
                }
            }
        }
        out
    }

    /// Runs every channel tile over the `n` pixels from `p0`, calling `emit(c, j0, acc)` with the
    /// zero-point-corrected sums of channel `c` for pixels `p0 + j0 ..`.
    /// `packed` is scratch for the packed panels, reused across blocks.
    fn block(&self, x: &[u8], zp: u8, p0: usize, n: usize, packed: &mut Vec<u8>, mut emit: impl FnMut(usize, usize, &[i32])) {
        let isa = self.weights.isa;
        let k = self.shape.k();
        let kg = pack::groups(isa, k);
        let pb = pack::panel_bytes(isa, k);
        let panels = n.div_ceil(NR);
        packed.resize(panels * pb, 0);
        for (i, panel) in packed.chunks_mut(pb).enumerate() {
            self.pack_panel(x, zp, p0 + i * NR, panel);
        }
        let zp = i32::from(zp);
        for t in 0..self.shape.out_c.div_ceil(MR) {
            let w = self.weights.tile(t);
            for (i, panel) in packed.chunks(pb).enumerate() {
                let mut acc = [0i32; MR * NR];
                tile(isa, kg, w, panel, &mut acc);
                let valid = NR.min(n - i * NR);
                for r in 0..MR {
                    let c = t * MR + r;
                    if c >= self.shape.out_c {
                        break;
                    }
                    let corr = zp * self.weights.sums[c];
                    let row = &mut acc[r * NR..][..valid];
                    row.iter_mut().for_each(|a| *a -= corr);
                    emit(c, i * NR, row);
                }
            }
        }
    }
}
