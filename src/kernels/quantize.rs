//! `clamp(round_half_even(x / scale) + zero_point, 0, 255)` over a tensor: ONNX
//! QuantizeLinear to uint8. One portable loop, compiled a second time with AVX2 enabled so the
//! compiler vectorizes it 8 wide; both compilations perform the same IEEE operations in the
//! same order (Rust never contracts to FMA), so they agree bit for bit (tested).

/// Adding then subtracting 1.5 * 2^23 rounds an f32 of magnitude below 2^22 to the nearest
/// integer, ties to even (the FPU's default mode), in two vectorizable adds.
const ROUND: f32 = 12_582_912.0;

#[inline(always)]
fn quantize_body(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    let zp = f32::from(zero_point);
    for (o, &v) in out.iter_mut().zip(x) {
        // Clamped first: anything past +-512 saturates anyway.
        let q = (v / scale).clamp(-512.0, 512.0);
        let r = (q + ROUND) - ROUND;
        // An integral value in [0, 255] plus 2^23 holds itself in the low mantissa byte: no
        // float-to-int conversion, which Rust's saturating `as` would keep scalar.
        *o = ((r + zp).clamp(0.0, 255.0) + 8_388_608.0).to_bits() as u8;
    }
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
