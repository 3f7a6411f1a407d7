//! An fp16 export's weights and ops widened to f32, with tract's own `ModelTransform`
//! (`FloatPrecisionTranslator`): CPUs without native fp16 arithmetic (x86 before
//! AVX512-FP16) emulate every f16 operation, so the export runs far faster, and closer to
//! the trained weights, with its weights widened once here. The later passes match f32.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::floats::FloatPrecisionTranslator;
use tract_onnx::tract_core::transform::ModelTransform;

use super::{Context, Pass, Report};

/// Counts 1 when the model had f16 tensors (and was translated), else 0.
#[derive(Debug)]
pub struct F16ToF32;

impl Pass for F16ToF32 {
    fn name(&self) -> &'static str {
        "f16_to_f32"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        let has_f16 = model.nodes().iter().any(|n| n.outputs.iter().any(|o| o.fact.datum_type == DatumType::F16));
        if !has_f16 {
            return Ok(0);
        }
        FloatPrecisionTranslator::new(DatumType::F16, DatumType::F32).transform(model)?;
        Ok(1)
    }
}
