//! The convolution epilogue over one row of accumulator tiles (`[pixel][channel]`, 16
//! channels a pixel): `acc * scale + bias` per channel, SiLU if asked, and either the floats
//! or their QuantizeLinear to uint8, all while a pixel's 16 values sit in registers
//! (separate passes for each step wrote and reread the row). The portable twin here inlines
//! the per-value steps of [`super::silu`] and [`super::quantize`]; the SIMD forms are in
//! [`super::x86_epilogue`] and give the same bits (tested).
//! Also the transposes from those tiles to channel rows.

use super::quantize::Quantizer;
use super::silu::silu_one;
use super::OC_BLOCK;

/// One block's per-channel constants.
#[derive(Debug, Clone, Copy)]
pub struct Affine {
    pub scale: [f32; OC_BLOCK],
    pub bias: [f32; OC_BLOCK],
    pub silu: bool,
}

/// Where a row of the epilogue goes.
pub enum Dest<'a> {
    F32(&'a mut [[f32; OC_BLOCK]]),
    /// Pixel `j`'s 16 bytes at `out[j * stride..]`: 16 for pixel-major scratch, the pixel
    /// size of a channels-last image to write straight into it.
    U8 { out: &'a mut [u8], stride: usize, q: Quantizer },
}

impl Dest<'_> {
    /// # Panics
    /// If `out` cannot hold `pixels` pixels or `stride` is less than 16 bytes.
    fn check(&self, pixels: usize) {
        match self {
            Dest::F32(out) => assert!(out.len() >= pixels, "{} pixels for {pixels}", out.len()),
            Dest::U8 { out, stride, .. } => {
                assert!(*stride >= OC_BLOCK, "pixels of {stride} bytes overlap");
                assert!(pixels == 0 || out.len() >= (pixels - 1) * stride + OC_BLOCK, "{} bytes for {pixels} pixels", out.len());
            }
        }
    }
}

#[inline(always)]
fn pixel<const SILU: bool>(a: &[i32; OC_BLOCK], f: &Affine) -> [f32; OC_BLOCK] {
    let mut y = [0f32; OC_BLOCK];
    for o in 0..OC_BLOCK {
        y[o] = a[o] as f32 * f.scale[o] + f.bias[o];
        if SILU {
            y[o] = silu_one(y[o]);
        }
    }
    y
}

fn scalar_for<const SILU: bool>(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
    match dest {
        Dest::F32(out) => {
            for (y, a) in out.iter_mut().zip(acc) {
                *y = pixel::<SILU>(a, f);
            }
        }
        Dest::U8 { out, stride, q } => {
            for (j, a) in acc.iter().enumerate() {
                let t: &mut [u8; OC_BLOCK] = (&mut out[j * stride..][..OC_BLOCK]).try_into().expect("16 bytes");
                q.chunk(&pixel::<SILU>(a, f), t);
            }
        }
    }
}

/// The portable twin of the AVX-512 and AVX2 epilogues in [`super::x86_epilogue`].
///
/// # Panics
/// If `dest` cannot hold the pixels of `acc`.
pub fn row_scalar(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
    dest.check(acc.len());
    if f.silu {
        scalar_for::<true>(acc, f, dest)
    } else {
        scalar_for::<false>(acc, f, dest)
    }
}

/// The epilogue of the pixels of `acc` into `dest`, on the widest vectors this CPU has.
///
/// # Panics
/// If `dest` cannot hold the pixels of `acc`.
pub fn row(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
    dest.check(acc.len());
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86_epilogue as x;
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
    }
    row_scalar(acc, f, dest)
}

/// The portable twin of [`quantize_pixels`].
///
/// # Panics
/// If `out` cannot hold the pixels of `y`.
pub fn quantize_pixels_scalar(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: &mut [u8], stride: usize) {
    Dest::U8 { out: &mut *out, stride, q: *q }.check(y.len());
    for (j, v) in y.iter().enumerate() {
        let t: &mut [u8; OC_BLOCK] = (&mut out[j * stride..][..OC_BLOCK]).try_into().expect("16 bytes");
        q.chunk(v, t);
    }
}

/// Pixels of floats quantized with `q`, pixel `j` at `out[j * stride..][..16]`: the second
/// half of [`row`] into [`Dest::U8`], for blocks with several quantized outputs.
///
/// # Panics
/// If `out` cannot hold the pixels of `y`.
pub fn quantize_pixels(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: &mut [u8], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86_epilogue as x;
        if x::avx512_available() {
            return x::quantize_avx512(y, q, out, stride);
        }
        if x::avx2_available() {
            return x::quantize_avx2(y, q, out, stride);
        }
    }
    quantize_pixels_scalar(y, q, out, stride)
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
        if super::cpu::has(super::cpu::Feature::Avx2) {
            return super::x86::transpose_f32(t, rows);
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
        return super::x86::transpose_u8(t, rows);
        #[cfg(target_arch = "aarch64")]
        return super::aarch64::transpose_u8(t, rows);
        #[allow(unreachable_code)]
        transpose_scalar(t, rows)
    }
}
