//! The tract op that runs one float Conv on qdet's fp32 kernels ([`crate::kernels::fconv`]),
//! put in place of tract's `Conv [-> Sigmoid, Mul]` by [`crate::passes::f32_conv`].

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::fconv::FConv;

/// `f32 [1, C, H, W]` in (and a residual `[1, OC, OH, OW]` when `residual`); out, one
/// `[1, n, OH, OW]` tensor per `(first, n)` of `outputs`: those channels of the convolution,
/// after SiLU when `silu`, plus the residual.
#[derive(Debug, Clone)]
pub struct FConvOp {
    pub(crate) conv: Arc<FConv>,
    pub(crate) silu: bool,
    pub(crate) residual: bool,
    pub(crate) outputs: Vec<(usize, usize)>,
}

impl PartialEq for FConvOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.conv, &other.conv)
            && self.silu == other.silu
            && self.residual == other.residual
            && self.outputs == other.outputs
    }
}

impl Eq for FConvOp {}

impl Op for FConvOp {
    fn name(&self) -> StaticName {
        "QdetConvF32".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?}{}, {:?}, silu={}, residual={}, outputs={:?}",
            self.conv.isa,
            if self.conv.is_winograd() { " winograd" } else { "" },
            self.conv.shape,
            self.silu,
            self.residual,
            self.outputs
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for FConvOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let s = &self.conv.shape;
        let x = inputs[0].try_as_plain_ram()?.as_slice::<f32>()?;
        ensure!(x.len() == s.in_c * s.in_h * s.in_w, "QdetConvF32: input of {} values for {:?}", x.len(), s);
        let plane = s.out_h() * s.out_w();
        let residual = match self.residual {
            true => {
                let r =
                    inputs.get(1).context("QdetConvF32: no residual input")?.try_as_plain_ram()?.as_slice::<f32>()?;
                ensure!(r.len() == s.out_c * plane, "QdetConvF32: residual of {} values for {:?}", r.len(), s);
                Some(r)
            }
            false => None,
        };
        // Written in place: building the tensors from Vecs would copy them.
        let tensors = self.conv.run_to_tensors(x, self.silu, residual, &self.outputs)?;
        Ok(tensors.into_iter().map(|t| t.into_tvalue()).collect())
    }
}

impl TypedOp for FConvOp {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &self.conv.shape;
        Ok(self.outputs.iter().map(|&(_, n)| f32::fact([1, n, s.out_h(), s.out_w()])).collect())
    }

    as_op!();
}
