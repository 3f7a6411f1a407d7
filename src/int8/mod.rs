//! Native int8 execution of QDQ models: each quantized Conv of the file (the pattern
//! `QuantizeLinear -> DequantizeLinear -> Conv`, int8 weights and int32 bias through their own
//! DequantizeLinear, as `qdet calibrate` and ONNX Runtime write it) runs on qdet's integer
//! kernels ([`crate::kernels`]) instead of tract's float convolution. tract keeps the rest of
//! the graph. A Conv followed by SiLU (`x * sigmoid(x)`) gets it fused into the epilogue.
//! The int8 passes of [`crate::passes`] put [`op::QConvOp`] in place, then let a conv write
//! what its readers need in one pass (its channel Split, its residual Add, the
//! QuantizeLinears and Concat inputs that read it, the next conv's channels-last image) and
//! run the SPPF pools and the neck's upsamplings on uint8 ([`maxpool`]), where quantization
//! makes that exact.

pub mod maxpool;
pub mod op;
pub mod quantize;
pub mod spec;
