//! `GET /healthz` (the process is alive) and `GET /readyz` (it can issue tokens now).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::state::AppState;
use crate::keys::KeyState;

/// Always 200 while the process serves requests.
pub(super) async fn health_live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 while a key is active, 503 otherwise. While the key store is unreachable the
/// server still signs with the keys it holds, so it stays ready and reports
/// `"store": "unreachable"` (degraded) instead of taking itself out of rotation.
pub(super) async fn health_ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let now = state.clock.now();
    let set = state.keys.load();
    let epoch = set.at(now);
    let store = if state.rotator.is_store_reachable() {
        "ok"
    } else {
        "unreachable"
    };
    let next = set
        .keys()
        .iter()
        .filter(|k| k.schedule.state_at(now) == KeyState::Pending)
        .min_by_key(|k| k.schedule.activates_at);
    match &epoch.active {
        Some(key) => {
            let status = if store == "ok" { "ready" } else { "degraded" };
            let body = json!({
                "status": status,
                "store": store,
                "active_kid": key.kid,
                "published_keys": epoch.published,
                "next_kid": next.map(|k| &k.kid),
                "next_activates_at_ms": next.map(|k| k.schedule.activates_at),
            });
            (StatusCode::OK, Json(body))
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "store": store, "reason": "no active signing key"})),
        ),
    }
}
