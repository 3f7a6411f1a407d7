//! Reading an upload: the whole body within `--max-body` and the read timeout (on the async
//! side, so a slow client holds a connection but never an inference worker), then the
//! multipart form DeepStack clients send, or the raw image bytes of the native API; and the
//! `--token` check, which both APIs share.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;

use super::error::ApiError;

/// An uploaded image with its form fields.
pub(super) struct Upload {
    pub image: Bytes,
    /// The file name the client gave the image, if any.
    pub file_name: Option<String>,
    /// The multipart text fields (`min_confidence`, `api_key`, ...).
    pub fields: HashMap<String, String>,
}

/// Reads the body of `req` whole, refusing more than `max` bytes (413) and a body slower
/// than `timeout` (408). A declared length over `max` is refused before reading; a chunked
/// body that runs over is read on (to at most twice `max`) and dropped, so that the client,
/// still writing, gets to read the 413 instead of a reset connection.
pub(super) async fn read(req: Request, max: usize, timeout: Duration) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::TooLarge(max));
    }
    let collected = tokio::time::timeout(timeout, collect(body, max)).await;
    let bytes = collected.map_err(|_| ApiError::Timeout(timeout.as_secs()))??;
    Ok((parts.headers, bytes))
}

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

/// Parses a multipart form read by [`read`]: the file field `image` and every text field.
pub(super) async fn multipart(headers: HeaderMap, body: Bytes) -> Result<Upload, ApiError> {
    let mut req = Request::new(Body::from(body));
    *req.headers_mut() = headers;
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("not a multipart form: {}", e.body_text())))?;
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::BadRequest(format!("malformed multipart form: {}", e.body_text()))
    };
    let (mut image, mut file_name, mut fields) = (None, None, HashMap::new());
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "image" {
            file_name = field.file_name().map(str::to_string);
            image = Some(field.bytes().await.map_err(bad)?);
        } else if field.file_name().is_none() {
            let text = field.text().await.map_err(bad)?;
            fields.insert(name, text);
        }
    }
    let image = image.ok_or_else(|| ApiError::BadRequest("the form has no `image` field".into()))?;
    Ok(Upload { image, file_name, fields })
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
