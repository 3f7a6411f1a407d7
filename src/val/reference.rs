//! `qdet val --reference`: a model's [agreement](super::agreement) with a reference model
//! over unlabelled images, on the batch pipeline. Each image is letterboxed as `qdet detect`
//! letterboxes it for each model (once when both models take the same input), so the
//! reference's detections are exactly `qdet detect --model REFERENCE`'s.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::agreement::{compare, Agreement, AgreementSummary, ImageAgreement, ImageDetections, Thresholds};
use crate::detector::{Detector, Prepared};
use crate::error::{Error, Problem, Result};
use crate::image_io::read_rgb;
use crate::pipeline::{self, Clock, Job, Stage, StageMs};

#[derive(Debug, Clone, Serialize)]
pub struct AgreementReport {
    pub model: PathBuf,
    pub reference: PathBuf,
    /// Model inputs `(height, width)` of a static model, `None` for a dynamic one (each image
    /// then gets `detect`'s minimal rectangle up to `imgsz`).
    pub input: Option<(usize, usize)>,
    pub reference_input: Option<(usize, usize)>,
    pub imgsz: usize,
    pub reference_imgsz: usize,
    pub nc: usize,
    /// Images listed; `images` (in the summary) counts those compared.
    pub images_found: usize,
    #[serde(flatten)]
    pub agreement: AgreementSummary,
    /// Images left out, and why.
    pub skipped: Vec<Problem>,
    /// What did not stop the run (the two models naming their classes differently).
    pub warnings: Vec<Problem>,
    pub mean_ms: StageMs,
    pub wall_s: f64,
}

/// Both models on one image, as the batch pipeline runs them.
struct PairJob<'a> {
    model: &'a Detector,
    reference: &'a Detector,
    images: &'a [PathBuf],
    t: &'a Thresholds,
}

impl Job for PairJob<'_> {
    /// The model's input, and the reference's when its letterbox differs.
    type Decoded = (Prepared, Option<Prepared>);
    type Output = ImageAgreement;
    type Failure = Problem;

    fn decode(&self, k: usize, clock: &mut Clock) -> std::result::Result<Self::Decoded, Problem> {
        let path = &self.images[k];
        let img = read_rgb(path).map_err(|e| Problem::new(path.clone(), e.reason()))?;
        clock.lap(Stage::Decode);
        let m = self.model.prepare_decoded(&img);
        let r = (self.reference.letterbox_for(&img) != *m.letterbox()).then(|| self.reference.prepare_decoded(&img));
        clock.lap(Stage::Preprocess);
        Ok((m, r))
    }

    fn process(
        &self,
        k: usize,
        (m, r): Self::Decoded,
        clock: &mut Clock,
    ) -> std::result::Result<ImageAgreement, Problem> {
        let fail = |e: Error| Problem::new(self.images[k].clone(), e.to_string());
        let r = r.as_ref().unwrap_or(&m);
        let model_raw = self.model.infer(&m).map_err(fail)?;
        let reference_raw = self.reference.infer(r).map_err(fail)?;
        clock.lap(Stage::Inference);
        let dets = ImageDetections::decode((&reference_raw, r.letterbox()), (&model_raw, m.letterbox()), self.t);
        let a = compare(&dets, self.t);
        clock.lap(Stage::Postprocess);
        Ok(a)
    }
}

/// The input of a static model, and the size `detect` letterboxes to.
fn input_of(det: &Detector) -> (Option<(usize, usize)>, usize) {
    let (h, w) = det.target();
    (det.model().fixed_size(), h.max(w))
}

/// Scores `model` against `reference` on `images`. Both detectors must carry `detect`'s
/// NMS options ([`Thresholds::detect_nms`]). `on_event` is called once per image with the
/// problem, if the image was skipped; per-image problems never stop the run.
pub fn run(
    model: &Detector,
    reference: &Detector,
    images: &[PathBuf],
    t: &Thresholds,
    inflight: usize,
    on_event: &(dyn Fn(Option<&Problem>) + Sync),
) -> Result<AgreementReport> {
    let start = Instant::now();
    if images.is_empty() {
        return Err(Error::Invalid("no images to compare the models on".into()));
    }
    let (nc, ref_nc) = (model.model().num_classes(), reference.model().num_classes());
    if nc != ref_nc {
        return Err(Error::Invalid(format!(
            "{} predicts {nc} classes and the reference {} {ref_nc}: their detections cannot be compared",
            model.model().path().display(),
            reference.model().path().display()
        )));
    }
    let mut warnings = Vec::new();
    if !model.names().is_empty() && !reference.names().is_empty() && model.names() != reference.names() {
        warnings.push(Problem::new(
            model.model().path(),
            "its class names differ from the reference's: classes are compared by id, named as the reference names them",
        ));
    }
    let names = if reference.names().is_empty() { model.names() } else { reference.names() };
    let job = PairJob { model, reference, images, t };
    let mut agreement = Agreement::default();
    let mut skipped = Vec::new();
    let Ok(mean_ms) = pipeline::run(&job, images.len(), inflight, |k, result| {
        match result {
            Ok(a) => {
                agreement.add(&images[k], a);
                on_event(None);
            }
            Err(p) => {
                on_event(Some(&p));
                skipped.push(p);
            }
        }
        Ok::<(), Infallible>(())
    });
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let ((input, imgsz), (reference_input, reference_imgsz)) = (input_of(model), input_of(reference));
    Ok(AgreementReport {
        model: model.model().path().to_path_buf(),
        reference: reference.model().path().to_path_buf(),
        input,
        reference_input,
        imgsz,
        reference_imgsz,
        nc,
        images_found: images.len(),
        agreement: agreement.finish(names, *t),
        skipped,
        warnings,
        mean_ms,
        wall_s: start.elapsed().as_secs_f64(),
    })
}
