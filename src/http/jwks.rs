//! `GET`/`HEAD` `/.well-known/jwks.json` and `/jwks`: the published JWK Set, served from
//! the pre-serialized snapshot with a strong ETag (RFC 9110 §8.8.3) and conditional
//! `If-None-Match` (RFC 9110 §13.1.2).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::state::AppState;

/// Serves the JWKS, or 304 when the client already holds this version.
pub(super) async fn jwks_get(State(state): State<AppState>, request: Request) -> Response {
    // The request is taken whole to read `If-None-Match` in place: the `HeaderMap`
    // extractor would copy every header of every request.
    jwks_respond(&state, request.headers())
}

/// The JWKS paths.
pub(super) fn is_jwks_path(path: &str) -> bool {
    matches!(path, "/.well-known/jwks.json" | "/jwks")
}

/// The JWKS response for a request with these headers: 200 with the body, or 304.
pub(super) fn jwks_respond(state: &AppState, headers: &HeaderMap) -> Response {
    let set = state.keys.load();
    let epoch = set.at(state.clock.now());
    let etag =
        HeaderValue::from_maybe_shared(epoch.etag.clone()).expect("an ETag is visible ASCII");
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| matches_etag(value.as_bytes(), &epoch.etag));
    state.requests.jwks_response(not_modified);
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        (StatusCode::OK, Body::from(epoch.jwks.clone()))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    if !not_modified {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    h.insert(header::CACHE_CONTROL, state.jwks_cache_control.clone());
    h.insert(header::ETAG, etag);
    response
}

/// Weak comparison of an `If-None-Match` list against our (strong) tag.
pub(super) fn matches_etag(if_none_match: &[u8], etag: &[u8]) -> bool {
    if_none_match
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .any(|candidate| {
            candidate == b"*" || candidate.strip_prefix(b"W/").unwrap_or(candidate) == etag
        })
}

#[cfg(test)]
mod tests {
    use super::matches_etag;

    #[test]
    fn if_none_match_lists_wildcards_and_weak_tags_match() {
        let tag = br#""abc""#;
        assert!(matches_etag(br#""abc""#, tag));
        assert!(matches_etag(br#""x", W/"abc""#, tag));
        assert!(matches_etag(b"*", tag));
        assert!(!matches_etag(br#""abd""#, tag));
        assert!(!matches_etag(b"abc", tag));
        assert!(!matches_etag(b"", tag));
    }
}
