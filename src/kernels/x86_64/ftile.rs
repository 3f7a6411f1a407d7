//! fp32 micro-kernels (x86_64): AVX-512F, AVX2 + FMA and SSE2 forms of
//! [`crate::kernels::generic::ftile::tile_f32`]. Per tap and input channel: one weight load
//! (16 output channels: one zmm, two ymm or four xmm) and one broadcast per pixel, each
//! folded in with one `vfmadd` (fused, rounded once, as the twin's `mul_add`), or on SSE with
//! a `mulps` then an `addps` (as the unfused twin), so the bits are the twin's.
//! Callers go through [`crate::kernels::fconv::ftile`], which checks the CPU features and the
//! operand lengths.

use std::arch::x86_64::*;

use crate::kernels::fisa::FIsa;
use crate::kernels::OC_BLOCK;

/// Runs one tile of 1 to [`crate::kernels::PX`] pixels on a SIMD `isa`. `x` starts at the
/// tile's first pixel.
///
/// # Safety
/// The CPU has `isa`'s features, and `x` is readable for `(acc.len() - 1) * step + max(taps) +
/// in_c` floats and `w` for `taps.len() * in_c * 16` ([`crate::kernels::fconv::ftile`] checks
/// both).
#[allow(clippy::too_many_arguments)]
pub(in crate::kernels) unsafe fn tile(
    isa: FIsa,
    x: &[f32],
    step: usize,
    taps: &[usize],
    in_c: usize,
    w: &[f32],
    init: &[f32; OC_BLOCK],
    acc: &mut [[f32; OC_BLOCK]],
) {
    macro_rules! by_len {
        ($($n:literal)*) => {
            match acc.len() {
                // SAFETY: the caller's promise, for the `acc.len()` pixels `run` is given.
                $($n => unsafe { run::<$n>(isa, x, step, taps, in_c, w, init, acc) },)*
                n => panic!("a tile has 1 to {} pixels, not {n}", crate::kernels::PX),
            }
        };
    }
    by_len!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// # Safety
/// As [`tile`], for `P` pixels.
#[allow(clippy::too_many_arguments)]
unsafe fn run<const P: usize>(
    isa: FIsa,
    x: &[f32],
    step: usize,
    taps: &[usize],
    in_c: usize,
    w: &[f32],
    init: &[f32; OC_BLOCK],
    acc: &mut [[f32; OC_BLOCK]],
) {
    let acc: &mut [[f32; OC_BLOCK]; P] = acc.try_into().expect("tile() dispatches on the length");
    let (x, w) = (x.as_ptr(), w.as_ptr());
    // SAFETY: the caller guarantees that this CPU has the ISA's features and that every read,
    // up to `(P - 1) * step + max(taps) + in_c` floats of `x` and `taps.len() * in_c * 16`
    // floats of `w`, is in bounds.
    unsafe {
        match isa {
            FIsa::Avx512 => avx512::<P>(x, step, taps, in_c, w, init, acc),
            FIsa::Avx2 => avx2::<P>(x, step, taps, in_c, w, init, acc),
            FIsa::Sse => sse::<P>(x, step, taps, in_c, w, init, acc),
            _ => unreachable!("{isa:?} is not an x86 kernel"),
        }
    }
}

/// One zmm of 16 output channels per pixel.
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + in_c`
/// floats and `w` for `taps.len() * in_c * 16`.
#[target_feature(enable = "avx512f")]
unsafe fn avx512<const P: usize>(
    x: *const f32,
    step: usize,
    taps: &[usize],
    in_c: usize,
    w: *const f32,
    init: &[f32; OC_BLOCK],
    acc: &mut [[f32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees the features and the reads (see `run`).
    unsafe {
        let start = _mm512_loadu_ps(init.as_ptr());
        let mut a = [start; P];
        let offsets: [usize; P] = std::array::from_fn(|j| j * step);
        let mut wp = w;
        for &tap in taps {
            let xt = x.add(tap);
            for c in 0..in_c {
                let wv = _mm512_loadu_ps(wp);
                wp = wp.add(OC_BLOCK);
                let xc = xt.add(c);
                for j in 0..P {
                    a[j] = _mm512_fmadd_ps(_mm512_set1_ps(*xc.add(offsets[j])), wv, a[j]);
                }
            }
        }
        for j in 0..P {
            _mm512_storeu_ps(acc[j].as_mut_ptr(), a[j]);
        }
    }
}

/// Two ymm (channels 0..8, 8..16) per pixel.
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + in_c`
/// floats and `w` for `taps.len() * in_c * 16`.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<const P: usize>(
    x: *const f32,
    step: usize,
    taps: &[usize],
    in_c: usize,
    w: *const f32,
    init: &[f32; OC_BLOCK],
    acc: &mut [[f32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees the features and the reads (see `run`).
    unsafe {
        let start = [_mm256_loadu_ps(init.as_ptr()), _mm256_loadu_ps(init.as_ptr().add(8))];
        let mut a = [start; P];
        let offsets: [usize; P] = std::array::from_fn(|j| j * step);
        let mut wp = w;
        for &tap in taps {
            let xt = x.add(tap);
            for c in 0..in_c {
                let (w0, w1) = (_mm256_loadu_ps(wp), _mm256_loadu_ps(wp.add(8)));
                wp = wp.add(OC_BLOCK);
                let xc = xt.add(c);
                for j in 0..P {
                    let b = _mm256_broadcast_ss(&*xc.add(offsets[j]));
                    a[j][0] = _mm256_fmadd_ps(b, w0, a[j][0]);
                    a[j][1] = _mm256_fmadd_ps(b, w1, a[j][1]);
                }
            }
        }
        for j in 0..P {
            _mm256_storeu_ps(acc[j].as_mut_ptr(), a[j][0]);
            _mm256_storeu_ps(acc[j].as_mut_ptr().add(8), a[j][1]);
        }
    }
}

/// Four xmm (channels 0..4, ..., 12..16) per pixel, a multiply then an add.
///
/// # Safety
/// The CPU has the target features; `x` is readable for `(P - 1) * step + max(taps) + in_c`
/// floats and `w` for `taps.len() * in_c * 16`.
#[target_feature(enable = "sse2")]
unsafe fn sse<const P: usize>(
    x: *const f32,
    step: usize,
    taps: &[usize],
    in_c: usize,
    w: *const f32,
    init: &[f32; OC_BLOCK],
    acc: &mut [[f32; OC_BLOCK]; P],
) {
    // SAFETY: the caller guarantees the reads (see `run`); SSE2 is part of x86_64.
    unsafe {
        let start: [__m128; 4] = std::array::from_fn(|q| _mm_loadu_ps(init.as_ptr().add(4 * q)));
        let mut a = [start; P];
        let offsets: [usize; P] = std::array::from_fn(|j| j * step);
        let mut wp = w;
        for &tap in taps {
            let xt = x.add(tap);
            for c in 0..in_c {
                let wv: [__m128; 4] = std::array::from_fn(|q| _mm_loadu_ps(wp.add(4 * q)));
                wp = wp.add(OC_BLOCK);
                let xc = xt.add(c);
                for j in 0..P {
                    let b = _mm_set1_ps(*xc.add(offsets[j]));
                    for (aq, &w) in a[j].iter_mut().zip(&wv) {
                        *aq = _mm_add_ps(_mm_mul_ps(b, w), *aq);
                    }
                }
            }
        }
        for (out, v) in acc.iter_mut().zip(&a) {
            for (q, &v) in v.iter().enumerate() {
                _mm_storeu_ps(out.as_mut_ptr().add(4 * q), v);
            }
        }
    }
}
