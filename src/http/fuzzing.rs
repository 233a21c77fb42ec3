//! Entry points for the fuzz targets in `fuzz/`: the parsers of untrusted request bytes,
//! reachable from outside the crate without making the handlers' helpers public. Not
//! part of the API (hidden from the docs); each function is the production code path,
//! with raw bytes where a request would carry them.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};

use super::auth::{Credentials, credentials_from, expired_param};
use super::error::ApiError;
use super::oauth::{Params, basic_client};

/// Credentials of a `POST /auth` with these header values and body, as the handler reads
/// them. `None` when a header value is not one HTTP could carry (hyper refuses it first).
#[must_use]
pub fn auth_credentials(
    content_type: Option<&[u8]>,
    authorization: Option<&[u8]>,
    body: &[u8],
) -> Option<Result<Credentials, ApiError>> {
    let headers = request_headers(content_type, authorization)?;
    Some(credentials_from(&headers, body))
}

/// What `POST /token` (and `/introspect`) read of a request before any client or user is
/// looked up.
#[derive(Debug)]
pub struct TokenRequest {
    /// The form parameters (RFC 6749 §3.2) as their `Debug` shows them (which parameters
    /// exist is the handlers' business), or the `invalid_request` refusal.
    pub form: Result<String, ApiError>,
    /// HTTP Basic client credentials (RFC 6749 §2.3.1): the decoded client id and
    /// secret (`None` when empty), `None` without Basic, or the refusal.
    pub basic: Result<Option<(String, Option<String>)>, ApiError>,
}

/// The form parameters and the HTTP Basic client credentials of a `POST /token` with
/// these header values and body, as the handler reads them. `None` when a header value
/// is not one HTTP could carry (hyper refuses it first).
#[must_use]
pub fn token_request(
    content_type: Option<&[u8]>,
    authorization: Option<&[u8]>,
    body: &[u8],
) -> Option<TokenRequest> {
    let headers = request_headers(content_type, authorization)?;
    let body = Bytes::copy_from_slice(body);
    let form = Params::parse(&headers, &body).map(|params| format!("{params:?}"));
    let basic = basic_client(&headers).map(|presented| {
        presented.map(|p| {
            (
                p.id.into_owned(),
                p.secret.map(std::borrow::Cow::into_owned),
            )
        })
    });
    Some(TokenRequest { form, basic })
}

/// A request's `Content-Type` and `Authorization`; `None` for a value HTTP cannot carry.
fn request_headers(content_type: Option<&[u8]>, authorization: Option<&[u8]>) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::AUTHORIZATION, authorization),
    ] {
        if let Some(value) = value {
            headers.insert(name, HeaderValue::from_bytes(value).ok()?);
        }
    }
    Some(headers)
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

    #[test]
    fn the_token_entry_point_runs_the_form_and_basic_parsers() {
        let form = Some(&b"application/x-www-form-urlencoded"[..]);
        // base64("my%3Aid:s+x"): RFC 6749 §2.3.1 form-encodes both halves.
        let basic = Some(&b"Basic bXklM0FpZDpzK3g="[..]);
        let request = token_request(form, basic, b"grant_type=client_credentials&scope=")
            .expect("valid headers");
        let shown = request.form.expect("parses");
        assert!(
            shown.contains(r#"grant_type: Some("client_credentials")"#),
            "{shown}"
        );
        assert!(shown.contains("scope: None"), "{shown}");
        assert_eq!(
            request.basic.expect("decodes"),
            Some(("my:id".to_owned(), Some("s x".to_owned())))
        );
        let refused =
            token_request(form, Some(b"Basic Og=="), b"scope=a&scope=b").expect("valid headers");
        assert!(matches!(refused.form, Err(ApiError::InvalidRequest(_))));
        assert!(matches!(refused.basic, Err(ApiError::InvalidRequest(_))));
        let json = token_request(Some(b"application/json"), None, b"{}").expect("valid");
        assert!(matches!(json.form, Err(ApiError::InvalidRequest(_))));
        assert!(matches!(json.basic, Ok(None)));
        assert!(token_request(None, Some(b"Basic\x7f"), b"").is_none());
    }
}
