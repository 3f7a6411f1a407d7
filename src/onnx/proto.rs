//! Reading and writing ONNX protobuf: tensors as flat vectors, Conv attributes, and the
//! handful of node and tensor constructors the QDQ writer needs.

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{self, attribute_proto::AttributeType, tensor_proto::DataType};

use crate::error::{Error, Result};

pub use pb::ModelProto;

pub fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes = crate::input::read(path, crate::input::MODEL_LIMIT)?;
    if bytes.is_empty() {
        return Err(Error::NotOnnx { path: path.into(), reason: "the file is empty".into() });
    }
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| Error::NotOnnx { path: path.into(), reason: e.to_string() })?;
    if model.graph.is_none() {
        return Err(Error::NotOnnx { path: path.into(), reason: "it has no graph".into() });
    }
    Ok(model)
}

pub fn encode(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// The opset of the default (`ai.onnx`) domain.
pub fn opset(model: &ModelProto) -> i64 {
    model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(1, |o| o.version)
}

/// Values of a FLOAT tensor, from `raw_data` (little-endian) or `float_data`; `None` for any
/// other type or for external data.
pub fn f32_values(t: &pb::TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::Float as i32 || t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
    {
        return None;
    }
    let count: i64 = t.dims.iter().product();
    let values: Vec<f32> = if !t.raw_data.is_empty() {
        if !t.raw_data.len().is_multiple_of(4) {
            return None;
        }
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        t.float_data.clone()
    };
    (values.len() as i64 == count).then_some(values)
}

fn tensor(name: &str, dims: &[i64], data_type: DataType, raw_data: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type as i32,
        raw_data,
        ..Default::default()
    }
}

pub fn f32_tensor(name: &str, dims: &[i64], v: &[f32]) -> pb::TensorProto {
    tensor(name, dims, DataType::Float, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

pub fn i8_tensor(name: &str, dims: &[i64], v: &[i8]) -> pb::TensorProto {
    tensor(name, dims, DataType::Int8, v.iter().map(|&x| x as u8).collect())
}

pub fn u8_tensor(name: &str, dims: &[i64], v: &[u8]) -> pb::TensorProto {
    tensor(name, dims, DataType::Uint8, v.to_vec())
}

pub fn i32_tensor(name: &str, dims: &[i64], v: &[i32]) -> pb::TensorProto {
    tensor(name, dims, DataType::Int32, v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

pub fn int_attr(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

pub fn attr_int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

pub fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

/// A graph output with only a name: tract derives its type and shape.
pub fn output(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto { name: name.into(), ..Default::default() }
}
