//! ONNX QuantizeLinear to uint8, `clamp(round_half_even(x / scale) + zero_point, 0, 255)`, in
//! place of tract's, which multiplies by `1 / scale` (a different rounding near .5, against
//! the spec and ONNX Runtime) and runs several times slower on these tensors.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeU8 {
    pub scale: f32,
    pub zero_point: u8,
}

impl Eq for QuantizeU8 {}

impl Op for QuantizeU8 {
    fn name(&self) -> StaticName {
        "QdetQuantizeU8".into()
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for QuantizeU8 {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(EvalOp::eval(self, &EvalContext::out_of_plan(), inputs)?))
    }

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0].try_as_plain_ram()?.as_slice::<f32>()?;
        // Written in place: building the tensor from a Vec would copy it.
        let mut out = Tensor::zero::<u8>(inputs[0].shape())?;
        crate::kernels::quantize::quantize_parallel(x, self.scale, self.zero_point, out.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QuantizeU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(u8::fact(inputs[0].shape.clone())))
    }

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::quantize::quantize;

    /// Against the definition, with ties and the clamps.
    #[test]
    fn rounds_half_to_even_and_saturates() {
        let scale = 0.5;
        let x = [0.25f32, 0.75, 1.25, -0.25, -0.75, 127.0, 1e9, -1e9, f32::NAN, 3.3];
        let mut out = [0u8; 10];
        quantize(&x, scale, 3, &mut out);
        let want: Vec<u8> =
            x.iter().map(|&v| if v.is_nan() { 0 } else { ((v / scale).round_ties_even() + 3.0).clamp(0.0, 255.0) as u8 }).collect();
        assert_eq!(out.to_vec(), want);
        assert_eq!(out[..5], [3, 5, 5, 3, 1]);
    }
}
