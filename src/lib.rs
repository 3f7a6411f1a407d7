//! qdet: Ultralytics YOLO detection exports on the CPU, with Ultralytics' exact preprocessing
//! and NMS, fp32 or int8 on qdet's own integer kernels, writing labelme JSON and YOLO txt.
//!
//! The library API is small: load a [`Model`] (any Ultralytics detection export, fp32, fp16
//! or a QDQ int8 file from `qdet calibrate`) into a [`Detector`], decode an image with
//! [`read_image`], get [`Detection`]s in the image's pixels; [`formats`] reads and writes
//! labelme JSON, YOLO txt and Pascal VOC, [`metrics`] computes mAP as Ultralytics does.
//!
//! ```
//! use std::path::Path;
//!
//! let det = qdet::Detector::load(Path::new("models/shapes-yolov8n.onnx"), None, qdet::NmsOptions::default())?;
//! let image = qdet::read_image(Path::new("datasets/shapes/images/val/val_0000.jpg"))?;
//! let found = det.detect(&image)?;
//! assert!(!found.is_empty());
//! for d in &found {
//!     let [x1, y1, x2, y2] = d.bbox;
//!     println!("{} {:.2} at ({x1:.0}, {y1:.0})-({x2:.0}, {y2:.0})", det.label(d.class), d.score);
//! }
//! # Ok::<(), qdet::Error>(())
//! ```
//!
//! Inside, in pipeline order: `model` loads and checks an export and runs the graph passes
//! of `passes` (the int8 ones put the ops of `ops` on the `kernels`), `image_io` decodes as
//! OpenCV does, `letterbox` (with `resize`) builds the input, `postprocess` (with `nms`)
//! turns raw output into boxes, and `pipeline` drives a model over many images for `run`
//! (detect), `val` and `quant` (calibrate). The `qdet` binary is `cli`.

// Without the `cli` feature the library keeps the code only the commands drive (detect's
// runs, val, calibrate, the dataset chores): it stays compiled and tested, not warned about.
#![cfg_attr(not(feature = "cli"), allow(dead_code, unused_imports))]
// `unsafe` lives in the kernels (SIMD intrinsics, the thread team, uninitialized outputs)
// and in one libc call of the server, so a review of soundness starts and ends there.
#![deny(unsafe_code)]

pub mod formats;
pub mod metrics;

mod atomic;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
mod dataset;
mod detector;
mod draw;
mod error;
mod image_io;
mod input;
#[allow(unsafe_code)]
mod kernels;
mod letterbox;
mod meta;
mod model;
mod nms;
mod onnx;
mod ops;
mod options;
mod passes;
mod paths;
mod pipeline;
mod postprocess;
mod progress;
mod python;
mod quant;
mod resize;
mod run;
mod runtime;
#[cfg(feature = "serve")]
mod serve;
mod sources;
mod track;
mod val;
mod video;
mod yaml;

#[cfg(test)]
mod tests;

pub use detector::{Detector, Prepared};
pub use error::{Error, Problem, Result};
pub use image_io::{decode_rgb as decode_image, read_rgb as read_image, DecodeError, RgbImage};
pub use letterbox::Letterbox;
pub use meta::ModelMeta;
pub use model::{Head, Int8, Model, Precision, RawOutput};
pub use passes::{PatchReport, Report as PassReport};
pub use postprocess::{Detection, NmsOptions};
pub use runtime::{CpuClass, FloatConvs, FloatKernel, Kernel, RuntimeOptions, UnknownName};

/// What qdet's own benches and fuzz targets reach inside for. Not part of the API: it
/// changes with the code.
#[doc(hidden)]
pub mod internals {
    pub use crate::dataset::convert::{labelme_labeled_boxes, parse_labelme_bytes};
    pub use crate::image_io::set_max_pixels;
    pub use crate::kernels::conv::{ConvShape, Epilogue, QConv};
    pub use crate::kernels::epilogue::{row as epilogue_row, Affine, Dest};
    pub use crate::kernels::madd::fused as float_loops_fused;
    pub use crate::kernels::quantize::Quantizer;
    pub use crate::kernels::{tile, Isa, WeightRange, OC_BLOCK, WGROUP_BYTES};

    /// The kernel [`Isa`] a [`crate::Kernel`] names.
    pub fn isa_of(kernel: crate::Kernel) -> Isa {
        kernel.isa()
    }

    /// The [`crate::Kernel`] of `isa`.
    pub fn kernel_of(isa: Isa) -> crate::Kernel {
        crate::Kernel::new(isa)
    }
    pub use crate::meta::names_from_yaml;
    pub use crate::onnx::proto;
    pub use crate::python::parse as parse_python_literal;
    pub use crate::yaml::load as load_yaml;
}
