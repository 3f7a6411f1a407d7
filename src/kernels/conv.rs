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
}

impl QConv {
    /// `w` is `[out_c][in_c][kh][kw]` int8.
    ///
    /// # Panics
    /// If `isa` is not exact for these weights (see [`Isa::exact_for`]) or `w` has the wrong size.
    pub fn new(shape: ConvShape, w: &[i8], isa: Isa) -> QConv {
        let weights = PackedWeights::new(isa, w, shape.out_c, shape.k());
        assert!(isa.exact_for(weights.max_abs), "{isa:?} is not exact for weights up to {}", weights.max_abs);
        QConv { shape, weights }
    }

    /// Packs pixels `p0 .. p0 + NR` into one panel; padding and pixels past the image read `zp`
    /// (real 0.0; the latter are dropped anyway).
    fn pack_panel(&self, x: &[u8], zp: u8, p0: usize, panel: &mut [u8]) {
        let s = &self.shape;
        let (ow, op) = (s.out_w(), s.out_h() * s.out_w());
        let isa = self.weights.isa;
        let (g, two) = (isa.k_group(), pack::is_two_bytes(isa));
        panel.fill(0);
        let mut base = [(0isize, 0isize, false); NR];
        for (j, b) in base.iter_mut().enumerate() {
            let p = p0 + j;
            *b = (
                ((p / ow.max(1)) * s.stride.0) as isize - s.pad[0] as isize,
                ((p % ow.max(1)) * s.stride.1) as isize - s.pad[1] as isize,
                p < op,
            );
        }
        let (ih, iw) = (s.in_h as isize, s.in_w as isize);
        let mut kk = 0;
        for c in 0..s.in_c {
            let plane = &x[c * s.in_h * s.in_w..][..s.in_h * s.in_w];
            for ky in 0..s.kh {
                for kx in 0..s.kw {
                    let (dy, dx) = ((ky * s.dilation.0) as isize, (kx * s.dilation.1) as isize);
                    for (j, &(by, bx, real)) in base.iter().enumerate() {
                        let (iy, ix) = (by + dy, bx + dx);
                        let v = if real && iy >= 0 && iy < ih && ix >= 0 && ix < iw {
                            plane[(iy * iw + ix) as usize]
                        } else {
                            zp
                        };
                        pack::put(panel, g, two, kk, j, v);
                    }
                    kk += 1;
                }
            }
        }
    }

    /// Exact `sum_k (x[k] - zp) * w[c][k]` for every channel and output pixel, `[out_c][oh * ow]`.
    pub fn run_i32(&self, x: &[u8], zp: u8) -> Vec<i32> {
        let op = self.shape.out_h() * self.shape.out_w();
        let mut out = vec![0i32; self.shape.out_c * op];
        self.for_each_block(x, zp, |p0, n, acc_of| {
            for c in 0..self.shape.out_c {
                let row = &mut out[c * op + p0..][..n];
                for (j, o) in row.iter_mut().enumerate() {
                    *o = acc_of(c, j);
                }
            }
        });
        out
    }

    /// Float outputs `[out_c][oh * ow]`: `(acc - zp * sum(w)) * scale[c] + bias[c]`, then SiLU
    /// if asked.
    pub fn run_f32(&self, x: &[u8], zp: u8, e: Epilogue) -> Vec<f32> {
        let op = self.shape.out_h() * self.shape.out_w();
        let oc = self.shape.out_c;
        let blocks: Vec<(usize, Vec<f32>)> = (0..op.div_ceil(NR * BLOCK_PANELS))
            .into_par_iter()
            .map(|b| {
                let p0 = b * NR * BLOCK_PANELS;
                let n = (op - p0).min(NR * BLOCK_PANELS);
                let mut local = vec![0f32; oc * n];
                self.block(x, zp, p0, n, &mut |c, j, acc| {
                    let y = acc as f32 * e.scale[c] + e.bias[c];
                    local[c * n + j] = if e.silu { y / (1.0 + (-y).exp()) } else { y };
                });
                (p0, local)
            })
            .collect();
        let mut out = vec![0f32; oc * op];
        for (p0, local) in blocks {
            let n = local.len() / oc.max(1);
            for c in 0..oc {
                out[c * op + p0..][..n].copy_from_slice(&local[c * n..][..n]);
            }
        }
        out
    }

    fn for_each_block(&self, x: &[u8], zp: u8, mut f: impl FnMut(usize, usize, &dyn Fn(usize, usize) -> i32)) {
        let op = self.shape.out_h() * self.shape.out_w();
        let oc = self.shape.out_c;
        for b in 0..op.div_ceil(NR * BLOCK_PANELS) {
            let p0 = b * NR * BLOCK_PANELS;
            let n = (op - p0).min(NR * BLOCK_PANELS);
            let mut local = vec![0i32; oc * n];
            self.block(x, zp, p0, n, &mut |c, j, acc| local[c * n + j] = acc);
            f(p0, n, &|c, j| local[c * n + j]);
        }
    }

    /// Runs every channel tile over the `n` pixels from `p0`, calling `emit(c, j, acc)` with the
    /// zero-point-corrected sum of channel `c`, pixel `p0 + j`.
    fn block(&self, x: &[u8], zp: u8, p0: usize, n: usize, emit: &mut dyn FnMut(usize, usize, i32)) {
        let isa = self.weights.isa;
        let k = self.shape.k();
        let kg = pack::groups(isa, k);
        let pb = pack::panel_bytes(isa, k);
        let panels = n.div_ceil(NR);
        let mut packed = vec![0u8; panels * pb];
        for (i, panel) in packed.chunks_mut(pb).enumerate() {
            self.pack_panel(x, zp, p0 + i * NR, panel);
        }
        let zp = i32::from(zp);
        for t in 0..self.shape.out_c.div_ceil(MR) {
            let w = self.weights.tile(t);
            for (i, panel) in packed.chunks(pb).enumerate() {
                let mut acc = [0i32; MR * NR];
                tile(isa, kg, w, panel, &mut acc);
                for r in 0..MR {
                    let c = t * MR + r;
                    if c >= self.shape.out_c {
                        break;
                    }
                    let corr = zp * self.weights.sums[c];
                    for j in 0..NR.min(n - i * NR) {
                        emit(c, i * NR + j, acc[r * NR + j] - corr);
                    }
                }
            }
        }
    }
}
