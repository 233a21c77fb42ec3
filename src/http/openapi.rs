//! `GET`/`HEAD /openapi.json`: the OpenAPI 3.1 document of the public API, compiled in
//! from `openapi.json` at the repository root (the one copy, also what the contract
//! tests in `tests/contract/` read). It does not describe the admin listener.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::jwks::matches_etag;
use super::state::AppState;

/// The document, byte for byte as kept in the repository.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// The route: the strong ETag (RFC 9110 §8.8.3) is the SHA-256 of the document,
/// computed once here rather than per request.
pub(super) fn route() -> MethodRouter<AppState> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, OPENAPI_JSON.as_bytes());
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(digest.as_ref()));
    let etag = HeaderValue::from_str(&etag).expect("base64url in quotes is visible ASCII");
    get(move |headers: HeaderMap| async move { openapi_get(&headers, &etag) })
}

/// 200 with the document, or 304 when `If-None-Match` matches (RFC 9110 §13.1.2).
fn openapi_get(headers: &HeaderMap, etag: &HeaderValue) -> Response {
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| matches_etag(value.as_bytes(), etag.as_bytes()));
    let mut response = if not_modified {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(Body::from(OPENAPI_JSON));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    let h = response.headers_mut();
    // The document changes only with the binary: revalidate, at the cost of a 304.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, etag.clone());
    response
}
