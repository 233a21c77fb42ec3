//! Serving HTTP/1.1 connections on a bound listener: the accept loop, what every
//! response of every listener gets (`X-Content-Type-Options`), what no request may do
//! (ambiguous message framing), and the drain at shutdown. [`serve_connections`] is
//! shared by every listener; what a request is answered with is the caller's service.
//! It does not know routes, state or keys.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse as _, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::error::ApiError;
use crate::config::{DRAIN_TIMEOUT, MAX_HEADER_BYTES, MAX_HEADERS};

/// Pause after a failed `accept` (out of file descriptors and the like), so the loop
/// backs off instead of spinning; the pending connection stays in the backlog.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one "accept failed" warning per this interval; the rest are counted.
const ACCEPT_WARN_INTERVAL: Duration = Duration::from_secs(1);

/// Serves every connection `listener` accepts with the service `make_service` builds for
/// its peer, until `shutdown` resolves; then stops accepting and drains in-flight
/// requests for at most [`DRAIN_TIMEOUT`] before it returns. With `tls`, every
/// connection must complete a TLS handshake within `request_timeout` first; anything
/// else (plain HTTP among it) is closed without an answer.
///
/// Every response gets `X-Content-Type-Options: nosniff`; a request that carries
/// `Transfer-Encoding` is answered 400 and its connection closed ([`reject_framing`]).
/// Failed accepts are retried after a short pause and logged at most once a second.
/// `request_timeout` bounds how long a request head may take to arrive.
pub async fn serve_connections<M, S>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    request_timeout: Duration,
    make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    let mut accept_errors = AcceptErrors::default();
    // Every connection's task: returning means every one of them has ended, so nothing
    // (the handlers' state, the store behind it) outlives the server.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    if let Some(suppressed) = accept_errors.failed(Instant::now()) {
                        tracing::warn!(%error, suppressed, "accept failed; retrying");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Some(suppressed) = accept_errors.accepted() {
            tracing::info!(suppressed, "accepting connections again");
        }
        let _ = stream.set_nodelay(true);
        let service = guarded(make_service(peer));
        let Some(tls) = &tls else {
            let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            connections.spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
            continue;
        };
        let (handshake, http, watcher) = (tls.accept(stream), http.clone(), graceful.watcher());
        connections.spawn(async move {
            let stream = match tokio::time::timeout(request_timeout, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
            if let Err(error) = conn.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; closing remaining connections");
    }
    // Drained connections end their tasks at once; any left past the deadline are
    // aborted here (dropping them closes their sockets).
    if tokio::time::timeout(Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        connections.shutdown().await;
    }
}

/// Wraps a connection's service with what every response and request of every listener
/// gets. No allocation per request: the header value is static, the future unboxed.
fn guarded<S>(
    inner: S,
) -> impl Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>,
    S::Future: Send,
{
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let answer = match reject_framing(&request) {
            Some(rejection) => Err(rejection),
            None => Ok(inner.call(request)),
        };
        async move {
            let mut response = match answer {
                Ok(call) => call.await?,
                Err(rejection) => rejection,
            };
            // Browsers must not guess a type other than the one declared (a JSON error
            // rendered as HTML); cheap enough for the JWKS fast path.
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            Ok(response)
        }
    })
}

/// 400 with `Connection: close` for a request whose body is framed by
/// `Transfer-Encoding`; `None` for every other request.
///
/// A request with both `Content-Length` and `Transfer-Encoding` is the stuff of request
/// smuggling (RFC 9112 §6.1, §6.3 item 3: a server may reject it and must close the
/// connection after responding, since a proxy in front may have framed it by the other
/// header). hyper frames such a request by `Transfer-Encoding` and *removes*
/// `Content-Length` before the service sees it, so the two cannot be told apart here;
/// every request with `Transfer-Encoding` is therefore refused. Bodies here are small
/// JSON or form documents that every client sends with `Content-Length` (RFC 9112 §6.3
/// asks clients to when the length is known in advance).
fn reject_framing<B>(request: &Request<B>) -> Option<Response> {
    if !request.headers().contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    let mut response = ApiError::InvalidRequest(
        "Transfer-Encoding is not accepted in requests; send the body with Content-Length".into(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

/// Rate-limits the warning about failed accepts. Under descriptor exhaustion `accept`
/// fails on every retry (20 times a second); one line a second, with the count of the
/// lines left out, says as much.
#[derive(Debug, Default)]
struct AcceptErrors {
    /// When the last warning was logged, if one was since the last successful accept.
    last_warned: Option<Instant>,
    /// Failures since the last warning that were not logged.
    suppressed: u64,
    /// Whether an accept failed since the last one that succeeded.
    failing: bool,
}

impl AcceptErrors {
    /// Records a failure at `now`: `Some(suppressed)` when it should be logged, with the
    /// number of failures left out since the last warning.
    fn failed(&mut self, now: Instant) -> Option<u64> {
        self.failing = true;
        match self.last_warned {
            Some(at) if now.saturating_duration_since(at) < ACCEPT_WARN_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_warned = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Records a successful accept: `Some(suppressed)` on the first after failures.
    fn accepted(&mut self) -> Option<u64> {
        if !self.failing {
            return None;
        }
        self.failing = false;
        self.last_warned = None;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_are_logged_at_most_once_a_second_with_the_count_left_out() {
        let start = Instant::now();
        let mut errors = AcceptErrors::default();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(errors.accepted(), None, "no failure, nothing to report");
        assert_eq!(errors.failed(at(0)), Some(0));
        let logged: Vec<_> = (1..=59).filter_map(|i| errors.failed(at(i * 50))).collect();
        assert_eq!(logged, [19, 19], "at 1 s and 2 s, 19 left out before each");
        assert_eq!(errors.accepted(), Some(19), "recovery reports the rest");
        assert_eq!(errors.accepted(), None);
        assert_eq!(
            errors.failed(at(3_000)),
            Some(0),
            "a new episode logs at once"
        );
    }

    #[test]
    fn requests_with_transfer_encoding_are_refused_and_close_the_connection() {
        let request = |headers: &[(&str, &str)]| {
            let mut builder = Request::builder().method("POST").uri("/auth");
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder.body(()).expect("request")
        };
        assert!(reject_framing(&request(&[("content-length", "2")])).is_none());
        for headers in [
            &[("transfer-encoding", "chunked")][..],
            &[("content-length", "2"), ("transfer-encoding", "chunked")],
        ] {
            let response = reject_framing(&request(headers)).expect("refused");
            assert_eq!(response.status(), 400);
            assert_eq!(response.headers()[header::CONNECTION], "close");
        }
    }
}
