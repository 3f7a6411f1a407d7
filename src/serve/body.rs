//! Reading an upload within its limits: the share of `--max-inflight-bytes` it may take
//! (reserved from its declared length before a byte is read, so a burst of uploads is
//! refused instead of buffered), `--max-body`, the read timeout (on the async side, so a
//! slow client holds a connection but never an inference worker), and the `--token`, checked
//! before the image is read. Then the multipart form DeepStack clients send, streamed field by
//! field, or the raw image bytes of the native API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::State;

/// Most bytes of a form's text field (`min_confidence`, `api_key`, ...).
const TEXT_FIELD_MAX: u64 = 64 << 10;

/// Most bytes of a refused body read (and dropped) so that a client still writing a small
/// image gets to read its 401 instead of a reset connection; a larger body is cut off.
const DRAIN_MAX: usize = 1 << 20;

/// What a route takes as the upload.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Accept {
    /// A multipart form with the field `image` (DeepStack).
    Form,
    /// A form, or the image bytes as the body.
    FormOrRaw,
}

/// An uploaded image with its form fields, holding its share of the upload budget until it
/// is dropped (after decoding, on the worker).
pub(super) struct Upload {
    pub image: Bytes,
    /// The file name the client gave the image, if any.
    pub file_name: Option<String>,
    /// The multipart text fields (`min_confidence`, `api_key`, ...).
    pub fields: HashMap<String, String>,
    pub permit: OwnedSemaphorePermit,
}

/// The bytes of uploads being read or waiting for a worker, counted in KiB.
pub(super) struct Budget {
    free: Arc<Semaphore>,
}

impl Budget {
    pub(super) fn new(bytes: usize) -> Budget {
        Budget { free: Arc::new(Semaphore::new(kib(bytes).min(Semaphore::MAX_PERMITS as u64) as usize)) }
    }

    /// Reserves `bytes`, or [`ApiError::Uploads`] at once when the budget has not that much left.
    fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(kib(bytes)).map_err(|_| ApiError::Uploads)?;
        self.free.clone().try_acquire_many_owned(n).map_err(|_| ApiError::Uploads)
    }

    /// KiB free, for `/metrics`.
    pub(super) fn available_bytes(&self) -> u64 {
        self.free.available_permits() as u64 * 1024
    }
}

fn kib(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(1024)
}

/// Reads the upload of `req`: the form's `image` field (and its text fields), or the raw
/// body. `key` is an API key given outside the body (the native API's query parameter).
/// Refused before reading: a declared length over `--max-body` (413), a length the budget
/// cannot hold now (503), a raw body without the token (401); while reading: a body over
/// `--max-body` or slower than the read timeout, a form whose `image` comes before a valid
/// `api_key` when the token is needed (401), two `image` fields (400).
pub(super) async fn upload(state: &State, req: Request, key: Option<&str>, accept: Accept) -> Result<Upload, ApiError> {
    let (parts, body) = req.into_parts();
    let max = state.max_body;
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::TooLarge(max));
    }
    let permit = match state.budget.reserve(declared.map_or(max, |n| n as usize)) {
        Ok(p) => p,
        Err(busy) => {
            // Most clients (Python's requests, NVRs) write the whole body before reading: the
            // 503 and its Retry-After reach them only once the body is read. It is read
            // unstored, within --max-body and the read timeout.
            let _ = tokio::time::timeout(state.read_timeout, discard(body, max)).await;
            state.heap.note(declared.map_or(0, |n| n as usize));
            return Err(busy);
        }
    };
    let token = state.token.as_deref();
    let authorized = check_token(token, &parts.headers, key).is_ok();
    let multipart = is_multipart(&parts.headers);
    if !multipart && accept == Accept::Form {
        return Err(ApiError::BadRequest("not a multipart form: send the image as the form field `image`".into()));
    }
    let reading = async {
        if multipart {
            form(&parts.headers, body, max, |fields| authorized || key_in(token, fields)).await
        } else if authorized {
            Ok((collect(body, max).await?, None, HashMap::new()))
        } else {
            // A small body is read and dropped, so its client reads the 401; a large one is
            // not read at all.
            if declared.is_none_or(|n| n <= DRAIN_MAX as u64) {
                discard(body, DRAIN_MAX).await;
            }
            Err(ApiError::Unauthorized)
        }
    };
    let timeout = state.read_timeout;
    let (image, file_name, fields) =
        tokio::time::timeout(timeout, reading).await.map_err(|_| ApiError::Timeout(timeout.as_secs()))??;
    if !authorized && !key_in(token, &fields) {
        return Err(ApiError::Unauthorized);
    }
    Ok(Upload { image, file_name, fields, permit })
}

fn key_in(token: Option<&str>, fields: &HashMap<String, String>) -> bool {
    check_token(token, &HeaderMap::new(), fields.get("api_key").map(String::as_str)).is_ok()
}

/// The form's fields in order; at the `image` field, `may_read(fields so far)` decides
/// whether the image is read at all.
async fn form(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    may_read: impl Fn(&HashMap<String, String>) -> bool,
) -> Result<(Bytes, Option<String>, HashMap<String, String>), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary =
        multer::parse_boundary(content_type).map_err(|e| ApiError::BadRequest(format!("not a multipart form: {e}")))?;
    let limits =
        multer::SizeLimit::new().whole_stream(max as u64).per_field(TEXT_FIELD_MAX).for_field("image", max as u64);
    let mut form = multer::Multipart::with_constraints(
        body.into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let (mut image, mut file_name, mut fields) = (None, None, HashMap::new());
    // A form refused half way is read on, unstored, up to DRAIN_MAX, so that its client,
    // still writing, gets to read the answer.
    let (mut refusal, mut drained) = (None, 0);
    while let Some(mut field) = form.next_field().await.map_err(|e| form_error(e, max))? {
        let name = field.name().unwrap_or_default().to_string();
        if refusal.is_none() && name == "image" {
            if image.is_some() {
                refusal =
                    Some(ApiError::BadRequest("the form has two `image` fields; send one image per request".into()));
            } else if !may_read(&fields) {
                refusal = Some(ApiError::Unauthorized);
            } else {
                file_name = field.file_name().map(str::to_string);
                image = Some(field.bytes().await.map_err(|e| form_error(e, max))?);
                continue;
            }
        } else if refusal.is_none() && field.file_name().is_none() {
            let text = field.text().await.map_err(|e| form_error(e, max))?;
            fields.insert(name, text);
            continue;
        }
        while let Ok(Some(chunk)) = field.chunk().await {
            drained += chunk.len();
            if drained > DRAIN_MAX {
                break;
            }
        }
        if drained > DRAIN_MAX {
            break;
        }
    }
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    let image = image.ok_or_else(|| ApiError::BadRequest("the form has no `image` field".into()))?;
    Ok((image, file_name, fields))
}

fn form_error(e: multer::Error, max: usize) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } => ApiError::TooLarge(max),
        multer::Error::FieldSizeExceeded { field_name, .. } if field_name.as_deref() == Some("image") => {
            ApiError::TooLarge(max)
        }
        e => ApiError::BadRequest(format!("malformed multipart form: {e}")),
    }
}

/// Reads at most `max` bytes of `body` and drops them.
async fn discard(mut body: Body, max: usize) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen = seen.saturating_add(frame.data_ref().map_or(0, |d| d.len()));
        if seen > max {
            break;
        }
    }
}

/// A body that runs over `max` is read on (to at most twice `max`) and dropped, so that the
/// client, still writing, gets to read the 413 instead of a reset connection.
async fn collect(mut body: Body, max: usize) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen > max.saturating_mul(2) {
            break;
        }
        if seen <= max {
            buf.extend_from_slice(&data);
        }
    }
    if seen > max {
        return Err(ApiError::TooLarge(max));
    }
    Ok(Bytes::from(buf))
}

pub(super) fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// With `--token`, the request must carry it as `Authorization: Bearer T` or as the
/// `api_key` DeepStack clients send (a form field, or the native API's query parameter).
pub(super) fn check_token(token: Option<&str>, headers: &HeaderMap, api_key: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = token else { return Ok(()) };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    if [bearer, api_key].into_iter().flatten().any(|given| same(given.trim().as_bytes(), token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_either_place() {
        let mut h = HeaderMap::new();
        assert!(check_token(None, &h, None).is_ok());
        assert!(check_token(Some("s3"), &h, None).is_err());
        assert!(check_token(Some("s3"), &h, Some("s3")).is_ok());
        assert!(check_token(Some("s3"), &h, Some("s4")).is_err());
        h.insert(header::AUTHORIZATION, "Bearer s3".parse().unwrap());
        assert!(check_token(Some("s3"), &h, None).is_ok());
        assert!(check_token(Some("s33"), &h, None).is_err());
    }
}
