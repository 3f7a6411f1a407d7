//! qdet's integer convolution: uint8 activations x int8 weights, exact int32 sums, for the
//! scheme of [`crate::quant`].
//!
//! A convolution is a GEMM `acc[c][p] = sum_k w[c][k] * x[k][p]` over `k = (ci, ky, kx)` and
//! output pixels `p`, with `x` gathered from the image (im2col; padding reads the zero point,
//! i.e. real 0.0). The sums use the raw `x_q`; the zero point comes off once per output as
//! `zp * sum_k w[c][k]` ([`conv`]).
//!
//! Micro-kernels ([`Isa`]) compute one `MR x NR` tile of `acc` from packed operands ([`pack`]);
//! every SIMD kernel has a scalar twin in [`scalar`] on the same packing, and the tests
//! require identical integers. Exactness per path:
//! * [`Isa::Avx2Madd16`]: operands widened to i16, `vpmaddwd` sums pairs into i32: exact for
//!   any int8 weights.
//! * [`Isa::Avx2Maddubs`]: `vpmaddubsw` multiplies u8 x s8 and adds pairs into a *saturating*
//!   i16; exact only with 7-bit weights (`|w| <= 63`: `2 * 255 * 63 < 2^15`), which
//!   `--weight-bits 7` produces.
//! * [`Isa::AvxVnni`]: `vpdpbusd` (AVX-VNNI or AVX512-VNNI/VL) sums four u8 x s8 products
//!   into i32 without intermediate rounding: exact for any int8 weights.

pub mod conv;
pub mod pack;
pub mod quantize;
pub mod scalar;
pub mod silu;
pub mod threads;
#[cfg(target_arch = "x86_64")]
pub mod x86;

/// Output channels per micro-kernel tile.
pub const MR: usize = 4;
/// Output pixels per micro-kernel tile.
pub const NR: usize = 16;

/// A micro-kernel family. Each packs `k` in groups of [`Isa::k_group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust; pairs layout like `Avx2Madd16`.
    ScalarPairs,
    /// Portable Rust; quads layout like `Avx2Maddubs` and `AvxVnni`.
    ScalarQuads,
    Avx2Madd16,
    Avx2Maddubs,
    AvxVnni,
}

impl Isa {
    /// How many consecutive `k` values sit together in one 32-bit lane.
    pub fn k_group(self) -> usize {
        match self {
            Isa::ScalarPairs | Isa::Avx2Madd16 => 2,
            Isa::ScalarQuads | Isa::Avx2Maddubs | Isa::AvxVnni => 4,
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            Isa::ScalarPairs | Isa::ScalarQuads => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Madd16 | Isa::Avx2Maddubs => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => x86::vnni_available(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Whether its sums are exact for weights in `[-max_abs, max_abs]`.
    pub fn exact_for(self, max_abs_weight: i32) -> bool {
        match self {
            Isa::Avx2Maddubs => max_abs_weight <= 63,
            _ => max_abs_weight <= 128,
        }
    }

    /// The fastest exact kernel on this CPU for weights up to `max_abs_weight`.
    /// `QDET_KERNEL=vnni|maddubs|madd16|scalar` narrows the choice (to measure the path
    /// another CPU would take); a kernel that is unavailable or inexact is still skipped.
    pub fn best(max_abs_weight: i32) -> Isa {
        let wanted = std::env::var("QDET_KERNEL").ok();
        let allowed = |i: &Isa| match wanted.as_deref() {
            None => true,
            Some("vnni") => *i == Isa::AvxVnni,
            Some("maddubs") => *i == Isa::Avx2Maddubs,
            Some("madd16") => *i == Isa::Avx2Madd16,
            Some(_) => false,
        };
        [Isa::AvxVnni, Isa::Avx2Maddubs, Isa::Avx2Madd16]
            .into_iter()
            .filter(allowed)
            .find(|i| i.available() && i.exact_for(max_abs_weight))
            .unwrap_or(Isa::ScalarQuads)
    }

    /// The scalar twin on the same packing.
    pub fn twin(self) -> Isa {
        match self.k_group() {
            2 => Isa::ScalarPairs,
            _ => Isa::ScalarQuads,
        }
    }

    pub fn all() -> [Isa; 5] {
        [Isa::ScalarPairs, Isa::ScalarQuads, Isa::Avx2Madd16, Isa::Avx2Maddubs, Isa::AvxVnni]
    }
}

/// Computes one tile: `acc[r * NR + j] = sum_k w[r][k] * x[k][j]` over `kg` groups of `k`.
/// `w` and `x` are one packed weight tile and one packed pixel panel ([`pack`]).
///
/// # Panics
/// If `isa` is not [`Isa::available`] or the slices are shorter than `kg` groups.
pub fn tile(isa: Isa, kg: usize, w: &[u8], x: &[u8], acc: &mut [i32; MR * NR]) {
    let g = isa.k_group();
    // Pairs are i16 (2 bytes per value), quads are bytes.
    let bytes = if g == 2 { 2 } else { 1 };
    assert!(w.len() >= kg * MR * g * bytes && x.len() >= kg * NR * g * bytes, "packed operands too short");
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    match isa {
        Isa::ScalarPairs => scalar::tile_pairs(kg, w, x, acc),
        Isa::ScalarQuads => scalar::tile_quads(kg, w, x, acc),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Madd16 => x86::tile_madd16(kg, w, x, acc),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Maddubs => x86::tile_maddubs(kg, w, x, acc),
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => x86::tile_vnni(kg, w, x, acc),
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("checked by available()"),
    }
}
