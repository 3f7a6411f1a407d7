//! Ops qdet puts into tract's graph where tract's own are slow on these models, patched into
//! the typed model before tract optimizes it ([`crate::model`]).
//!
//! * [`softmax`]: the detect head's DFL softmax runs over a strided axis (16 bins, 4 x 8400
//!   apart at 640), where tract 0.23.9 spends more time than on all the convolutions together
//!   (measured with `qdet bench --profile`: 246 of 405 ms on the COCO yolov8n at 640).

pub mod softmax;
