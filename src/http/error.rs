//! The one place that turns failures into HTTP statuses. Every error answers
//! `{"error": "<stable code>", "error_description": "<human text>"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// No such resource (404).
    #[error("no resource at this path")]
    NotFound,
    /// Missing or wrong credentials (401, with `WWW-Authenticate`).
    #[error("invalid username or password")]
    Unauthorized,
    /// The resource exists but not for this method (405).
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: &'static str,
    },
    /// The body took too long to arrive (408).
    #[error("the request took too long to arrive")]
    Timeout,
    /// A unique field is taken (409).
    #[error("{0} is already registered")]
    Conflict(&'static str),
    /// The body is over the limit (413).
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body's content type is not one this endpoint reads (415).
    #[error(
        "unsupported content type '{0}'; send application/json or application/x-www-form-urlencoded"
    )]
    UnsupportedMediaType(String),
    /// Too many requests from this client (429, with `Retry-After` in seconds).
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a request would be accepted again (at least 1).
        retry_after_secs: u64,
    },
    /// The server cannot answer right now (503), e.g. no active key.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The admin API refused the caller (401, with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    AdminUnauthorized(&'static str),
    /// No key with this kid (404).
    #[error("no key {0} is stored")]
    UnknownKey(String),
    /// An operation that does not apply to the keys as they are (409).
    #[error("{0}")]
    Refused(String),
    /// Client authentication failed (RFC 6749 §5.2 `invalid_client`): 401 with
    /// `WWW-Authenticate: Basic`.
    #[error("{0}")]
    InvalidClient(String),
    /// The resource owner's credentials are wrong (RFC 6749 §5.2 `invalid_grant`, 400).
    #[error("{0}")]
    InvalidGrant(String),
    /// The client may not use this grant type (RFC 6749 §5.2 `unauthorized_client`, 400).
    #[error("{0}")]
    UnauthorizedClient(String),
    /// A grant type this server does not implement (RFC 6749 §5.2
    /// `unsupported_grant_type`, 400).
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// The requested scope is invalid, unknown or not allowed (RFC 6749 §5.2
    /// `invalid_scope`, 400).
    #[error("{0}")]
    InvalidScope(String),
    /// The `resource` is not an acceptable target (RFC 8707 §2 `invalid_target`, 400).
    #[error("{0}")]
    InvalidTarget(String),
    /// A failure on our side (500). The detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    error_description: &'a str,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Timeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
            Self::AdminUnauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::UnknownKey(_) => (StatusCode::NOT_FOUND, "unknown_key"),
            Self::Refused(_) => (StatusCode::CONFLICT, "operation_refused"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            // RFC 6749 §5.2: 400, except invalid_client, which is 401 with a challenge.
            Self::InvalidClient(_) => (StatusCode::UNAUTHORIZED, "invalid_client"),
            Self::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
            Self::UnauthorizedClient(_) => (StatusCode::BAD_REQUEST, "unauthorized_client"),
            Self::UnsupportedGrantType(_) => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
            Self::InvalidScope(_) => (StatusCode::BAD_REQUEST, "invalid_scope"),
            Self::InvalidTarget(_) => (StatusCode::BAD_REQUEST, "invalid_target"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = self.status_and_code();
        let description = match &self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "The server failed to process the request.".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error,
                error_description: &description,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        match self {
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unauthorized => {
                let challenge = r#"Basic realm="jwks-server", charset="UTF-8""#;
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            Self::AdminUnauthorized(_) => {
                // RFC 6750 §3.
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="jwks-server admin""#),
                );
            }
            Self::InvalidClient(_) => {
                // RFC 6749 §5.2: the scheme the client should use (RFC 7617).
                let challenge = r#"Basic realm="jwks-server", charset="UTF-8""#;
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::keys::KeyError> for ApiError {
    fn from(error: crate::keys::KeyError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<crate::users::UserError> for ApiError {
    fn from(error: crate::users::UserError) -> Self {
        use crate::users::UserError;
        match error {
            UserError::Invalid(reason) => Self::InvalidRequest(reason),
            UserError::Taken(field) => Self::Conflict(field),
            UserError::AuditClosed => Self::Unavailable("the server is shutting down"),
            UserError::Store(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "user store unavailable"
                );
                Self::Unavailable("the user database is unreachable; try again shortly")
            }
            UserError::Audit(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "audit log unavailable"
                );
                Self::Unavailable("the user database is unreachable; try again shortly")
            }
            other => Self::Internal(other.to_string()),
        }
    }
}
