//! qdet's integer convolution kernels: every SIMD micro-kernel against its scalar twin on the
//! same packed operands, and every whole convolution against a naive direct convolution in
//! i64, on random shapes (odd channel counts, 1x1 and 3x3, stride 1 and 2, padding, tiny and
//! larger images). Integers must be identical, not close. The float loops (quantize, SiLU,
//! softmax, DFL), the epilogue and the pools against their portable twins and definitions.

mod bounds;
mod concat_image;
mod conv;
mod epilogue;
mod fconv;
mod float_loops;
mod outputs;
mod pool;
mod segments;
mod winograd8;

use crate::dataset::rng::Rng;
use crate::kernels::conv::{ConvShape, Epilogue, QConv};
use crate::kernels::{pack, tile, Isa, WeightRange, GROUP_BYTES, OC_BLOCK, PX, WGROUP_BYTES};

fn available() -> Vec<Isa> {
    let isas: Vec<Isa> = Isa::all().into_iter().filter(|i| i.available()).collect();
    eprintln!("kernels on this CPU: {isas:?}");
    // Every x86_64 CPU qdet meets has SSSE3 and every aarch64 one NEON: a run that finds no
    // SIMD kernel would hold the portable twins to themselves and pass having tested nothing.
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), not(miri)))]
    assert!(isas.iter().any(|i| *i != i.twin()), "no SIMD integer kernel on this CPU: {isas:?}");
    isas
}

fn weights(rng: &mut Rng, n: usize, max_abs: i32) -> Vec<i8> {
    (0..n).map(|_| (rng.below(2 * max_abs as u64 + 1) as i32 - max_abs) as i8).collect()
}

fn pixels(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.below(256) as u8).collect()
}

/// Direct convolution, zero point subtracted from every tap (padding reads `zp`: real 0).
fn reference(s: &ConvShape, x: &[u8], zp: u8, w: &[i8]) -> Vec<i32> {
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut out = vec![0i32; s.out_c * oh * ow];
    for c in 0..s.out_c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0i64;
                for ci in 0..s.in_c {
                    for ky in 0..s.kh {
                        for kx in 0..s.kw {
                            let iy = (oy * s.stride.0 + ky * s.dilation.0) as isize - s.pad[0] as isize;
                            let ix = (ox * s.stride.1 + kx * s.dilation.1) as isize - s.pad[1] as isize;
                            let inside = iy >= 0 && ix >= 0 && (iy as usize) < s.in_h && (ix as usize) < s.in_w;
                            let v = if inside { x[(ci * s.in_h + iy as usize) * s.in_w + ix as usize] } else { zp };
                            let wv = w[((c * s.in_c + ci) * s.kh + ky) * s.kw + kx];
                            acc += (i64::from(v) - i64::from(zp)) * i64::from(wv);
                        }
                    }
                }
                out[(c * oh + oy) * ow + ox] = i32::try_from(acc).unwrap();
            }
        }
    }
    out
}

/// Random operands in the layouts of `crate::kernels::pack`: pixel groups of 4 u8 or 2 u16
/// (below 256), weight groups of 16 x (4 i8 or 2 i16) in `[-max_abs, max_abs]`.
fn layout_bytes(rng: &mut Rng, isa: Isa, n: usize, weights: bool, max_abs: i32) -> Vec<u8> {
    let vb = isa.value_bytes();
    let mut out = vec![0u8; n];
    for v in out.chunks_exact_mut(vb) {
        let value: i32 =
            if weights { rng.below(2 * max_abs as u64 + 1) as i32 - max_abs } else { rng.below(256) as i32 };
        if vb == 2 {
            v.copy_from_slice(&(value as i16).to_le_bytes());
        } else {
            v[0] = value as u8;
        }
    }
    out
}
