//! The detect head's DFL decode as one op on [`crate::kernels::dfl`], which
//! [`crate::passes::dfl`] puts in place of the exported `Reshape [4 * bins] -> [4, bins]`,
//! `Transpose` (bins first), `Softmax` over the bins, 1x1 `Conv` with weights `0..bins` and
//! no bias, and the `Reshape` dropping its channel.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// `[1, sides * bins, anchors]` logits to `[1, sides, anchors]` expected bins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dfl {
    pub bins: usize,
}

impl Op for Dfl {
    fn name(&self) -> StaticName {
        "QdetDfl".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Dfl {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let &[1, rows, anchors] = x.shape() else {
            bail!("DFL input of shape {:?}, not [1, sides x {}, anchors]", x.shape(), self.bins)
        };
        ensure!(rows % self.bins == 0, "DFL input of {rows} rows, not sides x {} bins", self.bins);
        let mut out = Tensor::zero::<f32>(&[1, rows / self.bins, anchors])?;
        crate::kernels::dfl::dfl(
            x.try_as_plain_ram()?.as_slice::<f32>()?,
            self.bins,
            anchors,
            out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Dfl {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        ensure!(s.rank() == 3, "DFL input of rank {}", s.rank());
        let sides = s[1].clone() / self.bins as u64;
        Ok(tvec!(f32::fact([s[0].clone(), sides, s[2].clone()])))
    }

    as_op!();
}
