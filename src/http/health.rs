//! `GET /healthz` (the process is alive) and `GET /readyz` (it can issue tokens now).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::state::AppState;

/// Always 200 while the process serves requests.
pub(super) async fn health_live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 while a key is active; 503 otherwise.
pub(super) async fn health_ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let now = state.clock.now();
    let set = state.keys.load();
    let epoch = set.at(now);
    match &epoch.active {
        Some(key) => (
            StatusCode::OK,
            Json(
                json!({"status": "ready", "active_kid": key.kid, "published_keys": epoch.published}),
            ),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reason": "no active signing key"})),
        ),
    }
}
