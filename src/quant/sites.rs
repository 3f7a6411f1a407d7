//! The Conv nodes of a model that the scheme quantizes, and why others are left in float.

use std::collections::{BTreeMap, HashMap};

use tract_onnx::pb;

use super::proto;

/// Ops that mean the model is already quantized: calibrating it again would quantize twice.
const QUANTIZED_OPS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "ConvInteger",
    "QLinearMatMul",
    "MatMulInteger",
    "DynamicQuantizeLinear",
];

/// One Conv whose weights are float initializers, so it can be quantized.
#[derive(Debug, Clone)]
pub struct ConvSite {
    /// The node's name (`Conv_<index>` for an unnamed node).
    pub name: String,
    pub node_index: usize,
    pub input: String,
    pub weight: String,
    pub bias: Option<String>,
    pub output: String,
    /// `[out_channels, in_channels / group, kh, kw]`.
    pub weight_dims: Vec<i64>,
    /// Its input is a Softmax output: the DFL decode of the detect head, kept in float.
    pub dfl: bool,
}

impl ConvSite {
    pub fn out_channels(&self) -> usize {
        self.weight_dims.first().copied().unwrap_or(0) as usize
    }
}

/// The first quantized op (QuantizeLinear, QLinearConv, ...) found in the graph.
pub fn quantized_op(model: &pb::ModelProto) -> Option<&str> {
    let graph = model.graph.as_ref()?;
    graph.node.iter().map(|n| n.op_type.as_str()).find(|op| QUANTIZED_OPS.contains(op))
}

/// Whether any initializer is float16 (an fp16 export: calibrate its fp32 twin instead).
pub fn has_f16_weights(model: &pb::ModelProto) -> bool {
    let f16 = pb::tensor_proto::DataType::Float16 as i32;
    model.graph.as_ref().is_some_and(|g| g.initializer.iter().any(|t| t.data_type == f16))
}

/// Every Conv with float initializer weights (and bias, if any) used by it alone, in graph order.
pub fn conv_sites(model: &pb::ModelProto) -> Vec<ConvSite> {
    let Some(graph) = model.graph.as_ref() else { return Vec::new() };
    let inits: HashMap<&str, &pb::TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let producers: HashMap<&str, &str> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n.op_type.as_str()))).collect();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for input in graph.node.iter().flat_map(|n| n.input.iter()) {
        *uses.entry(input.as_str()).or_default() += 1;
    }
    // A weight shared with another node would need one quantization for two convs.
    let is_float =
        |name: &str| inits.get(name).is_some_and(|t| proto::f32_values(t).is_some()) && uses.get(name) == Some(&1);
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Conv" && n.input.len() >= 2 && n.output.len() == 1)
        .filter(|(_, n)| is_float(&n.input[1]) && n.input.get(2).is_none_or(|b| b.is_empty() || is_float(b)))
        .filter_map(|(i, n)| {
            let dims = inits.get(n.input[1].as_str())?.dims.clone();
            (dims.len() == 4 && dims[0] > 0).then(|| ConvSite {
                name: if n.name.is_empty() { format!("Conv_{i}") } else { n.name.clone() },
                node_index: i,
                input: n.input[0].clone(),
                weight: n.input[1].clone(),
                bias: n.input.get(2).filter(|b| !b.is_empty()).cloned(),
                output: n.output[0].clone(),
                weight_dims: dims,
                dfl: producers.get(n.input[0].as_str()) == Some(&"Softmax"),
            })
        })
        .collect()
}

/// Float values of the model's initializers by name (only those the sites use).
pub fn site_tensors(model: &pb::ModelProto, sites: &[ConvSite]) -> BTreeMap<String, Vec<f32>> {
    let wanted: std::collections::BTreeSet<&str> =
        sites.iter().flat_map(|s| std::iter::once(s.weight.as_str()).chain(s.bias.as_deref())).collect();
    let Some(graph) = model.graph.as_ref() else { return BTreeMap::new() };
    graph
        .initializer
        .iter()
        .filter(|t| wanted.contains(t.name.as_str()))
        .filter_map(|t| Some((t.name.clone(), proto::f32_values(t)?)))
        .collect()
}

/// `--exclude` patterns: a glob (`*`, `?`, `[..]`) matches whole node names, plain text
/// matches anywhere in the name (`model.22` keeps the whole detect head in float).
#[derive(Debug, Clone)]
pub enum NamePattern {
    Glob(glob::Pattern),
    Substring(String),
}

impl NamePattern {
    pub fn parse(s: &str) -> std::result::Result<NamePattern, String> {
        if s.contains(['*', '?', '[']) {
            glob::Pattern::new(s).map(NamePattern::Glob).map_err(|e| format!("bad pattern {s:?}: {e}"))
        } else {
            Ok(NamePattern::Substring(s.to_string()))
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Glob(g) => g.matches(name),
            NamePattern::Substring(s) => name.contains(s.as_str()),
        }
    }
}
