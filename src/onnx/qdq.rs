//! Reading the quantized Convs out of a QDQ ONNX file.

use std::collections::HashMap;

use tract_onnx::pb;

use crate::kernels::conv::ConvShape;
use crate::onnx::proto;

/// One quantized Conv, as the file defines it.
#[derive(Debug, Clone)]
pub struct QConvSpec {
    /// The Conv node's name (tract keeps it).
    pub name: String,
    /// Input activation: `x = (q - zero_point) * scale`.
    pub input_scale: f32,
    pub input_zero_point: u8,
    /// `[out_c][in_c][kh][kw]`.
    pub weights: Vec<i8>,
    pub weight_scales: Vec<f32>,
    /// Float bias as the file's DequantizeLinear gives it (zeros without a bias).
    pub bias: Vec<f32>,
    pub out_c: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    /// Top, left, bottom, right.
    pub pad: [usize; 4],
    pub dilation: (usize, usize),
    /// `group == in_c == out_c`, weights `[c][1][kh][kw]`.
    pub depthwise: bool,
    /// When it reads a Concat quantized per input: each input's (scale, zero point), in
    /// order; `input_scale` is then the finest of them. Empty: one input grid.
    pub parts: Vec<(f32, u8)>,
}

impl QConvSpec {
    /// The convolution on an input of `in_c x in_h x in_w`.
    pub fn shape(&self, in_c: usize, in_h: usize, in_w: usize) -> ConvShape {
        ConvShape {
            in_c,
            in_h,
            in_w,
            out_c: self.out_c,
            kh: self.kernel.0,
            kw: self.kernel.1,
            stride: self.stride,
            pad: self.pad,
            dilation: self.dilation,
        }
    }

    /// `input_scale * weight_scale[c]`: the factor between an exact integer sum and the output.
    pub fn output_scales(&self) -> Vec<f32> {
        self.weight_scales.iter().map(|w| self.input_scale * w).collect()
    }
}

fn int8_values(t: &pb::TensorProto) -> Option<Vec<i8>> {
    (t.data_type == pb::tensor_proto::DataType::Int8 as i32 && !t.raw_data.is_empty())
        .then(|| t.raw_data.iter().map(|&b| b as i8).collect())
}

fn u8_scalar(t: &pb::TensorProto) -> Option<u8> {
    (t.data_type == pb::tensor_proto::DataType::Uint8 as i32)
        .then(|| t.raw_data.first().copied().or_else(|| t.int32_data.first().map(|&v| v as u8)))
        .flatten()
}

fn int32_values(t: &pb::TensorProto) -> Option<Vec<i32>> {
    if t.data_type != pb::tensor_proto::DataType::Int32 as i32 {
        return None;
    }
    if t.raw_data.is_empty() {
        return Some(t.int32_data.clone());
    }
    Some(t.raw_data.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Every Conv of `model` the integer kernels can run exactly as the file says: uint8 input
/// through Q/DQ (or a channel Concat of such inputs, each on its own grid), int8 weights with zero zero points (per tensor or per output channel),
/// int32 or float bias, group 1 or depthwise (one input channel per output channel). Others
/// are left to tract.
pub fn quantized_convs(model: &pb::ModelProto) -> Vec<QConvSpec> {
    let Some(g) = model.graph.as_ref() else { return Vec::new() };
    let graph = Graph {
        inits: g.initializer.iter().map(|t| (t.name.as_str(), t)).collect(),
        producer: g.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect(),
    };
    g.node.iter().filter(|n| n.op_type == "Conv" && n.input.len() >= 2).filter_map(|n| graph.spec(n)).collect()
}

/// The graph's initializers and, per tensor, the node that writes it.
struct Graph<'a> {
    inits: HashMap<&'a str, &'a pb::TensorProto>,
    producer: HashMap<&'a str, &'a pb::NodeProto>,
}

impl<'a> Graph<'a> {
    fn dq_of(&self, tensor: &str) -> Option<&'a pb::NodeProto> {
        self.producer.get(tensor).filter(|n| n.op_type == "DequantizeLinear" && n.input.len() >= 2).copied()
    }

    fn f32s(&self, name: &str) -> Option<Vec<f32>> {
        self.inits.get(name).and_then(|t| proto::f32_values(t))
    }

    /// The (scale, zero point) of `tensor` when it is `QuantizeLinear -> DequantizeLinear`
    /// to uint8.
    fn grid(&self, tensor: &str) -> Option<(f32, u8)> {
        let xdq = self.dq_of(tensor)?;
        self.producer.get(xdq.input[0].as_str()).filter(|p| p.op_type == "QuantizeLinear")?;
        Some((*self.f32s(&xdq.input[1])?.first()?, u8_scalar(self.inits.get(xdq.input.get(2)?.as_str())?)?))
    }

    /// The spec of Conv `n` when it reads `QuantizeLinear -> DequantizeLinear` and its weights
    /// are int8 through a DequantizeLinear with zero zero points, in a form the kernels run.
    fn spec(&self, n: &pb::NodeProto) -> Option<QConvSpec> {
        let parts = match self.producer.get(n.input[0].as_str()) {
            Some(c) if c.op_type == "Concat" => {
                (proto::attr_int(c, "axis") == Some(1)).then_some(())?;
                c.input.iter().map(|t| self.grid(t)).collect::<Option<Vec<_>>>()?
            }
            _ => Vec::new(),
        };
        let (input_scale, input_zero_point) = match parts.first() {
            None => self.grid(&n.input[0])?,
            Some(&first) => (parts.iter().map(|p| p.0).fold(f32::INFINITY, f32::min), first.1),
        };
        let (weights, weight_scales, dims) = self.weights(n)?;
        let group = proto::attr_int(n, "group").unwrap_or(1);
        let depthwise = group > 1 && dims.len() == 4 && dims[1] == 1 && group as usize == dims[0];
        if dims.len() != 4 || group != 1 && !depthwise {
            return None;
        }
        let out_c = dims[0];
        let bias = self.bias(n, out_c)?;
        let two = |name: &str, default: usize| -> Option<(usize, usize)> {
            match proto::attr_ints(n, name) {
                Some(v) if v.len() == 2 => Some((v[0] as usize, v[1] as usize)),
                Some(_) => None,
                None => Some((default, default)),
            }
        };
        let pads = proto::attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
        if pads.len() != 4 || proto::attr_int(n, "auto_pad").is_some() {
            return None;
        }
        Some(QConvSpec {
            name: n.name.clone(),
            input_scale,
            input_zero_point,
            weights,
            weight_scales,
            bias,
            out_c,
            kernel: two("kernel_shape", 0).filter(|k| k.0 == dims[2] && k.1 == dims[3]).or(Some((dims[2], dims[3])))?,
            stride: two("strides", 1)?,
            pad: [pads[0] as usize, pads[1] as usize, pads[2] as usize, pads[3] as usize],
            dilation: two("dilations", 1)?,
            depthwise,
            parts,
        })
    }

    /// The int8 weights, one scale per output channel (a per-tensor scale repeated), and the
    /// weight dims; `None` for a nonzero weight zero point or scales along another axis.
    fn weights(&self, n: &pb::NodeProto) -> Option<(Vec<i8>, Vec<f32>, Vec<usize>)> {
        let wdq = self.dq_of(&n.input[1])?;
        let wt = self.inits.get(wdq.input[0].as_str())?;
        let weights = int8_values(wt)?;
        if let Some(z) = wdq.input.get(2) {
            if int8_values(self.inits.get(z.as_str())?)?.iter().any(|&v| v != 0) {
                return None;
            }
        }
        let dims: Vec<usize> = wt.dims.iter().map(|&d| d as usize).collect();
        let out_c = *dims.first()?;
        let mut scales = self.f32s(&wdq.input[1])?;
        if scales.len() == 1 {
            scales = vec![scales[0]; out_c];
        }
        if scales.len() != out_c || proto::attr_int(wdq, "axis").unwrap_or(1) != 0 && scales.len() > 1 && out_c > 1 {
            return None;
        }
        Some((weights, scales, dims))
    }

    /// The float bias of Conv `n`: dequantized int32, plain float, or zeros without one.
    fn bias(&self, n: &pb::NodeProto, out_c: usize) -> Option<Vec<f32>> {
        let bias = match n.input.get(2).filter(|b| !b.is_empty()) {
            None => vec![0.0; out_c],
            Some(b) => match self.dq_of(b) {
                Some(bdq) => {
                    let q = int32_values(self.inits.get(bdq.input[0].as_str())?)?;
                    let s = self.f32s(&bdq.input[1])?;
                    q.iter().enumerate().map(|(c, &v)| v as f32 * s[if s.len() == 1 { 0 } else { c }]).collect()
                }
                None => self.f32s(b)?,
            },
        };
        (bias.len() == out_c).then_some(bias)
    }
}
