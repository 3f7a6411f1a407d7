//! Writing the scheme of [`crate::quant`] as a standard QDQ ONNX graph: each quantized
//! activation gets one QuantizeLinear/DequantizeLinear pair right after it is produced, each
//! quantized Conv reads it through the DequantizeLinear and reads its int8 weights and int32
//! bias through their own DequantizeLinear (per output channel, `axis = 0`). Tensor and node
//! names follow ONNX Runtime's quantizer (`<tensor>_quantized`, `<tensor>_DequantizeLinear`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tract_onnx::pb;

use super::observers::{self, QuantBounds, QuantParams};
use super::sites::ConvSite;
use crate::onnx::proto;

/// QuantizeLinear/DequantizeLinear with `axis` need opset 13; raising an older model's opset
/// would change other ops' semantics, so older exports are refused.
pub const MIN_OPSET: i64 = 13;

/// One Conv's weights and bias in integers.
#[derive(Debug, Clone)]
pub struct QuantizedConv {
    pub weight_q: Vec<i8>,
    pub weight_scales: Vec<f32>,
    pub bias_q: Option<Vec<i32>>,
    pub bias_scales: Vec<f32>,
}

/// Weights per output channel with `bounds`, rounded to nearest; bias as int32 at
/// `input_scale * weight_scale`.
pub fn quantize_conv(
    weight: &[f32],
    bias: Option<&[f32]>,
    out_channels: usize,
    input_scale: f32,
    bounds: QuantBounds,
) -> QuantizedConv {
    let weight_scales = observers::weight_scales_per_channel(weight, out_channels, bounds);
    let per = weight.len() / out_channels;
    let weight_q = weight
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            observers::quantize(w, QuantParams { scale: weight_scales[i / per], zero_point: 0 }, bounds) as i8
        })
        .collect();
    with_integers(weight_q, weight_scales, bias, input_scale)
}

/// A conv whose weights were already rounded (GPTQ) at `weight_scales`; bias as int32 at
/// `input_scale * weight_scale`.
pub fn with_integers(
    weight_q: Vec<i8>,
    weight_scales: Vec<f32>,
    bias: Option<&[f32]>,
    input_scale: f32,
) -> QuantizedConv {
    let bias_scales = observers::bias_scales(input_scale, &weight_scales);
    let bias_q = bias.map(|b| {
        b.iter()
            .zip(&bias_scales)
            .map(|(&b, &s)| {
                (f64::from(b) / f64::from(s)).round_ties_even().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
            })
            .collect()
    });
    QuantizedConv { weight_q, weight_scales, bias_q, bias_scales }
}

/// `base` with `convs` (site, its integers) quantized and every tensor of `acts` given a Q/DQ
/// pair. Activations no quantized Conv reads are left alone. Deterministic: the same inputs
/// give the same message, field for field.
pub fn build(
    base: &pb::ModelProto,
    convs: &[(&ConvSite, &QuantizedConv)],
    acts: &BTreeMap<String, QuantParams>,
) -> pb::ModelProto {
    let mut model = base.clone();
    let Some(graph) = model.graph.as_mut() else { return model };
    let by_node: HashMap<usize, (&ConvSite, &QuantizedConv)> =
        convs.iter().map(|&(s, q)| (s.node_index, (s, q))).collect();
    let read: BTreeSet<&str> = convs.iter().flat_map(|(s, _)| s.parts.iter().map(String::as_str)).collect();
    let concats: BTreeSet<usize> = convs.iter().filter_map(|(s, _)| s.concat).collect();
    let acts: BTreeMap<&str, QuantParams> =
        acts.iter().filter(|(t, _)| read.contains(t.as_str())).map(|(t, p)| (t.as_str(), *p)).collect();

    let mut inits: Vec<pb::TensorProto> = Vec::new();
    let mut nodes: Vec<pb::NodeProto> = Vec::new();
    let quantize_act = |tensor: &str, nodes: &mut Vec<pb::NodeProto>, inits: &mut Vec<pb::TensorProto>| {
        if let Some(p) = acts.get(tensor) {
            quantize_activation(tensor, *p, nodes, inits);
        }
    };

    for input in &graph.input {
        quantize_act(&input.name, &mut nodes, &mut inits);
    }
    // A weight or bias shared by several convs gets one quantized copy per conv (the bias
    // scale is each conv's own), named after the node index from the second use on.
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut own_name = |tensor: &str, i: usize| {
        let name = if written.contains(tensor) { format!("{tensor}_{i}") } else { tensor.to_string() };
        written.insert(name.clone());
        name
    };
    for (i, node) in graph.node.iter().enumerate() {
        let mut node = node.clone();
        if concats.contains(&i) {
            for input in node.input.iter_mut().filter(|t| acts.contains_key(t.as_str())) {
                *input = format!("{input}_dequantized");
            }
        }
        if let Some((site, q)) = by_node.get(&i) {
            let oc = site.out_channels() as i64;
            let w = own_name(&site.weight, i);
            inits.push(proto::i8_tensor(&format!("{w}_quantized"), &site.weight_dims, &q.weight_q));
            inits.push(proto::f32_tensor(&format!("{w}_scale"), &[oc], &q.weight_scales));
            inits.push(proto::i8_tensor(&format!("{w}_zero_point"), &[oc], &vec![0; oc as usize]));
            nodes.push(dequantize(&w));
            if !site.segmented() {
                node.input[0] = format!("{}_dequantized", site.input);
            }
            node.input[1] = format!("{w}_dequantized");
            if let (Some(b), Some(bq)) = (&site.bias, &q.bias_q) {
                let b = own_name(b, i);
                inits.push(proto::i32_tensor(&format!("{b}_quantized"), &[oc], bq));
                inits.push(proto::f32_tensor(&format!("{b}_scale"), &[oc], &q.bias_scales));
                inits.push(proto::i32_tensor(&format!("{b}_zero_point"), &[oc], &vec![0; oc as usize]));
                nodes.push(dequantize(&b));
                node.input[2] = format!("{b}_dequantized");
            }
        }
        let outputs = node.output.clone();
        nodes.push(node);
        for out in &outputs {
            quantize_act(out, &mut nodes, &mut inits);
        }
    }
    // Float weights go once no node reads them; a shared one may still feed a float conv.
    let read: BTreeSet<&str> = nodes.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    let quantized: BTreeSet<&str> =
        convs.iter().flat_map(|(s, _)| std::iter::once(s.weight.as_str()).chain(s.bias.as_deref())).collect();
    graph.initializer.retain(|t| !quantized.contains(t.name.as_str()) || read.contains(t.name.as_str()));
    graph.initializer.extend(inits);
    graph.node = nodes;
    model
}

/// The scale a conv's int32 bias is stored at, with its weight scales: its input's, or the
/// finest of its Concat's inputs' (any scale gives the same float bias; the finest keeps it
/// exact to the last bit of the finest part's sums).
pub fn input_scale(site: &ConvSite, acts: &BTreeMap<String, QuantParams>) -> f32 {
    site.parts.iter().filter_map(|t| acts.get(t)).map(|p| p.scale).fold(f32::INFINITY, f32::min)
}

/// A QuantizeLinear/DequantizeLinear pair after `tensor`, per tensor, uint8.
fn quantize_activation(tensor: &str, p: QuantParams, nodes: &mut Vec<pb::NodeProto>, inits: &mut Vec<pb::TensorProto>) {
    let (scale, zp) = (format!("{tensor}_scale"), format!("{tensor}_zero_point"));
    inits.push(proto::f32_tensor(&scale, &[], &[p.scale]));
    inits.push(proto::u8_tensor(&zp, &[], &[p.zero_point.clamp(0, 255) as u8]));
    let (q, dq) = (format!("{tensor}_quantized"), format!("{tensor}_dequantized"));
    nodes.push(proto::node(
        "QuantizeLinear",
        &format!("{tensor}_QuantizeLinear"),
        &[tensor, &scale, &zp],
        &[&q],
        vec![],
    ));
    nodes.push(proto::node(
        "DequantizeLinear",
        &format!("{tensor}_DequantizeLinear"),
        &[&q, &scale, &zp],
        &[&dq],
        vec![],
    ));
}

fn dequantize(tensor: &str) -> pb::NodeProto {
    proto::node(
        "DequantizeLinear",
        &format!("{tensor}_DequantizeLinear"),
        &[&format!("{tensor}_quantized"), &format!("{tensor}_scale"), &format!("{tensor}_zero_point")],
        &[&format!("{tensor}_dequantized")],
        vec![proto::int_attr("axis", 0)],
    )
}

/// Sets or adds `metadata_props` entries, keeping the model's own order.
pub fn set_metadata(model: &mut pb::ModelProto, entries: &[(&str, String)]) {
    for (key, value) in entries {
        match model.metadata_props.iter_mut().find(|p| p.key == *key) {
            Some(p) => p.value = value.clone(),
            None => {
                model.metadata_props.push(pb::StringStringEntryProto { key: key.to_string(), value: value.clone() })
            }
        }
    }
}
