//! Max pooling (stride 1) of a uint8 `[1, C, H, W]` tensor whose input and output share a
//! scale and zero point (YOLOv8's SPPF chain): the same bytes as pooling the floats and
//! quantizing, without the floats.

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
