//! Every way a request can fail, and the one place each becomes a status code and a body.
//!
//! Both APIs answer errors in DeepStack's shape (`{"success": false, "error": "...", "code":
//! 4xx}`): DeepStack and CodeProject.AI clients test `success` and show `error`, and qdet's
//! own clients get the same reason in words beside the status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Seconds a client is told to wait when the queue is full: one image's inference is tens of
/// milliseconds, so a second is plenty and short enough for an NVR's next snapshot.
const RETRY_AFTER_S: &str = "1";

#[derive(Debug, thiserror::Error)]
pub(super) enum ApiError {
    /// A malformed request: missing field, bad parameter, broken multipart.
    #[error("{0}")]
    BadRequest(String),
    /// The upload is not an image qdet decodes, or one over `--max-pixels`.
    #[error("cannot read the image: {0}")]
    BadImage(String),
    #[error("missing or wrong API key (send Authorization: Bearer, the api_key query parameter, or the form field api_key before the image)")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("this endpoint does not take that method (POST the detection routes, GET the others)")]
    MethodNotAllowed,
    #[error("the request body is larger than {0} bytes (--max-body)")]
    TooLarge(usize),
    #[error("the request body did not arrive within {0} s")]
    Timeout(u64),
    #[error("the server is busy: every worker and queue slot is taken, retry shortly")]
    Busy,
    #[error("the server is receiving too many uploads at once (--max-inflight-bytes), retry shortly")]
    Uploads,
    #[error("the request waited in the queue longer than --deadline-ms {0}")]
    Expired(u64),
    /// The client went away; nobody reads this answer.
    #[error("the client closed the connection")]
    Gone,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::BadImage(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy | ApiError::Uploads | ApiError::Expired(_) | ApiError::Gone | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "success": false, "error": self.to_string(), "code": status.as_u16() });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if matches!(self, ApiError::Busy | ApiError::Uploads | ApiError::Expired(_)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
        }
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Refused before or while reading the body: a body not read to its end leaves the
        // connection unusable.
        if matches!(self, ApiError::TooLarge(_) | ApiError::Timeout(_) | ApiError::Uploads | ApiError::Unauthorized) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
