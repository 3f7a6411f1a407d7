//! qdet's fp32 convolution, on the int8 engine's design ([`super::conv`]): the input copied
//! once into a padded channels-last image, a micro-kernel of up to [`PX`] output pixels x
//! [`OC_BLOCK`] output channels walking it in place (no im2col), bias as the starting sums,
//! and an epilogue per row of each channel block (SiLU, a residual Add, the transpose into
//! each reader's channel rows) while the row is in cache. tract's float convolutions
//! (im2col, a generic matmul, SiLU and Add as separate passes over memory) took 1.8x ONNX
//! Runtime's time on the COCO yolov8n.
//!
//! | CPU | kernel | name (`FloatKernel`, the command's `QDET_FKERNEL`) |
//! |---|---|---|
//! | AVX-512F | [`FIsa::Avx512`] (one zmm per pixel, 14 pixels) | `avx512` |
//! | AVX2 + FMA | [`FIsa::Avx2`] (two ymm per pixel, 6 pixels) | `avx2` |
//! | x86_64 without AVX2 | [`FIsa::Sse`] (four xmm per pixel, 2 pixels; multiply, then add) | `sse` |
//! | aarch64 | [`FIsa::Neon`] (four q registers per pixel, 5 pixels) | `neon` |
//!
//! `FloatConvs::Tract` (`QDET_FKERNEL=tract`) keeps tract's convolutions, `scalar` and `scalar-unfused` run the
//! portable twins ([`FIsa::Scalar`], [`FIsa::ScalarUnfused`], slow: for tests and
//! measurements). Every kernel accumulates each output in the same order, with fused
//! multiply-adds where the CPU has them and a multiply then an add on SSE, so each gives its
//! twin's bits (tested).

mod run;
pub mod winograd;

pub use super::fisa::FIsa;
#[cfg(test)]
pub use run::FTarget;
pub use run::Part;

use super::shape::ConvShape;
use super::{block_len, fits, generic, span, tile_end, OC_BLOCK, PX};

/// One tile: for each pixel `j < acc.len()` (at most [`PX`]) and channel `o` of the block,
/// `acc[j][o] = init[o] + sum_t sum_c x[base + j * step + taps[t] + c] * w[t][c][o]`, in that
/// order, with multiply-adds (fused but on [`FIsa::Sse`] and its twin).
///
/// # Panics
/// If `isa` is not available, `acc` is empty or longer than [`PX`], or an operand is too
/// short for the offsets (offsets whose sum is past usize included).
#[allow(clippy::too_many_arguments)]
pub fn ftile(
    isa: FIsa,
    x: &[f32],
    base: usize,
    step: usize,
    taps: &[usize],
    in_c: usize,
    w: &[f32],
    init: &[f32; OC_BLOCK],
    acc: &mut [[f32; OC_BLOCK]],
) {
    let n = acc.len();
    assert!((1..=PX).contains(&n), "a tile has 1 to {PX} pixels, not {n}");
    assert!(fits(w.len(), block_len(taps, in_c, OC_BLOCK)), "weight block too short");
    assert!(fits(x.len(), tile_end(base, n, step, taps, in_c, 1)), "tile reads past the image");
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    let x = &x[base..];
    match isa {
        FIsa::Scalar => generic::ftile::tile_f32::<true>(x, step, taps, in_c, w, init, acc),
        FIsa::ScalarUnfused => generic::ftile::tile_f32::<false>(x, step, taps, in_c, w, init, acc),
        // SAFETY: the ISA is available, and `x` from `base` is readable for `(n - 1) * step +
        // max(taps) + in_c` floats and `w` for `taps.len() * in_c * 16`: both asserted above on
        // sums that cannot wrap.
        #[cfg(target_arch = "x86_64")]
        FIsa::Sse | FIsa::Avx2 | FIsa::Avx512 => unsafe {
            super::x86_64::ftile::tile(isa, x, step, taps, in_c, w, init, acc)
        },
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        FIsa::Neon => unsafe { super::aarch64::ftile::tile(x, step, taps, in_c, w, init, acc) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("checked by available()"),
    }
}

/// `out[j * stride + i] = rows[i][j]`: 8 channel rows into the pixels of a channels-last
/// image, with SIMD where there is some.
///
/// # Panics
/// If the rows differ in length or `out` cannot hold them.
pub fn gather_pixels(rows: &[&[f32]; 8], out: &mut [f32], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if super::cpu::has(super::cpu::Feature::Avx2) {
        return super::x86_64::gather_pixels(rows, out, stride);
    }
    gather_pixels_scalar(rows, out, stride)
}

/// The portable twin of [`gather_pixels`].
pub fn gather_pixels_scalar(rows: &[&[f32]; 8], out: &mut [f32], stride: usize) {
    let n = rows[0].len();
    assert!(rows.iter().all(|r| r.len() == n) && fits(out.len(), span(n, stride, 8)));
    for j in 0..n {
        for (i, r) in rows.iter().enumerate() {
            out[j * stride + i] = r[j];
        }
    }
}

/// Fewer input channels leave Winograd's transforms more work than the multiplies they save.
pub const WINOGRAD_MIN_CHANNELS: usize = 16;

/// An fp32 convolution (group 1) with packed weights.
#[derive(Debug, Clone)]
pub struct FConv {
    pub shape: ConvShape,
    pub isa: FIsa,
    /// Per block of [`OC_BLOCK`] output channels, per tap, per input channel: 16 weights
    /// (zero past `out_c`).
    weights: Vec<f32>,
    /// Per channel, zero past `out_c`.
    bias: Vec<f32>,
    /// Offset of each tap `(ky, kx)` from its output pixel's top-left input pixel, in floats
    /// of the padded image.
    taps: Vec<usize>,
    /// The padded image's height and width: the convolution's padding, and for Winograd
    /// zeros up to whole 4x4 blocks of outputs.
    img_h: usize,
    img_w: usize,
    /// Set for a 3x3 stride-1 convolution run as Winograd's F(4x4, 3x3).
    winograd: Option<winograd::Winograd>,
}

impl FConv {
    /// `w` is `[out_c][in_c][kh][kw]`, `bias` `[out_c]`. A 3x3 stride-1 convolution with at
    /// least [`WINOGRAD_MIN_CHANNELS`] input channels runs as Winograd's F(4x4, 3x3), unless
    /// the process turned Winograd off ([`super::dispatch::Dispatch::winograd`]).
    ///
    /// # Panics
    /// If `w` or `bias` has the wrong size.
    pub fn new(shape: ConvShape, w: &[f32], bias: &[f32], isa: FIsa) -> FConv {
        let s = &shape;
        let fits = s.kh == 3 && s.kw == 3 && s.stride == (1, 1) && s.dilation == (1, 1);
        let winograd = fits && s.in_c >= WINOGRAD_MIN_CHANNELS && super::dispatch::get().winograd;
        FConv::with(shape, w, bias, isa, winograd)
    }

    /// [`FConv::new`], always as a direct convolution.
    #[cfg(test)]
    pub fn direct(shape: ConvShape, w: &[f32], bias: &[f32], isa: FIsa) -> FConv {
        FConv::with(shape, w, bias, isa, false)
    }

    fn with(shape: ConvShape, w: &[f32], bias: &[f32], isa: FIsa, winograd: bool) -> FConv {
        let s = &shape;
        let taps = s.kh * s.kw;
        assert_eq!(w.len(), s.out_c * s.k(), "weights are not out_c x in_c x kh x kw");
        assert_eq!(bias.len(), s.out_c, "bias is not out_c long");
        let blocks = s.out_c.div_ceil(OC_BLOCK);
        let block = taps * s.in_c * OC_BLOCK;
        let mut weights = vec![0f32; blocks * block];
        for c in 0..s.out_c {
            for ci in 0..s.in_c {
                for t in 0..taps {
                    weights[(c / OC_BLOCK) * block + (t * s.in_c + ci) * OC_BLOCK + c % OC_BLOCK] =
                        w[(c * s.in_c + ci) * taps + t];
                }
            }
        }
        let mut padded_bias = bias.to_vec();
        padded_bias.resize(blocks * OC_BLOCK, 0.0);
        let extra = |o: usize| if winograd { o.next_multiple_of(winograd::M) - o } else { 0 };
        let img_h = s.in_h + s.pad[0] + s.pad[2] + extra(s.out_h());
        let img_w = s.in_w + s.pad[1] + s.pad[3] + extra(s.out_w());
        let taps = (0..s.kh)
            .flat_map(|ky| (0..s.kw).map(move |kx| (ky * s.dilation.0 * img_w + kx * s.dilation.1) * s.in_c))
            .collect();
        let winograd = winograd.then(|| winograd::Winograd::new(s.out_c, s.in_c, w));
        FConv { shape, isa, weights, bias: padded_bias, taps, img_h, img_w, winograd }
    }

    pub fn is_winograd(&self) -> bool {
        self.winograd.is_some()
    }

    pub fn blocks(&self) -> usize {
        self.shape.out_c.div_ceil(OC_BLOCK)
    }

    fn block(&self, b: usize) -> &[f32] {
        let n = self.taps.len() * self.shape.in_c * OC_BLOCK;
        &self.weights[b * n..][..n]
    }

    fn init(&self, b: usize) -> &[f32; OC_BLOCK] {
        self.bias[b * OC_BLOCK..][..OC_BLOCK].try_into().expect("bias is padded to whole blocks")
    }

    /// Floats of the padded channels-last image it reads.
    pub fn image_len(&self) -> usize {
        self.img_h * self.img_w * self.shape.in_c
    }
}
