//! A channel Concat of `[1, C, H, W]` floats read only by a [`QuantizeU8`] becomes one
//! [`QuantizeConcatU8`]: the float concatenation is never written.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::TypedConcat;

use super::{Context, Pass, Report};
use crate::ops::quantize_u8::{QuantizeConcatU8, QuantizeU8};

/// Counts the Concats quantized in place.
#[derive(Debug)]
pub struct QuantizeConcat;

impl Pass for QuantizeConcat {
    fn name(&self) -> &'static str {
        "quantize_concat"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let outputs = model.output_outlets()?.to_vec();
    let quantizers: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<QuantizeU8>()).map(|n| n.id).collect();
    for q in quantizers {
        let input = model.node(q).inputs[0];
        let concat = model.node(input.node);
        let Some(axis) = concat.op_as::<TypedConcat>().map(|c| c.axis) else { continue };
        let facts: Vec<TypedFact> =
            concat.inputs.iter().map(|&i| model.outlet_fact(i).cloned()).collect::<TractResult<_>>()?;
        let batch_one_f32 = |f: &TypedFact| {
            f.datum_type == DatumType::F32 && f.shape.as_concrete().is_some_and(|s| s.len() == 4 && s[0] == 1)
        };
        if axis != 1
            || !facts.iter().all(batch_one_f32)
            || model.outlet_successors(input).len() != 1
            || outputs.contains(&input)
        {
            continue;
        }
        let Some(quant) = model.node(q).op_as::<QuantizeU8>() else { continue };
        let op = QuantizeConcatU8::uniform(quant.scale, quant.zero_point, concat.inputs.len());
        let (inputs, name) = (concat.inputs.clone(), format!("{}.quantize", concat.name));
        let mut p = TypedModelPatch::default();
        let taps: TVec<OutletId> = inputs.iter().map(|&i| p.tap_model(model, i)).collect::<TractResult<_>>()?;
        let out = p.wire_node(name, op, &taps)?[0];
        p.shunt_outside(model, OutletId::new(q, 0), out)?;
        p.apply(model)?;
        done += 1;
    }
    Ok(done)
}
