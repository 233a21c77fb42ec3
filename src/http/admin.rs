//! The admin listener's routes, never served on the public port: `GET /metrics`
//! (Prometheus text format, no authentication, as Prometheus expects) and the operator
//! API, which requires `Authorization: Bearer <admin token>` (RFC 6750 §2.1):
//! `GET /admin/keys`, `POST /admin/keys/rotate`, `POST /admin/keys/{kid}/revoke`.
//! Errors use the JSON error shape of [`ApiError`].

use std::sync::Arc;

use aws_lc_rs::digest;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, http::StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::keys::{
    Clock, KeyId, KeyInfo, KeyStore, Operation, OperationError, OperationRefused, Outcome, Rotator,
    UnixMillis,
};
use crate::metrics::Metrics;
use crate::secret::Secret;

/// What the admin routes use.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Carries out rotate and revoke, serialized with rotation steps.
    pub rotator: Rotator,
    /// Lists keys (metadata only).
    pub store: Arc<dyn KeyStore>,
    /// The bearer token; `None`: every admin request is refused.
    pub token: Option<Arc<Secret>>,
    /// Encoded at `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// The time keys are listed against.
    pub clock: Arc<dyn Clock>,
}

/// Every key as an operator sees it (`GET /admin/keys`, `keys list --json`).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyListing {
    /// The store's key-set version the listing was read at.
    pub version: i64,
    /// When it was read (Unix milliseconds).
    pub now_ms: UnixMillis,
    /// The keys, oldest first.
    pub keys: Vec<KeyView>,
}

/// One key: never private material.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyView {
    /// The RFC 7638 thumbprint.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// `pending`, `active`, `retired`, `expired` or `revoked`.
    pub state: String,
    /// When it was generated (Unix milliseconds).
    pub created_at_ms: UnixMillis,
    /// When it entered the JWKS.
    pub published_at_ms: UnixMillis,
    /// When it starts (or started) signing.
    pub activates_at_ms: UnixMillis,
    /// When it stops (or stopped) signing.
    pub retires_at_ms: UnixMillis,
    /// When it leaves the JWKS for good.
    pub expires_at_ms: UnixMillis,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revoked_at_ms: Option<UnixMillis>,
    /// Why, if it was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revoked_reason: Option<String>,
}

impl KeyListing {
    /// The listing of `keys` at `version`, states as of `now`.
    #[must_use]
    pub fn new(version: i64, keys: &[KeyInfo], now: UnixMillis) -> Self {
        let mut keys: Vec<&KeyInfo> = keys.iter().collect();
        keys.sort_by_key(|k| (k.schedule.activates_at, k.schedule.created_at));
        Self {
            version,
            now_ms: now,
            keys: keys.into_iter().map(|k| KeyView::new(k, now)).collect(),
        }
    }
}

impl KeyView {
    fn new(key: &KeyInfo, now: UnixMillis) -> Self {
        let s = key.schedule;
        Self {
            kid: key.kid.to_string(),
            alg: key.alg.as_str().to_owned(),
            state: key.state_at(now).as_str().to_owned(),
            created_at_ms: s.created_at,
            published_at_ms: s.published_at,
            activates_at_ms: s.activates_at,
            retires_at_ms: s.retires_at,
            expires_at_ms: s.expires_at,
            revoked_at_ms: key.revoked.as_ref().map(|r| r.at),
            revoked_reason: key.revoked.as_ref().map(|r| r.reason.clone()),
        }
    }
}

/// What an operation did (`POST /admin/keys/...`, `keys rotate|revoke`).
#[derive(Debug, Serialize, Deserialize)]
pub struct OutcomeView {
    /// The store's key-set version after the change.
    pub version: i64,
    /// The key created, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created: Option<KeyView>,
    /// The kid revoked, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revoked: Option<String>,
    /// Whether the created key signs at once, without having been published ahead.
    pub signs_at_once: bool,
}

impl OutcomeView {
    /// The view of `outcome`, states as of `now`.
    #[must_use]
    pub fn new(outcome: &Outcome, now: UnixMillis) -> Self {
        Self {
            version: outcome.version.get(),
            created: outcome.created.as_ref().map(|k| KeyView::new(k, now)),
            revoked: outcome.revoked.as_ref().map(ToString::to_string),
            signs_at_once: outcome.signs_at_once,
        }
    }
}

/// The admin listener's router.
pub fn admin_router(state: AdminState) -> Router {
    if state.token.is_none() {
        tracing::warn!(
            "admin API: no token configured (JWKS_ADMIN_TOKEN or --admin-token-file); every /admin request \
             is answered 401"
        );
    }
    let api = Router::new()
        .route("/admin/keys", get(keys_list))
        .route("/admin/keys/rotate", post(keys_rotate))
        .route("/admin/keys/{kid}/revoke", post(keys_revoke))
        .route_layer(from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/metrics", get(metrics_get))
        .merge(api)
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

async fn metrics_get(State(state): State<AdminState>) -> Response {
    let mut response = state.metrics.encode().into_response();
    // The Prometheus text exposition format, version 0.0.4.
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// 401 unless the request carries the admin token (RFC 6750 §2.1), compared in constant
/// time (of SHA-256 digests, so the token's length does not show either).
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.token else {
        return ApiError::AdminUnauthorized("no admin token is configured on this server")
            .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
        });
    let Some(presented) = presented else {
        return ApiError::AdminUnauthorized("send Authorization: Bearer <admin token>")
            .into_response();
    };
    let a = digest::digest(&digest::SHA256, presented.as_bytes());
    let b = digest::digest(&digest::SHA256, expected.expose().as_bytes());
    if aws_lc_rs::constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_err() {
        return ApiError::AdminUnauthorized("wrong admin token").into_response();
    }
    next.run(request).await
}

async fn keys_list(State(state): State<AdminState>) -> Result<Json<KeyListing>, ApiError> {
    let listed = state.store.list_keys().await.map_err(|e| {
        tracing::warn!(
            error = &e as &dyn std::error::Error,
            "admin: listing keys failed"
        );
        ApiError::Unavailable("the key store is unreachable; try again shortly")
    })?;
    Ok(Json(KeyListing::new(
        listed.version.get(),
        &listed.value,
        state.clock.now(),
    )))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    immediate: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    reason: String,
}

/// An optional JSON body: empty means the defaults.
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidRequest(format!("malformed JSON body: {e}")))
}

async fn keys_rotate(
    State(state): State<AdminState>,
    body: Bytes,
) -> Result<(StatusCode, Json<OutcomeView>), ApiError> {
    let RotateBody { immediate } = optional_json(&body)?;
    operate(&state, Operation::Rotate { immediate }).await
}

async fn keys_revoke(
    State(state): State<AdminState>,
    Path(kid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<OutcomeView>), ApiError> {
    let RevokeBody { reason } = optional_json(&body)?;
    let kid = KeyId::from_stored(kid);
    operate(&state, Operation::Revoke { kid, reason }).await
}

async fn operate(
    state: &AdminState,
    operation: Operation,
) -> Result<(StatusCode, Json<OutcomeView>), ApiError> {
    let outcome = state
        .rotator
        .operate(&operation)
        .await
        .map_err(|e| match e {
            OperationError::Refused(OperationRefused::UnknownKey(kid)) => {
                ApiError::UnknownKey(kid.to_string())
            }
            OperationError::Refused(refused) => ApiError::Refused(refused.to_string()),
            OperationError::Contended => ApiError::Refused(e.to_string()),
            OperationError::Store(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "admin: operation failed"
                );
                ApiError::Unavailable("the key store is unreachable; nothing changed")
            }
            OperationError::Key(error) => ApiError::Internal(error.to_string()),
        })?;
    Ok((
        StatusCode::OK,
        Json(OutcomeView::new(&outcome, state.clock.now())),
    ))
}
