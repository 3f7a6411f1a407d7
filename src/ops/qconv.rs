//! The tract op that runs one quantized Conv on qdet's kernels. The passes of
//! [`crate::passes`] put it in place of tract's `QuantizeLinear -> DequantizeLinear -> Conv
//! [-> Sigmoid, Mul]` ([`crate::passes::int8_conv`]) and then give it the outputs its readers
//! need.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::conv::{Epilogue, Input, OutSpec, QConv};

/// `uint8 [1, C, H, W]` in; out, one tensor per [`OutSpec`]: a range of the output channels
/// (after SiLU when `silu`) as floats `[1, n, OH, OW]`, or quantized to uint8. Between qdet
/// ops the uint8 tensors may instead be padded channels-last images ([`Layout`]):
/// `packed_in` reads one, a [`OutKind::Packed`] output writes the next convs' one.
#[derive(Debug, Clone)]
pub struct QConvOp {
    pub(crate) conv: Arc<QConv>,
    /// The uint8 input: `x = (q - zero_point) * input_scale`.
    pub(crate) input_scale: f32,
    pub(crate) zero_point: u8,
    pub(crate) scales: Arc<Vec<f32>>,
    pub(crate) bias: Arc<Vec<f32>>,
    pub(crate) silu: bool,
    pub(crate) packed_in: bool,
    /// A second input, `[1, OC, OH, OW]` floats added after the epilogue (a residual Add).
    pub(crate) residual: bool,
    pub(crate) outputs: Vec<OutSpec>,
}

impl QConvOp {
    fn fact(&self, o: &OutSpec) -> TypedFact {
        let (dt, shape) = o.tensor_shape(&self.conv.shape);
        TypedFact::dt_shape(dt, &*shape)
    }
}

impl PartialEq for QConvOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.conv, &other.conv)
            && self.silu == other.silu
            && self.packed_in == other.packed_in
            && self.residual == other.residual
            && self.outputs == other.outputs
    }
}

impl Eq for QConvOp {}

impl Op for QConvOp {
    fn name(&self) -> StaticName {
        "QdetConvU8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?}, {:?}, silu={}, residual={}, outputs={:?}",
            self.conv.isa(),
            self.conv.shape,
            self.silu,
            self.residual,
            self.outputs
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for QConvOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0].try_as_plain_ram()?.as_slice::<u8>()?;
        let s = &self.conv.shape;
        let input = if self.packed_in {
            ensure!(
                x.len() == self.conv.layout().len(),
                "QdetConvU8: packed input of {} bytes for {:?}",
                x.len(),
                self.conv.layout()
            );
            Input::Packed(x)
        } else {
            ensure!(x.len() == s.in_c * s.in_h * s.in_w, "QdetConvU8: input of {} values for {:?}", x.len(), s);
            Input::Nchw(x)
        };
        let e = Epilogue { scale: &self.scales, bias: &self.bias, silu: self.silu };
        let residual = match self.residual {
            true => {
                let r =
                    inputs.get(1).context("QdetConvU8: no residual input")?.try_as_plain_ram()?.as_slice::<f32>()?;
                ensure!(
                    r.len() == s.out_c * s.out_h() * s.out_w(),
                    "QdetConvU8: residual of {} values for {:?}",
                    r.len(),
                    s
                );
                Some(r)
            }
            false => None,
        };
        // Written in place: building the tensors from Vecs would copy them.
        let tensors = self.conv.run_to_tensors(input, self.zero_point, e, residual, &self.outputs)?;
        Ok(tensors.into_iter().map(|t| t.into_tvalue()).collect())
    }
}

impl TypedOp for QConvOp {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(self.outputs.iter().map(|o| self.fact(o)).collect())
    }

    as_op!();
}
