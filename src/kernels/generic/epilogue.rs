//! The epilogue's portable twins: the same IEEE operations, in the same order, as the SIMD
//! forms in `x86_64::epilogue` and `aarch64::epilogue`, inlining the per-value steps of
//! [`crate::kernels::silu`] and [`crate::kernels::quantize`].

use crate::kernels::epilogue::{Affine, Dest};
use crate::kernels::quantize::Quantizer;
use crate::kernels::silu::silu_one;
use crate::kernels::OC_BLOCK;

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

/// The portable twin of the SIMD epilogues.
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

/// The portable twin of [`crate::kernels::epilogue::quantize_pixels`].
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

/// `rows[o][j] = t[16 j + o]`: the rows of up to 16 channels from pixel-major values.
pub fn transpose_scalar<T: Copy>(t: &[T], rows: &mut [&mut [T]]) {
    for (o, row) in rows.iter_mut().enumerate() {
        for (d, v) in row.iter_mut().zip(t.chunks_exact(OC_BLOCK)) {
            *d = v[o];
        }
    }
}
