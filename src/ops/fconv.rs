//! The tract op that runs one float Conv on qdet's fp32 kernels ([`crate::kernels::fconv`]),
//! put in place of tract's `Conv [-> Sigmoid, Mul]` by [`crate::passes::f32_conv`].

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::fconv::{FConv, Part};

/// In, per `(first, n)` of `inputs`, an `f32 [1, C, H, W]` of which channels `first..first + n`
/// are read, in order (the inputs of a Concat, a Split's slices), then, when `residual` is
/// `Some(first)`, a `[1, C, OH, OW]` of which channels `first..first + OC` are added (a
/// shortcut, perhaps a Split's slice); out, one `[1, n, OH, OW]` tensor per `(first, n)` of
/// `outputs`: those channels of the convolution, after SiLU when `silu`, plus the residual.
#[derive(Debug, Clone)]
pub struct FConvOp {
    pub(crate) conv: Arc<FConv>,
    pub(crate) inputs: Vec<(usize, usize)>,
    pub(crate) silu: bool,
    pub(crate) residual: Option<usize>,
    pub(crate) outputs: Vec<(usize, usize)>,
}

impl PartialEq for FConvOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.conv, &other.conv)
            && self.inputs == other.inputs
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
            self.residual.is_some(),
            self.outputs
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for FConvOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let s = &self.conv.shape;
        let in_plane = s.in_h * s.in_w;
        let mut parts = Vec::with_capacity(self.inputs.len());
        for (i, &(first, n)) in self.inputs.iter().enumerate() {
            let data =
                inputs.get(i).context("QdetConvF32: an input is missing")?.try_as_plain_ram()?.as_slice::<f32>()?;
            ensure!(
                data.len() >= (first + n) * in_plane,
                "QdetConvF32: input {i} of {} values for {:?}",
                data.len(),
                s
            );
            parts.push(Part { data, first, n });
        }
        ensure!(parts.iter().map(|p| p.n).sum::<usize>() == s.in_c, "QdetConvF32: inputs are not {} channels", s.in_c);
        let plane = s.out_h() * s.out_w();
        let residual = match self.residual {
            Some(first) => {
                let r = inputs
                    .get(self.inputs.len())
                    .context("QdetConvF32: no residual input")?
                    .try_as_plain_ram()?
                    .as_slice::<f32>()?;
                let r = r.get(first * plane..(first + s.out_c) * plane);
                Some(r.with_context(|| format!("QdetConvF32: residual too short for {s:?}"))?)
            }
            None => None,
        };
        // Written in place: building the tensors from Vecs would copy them.
        let tensors = self.conv.run_to_tensors(&parts, self.silu, residual, &self.outputs)?;
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
