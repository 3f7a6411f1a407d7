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
//! | CPU feature | kernel | name (`Kernel`, the command's `QDET_KERNEL`) |
//! |---|---|---|
//! | AVX-512F + AVX512-VNNI | [`Isa::Avx512Vnni`] | `vnni512` |
//! | AVX-512VL + AVX512-VNNI | [`Isa::Avx512VnniYmm`] | `vnni` |
//! | AVX-VNNI (VEX, no AVX-512) | [`Isa::AvxVnni`] | `avxvnni` |
//! | AVX2 | [`Isa::Avx2Maddubs`] (pair-bounded weights only), [`Isa::Avx2Madd16`] | `maddubs`, `madd16` |
//! | SSSE3 (no AVX2) | [`Isa::SseMaddubs`] (pair-bounded weights only), [`Isa::SseMadd16`] | `ssse3`, `sse-madd16` |
//! | aarch64 `i8mm` | [`Isa::NeonI8mm`] | `i8mm` |
//! | aarch64 `dotprod` | [`Isa::NeonDot`] | `dotprod` |
//! | aarch64 NEON | [`Isa::NeonMull`] | `neon` |
//! | none of these | [`Isa::ScalarQuads`] (QDQ models then run as tract's float simulation) | `scalar` |
//!
//! On the AVX2 and SSSE3 rows the 3x3 stride-1 convolutions run as the exact integer
//! Winograd F(2x4, 3x3) of [`winograd8`], its products on that row's `pmaddwd` kernel.
//!
//! Every SIMD kernel has a scalar twin in [`generic::tile`] on the same layout, and the
//! tests require identical integers. Exactness per path:
//! * [`Isa::Avx2Madd16`]: activations and weights as i16, `vpmaddwd` sums pairs into i32:
//!   exact for any int8 weights.
//! * [`Isa::Avx2Maddubs`]: `vpmaddubsw` multiplies u8 x s8 and adds pairs of neighbouring
//!   input channels into a *saturating* i16; exact for any activations when each pair's
//!   weights of one sign sum to at most 128 in magnitude (`255 * 128 < 2^15`;
//!   [`WeightRange::max_pair`]): always for 7-bit weights (`--weight-bits 7`), and for the
//!   pair-bounded 8-bit weights `calibrate` writes (`--weight-pairs bounded`).
//! * [`Isa::Avx512VnniYmm`], [`Isa::Avx512Vnni`], [`Isa::AvxVnni`]: `vpdpbusd` (AVX512-VNNI on
//!   256-bit or 512-bit vectors, or AVX-VNNI's VEX form) sums four u8 x s8 products into i32
//!   without intermediate rounding: exact for any int8 weights.
//! * [`Isa::NeonI8mm`] (`SUDOT`, i8 x u8), [`Isa::NeonDot`] (`SDOT` on `x - 128`): four
//!   products into i32, exact for any int8 weights.
//! * [`Isa::NeonMull`]: `SMULL`+`SMLAL` put two i8 x i8 products of `x - 128` in an i16,
//!   exact for `|w| <= 127` (`2 * 128 * 127 < 2^15`), then `SADALP` widens. See [`aarch64`]
//!   for why the activations, not the weights, are shifted.

// Inside an `unsafe fn` too, each unsafe operation sits in an `unsafe {}` block that says
// why it holds; the function's `# Safety` says only what its callers promise.
#![warn(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod bands;
pub mod concat;
pub mod conv;
pub mod depthwise;
pub mod dfl;
pub mod epilogue;
pub mod fconv;
pub mod fisa;
pub mod madd;
pub mod maxpool;
pub mod outspec;
pub mod pack;
pub mod planes;
pub mod quantize;
pub mod segments;
pub mod shape;
pub mod silu;
pub mod softmax;
pub mod tensors;
pub mod threads;
pub mod upsample;
pub mod vresize;
pub mod winograd8;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod cpu;
pub mod dispatch;
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
    /// `pmaddwd` on u16 / i16 pairs, 128-bit vectors: x86_64 CPUs without AVX2 (Celeron J /
    /// N of NAS boxes, Atom). Offered with SSSE3, though `pmaddwd` is SSE2.
    SseMadd16,
    /// SSSE3 `pmaddubsw` on quads, 128-bit vectors; pair-bounded weights only.
    SseMaddubs,
    /// AVX-512 VNNI's EVEX `vpdpbusd` on 256-bit vectors (needs AVX512-VL). Not the VEX
    /// AVX-VNNI of Alder Lake-N / Intel N100, which has no AVX-512.
    Avx512VnniYmm,
    /// AVX-512 VNNI's `vpdpbusd` on 512-bit vectors.
    Avx512Vnni,
    /// AVX-VNNI's VEX `vpdpbusd` on 256-bit vectors: Alder Lake-N (Intel N100 / N97 / N305),
    /// Alder and Raptor Lake, which have no AVX-512.
    AvxVnni,
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
            Isa::ScalarPairs | Isa::Avx2Madd16 | Isa::SseMadd16 => 2,
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
    /// and i16 temporaries, so 2 pixels; SSE likewise has 4 vectors of accumulators a pixel in
    /// 16 registers, so 2. `vpmaddubsw` needs a temporary and a vector of ones beside the
    /// broadcast: 6 pixels spilled an accumulator to the stack every k-group, 5 fit.
    pub fn tile_pixels(self) -> usize {
        match self {
            Isa::Avx512Vnni => 16,
            Isa::NeonDot | Isa::NeonI8mm => 5,
            Isa::NeonMull | Isa::SseMaddubs | Isa::SseMadd16 => 2,
            Isa::Avx2Maddubs => 5,
            _ => 6,
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        use cpu::Feature::*;
        match self {
            Isa::ScalarPairs | Isa::ScalarQuads | Isa::ScalarQuadsShifted => true,
            Isa::Avx2Madd16 | Isa::Avx2Maddubs => cpu::has(Avx2),
            Isa::SseMadd16 | Isa::SseMaddubs => cpu::has(Ssse3),
            Isa::Avx512VnniYmm => cpu::has(Avx2) && cpu::has(Avx512Vnni) && cpu::has(Avx512Vl),
            Isa::Avx512Vnni => cpu::has(Avx512F) && cpu::has(Avx512Vnni),
            Isa::AvxVnni => cpu::has(Avx2) && cpu::has(AvxVnni),
            Isa::NeonMull => cpu::has(Neon),
            Isa::NeonDot => cpu::has(Neon) && cpu::has(DotProd),
            Isa::NeonI8mm => cpu::has(Neon) && cpu::has(I8mm),
        }
    }

    /// Whether its sums are exact for any activations with weights in `range`.
    pub fn exact_for(self, range: WeightRange) -> bool {
        match self {
            Isa::Avx2Maddubs | Isa::SseMaddubs => range.max_pair <= 128,
            Isa::NeonMull => range.max_abs <= 127,
            _ => range.max_abs <= 128,
        }
    }

    /// The name it is asked for by (`Kernel`'s, and `QDET_KERNEL`'s of the command).
    pub fn name(self) -> &'static str {
        match self {
            Isa::ScalarPairs => "scalar-pairs",
            Isa::ScalarQuads => "scalar",
            Isa::ScalarQuadsShifted => "scalar-shifted",
            Isa::Avx2Madd16 => "madd16",
            Isa::Avx2Maddubs => "maddubs",
            Isa::SseMadd16 => "sse-madd16",
            Isa::SseMaddubs => "ssse3",
            Isa::Avx512VnniYmm => "vnni",
            Isa::Avx512Vnni => "vnni512",
            Isa::AvxVnni => "avxvnni",
            Isa::NeonMull => "neon",
            Isa::NeonDot => "dotprod",
            Isa::NeonI8mm => "i8mm",
        }
    }

    /// The SIMD kernels in order of preference: fastest first.
    const PREFERENCE: [Isa; 10] = [
        Isa::Avx512Vnni,
        Isa::Avx512VnniYmm,
        Isa::AvxVnni,
        Isa::Avx2Maddubs,
        Isa::Avx2Madd16,
        Isa::SseMaddubs,
        Isa::SseMadd16,
        Isa::NeonI8mm,
        Isa::NeonDot,
        Isa::NeonMull,
    ];

    /// The fastest exact kernel on this CPU for weights in `range`, or the one the process
    /// asked for ([`dispatch::Dispatch::int8`]: to measure another path of this CPU; the CPU
    /// class caps the CPU itself, see `kernels/cpu.rs`). One this CPU lacks, or inexact for
    /// these weights (`maddubs` on unbounded 8-bit weights), is reported once and the fastest
    /// exact one runs.
    pub fn best(range: WeightRange) -> Isa {
        Isa::pick(range, dispatch::get().int8)
    }

    /// [`Isa::best`] with `wanted` as the kernel asked for.
    fn pick(range: WeightRange, wanted: Option<Isa>) -> Isa {
        let usable = |i: &Isa| i.available() && i.exact_for(range);
        let fastest = Isa::PREFERENCE.into_iter().find(usable).unwrap_or(Isa::ScalarQuads);
        let Some(named) = wanted else {
            return fastest;
        };
        if usable(&named) {
            return named;
        }
        // Asked for once for the process, so said once: a benchmark of a path this CPU
        // cannot take would otherwise quietly measure another.
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            let why = if named.available() { "is not exact for weights of" } else { "is not on this CPU; weights of" };
            eprintln!("qdet: the int8 kernel {} {why} {range}: using {}", named.name(), fastest.name());
        });
        fastest
    }

    /// `wanted` if it is available and exact for these weights, else [`Isa::best`].
    pub fn choose(range: WeightRange, wanted: Option<Isa>) -> Isa {
        match wanted {
            Some(i) if i.available() && i.exact_for(range) => i,
            _ => Isa::best(range),
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

    pub fn all() -> [Isa; 13] {
        [
            Isa::ScalarPairs,
            Isa::ScalarQuads,
            Isa::ScalarQuadsShifted,
            Isa::Avx2Madd16,
            Isa::Avx2Maddubs,
            Isa::SseMadd16,
            Isa::SseMaddubs,
            Isa::Avx512VnniYmm,
            Isa::Avx512Vnni,
            Isa::AvxVnni,
            Isa::NeonMull,
            Isa::NeonDot,
            Isa::NeonI8mm,
        ]
    }
}

/// What a kernel's exactness depends on in a conv's int8 weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightRange {
    /// The largest `|w|`.
    pub max_abs: i32,
    /// Over every output channel, tap and pair of input channels `(2i, 2i + 1)` (the pairs
    /// `vpmaddubsw` sums into one i16; the last channel of an odd count pairs with padding),
    /// the larger of the pair's positive weights' sum and its negative weights' magnitude.
    /// Weights of opposite sign never saturate the sum: `255 * 127 < 2^15`.
    pub max_pair: i32,
}

impl WeightRange {
    /// The range of `w`, `[out_c][in_c][taps]` as in ONNX (`taps = kh * kw`).
    ///
    /// # Panics
    /// If `w` is not whole rows of `in_c * taps`.
    pub fn of(w: &[i8], in_c: usize, taps: usize) -> WeightRange {
        assert!(in_c * taps > 0 && w.len().is_multiple_of(in_c * taps), "weights are not whole rows of in_c x taps");
        let max_abs = w.iter().map(|&v| i32::from(v).abs()).max().unwrap_or(0);
        let mut max_pair = 0;
        for row in w.chunks_exact(in_c * taps) {
            for c in (0..in_c).step_by(2) {
                for t in 0..taps {
                    let a = i32::from(row[c * taps + t]);
                    let b = if c + 1 < in_c { i32::from(row[(c + 1) * taps + t]) } else { 0 };
                    let pos = a.max(0) + b.max(0);
                    let neg = -(a.min(0) + b.min(0));
                    max_pair = max_pair.max(pos).max(neg);
                }
            }
        }
        WeightRange { max_abs, max_pair }
    }

    /// The widest range of weights in `[-max_abs, max_abs]`.
    pub fn within(max_abs: i32) -> WeightRange {
        WeightRange { max_abs, max_pair: 2 * max_abs }
    }
}

impl std::fmt::Display for WeightRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "|w| <= {} (pairs <= {})", self.max_abs, self.max_pair)
    }
}

/// One tile: for each pixel `j < acc.len()` (at most `PX`; [`Isa::tile_pixels`] is the
/// fastest) and channel `o` of the block, `acc[j][o] = init[o] + sum_t sum_g (x[base + j * step + taps[t] + 4 g ..][..4] - off) . w[t][g][o]`
/// with `off` the [`Isa::activation_offset`]
/// over `groups` k-groups per tap; `x` is a padded image of `pack::image` and `w` one weight
/// block of `pack::PackedWeights`.
///
/// # Panics
/// If `isa` is not [`Isa::available`], `acc` is empty or longer than `PX`, or an operand is
/// too short for the offsets (offsets whose sum is past usize included).
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
    assert!(fits(w.len(), block_len(taps, groups, WGROUP_BYTES)), "weight block too short");
    assert!(fits(x.len(), tile_end(base, n, step, taps, groups, GROUP_BYTES)), "tile reads past the image");
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    let x = &x[base..];
    match isa {
        Isa::ScalarPairs => generic::tile::tile_pairs(x, step, taps, groups, w, init, acc),
        Isa::ScalarQuads => generic::tile::tile_quads(x, step, taps, groups, w, init, acc),
        Isa::ScalarQuadsShifted => generic::tile::tile_quads_shifted(x, step, taps, groups, w, init, acc),
        // SAFETY: the ISA is available, and `x` from `base` is readable for `(n - 1) * step +
        // max(taps) + groups * 4` bytes and `w` for `taps.len() * groups * 64`: both asserted
        // above on sums that cannot wrap.
        #[cfg(target_arch = "x86_64")]
        _ => unsafe { x86_64::tile(isa, x, step, taps, groups, w, init, acc) },
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        _ => unsafe { aarch64::tile(isa, x, step, taps, groups, w, init, acc) },
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        _ => unreachable!("checked by available()"),
    }
}

/// [`tile`] over any number of pixels `j < acc.len()`, in tiles of [`Isa::tile_pixels`], with
/// the operands checked once for the whole run (a tile's own checks were a few % of an
/// inference over the many short runs of Winograd's products).
///
/// # Panics
/// As [`tile`], for the whole run.
#[allow(clippy::too_many_arguments)]
pub fn tiles(
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
    if acc.is_empty() {
        return;
    }
    let tp = isa.tile_pixels();
    let simd = isa != isa.twin();
    if !simd || cfg!(not(any(target_arch = "x86_64", target_arch = "aarch64"))) {
        for (i, chunk) in acc.chunks_mut(tp).enumerate() {
            tile(isa, x, base + i * tp * step, step, taps, groups, w, init, chunk);
        }
        return;
    }
    assert!(fits(w.len(), block_len(taps, groups, WGROUP_BYTES)), "weight block too short");
    assert!(fits(x.len(), tile_end(base, acc.len(), step, taps, groups, GROUP_BYTES)), "tiles read past the image");
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    let x = &x[base..];
    for (i, chunk) in acc.chunks_mut(tp).enumerate() {
        let x = &x[i * tp * step..];
        // SAFETY: the ISA is available, and every tile's reads are within the run's, whose
        // end was checked above on sums that cannot wrap (the chunk's first pixel is the
        // run's pixel `i * tp`, and it has at most the run's remaining pixels).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86_64::tile(isa, x, step, taps, groups, w, init, chunk)
        };
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        unsafe {
            aarch64::tile(isa, x, step, taps, groups, w, init, chunk)
        };
    }
}

/// `base + (pixels - 1) * step + max(taps) + groups * unit`: one past the last element a tile
/// of `pixels >= 1` pixels reads, `groups` groups of `unit` elements at each tap of each
/// pixel. `None` when it does not fit in a usize: a release build wraps on overflow, and a
/// wrapped end would pass the bounds check the SIMD kernels rely on.
pub(crate) fn tile_end(
    base: usize,
    pixels: usize,
    step: usize,
    taps: &[usize],
    groups: usize,
    unit: usize,
) -> Option<usize> {
    let row = groups.checked_mul(unit)?;
    let reach = taps.iter().max().map_or(Some(0), |&t| t.checked_add(row))?;
    pixels.checked_sub(1)?.checked_mul(step)?.checked_add(reach)?.checked_add(base)
}

/// `taps.len() * groups * unit`: the length of a packed weight block, `None` past usize.
pub(crate) fn block_len(taps: &[usize], groups: usize, unit: usize) -> Option<usize> {
    taps.len().checked_mul(groups)?.checked_mul(unit)
}

/// Where `count` runs of `width` elements, `stride` apart, end: 0 for none, `None` past
/// usize (see [`tile_end`]).
pub(crate) fn span(count: usize, stride: usize, width: usize) -> Option<usize> {
    match count {
        0 => Some(0),
        n => (n - 1).checked_mul(stride)?.checked_add(width),
    }
}

/// Whether a slice of `len` elements holds `need` (`None`: more than any slice holds).
pub(crate) fn fits(len: usize, need: Option<usize>) -> bool {
    need.is_some_and(|need| need <= len)
}
