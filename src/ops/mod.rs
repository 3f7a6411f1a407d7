//! Ops qdet puts into tract's graph where tract's own are slow on these models, by passes of
//! [`crate::passes`] on the typed model before tract optimizes it.
//!
//! * [`concat`]: large f32 Concats copied in parallel, a Sigmoid read only by the Concat
//!   applied as its piece lands (the head's class scores).
//! * [`dfl`]: the detect head's DFL decode (reshape, transpose, softmax, 1x1 conv) in one
//!   pass, parallel; tract's five ops took about 1.3 ms of a 640 inference, mostly serial.
//! * [`softmax`]: other softmaxes over a strided axis, such as a DFL softmax the pattern above
//!   does not match (16 bins, 4 x 8400 apart at 640), where tract 0.23.9 spends more time than
//!   on all the convolutions together (measured with `qdet bench --profile`: 246 of 405 ms on
//!   the COCO yolov8n at 640).
//!
//! And native int8 execution of QDQ models: each quantized Conv of the file (the pattern
//! `QuantizeLinear -> DequantizeLinear -> Conv`, int8 weights and int32 bias through their own
//! DequantizeLinear, as `qdet calibrate` and ONNX Runtime write it, read by
//! [`crate::onnx::qdq`]) runs as [`qconv::QConvOp`] on qdet's integer kernels
//! ([`crate::kernels`]) instead of tract's float convolution; tract keeps the rest of the
//! graph. The int8 passes of [`crate::passes`] put it in place, then let a conv write what its
//! readers need in one pass (its channel Split, its residual Add, the QuantizeLinears and
//! Concat inputs that read it, the next conv's channels-last image), quantize with
//! [`quantize_u8`], and run the SPPF pools ([`max_pool_u8`]) and the neck's upsamplings
//! ([`upsample_u8`]) on uint8, where quantization makes that exact.

pub mod concat;
pub mod dfl;
pub mod fconv;
pub mod max_pool_u8;
pub mod qconv;
pub mod quantize_u8;
pub mod softmax;
pub mod upsample_u8;
