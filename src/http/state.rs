//! [`AppState`]: the handles every handler may use, built once at start-up.

use std::ops::Deref;
use std::sync::Arc;

use axum::http::HeaderValue;

use std::sync::atomic::AtomicU64;

use super::discovery::Discovery;
use crate::clients::ClientRegistry;
use crate::keys::{Clock, KeySetHandle, Rotator};
use crate::metrics::RequestMetrics;
use crate::ratelimit::RateLimiter;
use crate::signin::SignIn;
use crate::token::{Issuer, TestCase, UnpublishedKeys};
use crate::users::Users;

/// Shared state of the HTTP layer, behind one `Arc`: every request clones it, and one
/// reference count is cheaper than one per handle (measured: the field-by-field clone
/// and drop were about 3% of an EdDSA `/auth` request's CPU).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the handles.
    #[must_use]
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles themselves.
#[derive(Debug)]
pub struct Shared {
    /// The published key set.
    pub keys: KeySetHandle,
    /// The rotator, for its health.
    pub rotator: Rotator,
    /// Signs tokens.
    pub issuer: Issuer,
    /// The time source that the key schedule is read against.
    pub clock: Arc<dyn Clock>,
    /// `Cache-Control` of the JWKS, formatted once.
    pub jwks_cache_control: HeaderValue,
    /// Registration and authentication.
    pub users: Users,
    /// Whether `X-Forwarded-For` names the client (only behind a trusted proxy).
    pub trust_proxy: bool,
    /// Longest time a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// The counters requests bump (one atomic add each).
    pub requests: RequestMetrics,
    /// The registered clients (in memory; reloaded by their own task).
    pub clients: ClientRegistry,
    /// The discovery document, cached.
    pub discovery: Discovery,
    /// The never-published keys of the `unknown_kid` test case.
    pub unpublished: UnpublishedKeys,
    /// Negative-test tokens issued, per [`TestCase::ALL`] entry.
    pub test_case_counts: [AtomicU64; TestCase::ALL.len()],
    /// The `/auth` limiter, which the `password` grant of `/token` also obeys.
    pub password_limiter: Option<Arc<RateLimiter>>,
    /// The `POST /token` limiter (`--token-rate-limit`), checked before the body is read.
    pub token_limiter: Option<Arc<RateLimiter>>,
    /// The `/authorize` limiter (`--authorize-rate-limit`), checked before the request
    /// is read: each sign-in page shown stores a pending request.
    pub authorize_limiter: Option<Arc<RateLimiter>>,
    /// `--clock-skew` in seconds, allowed on `exp`/`nbf` at `/introspect`.
    pub clock_skew_secs: i64,
    /// Interactive sign-in's shared state (pending requests, sessions, codes).
    pub signin: SignIn,
    /// Whether cookies are `Secure` (the server speaks HTTPS, or its issuer is https).
    pub secure_cookies: bool,
}
