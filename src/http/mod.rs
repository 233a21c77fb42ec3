//! The HTTP layer: routes, the JSON error shape, and nothing else. Handlers translate
//! between HTTP and the key/token domain; they never touch the database and never
//! serialize the key set.
//!
//! Routes: [`ROUTES`], documented in `openapi.json` (served at `GET /openapi.json`).
//! Wrong methods answer 405 with `Allow`; unknown paths 404; both in the JSON error shape.

mod admin;
mod auth;
mod body;
mod error;
mod health;
mod jwks;
mod limit;
mod openapi;
mod state;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};

use crate::ratelimit::RateLimiter;

pub use admin::{AdminState, KeyListing, KeyView, OutcomeView, admin_router};
pub use auth::{Credentials, TokenResponse};
pub use error::ApiError;
pub use openapi::OPENAPI_JSON;
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

/// A public route: its path and the methods it answers, as its `Allow` header lists
/// them (RFC 9110 §10.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The path, matched exactly.
    pub path: &'static str,
    /// The methods, comma-separated as in `Allow`; any other answers 405.
    pub allow: &'static str,
}

impl Route {
    /// The methods this route answers.
    pub fn methods(&self) -> impl Iterator<Item = &'static str> {
        self.allow.split(", ")
    }
}

/// Every public route. [`router`] registers these and nothing else, and `openapi.json`
/// documents exactly these paths and methods (checked by `tests/api/openapi.rs`). A new
/// route is one entry here, one arm in `endpoint` and one path in the document.
pub const ROUTES: &[Route] = &[
    Route {
        path: "/.well-known/jwks.json",
        allow: "GET, HEAD",
    },
    Route {
        path: "/jwks",
        allow: "GET, HEAD",
    },
    Route {
        path: "/auth",
        allow: "POST",
    },
    Route {
        path: "/register",
        allow: "POST",
    },
    Route {
        path: "/healthz",
        allow: "GET, HEAD",
    },
    Route {
        path: "/readyz",
        allow: "GET, HEAD",
    },
    Route {
        path: "/openapi.json",
        allow: "GET, HEAD",
    },
];

/// The handlers of one path of [`ROUTES`]. A path without an arm gets none, so every
/// method answers 405 there, which the router test below catches.
fn endpoint(path: &str, state: &AppState, limits: &Limits) -> MethodRouter<AppState> {
    match path {
        // `get` answers `HEAD` too, without the body (RFC 9110 §9.3.2).
        "/.well-known/jwks.json" | "/jwks" => get(jwks::jwks_get),
        "/auth" => limited(post(auth::token_issue), limits.auth.clone(), state, "/auth"),
        "/register" => limited(
            post(users::user_register),
            limits.register.clone(),
            state,
            "/register",
        ),
        "/healthz" => get(health::health_live),
        "/readyz" => get(health::health_ready),
        "/openapi.json" => openapi::route(),
        _ => MethodRouter::new(),
    }
}

/// The application's router: [`ROUTES`], each answering 405 with its `Allow` to any
/// other method, and 404 elsewhere.
pub fn router(state: AppState, limits: Limits) -> Router {
    ROUTES
        .iter()
        .fold(Router::new(), |router, route| {
            router.route(
                route.path,
                allowing(endpoint(route.path, &state, &limits), route.allow),
            )
        })
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use tower::ServiceExt as _;

    use super::{Limits, ROUTES, router};
    use crate::cli::Cli;
    use crate::config::Settings;
    use crate::keys::SystemClock;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn every_listed_route_answers_exactly_its_listed_methods() {
        let argv = ["jwks-server", "--database", ":memory:", "--alg", "EdDSA"];
        let cli = Cli::try_parse_without_env(argv).expect("flags parse");
        let settings = Settings::from_args(&cli.serve).expect("settings valid");
        let services = crate::app::build_state(
            &settings,
            "http://test".into(),
            Arc::new(MemoryStore::default()),
            Arc::new(SystemClock),
        )
        .await
        .expect("state builds");
        let app = router(services.state, Limits::default());
        let methods = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
        ];
        for route in ROUTES {
            for method in methods {
                let request = Request::builder()
                    .method(Method::from_bytes(method.as_bytes()).expect("method"))
                    .uri(route.path)
                    .body(Body::empty())
                    .expect("request");
                let response = app.clone().oneshot(request).await.expect("infallible");
                let listed = route.methods().any(|m| m == method);
                let status = response.status();
                if listed {
                    assert!(
                        status != StatusCode::METHOD_NOT_ALLOWED && status != StatusCode::NOT_FOUND,
                        "{method} {} answered {status}",
                        route.path
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {}",
                        route.path
                    );
                    assert_eq!(
                        response.headers().get(header::ALLOW).map(|v| v.as_bytes()),
                        Some(route.allow.as_bytes()),
                        "{method} {}",
                        route.path
                    );
                }
            }
        }
        services.background.stop().await;
    }
}
