//! Portable micro-kernels: the twins the SIMD kernels are tested against, and the fallback
//! on CPUs without them. Same packed layouts, plain integer arithmetic.

use super::{MR, NR};

/// Pairs layout: per k-pair, the weight tile holds `MR` x (i16, i16) and the panel `NR` x
/// (i16, i16), little-endian.
pub fn tile_pairs(kg: usize, w: &[u8], x: &[u8], acc: &mut [i32; MR * NR]) {
    let i16_at = |s: &[u8], i: usize| i32::from(i16::from_le_bytes([s[2 * i], s[2 * i + 1]]));
    for g in 0..kg {
        for r in 0..MR {
            let (w0, w1) = (i16_at(w, (g * MR + r) * 2), i16_at(w, (g * MR + r) * 2 + 1));
            for j in 0..NR {
                let (x0, x1) = (i16_at(x, (g * NR + j) * 2), i16_at(x, (g * NR + j) * 2 + 1));
                acc[r * NR + j] += w0 * x0 + w1 * x1;
            }
        }
    }
}

/// Quads layout: per k-quad, the weight tile holds `MR` x 4 i8 and the panel `NR` x 4 u8.
pub fn tile_quads(kg: usize, w: &[u8], x: &[u8], acc: &mut [i32; MR * NR]) {
    for g in 0..kg {
        for r in 0..MR {
            let wq = &w[(g * MR + r) * 4..][..4];
            for j in 0..NR {
                let xq = &x[(g * NR + j) * 4..][..4];
                acc[r * NR + j] += (0..4).map(|t| i32::from(wq[t] as i8) * i32::from(xq[t])).sum::<i32>();
            }
        }
    }
}
