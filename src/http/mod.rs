//! The HTTP layer: routes, the JSON error shape, and nothing else. Handlers translate
//! between HTTP and the key/token domain; they never touch the database and never
//! serialize the key set.
//!
//! Routes: `GET|HEAD /.well-known/jwks.json`, `GET|HEAD /jwks`, `POST /auth`, `POST /register`,
//! `GET /healthz`, `GET /readyz`; the issuer surface: `GET|HEAD
//! /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`,
//! `POST /token`, `GET /token/test-cases`, `POST /introspect` (and, when `--issuer` has a
//! path, the same under it). Wrong methods answer 405 with `Allow`; unknown paths 404;
//! both in the JSON error shape.

mod admin;
mod auth;
mod body;
mod discovery;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod introspect;
mod jwks;
mod limit;
mod oauth;
mod serve;
mod state;
mod token;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};

use crate::ratelimit::RateLimiter;

pub use admin::{AdminState, KeyListing, KeyView, OutcomeView, admin_router};
pub use auth::{Credentials, TokenResponse};
pub use discovery::{Discovery, startup_warnings};
pub use error::ApiError;
pub use serve::serve_connections;
pub use state::{AppState, Shared as SharedState};
pub use token::{AccessTokenResponse, DEFAULT_AUDIENCE};
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
    state: &AppState,
    path: &'static str,
) -> MethodRouter<AppState> {
    match limiter {
        Some(limiter) => route.route_layer(from_fn_with_state(
            limit::RouteLimit {
                limiter,
                trust_proxy: state.trust_proxy,
                refused: state.requests.rate_limited(path),
            },
            limit::enforce,
        )),
        None => route,
    }
}

/// Characters an issuer path may use to be mounted as routes (no route syntax).
fn is_mountable(path: &str) -> bool {
    path.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~' | b'%'))
}

/// The application's router.
pub fn router(state: AppState, limits: Limits) -> Router {
    let jwks = || {
        allowing(
            get(jwks::jwks_get).options(discovery::cors_preflight),
            "GET, HEAD, OPTIONS",
        )
    };
    let metadata = || {
        allowing(
            get(discovery::discovery_get).options(discovery::cors_preflight),
            "GET, HEAD, OPTIONS",
        )
    };
    // `/token` checks its rate limit and sets its no-store headers itself: a middleware
    // layer costs a boxed future per request on the hot path (BENCHMARKS.md, scenario 7).
    let token = allowing(post(token::token_grant), "POST");
    let introspect = allowing(post(introspect::token_introspect), "POST");
    let test_cases = || allowing(get(token::token_test_cases), "GET, HEAD");
    let mut router = Router::new()
        .route("/.well-known/openid-configuration", metadata())
        .route("/.well-known/oauth-authorization-server", metadata())
        .route("/token", token.clone())
        .route("/token/test-cases", test_cases())
        .route("/introspect", introspect.clone());
    // RFC 8414 §3 inserts the well-known segment before the issuer's path; OIDC
    // Discovery §4 appends it. The advertised endpoints are under the issuer, so they
    // are served there too.
    match state.discovery.issuer_path().map(str::to_owned) {
        Some(p) if is_mountable(&p) => {
            router = router
                .route(&format!("{p}/.well-known/openid-configuration"), metadata())
                .route(
                    &format!("/.well-known/oauth-authorization-server{p}"),
                    metadata(),
                )
                // The issuer's own spelling too, when it ends with a slash (RFC 8414 §3).
                .route(
                    &format!("/.well-known/oauth-authorization-server{p}/"),
                    metadata(),
                )
                .route(&format!("{p}/.well-known/jwks.json"), jwks())
                .route(&format!("{p}/jwks"), jwks())
                .route(&format!("{p}/token"), token)
                .route(&format!("{p}/token/test-cases"), test_cases())
                .route(&format!("{p}/introspect"), introspect);
        }
        Some(p) => {
            tracing::warn!(path = %p, "the issuer's path has characters that cannot be routed; its endpoints are served at the root only");
        }
        None => {}
    }
    router
        .route("/.well-known/jwks.json", jwks())
        .route("/jwks", jwks())
        .route(
            "/auth",
            allowing(
                limited(post(auth::token_issue), limits.auth, &state, "/auth"),
                "POST",
            ),
        )
        .route(
            "/register",
            allowing(
                limited(
                    post(users::user_register),
                    limits.register,
                    &state,
                    "/register",
                ),
                "POST",
            ),
        )
        .route("/healthz", allowing(get(health::health_live), "GET, HEAD"))
        .route("/readyz", allowing(get(health::health_ready), "GET, HEAD"))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}
