//! The HTTP layer: routes, the JSON error shape, and nothing else. Handlers translate
//! between HTTP and the key/token domain; they never touch the database and never
//! serialize the key set.
//!
//! Routes: `GET|HEAD /.well-known/jwks.json`, `GET|HEAD /jwks`, `POST /auth`,
//! `GET /healthz`, `GET /readyz`. Wrong methods answer 405 with `Allow`; unknown paths
//! 404; both in the JSON error shape.

mod auth;
mod error;
mod health;
mod jwks;
mod state;

use axum::Router;
use axum::routing::{MethodRouter, get, post};

pub use auth::{Credentials, TokenResponse};
pub use error::ApiError;
pub use state::AppState;

fn allowing(route: MethodRouter<AppState>, allow: &'static str) -> MethodRouter<AppState> {
    route.fallback(move || async move { ApiError::MethodNotAllowed { allow } })
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    let jwks = || allowing(get(jwks::jwks_get), "GET, HEAD");
    Router::new()
        .route("/.well-known/jwks.json", jwks())
        .route("/jwks", jwks())
        .route("/auth", allowing(post(auth::token_issue), "POST"))
        .route("/healthz", allowing(get(health::health_live), "GET, HEAD"))
        .route("/readyz", allowing(get(health::health_ready), "GET, HEAD"))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}
