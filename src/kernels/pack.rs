//! The layouts the micro-kernels read.
//!
//! * Image ([`image`]): channels-last with the convolution's padding, `[hp][wp][cp]` values,
//!   `cp` the channels rounded up to whole groups of [`Isa::k_group`]. Values are u8 for
//!   quads and little-endian u16 for pairs, so a pixel's k-group is always 4 bytes. Padding
//!   holds the zero point (real 0.0); the lanes of the rounding-up channels hold anything,
//!   their weights are zero.
//! * Weights ([`PackedWeights`]): per block of [`OC_BLOCK`] output channels, per tap
//!   `(ky, kx)`, per k-group: `OC_BLOCK` x `G` values (i8, or little-endian i16 for pairs),
//!   64 bytes, two 32-byte vectors for channels 0..8 and 8..16. Channels past `out_c` and
//!   past `in_c` are zero weights.

use rayon::prelude::*;

use super::conv::ConvShape;
use super::{Isa, OC_BLOCK, WGROUP_BYTES};

/// Channels after rounding up to whole k-groups.
pub fn padded_channels(isa: Isa, in_c: usize) -> usize {
    in_c.next_multiple_of(isa.k_group())
}

#[derive(Debug, Clone)]
pub struct PackedWeights {
    pub isa: Isa,
    pub out_c: usize,
    /// Bytes of one block of `OC_BLOCK` channels: `taps * groups * 64`.
    pub block_bytes: usize,
    pub data: Vec<u8>,
    /// `sum_k w[c][k]`, for the zero-point correction; zero past `out_c`.
    pub sums: Vec<i32>,
    /// Largest `|w|`, to check the kernel is exact for these weights.
    pub max_abs: i32,
}

impl PackedWeights {
    /// `w` is `[out_c][in_c][kh][kw]`, row-major, as in ONNX.
    pub fn new(isa: Isa, w: &[i8], s: &ConvShape) -> PackedWeights {
        let (out_c, in_c, kh, kw) = (s.out_c, s.in_c, s.kh, s.kw);
        assert_eq!(w.len(), out_c * in_c * kh * kw, "weights are not out_c x in_c x kh x kw");
        let (g, vb) = (isa.k_group(), isa.value_bytes());
        let groups = padded_channels(isa, in_c) / g;
        let block_bytes = kh * kw * groups * WGROUP_BYTES;
        let blocks = out_c.div_ceil(OC_BLOCK);
        let mut data = vec![0u8; blocks * block_bytes];
        let mut sums = vec![0i32; blocks * OC_BLOCK];
        for c in 0..out_c {
            let (b, o) = (c / OC_BLOCK, c % OC_BLOCK);
            for ci in 0..in_c {
                for t in 0..kh * kw {
                    let v = w[(c * in_c + ci) * kh * kw + t];
                    let at = b * block_bytes + (t * groups + ci / g) * WGROUP_BYTES + (o * g + ci % g) * vb;
                    if vb == 2 {
                        data[at..at + 2].copy_from_slice(&i16::from(v).to_le_bytes());
                    } else {
                        data[at] = v as u8;
                    }
                    sums[c] += i32::from(v);
                }
            }
        }
        let max_abs = w.iter().map(|&v| i32::from(v).abs()).max().unwrap_or(0);
        PackedWeights { isa, out_c, block_bytes, data, sums, max_abs }
    }

    pub fn blocks(&self) -> usize {
        self.out_c.div_ceil(OC_BLOCK)
    }

    pub fn block(&self, b: usize) -> &[u8] {
        &self.data[b * self.block_bytes..][..self.block_bytes]
    }
}

/// Writes the padded channels-last image of `x` (`[in_c][in_h][in_w]` u8) for `s` into `out`,
/// reusing its allocation. Rows of 16 pixels or more go 16 at a time through an SSE2
/// interleave.
pub fn image(isa: Isa, s: &ConvShape, x: &[u8], zp: u8, out: &mut Vec<u8>) {
    assert_eq!(x.len(), s.in_c * s.in_h * s.in_w, "image is not in_c x in_h x in_w");
    let (g, vb) = (isa.k_group(), isa.value_bytes());
    let px = padded_channels(isa, s.in_c) * vb;
    let (hp, wp) = (s.in_h + s.pad[0] + s.pad[2], s.in_w + s.pad[1] + s.pad[3]);
    let row_bytes = wp * px;
    out.resize(hp * row_bytes, 0);
    let fill = |dst: &mut [u8]| {
        if vb == 1 {
            dst.fill(zp)
        } else {
            dst.chunks_exact_mut(2).for_each(|v| v.copy_from_slice(&[zp, 0]))
        }
    };
    fill(&mut out[..s.pad[0] * row_bytes]);
    fill(&mut out[(s.pad[0] + s.in_h) * row_bytes..]);
    let plane = s.in_h * s.in_w;
    let interior = &mut out[s.pad[0] * row_bytes..][..s.in_h * row_bytes];
    let fill_row = |y: usize, row: &mut [u8]| {
        fill(&mut row[..s.pad[1] * px]);
        fill(&mut row[(s.pad[1] + s.in_w) * px..]);
        let row = &mut row[s.pad[1] * px..][..s.in_w * px];
        let src = |c: usize, x0: usize| -> &[u8; 16] { x[c * plane + y * s.in_w + x0..][..16].try_into().expect("16 bytes") };
        for c0 in (0..s.in_c).step_by(g) {
            // A partial last group repeats its last channel: those lanes have zero weights.
            let ch = |t: usize| (c0 + t).min(s.in_c - 1);
            if s.in_w >= 16 {
                let mut q = [0u8; 64];
                let mut x0 = 0;
                loop {
                    // The last 16 pixels end at the row's end, overlapping the previous ones.
                    let at = x0.min(s.in_w - 16);
                    if g == 4 {
                        interleave4([src(ch(0), at), src(ch(1), at), src(ch(2), at), src(ch(3), at)], &mut q);
                    } else {
                        interleave2([src(ch(0), at), src(ch(1), at)], &mut q);
                    }
                    for (j, v) in q.chunks_exact(4).enumerate() {
                        row[(at + j) * px + c0 * vb..][..4].copy_from_slice(v);
                    }
                    if at + 16 == s.in_w {
                        break;
                    }
                    x0 += 16;
                }
            } else {
                for xx in 0..s.in_w {
                    for t in 0..g {
                        let at = xx * px + (c0 + t) * vb;
                        row[at] = x[ch(t) * plane + y * s.in_w + xx];
                        if vb == 2 {
                            row[at + 1] = 0;
                        }
                    }
                }
            }
        }
    };
    match super::threads::pool() {
        Some(pool) if s.in_h > 1 => pool.install(|| interior.par_chunks_mut(row_bytes).enumerate().with_min_len(4).for_each(|(y, row)| fill_row(y, row))),
        _ => interior.chunks_mut(row_bytes).enumerate().for_each(|(y, row)| fill_row(y, row)),
    }
}

/// Quads: `out[4 * j + t] = rows[t][j]`.
pub fn interleave4_scalar(rows: [&[u8; 16]; 4], out: &mut [u8; 64]) {
    for j in 0..16 {
        for t in 0..4 {
            out[4 * j + t] = rows[t][j];
        }
    }
}

/// Pairs of little-endian u16: `(rows[0][j], rows[1][j])`, zero-extended.
pub fn interleave2_scalar(rows: [&[u8; 16]; 2], out: &mut [u8; 64]) {
    for j in 0..16 {
        out[4 * j..4 * j + 4].copy_from_slice(&[rows[0][j], 0, rows[1][j], 0]);
    }
}

fn interleave4(rows: [&[u8; 16]; 4], out: &mut [u8; 64]) {
    #[cfg(target_arch = "x86_64")]
    super::x86::interleave4(rows, out);
    #[cfg(not(target_arch = "x86_64"))]
    interleave4_scalar(rows, out);
}

fn interleave2(rows: [&[u8; 16]; 2], out: &mut [u8; 64]) {
    #[cfg(target_arch = "x86_64")]
    super::x86::interleave2(rows, out);
    #[cfg(not(target_arch = "x86_64"))]
    interleave2_scalar(rows, out);
}
