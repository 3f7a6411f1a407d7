//! The convolution epilogue over one row of accumulator tiles (`[pixel][channel]`, 16
//! channels a pixel): `acc * scale + bias` per channel, SiLU if asked, and either the floats
//! or their QuantizeLinear to uint8, all while a pixel's 16 values sit in registers
//! (separate passes for each step wrote and reread the row). The portable twin is in
//! [`super::generic::epilogue`], the SIMD forms in `x86_64::epilogue` and `aarch64::epilogue`;
//! all give the same bits (tested).
//! Also the transposes from those tiles to channel rows.

pub use super::generic::epilogue::{quantize_pixels_scalar, row_scalar, transpose_scalar, Affine, Dest};
use super::quantize::Quantizer;
use super::OC_BLOCK;

/// The epilogue of the pixels of `acc` into `dest`, on the widest vectors this CPU has.
///
/// # Panics
/// If `dest` cannot hold the pixels of `acc`.
pub fn row(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
    dest.check(acc.len());
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86_64::epilogue as x;
        if x::avx512_available() {
            return match dest {
                Dest::F32(out) => x::row_f32_avx512(acc, f, out),
                Dest::U8 { out, stride, q } => x::row_u8_avx512(acc, f, &q, out, stride),
            };
        }
        if x::avx2_available() {
            return match dest {
                Dest::F32(out) => x::row_f32_avx2(acc, f, out),
                Dest::U8 { out, stride, q } => x::row_u8_avx2(acc, f, &q, out, stride),
            };
        }
        if super::x86_64::epilogue_sse::available() {
            return super::x86_64::epilogue_sse::row(acc, f, dest);
        }
    }
    #[cfg(target_arch = "aarch64")]
    return match dest {
        Dest::F32(out) => super::aarch64::epilogue::row_f32(acc, f, out),
        Dest::U8 { out, stride, q } => super::aarch64::epilogue::row_u8(acc, f, &q, out, stride),
    };
    #[allow(unreachable_code)]
    row_scalar(acc, f, dest)
}

/// Pixels of floats quantized with `q`, pixel `j` at `out[j * stride..][..16]`: the second
/// half of [`row`] into [`Dest::U8`], for blocks with several quantized outputs.
///
/// # Panics
/// If `out` cannot hold the pixels of `y`.
pub fn quantize_pixels(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: &mut [u8], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86_64::epilogue as x;
        if x::avx512_available() {
            return x::quantize_avx512(y, q, out, stride);
        }
        if x::avx2_available() {
            return x::quantize_avx2(y, q, out, stride);
        }
        if super::x86_64::epilogue_sse::available() {
            return super::x86_64::epilogue_sse::quantize(y, q, out, stride);
        }
    }
    #[cfg(target_arch = "aarch64")]
    return super::aarch64::epilogue::quantize_pixels(y, q, out, stride);
    #[allow(unreachable_code)]
    quantize_pixels_scalar(y, q, out, stride)
}

/// A value the epilogue writes: f32, or uint8 requantized.
pub trait Lane: Copy + Default + Send + Sync {
    /// [`transpose_scalar`], with SIMD where there is some.
    fn transpose(t: &[Self], rows: &mut [&mut [Self]]);
}

impl Lane for f32 {
    fn transpose(t: &[f32], rows: &mut [&mut [f32]]) {
        #[cfg(target_arch = "x86_64")]
        if super::cpu::has(super::cpu::Feature::Avx2) {
            return super::x86_64::transpose_f32(t, rows);
        }
        #[cfg(target_arch = "aarch64")]
        return super::aarch64::transpose_f32(t, rows);
        #[allow(unreachable_code)]
        transpose_scalar(t, rows)
    }
}

impl Lane for u8 {
    fn transpose(t: &[u8], rows: &mut [&mut [u8]]) {
        #[cfg(target_arch = "x86_64")]
        return super::x86_64::transpose_u8(t, rows);
        #[cfg(target_arch = "aarch64")]
        return super::aarch64::transpose_u8(t, rows);
        #[allow(unreachable_code)]
        transpose_scalar(t, rows)
    }
}

/// `f[j][o] += rows[o][j]`: a residual's 16 channel rows added to the epilogue's pixel-major
/// floats, through SIMD transposes into `gathered` (a scalar loop with 16-float strides was
/// most of the residual blocks' epilogue).
pub(super) fn add_rows(rows: &[&[f32]; OC_BLOCK], f: &mut [[f32; OC_BLOCK]], gathered: &mut [[f32; OC_BLOCK]]) {
    for half in 0..2 {
        let eight: &[&[f32]; 8] = rows[half * 8..][..8].try_into().expect("8 rows");
        super::fconv::gather_pixels(eight, &mut gathered.as_flattened_mut()[half * 8..], OC_BLOCK);
    }
    for (v, g) in f.iter_mut().zip(gathered.iter()) {
        for o in 0..OC_BLOCK {
            v[o] += g[o];
        }
    }
}
