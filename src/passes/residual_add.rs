//! `Add(x, conv)` of two `[1, C, H, W]` float tensors, the conv's whole float output read by
//! nothing else (a bottleneck's shortcut), becomes the conv with `x` as its residual input:
//! its outputs are the sum, so the later passes can quantize it in the epilogue too.

use tract_onnx::prelude::*;

use super::common::{float_adds, shortcut_conv};
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
    for add in float_adds(model) {
        let whole = |c: &QConvOp| {
            c.outputs == [OutSpec { first: 0, channels: c.conv.shape.out_c, kind: OutKind::F32 }] && !c.residual
        };
        let Some((slot, conv)) = shortcut_conv(model, add, whole)? else {
            continue;
        };
        let node = model.node(add);
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
