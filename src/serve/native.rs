//! qdet's own API: `POST /v1/detect` with `detect`'s options as query parameters and three
//! answers (`format=json`: qdet's JSON; `labelme`: the file `qdet detect` writes; `yolo`: the
//! txt lines), and the service endpoints `GET /v1/models`, `GET /healthz`, `GET /metrics`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::body::{upload, Accept};
use super::error::ApiError;
use super::metrics::STAGES;
use super::work::{detect as run_detect, Ask, Outcome};
use super::{AppState, Served};
use crate::options::{parse_imgsz, parse_unit};
use crate::postprocess::NmsOptions;

/// The name `imagePath` gets when the upload has none (a raw body without `?filename=`).
const UNNAMED: &str = "image.jpg";

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Labelme,
    Yolo,
}

/// The query parameters of `/v1/detect`, checked.
struct Params {
    nms: NmsOptions,
    imgsz: Option<(usize, usize)>,
    format: Format,
    file_name: Option<String>,
    save_conf: bool,
}

fn bad(name: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("{name}: {e}"))
}

/// The query parameters `/v1/detect` takes; any other is refused, so a misspelt one
/// (`?confidence=0.9`) is not silently ignored.
const PARAMS: [&str; 11] =
    ["model", "conf", "iou", "max_det", "classes", "agnostic", "imgsz", "format", "filename", "save_conf", "api_key"];

/// Refuses query parameters `/v1/detect` does not take, naming them.
fn known_params(q: &HashMap<String, String>) -> Result<(), ApiError> {
    let mut unknown: Vec<&str> = q.keys().map(String::as_str).filter(|k| !PARAMS.contains(k)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    Err(ApiError::BadRequest(format!(
        "unknown query parameter{} {}; /v1/detect takes {}",
        if unknown.len() == 1 { "" } else { "s" },
        unknown.join(", "),
        PARAMS.join(", ")
    )))
}

/// Reads the parameters; those not given are `base`'s, the model's own options.
fn params(q: &HashMap<String, String>, base: &NmsOptions) -> Result<Params, ApiError> {
    let mut nms = base.clone();
    let get = |k: &str| q.get(k).map(String::as_str);
    if let Some(v) = get("conf") {
        nms.conf = parse_unit(v).map_err(|e| bad("conf", e))?;
    }
    if let Some(v) = get("iou") {
        nms.iou = parse_unit(v).map_err(|e| bad("iou", e))?;
    }
    if let Some(v) = get("max_det") {
        nms.max_det = v.trim().parse().map_err(|_| bad("max_det", format!("{v:?} is not a count")))?;
    }
    if let Some(v) = get("classes").filter(|v| !v.trim().is_empty()) {
        let ids = v.split(',').map(|c| c.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>();
        nms.classes = Some(ids.map_err(|_| bad("classes", format!("{v:?} is not a list of class ids like 0,2")))?);
    }
    nms.agnostic = flag("agnostic", get("agnostic"))?;
    let imgsz = get("imgsz").map(parse_imgsz).transpose().map_err(|e| bad("imgsz", e))?;
    let format = match get("format").unwrap_or("json") {
        "json" => Format::Json,
        "labelme" => Format::Labelme,
        "yolo" => Format::Yolo,
        other => return Err(bad("format", format!("{other:?} is not json, labelme or yolo"))),
    };
    let file_name = get("filename").map(str::to_string);
    Ok(Params { nms, imgsz, format, file_name, save_conf: flag("save_conf", get("save_conf"))? })
}

/// A boolean parameter: absent is false, `?agnostic` alone is true; anything but the usual
/// spellings is refused rather than guessed.
fn flag(name: &str, v: Option<&str>) -> Result<bool, ApiError> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(false),
        Some("" | "1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(bad(name, format!("{other:?} is not true or false (1/0, yes/no, on/off)"))),
    }
}

/// `POST /v1/detect`.
pub(super) async fn detect(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    // The body first (see `deepstack::answer`), but for the token, which is checked before it.
    let upload = upload(&state, req, q.get("api_key").map(String::as_str), Accept::FormOrRaw).await?;
    known_params(&q)?;
    let model = state.model(q.get("model").map(String::as_str))?;
    let p = params(&q, model.det.nms())?;
    if upload.image.is_empty() {
        return Err(ApiError::BadRequest("no image: send it as the body or as the form field `image`".into()));
    }
    let ask =
        Ask { model: model.clone(), image: upload.image, permit: upload.permit, nms: p.nms.clone(), imgsz: p.imgsz };
    let outcome = run_detect(&state, ask).await?;
    let name = p.file_name.clone().or(upload.file_name).unwrap_or_else(|| UNNAMED.into());
    Ok(render(&model, &outcome, &p, name))
}

fn render(model: &Served, o: &Outcome, p: &Params, image_path: String) -> Response {
    match p.format {
        Format::Json => Json(native_json(model, o)).into_response(),
        Format::Labelme => {
            let file = crate::run::labelme_file(&model.det, &o.dets, image_path, o.width, o.height);
            ([(header::CONTENT_TYPE, "application/json")], file.to_json()).into_response()
        }
        Format::Yolo => {
            let txt = crate::formats::yolo::detections_to_txt(&o.dets, o.width, o.height, p.save_conf);
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], txt).into_response()
        }
    }
}

fn native_json(model: &Served, o: &Outcome) -> Value {
    let detections: Vec<Value> = o
        .dets
        .iter()
        .map(|d| json!({ "box": d.bbox, "score": d.score, "class": d.class, "name": model.det.label(d.class) }))
        .collect();
    let ms: serde_json::Map<String, Value> = STAGES.iter().zip(o.ms).map(|(s, v)| (s.to_string(), json!(v))).collect();
    json!({ "model": model.name, "width": o.width, "height": o.height, "detections": detections, "ms": ms })
}

/// `GET /v1/models`: every model served, the default first.
pub(super) async fn models(State(state): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = state.models.iter().map(|m| describe(m, state.show_paths)).collect();
    Json(json!({ "default": state.models.first().map(|m| m.name.clone()), "models": list }))
}

/// A served model; its file path only with `--show-paths` (it tells anyone on the network
/// how the box is laid out).
fn describe(m: &Served, show_paths: bool) -> Value {
    let model = m.det.model();
    let int8 = model.int8_report();
    let (h, w) = m.det.target();
    let file =
        if show_paths { json!(model.path()) } else { json!(model.path().file_name().map(|f| f.to_string_lossy())) };
    json!({
        "name": m.name,
        "file": file,
        "imgsz": [h, w],
        "dynamic": model.fixed_size().is_none(),
        "precision": if int8.is_some() { "int8" } else { match model.precision() { crate::model::Precision::F16 => "fp16", _ => "fp32" } },
        "kernel": int8.as_ref().and_then(|r| r.most_used_kernel()).map(|k| k.name()),
        "kernels": int8.map(|r| r.kernels.iter().map(|(k, n)| (k.name().to_string(), json!(n))).collect::<serde_json::Map<_, _>>()),
        "classes": m.det.names(),
    })
}

/// `GET /healthz`: the server listens only once every model is loaded and warm, so any
/// answer is a healthy one.
pub(super) async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "status": "ok", "models": state.models.len() }))
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics.render(&state.pool.gauges, &state.budget, &state.heap);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
