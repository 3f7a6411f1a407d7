//! The epilogue's portable twins: the same IEEE operations, in the same order, as the SIMD
//! forms in `x86_64::epilogue` and `aarch64::epilogue`, inlining the per-value steps of
//! [`crate::kernels::silu`] and [`crate::kernels::quantize`].

use crate::kernels::madd::{fused, madd};
use crate::kernels::quantize::Quantizer;
use crate::kernels::silu::silu_one;
use crate::kernels::{fits, span, OC_BLOCK};

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
    U8 {
        out: &'a mut [u8],
        stride: usize,
        q: Quantizer,
    },
}

impl Dest<'_> {
    /// # Panics
    /// If `out` cannot hold `pixels` pixels or `stride` is less than 16 bytes.
    pub(crate) fn check(&self, pixels: usize) {
        match self {
            Dest::F32(out) => assert!(out.len() >= pixels, "{} pixels for {pixels}", out.len()),
            Dest::U8 { out, stride, .. } => {
                assert!(*stride >= OC_BLOCK, "pixels of {stride} bytes overlap");
                // Without wrapping: the SIMD epilogues write through raw pointers on this check.
                assert!(fits(out.len(), span(pixels, *stride, OC_BLOCK)), "{} bytes for {pixels} pixels", out.len());
            }
        }
    }
}

#[inline(always)]
fn pixel<const SILU: bool, const F: bool>(a: &[i32; OC_BLOCK], f: &Affine) -> [f32; OC_BLOCK] {
    let mut y = [0f32; OC_BLOCK];
    for o in 0..OC_BLOCK {
        // One rounding where the CPU fuses: one instruction on every SIMD form.
        y[o] = madd::<F>(a[o] as f32, f.scale[o], f.bias[o]);
        if SILU {
            y[o] = silu_one::<F>(y[o]);
        }
    }
    y
}

#[inline(always)]
fn scalar_for<const SILU: bool, const F: bool>(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
    match dest {
        Dest::F32(out) => {
            for (y, a) in out.iter_mut().zip(acc) {
                *y = pixel::<SILU, F>(a, f);
            }
        }
        Dest::U8 { out, stride, q } => {
            for (j, a) in acc.iter().enumerate() {
                let t: &mut [u8; OC_BLOCK] = (&mut out[j * stride..][..OC_BLOCK]).try_into().expect("16 bytes");
                q.chunk(&pixel::<SILU, F>(a, f), t);
            }
        }
    }
}

/// The portable twin of the SIMD epilogues of this CPU's kind (fused or not:
/// [`crate::kernels::madd`]).
///
/// # Panics
/// If `dest` cannot hold the pixels of `acc`.
pub fn row_scalar(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
    if fused() {
        row_with::<true>(acc, f, dest)
    } else {
        row_with::<false>(acc, f, dest)
    }
}

/// [`row_scalar`], its multiply-adds fused when `F`: inlined into the SSE4.1 compilation.
///
/// # Panics
/// If `dest` cannot hold the pixels of `acc`.
#[inline(always)]
pub fn row_with<const F: bool>(acc: &[[i32; OC_BLOCK]], f: &Affine, dest: Dest) {
    dest.check(acc.len());
    if f.silu {
        scalar_for::<true, F>(acc, f, dest)
    } else {
        scalar_for::<false, F>(acc, f, dest)
    }
}

/// The portable twin of [`crate::kernels::epilogue::quantize_pixels`].
///
/// # Panics
/// If `out` cannot hold the pixels of `y`.
#[inline(always)]
pub fn quantize_pixels_scalar(y: &[[f32; OC_BLOCK]], q: &Quantizer, out: &mut [u8], stride: usize) {
    Dest::U8 { out: &mut *out, stride, q: *q }.check(y.len());
    for (j, v) in y.iter().enumerate() {
        let t: &mut [u8; OC_BLOCK] = (&mut out[j * stride..][..OC_BLOCK]).try_into().expect("16 bytes");
        q.chunk(v, t);
    }
}

/// `rows[o][j] = t[16 j + o]`: the rows of up to 16 channels from pixel-major values.
pub fn transpose_scalar<T: Copy>(t: &[T], rows: &mut [&mut [T]]) {
    for (o, row) in rows.iter_mut().enumerate() {
        for (d, v) in row.iter_mut().zip(t.chunks_exact(OC_BLOCK)) {
            *d = v[o];
        }
    }
}
