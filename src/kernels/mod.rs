//! qdet's integer convolution: uint8 activations x int8 weights, exact int32 sums, for the
//! scheme of [`crate::quant`].
//!
//! A convolution runs directly on the image, with no im2col: the input is copied once into a
//! padded channels-last (NHWC) layout ([`pack::image`]), padding filled with the zero point
//! (real 0.0), and the reduction `k = (ky, kx, channel)` walks it in place. A micro-kernel
//! computes up to [`PX`] output pixels x [`OC_BLOCK`] output channels: per group of
//! channels it broadcasts each pixel's 4 bytes and multiplies them with two vectors of packed
//! weights. The sums use the raw `x_q`; the zero point comes off once per output as
//! `zp * sum_k w[c][k]` ([`conv`]). The im2col design this replaced spent 40% of its time
//! packing pixels.
//!
//! The code is laid out as tract-linalg's: [`generic`] holds the portable kernels (the twins
//! the SIMD ones are tested against, and the fallback), `x86_64/` and `aarch64/` the SIMD
//! kernels of each architecture, all the `unsafe` SIMD code; [`cpu`] probes the CPU once and
//! [`Isa`] picks the convolution kernel from what it found ([`Isa::best`]). The modules here
//! (convolution driver, layouts, epilogue, quantize, SiLU, softmax, DFL, pools, thread team)
//! dispatch to them. The float loops of [`quantize`], [`silu`], [`softmax`] and [`dfl`] are
//! portable code that x86_64 compiles again for AVX2 and AVX-512 (`x86_64::widest!`); NEON is
//! part of every aarch64 CPU, so there the one compilation is already vectorized.
//!
//! | CPU feature | kernel | `QDET_KERNEL` |
//! |---|---|---|
//! | AVX-512F + AVX512-VNNI | [`Isa::Avx512Vnni`] | `vnni512` |
//! | AVX-512VL + AVX512-VNNI | [`Isa::Avx512VnniYmm`] | `vnni` |
//! | AVX2 | [`Isa::Avx2Maddubs`] (7-bit weights only), [`Isa::Avx2Madd16`] | `maddubs`, `madd16` |
//! | aarch64 `i8mm` | [`Isa::NeonI8mm`] | `i8mm` |
//! | aarch64 `dotprod` | [`Isa::NeonDot`] | `dotprod` |
//! | aarch64 NEON | [`Isa::NeonMull`] | `neon` |
//! | none of these | [`Isa::ScalarQuads`] (QDQ models then run as tract's float simulation) | `scalar` |
//!
//! Every SIMD kernel has a scalar twin in [`generic::tile`] on the same layout, and the
//! tests require identical integers. Exactness per path:
//! * [`Isa::Avx2Madd16`]: activations and weights as i16, `vpmaddwd` sums pairs into i32:
//!   exact for any int8 weights.
//! * [`Isa::Avx2Maddubs`]: `vpmaddubsw` multiplies u8 x s8 and adds pairs into a *saturating*
//!   i16; exact only with 7-bit weights (`|w| <= 63`: `2 * 255 * 63 < 2^15`), which
//!   `--weight-bits 7` produces.
//! * [`Isa::Avx512VnniYmm`], [`Isa::Avx512Vnni`]: `vpdpbusd` (AVX512-VNNI, on 256-bit or 512-bit
//!   vectors) sums four u8 x s8 products into i32 without intermediate rounding: exact for
//!   any int8 weights.
//! * [`Isa::NeonI8mm`] (`SUDOT`, i8 x u8), [`Isa::NeonDot`] (`SDOT` on `x - 128`): four
//!   products into i32, exact for any int8 weights.
//! * [`Isa::NeonMull`]: `SMULL`+`SMLAL` put two i8 x i8 products of `x - 128` in an i16,
//!   exact for `|w| <= 127` (`2 * 128 * 127 < 2^15`), then `SADALP` widens. See [`aarch64`]
//!   for why the activations, not the weights, are shifted.

pub mod bands;
pub mod concat;
pub mod conv;
pub mod depthwise;
pub mod dfl;
pub mod epilogue;
pub mod fconv;
pub mod fisa;
pub mod maxpool;
pub mod outspec;
pub mod pack;
pub mod planes;
pub mod quantize;
pub mod segments;
pub mod shape;
pub mod silu;
pub mod softmax;
pub mod threads;
pub mod upsample;
pub mod vresize;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod cpu;
pub mod generic;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

#[cfg(test)]
mod tests;

/// Output channels per micro-kernel tile: two 8-lane i32 vectors.
pub const OC_BLOCK: usize = 16;
/// Most output pixels per micro-kernel tile (see [`Isa::tile_pixels`]).
pub const PX: usize = 16;
/// Bytes of one k-group of one pixel: 4 u8 (quads) or 2 u16 (pairs).
pub const GROUP_BYTES: usize = 4;
/// Bytes of one k-group of a packed weight block.
pub const WGROUP_BYTES: usize = OC_BLOCK * GROUP_BYTES;

/// A micro-kernel family. Each reads `k` in groups of [`Isa::k_group`] channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust; pairs layout like `Avx2Madd16`.
    ScalarPairs,
    /// Portable Rust; quads layout like `Avx2Maddubs` and the VNNI kernels.
    ScalarQuads,
    /// Portable Rust; quads with the activations shifted by 128, like `NeonDot` and
    /// `NeonMull` ([`Isa::activation_offset`]).
    ScalarQuadsShifted,
    Avx2Madd16,
    Avx2Maddubs,
    /// AVX-512 VNNI's EVEX `vpdpbusd` on 256-bit vectors (needs AVX512-VL). Not the VEX
    /// AVX-VNNI of Alder Lake-N / Intel N100, which has no AVX-512.
    Avx512VnniYmm,
    /// AVX-512 VNNI's `vpdpbusd` on 512-bit vectors.
    Avx512Vnni,
    /// Plain ARMv8 NEON: `SMULL`/`SMLAL`/`SADALP` (Cortex-A53, A72).
    NeonMull,
    /// ARMv8.2 `SDOT` (`dotprod`: Cortex-A55, A76, A78, Neoverse N1).
    NeonDot,
    /// ARMv8.6 `SUDOT` (`i8mm`: Cortex-A510, A710, X2, Neoverse V1, N2).
    NeonI8mm,
}

impl Isa {
    /// How many consecutive channels sit together in one 32-bit lane.
    pub fn k_group(self) -> usize {
        match self {
            Isa::ScalarPairs | Isa::Avx2Madd16 => 2,
            _ => 4,
        }
    }

    /// Bytes per value in the layouts: 1 (u8/i8) for quads, 2 (u16/i16) for pairs.
    pub fn value_bytes(self) -> usize {
        GROUP_BYTES / self.k_group()
    }

    /// What the kernel subtracts from every activation before multiplying: 128 for the Arm
    /// kernels that multiply signed by signed (the image stays uint8; the kernel flips the
    /// top bit). The convolution moves the zero point by the same amount, so the result is
    /// the same `sum (x - zp) w` (see `aarch64/mod.rs`).
    pub fn activation_offset(self) -> i32 {
        match self {
            Isa::ScalarQuadsShifted | Isa::NeonDot | Isa::NeonMull => 128,
            _ => 0,
        }
    }

    /// Output pixels per tile. Each pixel's accumulators are updated once per k-group, so
    /// their number bounds how many multiply-adds are in flight: 16 zmm accumulators cover
    /// `vpdpbusd`'s latency on two ports (6 left the 512-bit kernel latency-bound: 12 ran the
    /// whole int8 model about 12% faster, 16 a few % more); on 256-bit vectors, 2 x 6
    /// accumulators, 2 weight vectors and a broadcast fill AVX2's 16 registers. NEON has 32
    /// registers of 128 bits: 5 pixels x 4 accumulators, 4 weight vectors and 5 pixel
    /// vectors for the dot products; `SMULL` needs 8 accumulators a pixel, 2 pixel vectors
    /// and i16 temporaries, so 2 pixels.
    pub fn tile_pixels(self) -> usize {
        match self {
            Isa::Avx512Vnni => 16,
            Isa::NeonDot | Isa::NeonI8mm => 5,
            Isa::NeonMull => 2,
            _ => 6,
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        use cpu::Feature::*;
        match self {
            Isa::ScalarPairs | Isa::ScalarQuads | Isa::ScalarQuadsShifted => true,
            Isa::Avx2Madd16 | Isa::Avx2Maddubs => cpu::has(Avx2),
            Isa::Avx512VnniYmm => cpu::has(Avx2) && cpu::has(Avx512Vnni) && cpu::has(Avx512Vl),
            Isa::Avx512Vnni => cpu::has(Avx512F) && cpu::has(Avx512Vnni),
            Isa::NeonMull => cpu::has(Neon),
            Isa::NeonDot => cpu::has(Neon) && cpu::has(DotProd),
            Isa::NeonI8mm => cpu::has(Neon) && cpu::has(I8mm),
        }
    }

    /// Whether its sums are exact for weights in `[-max_abs, max_abs]`.
    pub fn exact_for(self, max_abs_weight: i32) -> bool {
        match self {
            Isa::Avx2Maddubs => max_abs_weight <= 63,
            Isa::NeonMull => max_abs_weight <= 127,
            _ => max_abs_weight <= 128,
        }
    }

    /// The name `QDET_KERNEL` selects it by.
    pub fn name(self) -> &'static str {
        match self {
            Isa::ScalarPairs => "scalar-pairs",
            Isa::ScalarQuads => "scalar",
            Isa::ScalarQuadsShifted => "scalar-shifted",
            Isa::Avx2Madd16 => "madd16",
            Isa::Avx2Maddubs => "maddubs",
            Isa::Avx512VnniYmm => "vnni",
            Isa::Avx512Vnni => "vnni512",
            Isa::NeonMull => "neon",
            Isa::NeonDot => "dotprod",
            Isa::NeonI8mm => "i8mm",
        }
    }

    /// The SIMD kernels in order of preference: fastest first.
    const PREFERENCE: [Isa; 7] = [
        Isa::Avx512Vnni,
        Isa::Avx512VnniYmm,
        Isa::Avx2Maddubs,
        Isa::Avx2Madd16,
        Isa::NeonI8mm,
        Isa::NeonDot,
        Isa::NeonMull,
    ];

    /// The fastest exact kernel on this CPU for weights up to `max_abs_weight`.
    /// `QDET_KERNEL=<name>` ([`Isa::name`]: `vnni512|vnni|maddubs|madd16` on x86,
    /// `i8mm|dotprod|neon` on aarch64, `scalar` anywhere) picks one instead (to measure the
    /// path another CPU would take); one this CPU lacks, or inexact for these weights
    /// (`maddubs` on 8-bit weights), is reported once and the fastest exact one runs.
    pub fn best(max_abs_weight: i32) -> Isa {
        Isa::pick(max_abs_weight, Isa::from_env().as_deref())
    }

    /// [`Isa::best`] with `wanted` as the name from the environment.
    fn pick(max_abs_weight: i32, wanted: Option<&str>) -> Isa {
        let usable = |i: &Isa| i.available() && i.exact_for(max_abs_weight);
        let fastest = Isa::PREFERENCE.into_iter().find(usable).unwrap_or(Isa::ScalarQuads);
        let Some(named) = wanted.and_then(|w| Isa::all().into_iter().find(|i| i.name() == w)) else {
            return fastest;
        };
        if usable(&named) {
            return named;
        }
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            let why =
                if named.available() { "is not exact for weights up to" } else { "is not on this CPU; weights up to" };
            eprintln!("qdet: QDET_KERNEL={} {why} {max_abs_weight}: using {}", named.name(), fastest.name());
        });
        fastest
    }

    /// `QDET_KERNEL`, when it names a kernel. A misspelt name would otherwise quietly measure
    /// the portable kernel, so it is reported (once) and ignored.
    fn from_env() -> Option<String> {
        static WARNED: std::sync::Once = std::sync::Once::new();
        let wanted = std::env::var("QDET_KERNEL").ok().filter(|w| !w.is_empty())?;
        if Isa::all().iter().any(|i| i.name() == wanted) {
            return Some(wanted);
        }
        WARNED.call_once(|| {
            let names: Vec<&str> = Isa::all().iter().map(|i| i.name()).collect();
            eprintln!("qdet: QDET_KERNEL={wanted:?} is not a kernel ({}); using the fastest", names.join(", "));
        });
        None
    }

    /// `wanted` if it is available and exact for these weights, else [`Isa::best`].
    pub fn choose(max_abs_weight: i32, wanted: Option<Isa>) -> Isa {
        match wanted {
            Some(i) if i.available() && i.exact_for(max_abs_weight) => i,
            _ => Isa::best(max_abs_weight),
        }
    }

    /// Whether this CPU has a SIMD kernel at all (the portable one is about 8x slower than
    /// tract's float path, so without one a QDQ model is better simulated in float).
    pub fn simd_available() -> bool {
        Isa::PREFERENCE.into_iter().any(Isa::available)
    }

    /// The scalar twin on the same layout.
    pub fn twin(self) -> Isa {
        match (self.k_group(), self.activation_offset()) {
            (2, _) => Isa::ScalarPairs,
            (_, 0) => Isa::ScalarQuads,
            _ => Isa::ScalarQuadsShifted,
        }
    }

    pub fn all() -> [Isa; 10] {
        [
            Isa::ScalarPairs,
            Isa::ScalarQuads,
            Isa::ScalarQuadsShifted,
            Isa::Avx2Madd16,
            Isa::Avx2Maddubs,
            Isa::Avx512VnniYmm,
            Isa::Avx512Vnni,
            Isa::NeonMull,
            Isa::NeonDot,
            Isa::NeonI8mm,
        ]
    }
}

/// One tile: for each pixel `j < acc.len()` (at most [`PX`]; [`Isa::tile_pixels`] is the
/// fastest) and channel `o` of the block, `acc[j][o] = init[o] + sum_t sum_g (x[base + j * step + taps[t] + 4 g ..][..4] - off) . w[t][g][o]`
/// with `off` the [`Isa::activation_offset`]
/// over `groups` k-groups per tap; `x` is a padded image of [`pack::image`] and `w` one weight
/// block of [`pack::PackedWeights`].
///
/// # Panics
/// If `isa` is not [`Isa::available`], `acc` is empty or longer than [`PX`], or an operand is
/// too short for the offsets.
#[allow(clippy::too_many_arguments)]
pub fn tile(
    isa: Isa,
    x: &[u8],
    base: usize,
    step: usize,
    taps: &[usize],
    groups: usize,
    w: &[u8],
    init: &[i32; OC_BLOCK],
    acc: &mut [[i32; OC_BLOCK]],
) {
    let n = acc.len();
    assert!((1..=PX).contains(&n), "a tile has 1 to {PX} pixels, not {n}");
    assert!(w.len() >= taps.len() * groups * WGROUP_BYTES, "weight block too short");
    let reach = taps.iter().max().map_or(0, |t| t + groups * GROUP_BYTES);
    assert!(base + (n - 1) * step + reach <= x.len(), "tile reads past the image");
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    let x = &x[base..];
    match isa {
        Isa::ScalarPairs => generic::tile::tile_pairs(x, step, taps, groups, w, init, acc),
        Isa::ScalarQuads => generic::tile::tile_quads(x, step, taps, groups, w, init, acc),
        Isa::ScalarQuadsShifted => generic::tile::tile_quads_shifted(x, step, taps, groups, w, init, acc),
        #[cfg(target_arch = "x86_64")]
        _ => x86_64::tile(isa, x, step, taps, groups, w, init, acc),
        #[cfg(target_arch = "aarch64")]
        _ => aarch64::tile(isa, x, step, taps, groups, w, init, acc),
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        _ => unreachable!("checked by available()"),
    }
}
