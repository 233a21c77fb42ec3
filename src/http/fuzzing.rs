//! Entry points for the fuzz targets in `fuzz/`: the parsers of untrusted request bytes,
//! reachable from outside the crate without making the handlers' helpers public. Not
//! part of the API (hidden from the docs); each function is the production code path,
//! with raw bytes where a request would carry them.

use axum::http::{HeaderMap, HeaderValue, header};

use super::auth::{Credentials, credentials_from, expired_param};
use super::error::ApiError;

/// Credentials of a `POST /auth` with these header values and body, as the handler reads
/// them. `None` when a header value is not one HTTP could carry (hyper refuses it first).
#[must_use]
pub fn auth_credentials(
    content_type: Option<&[u8]>,
    authorization: Option<&[u8]>,
    body: &[u8],
) -> Option<Result<Credentials, ApiError>> {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::AUTHORIZATION, authorization),
    ] {
        if let Some(value) = value {
            headers.insert(name, HeaderValue::from_bytes(value).ok()?);
        }
    }
    Some(credentials_from(&headers, body))
}

/// The `expired` parameter of `/auth` from a raw query string.
///
/// # Errors
/// The 400 the handler answers.
pub fn expired_query(query: &str) -> Result<bool, ApiError> {
    expired_param(Some(query))
}

/// Whether an `If-None-Match` value matches the strong tag `etag`.
#[must_use]
pub fn if_none_match(value: &[u8], etag: &[u8]) -> bool {
    super::jwks::matches_etag(value, etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_entry_points_run_the_handlers_parsers() {
        let json = auth_credentials(Some(b"application/json"), None, br#"{"username":"a"}"#);
        assert_eq!(
            json.expect("valid headers")
                .expect("parses")
                .username
                .as_deref(),
            Some("a")
        );
        assert!(auth_credentials(Some(b"bad\nvalue"), None, b"").is_none());
        assert!(matches!(
            auth_credentials(None, Some(b"Basic !!!"), b""),
            Some(Err(ApiError::InvalidRequest(_)))
        ));
        assert_eq!(expired_query("expired=true").ok(), Some(true));
        assert!(expired_query("expired=nope").is_err());
        assert!(if_none_match(br#"W/"t""#, br#""t""#));
    }
}
