//! Max pooling (stride 1) and nearest upsampling of a uint8 `[1, C, H, W]` tensor, for ops
//! whose input and output are quantized with the same scale and zero point (YOLOv8's SPPF
//! chain and the neck's upsamplings, into Concats): the same bytes as running them on the
//! floats and quantizing, without the floats.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPoolU8 {
    pub kernel: (usize, usize),
    /// Top, left, bottom, right.
    pub pad: [usize; 4],
}

impl MaxPoolU8 {
    fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        (h + self.pad[0] + self.pad[2] + 1 - self.kernel.0, w + self.pad[1] + self.pad[3] + 1 - self.kernel.1)
    }
}

impl Op for MaxPoolU8 {
    fn name(&self) -> StaticName {
        "QdetMaxPoolU8".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPoolU8 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let shape = inputs[0].shape().to_vec();
        ensure!(shape.len() == 4 && shape[0] == 1, "QdetMaxPoolU8: input of shape {:?}", shape);
        let (c, h, w) = (shape[1], shape[2], shape[3]);
        let (oh, ow) = self.out_hw(h, w);
        let mut out = Tensor::zero::<u8>(&[1, c, oh, ow])?;
        let x = inputs[0].try_as_plain_ram()?.as_slice::<u8>()?;
        crate::kernels::maxpool::max_pool_u8_parallel(
            x,
            c,
            (h, w),
            self.kernel,
            self.pad,
            out.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for MaxPoolU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = inputs[0].shape.as_concrete().context("QdetMaxPoolU8: symbolic input shape")?;
        ensure!(s.len() == 4, "QdetMaxPoolU8: input of shape {:?}", s);
        let (oh, ow) = self.out_hw(s[2], s[3]);
        Ok(tvec!(u8::fact([s[0], s[1], oh, ow])))
    }

    as_op!();
}

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
        crate::kernels::maxpool::upsample_nearest_u8_parallel(
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
