//! The QuantizeLinears feeding the integer convs on qdet's [`QuantizeU8`]: tract's
//! `QuantizeLinearU8` multiplies by `1 / scale` (a different rounding near .5, against the
//! ONNX spec and ONNX Runtime) and runs several times slower on these tensors. The scale and
//! zero point are those the first conv reading it was quantized for.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::quant::QuantizeLinearU8;

use super::common::element_wise;
use super::{Context, Pass, Report};
use crate::ops::qconv::QConvOp;
use crate::ops::quantize_u8::QuantizeU8;

/// Counts the QuantizeLinears replaced.
#[derive(Debug)]
pub struct QuantizeU8Inputs;

impl Pass for QuantizeU8Inputs {
    fn name(&self) -> &'static str {
        "quantize_u8"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        // In node order, the convs' order in the file: the first reader sets the parameters.
        let convs: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<QConvOp>()).map(|n| n.id).collect();
        let mut n = 0;
        for conv in convs {
            let node = model.node(conv);
            let Some(op) = node.op_as::<QConvOp>() else { continue };
            let (id, scale, zero_point) = (node.inputs[0].node, op.input_scale, op.zero_point);
            let q = model.node(id);
            // A QuantizeLinear already replaced for an earlier reader is no longer one.
            if element_wise::<QuantizeLinearU8>(q).is_none() {
                continue;
            }
            let (input, name) = (q.inputs[0], format!("{}.qdet", q.name));
            if model.outlet_fact(input)?.datum_type != DatumType::F32 {
                continue;
            }
            let mut p = TypedModelPatch::default();
            let tap = p.tap_model(model, input)?;
            let out = p.wire_node(name, QuantizeU8 { scale, zero_point }, &[tap])?[0];
            p.shunt_outside(model, OutletId::new(id, 0), out)?;
            p.apply(model)?;
            n += 1;
        }
        Ok(n)
    }
}
