//! `clamp(round_half_even(x / scale) + zero_point, 0, 255)` over a tensor: ONNX
//! QuantizeLinear to uint8, exactly, mostly without dividing (see `quantize_body`). One
//! portable loop, compiled again with AVX2 and AVX-512 so the compiler vectorizes it; every
//! compilation performs the same IEEE operations in the same order (Rust never contracts to
//! FMA), so they agree bit for bit (tested, and against the formula with a true division).

/// Adding then subtracting 1.5 * 2^23 rounds an f32 of magnitude below 2^22 to the nearest
/// integer, ties to even (the FPU's default mode), in two vectorizable adds.
const ROUND: f32 = 12_582_912.0;

/// Chunks of this many values go through the reciprocal together.
const CHUNK: usize = 16;
/// A quotient `x * (1 / scale)` this close to a half-integer might round to another integer
/// than `x / scale`; its chunk is redone with the division (see `quantize_body`).
const NEAR_HALF: f32 = 1.0 / 4096.0;

/// `clamp(round_half_even(q) + zp, 0, 255)`.
#[inline(always)]
fn finish(q: f32, zp: f32) -> u8 {
    // Clamped first: anything past +-512 saturates anyway.
    let r = (q.clamp(-512.0, 512.0) + ROUND) - ROUND;
    // An integral value in [0, 255] plus 2^23 holds itself in the low mantissa byte: no
    // float-to-int conversion, which Rust's saturating `as` would keep scalar.
    ((r + zp).clamp(0.0, 255.0) + 8_388_608.0).to_bits() as u8
}

/// Division is the slow step, so a chunk multiplies by `inv = 1 / scale` instead, unless one
/// of its quotients lies within `NEAR_HALF` of a half-integer. Elsewhere both give the same
/// integer: for `|x / scale| < 512`, `x * inv` is within `512 * 2^-23 = 6.1e-5` of the true
/// quotient (two roundings of 2^-24) and the correctly rounded `x / scale` within
/// `2^-16 = 1.5e-5`, together less than `NEAR_HALF = 2.4e-4`; beyond 512 both saturate.
#[inline(always)]
fn quantize_body(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    let zp = f32::from(zero_point);
    let exact = |x: &[f32], out: &mut [u8]| {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = finish(v / scale, zp);
        }
    };
    let inv = 1.0 / scale;
    if !(scale.is_normal() && inv.is_normal()) {
        return exact(x, out);
    }
    let whole = x.len() / CHUNK * CHUNK;
    for (xs, os) in x[..whole].chunks_exact(CHUNK).zip(out[..whole].chunks_exact_mut(CHUNK)) {
        let mut q = [0f32; CHUNK];
        for (q, &v) in q.iter_mut().zip(xs) {
            *q = v * inv;
        }
        let near = q.iter().fold(false, |near, &v| {
            let from_int = (v - ((v + ROUND) - ROUND)).abs();
            near | ((from_int - 0.5).abs() < NEAR_HALF)
        });
        if near {
            exact(xs, os);
        } else {
            for (o, &v) in os.iter_mut().zip(&q) {
                *o = finish(v, zp);
            }
        }
    }
    exact(&x[whole..], &mut out[whole..]);
}

/// The portable twin.
pub fn quantize_scalar(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    quantize_body(x, scale, zero_point, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    quantize_body(x, scale, zero_point, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_avx512(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    quantize_body(x, scale, zero_point, out)
}

/// Quantizes `x` into `out` (same length), on AVX2 when the CPU has it.
pub fn quantize(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is available (checked above); the function is safe Rust otherwise.
        return unsafe { quantize_avx512(x, scale, zero_point, out) };
    }
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked above); the function is safe Rust otherwise.
        return unsafe { quantize_avx2(x, scale, zero_point, out) };
    }
    quantize_scalar(x, scale, zero_point, out)
}

/// [`quantize`] in chunks on the kernels' own pool, if one is set ([`super::threads`]).
pub fn quantize_parallel(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    use rayon::prelude::*;
    // Big enough that a chunk outweighs handing it to another thread.
    const CHUNK: usize = 1 << 15;
    match super::threads::pool() {
        Some(pool) if x.len() > CHUNK => pool.install(|| {
            x.par_chunks(CHUNK).zip(out.par_chunks_mut(CHUNK)).for_each(|(x, out)| quantize(x, scale, zero_point, out))
        }),
        _ => quantize(x, scale, zero_point, out),
    }
}
