//! [`AppState`]: the handles every handler may use, built once at start-up.

use std::sync::Arc;

use axum::http::HeaderValue;

use crate::keys::{Clock, KeySetHandle, Rotator};
use crate::token::Issuer;
use crate::users::Users;

/// Shared state of the HTTP layer. Cheap to clone: handles only.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The published key set.
    pub keys: KeySetHandle,
    /// The rotator, for its health.
    pub rotator: Rotator,
    /// Signs tokens.
    pub issuer: Arc<Issuer>,
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
}
