//! A conv whose float output is read only by channel Slices (a C2f block's Split) on whole
//! blocks of 16 channels writes each slice as its own output: tract's slices copied every
//! tensor, and a slice can now be quantized in the conv's epilogue too.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::Slice;

use super::{Context, Pass, Report};
use crate::kernels::conv::{OutKind, OutSpec};
use crate::kernels::OC_BLOCK;
use crate::ops::qconv::QConvOp;

/// Counts the convs split.
#[derive(Debug)]
pub struct SplitOutputs;

impl Pass for SplitOutputs {
    fn name(&self) -> &'static str {
        "split_outputs"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let outputs = model.output_outlets()?.to_vec();
    let convs: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| {
            n.op_as::<QConvOp>()
                .is_some_and(|c| c.outputs.len() == 1 && c.outputs[0].kind == OutKind::F32 && c.outputs[0].first == 0)
        })
        .map(|n| n.id)
        .collect();
    for id in convs {
        let out = OutletId::new(id, 0);
        let readers = model.outlet_successors(out).to_vec();
        let Some(conv) = model.node(id).op_as::<QConvOp>() else { continue };
        if readers.is_empty() || outputs.contains(&out) {
            continue;
        }
        let out_c = conv.conv.shape.out_c;
        let ranges: Option<Vec<(usize, usize)>> = readers
            .iter()
            .map(|r| {
                let slice = model.node(r.node).op_as::<Slice>()?;
                let (start, end) = (slice.start.to_usize().ok()?, slice.end.to_usize().ok()?);
                (slice.axis == 1 && start % OC_BLOCK == 0 && start < end && end <= out_c).then_some((start, end))
            })
            .collect();
        let Some(ranges) = ranges else { continue };
        let op = QConvOp {
            outputs: ranges.iter().map(|&(a, b)| OutSpec { first: a, channels: b - a, kind: OutKind::F32 }).collect(),
            ..conv.clone()
        };
        let (inputs, name) = (model.node(id).inputs.clone(), format!("{}.split", model.node(id).name));
        let mut p = TypedModelPatch::default();
        let taps = inputs.iter().map(|&i| p.tap_model(model, i)).collect::<TractResult<TVec<_>>>()?;
        let new = p.wire_node(name, op, &taps)?;
        for (r, &o) in readers.iter().zip(&new) {
            p.shunt_outside(model, OutletId::new(r.node, 0), o)?;
        }
        p.apply(model)?;
        done += 1;
    }
    Ok(done)
}
