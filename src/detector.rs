//! One image in, detections out: letterbox, inference, NMS, back to source pixels.

use std::path::Path;

use crate::error::Result;
use crate::image_io::RgbImage;
use crate::letterbox::Letterbox;
use crate::model::Model;
use crate::postprocess::{decode, to_source, Detection, NmsOptions};

/// Ultralytics' default inference size for models that do not fix or record one.
pub const DEFAULT_IMGSZ: usize = 640;

/// A letterboxed image ready for inference.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub letterbox: Letterbox,
    pub chw: Vec<f32>,
}

#[derive(Debug)]
pub struct Detector {
    pub model: Model,
    /// `(height, width)` the letterbox aims at.
    target: (usize, usize),
    /// Dynamic models get Ultralytics' minimal-rectangle letterbox (`auto=True`).
    auto: bool,
    stride: usize,
    pub nms: NmsOptions,
    /// Class names: the model's, or those given by the user for a model without them.
    pub names: Vec<String>,
}

impl Detector {
    /// `imgsz` (height, width) matters only for dynamic models; static models run at their size.
    pub fn new(model: Model, imgsz: Option<(usize, usize)>, nms: NmsOptions) -> Detector {
        let stride = model.meta.stride.unwrap_or(32) as usize;
        let (target, auto) = match model.fixed_size {
            Some(size) => (size, false),
            None => {
                let meta = model.meta.imgsz.map(|(h, w)| (h as usize, w as usize));
                let (h, w) = imgsz.or(meta).unwrap_or((DEFAULT_IMGSZ, DEFAULT_IMGSZ));
                // Ultralytics' check_imgsz rounds up to a multiple of the stride.
                let up = |v: usize| v.div_ceil(stride).max(1) * stride;
                ((up(h), up(w)), true)
            }
        };
        let names = model.meta.names.clone();
        Detector { model, target, auto, stride, nms, names }
    }

    pub fn load(path: &Path, imgsz: Option<(usize, usize)>, nms: NmsOptions) -> Result<Detector> {
        let model = Model::load(path, imgsz)?;
        Ok(Detector::new(model, imgsz, nms))
    }

    pub fn target(&self) -> (usize, usize) {
        self.target
    }

    pub fn label(&self, class: usize) -> String {
        self.names.get(class).cloned().unwrap_or_else(|| class.to_string())
    }

    pub fn letterbox_for(&self, img: &RgbImage) -> Letterbox {
        Letterbox::new((img.height, img.width), self.target, self.auto, self.stride)
    }

    /// The model's input for `img`: letterboxed, as `[1, 3, H, W]` floats. An image whose
    /// buffer does not hold its size (built from the public fields) is an error.
    pub fn prepare(&self, img: &RgbImage) -> Result<Prepared> {
        img.check()?;
        Ok(self.prepare_at(img, self.target))
    }

    /// [`Detector::prepare`] of an image qdet decoded itself, whose buffer holds its size
    /// by construction.
    pub(crate) fn prepare_decoded(&self, img: &RgbImage) -> Prepared {
        self.prepare_at(img, self.target)
    }

    /// The letterbox target for an inference size asked per image (`qdet serve`'s `imgsz`):
    /// a dynamic model's rounded up to the stride as in [`Detector::new`]; a static model
    /// always runs at its own size.
    pub(crate) fn target_for(&self, imgsz: Option<(usize, usize)>) -> (usize, usize) {
        match imgsz {
            Some((h, w)) if self.auto => {
                let up = |v: usize| v.div_ceil(self.stride).max(1) * self.stride;
                (up(h), up(w))
            }
            _ => self.target,
        }
    }

    /// [`Detector::prepare`] aiming at `target` (from [`Detector::target_for`]).
    pub(crate) fn prepare_at(&self, img: &RgbImage, target: (usize, usize)) -> Prepared {
        let letterbox = Letterbox::new((img.height, img.width), target, self.auto, self.stride);
        let mut chw = Vec::new();
        letterbox.apply(img, &mut chw);
        Prepared { letterbox, chw }
    }

    /// Inference only: raw head output for a prepared image.
    pub fn infer(&self, p: &Prepared) -> Result<crate::model::RawOutput> {
        self.model.run(&p.chw, p.letterbox.out)
    }

    /// NMS and mapping back to the source image.
    pub fn postprocess(&self, raw: &crate::model::RawOutput, lb: &Letterbox) -> Vec<Detection> {
        self.postprocess_with(raw, lb, &self.nms)
    }

    /// [`Detector::postprocess`] with other NMS options (`qdet serve`'s per-request ones).
    pub(crate) fn postprocess_with(
        &self,
        raw: &crate::model::RawOutput,
        lb: &Letterbox,
        nms: &NmsOptions,
    ) -> Vec<Detection> {
        let mut dets = decode(raw, nms);
        to_source(&mut dets, lb);
        dets
    }

    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>> {
        let p = self.prepare(img)?;
        let raw = self.infer(&p)?;
        Ok(self.postprocess(&raw, &p.letterbox))
    }
}
