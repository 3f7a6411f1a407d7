//! The portable twins of the SIMD interleaves that build the quads and pairs image layouts
//! of [`crate::kernels::pack`].

/// Quads: `out[4 * j + t] = rows[t][j]`.
#[cfg(any(test, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub fn interleave4_scalar(rows: [&[u8; 16]; 4], out: &mut [u8; 64]) {
    for j in 0..16 {
        for t in 0..4 {
            out[4 * j + t] = rows[t][j];
        }
    }
}

/// Pairs of little-endian u16: `(rows[0][j], rows[1][j])`, zero-extended.
#[cfg(any(test, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub fn interleave2_scalar(rows: [&[u8; 16]; 2], out: &mut [u8; 64]) {
    for j in 0..16 {
        out[4 * j..4 * j + 4].copy_from_slice(&[rows[0][j], 0, rows[1][j], 0]);
    }
}
