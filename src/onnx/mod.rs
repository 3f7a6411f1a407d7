//! ONNX files as protobuf: reading and writing tensors, attributes and nodes ([`proto`]),
//! and the quantized Convs a QDQ file defines ([`qdq`]). The runtime reads int8 files
//! through it (`model`, `passes`) and `quant` (calibrate) writes them with it; neither
//! reaches into the other for this.

pub mod proto;
pub mod qdq;
