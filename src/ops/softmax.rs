//! Softmax over one axis of an f32 tensor, vectorized across the contiguous inner axes:
//! `exp(x - max) / sum(exp(x - max))`, as ONNX defines it, with subnormal terms flushed to 0.

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

/// Softmax of `x` (shape `[outer, n, inner]` flattened) over the middle axis, into `out`.
pub fn softmax(x: &[f32], n: usize, inner: usize, out: &mut [f32]) {
    let mut max = vec![0f32; inner];
    let mut sum = vec![0f32; inner];
    for (xb, ob) in x.chunks(n * inner).zip(out.chunks_mut(n * inner)) {
        max.copy_from_slice(&xb[..inner]);
        for row in xb.chunks(inner).skip(1) {
            for (m, &v) in max.iter_mut().zip(row) {
                *m = m.max(v);
            }
        }
        sum.fill(0.0);
        for (xr, or) in xb.chunks(inner).zip(ob.chunks_mut(inner)) {
            for (((o, &v), &m), s) in or.iter_mut().zip(xr).zip(&max).zip(sum.iter_mut()) {
                // Below -87 exp is subnormal (< 2^-126), which costs x86 a microcode assist
                // per operation; it is 0 to within 1e-38 of the sum (>= 1).
                let d = v - m;
                *o = if d < -87.0 { 0.0 } else { d.exp() };
                *s += *o;
            }
        }
        for or in ob.chunks_mut(inner) {
            for (o, &s) in or.iter_mut().zip(&sum) {
                *o /= s;
            }
        }
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
        let mut out = vec![0f32; data.len()];
        if n > 0 && inner > 0 {
            softmax(data, n, inner, &mut out);
        }
        Ok(tvec!(Tensor::from_shape(&shape, &out)?.into_tvalue()))
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
        if op.kind != SoftmaxKind::Softmax || op.axes.len() != 1 || op.quant_output_dt.is_some() || fact.datum_type != DatumType::F32 {
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
