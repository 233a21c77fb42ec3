//! Reading request bodies within the size limit and the body timeout, with failures in
//! the JSON error shape.

use std::time::Duration;

use axum::body::{Body, Bytes, to_bytes};
use axum::http::{HeaderMap, header};
use hyper::body::Body as _;

use super::error::ApiError;
use crate::config::MAX_BODY_BYTES;

/// Reads the whole body: 413 over [`MAX_BODY_BYTES`] (by `Content-Length` or as it
/// streams), 408 if it does not arrive within `timeout`.
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    if body.is_end_stream() {
        // `Content-Length: 0` or no body: nothing to wait for, so no timer to arm.
        return Ok(Bytes::new());
    }
    match tokio::time::timeout(timeout, to_bytes(body, MAX_BODY_BYTES)).await {
        Err(_) => Err(ApiError::Timeout),
        Ok(Err(error)) if is_length_limit(&error) => Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        }),
        Ok(Err(error)) => Err(ApiError::InvalidRequest(format!(
            "could not read the request body: {error}"
        ))),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The media type of the request without parameters, lowercased; `None` if absent.
pub(super) fn media_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).map(|v| {
        v.to_str()
            .unwrap_or("?")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// Whether a media type is JSON (`application/json` or `application/*+json`).
pub(super) fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}
