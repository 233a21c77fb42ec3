//! Rate limiting of a route by client IP, before the request body is read, so a
//! limited request costs no parsing, no password hashing and no audit row.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;
use crate::ratelimit::{Decision, RateLimiter};

/// One route's limiter and how to find the client's address.
#[derive(Debug, Clone)]
pub(super) struct RouteLimit {
    pub(super) limiter: Arc<RateLimiter>,
    pub(super) trust_proxy: bool,
    /// Counts the requests this limit refused.
    pub(super) refused: prometheus_client::metrics::counter::Counter,
}

/// The client's IP: the socket peer, or with `trust_proxy` the address the proxy in
/// front of us appended to `X-Forwarded-For`: the rightmost entry only, since entries
/// to its left come from the client and can be forged.
pub(super) fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_proxy: bool,
) -> Option<IpAddr> {
    if trust_proxy {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|p| p.ip())
}

/// The client's IP address as an extractor (`None` only without a socket, in tests).
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientIp(pub(super) Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(Self(client_ip(&parts.headers, peer, state.trust_proxy)))
    }
}

/// `Retry-After` for a wait of `retry_after`: whole seconds rounded up, at least 1.
pub(super) fn retry_after_secs(retry_after: std::time::Duration) -> u64 {
    (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1)
}

/// Middleware: 429 with `Retry-After` when the client is over the route's limit.
pub(super) async fn enforce(
    State(limit): State<RouteLimit>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(ip) = client_ip(request.headers(), peer, limit.trust_proxy)
        && let Decision::Limited { retry_after } = limit.limiter.check(ip, Instant::now())
    {
        limit.refused.inc();
        return ApiError::RateLimited {
            retry_after_secs: retry_after_secs(retry_after),
        }
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );
        assert_eq!(client_ip(&headers, Some(peer), false), Some(peer.ip()));
        assert_eq!(
            client_ip(&headers, Some(peer), true),
            "203.0.113.7".parse().ok()
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_ip(&headers, Some(peer), true), Some(peer.ip()));
        assert_eq!(client_ip(&HeaderMap::new(), None, true), None);
    }
}
