//! `clamp(round_half_even(x / scale) + zero_point, 0, 255)` over a tensor: ONNX
//! QuantizeLinear to uint8, exactly, mostly without dividing (see [`Quantizer::chunk`]). One
//! portable loop, compiled again with AVX2 and AVX-512 so the compiler vectorizes it; every
//! compilation performs the same IEEE operations in the same order (Rust never contracts to
//! FMA), so they agree bit for bit (tested, and against the formula with a true division).

/// Chunks of this many values (one pixel of a channel block) go through the reciprocal
/// together.
pub const CHUNK: usize = 16;
/// A quotient `x * (1 / scale)` this close to a half-integer might round to another integer
/// than `x / scale`; its chunk is redone with the division (see [`Quantizer::chunk`]).
pub(super) const NEAR_HALF: f32 = 1.0 / 4096.0;
/// `v + BYTE_BIAS` holds an integral `v` in [0, 255] in its low mantissa byte.
pub(super) const BYTE_BIAS: f32 = 8_388_608.0;

/// `clamp(round_half_even(q) + zp, 0, 255)`.
#[inline(always)]
fn finish(q: f32, zp: f32) -> u8 {
    // An integral value in [0, 255] plus 2^23 holds itself in the low mantissa byte: no
    // float-to-int conversion, which Rust's saturating `as` would keep scalar.
    ((q.round_ties_even() + zp).clamp(0.0, 255.0) + BYTE_BIAS).to_bits() as u8
}

/// QuantizeLinear with one scale and zero point, for whole tensors (`quantize`) and for
/// the convolution epilogue's 16-channel pixels ([`Quantizer::chunk`]), which must agree.
#[derive(Debug, Clone, Copy)]
pub struct Quantizer {
    pub(super) scale: f32,
    /// `1 / scale`, when both are normal floats; otherwise every chunk divides.
    pub(super) inv: Option<f32>,
    pub(super) zp: f32,
}

impl Quantizer {
    pub fn new(scale: f32, zero_point: u8) -> Quantizer {
        let inv = 1.0 / scale;
        Quantizer { scale, inv: (scale.is_normal() && inv.is_normal()).then_some(inv), zp: f32::from(zero_point) }
    }

    #[inline(always)]
    fn exact(&self, x: &[f32], out: &mut [u8]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = finish(v / self.scale, self.zp);
        }
    }

    /// Division is the slow step, so a chunk multiplies by `inv = 1 / scale` instead, unless
    /// one of its quotients lies within `NEAR_HALF` of a half-integer. Elsewhere both give
    /// the same integer: for `|x / scale| < 512`, `x * inv` is within `512 * 2^-23 = 6.1e-5`
    /// of the true quotient (two roundings of 2^-24) and the correctly rounded `x / scale`
    /// within `2^-16 = 1.5e-5`, together less than `NEAR_HALF = 2.4e-4`; beyond 512 both
    /// saturate.
    #[inline(always)]
    pub fn chunk(&self, x: &[f32; CHUNK], out: &mut [u8; CHUNK]) {
        let Some(inv) = self.inv else { return self.exact(x, out) };
        let mut q = [0f32; CHUNK];
        let mut near = false;
        for (q, &v) in q.iter_mut().zip(x) {
            *q = v * inv;
            // At most 0.5; more than 0.5 - NEAR_HALF is near a tie.
            let from_int = (*q - q.round_ties_even()).abs();
            near |= from_int > 0.5 - NEAR_HALF;
        }
        if near {
            self.exact(x, out);
        } else {
            for (o, &v) in out.iter_mut().zip(&q) {
                *o = finish(v, self.zp);
            }
        }
    }
}

#[inline(always)]
fn quantize_body(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    let q = Quantizer::new(scale, zero_point);
    let (xs, x_rest) = x.as_chunks::<CHUNK>();
    let (os, out_rest) = out.as_chunks_mut::<CHUNK>();
    for (x, o) in xs.iter().zip(os) {
        q.chunk(x, o);
    }
    q.exact(x_rest, out_rest);
}

/// The portable twin.
pub fn quantize_scalar(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    quantize_body(x, scale, zero_point, out)
}

/// Quantizes `x` into `out` (same length), on AVX2 when the CPU has it.
pub fn quantize(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(()) =
        super::x86_64::widest!((x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) -> () => quantize_body)
    {
        return;
    }
    quantize_scalar(x, scale, zero_point, out)
}

/// [`quantize`] in chunks on the kernels' own team, if one is set ([`super::threads`]).
pub fn quantize_parallel(x: &[f32], scale: f32, zero_point: u8, out: &mut [u8]) {
    // Big enough that a chunk outweighs handing it to another thread.
    const CHUNK: usize = 1 << 15;
    super::threads::for_each_item(x.chunks(CHUNK).zip(out.chunks_mut(CHUNK)).collect(), |(x, out)| {
        quantize(x, scale, zero_point, out)
    });
}
