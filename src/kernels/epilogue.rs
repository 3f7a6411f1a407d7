//! `acc * scale + bias` per channel over a row of accumulator tiles (`[pixel][channel]`).
//! The portable loop is the twin of an AVX2 one that converts, multiplies and adds one
//! pixel's 16 channels as two vectors: a multiply then an add, never fused, so both give the
//! same floats (tested), the same as the formula written out per value. (Left to itself, the
//! compiler vectorized the portable loop across pixels, with gathers.)

use super::OC_BLOCK;

/// The portable twin.
pub fn scale_bias_scalar(acc: &[[i32; OC_BLOCK]], scale: &[f32; OC_BLOCK], bias: &[f32; OC_BLOCK], out: &mut [f32]) {
    for (y, a) in out.chunks_exact_mut(OC_BLOCK).zip(acc) {
        for o in 0..OC_BLOCK {
            y[o] = a[o] as f32 * scale[o] + bias[o];
        }
    }
}

/// `out[16 * j + o] = acc[j][o] as f32 * scale[o] + bias[o]`; `out` holds `16 * acc.len()`.
pub fn scale_bias(acc: &[[i32; OC_BLOCK]], scale: &[f32; OC_BLOCK], bias: &[f32; OC_BLOCK], out: &mut [f32]) {
    assert_eq!(out.len(), acc.len() * OC_BLOCK, "output is not 16 values per pixel");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return super::x86::scale_bias(acc, scale, bias, out);
    }
    scale_bias_scalar(acc, scale, bias, out)
}

/// `rows[o][j] = t[16 j + o]`: the rows of up to 16 channels from pixel-major values.
pub fn transpose_scalar<T: Copy>(t: &[T], rows: &mut [&mut [T]]) {
    for (o, row) in rows.iter_mut().enumerate() {
        for (d, v) in row.iter_mut().zip(t.chunks_exact(OC_BLOCK)) {
            *d = v[o];
        }
    }
}

/// A value the epilogue writes: f32, or uint8 requantized.
pub trait Lane: Copy + Default + Send + Sync {
    /// [`transpose_scalar`], with SIMD where there is some.
    fn transpose(t: &[Self], rows: &mut [&mut [Self]]);
}

impl Lane for f32 {
    fn transpose(t: &[f32], rows: &mut [&mut [f32]]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return super::x86::transpose_f32(t, rows);
        }
        transpose_scalar(t, rows)
    }
}

impl Lane for u8 {
    fn transpose(t: &[u8], rows: &mut [&mut [u8]]) {
        #[cfg(target_arch = "x86_64")]
        return super::x86::transpose_u8(t, rows);
        #[cfg(not(target_arch = "x86_64"))]
        transpose_scalar(t, rows)
    }
}
