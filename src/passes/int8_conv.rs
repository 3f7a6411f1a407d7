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
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearU8};

use super::common::{element_wise, silu_mul};
use super::{Context, Pass, Report};
use crate::kernels::conv::{OutKind, OutSpec, Part, QConv};
use crate::kernels::{Isa, WeightRange};
use crate::onnx::qdq::QConvSpec;
use crate::ops::qconv::QConvOp;
use crate::ops::quantize_u8::QuantizeConcatU8;

/// The sub-count of convs with their SiLU fused.
pub const SILU: &str = "int8_conv.silu";
/// The sub-count of convs reading a Concat quantized per input (its parts quantized by one
/// [`QuantizeConcatU8`] with each input's grid).
pub const PARTS: &str = "int8_conv.parts";

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
        let (mut replaced, mut silu, mut parts) = (0, 0, 0);
        for id in conv_ids {
            let spec = by_name[model.node(id).name.as_str()];
            let Some((source, op)) = quantized_conv(model, id, spec, cx.kernel)? else { continue };
            report.add_kernel(&spec.name, op.conv.isa());
            let conv_out = OutletId::new(id, 0);
            let silu_mul = silu_mul(model, conv_out);
            let op = QConvOp { silu: silu_mul.is_some(), ..op };
            let mut p = TypedModelPatch::default();
            let tap = match source {
                Source::Quantized(q) => p.tap_model(model, q)?,
                Source::Parts(floats) => {
                    parts += 1;
                    let taps: TVec<OutletId> =
                        floats.iter().map(|&f| p.tap_model(model, f)).collect::<TractResult<_>>()?;
                    let concat = QuantizeConcatU8::new(spec.parts.clone());
                    p.wire_node(format!("{}.parts", spec.name), concat, &taps)?[0]
                }
            };
            let out = p.wire_node(format!("{}.qdet", spec.name), op, &[tap])?[0];
            p.shunt_outside(model, silu_mul.map_or(conv_out, |m| OutletId::new(m, 0)), out)?;
            p.apply(model)?;
            replaced += 1;
            silu += usize::from(silu_mul.is_some());
        }
        report.note(SILU, silu);
        report.note(PARTS, parts);
        Ok(replaced)
    }
}

/// What an integer conv reads.
enum Source {
    /// The uint8 outlet of `QuantizeLinearU8 -> DequantizeLinearF32`.
    Quantized(OutletId),
    /// The float inputs of a Concat of such pairs, each on its own grid (`spec.parts`).
    Parts(Vec<OutletId>),
}

/// The uint8 source of `input` through `QuantizeLinearU8 -> DequantizeLinearF32`, and that
/// source's float input.
fn through_qdq(model: &TypedModel, input: OutletId) -> Option<(OutletId, OutletId)> {
    let dq = model.node(input.node);
    let q = *dq.inputs.first().filter(|_| dq.op_is::<DequantizeLinearF32>())?;
    let q_node = model.node(q.node);
    element_wise::<QuantizeLinearU8>(q_node)?;
    Some((q, q_node.inputs[0]))
}

/// Where a conv reads its uint8 input.
struct Read {
    source: Source,
    /// The input's `[C, H, W]`.
    chw: [usize; 3],
    /// Each part's channels when it reads a Concat of parts.
    channels: Vec<usize>,
}

/// Where conv `id` reads its uint8 input.
fn source(model: &TypedModel, id: usize, spec: &QConvSpec) -> TractResult<Option<Read>> {
    let input = model.node(id).inputs[0];
    let dims = |o: OutletId| -> TractResult<Option<[usize; 3]>> {
        let shape = model.outlet_fact(o)?.shape.as_concrete().map(|s| s.to_vec());
        Ok(shape.and_then(|s| (s.len() == 4 && s[0] == 1).then(|| [s[1], s[2], s[3]])))
    };
    if spec.parts.is_empty() {
        rule_if_some!((q, _) = through_qdq(model, input));
        rule_if!(model.outlet_fact(q)?.datum_type == DatumType::U8);
        rule_if_some!(chw = dims(q)?);
        return Ok(Some(Read { source: Source::Quantized(q), chw, channels: Vec::new() }));
    }
    let concat = model.node(input.node);
    rule_if!(concat.op_as::<TypedConcat>().is_some_and(|c| c.axis == 1) && concat.inputs.len() == spec.parts.len());
    let floats: Option<Vec<OutletId>> = concat.inputs.iter().map(|&i| through_qdq(model, i).map(|(_, f)| f)).collect();
    rule_if_some!(floats = floats);
    let mut channels = Vec::new();
    for &f in &floats {
        rule_if!(model.outlet_fact(f)?.datum_type == DatumType::F32);
        rule_if_some!(chw = dims(f)?);
        channels.push(chw[0]);
    }
    rule_if_some!(chw = dims(input)?);
    Ok(Some(Read { source: Source::Parts(floats), chw, channels }))
}

/// What conv `id` reads and the op running it (without SiLU), if `spec` fits the input.
fn quantized_conv(
    model: &TypedModel,
    id: usize,
    spec: &QConvSpec,
    kernel: Option<Isa>,
) -> TractResult<Option<(Source, QConvOp)>> {
    rule_if_some!(Read { source, chw: [c, h, w], channels } = source(model, id, spec)?);
    let conv_shape = spec.shape(c, h, w);
    let rows = if spec.depthwise { 1 } else { conv_shape.in_c };
    rule_if!(
        rows * conv_shape.kh * conv_shape.kw > 0
            && spec.weights.len().is_multiple_of(rows * conv_shape.kh * conv_shape.kw)
    );
    let isa = Isa::choose(WeightRange::of(&spec.weights, rows, conv_shape.kh * conv_shape.kw), kernel);
    let conv = if !channels.is_empty() {
        rule_if!(spec.weights.len() == conv_shape.out_c * conv_shape.k() && !spec.depthwise);
        let parts: Vec<Part> = channels
            .iter()
            .zip(&spec.parts)
            .map(|(&channels, &(scale, zero_point))| Part { channels, scale, zero_point })
            .collect();
        match QConv::with_parts(conv_shape, &spec.weights, isa, &parts, spec.input_scale) {
            Ok(conv) => conv,
            Err(_) => return Ok(None),
        }
    } else if spec.depthwise {
        let taps = conv_shape.kh * conv_shape.kw;
        rule_if!(conv_shape.in_c == conv_shape.out_c && spec.weights.len() == conv_shape.out_c * taps);
        QConv::depthwise(conv_shape, &spec.weights, isa)
    } else {
        rule_if!(spec.weights.len() == conv_shape.out_c * conv_shape.k());
        QConv::new(conv_shape, &spec.weights, isa)
    };
    // A conv of parts sums in units of a fraction of its input scale.
    let scales = spec.output_scales().iter().map(|s| s * conv.sum_unit()).collect();
    let op = QConvOp {
        conv: Arc::new(conv),
        input_scale: spec.input_scale,
        zero_point: spec.input_zero_point,
        scales: Arc::new(scales),
        bias: Arc::new(spec.bias.clone()),
        silu: false,
        packed_in: false,
        residual: false,
        outputs: vec![OutSpec { first: 0, channels: conv_shape.out_c, kind: OutKind::F32 }],
    };
    Ok(Some((source, op)))
}
