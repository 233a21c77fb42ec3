//! `POST /introspect` (RFC 7662): whether a token is an active token of ours, checked
//! against the in-memory key set, and for a token of the authorization code grant
//! against the revocations a reused code made ([`is_revoked`]). The caller authenticates as a client like at
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

/// Whether `claims` are those of an access token revoked because the code that bought
/// it was used twice (RFC 6749 §4.1.2). Only tokens of the authorization code grant
/// (those with `auth_time`) can be, so only they cost a database read.
///
/// # Errors
/// 503 when the database cannot say.
pub(super) async fn is_revoked(
    state: &AppState,
    claims: &Map<String, Value>,
    now: crate::keys::UnixMillis,
) -> Result<bool, ApiError> {
    let (Some(_), Some(Value::String(jti))) = (claims.get("auth_time"), claims.get("jti")) else {
        return Ok(false);
    };
    state.signin.is_revoked(jti, now).await.map_err(|error| {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "cannot read token revocations"
        );
        ApiError::Unavailable("the sign-in database is unreachable; try again shortly")
    })
}

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
    if is_revoked(state, &claims, now).await? {
        return Ok(Json(serde_json::json!({"active": false})));
    }
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
