//! `POST /introspect` (RFC 7662): whether a token is an active token of ours, checked
//! against the in-memory key set only. The caller authenticates as a client like at
//! `/token` (any client in open mode, a registered one in users mode).

use axum::Json;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Map, Value};

use super::body::read_body;
use super::error::ApiError;
use super::oauth::{Params, authenticate_client, no_store};
use super::state::AppState;
use crate::token::verify_own;

/// The claims an active answer repeats (RFC 7662 §2.2).
const ANSWERED_CLAIMS: [&str; 9] = [
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "nbf",
    "jti",
];

/// `POST /introspect`, answered with no-store.
pub(super) async fn token_introspect(State(state): State<AppState>, request: Request) -> Response {
    no_store(introspect(&state, request).await)
}

/// # Errors
/// `invalid_request` without a `token`; `invalid_client` for a caller that does not
/// authenticate (RFC 7662 §2.3). Every token, valid or not, gets 200.
async fn introspect(state: &AppState, request: Request) -> Result<Json<Value>, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(&parts.headers, body, state.body_timeout).await?;
    let params = Params::parse(&parts.headers, &bytes)?;
    authenticate_client(state, &parts.headers, &params)?;
    // RFC 7662 §2.1: `token` is REQUIRED.
    let token = params
        .token
        .as_deref()
        .ok_or_else(|| ApiError::InvalidRequest("token is required (RFC 7662 §2.1)".into()))?;
    let now = state.clock.now();
    let set = state.keys.load();
    let Some(claims) = verify_own(
        token,
        &set,
        state.issuer.issuer(),
        now,
        state.clock_skew_secs,
    ) else {
        // RFC 7662 §2.2: an inactive token is `{"active": false}` and nothing else.
        return Ok(Json(serde_json::json!({"active": false})));
    };
    let mut answer = Map::new();
    answer.insert("active".into(), Value::Bool(true));
    for name in ANSWERED_CLAIMS {
        if let Some(value) = claims.get(name) {
            answer.insert(name.into(), value.clone());
        }
    }
    // RFC 7662 §2.2 `token_type`, as in RFC 6749 §5.1.
    answer.insert("token_type".into(), Value::from("Bearer"));
    Ok(Json(Value::Object(answer)))
}
