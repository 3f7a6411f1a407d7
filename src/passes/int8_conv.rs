//! Each quantized Conv of a QDQ file (`QuantizeLinear -> DequantizeLinear -> Conv`, as
//! `qdet calibrate` and ONNX Runtime write it, with a [`QConvSpec`] read from the file) on
//! qdet's integer kernels: a [`QConvOp`] reading the QuantizeLinear's uint8 tensor replaces
//! tract's float convolution of the dequantized floats. A following SiLU
//! (`Sigmoid(conv)`, `Mul(conv, sigmoid)`, nothing else reading the conv) is fused into its
//! epilogue. The kernel is chosen per conv by [`Isa::choose`].

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

use super::common::{element_wise, silu_mul};
use super::{Context, Pass, Report};
use crate::kernels::conv::{OutKind, OutSpec, QConv};
use crate::kernels::Isa;
use crate::ops::qconv::QConvOp;
use crate::quant::spec::QConvSpec;

/// The sub-count of convs with their SiLU fused.
pub const SILU: &str = "int8_conv.silu";

/// Counts the convs replaced, notes [`SILU`], and sets the report's kernel.
#[derive(Debug)]
pub struct Int8Conv;

impl Pass for Int8Conv {
    fn name(&self) -> &'static str {
        "int8_conv"
    }

    fn run(&self, model: &mut TypedModel, cx: &Context, report: &mut Report) -> TractResult<usize> {
        let by_name: HashMap<&str, &QConvSpec> = cx.specs.iter().map(|s| (s.name.as_str(), s)).collect();
        let conv_ids: Vec<usize> = model
            .nodes()
            .iter()
            .filter(|n| n.op_is::<Conv>() && by_name.contains_key(n.name.as_str()))
            .map(|n| n.id)
            .collect();
        let (mut replaced, mut silu) = (0, 0);
        for id in conv_ids {
            let spec = by_name[model.node(id).name.as_str()];
            let Some((q_outlet, op)) = quantized_conv(model, id, spec, cx.kernel)? else { continue };
            report.isa = Some(op.conv.isa());
            let conv_out = OutletId::new(id, 0);
            let silu_mul = silu_mul(model, conv_out);
            let op = QConvOp { silu: silu_mul.is_some(), ..op };
            let mut p = TypedModelPatch::default();
            let tap = p.tap_model(model, q_outlet)?;
            let out = p.wire_node(format!("{}.qdet", spec.name), op, &[tap])?[0];
            p.shunt_outside(model, silu_mul.map_or(conv_out, |m| OutletId::new(m, 0)), out)?;
            p.apply(model)?;
            replaced += 1;
            silu += usize::from(silu_mul.is_some());
        }
        report.note(SILU, silu);
        Ok(replaced)
    }
}

/// The uint8 outlet conv `id` reads through `QuantizeLinearU8 -> DequantizeLinearF32`, and
/// the op running it (without SiLU), if `spec` fits the input.
fn quantized_conv(
    model: &TypedModel,
    id: usize,
    spec: &QConvSpec,
    kernel: Option<Isa>,
) -> TractResult<Option<(OutletId, QConvOp)>> {
    let dq = model.node(model.node(id).inputs[0].node);
    rule_if!(dq.op_is::<DequantizeLinearF32>());
    let q_outlet = dq.inputs[0];
    rule_if!(element_wise::<QuantizeLinearU8>(model.node(q_outlet.node)).is_some());
    let fact = model.outlet_fact(q_outlet)?;
    rule_if_some!(shape = fact.shape.as_concrete().map(|s| s.to_vec()));
    rule_if!(shape.len() == 4 && shape[0] == 1 && fact.datum_type == DatumType::U8);
    let conv_shape = spec.shape(shape[1], shape[2], shape[3]);
    let max_abs = spec.weights.iter().map(|&w| i32::from(w).abs()).max().unwrap_or(0);
    let isa = Isa::choose(max_abs, kernel);
    let conv = if spec.depthwise {
        let taps = conv_shape.kh * conv_shape.kw;
        rule_if!(conv_shape.in_c == conv_shape.out_c && spec.weights.len() == conv_shape.out_c * taps);
        QConv::depthwise(conv_shape, &spec.weights, isa)
    } else {
        rule_if!(spec.weights.len() == conv_shape.out_c * conv_shape.k());
        QConv::new(conv_shape, &spec.weights, isa)
    };
    let op = QConvOp {
        conv: Arc::new(conv),
        input_scale: spec.input_scale,
        zero_point: spec.input_zero_point,
        scales: Arc::new(spec.output_scales()),
        bias: Arc::new(spec.bias.clone()),
        silu: false,
        packed_in: false,
        residual: false,
        outputs: vec![OutSpec { first: 0, channels: conv_shape.out_c, kind: OutKind::F32 }],
    };
    Ok(Some((q_outlet, op)))
}
