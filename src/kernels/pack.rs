//! Packed operands of the micro-kernels.
//!
//! `k` runs in groups of `G` = [`Isa::k_group`] values that share one 32-bit lane: quads of
//! u8/i8, or pairs of i16 (little-endian). A weight tile holds `MR` channels per group, a
//! pixel panel `NR` pixels per group, so one 32-bit load broadcasts a channel's group and one
//! 32-byte load fetches 8 pixels' groups. `k` beyond the real `K` is zero weights (and zero
//! pixels), channels beyond `out_c` zero weights, pixels beyond the image are computed and
//! dropped.

use super::{Isa, MR, NR};

/// Bytes per value in the packed layout.
fn value_bytes(isa: Isa) -> usize {
    if isa.k_group() == 2 { 2 } else { 1 }
}

/// Number of k-groups for `k` values.
pub fn groups(isa: Isa, k: usize) -> usize {
    k.div_ceil(isa.k_group())
}

#[derive(Debug, Clone)]
pub struct PackedWeights {
    pub isa: Isa,
    pub out_c: usize,
    pub k: usize,
    /// Tiles of `MR` channels, each `groups * MR * G` values.
    pub data: Vec<u8>,
    /// `sum_k w[c][k]`, for the zero-point correction.
    pub sums: Vec<i32>,
    /// Largest `|w|`, to check the kernel is exact for these weights.
    pub max_abs: i32,
}

impl PackedWeights {
    /// `w` is `[out_c][k]`, row-major.
    pub fn new(isa: Isa, w: &[i8], out_c: usize, k: usize) -> PackedWeights {
        assert_eq!(w.len(), out_c * k, "weights are not out_c x k");
        let g = isa.k_group();
        let kg = groups(isa, k);
        let vb = value_bytes(isa);
        let tiles = out_c.div_ceil(MR);
        let tile_bytes = kg * MR * g * vb;
        let mut data = vec![0u8; tiles * tile_bytes];
        for c in 0..out_c {
            let (t, r) = (c / MR, c % MR);
            for (kk, &v) in w[c * k..][..k].iter().enumerate() {
                let at = t * tile_bytes + ((kk / g) * MR + r) * g * vb + (kk % g) * vb;
                if vb == 2 {
                    data[at..at + 2].copy_from_slice(&i16::from(v).to_le_bytes());
                } else {
                    data[at] = v as u8;
                }
            }
        }
        let sums = w.chunks(k.max(1)).map(|row| row.iter().map(|&v| i32::from(v)).sum()).collect();
        let max_abs = w.iter().map(|&v| i32::from(v).abs()).max().unwrap_or(0);
        PackedWeights { isa, out_c, k, data, sums, max_abs }
    }

    pub fn tile_bytes(&self) -> usize {
        groups(self.isa, self.k) * MR * self.isa.k_group() * value_bytes(self.isa)
    }

    pub fn tile(&self, t: usize) -> &[u8] {
        &self.data[t * self.tile_bytes()..][..self.tile_bytes()]
    }
}

/// Bytes of one packed pixel panel for `k` values.
pub fn panel_bytes(isa: Isa, k: usize) -> usize {
    groups(isa, k) * NR * isa.k_group() * value_bytes(isa)
}

/// Writes value `v` (a u8 pixel) for `(kk, j)` of a panel.
#[inline(always)]
pub fn put(panel: &mut [u8], isa_group: usize, two_bytes: bool, kk: usize, j: usize, v: u8) {
    let idx = ((kk / isa_group) * NR + j) * isa_group + kk % isa_group;
    if two_bytes {
        panel[2 * idx] = v;
        panel[2 * idx + 1] = 0;
    } else {
        panel[idx] = v;
    }
}

pub fn is_two_bytes(isa: Isa) -> bool {
    value_bytes(isa) == 2
}

/// Quads: `out[4 * j + t] = rows[t][j]`.
pub fn interleave4_scalar(rows: &[[u8; NR]; 4], out: &mut [u8]) {
    for j in 0..NR {
        for t in 0..4 {
            out[4 * j + t] = rows[t][j];
        }
    }
}

/// Pairs of little-endian i16: `(rows[0][j], rows[1][j])`, zero-extended.
pub fn interleave2_scalar(rows: &[[u8; NR]; 4], out: &mut [u8]) {
    for j in 0..NR {
        out[4 * j] = rows[0][j];
        out[4 * j + 1] = 0;
        out[4 * j + 2] = rows[1][j];
        out[4 * j + 3] = 0;
    }
}

/// One group of `NR` pixels: [`interleave4_scalar`] or, for the pairs layout,
/// [`interleave2_scalar`], with SSE2 on x86_64.
pub fn interleave(two_bytes: bool, rows: &[[u8; NR]; 4], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        if two_bytes {
            super::x86::interleave2(rows, out)
        } else {
            super::x86::interleave4(rows, out)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        if two_bytes {
            interleave2_scalar(rows, out)
        } else {
            interleave4_scalar(rows, out)
        }
    }
}
