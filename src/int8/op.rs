//! The tract op that runs one quantized Conv on qdet's kernels, and the graph patch that puts
//! it in place of tract's `QuantizeLinear -> DequantizeLinear -> Conv [-> Sigmoid, Mul]`.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::maxpool::{MaxPoolU8, UpsampleU8};
use super::quantize::{QuantizeConcatU8, QuantizeU8};
use super::spec::QConvSpec;
use crate::kernels::conv::{Epilogue, Input, OutKind, OutSpec, QConv};
use crate::kernels::pack::Layout;
use crate::kernels::{Isa, OC_BLOCK};

/// `uint8 [1, C, H, W]` in; out, one tensor per [`OutSpec`]: a range of the output channels
/// (after SiLU when `silu`) as floats `[1, n, OH, OW]`, or quantized to uint8. Between qdet
/// ops the uint8 tensors may instead be padded channels-last images ([`Layout`]):
/// `packed_in` reads one, a [`OutKind::Packed`] output writes the next convs' one.
#[derive(Debug, Clone)]
pub struct QConvOp {
    conv: Arc<QConv>,
    zero_point: u8,
    scales: Arc<Vec<f32>>,
    bias: Arc<Vec<f32>>,
    silu: bool,
    packed_in: bool,
    /// A second input, `[1, OC, OH, OW]` floats added after the epilogue (a residual Add).
    residual: bool,
    outputs: Vec<OutSpec>,
}

impl QConvOp {
    fn fact(&self, o: &OutSpec) -> TypedFact {
        let (dt, shape) = o.tensor_shape(&self.conv.shape);
        TypedFact::dt_shape(dt, &*shape)
    }
}

impl PartialEq for QConvOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.conv, &other.conv)
            && self.silu == other.silu
            && self.packed_in == other.packed_in
            && self.residual == other.residual
            && self.outputs == other.outputs
    }
}

impl Eq for QConvOp {}

impl Op for QConvOp {
    fn name(&self) -> StaticName {
        "QdetConvU8".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?}, {:?}, silu={}, residual={}, outputs={:?}",
            self.conv.isa(),
            self.conv.shape,
            self.silu,
            self.residual,
            self.outputs
        )])
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for QConvOp {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(EvalOp::eval(self, &EvalContext::out_of_plan(), inputs)?))
    }

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0].try_as_plain_ram()?.as_slice::<u8>()?;
        let s = &self.conv.shape;
        let input = if self.packed_in {
            ensure!(
                x.len() == self.conv.layout().len(),
                "QdetConvU8: packed input of {} bytes for {:?}",
                x.len(),
                self.conv.layout()
            );
            Input::Packed(x)
        } else {
            ensure!(x.len() == s.in_c * s.in_h * s.in_w, "QdetConvU8: input of {} values for {:?}", x.len(), s);
            Input::Nchw(x)
        };
        let e = Epilogue { scale: &self.scales, bias: &self.bias, silu: self.silu };
        let residual = match self.residual {
            true => {
                let r =
                    inputs.get(1).context("QdetConvU8: no residual input")?.try_as_plain_ram()?.as_slice::<f32>()?;
                ensure!(
                    r.len() == s.out_c * s.out_h() * s.out_w(),
                    "QdetConvU8: residual of {} values for {:?}",
                    r.len(),
                    s
                );
                Some(r)
            }
            false => None,
        };
        // Written in place: building the tensors from Vecs would copy them.
        let tensors = self.conv.run_to_tensors(input, self.zero_point, e, residual, &self.outputs)?;
        Ok(tensors.into_iter().map(|t| t.into_tvalue()).collect())
    }
}

impl TypedOp for QConvOp {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(self.outputs.iter().map(|o| self.fact(o)).collect())
    }

    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }
}

/// What [`patch`] did.
#[derive(Debug, Clone, Default)]
pub struct PatchReport {
    pub replaced: usize,
    pub silu_fused: usize,
    /// QuantizeLinears of a conv output, now written by the conv.
    pub requant_fused: usize,
    /// Requantized outputs written in their readers' channels-last image.
    pub handed_over: usize,
    /// Channel Concats quantized straight into their uint8 output.
    pub concat_fused: usize,
    /// Convs writing the channel slices read from them as separate outputs.
    pub split_fused: usize,
    /// Concat inputs quantized by the conv that writes them.
    pub concat_inputs_requantized: usize,
    /// MaxPools run on uint8 (the SPPF chain).
    pub max_pools_u8: usize,
    /// Nearest Resizes run on uint8 (the neck's upsamplings).
    pub resizes_u8: usize,
    /// Residual Adds done in the epilogue of the conv they add.
    pub residual_fused: usize,
    /// Integer convs in the optimized plan: `replaced`, unless a rewrite left a superseded
    /// conv running beside its replacement.
    pub convs_in_plan: usize,
    pub isa: Option<Isa>,
}

/// Replaces, in a typed (not yet optimized, concrete-shaped) model, every Conv of `specs`
/// that reads a `QuantizeLinearU8 -> DequantizeLinearF32` pair with a [`QConvOp`] reading the
/// uint8 tensor; a following `Sigmoid` + `Mul(conv, sigmoid)` is folded in, and the
/// QuantizeLinear feeding it becomes [`QuantizeU8`].
/// `kernel` is used where it is available and exact, as [`Isa::choose`] says.
pub fn patch(model: &mut TypedModel, specs: &[QConvSpec], kernel: Option<Isa>) -> TractResult<PatchReport> {
    let by_name: HashMap<&str, &QConvSpec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut report = PatchReport::default();
    let mut quantizers: Vec<(usize, f32, u8)> = Vec::new();
    let conv_ids: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| by_name.contains_key(n.name.as_str()) && n.op.name() == "Conv")
        .map(|n| n.id)
        .collect();
    for id in conv_ids {
        let node = model.node(id);
        let spec = by_name[node.name.as_str()];
        let dq = model.node(node.inputs[0].node);
        if dq.op.name() != "DequantizeLinearF32" {
            continue;
        }
        let q_outlet = dq.inputs[0];
        if model.node(q_outlet.node).op.name() != "QuantizeLinearU8" {
            continue;
        }
        let fact = model.outlet_fact(q_outlet)?;
        let Some(shape) = fact.shape.as_concrete().map(|s| s.to_vec()) else { continue };
        if shape.len() != 4 || shape[0] != 1 || fact.datum_type != DatumType::U8 {
            continue;
        }
        let conv_shape = spec.shape(shape[1], shape[2], shape[3]);
        if spec.weights.len() != conv_shape.out_c * conv_shape.k() {
            continue;
        }
        let max_abs = spec.weights.iter().map(|&w| i32::from(w).abs()).max().unwrap_or(0);
        let isa = Isa::choose(max_abs, kernel);
        report.isa = Some(isa);
        // Conv -> Sigmoid, Mul(conv, sigmoid): SiLU, when nothing else reads the conv.
        let conv_out = OutletId::new(id, 0);
        let succ: Vec<usize> = model.outlet_successors(conv_out).iter().map(|i| i.node).collect();
        let silu_mul = (|| {
            if succ.len() != 2 {
                return None;
            }
            let sig = succ.iter().copied().find(|&s| model.node(s).op.name() == "Sigmoid")?;
            let mul = succ.iter().copied().find(|&s| s != sig)?;
            let m = model.node(mul);
            let sig_out = model.outlet_successors(OutletId::new(sig, 0));
            let reads = |o: OutletId| m.inputs.contains(&o);
            (m.op.name() == "Mul" && reads(conv_out) && reads(OutletId::new(sig, 0)) && sig_out.len() == 1)
                .then_some(mul)
        })();
        let op = QConvOp {
            conv: Arc::new(QConv::new(conv_shape, &spec.weights, isa)),
            zero_point: spec.input_zero_point,
            scales: Arc::new(spec.output_scales()),
            bias: Arc::new(spec.bias.clone()),
            silu: silu_mul.is_some(),
            packed_in: false,
            residual: false,
            outputs: vec![OutSpec { first: 0, channels: conv_shape.out_c, kind: OutKind::F32 }],
        };
        let name = format!("{}.qdet", spec.name);
        let mut p = TypedModelPatch::default();
        let tap = p.tap_model(model, q_outlet)?;
        let out = p.wire_node(name, op, &[tap])?[0];
        let replaced = silu_mul.map_or(conv_out, |m| OutletId::new(m, 0));
        p.shunt_outside(model, replaced, out)?;
        p.apply(model)?;
        report.replaced += 1;
        report.silu_fused += usize::from(silu_mul.is_some());
        if !quantizers.iter().any(|q| q.0 == q_outlet.node) {
            quantizers.push((q_outlet.node, spec.input_scale, spec.input_zero_point));
        }
    }
    for (id, scale, zero_point) in quantizers {
        let node = model.node(id);
        let (input, name) = (node.inputs[0], format!("{}.qdet", node.name));
        if model.outlet_fact(input)?.datum_type != DatumType::F32 {
            continue;
        }
        let mut p = TypedModelPatch::default();
        let tap = p.tap_model(model, input)?;
        let out = p.wire_node(name, QuantizeU8 { scale, zero_point }, &[tap])?[0];
        p.shunt_outside(model, OutletId::new(id, 0), out)?;
        p.apply(model)?;
    }
    fuse_residual_add(model, &mut report)?;
    split_outputs(model, &mut report)?;
    fuse_requantization(model, &mut report)?;
    hand_over_packed(model, &mut report)?;
    fuse_concat_quantization(model, &mut report)?;
    requantize_concat_inputs(model, &mut report)?;
    quantized_max_pools(model, &mut report)?;
    quantized_resizes(model, &mut report)?;
    drop_unread_outputs(model)?;
    Ok(report)
}

/// A channel Concat of `[1, C, H, W]` floats read only by a [`QuantizeU8`] becomes one
/// [`QuantizeConcatU8`]: the float concatenation is never written.
fn fuse_concat_quantization(model: &mut TypedModel, report: &mut PatchReport) -> TractResult<()> {
    use tract_onnx::tract_core::ops::array::TypedConcat;
    let outputs = model.output_outlets()?.to_vec();
    let quantizers: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<QuantizeU8>()).map(|n| n.id).collect();
    for q in quantizers {
        let input = model.node(q).inputs[0];
        let concat = model.node(input.node);
        let Some(axis) = concat.op_as::<TypedConcat>().map(|c| c.axis) else { continue };
        let facts: Vec<TypedFact> =
            concat.inputs.iter().map(|&i| model.outlet_fact(i).cloned()).collect::<TractResult<_>>()?;
        let batch_one_f32 = |f: &TypedFact| {
            f.datum_type == DatumType::F32 && f.shape.as_concrete().is_some_and(|s| s.len() == 4 && s[0] == 1)
        };
        if axis != 1
            || !facts.iter().all(batch_one_f32)
            || model.outlet_successors(input).len() != 1
            || outputs.contains(&input)
        {
            continue;
        }
        let Some(quant) = model.node(q).op_as::<QuantizeU8>() else { continue };
        let op = QuantizeConcatU8 { scale: quant.scale, zero_point: quant.zero_point };
        let (inputs, name) = (concat.inputs.clone(), format!("{}.quantize", concat.name));
        let mut p = TypedModelPatch::default();
        let taps: TVec<OutletId> = inputs.iter().map(|&i| p.tap_model(model, i)).collect::<TractResult<_>>()?;
        let out = p.wire_node(name, op, &taps)?[0];
        p.shunt_outside(model, OutletId::new(q, 0), out)?;
        p.apply(model)?;
        report.concat_fused += 1;
    }
    Ok(())
}

/// A requantizing conv output read only by qdet convs that agree on its padded
/// channels-last layout (and zero point) is written in that layout: no transpose on the way
/// out, no repacking on the way in. (Quantizers doing the same measured no faster: they
/// still quantize and pack in two passes.)
fn hand_over_packed(model: &mut TypedModel, report: &mut PatchReport) -> TractResult<()> {
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
        report.handed_over += 1;
    }
    Ok(())
}

/// A patch replacing the conv of float output `from` with one that also writes that output
/// quantized with `q` (instead of the floats when `drop_float`: the caller rewires their only
/// reader). The conv's other outputs keep their readers. Returns the patch, to which the
/// caller adds its own rewiring, and the replacement's outlets: by the old conv's slot, then
/// the uint8 one.
fn requantized(
    model: &TypedModel,
    from: OutletId,
    q: (f32, u8),
    drop_float: bool,
) -> TractResult<Option<(TypedModelPatch, TVec<OutletId>, OutletId)>> {
    let Some(conv) = model.node(from.node).op_as::<QConvOp>() else { return Ok(None) };
    let spec = conv.outputs[from.slot];
    if spec.kind != OutKind::F32 {
        return Ok(None);
    }
    let requant = OutSpec { kind: OutKind::U8(q), ..spec };
    if let Some(j) = conv.outputs.iter().position(|o| *o == requant) {
        // Already written: reuse it (a float output left unread goes in `drop_unread_outputs`).
        let mut p = TypedModelPatch::default();
        let taps = (0..conv.outputs.len())
            .map(|k| p.tap_model(model, OutletId::new(from.node, k)))
            .collect::<TractResult<TVec<_>>>()?;
        let out = taps[j];
        return Ok(Some((p, taps, out)));
    }
    let mut op = conv.clone();
    let slot = if drop_float {
        op.outputs[from.slot] = requant;
        from.slot
    } else {
        op.outputs.push(requant);
        op.outputs.len() - 1
    };
    let outputs = model.output_outlets()?;
    let node = model.node(from.node);
    let mut p = TypedModelPatch::default();
    let taps = node.inputs.iter().map(|&i| p.tap_model(model, i)).collect::<TractResult<TVec<_>>>()?;
    let new = p.wire_node(format!("{}.requant", node.name), op, &taps)?;
    for j in (0..conv.outputs.len()).filter(|&j| !(drop_float && j == from.slot)) {
        let old = OutletId::new(from.node, j);
        if !model.outlet_successors(old).is_empty() || outputs.contains(&old) {
            p.shunt_outside(model, old, new[j])?;
        }
    }
    let out = new[slot];
    Ok(Some((p, new, out)))
}

/// Whether `inlet` is the only reader of `outlet`, which is not a model output.
fn sole_reader(model: &TypedModel, outlet: OutletId, inlet: InletId) -> TractResult<bool> {
    Ok(model.outlet_successors(outlet) == [inlet] && !model.output_outlets()?.contains(&outlet))
}

/// A [`QuantizeU8`] reading a [`QConvOp`]'s float output becomes another output of the conv,
/// quantized in its epilogue; the float output stays only if something else reads it.
fn fuse_requantization(model: &mut TypedModel, report: &mut PatchReport) -> TractResult<()> {
    let quantizers: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<QuantizeU8>()).map(|n| n.id).collect();
    for q in quantizers {
        let node = model.node(q);
        let input = node.inputs[0];
        let Some(quant) = node.op_as::<QuantizeU8>() else { continue };
        let sole = sole_reader(model, input, InletId::new(q, 0))?;
        let Some((mut p, _, out)) = requantized(model, input, (quant.scale, quant.zero_point), sole)? else { continue };
        p.shunt_outside(model, OutletId::new(q, 0), out)?;
        p.apply(model)?;
        report.requant_fused += 1;
    }
    Ok(())
}

/// A [`QuantizeConcatU8`] input that is a conv's float output gets it quantized by the conv
/// (the op copies uint8 inputs): the floats are never written unless something else reads
/// them.
fn requantize_concat_inputs(model: &mut TypedModel, report: &mut PatchReport) -> TractResult<()> {
    let float_conv_output = |model: &TypedModel, o: OutletId| {
        model.node(o.node).op_as::<QConvOp>().is_some_and(|c| c.outputs[o.slot].kind == OutKind::F32)
    };
    // One input per patch: each replaces the concat node, so look again after each.
    while let Some((concat, slot)) = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<QuantizeConcatU8>())
        .find_map(|n| n.inputs.iter().position(|&i| float_conv_output(model, i)).map(|slot| (n.id, slot)))
    {
        let node = model.node(concat);
        let op = node.op_as::<QuantizeConcatU8>().cloned().context("a QuantizeConcatU8")?;
        let input = node.inputs[slot];
        let sole = sole_reader(model, input, InletId::new(concat, slot))?;
        let Some((mut p, conv, out)) = requantized(model, input, (op.scale, op.zero_point), sole)? else { break };
        let (inputs, name) = (node.inputs.clone(), format!("{}.{slot}", node.name));
        let mut taps = TVec::new();
        for (i, &outlet) in inputs.iter().enumerate() {
            // The replaced conv's other outputs come from its replacement, or the old conv
            // would stay in the graph and run too.
            taps.push(match i {
                _ if i == slot => out,
                _ if outlet.node == input.node => conv[outlet.slot],
                _ => p.tap_model(model, outlet)?,
            });
        }
        let new = p.wire_node(name, op, &taps)?[0];
        p.shunt_outside(model, OutletId::new(concat, 0), new)?;
        p.apply(model)?;
        report.concat_inputs_requantized += 1;
    }
    Ok(())
}

/// `Add(x, conv)` of two `[1, C, H, W]` float tensors, the conv's whole float output read by
/// nothing else (a bottleneck's shortcut), becomes the conv with `x` as its residual input:
/// its outputs are the sum, so the rewrites below can quantize it in the epilogue too.
fn fuse_residual_add(model: &mut TypedModel, report: &mut PatchReport) -> TractResult<()> {
    let outputs = model.output_outlets()?.to_vec();
    let adds: Vec<usize> =
        model.nodes().iter().filter(|n| n.op.name() == "Add" && n.inputs.len() == 2).map(|n| n.id).collect();
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
        report.residual_fused += 1;
    }
    Ok(())
}

/// tract MaxPools (stride 1, explicit padding, NCHW) whose every reader is a uint8 Concat
/// with one scale and zero point, or another such pool, and whose input is a conv's float
/// output or another such pool, run on uint8 with those parameters ([`MaxPoolU8`]):
/// quantization is monotonic, so the bytes are the same. YOLOv8's SPPF: three pools.
fn quantized_max_pools(model: &mut TypedModel, report: &mut PatchReport) -> TractResult<()> {
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;
    let pool_of = |n: &TypedNode| -> Option<MaxPoolU8> {
        let op = n.op_as::<MaxPool>()?;
        let s = &op.pool_spec;
        let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&x| x == 1));
        let (before, after) = match &s.padding {
            PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, false) => (b.clone(), a.clone()),
            _ => return None,
        };
        let ok = s.data_format == DataFormat::NCHW
            && s.kernel_shape.len() == 2
            && before.len() == 2
            && after.len() == 2
            && ones(&s.strides)
            && ones(&s.dilations)
            && op.with_index_outputs.is_none();
        let (kh, kw) = (s.kernel_shape[0], s.kernel_shape[1]);
        (ok && kh > before[0].max(after[0]) && kw > before[1].max(after[1]))
            .then(|| MaxPoolU8 { kernel: (kh, kw), pad: [before[0], before[1], after[0], after[1]] })
    };
    // Candidates with the quantization of their Concat readers.
    let mut set: HashMap<usize, (f32, u8)> = HashMap::new();
    for n in model.nodes() {
        if pool_of(n).is_none() || model.outlet_fact(n.inputs[0])?.datum_type != DatumType::F32 {
            continue;
        }
        let q: Vec<(u32, u8)> = model
            .outlet_successors(OutletId::new(n.id, 0))
            .iter()
            .filter_map(|r| model.node(r.node).op_as::<QuantizeConcatU8>().map(|c| (c.scale.to_bits(), c.zero_point)))
            .collect();
        if let Some(&(scale, zp)) = q.first() {
            if q.iter().all(|&x| x == (scale, zp)) {
                set.insert(n.id, (f32::from_bits(scale), zp));
            }
        }
    }
    // Drop those with another reader or input, until none is left to drop.
    let outputs = model.output_outlets()?.to_vec();
    loop {
        let keep = |id: usize, set: &HashMap<usize, (f32, u8)>| -> bool {
            let q = set[&id];
            let out = OutletId::new(id, 0);
            let readers_ok = !outputs.contains(&out)
                && model.outlet_successors(out).iter().all(|r| {
                    let n = model.node(r.node);
                    n.op_as::<QuantizeConcatU8>().is_some_and(|c| (c.scale, c.zero_point) == q)
                        || set.get(&r.node) == Some(&q)
                });
            let input = model.node(id).inputs[0];
            let from_conv =
                model.node(input.node).op_as::<QConvOp>().is_some_and(|c| c.outputs[input.slot].kind == OutKind::F32);
            readers_ok && (from_conv || set.get(&input.node) == Some(&q))
        };
        let drop: Vec<usize> = set.keys().copied().filter(|&id| !keep(id, &set)).collect();
        if drop.is_empty() {
            break;
        }
        for id in drop {
            set.remove(&id);
        }
    }
    for id in model.eval_order()? {
        let Some(&q) = set.get(&id) else { continue };
        let node = model.node(id);
        let Some(pool) = pool_of(node) else { continue };
        let input = node.inputs[0];
        let name = format!("{}.u8", node.name);
        let (mut p, src) = if model.node(input.node).op_is::<MaxPoolU8>() {
            let mut p = TypedModelPatch::default();
            let tap = p.tap_model(model, input)?;
            (p, tap)
        } else {
            let sole = sole_reader(model, input, InletId::new(id, 0))?;
            let (p, _, out) = requantized(model, input, q, sole)?.context("a conv's float output")?;
            (p, out)
        };
        p.wire_node(&name, pool, &[src])?;
        p.apply(model)?;
        // Rewired by hand: tract only shunts an outlet to one of the same type.
        let new = OutletId::new(model.node_by_name(&name)?.id, 0);
        for inlet in model.outlet_successors(OutletId::new(id, 0)).to_vec() {
            model.add_edge(new, inlet)?;
        }
        report.max_pools_u8 += 1;
    }
    Ok(())
}

/// A nearest-neighbour upsampling of a conv's float output, read only by uint8 Concats with
/// one scale and zero point, upsamples the conv's uint8 output with those parameters
/// instead ([`UpsampleU8`]): nearest only copies values, so the bytes are the same, without
/// the floats (the neck's two upsamplings).
fn quantized_resizes(model: &mut TypedModel, report: &mut PatchReport) -> TractResult<()> {
    use tract_onnx::tract_core::ops::nn::resize::{CoordTransformer, Interpolator};
    use tract_onnx_opl::resize::{CoordTransform, Nearest, Resize};
    let outputs = model.output_outlets()?.to_vec();
    // ONNX's Resize as tract-onnx types it, nearest with asymmetric coordinates and floor
    // (Ultralytics' export), by whole factors on H and W given as constant scales.
    let upsample = |model: &TypedModel, n: &TypedNode| -> Option<UpsampleU8> {
        let r = n.op_as::<Resize>()?;
        let plain = r.interpolator == Interpolator::Nearest
            && r.nearest == Nearest::Floor
            && r.coord_transformer == CoordTransform::Plain(CoordTransformer::Asymmetric);
        let scales = model.outlet_fact(*n.inputs.get(r.optional_scales_input?)?).ok()?.konst.clone()?;
        let scales = scales.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec();
        let whole = |v: f32| (v >= 1.0 && v.fract() == 0.0).then_some(v as usize);
        let ok = plain
            && r.optional_sizes_input.is_none()
            && r.axes.is_none()
            && scales.len() == 4
            && scales[0] == 1.0
            && scales[1] == 1.0;
        if !ok {
            return None;
        }
        Some(UpsampleU8 { scale: (whole(scales[2])?, whole(scales[3])?) })
    };
    let ids: Vec<usize> = model.nodes().iter().filter(|n| upsample(model, n).is_some()).map(|n| n.id).collect();
    for id in ids {
        let node = model.node(id);
        let Some(op) = upsample(model, node) else { continue };
        let (input, out) = (node.inputs[0], OutletId::new(id, 0));
        let from_conv =
            model.node(input.node).op_as::<QConvOp>().is_some_and(|c| c.outputs[input.slot].kind == OutKind::F32);
        let readers = model.outlet_successors(out);
        let q: Vec<(u32, u8)> = readers
            .iter()
            .filter_map(|r| model.node(r.node).op_as::<QuantizeConcatU8>().map(|c| (c.scale.to_bits(), c.zero_point)))
            .collect();
        let readers_ok = !q.is_empty() && q.len() == readers.len() && q.windows(2).all(|w| w[0] == w[1]);
        if !from_conv || !readers_ok || outputs.contains(&out) {
            continue;
        }
        let q = (f32::from_bits(q[0].0), q[0].1);
        let sole = sole_reader(model, input, InletId::new(id, 0))?;
        let Some((mut p, _, bytes)) = requantized(model, input, q, sole)? else { continue };
        let name = format!("{}.u8", node.name);
        p.wire_node(&name, op, &[bytes])?;
        p.apply(model)?;
        // Rewired by hand: tract only shunts an outlet to one of the same type.
        let new = OutletId::new(model.node_by_name(&name)?.id, 0);
        for inlet in model.outlet_successors(out).to_vec() {
            model.add_edge(new, inlet)?;
        }
        report.resizes_u8 += 1;
    }
    Ok(())
}

/// Conv outputs nothing reads any more (a float output whose readers all moved to uint8) are
/// no longer computed.
fn drop_unread_outputs(model: &mut TypedModel) -> TractResult<()> {
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
    }
    Ok(())
}

/// A conv whose float output is read only by channel Slices (a C2f block's Split) on whole
/// blocks of 16 channels writes each slice as its own output: tract's slices copied every
/// tensor, and a slice can now be quantized in the conv's epilogue too.
fn split_outputs(model: &mut TypedModel, report: &mut PatchReport) -> TractResult<()> {
    use tract_onnx::tract_core::ops::array::Slice;
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
        report.split_fused += 1;
    }
    Ok(())
}
