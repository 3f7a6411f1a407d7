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

pub mod concat;
pub mod dfl;
pub mod softmax;
