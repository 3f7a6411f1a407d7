//! A [`QuantizeU8`] reading a [`QConvOp`]'s float output becomes another output of the conv,
//! quantized in its epilogue; the float output stays only if something else reads it.

use tract_onnx::prelude::*;

use super::common::{requantized, sole_reader};
use super::{Context, Pass, Report};
use crate::ops::quantize_u8::QuantizeU8;

/// Counts the QuantizeLinears fused.
#[derive(Debug)]
pub struct Requantize;

impl Pass for Requantize {
    fn name(&self) -> &'static str {
        "requantize"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let quantizers: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<QuantizeU8>()).map(|n| n.id).collect();
    for q in quantizers {
        let node = model.node(q);
        let input = node.inputs[0];
        let Some(quant) = node.op_as::<QuantizeU8>() else { continue };
        let sole = sole_reader(model, input, InletId::new(q, 0))?;
        let Some((mut p, _, out)) = requantized(model, input, (quant.scale, quant.zero_point), sole)? else { continue };
        p.shunt_outside(model, OutletId::new(q, 0), out)?;
        p.apply(model)?;
        done += 1;
    }
    Ok(done)
}
