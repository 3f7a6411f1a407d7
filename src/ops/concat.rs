//! Large f32 Concats copied on the kernels' team, with a Sigmoid read only by the Concat
//! applied to its input's piece as it lands: the detect head's class scores are
//! `Concat(boxes, Sigmoid(Concat(scores per scale)))`, three serial copies and a serial
//! sigmoid pass, about 0.8 ms of a COCO 640 inference on tract ([`crate::passes::concat_f32`]
//! puts it in place).
//!
//! The sigmoid is tract's own f32 kernel, on the same values: the output is bit-identical.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::concat::{Part, Then};

/// `Concat` along `axis` of f32 tensors; input `i` goes through a sigmoid first if
/// `sigmoid[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcatF32 {
    pub axis: usize,
    pub sigmoid: Vec<bool>,
}

impl Op for ConcatF32 {
    fn name(&self) -> StaticName {
        "QdetConcat".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ConcatF32 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == self.sigmoid.len(),
            "QdetConcat: {} inputs, {} flags",
            inputs.len(),
            self.sigmoid.len()
        );
        let first = inputs.first().context("QdetConcat without inputs")?;
        let mut shape = first.shape().to_vec();
        ensure!(self.axis < shape.len(), "QdetConcat on axis {} of {:?}", self.axis, shape);
        shape[self.axis] = inputs.iter().map(|x| x.shape().get(self.axis).copied().unwrap_or(0)).sum();
        let outer: usize = shape[..self.axis].iter().product();
        let inner: usize = shape[self.axis + 1..].iter().product();
        let srcs = inputs
            .iter()
            .map(|x| x.try_as_plain_ram().and_then(|v| v.as_slice::<f32>()))
            .collect::<TractResult<Vec<&[f32]>>>()?;
        for (x, src) in inputs.iter().zip(&srcs) {
            let mut s = x.shape().to_vec();
            s[self.axis] = shape[self.axis];
            ensure!(
                s == shape && src.len() == outer * x.shape()[self.axis] * inner,
                "QdetConcat: input {:?} into {:?}",
                x.shape(),
                shape
            );
        }
        let kernel = tract_linalg::routines::Func::Sigmoid.ew_f32()?;
        let failed = std::sync::atomic::AtomicBool::new(false);
        let sigmoid = |d: &mut [f32]| {
            if kernel.run(d).is_err() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let parts: Vec<Part> = srcs
            .iter()
            .zip(&self.sigmoid)
            .map(|(&src, &sig)| Part { src, then: sig.then_some(&sigmoid as Then) })
            .collect();
        let out = crate::kernels::concat::concat_f32(&shape, outer.max(1), &parts)?;
        ensure!(!failed.into_inner(), "QdetConcat: the sigmoid kernel failed");
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ConcatF32 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        shape[self.axis] = inputs.iter().map(|f| f.shape[self.axis].clone()).sum();
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    /// The kernel on its own: axis 1 of `[2, c, 5]` parts with a transform on one part, equal
    /// to concatenating by hand.
    #[test]
    fn concat_kernel_equals_concatenating_by_hand() {
        use crate::kernels::concat::{concat_f32, Part};
        let a: Vec<f32> = (0..2 * 3 * 5).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..2 * 40_000 * 5).map(|i| -(i as f32)).collect();
        let double = |d: &mut [f32]| d.iter_mut().for_each(|v| *v *= 2.0);
        let got =
            concat_f32(&[2, 40_003, 5], 2, &[Part { src: &a, then: None }, Part { src: &b, then: Some(&double) }])
                .unwrap();
        let mut want = Vec::new();
        for o in 0..2 {
            want.extend_from_slice(&a[o * 15..][..15]);
            want.extend(b[o * 200_000..][..200_000].iter().map(|v| v * 2.0));
        }
        assert_eq!(got.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap(), &want[..]);
    }
}
