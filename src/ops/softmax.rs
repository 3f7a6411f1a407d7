//! Softmax over one axis of an f32 tensor, `exp(x - max) / sum(exp(x - max))` as ONNX
//! defines it, on the vectorized kernel [`crate::kernels::softmax`].

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

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for AxisSoftmax {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(EvalOp::eval(self, &EvalContext::out_of_plan(), inputs)?))
    }

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

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }
}

/// Replaces every single-axis f32 `Softmax` whose axis is not the last (tract's fast case).
/// Returns how many.
pub fn patch(model: &mut TypedModel) -> TractResult<usize> {
    use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};
    let mut n = 0;
    let ids: Vec<usize> = model.nodes().iter().map(|n| n.id).collect();
    for id in ids {
        let node = model.node(id);
        let Some(op) = node.op_as::<Softmax>() else { continue };
        let fact = model.outlet_fact(node.inputs[0])?;
        if op.kind != SoftmaxKind::Softmax
            || op.axes.len() != 1
            || op.quant_output_dt.is_some()
            || fact.datum_type != DatumType::F32
        {
            continue;
        }
        let axis = op.axes[0];
        let Some(shape) = fact.shape.as_concrete() else { continue };
        if axis + 1 >= shape.len() {
            continue;
        }
        let input = node.inputs[0];
        let name = format!("{}.qdet", node.name);
        let mut p = TypedModelPatch::default();
        let tap = p.tap_model(model, input)?;
        let out = p.wire_node(name, AxisSoftmax { axis }, &[tap])?[0];
        p.shunt_outside(model, OutletId::new(id, 0), out)?;
        p.apply(model)?;
        n += 1;
    }
    Ok(n)
}
