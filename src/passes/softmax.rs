//! Single-axis f32 Softmaxes over an axis that is not the last (tract's fast case) on qdet's
//! kernel ([`AxisSoftmax`]): such as a DFL softmax the [`super::dfl`] pattern does not match
//! (16 bins, 4 x 8400 apart at 640), where tract 0.23.9 spends more time than on all the
//! convolutions together (`qdet bench --profile`: 246 of 405 ms on the COCO yolov8n at 640).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

use super::{Context, Pass, Report};
use crate::ops::softmax::AxisSoftmax;

/// Counts the softmaxes replaced.
#[derive(Debug)]
pub struct StridedSoftmax;

impl Pass for StridedSoftmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
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
}
