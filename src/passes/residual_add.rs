//! `Add(x, conv)` of two `[1, C, H, W]` float tensors, the conv's whole float output read by
//! nothing else (a bottleneck's shortcut), becomes the conv with `x` as its residual input:
//! its outputs are the sum, so the later passes can quantize it in the epilogue too.

use tract_onnx::prelude::*;

use tract_onnx::tract_core::ops::math::Add;

use super::common::is_binary;
use super::{Context, Pass, Report};
use crate::kernels::conv::{OutKind, OutSpec};
use crate::ops::qconv::QConvOp;

/// Counts the Adds fused.
#[derive(Debug)]
pub struct ResidualAdd;

impl Pass for ResidualAdd {
    fn name(&self) -> &'static str {
        "residual_add"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let outputs = model.output_outlets()?.to_vec();
    let adds: Vec<usize> =
        model.nodes().iter().filter(|n| is_binary::<Add>(n) && n.inputs.len() == 2).map(|n| n.id).collect();
    for add in adds {
        let node = model.node(add);
        let facts = [model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?];
        if facts[0] != facts[1] || facts[0].datum_type != DatumType::F32 || facts[0].shape.as_concrete().is_none() {
            continue;
        }
        let Some((slot, conv)) = (0..2).find_map(|i| {
            let o = node.inputs[i];
            let c = model.node(o.node).op_as::<QConvOp>()?;
            let whole = c.outputs.len() == 1
                && c.outputs[0] == OutSpec { first: 0, channels: c.conv.shape.out_c, kind: OutKind::F32 };
            (whole && !c.residual && model.outlet_successors(o).len() == 1 && !outputs.contains(&o))
                .then(|| (i, c.clone()))
        }) else {
            continue;
        };
        let (conv_outlet, other) = (node.inputs[slot], node.inputs[1 - slot]);
        let conv_node = model.node(conv_outlet.node);
        let (x, name) = (conv_node.inputs[0], format!("{}.residual", conv_node.name));
        let mut p = TypedModelPatch::default();
        let taps = [p.tap_model(model, x)?, p.tap_model(model, other)?];
        let new = p.wire_node(name, QConvOp { residual: true, ..conv }, &taps)?[0];
        p.shunt_outside(model, OutletId::new(add, 0), new)?;
        p.apply(model)?;
        done += 1;
    }
    Ok(done)
}
