//! One image in, detections out: letterbox, inference, NMS, back to source pixels.

use std::path::Path;

use crate::error::{Error, Result};
use crate::image_io::RgbImage;
use crate::letterbox::Letterbox;
use crate::model::{Model, RawOutput};
use crate::postprocess::{decode, to_source, Detection, NmsOptions};

/// Ultralytics' default inference size for models that do not fix or record one.
pub const DEFAULT_IMGSZ: usize = 640;

/// A letterboxed image ready for inference ([`Detector::prepare`]).
#[derive(Debug, Clone)]
pub struct Prepared {
    letterbox: Letterbox,
    chw: Vec<f32>,
}

impl Prepared {
    /// Where the image sits in the model's input.
    pub fn letterbox(&self) -> &Letterbox {
        &self.letterbox
    }

    /// The model's input, `[1, 3, H, W]` floats in 0..1 (`H, W` the letterbox's `out`).
    pub fn chw(&self) -> &[f32] {
        &self.chw
    }
}

/// A model with its letterbox and NMS settings: one image in, detections out.
#[derive(Debug)]
pub struct Detector {
    model: Model,
    /// `(height, width)` the letterbox aims at.
    target: (usize, usize),
    /// Dynamic models get Ultralytics' minimal-rectangle letterbox (`auto=True`).
    auto: bool,
    stride: usize,
    nms: NmsOptions,
    /// Class names: the model's, or those given by the user ([`Detector::set_names`]).
    names: Vec<String>,
}

impl Detector {
    /// `imgsz` (height, width) matters only for dynamic models; static models run at their size.
    pub fn new(model: Model, imgsz: Option<(usize, usize)>, nms: NmsOptions) -> Detector {
        let stride = model.meta().stride.unwrap_or(32) as usize;
        let (target, auto) = match model.fixed_size() {
            Some(size) => (size, false),
            None => {
                let meta = model.meta().imgsz.map(|(h, w)| (h as usize, w as usize));
                let (h, w) = imgsz.or(meta).unwrap_or((DEFAULT_IMGSZ, DEFAULT_IMGSZ));
                // Ultralytics' check_imgsz rounds up to a multiple of the stride.
                let up = |v: usize| v.div_ceil(stride).max(1) * stride;
                ((up(h), up(w)), true)
            }
        };
        let names = model.meta().names.clone();
        Detector { model, target, auto, stride, nms, names }
    }

    pub fn load(path: &Path, imgsz: Option<(usize, usize)>, nms: NmsOptions) -> Result<Detector> {
        let model = Model::load(path, imgsz)?;
        Ok(Detector::new(model, imgsz, nms))
    }

    pub fn target(&self) -> (usize, usize) {
        self.target
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn nms(&self) -> &NmsOptions {
        &self.nms
    }

    /// Replaces the NMS settings [`Detector::detect`] applies.
    pub fn set_nms(&mut self, nms: NmsOptions) {
        self.nms = nms;
    }

    /// Class names by id: the model's, or those set.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Names the classes (for a model whose file names none, or to rename them): at least
    /// one name per class the model scores; extra names are kept, and never reached.
    pub fn set_names(&mut self, names: Vec<String>) -> Result<()> {
        let nc = self.model.num_classes();
        if names.len() < nc {
            return Err(Error::Invalid(format!("{} names for the model's {nc} classes", names.len())));
        }
        self.names = names;
        Ok(())
    }

    pub fn label(&self, class: usize) -> String {
        self.names.get(class).cloned().unwrap_or_else(|| class.to_string())
    }

    /// Where `img` would sit in the model's input.
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
    pub fn infer(&self, p: &Prepared) -> Result<RawOutput> {
        self.model.run(&p.chw, p.letterbox.out)
    }

    /// NMS and mapping back to the source image.
    pub fn postprocess(&self, raw: &RawOutput, lb: &Letterbox) -> Vec<Detection> {
        self.postprocess_with(raw, lb, &self.nms)
    }

    /// [`Detector::postprocess`] with other NMS options (`qdet serve`'s per-request ones).
    pub(crate) fn postprocess_with(&self, raw: &RawOutput, lb: &Letterbox, nms: &NmsOptions) -> Vec<Detection> {
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
