//! Softmax over one axis of an f32 tensor, `exp(x - max) / sum(exp(x - max))` as ONNX
//! defines it, on the vectorized kernel [`crate::kernels::softmax`]
//! ([`crate::passes::softmax`] puts it in place).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxisSoftmax {
    pub axis: usize,
}

impl Op for AxisSoftmax {
    fn name(&self) -> StaticName {
        "QdetSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for AxisSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape().to_vec();
        let data = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let n = shape[self.axis];
        let inner: usize = shape[self.axis + 1..].iter().product();
        let mut out = Tensor::zero::<f32>(&shape)?;
        if n > 0 && inner > 0 {
            crate::kernels::softmax::softmax(data, n, inner, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for AxisSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    as_op!();
}
