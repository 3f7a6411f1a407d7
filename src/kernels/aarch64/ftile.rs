//! The NEON fp32 micro-kernel (aarch64): [`crate::kernels::generic::ftile::tile_f32`] with
//! four q registers of output channels per pixel. Per tap and input channel: four weight
//! loads and one `FMLA` by scalar per q register and pixel (fused, rounded once, as the
//! twin's `mul_add`), so the bits are the twin's. Callers go through
//! [`crate::kernels::fconv::ftile`], which checks the operand lengths.

use std::arch::aarch64::*;

use crate::kernels::OC_BLOCK;

/// Runs one tile of 1 to [`crate::kernels::PX`] pixels. `x` starts at the tile's first pixel.
///
/// # Safety
/// `x` is readable for `(acc.len() - 1) * step + max(taps) + in_c` floats and `w` for
/// `taps.len() * in_c * 16` ([`crate::kernels::fconv::ftile`] checks both).
pub(in crate::kernels) unsafe fn tile(
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
                $($n => unsafe { run::<$n>(x, step, taps, in_c, w, init, acc.try_into().expect("dispatched on the length")) },)*
                n => panic!("a tile has 1 to {} pixels, not {n}", crate::kernels::PX),
            }
        };
    }
    by_len!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

/// # Safety
/// As [`tile`], for `P` pixels.
unsafe fn run<const P: usize>(
    x: &[f32],
    step: usize,
    taps: &[usize],
    in_c: usize,
    w: &[f32],
    init: &[f32; OC_BLOCK],
    acc: &mut [[f32; OC_BLOCK]; P],
) {
    let (x, w) = (x.as_ptr(), w.as_ptr());
    // SAFETY: NEON is part of every aarch64 CPU; the caller guarantees that every read, up to
    // `(P - 1) * step + max(taps) + in_c` floats of `x` and `taps.len() * in_c * 16` floats of
    // `w`, is in bounds.
    unsafe {
        let i = init.as_ptr();
        let start = [vld1q_f32(i), vld1q_f32(i.add(4)), vld1q_f32(i.add(8)), vld1q_f32(i.add(12))];
        let mut a = [start; P];
        let offsets: [usize; P] = std::array::from_fn(|j| j * step);
        let mut wp = w;
        for &tap in taps {
            let xt = x.add(tap);
            for c in 0..in_c {
                let wv = [vld1q_f32(wp), vld1q_f32(wp.add(4)), vld1q_f32(wp.add(8)), vld1q_f32(wp.add(12))];
                wp = wp.add(OC_BLOCK);
                let xc = xt.add(c);
                for j in 0..P {
                    let b = *xc.add(offsets[j]);
                    for q in 0..4 {
                        a[j][q] = vfmaq_n_f32(a[j][q], wv[q], b);
                    }
                }
            }
        }
        for j in 0..P {
            let p = acc[j].as_mut_ptr();
            for (q, &v) in a[j].iter().enumerate() {
                vst1q_f32(p.add(4 * q), v);
            }
        }
    }
}
