//! Nearest upsampling by whole factors of a uint8 `[1, C, H, W]` tensor whose input and
//! output share a scale and zero point (the neck's upsamplings, into Concats): the same
//! bytes as resizing the floats and quantizing, without the floats.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// ONNX Resize (nearest, asymmetric, floor) by whole factors on uint8.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpsampleU8 {
    pub scale: (usize, usize),
}

impl Op for UpsampleU8 {
    fn name(&self) -> StaticName {
        "QdetUpsampleU8".into()
    }

    op_as_typed_op!();
}

impl EvalOp for UpsampleU8 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let shape = inputs[0].shape().to_vec();
        ensure!(shape.len() == 4 && shape[0] == 1, "QdetUpsampleU8: input of shape {:?}", shape);
        let (c, h, w) = (shape[1], shape[2], shape[3]);
        let mut out = Tensor::zero::<u8>(&[1, c, h * self.scale.0, w * self.scale.1])?;
        let x = inputs[0].try_as_plain_ram()?.as_slice::<u8>()?;
        crate::kernels::upsample::upsample_nearest_u8_parallel(
            x,
            c,
            (h, w),
            self.scale,
            out.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for UpsampleU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = inputs[0].shape.as_concrete().context("QdetUpsampleU8: symbolic input shape")?;
        ensure!(s.len() == 4, "QdetUpsampleU8: input of shape {:?}", s);
        Ok(tvec!(u8::fact([s[0], s[1], s[2] * self.scale.0, s[3] * self.scale.1])))
    }

    as_op!();
}
