//! The graph rewrites qdet makes to a typed, concrete-shaped model before tract optimizes it,
//! as one ordered list of named passes, [`PASSES`], run by [`run`] (from
//! [`crate::model::optimize_with`]). Each pass lives in its own file, which says what it
//! rewrites and why; [`Report`] keeps how many rewrites each one did, which
//! `qdet bench --profile` prints. In order:
//!
//! 1. [`f16_to_f32`]: an fp16 export's weights and ops widened to f32 (tract's
//!    `FloatPrecisionTranslator`).
//! 2. [`dfl`]: the detect head's DFL decode as one op.
//! 3. [`softmax`]: other softmaxes over a strided axis on qdet's kernel.
//! 4. [`int8_conv`]: each quantized Conv of a QDQ file on the integer kernels, SiLU fused.
//! 5. [`quantize_u8`]: the QuantizeLinears feeding those convs on qdet's (exact) quantizer.
//! 6. [`residual_add`]: a bottleneck's shortcut Add in the epilogue of the conv it adds.
//! 7. [`split_outputs`]: a C2f Split's slices written by the conv as separate outputs.
//! 8. [`requantize`]: a QuantizeLinear of a conv output done in the conv's epilogue.
//! 9. [`hand_over_packed`]: such uint8 outputs written in their reader convs' layout.
//! 10. [`quantize_concat`]: a channel Concat read by a QuantizeLinear quantized in place.
//! 11. [`concat_inputs`]: those Concats' inputs quantized by the convs that write them.
//! 12. [`max_pool_u8`]: the SPPF MaxPools on uint8.
//! 13. [`resize_u8`]: the neck's nearest upsamplings on uint8.
//! 14. [`concat_packed`]: a Concat one unpadded conv reads written as that conv's image,
//!     its conv inputs handed over channels-last (after the pools and upsamplings, which
//!     read what those convs write).
//! 15. [`drop_unread_outputs`]: conv outputs nothing reads any more no longer written.
//! 16. [`f32_conv`]: the float Convs left on qdet's fp32 kernels, SiLU fused.
//! 17. [`concat_f32`]: large f32 Concats copied in parallel, a Sigmoid read only by one
//!     folded in (after the int8 passes, which turn the Concats a QuantizeLinear reads into
//!     their own).
//!
//! The int8 passes (4 to 15) find nothing to do in a float model, nor without conv specs.

use tract_onnx::prelude::*;

use crate::kernels::Isa;
use crate::onnx::qdq::QConvSpec;

pub mod common;
pub mod concat_f32;
pub mod concat_inputs;
pub mod concat_packed;
pub mod dfl;
pub mod drop_unread_outputs;
pub mod f16_to_f32;
pub mod f32_conv;
pub mod hand_over_packed;
pub mod int8_conv;
pub mod max_pool_u8;
pub mod quantize_concat;
pub mod quantize_u8;
pub mod report;
pub mod requantize;
pub mod residual_add;
pub mod resize_u8;
pub mod softmax;
pub mod split_outputs;

pub use report::{PatchReport, Report};

/// One named rewrite of the typed model.
///
/// Not tract's `ModelTransform` (`transform(&self, &mut TypedModel) -> TractResult<()>`):
/// it has no way to say how many rewrites it did, which the report and the tests pin, nor
/// to take the QDQ file's conv specs. Nor tract's `TypedPass`, whose `next` hands the
/// optimizer one local patch at a time, rerun to a fixed point: these rewrites run once, in
/// this order, and several look at the whole graph (a pool chain, every reader of an
/// outlet). [`f16_to_f32`] wraps the one `ModelTransform` used.
pub trait Pass: Sync {
    /// The name the report and `qdet bench --profile` show.
    fn name(&self) -> &'static str;

    /// Rewrites `model`, returning how many rewrites it did. Details go in `report`.
    fn run(&self, model: &mut TypedModel, cx: &Context, report: &mut Report) -> TractResult<usize>;
}

/// What the passes need besides the model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The QDQ file's quantized Convs (empty: the int8 passes do nothing).
    pub specs: &'a [QConvSpec],
    /// The integer kernel asked for, where available and exact ([`Isa::choose`]).
    pub kernel: Option<Isa>,
}

/// The passes, in the order [`run`] runs them (the module doc says why each is where it is).
pub const PASSES: &[&dyn Pass] = &[
    &f16_to_f32::F16ToF32,
    &dfl::DflDecode,
    &softmax::StridedSoftmax,
    &int8_conv::Int8Conv,
    &quantize_u8::QuantizeU8Inputs,
    &residual_add::ResidualAdd,
    &split_outputs::SplitOutputs,
    &requantize::Requantize,
    &hand_over_packed::HandOverPacked,
    &quantize_concat::QuantizeConcat,
    &concat_inputs::ConcatInputs,
    &max_pool_u8::MaxPoolU8Pass,
    &resize_u8::ResizeU8,
    &concat_packed::ConcatPacked,
    &drop_unread_outputs::DropUnreadOutputs,
    &f32_conv::F32Conv,
    &concat_f32::ConcatF32Pass,
];

/// Runs [`PASSES`] in order on `model`.
pub fn run(model: &mut TypedModel, cx: &Context) -> TractResult<Report> {
    let mut report = Report::default();
    for pass in PASSES {
        let at = report.counts.len();
        report.counts.push((pass.name(), 0));
        // No context added to errors: the caller reports their innermost cause.
        let n = pass.run(model, cx, &mut report)?;
        report.counts[at].1 = n;
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
