//! The HTTP/1.1 client of the self-test: plain `http://` only, every request bounded by
//! a timeout, [`REQUEST_TIMEOUT`] by default (connecting, the head and the whole body), and every body by
//! [`MAX_BODY_BYTES`]. It follows no redirects and keeps no cookies: a conformance check
//! reports what the server answers, it does not paper over it.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Longest time one request may take, from connecting to the last body byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read (bytes); a JWKS or discovery document is a few KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a request got no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL could not be made into a request.
    #[error("invalid request to {url}")]
    Request {
        /// The URL.
        url: String,
        /// What was wrong.
        #[source]
        source: hyper::http::Error,
    },
    /// Connecting or exchanging the head failed.
    #[error("no answer from {url}")]
    Connect {
        /// The URL.
        url: String,
        /// The client's error.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// The body could not be read or passed [`MAX_BODY_BYTES`].
    #[error("cannot read the body from {url} (at most {MAX_BODY_BYTES} bytes)")]
    Body {
        /// The URL.
        url: String,
    },
    /// The answer did not arrive within the client's timeout.
    #[error("no complete answer from {url} within {}ms", timeout.as_millis())]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// A response with its body read.
#[derive(Debug)]
pub struct Fetched {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body (at most [`MAX_BODY_BYTES`]).
    pub body: Bytes,
}

impl Fetched {
    /// A header's value, when it is present and visible ASCII.
    #[must_use]
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A bounded HTTP/1.1 client over plain TCP.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Hyper<HttpConnector, Full<Bytes>>,
    /// The longest time one request may take, connecting included.
    timeout: Duration,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client whose requests each end within [`REQUEST_TIMEOUT`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_timeout(REQUEST_TIMEOUT)
    }

    /// A client whose requests each end within `timeout`.
    #[must_use]
    pub fn with_timeout(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        Self {
            inner: Hyper::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// `GET url` with extra `headers`.
    ///
    /// # Errors
    /// [`FetchError`] when no complete answer arrived.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Fetched, FetchError> {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body of `form` (RFC 6749
    /// §3.2), or no body when `form` is empty.
    ///
    /// # Errors
    /// [`FetchError`] when no complete answer arrived.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Fetched, FetchError> {
        if form.is_empty() {
            return self.send(Method::POST, url, &[], Bytes::new()).await;
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.send(
            Method::POST,
            url,
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from(body),
        )
        .await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Fetched, FetchError> {
        let request =
            build_request(method, url, headers, body).map_err(|source| FetchError::Request {
                url: url.to_owned(),
                source,
            })?;
        let exchange = async {
            let response =
                self.inner
                    .request(request)
                    .await
                    .map_err(|source| FetchError::Connect {
                        url: url.to_owned(),
                        source,
                    })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|_| FetchError::Body {
                    url: url.to_owned(),
                })?
                .to_bytes();
            Ok(Fetched {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Timeout {
                    url: url.to_owned(),
                    timeout: self.timeout,
                })
            })
    }
}

fn build_request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
    let uri: Uri = url.parse()?;
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_str(value)?);
    }
    request.body(Full::new(body))
}
