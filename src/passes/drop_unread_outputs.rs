//! Conv outputs nothing reads any more (a float output whose readers all moved to uint8) are
//! no longer computed.

use tract_onnx::prelude::*;

use super::{Context, Pass, Report};
use crate::ops::qconv::QConvOp;

/// Counts the convs that lost outputs.
#[derive(Debug)]
pub struct DropUnreadOutputs;

impl Pass for DropUnreadOutputs {
    fn name(&self) -> &'static str {
        "drop_unread_outputs"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let outputs = model.output_outlets()?.to_vec();
    let ids: Vec<usize> = model.eval_order()?;
    for id in ids {
        let Some(conv) = model.node(id).op_as::<QConvOp>() else { continue };
        let read: Vec<usize> = (0..conv.outputs.len())
            .filter(|&j| {
                !model.outlet_successors(OutletId::new(id, j)).is_empty() || outputs.contains(&OutletId::new(id, j))
            })
            .collect();
        if read.len() == conv.outputs.len() || read.is_empty() {
            continue;
        }
        let op = QConvOp { outputs: read.iter().map(|&j| conv.outputs[j]).collect(), ..conv.clone() };
        let node = model.node(id);
        let mut p = TypedModelPatch::default();
        let taps = node.inputs.iter().map(|&i| p.tap_model(model, i)).collect::<TractResult<TVec<_>>>()?;
        let new = p.wire_node(format!("{}.read", node.name), op, &taps)?;
        for (k, &j) in read.iter().enumerate() {
            p.shunt_outside(model, OutletId::new(id, j), new[k])?;
        }
        p.apply(model)?;
        done += 1;
    }
    Ok(done)
}
