//! A [`QuantizeConcatU8`] input that is a conv's float output gets it quantized by the conv
//! (the op copies uint8 inputs): the floats are never written unless something else reads
//! them.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::common::{float_conv_output, requantized, sole_reader};
use super::{Context, Pass, Report};
use crate::ops::quantize_u8::QuantizeConcatU8;

/// Counts the Concat inputs quantized by their conv.
#[derive(Debug)]
pub struct ConcatInputs;

impl Pass for ConcatInputs {
    fn name(&self) -> &'static str {
        "concat_inputs"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    // One input per patch: each replaces the concat node, so look again after each.
    while let Some((concat, slot)) = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<QuantizeConcatU8>())
        .find_map(|n| n.inputs.iter().position(|&i| float_conv_output(model, i)).map(|slot| (n.id, slot)))
    {
        let node = model.node(concat);
        let op = node.op_as::<QuantizeConcatU8>().cloned().context("a QuantizeConcatU8")?;
        let input = node.inputs[slot];
        let sole = sole_reader(model, input, InletId::new(concat, slot))?;
        let Some((mut p, conv, out)) = requantized(model, input, op.params[slot], sole)? else { break };
        let (inputs, name) = (node.inputs.clone(), format!("{}.{slot}", node.name));
        let mut taps = TVec::new();
        for (i, &outlet) in inputs.iter().enumerate() {
            // The replaced conv's other outputs come from its replacement, or the old conv
            // would stay in the graph and run too.
            taps.push(match i {
                _ if i == slot => out,
                _ if outlet.node == input.node => conv[outlet.slot],
                _ => p.tap_model(model, outlet)?,
            });
        }
        let new = p.wire_node(name, op, &taps)?[0];
        p.shunt_outside(model, OutletId::new(concat, 0), new)?;
        p.apply(model)?;
        done += 1;
    }
    Ok(done)
}
