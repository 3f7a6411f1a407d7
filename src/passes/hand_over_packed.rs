//! A requantizing conv output read only by qdet convs that agree on its padded
//! channels-last layout (and zero point) is written in that layout: no transpose on the way
//! out, no repacking on the way in. (Quantizers doing the same measured no faster: they
//! still quantize and pack in two passes.)

use tract_onnx::prelude::*;

use super::{Context, Pass, Report};
use crate::kernels::conv::OutKind;
use crate::kernels::pack::Layout;
use crate::ops::qconv::QConvOp;

/// Counts the uint8 outputs handed over packed.
#[derive(Debug)]
pub struct HandOverPacked;

impl Pass for HandOverPacked {
    fn name(&self) -> &'static str {
        "hand_over_packed"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let outputs = model.output_outlets()?.to_vec();
    let mut producers = Vec::new();
    for n in model.nodes() {
        if let Some(c) = n.op_as::<QConvOp>() {
            producers.extend(
                c.outputs
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| matches!(o.kind, OutKind::U8(_)))
                    .map(|(j, _)| OutletId::new(n.id, j)),
            );
        }
    }
    for out in producers {
        let Some(spec) = model.node(out.node).op_as::<QConvOp>().map(|c| c.outputs[out.slot]) else { continue };
        let OutKind::U8(requant) = spec.kind else { continue };
        let readers = model.outlet_successors(out).to_vec();
        if readers.is_empty() || outputs.contains(&out) {
            continue;
        }
        let layouts: Option<Vec<Layout>> = readers
            .iter()
            .map(|r| {
                model
                    .node(r.node)
                    .op_as::<QConvOp>()
                    .filter(|c| {
                        r.slot == 0 && !c.packed_in && c.zero_point == requant.1 && c.conv.shape.in_c == spec.channels
                    })
                    .map(|c| c.conv.layout())
            })
            .collect();
        let Some(layout) = layouts.and_then(|l| l.windows(2).all(|w| w[0] == w[1]).then(|| l[0])) else { continue };
        for r in &readers {
            let node = model.node_mut(r.node);
            let Some(conv) = node.op_as::<QConvOp>() else { continue };
            node.op = Box::new(QConvOp { packed_in: true, ..conv.clone() });
        }
        let node = model.node_mut(out.node);
        if let Some(c) = node.op_as::<QConvOp>() {
            let mut op = c.clone();
            op.outputs[out.slot].kind = OutKind::Packed(requant, layout);
            node.op = Box::new(op);
        }
        model.set_outlet_fact(out, u8::fact([layout.len()]))?;
        done += 1;
    }
    Ok(done)
}
