//! The HTTP layer: routes, the JSON error shape, and nothing else. Handlers translate
//! between HTTP and the key/token domain; they never touch the database and never
//! serialize the key set.
//!
//! Routes: [`ROUTES`], documented in `openapi.json` (served at `GET /openapi.json`), and,
//! when `--issuer` has a path, the [`issuer_mirrors`] of the issuer's endpoints under it.
//! Wrong methods answer 405 with `Allow`; unknown paths 404; both in the JSON error shape.

mod admin;
mod auth;
mod authorize;
mod body;
mod discovery;
mod error;
mod form;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod introspect;
mod json;
mod jwks;
mod limit;
mod logout;
mod oauth;
mod openapi;
mod pages;
mod serve;
mod state;
mod token;
mod userinfo;
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
pub use openapi::OPENAPI_JSON;
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
        allow: "GET, HEAD, OPTIONS",
    },
    Route {
        path: "/jwks",
        allow: "GET, HEAD, OPTIONS",
    },
    Route {
        path: "/.well-known/openid-configuration",
        allow: "GET, HEAD, OPTIONS",
    },
    Route {
        path: "/.well-known/oauth-authorization-server",
        allow: "GET, HEAD, OPTIONS",
    },
    Route {
        path: "/token",
        allow: "POST, OPTIONS",
    },
    Route {
        path: "/authorize",
        allow: "GET, HEAD, POST",
    },
    Route {
        path: "/signin",
        allow: "POST",
    },
    Route {
        path: "/userinfo",
        allow: "GET, HEAD, POST, OPTIONS",
    },
    Route {
        path: "/logout",
        allow: "GET, HEAD, POST",
    },
    Route {
        path: "/token/test-cases",
        allow: "GET, HEAD",
    },
    Route {
        path: "/introspect",
        allow: "POST",
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

/// The routes mounted again when `--issuer` has a path `p`: each mirror's path and the
/// path of the root route in [`ROUTES`] it serves (same handlers, same `Allow`). RFC 8414
/// §3 inserts the well-known segment before the issuer's path; OIDC Discovery §4 appends
/// it. The advertised endpoints are under the issuer, so they are served there too.
/// `openapi.json` describes these in its `info.description`, as they exist only then.
pub fn issuer_mirrors(p: &str) -> [(String, &'static str); 12] {
    [
        (
            format!("{p}/.well-known/openid-configuration"),
            "/.well-known/openid-configuration",
        ),
        (
            format!("/.well-known/oauth-authorization-server{p}"),
            "/.well-known/oauth-authorization-server",
        ),
        // The issuer's own spelling too, when it ends with a slash (RFC 8414 §3).
        (
            format!("/.well-known/oauth-authorization-server{p}/"),
            "/.well-known/oauth-authorization-server",
        ),
        (
            format!("{p}/.well-known/jwks.json"),
            "/.well-known/jwks.json",
        ),
        (format!("{p}/jwks"), "/jwks"),
        (format!("{p}/token"), "/token"),
        (format!("{p}/token/test-cases"), "/token/test-cases"),
        (format!("{p}/introspect"), "/introspect"),
        (format!("{p}/authorize"), "/authorize"),
        (format!("{p}/signin"), "/signin"),
        (format!("{p}/userinfo"), "/userinfo"),
        (format!("{p}/logout"), "/logout"),
    ]
}

/// The handlers of one path of [`ROUTES`]. A path without an arm gets none, so every
/// method answers 405 there, which the router test below catches.
fn endpoint(path: &str, state: &AppState, limits: &Limits) -> MethodRouter<AppState> {
    match path {
        // `get` answers `HEAD` too, without the body (RFC 9110 §9.3.2).
        "/.well-known/jwks.json" | "/jwks" => {
            get(jwks::jwks_get).options(discovery::cors_preflight)
        }
        "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server" => {
            get(discovery::discovery_get).options(discovery::cors_preflight)
        }
        // `/token` checks its rate limit and sets its no-store headers itself: a
        // middleware layer costs a boxed future per request on the hot path
        // (BENCHMARKS.md, scenario 7).
        "/token" => post(token::token_grant).options(token::token_preflight),
        "/authorize" => get(authorize::authorize).post(authorize::authorize),
        "/signin" => post(authorize::signin),
        "/userinfo" => get(userinfo::userinfo)
            .post(userinfo::userinfo)
            .options(userinfo::userinfo_preflight),
        "/logout" => get(logout::logout).post(logout::logout),
        "/token/test-cases" => get(token::token_test_cases),
        "/introspect" => post(introspect::token_introspect),
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

/// The route of [`ROUTES`] at this path.
fn root_route(path: &str) -> &'static Route {
    ROUTES
        .iter()
        .find(|route| route.path == path)
        .expect("every mirrored path is in ROUTES")
}

/// The application's router: [`ROUTES`] and, when the issuer has a routable path, its
/// [`issuer_mirrors`], each answering 405 with its `Allow` to any other method, and 404
/// elsewhere.
pub fn router(state: AppState, limits: Limits) -> Router {
    let mut router = ROUTES.iter().fold(Router::new(), |router, route| {
        router.route(
            route.path,
            allowing(endpoint(route.path, &state, &limits), route.allow),
        )
    });
    match state.discovery.issuer_path().map(str::to_owned) {
        Some(p) if is_mountable(&p) => {
            for (mirror, root) in issuer_mirrors(&p) {
                let route = root_route(root);
                router = router.route(
                    &mirror,
                    allowing(endpoint(route.path, &state, &limits), route.allow),
                );
            }
        }
        Some(p) => {
            tracing::warn!(path = %p, "the issuer's path has characters that cannot be routed; its endpoints are served at the root only");
        }
        None => {}
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use tower::ServiceExt as _;

    use super::{Limits, ROUTES, issuer_mirrors, root_route, router};
    use crate::cli::Cli;
    use crate::config::Settings;
    use crate::keys::SystemClock;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn every_listed_route_and_issuer_mirror_answers_exactly_its_listed_methods() {
        let argv = ["jwks-server", "--database", ":memory:", "--alg", "EdDSA"];
        let cli = Cli::try_parse_without_env(argv).expect("flags parse");
        let settings = Settings::from_args(&cli.serve).expect("settings valid");
        let services = crate::app::build_state(
            &settings,
            "http://test/p".into(),
            Arc::new(MemoryStore::default()),
            Arc::new(SystemClock),
        )
        .await
        .expect("state builds");
        let app = router(services.state, Limits::default());
        let methods = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
        ];
        // The issuer has a path, so its mirrors must answer as their root routes do.
        let mirrors = issuer_mirrors("/p").map(|(path, root)| (path, root_route(root)));
        let routes = ROUTES
            .iter()
            .map(|route| (route.path.to_owned(), route))
            .chain(mirrors);
        for (path, route) in routes {
            for method in methods {
                let request = Request::builder()
                    .method(Method::from_bytes(method.as_bytes()).expect("method"))
                    .uri(path.as_str())
                    .body(Body::empty())
                    .expect("request");
                let response = app.clone().oneshot(request).await.expect("infallible");
                let listed = route.methods().any(|m| m == method);
                let status = response.status();
                if listed {
                    assert!(
                        status != StatusCode::METHOD_NOT_ALLOWED && status != StatusCode::NOT_FOUND,
                        "{method} {path} answered {status}"
                    );
                } else {
                    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                    assert_eq!(
                        response.headers().get(header::ALLOW).map(|v| v.as_bytes()),
                        Some(route.allow.as_bytes()),
                        "{method} {path}"
                    );
                }
            }
        }
        services.background.stop().await;
    }
}
