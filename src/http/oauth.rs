//! What `/token` and `/introspect` share: the form body of RFC 6749 §3.2 (each
//! parameter at most once, unknown ones ignored, empty ones omitted: [`super::form`]), client
//! authentication by HTTP Basic or body parameters (§2.3.1), and the `no-store`
//! headers of every answer (§5.1).

use std::borrow::Cow;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::body::{is_json, media_type};
use super::error::ApiError;
use super::form::read_fields;
use super::state::AppState;
use std::sync::Arc;

use crate::clients::{Client, ClientAuth, ClientId};

/// The parameters `/token` and `/introspect` read; any other is ignored (RFC 6749 §3.2).
#[derive(Debug, Default)]
pub(super) struct Params<'a> {
    pub(super) grant_type: Option<Cow<'a, str>>,
    pub(super) client_id: Option<Cow<'a, str>>,
    pub(super) client_secret: Option<Cow<'a, str>>,
    pub(super) scope: Option<Cow<'a, str>>,
    pub(super) username: Option<Cow<'a, str>>,
    pub(super) password: Option<Cow<'a, str>>,
    pub(super) audience: Option<Cow<'a, str>>,
    pub(super) resource: Option<Cow<'a, str>>,
    pub(super) claims: Option<Cow<'a, str>>,
    pub(super) test_case: Option<Cow<'a, str>>,
    pub(super) token: Option<Cow<'a, str>>,
    pub(super) code: Option<Cow<'a, str>>,
    pub(super) redirect_uri: Option<Cow<'a, str>>,
    pub(super) code_verifier: Option<Cow<'a, str>>,
}

impl<'a> Params<'a> {
    /// Parses a form body. A JSON body, another content type, or a repeated parameter
    /// is `invalid_request`, never 415 (RFC 6749 §3.2, §5.2).
    pub(super) fn parse(headers: &HeaderMap, body: &'a Bytes) -> Result<Self, ApiError> {
        let form = "send the parameters as application/x-www-form-urlencoded (RFC 6749 §3.2)";
        match media_type(headers).as_deref() {
            Some(ct) if is_json(ct) => {
                return Err(ApiError::InvalidRequest(format!(
                    "a JSON body is not accepted: {form}"
                )));
            }
            Some("application/x-www-form-urlencoded") | None => {}
            Some(other) if body.is_empty() && !other.is_empty() => {}
            Some(other) => {
                return Err(ApiError::InvalidRequest(format!(
                    "content type '{other}' is not accepted: {form}"
                )));
            }
        }
        if body.trim_ascii_start().starts_with(b"{") {
            return Err(ApiError::InvalidRequest(format!(
                "a JSON body is not accepted: {form}"
            )));
        }
        let (params, repeated) = read_fields!(
            body,
            Self {
                grant_type,
                client_id,
                client_secret,
                scope,
                username,
                password,
                audience,
                resource,
                claims,
                test_case,
                token,
                code,
                redirect_uri,
                code_verifier,
            }
        );
        // RFC 6749 §3.2: "parameters MUST NOT be included more than once".
        if let Some(name) = repeated {
            return Err(ApiError::InvalidRequest(format!(
                "the parameter '{name}' is given more than once"
            )));
        }
        Ok(params)
    }
}

/// An authenticated client.
#[derive(Debug)]
pub(super) enum Caller {
    /// A registered client that presented its own secret.
    Registered(Arc<Client>),
    /// An unregistered client id (open mode).
    Open(ClientId),
}

impl Caller {
    /// The client id.
    pub(super) fn id(&self) -> &str {
        match self {
            Self::Registered(c) => c.id.as_str(),
            Self::Open(id) => id.as_str(),
        }
    }

    /// The registered client, if it is one.
    pub(super) fn registered(&self) -> Option<&Client> {
        match self {
            Self::Registered(c) => Some(c),
            Self::Open(_) => None,
        }
    }
}

/// The client's identity as presented, before it is checked.
#[derive(Debug)]
pub(super) struct Presented<'a> {
    pub(super) id: Cow<'a, str>,
    pub(super) secret: Option<Cow<'a, str>>,
}

/// Authenticates the client of a `/token` or `/introspect` request (RFC 6749 §2.3.1):
/// HTTP Basic or `client_id`/`client_secret` in the body, never both.
///
/// # Errors
/// `invalid_request` for two methods at once or malformed Basic credentials;
/// `invalid_client` when no client is named or the registry refuses it.
pub(super) fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params<'_>,
) -> Result<Caller, ApiError> {
    let basic = basic_client(headers)?;
    let presented = match basic {
        Some(_) if params.client_id.is_some() || params.client_secret.is_some() => {
            // RFC 6749 §2.3: "MUST NOT use more than one authentication method".
            return Err(ApiError::InvalidRequest(
                "the client authenticated both with HTTP Basic and with body parameters; use one"
                    .into(),
            ));
        }
        Some(basic) => basic,
        None => match &params.client_id {
            Some(id) => Presented {
                id: Cow::Borrowed(id.as_ref()),
                secret: params.client_secret.as_deref().map(Cow::Borrowed),
            },
            None if params.client_secret.is_some() => {
                return Err(ApiError::InvalidRequest(
                    "client_secret without client_id".into(),
                ));
            }
            None => {
                return Err(ApiError::InvalidClient(
                    "no client authentication: use HTTP Basic (client_secret_basic) or client_id and \
                     client_secret in the body (client_secret_post)"
                        .into(),
                ));
            }
        },
    };
    match state
        .clients
        .authenticate(&presented.id, presented.secret.as_deref())
    {
        ClientAuth::Registered(client) => Ok(Caller::Registered(client)),
        ClientAuth::Open(id) => Ok(Caller::Open(id)),
        ClientAuth::Refused(why) => Err(ApiError::InvalidClient(format!(
            "client authentication failed: {why}"
        ))),
    }
}

/// HTTP Basic client credentials: RFC 6749 §2.3.1 form-url-encodes the id and the
/// secret before RFC 7617 joins them, so both are decoded again here. Every byte here is
/// untrusted; the fuzz targets call this through [`super::fuzzing`].
pub(super) fn basic_client(headers: &HeaderMap) -> Result<Option<Presented<'static>>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || ApiError::InvalidRequest("malformed HTTP Basic client credentials".into());
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = std::str::from_utf8(&decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    if id.is_empty() {
        return Err(malformed());
    }
    let secret = form_decode(secret).ok_or_else(malformed)?;
    Ok(Some(Presented {
        id: Cow::Owned(id),
        secret: (!secret.is_empty()).then_some(Cow::Owned(secret)),
    }))
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space, `%XX` a
/// byte; `None` for a bad escape or bytes that are not UTF-8.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits, no sign: `from_str_radix` alone reads "%+2" as 0x02.
                let hex = text
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The answer with `Cache-Control: no-store` and `Pragma: no-cache`, as every answer of
/// `/token` (and `/introspect`) must carry, errors and rate-limit refusals included
/// (RFC 6749 §5.1, §5.2).
pub(super) fn no_store(result: Result<impl IntoResponse, ApiError>) -> Response {
    let mut response = match result {
        Ok(answer) => answer.into_response(),
        Err(error) => error.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &'static str) -> Result<(), ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let body = Bytes::from_static(body.as_bytes());
        Params::parse(&headers, &body).map(|_| ())
    }

    #[test]
    fn form_values_decode_plus_and_percent_escapes() {
        assert_eq!(form_decode("a+b%3Ac%25").as_deref(), Some("a b:c%"));
        assert_eq!(form_decode("%E2%82%AC").as_deref(), Some("€"));
        assert_eq!(form_decode("%G1"), None);
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("%FF"), None);
    }

    #[test]
    fn a_signed_escape_is_not_a_hex_escape() {
        // Found by the token_form fuzz target (seed regression-percent-plus-escape).
        assert_eq!(form_decode("%+2"), None);
        assert_eq!(form_decode("a%+F"), None);
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("p:%+2");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("value"),
        );
        assert!(basic_client(&headers).is_err());
    }

    #[test]
    fn repeated_parameters_are_refused_and_unknown_ones_ignored() {
        assert!(form("grant_type=a&other=1&other=2").is_ok());
        assert!(matches!(
            form("scope=a&scope=b"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            form("scope=&scope="),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            form(r#"{"grant_type":"x"}"#),
            Err(ApiError::InvalidRequest(_))
        ));
    }

    #[test]
    fn basic_credentials_are_form_decoded_after_base64() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%3Aclient:s%2Bcret+x");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("value"),
        );
        let p = basic_client(&headers).expect("ok").expect("some");
        assert_eq!(p.id, "my:client");
        assert_eq!(p.secret.as_deref(), Some("s+cret x"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(basic_client(&headers).expect("ok").is_none());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert!(basic_client(&headers).is_err());
    }
}
