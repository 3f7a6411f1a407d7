//! The Conv nodes of a model that the scheme quantizes, and why others are left in float.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tract_onnx::pb;

use crate::onnx::proto;

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
    /// The tensors quantized for it: its input, or, when the input is a channel Concat only
    /// this conv reads, the Concat's inputs, each on its own uint8 grid (see [`concat_parts`]).
    pub parts: Vec<String>,
    /// The node index of that Concat.
    pub concat: Option<usize>,
}

impl ConvSite {
    pub fn out_channels(&self) -> usize {
        self.weight_dims.first().copied().unwrap_or(0) as usize
    }

    /// Its input is a Concat quantized per input.
    pub fn segmented(&self) -> bool {
        self.concat.is_some()
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

/// Every Conv with float initializer weights (and bias, if any), in graph order. A weight or
/// bias may be shared with other nodes: onnxslim merges identical initializers, and a model
/// with freshly initialised BatchNorms folds to all-zero biases that become one tensor; the
/// QDQ writer gives each conv its own quantized copy.
pub fn conv_sites(model: &pb::ModelProto) -> Vec<ConvSite> {
    let Some(graph) = model.graph.as_ref() else { return Vec::new() };
    let inits = initializers(graph);
    let producers: HashMap<&str, &str> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n.op_type.as_str()))).collect();
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Conv")
        .filter(|(_, n)| why_float(n, &inits).is_none())
        .filter_map(|(i, n)| {
            let dims = inits.get(n.input[1].as_str())?.dims.clone();
            // The kernels read parts in unpadded 1x1 convs (every Concat reader in YOLO's
            // C2f, C3, C3k2, SPPF and neck).
            let one_by_one = dims.get(2..4) == Some(&[1, 1][..])
                && proto::attr_ints(n, "pads").is_none_or(|p| p.iter().all(|&v| v == 0))
                && proto::attr_int(n, "group").unwrap_or(1) == 1;
            let (parts, concat) = match concat_parts(graph, &n.input[0], &inits).filter(|_| one_by_one) {
                Some((c, parts)) => (parts, Some(c)),
                None => (vec![n.input[0].clone()], None),
            };
            Some(ConvSite {
                name: node_name(n, i),
                node_index: i,
                input: n.input[0].clone(),
                weight: n.input[1].clone(),
                bias: n.input.get(2).filter(|b| !b.is_empty()).cloned(),
                output: n.output[0].clone(),
                weight_dims: dims,
                dfl: producers.get(n.input[0].as_str()) == Some(&"Softmax"),
                parts,
                concat,
            })
        })
        .collect()
}

/// The Concat writing `tensor` and its inputs, when it joins channels (axis 1) of computed
/// tensors and one node reads it: then each input gets its own uint8 grid and the Concat
/// stays float. One grid for the whole Concat is set by its widest input: a C2f's split
/// halves went to its Concat at twice their own step on the COCO yolov8n (0.088 against
/// 0.042 at model.2), and this re-rounding was the largest single source of confidence
/// drift on real photos (`tools/quant/drift_sources.py`).
pub fn concat_parts(
    graph: &pb::GraphProto,
    tensor: &str,
    inits: &HashMap<&str, &pb::TensorProto>,
) -> Option<(usize, Vec<String>)> {
    let (index, node) = graph.node.iter().enumerate().find(|(_, n)| n.output.iter().any(|o| o == tensor))?;
    let readers = graph.node.iter().filter(|n| n.input.iter().any(|i| i == tensor)).count();
    let inputs: BTreeSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    let computed = |t: &String| !inits.contains_key(t.as_str()) && !inputs.contains(t.as_str()) && !t.is_empty();
    (node.op_type == "Concat"
        && proto::attr_int(node, "axis") == Some(1)
        && readers == 1
        && node.input.len() > 1
        && node.input.iter().all(computed)
        && !graph.output.iter().any(|o| o.name == tensor))
    .then(|| (index, node.input.clone()))
}

/// Tensors whose uint8 grid is another's: a MaxPool's or nearest Resize's output takes its
/// input's (following chains, as SPPF's three pools), so the quantized values are those
/// ops run on the input's bytes: exactly the same, as quantization is monotonic.
pub fn grid_aliases(model: &pb::ModelProto) -> BTreeMap<String, String> {
    let Some(graph) = model.graph.as_ref() else { return BTreeMap::new() };
    let keeps_grid = |n: &pb::NodeProto| match n.op_type.as_str() {
        "MaxPool" => n.output.len() == 1,
        "Resize" => n.attribute.iter().any(|a| a.name == "mode" && a.s == b"nearest"),
        _ => false,
    };
    let producer: HashMap<&str, &pb::NodeProto> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let mut aliases = BTreeMap::new();
    for n in graph.node.iter().filter(|n| keeps_grid(n)) {
        let mut root = n.input[0].as_str();
        while let Some(p) = producer.get(root).filter(|p| keeps_grid(p)) {
            root = p.input[0].as_str();
        }
        aliases.insert(n.output[0].clone(), root.to_string());
    }
    aliases
}

/// A Conv node the scheme cannot quantize.
#[derive(Debug, Clone)]
pub struct FloatConv {
    pub node_index: usize,
    pub name: String,
    pub input: String,
    pub output: String,
    pub why: String,
}

/// Whether `tensor` is read only by a SiLU as Ultralytics exports it: `Sigmoid(tensor)` and
/// `Mul(tensor, sigmoid)` (either order), nothing else.
pub fn silu_follows(model: &pb::ModelProto, tensor: &str) -> bool {
    let nodes = model.graph.as_ref().map(|g| g.node.as_slice()).unwrap_or_default();
    let readers: Vec<&pb::NodeProto> = nodes.iter().filter(|n| n.input.iter().any(|i| i == tensor)).collect();
    let [a, b] = readers[..] else { return false };
    let (sigmoid, mul) = match (a.op_type.as_str(), b.op_type.as_str()) {
        ("Sigmoid", "Mul") => (a, b),
        ("Mul", "Sigmoid") => (b, a),
        _ => return false,
    };
    let Some(s) = sigmoid.output.first() else { return false };
    let mut operands: Vec<&str> = mul.input.iter().map(String::as_str).collect();
    operands.sort_unstable();
    let mut want = vec![tensor, s.as_str()];
    want.sort_unstable();
    operands == want
}

/// The Conv nodes the scheme cannot quantize, in graph order.
pub fn float_only_convs(model: &pb::ModelProto) -> Vec<FloatConv> {
    let Some(graph) = model.graph.as_ref() else { return Vec::new() };
    let inits = initializers(graph);
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Conv")
        .filter_map(|(i, n)| {
            Some(FloatConv {
                node_index: i,
                name: node_name(n, i),
                input: n.input.first().cloned().unwrap_or_default(),
                output: n.output.first().cloned().unwrap_or_default(),
                why: why_float(n, &inits)?,
            })
        })
        .collect()
}

pub fn initializers(graph: &pb::GraphProto) -> HashMap<&str, &pb::TensorProto> {
    graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect()
}

fn node_name(n: &pb::NodeProto, index: usize) -> String {
    if n.name.is_empty() {
        format!("Conv_{index}")
    } else {
        n.name.clone()
    }
}

/// Why a Conv node cannot take the scheme's int8 weights, or `None` when it can.
fn why_float(n: &pb::NodeProto, inits: &HashMap<&str, &pb::TensorProto>) -> Option<String> {
    if n.input.len() < 2 || n.output.len() != 1 {
        return Some(format!("{} inputs and {} outputs, not a Conv as exported", n.input.len(), n.output.len()));
    }
    let Some(w) = inits.get(n.input[1].as_str()) else {
        return Some("its weights are computed in the graph, not stored: there is nothing to quantize ahead".into());
    };
    if proto::f32_values(w).is_none() {
        return Some("its weights are not float32".into());
    }
    if w.dims.len() != 4 || w.dims[0] <= 0 {
        return Some(format!("its weights have shape {:?}: only 2-D convolutions are quantized", w.dims));
    }
    match n.input.get(2).filter(|b| !b.is_empty()) {
        Some(b) if inits.get(b.as_str()).and_then(|t| proto::f32_values(t)).is_none() => {
            Some("its bias is not a float32 initializer".into())
        }
        _ => None,
    }
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
