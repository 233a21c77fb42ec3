//! The HTTP layer: routes, the JSON error shape, and nothing else. Handlers translate
//! between HTTP and the key/token domain; they never touch the database and never
//! serialize the key set.
//!
//! Routes: `GET|HEAD /.well-known/jwks.json`, `GET|HEAD /jwks`, `POST /auth`, `POST /register`,
//! `GET /healthz`, `GET /readyz`. Wrong methods answer 405 with `Allow`; unknown paths
//! 404; both in the JSON error shape.

mod auth;
mod body;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod jwks;
mod limit;
mod serve;
mod state;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};

use crate::ratelimit::RateLimiter;

pub use auth::{Credentials, TokenResponse};
pub use error::ApiError;
pub use serve::serve_connections;
pub use state::{AppState, Shared as SharedState};
pub use users::RegisterResponse;

fn allowing(route: MethodRouter<AppState>, allow: &'static str) -> MethodRouter<AppState> {
    route.fallback(move || async move { ApiError::MethodNotAllowed { allow } })
}

/// Answers `GET` of the JWKS straight from the snapshot, before the router: the most
/// frequent request skips routing and extractors (measured: about 15% less CPU per
/// request). `None` for every other request, which goes through [`router`]; `HEAD` and
/// wrong methods on the JWKS paths are answered there.
pub fn jwks_fast_path<B>(
    state: &AppState,
    request: &axum::http::Request<B>,
) -> Option<axum::response::Response> {
    (request.method() == axum::http::Method::GET && jwks::is_jwks_path(request.uri().path()))
        .then(|| jwks::jwks_respond(state, request.headers()))
}

/// Per-route rate limiters; `None` turns a route's limit off.
#[derive(Debug, Default, Clone)]
pub struct Limits {
    /// Limiter of `POST /auth`.
    pub auth: Option<Arc<RateLimiter>>,
    /// Limiter of `POST /register`.
    pub register: Option<Arc<RateLimiter>>,
}

fn limited(
    route: MethodRouter<AppState>,
    limiter: Option<Arc<RateLimiter>>,
    trust_proxy: bool,
) -> MethodRouter<AppState> {
    match limiter {
        Some(limiter) => route.route_layer(from_fn_with_state(
            limit::RouteLimit {
                limiter,
                trust_proxy,
            },
            limit::enforce,
        )),
        None => route,
    }
}

/// The application's router.
pub fn router(state: AppState, limits: Limits) -> Router {
    let jwks = || allowing(get(jwks::jwks_get), "GET, HEAD");
    let trust = state.trust_proxy;
    Router::new()
        .route("/.well-known/jwks.json", jwks())
        .route("/jwks", jwks())
        .route(
            "/auth",
            allowing(limited(post(auth::token_issue), limits.auth, trust), "POST"),
        )
        .route(
            "/register",
            allowing(
                limited(post(users::user_register), limits.register, trust),
                "POST",
            ),
        )
        .route("/healthz", allowing(get(health::health_live), "GET, HEAD"))
        .route("/readyz", allowing(get(health::health_ready), "GET, HEAD"))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}
