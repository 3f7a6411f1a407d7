//! Reading the quantized Convs out of a QDQ ONNX file.

use std::collections::HashMap;

use tract_onnx::pb;

use crate::kernels::conv::ConvShape;
use crate::quant::proto;

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
/// through Q/DQ, int8 weights with zero zero points (per tensor or per output channel),
/// int32 or float bias, group 1. Others are left to tract.
pub fn quantized_convs(model: &pb::ModelProto) -> Vec<QConvSpec> {
    let Some(g) = model.graph.as_ref() else { return Vec::new() };
    let inits: HashMap<&str, &pb::TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let producer: HashMap<&str, &pb::NodeProto> =
        g.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
    let dq_of =
        |tensor: &str| producer.get(tensor).filter(|n| n.op_type == "DequantizeLinear" && n.input.len() >= 2).copied();
    let f32s = |name: &str| inits.get(name).and_then(|t| proto::f32_values(t));
    let mut out = Vec::new();
    for n in g.node.iter().filter(|n| n.op_type == "Conv" && n.input.len() >= 2) {
        let spec = (|| {
            let xdq = dq_of(&n.input[0])?;
            let xq = producer.get(xdq.input[0].as_str()).filter(|p| p.op_type == "QuantizeLinear")?;
            let _ = xq;
            let input_scale = *f32s(&xdq.input[1])?.first()?;
            let input_zero_point = match xdq.input.get(2) {
                Some(z) => u8_scalar(inits.get(z.as_str())?)?,
                None => return None,
            };
            let wdq = dq_of(&n.input[1])?;
            let wt = inits.get(wdq.input[0].as_str())?;
            let weights = int8_values(wt)?;
            if let Some(z) = wdq.input.get(2) {
                if int8_values(inits.get(z.as_str())?)?.iter().any(|&v| v != 0) {
                    return None;
                }
            }
            let dims: Vec<usize> = wt.dims.iter().map(|&d| d as usize).collect();
            if dims.len() != 4 || proto::attr_int(n, "group").unwrap_or(1) != 1 {
                return None;
            }
            let out_c = dims[0];
            let mut weight_scales = f32s(&wdq.input[1])?;
            if weight_scales.len() == 1 {
                weight_scales = vec![weight_scales[0]; out_c];
            }
            if weight_scales.len() != out_c
                || proto::attr_int(wdq, "axis").unwrap_or(1) != 0 && weight_scales.len() > 1 && out_c > 1
            {
                return None;
            }
            let bias = match n.input.get(2).filter(|b| !b.is_empty()) {
                None => vec![0.0; out_c],
                Some(b) => match dq_of(b) {
                    Some(bdq) => {
                        let q = int32_values(inits.get(bdq.input[0].as_str())?)?;
                        let s = f32s(&bdq.input[1])?;
                        q.iter().enumerate().map(|(c, &v)| v as f32 * s[if s.len() == 1 { 0 } else { c }]).collect()
                    }
                    None => f32s(b)?,
                },
            };
            if bias.len() != out_c {
                return None;
            }
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
                kernel: two("kernel_shape", 0)
                    .filter(|k| k.0 == dims[2] && k.1 == dims[3])
                    .or(Some((dims[2], dims[3])))?,
                stride: two("strides", 1)?,
                pad: [pads[0] as usize, pads[1] as usize, pads[2] as usize, pads[3] as usize],
                dilation: two("dilations", 1)?,
            })
        })();
        out.extend(spec);
    }
    out
}
