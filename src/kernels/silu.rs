//! SiLU `y / (1 + exp(-y))` over a slice, with an exp the compiler can vectorize (Cephes'
//! `expf` polynomial, within 2 ulp of the true exp on its range): libm's scalar `expf` per
//! output was 40% of the int8 convolutions' time. One portable loop, compiled again with
//! AVX2 + FMA (8 wide) and AVX-512 + FMA (16 wide), whose multiply-adds are explicit and
//! fused ([`madd`]`::<true>`, rounded once in every compilation; Rust contracts nothing
//! else), so all three agree bit for bit (tested); and with SSE4.1 for CPUs without FMA,
//! multiplying then adding ([`madd`]`::<false>`), bit for bit its own twin.
//! It runs over every conv output of the int8 graph: each operation saved counts.

use super::madd::{by_fusion, madd};

pub(super) const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that n * LN2_HI is exact for |n| < 2^9.
pub(super) const LN2_HI: f32 = 0.693_359_4;
pub(super) const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting 1.5 * 2^23 rounds to the nearest integer (|x| < 2^22).
pub(super) const ROUND: f32 = 12_582_912.0;
/// The polynomial's coefficients, highest degree first (Horner's order).
pub(super) const POLY: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];
/// `n + POW2_BIAS` holds `n + 127` in its low mantissa bits (see [`exp_approx`]).
pub(super) const POW2_BIAS: f32 = 8_388_735.0;

/// The polynomial at `r` in Estrin's order: three independent pairs, then two steps in
/// `r^2`. Horner's six dependent multiply-adds were the longest chain of the int8 epilogue,
/// which runs once per conv output.
#[inline(always)]
pub(super) fn poly<const F: bool>(r: f32) -> f32 {
    let r2 = r * r;
    let (p01, p23, p45) =
        (madd::<F>(POLY[0], r, POLY[1]), madd::<F>(POLY[2], r, POLY[3]), madd::<F>(POLY[4], r, POLY[5]));
    madd::<F>(madd::<F>(p01, r2, p23), r2, p45)
}

/// `exp(x)` for `x` clamped to [-87, 88] (outside, the result saturates near 0 or f32::MAX).
#[inline(always)]
pub fn exp_approx<const F: bool>(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = madd::<F>(x, LOG2E, ROUND) - ROUND;
    let r = madd::<F>(n, -LN2_LO, madd::<F>(n, -LN2_HI, x));
    let e = madd::<F>(poly::<F>(r), r * r, r) + 1.0;
    // 2^n through the exponent bits, n in [-126, 127] after the clamp: n + 127 + 2^23 keeps
    // n + 127 in its low mantissa bits; shifting them into the exponent field avoids a
    // float-to-int conversion, which Rust's saturating `as` would keep scalar.
    e * f32::from_bits((n + POW2_BIAS).to_bits() << 23)
}

/// SiLU of one value, for the loops here and the convolution epilogue.
#[inline(always)]
pub fn silu_one<const F: bool>(y: f32) -> f32 {
    let s = y / (1.0 + exp_approx::<F>(-y));
    // Below -87 the true value is under 1e-36 but the clamped exp would leave y / 1.6e38.
    if y < -87.0 {
        0.0
    } else {
        s
    }
}

#[inline(always)]
fn silu_body<const F: bool>(v: &mut [f32]) {
    for y in v {
        *y = silu_one::<F>(*y);
    }
}

/// [`silu_one`] of every value, in place, on the widest vectors this CPU has (the same bits
/// as the portable loop: see the module doc).
pub fn silu_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(()) = super::x86_64::widest!((v: &mut [f32]) -> () => silu_body::<true>, silu_body::<false>) {
        return;
    }
    by_fusion!(silu_body(v))
}

/// The portable twin of [`silu_in_place`] on this CPU (for the tests).
#[cfg(test)]
pub fn silu_in_place_scalar(v: &mut [f32]) {
    by_fusion!(silu_body(v))
}
