//! One uploaded image through the detector, on an inference worker: the same steps, in the
//! same order, as `qdet detect` runs on a file ([`crate::run`]): decode as OpenCV does
//! (EXIF upright, `--max-pixels` checked from the header), letterbox, infer, NMS and back to
//! the image's pixels. Only the NMS options and, for dynamic models, the size can differ per
//! request; the boxes are then `detect`'s with the same flags.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use super::error::ApiError;
use super::metrics::STAGES;
use super::queue::Gone;
use super::{Served, State};
use crate::postprocess::{Detection, NmsOptions};

/// What to detect, and how.
pub(super) struct Ask {
    pub model: Arc<Served>,
    pub image: Bytes,
    /// The upload's share of the budget, given back once the image is decoded.
    pub permit: OwnedSemaphorePermit,
    pub nms: NmsOptions,
    /// Inference size for a dynamic model; `None`: the model's.
    pub imgsz: Option<(usize, usize)>,
}

/// The detections on one image, with its size (EXIF upright) and each stage's milliseconds
/// in the order of [`STAGES`] (queue wait first).
pub(super) struct Outcome {
    pub width: u32,
    pub height: u32,
    pub dets: Vec<Detection>,
    pub ms: [f64; STAGES.len()],
}

impl Outcome {
    /// Decode to postprocess: CodeProject.AI's `processMs`.
    pub(super) fn process_ms(&self) -> f64 {
        self.ms[1..].iter().sum()
    }

    pub(super) fn inference_ms(&self) -> f64 {
        self.ms[3]
    }
}

/// Runs `ask` on the worker pool and records its stage times.
pub(super) async fn detect(state: &State, ask: Ask) -> Result<Outcome, ApiError> {
    state.heap.note(ask.image.len());
    let (result, waited_ms) = state.pool.run(move |gone| run(ask, gone)).await?;
    let mut outcome = result?;
    state.heap.note(outcome.width as usize * outcome.height as usize * 3);
    outcome.ms[0] = waited_ms;
    state.metrics.observe_stages(outcome.ms);
    Ok(outcome)
}

/// One image, stopping after the decode when its client has gone (the inference is the
/// larger half of the work).
fn run(ask: Ask, gone: Gone) -> Result<Outcome, ApiError> {
    let Ask { model, image: bytes, permit, nms, imgsz } = ask;
    let det = &model.det;
    let mut ms = [0.0; STAGES.len()];
    let mut last = Instant::now();
    let mut lap = |i: usize| {
        let now = Instant::now();
        ms[i] = (now - last).as_secs_f64() * 1e3;
        last = now;
    };
    let image = crate::image_io::decode_rgb(&bytes).map_err(|e| match e {
        crate::image_io::DecodeError::TooLarge(_) => ApiError::BadImage(format!("{e} (--max-pixels)")),
        _ => ApiError::BadImage(e.to_string()),
    })?;
    drop((bytes, permit));
    lap(1);
    if gone() {
        return Err(ApiError::Gone);
    }
    let prepared = det.prepare_at(&image, det.target_for(imgsz));
    lap(2);
    let raw = det.infer(&prepared).map_err(|e| ApiError::Internal(e.to_string()))?;
    lap(3);
    let dets = det.postprocess_with(&raw, prepared.letterbox(), &nms);
    lap(4);
    Ok(Outcome { width: image.width as u32, height: image.height as u32, dets, ms })
}
