//! `POST /auth`: issues a signed JWT. Credentials may come as a JSON body, a form body
//! or HTTP Basic; none at all is fine (the subject is then `anonymous`). Any other
//! `Authorization` scheme (e.g. a `Bearer` token added by a client library) is ignored.

use axum::body::Body;
use axum::extract::{FromRequest, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::metrics::{AuthFailure, AuthGrant};
use crate::users::{AuthOutcome, DenyReason, Password};

use super::body::{is_json, media_type, read_body};
use super::error::ApiError;
use super::json::JsonObject;
use super::limit::ClientIp;
use super::state::AppState;

/// Longest username accepted at `/auth`, in characters (Unicode scalar values, as JSON
/// Schema's `maxLength` counts them: the limit `openapi.json` states). At most 1 KiB.
const MAX_USERNAME_CHARS: usize = 256;

/// The body of a successful `/auth`.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The compact JWS.
    pub token: String,
    /// Always `Bearer` (RFC 6750).
    pub token_type: &'static str,
    /// Seconds until the token expires; 0 for an `?expired=true` token.
    pub expires_in: i64,
    /// The same JWT under its OAuth 2.0 name (RFC 6749 §5.1), for clients that look for it.
    pub access_token: String,
}

/// The `/auth` body for `token`: the bytes `serde_json` writes for a [`TokenResponse`],
/// without its escaper's pass over the token or a copy of it for the second name
/// ([`JsonObject`]).
fn token_json(token: &str, expires_in: i64) -> Vec<u8> {
    let mut object = JsonObject::with_capacity(2 * token.len() + 96);
    object.string("token", token);
    object.string("token_type", "Bearer");
    object.integer("expires_in", expires_in);
    object.string("access_token", token);
    object.finish()
}

/// Credentials presented at `/auth`, from whichever source carried them.
#[derive(Debug, Default, Deserialize)]
pub struct Credentials {
    /// The username, if any was given.
    #[serde(default)]
    pub username: Option<String>,
    /// The password, if any was given.
    #[serde(default)]
    pub password: Option<String>,
}

/// Issues a token; `?expired=true` issues one signed by an expired key.
///
/// # Errors
/// 400 for a bad `expired` value or malformed credentials, 503 without an active key.
pub(super) async fn token_issue(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    ClientIp(client): ClientIp,
    credentials: Credentials,
) -> Result<Response, ApiError> {
    let expired = expired_param(query.as_deref())?;
    let password = credentials.password.map(Password::new);
    let grant = if credentials.username.is_some() {
        AuthGrant::Password
    } else {
        AuthGrant::Anonymous
    };
    let subject = match state
        .users
        .authenticate(credentials.username.as_deref(), password, client)
        .await?
    {
        AuthOutcome::Granted { subject, .. } => subject,
        AuthOutcome::Denied(reason) => {
            state.requests.auth_failure(match reason {
                DenyReason::MissingCredentials => AuthFailure::MissingCredentials,
                DenyReason::UnknownUser => AuthFailure::UnknownUser,
                DenyReason::WrongPassword => AuthFailure::WrongPassword,
            });
            return Err(ApiError::Unauthorized);
        }
    };
    let now = state.clock.now();
    let set = state.keys.load();
    let issued = if expired {
        let key = set
            .newest_expired(now)
            .ok_or(ApiError::Unavailable("no expired key is held"))?;
        state.issuer.issue_expired(key, &subject)?
    } else {
        let key = set
            .at(now)
            .active
            .as_ref()
            .ok_or(ApiError::Unavailable("no active signing key"))?;
        state.issuer.issue(key, &subject, now)?
    };
    state.requests.auth_token(grant, expired);
    let mut response = Response::new(Body::from(token_json(&issued.token, issued.expires_in)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (name, value) = no_store();
    headers.insert(name, value);
    Ok(response)
}

/// `Cache-Control: no-store` for a response that carries a token or a password: no
/// cache may keep it (RFC 6749 §5.1, RFC 9111 §5.2.2.5).
pub(super) fn no_store() -> (header::HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

const BAD_EXPIRED: &str = "Invalid 'expired' query parameter. Must be 'true' or 'false'.";

/// `expired` absent or `false`: a normal token; `true` or present without a value: an
/// expired one; anything else is a client error.
pub(super) fn expired_param(query: Option<&str>) -> Result<bool, ApiError> {
    let mut values =
        form_urlencoded::parse(query.unwrap_or("").as_bytes()).filter(|(k, _)| k == "expired");
    let Some((_, value)) = values.next() else {
        return Ok(false);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidRequest(
            "The 'expired' query parameter must be given at most once.".into(),
        ));
    }
    match value.as_ref() {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::InvalidRequest(BAD_EXPIRED.into())),
    }
}

impl FromRequest<AppState> for Credentials {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts.headers, body, state.body_timeout).await?;
        credentials_from(&parts.headers, &bytes)
    }
}

/// The credentials of a request with these headers and this (whole) body: from the body
/// if it names a user, else from HTTP Basic, else none. Every byte here is untrusted;
/// the fuzz targets call this through [`super::fuzzing`].
pub(super) fn credentials_from(headers: &HeaderMap, body: &[u8]) -> Result<Credentials, ApiError> {
    let from_body = parse_body(headers, body)?;
    let credentials = match from_body {
        Some(c) if c.username.is_some() => c,
        _ => basic_credentials(headers)?.unwrap_or_default(),
    };
    if let Some(name) = &credentials.username
        && (name.is_empty() || name.chars().count() > MAX_USERNAME_CHARS)
    {
        return Err(ApiError::InvalidRequest(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters"
        )));
    }
    Ok(credentials)
}

/// Reads credentials from a JSON or form body. An empty body carries none.
fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Option<Credentials>, ApiError> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let essence = media_type(headers);
    let looks_like_json = trimmed.starts_with(b"{");
    match essence.as_deref() {
        Some(ct) if is_json(ct) => parse_json(trimmed),
        // `curl -d '{...}'` labels JSON as a form; read what was meant.
        Some("application/x-www-form-urlencoded") | None if looks_like_json => parse_json(trimmed),
        Some("application/x-www-form-urlencoded") | None => parse_form(trimmed),
        Some(other) => Err(ApiError::UnsupportedMediaType(other.to_owned())),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Option<Credentials>, ApiError> {
    // serde would also read a struct from a JSON array; only an object is meant.
    if !bytes.starts_with(b"{") {
        return Err(ApiError::InvalidRequest(
            "JSON body must be an object".into(),
        ));
    }
    serde_json::from_slice::<Credentials>(bytes)
        .map(Some)
        .map_err(|e| ApiError::InvalidRequest(format!("malformed JSON body: {e}")))
}

fn parse_form(bytes: &[u8]) -> Result<Option<Credentials>, ApiError> {
    let mut credentials = Credentials::default();
    for (key, value) in form_urlencoded::parse(bytes) {
        let slot = match key.as_ref() {
            "username" => &mut credentials.username,
            "password" => &mut credentials.password,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(ApiError::InvalidRequest(format!(
                "form field '{key}' given more than once"
            )));
        }
    }
    Ok(Some(credentials))
}

/// HTTP Basic credentials (RFC 7617), if the `Authorization` header uses that scheme.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<Credentials>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Ok(value) = value.to_str() else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || ApiError::InvalidRequest("malformed HTTP Basic credentials".into());
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some(Credentials {
        username: Some(username.to_owned()),
        password: Some(password.to_owned()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_body_is_the_json_serde_writes_for_its_type() {
        let response = TokenResponse {
            token: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into(),
            token_type: "Bearer",
            expires_in: 900,
            access_token: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into(),
        };
        let serde = serde_json::to_string(&response).expect("json");
        assert_eq!(
            String::from_utf8(token_json(&response.token, 900)).expect("utf-8"),
            serde
        );
    }
    use axum::http::HeaderValue;

    #[test]
    fn expired_parameter_accepts_only_true_false_or_no_value() {
        assert!(!expired_param(None).expect("absent"));
        assert!(!expired_param(Some("other=1")).expect("absent"));
        assert!(!expired_param(Some("expired=false")).expect("false"));
        assert!(expired_param(Some("expired=true")).expect("true"));
        assert!(expired_param(Some("expired")).expect("bare"));
        assert!(expired_param(Some("expired=")).expect("empty"));
        assert!(expired_param(Some("expired=%74rue")).expect("percent-encoded"));
        for bad in [
            "expired=yes",
            "expired=1",
            "expired=TRUE",
            "expired=true&expired=false",
        ] {
            assert!(
                matches!(expired_param(Some(bad)), Err(ApiError::InvalidRequest(_))),
                "{bad}"
            );
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn bodies_parse_by_content_type() {
        let json = headers(&[(header::CONTENT_TYPE, "application/json; charset=utf-8")]);
        let c = parse_body(&json, br#"{"username":"a","password":"b","extra":1}"#)
            .expect("ok")
            .expect("some");
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("a"), Some("b"))
        );
        assert!(parse_body(&json, br#"{"username":5}"#).is_err());
        assert!(parse_body(&json, b"{not json").is_err());
        assert!(parse_body(&json, b"  ").expect("ok").is_none());

        let form = headers(&[(header::CONTENT_TYPE, "application/x-www-form-urlencoded")]);
        let c = parse_body(&form, b"username=us%40er&password=p+w")
            .expect("ok")
            .expect("some");
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("us@er"), Some("p w"))
        );
        assert!(parse_body(&form, b"username=a&username=b").is_err());
        let c = parse_body(&form, br#"{"username":"j"}"#)
            .expect("ok")
            .expect("some");
        assert_eq!(c.username.as_deref(), Some("j"));

        let xml = headers(&[(header::CONTENT_TYPE, "text/xml")]);
        assert!(matches!(
            parse_body(&xml, b"<a/>"),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        let c = parse_body(&HeaderMap::new(), b"username=x")
            .expect("ok")
            .expect("some");
        assert_eq!(c.username.as_deref(), Some("x"));
    }

    #[test]
    fn basic_credentials_are_read_and_other_schemes_ignored() {
        let basic = headers(&[(header::AUTHORIZATION, "Basic dXNlckFCQzpwYXNzd29yZDEyMw==")]);
        let c = basic_credentials(&basic).expect("ok").expect("some");
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("userABC"), Some("password123"))
        );
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer abc.def.ghi")]);
        assert!(basic_credentials(&bearer).expect("ok").is_none());
        let broken = headers(&[(header::AUTHORIZATION, "Basic !!!")]);
        assert!(basic_credentials(&broken).is_err());
        let no_colon = headers(&[(header::AUTHORIZATION, "basic dXNlcg==")]);
        assert!(basic_credentials(&no_colon).is_err());
    }
}
