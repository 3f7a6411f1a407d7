//! qdet: Ultralytics YOLOv8 detection exports on the CPU, with Ultralytics' exact
//! preprocessing and NMS, writing labelme JSON and YOLO txt.
//!
//! The pipeline, in module order: [`model`] loads and checks an ONNX export, [`image_io`]
//! decodes images as OpenCV does, [`letterbox`] (with [`resize`]) builds the model input,
//! [`postprocess`] (with [`nms`]) turns raw output into boxes, [`formats`] writes them, and
//! [`run`] drives all of it over folders of images.

pub mod atomic;
#[doc(hidden)]
pub mod cli;
pub mod dataset;
pub mod detector;
pub mod draw;
pub mod error;
pub mod formats;
pub mod image_io;
pub mod input;

pub mod kernels;
pub mod letterbox;
pub mod meta;
pub mod metrics;
pub mod model;
pub mod nms;
pub mod ops;
pub mod passes;
pub mod paths;
pub mod pipeline;
pub mod postprocess;
pub mod progress;
pub mod python;
pub mod quant;
pub mod resize;
pub mod run;
pub mod sources;
pub mod val;
pub mod yaml;

#[cfg(test)]
mod tests;

pub use detector::Detector;
pub use error::{Error, Result};
pub use image_io::{decode_rgb as decode_image, read_rgb as read_image, RgbImage};
pub use kernels::Isa as Kernel;
pub use model::{Head, Int8, Model, Precision};
pub use postprocess::{Detection, NmsOptions};
