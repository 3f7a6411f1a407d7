//! Post-training int8 quantization, reproducing PPQ 0.6.6 (`ppq.quantization.observer`).
//!
//! # Quantization scheme
//!
//! This is the one place that documents it; it states only what [`observers`] implements.
//!
//! * **Affine map.** A real value `x` is represented by the integer
//!   `q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)` and read back as
//!   `x' = (q - zero_point) * scale`. Rounding is round-half-to-even, as PPQ's `torch.round`
//!   (tensors) and `ppq_numerical_round` (`Decimal` `ROUND_HALF_EVEN`, scalars) do.
//! * **Activations:** per-tensor, asymmetric uint8, `[qmin, qmax] = [0, 255]`
//!   ([`observers::QuantBounds::ASYM_U8`]). From a calibrated range `[min, max]` (see
//!   [`observers::minmax_to_scale_offset`], PPQ's function of the same name), computed in f64:
//!   `min = min(min, 0)`, `max = max(max, 0)` (zero is always representable),
//!   `scale = max((max - min) / (qmax - qmin), 1e-8)`,
//!   `zero_point = round_half_even(-min / scale)` (with the f64 scale; PPQ does not clamp it,
//!   and after the widening to include 0 it lies in `[0, 255]` anyway). The scale is then
//!   stored as f32.
//! * **Symmetric int8** (`zero_point = 0`): `scale = max(2 * max(|min|, |max|) / (qmax - qmin), 1e-8)`.
//!   Note the `2 / (qmax - qmin)`: with the full range `[-128, 127]`
//!   ([`observers::QuantBounds::SYM_I8`]) this is `absmax / 127.5`; with the narrow range
//!   `[-127, 127]` ([`observers::QuantBounds::SYM_I8_NARROW`]) it is `absmax / 127`.
//! * **Weights:** per-output-channel (axis 0) symmetric int8, narrow range `[-127, 127]`
//!   (PPQ's quantizers differ here; ORT's uses `[-128, 127]`, which the same function supports):
//!   `scale[c] = max(absmax(W[c]) / 127, 1e-8)`, `zero_point = 0`
//!   ([`observers::weight_scales_per_channel`]). An all-zero channel gets `scale = 1e-8`.
//!   With 7-bit weights (`--weight-bits 7`) the range is `[-63, 63]`, `scale = absmax / 63`:
//!   then a u8 x s8 pair sum stays below 2^15 (`2 * 255 * 63 = 32130`), so kernels built on
//!   AVX2's saturating `vpmaddubsw` stay exact.
//!   Quantized weights are `clamp(round_half_even(w / scale[c]), qmin, qmax)`.
//! * **Bias:** int32, `zero_point = 0`, `scale[c] = input_scale * weight_scale[c]` (f32
//!   product, [`observers::bias_scales`]), `bias_q = round_half_even(b / scale[c])` in f64.
//!
//! # Which tensors
//!
//! Every Conv with float initializer weights ([`sites`]) is quantized, except the DFL decode
//! conv of the detect head (the Conv reading a Softmax), `--exclude` matches and
//! `--auto-exclude` picks. Its input activation is quantized once per tensor, even when
//! several Convs read it (one QuantizeLinear/DequantizeLinear pair right after the producer,
//! [`qdq`]). Conv outputs, SiLU, Concat, Split, MaxPool, Resize, Add and the head decode stay
//! float: a kernel computes `acc = sum((x_q - zp) * w_q)` in int32, then
//! `y = acc * input_scale * weight_scale[c] + bias_q[c] * bias_scale[c]` in float.
//!
//! A channel Concat read only by one unpadded 1x1 Conv (C2f's, C3's, C3k2's, SPPF's and
//! the neck's) is quantized per input instead ([`sites::concat_parts`]): each input gets its
//! own pair and the Concat joins the dequantized parts, so no part is re-rounded to the grid
//! of the widest. A MaxPool's or nearest Resize's output among the parts takes its input's
//! parameters ([`sites::grid_aliases`]). That Conv's `input_scale` (for its bias) is the
//! finest part's; the kernels add the parts' exact sums in its units
//! ([`crate::kernels::segments`]). `--concat-scales shared` writes the one-grid form.
//!
//! # Observers (activation range calibration)
//!
//! All take one `observe` call per calibration image (PPQ's "batch"), see [`observers`]:
//! min/max, percentile (PPQ default 0.9999, averaged per image), KL divergence (TensorRT
//! entropy calibration, two passes, symmetric only as in PPQ) and MSE (histogram grid search,
//! two passes). KL's threshold `T` (found for symmetric int8, `T = scale * 128`) becomes the
//! uint8 range `[max(min, -T), min(max, T)]` of the observed `[min, max]`, through
//! `minmax_to_scale_offset` ([`calibrate`]).

pub mod analysis;
pub mod calibrate;
pub mod gptq;
pub mod observers;
pub mod qdq;
pub mod reconstruct;
pub mod runner;
pub mod sites;

#[cfg(test)]
mod tests;
