//! `GET`/`POST /userinfo` (OpenID Connect Core 1.0 §5.3): the signed-in user's claims
//! for an access token of ours that was granted the `openid` scope. The token is checked
//! against the in-memory key set, and against the revocations a reused code made (one
//! database read); the claims are those the token carries, which the scopes allowed
//! when it was issued.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::body::{media_type, read_body};
use super::discovery::ALLOW_ANY_ORIGIN;
use super::form::fields;
use super::introspect::is_revoked;
use super::state::AppState;
use crate::signin::has_scope;
use crate::token::verify_access;

/// The access token's own claims (RFC 9068 §2.2), never repeated as user claims.
const TOKEN_CLAIMS: [&str; 9] = [
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "auth_time",
];

/// A refusal with its RFC 6750 §3 challenge.
struct Refusal {
    status: StatusCode,
    /// `None` when the request carried no token: then no error code (RFC 6750 §3.1).
    code: Option<&'static str>,
    description: &'static str,
}

impl Refusal {
    fn into_response(self) -> Response {
        // 503: a failure of ours, not a challenge to the client (RFC 6750 §3).
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            let body = serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": self.description,
            });
            return (self.status, Json(body)).into_response();
        }
        let challenge = match self.code {
            None => r#"Bearer realm="jwks-server""#.to_owned(),
            Some(code) => format!(
                r#"Bearer realm="jwks-server", error="{code}", error_description="{}"{}"#,
                self.description,
                if code == "insufficient_scope" {
                    r#", scope="openid""#
                } else {
                    ""
                }
            ),
        };
        let body = serde_json::json!({
            "error": self.code.unwrap_or("invalid_token"),
            "error_description": self.description,
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// `GET`/`POST /userinfo`.
pub(super) async fn userinfo(State(state): State<AppState>, request: Request) -> Response {
    let mut response = match claims(&state, request).await {
        Ok(claims) => Json(Value::Object(claims)).into_response(),
        Err(refusal) => refusal.into_response(),
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW_ANY_ORIGIN);
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("WWW-Authenticate"),
    );
    response
}

/// The token from the `Authorization` header (RFC 6750 §2.1) or, for a form `POST`,
/// the `access_token` parameter (§2.2); never both.
async fn presented(state: &AppState, request: Request) -> Result<Option<String>, Refusal> {
    let malformed = |description| Refusal {
        status: StatusCode::BAD_REQUEST,
        code: Some("invalid_request"),
        description,
    };
    let (parts, body) = request.into_parts();
    let header =
        bearer(&parts.headers).map_err(|()| malformed("malformed Authorization header"))?;
    let form = media_type(&parts.headers).as_deref() == Some("application/x-www-form-urlencoded");
    let in_body = if form && parts.method == axum::http::Method::POST {
        let bytes = read_body(&parts.headers, body, state.body_timeout)
            .await
            .map_err(|_| malformed("the request body could not be read"))?;
        let form = fields(&bytes, ["access_token"]);
        if form.repeated.is_some() {
            return Err(malformed("access_token is given more than once"));
        }
        let [token] = form.values;
        token.map(std::borrow::Cow::into_owned)
    } else {
        None
    };
    match (header, in_body) {
        (Some(_), Some(_)) => Err(malformed(
            "the access token is both in the header and in the body; send it once (RFC 6750 §2)",
        )),
        (Some(token), None) => Ok(Some(token)),
        (None, token) => Ok(token),
    }
}

/// `Authorization: Bearer <token>`; `Err` for a Bearer header without a token.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(())
            } else {
                Ok(Some(token.to_owned()))
            }
        }
        _ => Ok(None),
    }
}

async fn claims(state: &AppState, request: Request) -> Result<Map<String, Value>, Refusal> {
    let Some(token) = presented(state, request).await? else {
        return Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: None,
            description: "send the access token as Authorization: Bearer <token>",
        });
    };
    let set = state.keys.load();
    let now = state.clock.now();
    let inactive = Refusal {
        status: StatusCode::UNAUTHORIZED,
        code: Some("invalid_token"),
        description: "the access token is not an active access token of this issuer",
    };
    let Some(claims) = verify_access(
        &token,
        &set,
        state.issuer.issuer(),
        now,
        state.clock_skew_secs,
    ) else {
        return Err(inactive);
    };
    match is_revoked(state, &claims, now).await {
        Ok(false) => {}
        Ok(true) => return Err(inactive),
        Err(_) => {
            return Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: None,
                description: "the sign-in database is unreachable; try again shortly",
            });
        }
    }
    // OpenID Connect Core §5.3: the access token must have been granted `openid`.
    if !has_scope(claims.get("scope").and_then(Value::as_str), "openid") {
        return Err(Refusal {
            status: StatusCode::FORBIDDEN,
            code: Some("insufficient_scope"),
            description: "the access token was not granted the openid scope",
        });
    }
    Ok(claims
        .into_iter()
        .filter(|(name, _)| !TOKEN_CLAIMS.contains(&name.as_str()))
        .collect())
}

/// A CORS preflight of `/userinfo`: `Authorization` must be named, since a wildcard
/// does not cover it (Fetch standard, CORS protocol).
pub(super) async fn userinfo_preflight() -> Response {
    super::discovery::preflight("GET, POST, OPTIONS", "authorization, content-type")
}
