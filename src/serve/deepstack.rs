//! The DeepStack / CodeProject.AI object-detection API, for the NVRs and home-automation
//! integrations that already speak it (Blue Iris, Agent DVR, Home Assistant's
//! deepstack_object, ...): `POST /v1/vision/detection` (the default model) and
//! `POST /v1/vision/custom/{name}`.
//!
//! The request and response follow the projects' own clients and SDK, not memory:
//! - the request is a multipart form with the file field `image` and the optional fields
//!   `min_confidence` (default 0.45, `DEFAULT_MIN_CONFIDENCE` of robmarkcole/deepstack-python,
//!   the Python client Home Assistant uses) and `api_key` (the same client sends it in the
//!   form, before the image, as Python's `requests` puts `data` fields before `files`);
//!   qdet adds `max_det`, the most predictions to answer (Frigate's plugin reads 20), and
//!   ignores fields it does not know, as DeepStack did;
//! - the answer is `{"success": true, "predictions": [{"confidence", "label", "y_min",
//!   "x_min", "y_max", "x_max"}]}` as that client's README shows DeepStack answering, with the
//!   coordinates integers as CodeProject.AI's `DetectedObject` declares them
//!   (codeproject/CodeProject.AI-Server, src/SDK/NET/API/Structures.cs: `float confidence`,
//!   `string label`, `int x_min` ...);
//! - CodeProject.AI's `ModuleResponse` (src/SDK/NET/API/ModuleResponses.cs) adds `moduleId`,
//!   `moduleName`, `command`, `inferenceDevice`, `inferenceMs`, `processMs` and
//!   `analysisRoundTripMs` (integer milliseconds, camelCase as ASP.NET writes them), its
//!   base response the deprecated `code` (200), and its error response `success: false` with
//!   `error`; its Python detection modules also answer `message` and `count`. DeepStack's
//!   `DetectObjectsResponse` has `duration`.

use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::Json;
use serde::Serialize;

use super::body::{upload, Accept};
use super::error::ApiError;
use super::work::{detect, Ask, Outcome};
use super::AppState;
use crate::postprocess::NmsOptions;

/// DeepStack's default `min_confidence`.
const DEFAULT_MIN_CONFIDENCE: f32 = 0.45;

#[derive(Serialize)]
struct Prediction {
    label: String,
    confidence: f32,
    x_min: i64,
    y_min: i64,
    x_max: i64,
    y_max: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Answer {
    success: bool,
    message: String,
    count: usize,
    predictions: Vec<Prediction>,
    code: u16,
    command: &'static str,
    module_id: &'static str,
    module_name: &'static str,
    inference_device: &'static str,
    inference_ms: u64,
    process_ms: u64,
    analysis_round_trip_ms: u64,
    duration: u64,
}

/// `POST /v1/vision/detection`: the default model.
pub(super) async fn detection(State(state): State<AppState>, req: Request) -> Result<Json<Answer>, ApiError> {
    answer(state, None, "detect", req).await
}

/// `POST /v1/vision/custom/{name}`: the model served as `name`.
pub(super) async fn custom(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Json<Answer>, ApiError> {
    answer(state, Some(name), "custom", req).await
}

async fn answer(
    state: AppState,
    model: Option<String>,
    command: &'static str,
    req: Request,
) -> Result<Json<Answer>, ApiError> {
    let start = Instant::now();
    // The body first, even for an unknown model: an answer before the upload is read would
    // leave the client writing into a closed connection instead of reading the 404.
    let upload = upload(&state, req, None, Accept::Form).await?;
    let model = state.model(model.as_deref())?;
    let field = |name: &str| upload.fields.get(name).map(String::as_str);
    let bad = |name: &str, e: String| ApiError::BadRequest(format!("{name}: {e}"));
    let conf = match field("min_confidence") {
        None => DEFAULT_MIN_CONFIDENCE,
        Some(v) => crate::options::parse_unit(v).map_err(|e| bad("min_confidence", e))?,
    };
    let mut nms = NmsOptions { conf, ..model.det.nms().clone() };
    if let Some(v) = field("max_det") {
        nms.max_det = v.trim().parse().map_err(|_| bad("max_det", format!("{v:?} is not a count")))?;
    }
    let labels = model.clone();
    let ask = Ask { model, image: upload.image, permit: upload.permit, nms, imgsz: None };
    let outcome = detect(&state, ask).await?;
    let predictions = predictions(&outcome, |c| labels.det.label(c));
    let ms = |v: f64| v.round() as u64;
    Ok(Json(Answer {
        success: true,
        message: format!("Found {} objects", predictions.len()),
        count: predictions.len(),
        predictions,
        code: 200,
        command,
        module_id: "qdet",
        module_name: "qdet",
        inference_device: "CPU",
        inference_ms: ms(outcome.inference_ms()),
        process_ms: ms(outcome.process_ms()),
        analysis_round_trip_ms: ms(start.elapsed().as_secs_f64() * 1e3),
        duration: ms(outcome.process_ms()),
    }))
}

/// Boxes in whole pixels of the upright image, rounded to the nearest and kept inside it.
fn predictions(outcome: &Outcome, label: impl Fn(usize) -> String) -> Vec<Prediction> {
    let (w, h) = (i64::from(outcome.width), i64::from(outcome.height));
    let px = |v: f32, max: i64| (v.round() as i64).clamp(0, max);
    outcome
        .dets
        .iter()
        .map(|d| Prediction {
            label: label(d.class),
            confidence: d.score,
            x_min: px(d.bbox[0], w),
            y_min: px(d.bbox[1], h),
            x_max: px(d.bbox[2], w),
            y_max: px(d.bbox[3], h),
        })
        .collect()
}
