//! The authorization endpoint of the authorization code flow (OpenID Connect Core 1.0
//! §3.1.2, RFC 6749 §4.1, RFC 7636): `GET`/`POST /authorize` validates the request,
//! answers at once from a session or shows the sign-in page, and `POST /signin` checks
//! the form and sends the browser back to the client with a code.
//!
//! Errors follow RFC 6749 §4.1.2.1: an unknown client or a redirect URI that is not the
//! client's is shown as a page and never redirected to; every other error goes back to
//! the redirect URI as `error`, `error_description` and `state`. Every redirect also
//! carries `iss` (RFC 9207), so a client talking to several issuers can tell them apart.

use std::borrow::Cow;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::body::{media_type, read_body};
use super::error::ApiError;
use super::form::{fields, read_fields};
use super::limit::{ClientIp, retry_after_secs};
use super::pages::{self, SignInForm};
use super::state::AppState;
use crate::clients::{Client, ClientAuth, GrantType, is_scope_token};
use crate::keys::UnixMillis;
use crate::ratelimit::Decision;
use crate::signin::{
    AuthorizationRequest, CodeGrant, Handle, Identity, SignInError, is_pkce_value,
    parse_extra_claims,
};
use crate::users::{AuthMode, AuthOutcome, Password};

/// The session cookie: the handle of a sign-in session.
pub(super) const SESSION_COOKIE: &str = "jwks_session";
/// The browser-binding cookie: a pending request's form is accepted only from the
/// browser that opened it (with its CSRF token), so another site cannot sign a person in
/// as someone else (login CSRF).
const BROWSER_COOKIE: &str = "jwks_browser";
/// Scopes of OpenID Connect Core §5.4 that every client may ask for.
pub(super) const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "email"];
/// Longest `state`, `nonce` or `login_hint` accepted, in bytes: they are stored.
const MAX_PARAM_BYTES: usize = 2048;
/// Longest username typed on the page, in characters (as at `/auth`).
const MAX_USERNAME_CHARS: usize = 256;

/// The parameters of an authorization request (OpenID Connect Core §3.1.2.1), each at
/// most once (RFC 6749 §3.1).
#[derive(Debug, Default)]
struct AuthParams<'a> {
    response_type: Option<Cow<'a, str>>,
    client_id: Option<Cow<'a, str>>,
    redirect_uri: Option<Cow<'a, str>>,
    scope: Option<Cow<'a, str>>,
    state: Option<Cow<'a, str>>,
    nonce: Option<Cow<'a, str>>,
    code_challenge: Option<Cow<'a, str>>,
    code_challenge_method: Option<Cow<'a, str>>,
    prompt: Option<Cow<'a, str>>,
    login_hint: Option<Cow<'a, str>>,
    max_age: Option<Cow<'a, str>>,
    response_mode: Option<Cow<'a, str>>,
    request: Option<Cow<'a, str>>,
    request_uri: Option<Cow<'a, str>>,
    /// The first parameter given twice.
    repeated: Option<&'static str>,
}

impl<'a> AuthParams<'a> {
    fn parse(input: &'a [u8]) -> Self {
        read_fields!(
            input,
            Self {
                response_type,
                client_id,
                redirect_uri,
                scope,
                state,
                nonce,
                code_challenge,
                code_challenge_method,
                prompt,
                login_hint,
                max_age,
                response_mode,
                request,
                request_uri,
            },
            repeated: repeated
        )
    }
}

/// A problem answered as a page: the request cannot be trusted to redirect.
pub(super) struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
    /// `Retry-After` in seconds, for a rate-limited request.
    retry_after_secs: Option<u64>,
}

impl PageError {
    pub(super) fn bad(title: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// A form body that could not be read: 413 and 408 keep their status (RFC 9110
    /// §15.5.14, §15.5.9), anything else is 400.
    pub(super) fn unreadable(error: &ApiError) -> Self {
        let status = match error {
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            ..Self::bad("Invalid request", error.to_string())
        }
    }

    /// Too many requests from this address (RFC 6585 §4).
    fn limited(retry_after_secs: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after_secs: Some(retry_after_secs),
            ..Self::bad(
                "Too many requests",
                format!(
                    "Too many sign-in requests from your address. Wait {retry_after_secs} s and try again."
                ),
            )
        }
    }

    pub(super) fn into_response(self) -> Response {
        let mut response = pages::page(
            self.status,
            pages::error_page(self.title, &self.message),
            None,
        );
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<SignInError> for PageError {
    fn from(error: SignInError) -> Self {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "sign-in state unavailable"
        );
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Try again shortly",
            message: "The sign-in service cannot reach its database right now. Try again shortly."
                .into(),
            retry_after_secs: None,
        }
    }
}

/// An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1).
struct Redirected {
    code: &'static str,
    description: String,
}

fn redirected(code: &'static str, description: impl Into<String>) -> Redirected {
    Redirected {
        code,
        description: description.into(),
    }
}

/// Where an answer goes, once the client and its redirect URI are known.
struct Target<'s> {
    redirect_uri: String,
    redirect_uri_given: bool,
    state: Option<&'s str>,
    client: Option<std::sync::Arc<Client>>,
    client_id: String,
}

/// `redirect_uri` with the answer's parameters added to its query (RFC 6749 §4.1.2:
/// keeping any query it has).
fn redirect_to(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let query = query.finish();
    let separator = if uri.contains('?') { '&' } else { '?' };
    let location = format!("{uri}{separator}{query}");
    found(&location)
}

fn found(location: &str) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    // 303 See Other: the browser follows with a GET whatever method brought it here.
    *response.status_mut() = StatusCode::SEE_OTHER;
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => {
            return PageError::bad("Invalid redirect", "The redirect URI cannot be used.")
                .into_response();
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error_redirect(state: &AppState, target: &Target<'_>, error: &Redirected) -> Response {
    let mut params = vec![
        ("error", error.code),
        ("error_description", error.description.as_str()),
    ];
    if let Some(s) = target.state {
        params.push(("state", s));
    }
    params.push(("iss", state.issuer.issuer()));
    redirect_to(&target.redirect_uri, &params)
}

/// The value of cookie `name`, if the request carries it.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax` (sent on the top-level navigation
/// back from a client, never on another site's POST), `Secure` over HTTPS.
pub(super) fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(secs) = max_age {
        text.push_str(&format!("; Max-Age={secs}"));
    }
    if state.secure_cookies {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// `GET`/`POST /authorize`; `HEAD` validates like `GET` and answers its headers, but
/// stores nothing (RFC 9110 §9.2.1: a safe method).
pub(super) async fn authorize(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    request: Request,
) -> Response {
    // Before the request is read: a limited request costs no parsing and stores nothing.
    if let (Some(limiter), Some(ip)) = (&state.authorize_limiter, client_ip)
        && let Decision::Limited { retry_after } = limiter.check(ip, Instant::now())
    {
        state.requests.authorize_limited();
        return PageError::limited(retry_after_secs(retry_after)).into_response();
    }
    let (parts, body) = request.into_parts();
    let input = if parts.method == Method::POST {
        // OpenID Connect Core §3.1.2.1: POST sends the same parameters as a form.
        if media_type(&parts.headers).as_deref() != Some("application/x-www-form-urlencoded") {
            return PageError::bad(
                "Invalid request",
                "POST /authorize takes its parameters as application/x-www-form-urlencoded.",
            )
            .into_response();
        }
        match read_body(&parts.headers, body, state.body_timeout).await {
            Ok(bytes) => bytes.to_vec(),
            Err(error) => return PageError::unreadable(&error).into_response(),
        }
    } else {
        parts.uri.query().unwrap_or("").as_bytes().to_vec()
    };
    let params = AuthParams::parse(&input);
    let target = match resolve_target(&state, &params) {
        Ok(target) => target,
        Err(error) => return error.into_response(),
    };
    let request = match validate(&params, &target) {
        Ok(request) => request,
        Err(error) => return error_redirect(&state, &target, &error),
    };
    let prompts: Vec<&str> = params
        .prompt
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
        .collect();
    let now = state.clock.now();
    let head = parts.method == Method::HEAD;
    match answer(
        &state,
        &parts.headers,
        &target,
        request,
        &prompts,
        head,
        now,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// The client and the redirect URI: the two checks whose failure is shown, never
/// redirected (RFC 6749 §3.1.2.4, §4.1.2.1).
fn resolve_target<'s>(
    state: &AppState,
    params: &'s AuthParams<'_>,
) -> Result<Target<'s>, PageError> {
    if let Some(name) = params
        .repeated
        .filter(|n| matches!(*n, "client_id" | "redirect_uri"))
    {
        return Err(PageError::bad(
            "Invalid request",
            format!("The parameter {name} is given more than once."),
        ));
    }
    let Some(client_id) = params.client_id.as_deref() else {
        return Err(PageError::bad(
            "Invalid request",
            "The request names no client (client_id is required).",
        ));
    };
    let client = match state.clients.identify(client_id) {
        ClientAuth::Registered(client) => Some(client),
        ClientAuth::Open(_) => None,
        ClientAuth::Refused(why) => {
            return Err(PageError::bad(
                "Unknown client",
                format!("The application that sent you here is not registered ({why})."),
            ));
        }
    };
    let given = params.redirect_uri.as_deref();
    let redirect_uri = match (&client, given) {
        (Some(c), Some(uri)) => {
            // RFC 6749 §3.1.2.3 and OpenID Connect Core §3.1.2.1: simple string
            // comparison with a registered URI.
            if !c.redirect_uris.iter().any(|r| r == uri) {
                return Err(PageError::bad(
                    "Invalid redirect URI",
                    format!(
                        "The redirect URI {uri} is not registered for the client {client_id}; \
                         register it with `jwks-server clients add ... --redirect-uri`."
                    ),
                ));
            }
            uri.to_owned()
        }
        (Some(c), None) => match c.redirect_uris.as_slice() {
            [only] => only.clone(),
            [] => {
                return Err(PageError::bad(
                    "Invalid redirect URI",
                    format!("The client {client_id} has no registered redirect URI."),
                ));
            }
            _ => {
                return Err(PageError::bad(
                    "Invalid redirect URI",
                    "redirect_uri is required: the client has several registered.",
                ));
            }
        },
        // Open mode, unregistered client: any http(s) URI, a documented testing
        // convenience.
        (None, Some(uri)) => {
            if !is_web_uri(uri) {
                return Err(PageError::bad(
                    "Invalid redirect URI",
                    "An unregistered client's redirect URI must be an absolute http or https URI without a fragment.",
                ));
            }
            uri.to_owned()
        }
        (None, None) => {
            return Err(PageError::bad(
                "Invalid redirect URI",
                "redirect_uri is required.",
            ));
        }
    };
    Ok(Target {
        redirect_uri,
        redirect_uri_given: given.is_some(),
        state: params.state.as_deref(),
        client,
        client_id: client_id.to_owned(),
    })
}

/// Whether `uri` is an absolute `http` or `https` URI without a fragment (RFC 3986 §4.3),
/// as an unregistered client's redirect URI must be (RFC 6749 §3.1.2), since it goes out
/// as a `Location` (RFC 9110 §10.2.2): only RFC 3986's characters with well-formed
/// percent-encodings, no userinfo (RFC 9110 §4.2.4), a host that is not empty (§4.2.1),
/// brackets only around an IPv6 address (RFC 3986 §3.2.2), a port that is a number.
pub(super) fn is_web_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let bytes = rest.as_bytes();
    let characters = bytes.iter().enumerate().all(|(i, &b)| {
        b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/?[]".contains(&b)
            || (b == b'%'
                && bytes
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
    });
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (host, port) = match authority.strip_prefix('[') {
        Some(literal) => match literal.split_once(']') {
            Some((ip, port)) => (ip.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => (false, ""),
        },
        None => {
            let (name, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            (!name.is_empty() && !name.contains(['[', ']', '@']), port)
        }
    };
    let port = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && characters
        && host
        && port
        && !tail.contains(['[', ']'])
}

/// Every other rule, whose failure goes back to the client.
fn validate(
    params: &AuthParams<'_>,
    target: &Target<'_>,
) -> Result<AuthorizationRequest, Redirected> {
    if let Some(name) = &params.repeated {
        return Err(redirected(
            "invalid_request",
            format!("the parameter {name} is given more than once"),
        ));
    }
    // OpenID Connect Core §6: request objects are not supported.
    if params.request.is_some() {
        return Err(redirected(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if params.request_uri.is_some() {
        return Err(redirected(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    match params.response_mode.as_deref() {
        None | Some("query") => {}
        Some(other) => {
            return Err(redirected(
                "invalid_request",
                format!("response_mode {other} is not supported; use query"),
            ));
        }
    }
    match params.response_type.as_deref() {
        None => return Err(redirected("invalid_request", "response_type is required")),
        Some("code") => {}
        Some(other) => {
            return Err(redirected(
                "unsupported_response_type",
                format!("response_type {other} is not supported; use code"),
            ));
        }
    }
    if let Some(c) = &target.client
        && !c.grant_types.contains(&GrantType::AuthorizationCode)
    {
        return Err(redirected(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        ));
    }
    let scope = scope(params.scope.as_deref(), target.client.as_deref())?;
    // RFC 7636 §4.3, §4.4.1: S256 only; a challenge without a method means plain.
    let code_challenge = match (
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    ) {
        (None, None) => None,
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => Some(challenge.to_owned()),
        (Some(_), Some("S256")) => {
            return Err(redirected(
                "invalid_request",
                "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.2)",
            ));
        }
        (None, Some(_)) => {
            return Err(redirected(
                "invalid_request",
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(_), _) => {
            return Err(redirected(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not supported)",
            ));
        }
    };
    if code_challenge.is_none() && target.client.as_ref().is_some_and(|c| c.is_public()) {
        return Err(redirected(
            "invalid_request",
            "a public client must use PKCE: send code_challenge and code_challenge_method=S256 (RFC 7636)",
        ));
    }
    let prompts: Vec<&str> = params
        .prompt
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
        .collect();
    if let Some(unknown) = prompts
        .iter()
        .find(|p| !matches!(**p, "none" | "login" | "consent" | "select_account"))
    {
        return Err(redirected(
            "invalid_request",
            format!("prompt {unknown} is not supported"),
        ));
    }
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Err(redirected(
            "invalid_request",
            "prompt=none cannot be combined with another value",
        ));
    }
    let max_age = match params.max_age.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    redirected("invalid_request", "max_age must be a number of seconds")
                })?,
        ),
    };
    for (name, value) in [
        ("state", params.state.as_deref()),
        ("nonce", params.nonce.as_deref()),
        ("login_hint", params.login_hint.as_deref()),
    ] {
        if value.is_some_and(|v| v.len() > MAX_PARAM_BYTES) {
            return Err(redirected(
                "invalid_request",
                format!("{name} is longer than {MAX_PARAM_BYTES} bytes"),
            ));
        }
    }
    Ok(AuthorizationRequest {
        client_id: target.client_id.clone(),
        redirect_uri: target.redirect_uri.clone(),
        redirect_uri_given: target.redirect_uri_given,
        scope,
        state: params.state.as_deref().map(str::to_owned),
        nonce: params.nonce.as_deref().map(str::to_owned),
        code_challenge,
        max_age,
        login_hint: params.login_hint.as_deref().map(str::to_owned),
    })
}

/// The granted scope: OpenID Connect's scopes for every client; any other only if a
/// registered client may ask for it (RFC 6749 §3.3).
fn scope(requested: Option<&str>, client: Option<&Client>) -> Result<Option<String>, Redirected> {
    let mut granted: Vec<&str> = Vec::new();
    for token in requested.unwrap_or("").split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(redirected(
                "invalid_scope",
                format!("{token} is not a valid scope (RFC 6749 §3.3)"),
            ));
        }
        if let Some(c) = client
            && !OIDC_SCOPES.contains(&token)
            && !c.scopes.iter().any(|s| s == token)
        {
            return Err(redirected(
                "invalid_scope",
                format!("scope {token} is not allowed for this client"),
            ));
        }
        if !granted.contains(&token) {
            granted.push(token);
        }
    }
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

/// Answers a valid request: a code at once from a session that satisfies it, else the
/// sign-in page (or `login_required` for `prompt=none`, OpenID Connect Core §3.1.2.6).
/// For `head`, the sign-in page's headers and nothing stored: neither a code nor a
/// pending request.
async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    target: &Target<'_>,
    request: AuthorizationRequest,
    prompts: &[&str],
    head: bool,
    now: UnixMillis,
) -> Result<Response, PageError> {
    let force = prompts
        .iter()
        .any(|p| matches!(*p, "login" | "select_account"));
    let session = match cookie(headers, SESSION_COOKIE).and_then(Handle::parse) {
        Some(handle) => state.signin.session(&handle, now).await?,
        None => None,
    };
    let now_secs = now.div_euclid(1000);
    let usable = session.filter(|identity| {
        !force
            && request
                .max_age
                .is_none_or(|max| now_secs.saturating_sub(identity.auth_time) <= max)
    });
    if usable.is_none() && prompts.contains(&"none") {
        return Ok(error_redirect(
            state,
            target,
            &redirected("login_required", "the user is not signed in"),
        ));
    }
    if head {
        return Ok(pages::page(
            StatusCode::OK,
            String::new(),
            Some(&request.redirect_uri),
        ));
    }
    if let Some(identity) = usable {
        return complete(state, request, identity, now).await;
    }
    let browser = match cookie(headers, BROWSER_COOKIE).and_then(Handle::parse) {
        Some(handle) => (handle, false),
        None => (Handle::generate()?, true),
    };
    let client_name = target
        .client
        .as_ref()
        .map_or(target.client_id.as_str(), |c| c.display_name())
        .to_owned();
    let login_hint = request.login_hint.clone().unwrap_or_default();
    let redirect_uri = request.redirect_uri.clone();
    let (handle, pending) = state.signin.begin(request, browser.0.hash(), now).await?;
    let html = pages::signin_page(&SignInForm {
        client: &client_name,
        users_mode: state.clients.mode() == AuthMode::Users,
        username: &login_hint,
        claims: "",
        message: None,
        request: handle.expose(),
        csrf: &pending.csrf,
    });
    let mut response = pages::page(StatusCode::OK, html, Some(&redirect_uri));
    if browser.1 {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, BROWSER_COOKIE, browser.0.expose(), None),
        );
    }
    Ok(response)
}

/// Issues the code and sends the browser back (RFC 6749 §4.1.2).
async fn complete(
    state: &AppState,
    request: AuthorizationRequest,
    identity: Identity,
    now: UnixMillis,
) -> Result<Response, PageError> {
    let redirect_uri = request.redirect_uri.clone();
    let client_state = request.state.clone();
    let code = state
        .signin
        .issue_code(&CodeGrant { request, identity }, now)
        .await?;
    let mut params = vec![("code", code.expose())];
    if let Some(s) = client_state.as_deref() {
        params.push(("state", s));
    }
    params.push(("iss", state.issuer.issuer()));
    Ok(redirect_to(&redirect_uri, &params))
}

/// `POST /signin`: the sign-in form.
pub(super) async fn signin(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    request: Request,
) -> Response {
    match signin_inner(&state, client_ip, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn signin_inner(
    state: &AppState,
    client_ip: Option<std::net::IpAddr>,
    request: Request,
) -> Result<Response, PageError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(&parts.headers, body, state.body_timeout)
        .await
        .map_err(|e| PageError::unreadable(&e))?;
    let form = fields(
        &bytes,
        ["request", "csrf", "username", "password", "claims"],
    );
    if let Some(name) = form.repeated {
        return Err(PageError::bad(
            "Invalid request",
            format!("The field {name} is given more than once."),
        ));
    }
    let [request, csrf, username, password, claims] = form.values;
    let expired = || {
        PageError::bad(
            "Sign-in expired",
            "This sign-in form has expired, was already used, or was opened in another browser. \
             Go back to the application and start again.",
        )
    };
    let handle = request
        .as_deref()
        .and_then(Handle::parse)
        .ok_or_else(expired)?;
    let now = state.clock.now();
    let pending = state
        .signin
        .pending(&handle, now)
        .await?
        .ok_or_else(expired)?;
    // CSRF: the form's token and the browser that opened it (OWASP's synchronizer token
    // and a cookie bound to the pending request).
    let browser_ok = cookie(&parts.headers, BROWSER_COOKIE)
        .and_then(Handle::parse)
        .is_some_and(|b| b.hash().as_str() == pending.browser);
    let csrf_ok = csrf.as_deref().is_some_and(|c| {
        aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), pending.csrf.as_bytes())
            .is_ok()
    });
    if !browser_ok || !csrf_ok {
        return Err(expired());
    }
    let users_mode = state.clients.mode() == AuthMode::Users;
    let client_name = state
        .clients
        .snapshot()
        .clients
        .get(&pending.request.client_id)
        .map_or(pending.request.client_id.clone(), |c| {
            c.display_name().to_owned()
        });
    let username = username.as_deref().unwrap_or("").trim().to_owned();
    let claims_text = claims.as_deref().unwrap_or("").to_owned();
    let again = |status: StatusCode, message: &str| {
        pages::page(
            status,
            pages::signin_page(&SignInForm {
                client: &client_name,
                users_mode,
                username: &username,
                claims: &claims_text,
                message: Some(message),
                request: handle.expose(),
                csrf: &pending.csrf,
            }),
            Some(&pending.request.redirect_uri),
        )
    };
    if username.is_empty()
        || username.chars().count() > MAX_USERNAME_CHARS
        || username.chars().any(char::is_control)
    {
        return Ok(again(
            StatusCode::BAD_REQUEST,
            &format!("Enter a username (1 to {MAX_USERNAME_CHARS} characters)."),
        ));
    }
    let password = password.as_deref().filter(|p| !p.is_empty());
    if users_mode && password.is_none() {
        return Ok(again(StatusCode::BAD_REQUEST, "Enter your password."));
    }
    let extra = if users_mode {
        serde_json::Map::new()
    } else {
        match parse_extra_claims(&claims_text) {
            Ok(map) => map,
            Err(message) => return Ok(again(StatusCode::BAD_REQUEST, &message)),
        }
    };
    // The same rate limit as `/auth` and the password grant.
    if let (Some(limiter), Some(ip)) = (&state.password_limiter, client_ip)
        && let Decision::Limited { retry_after } = limiter.check(ip, Instant::now())
    {
        let secs = retry_after_secs(retry_after);
        let mut response = again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many attempts. Wait {secs} s and try again."),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(response);
    }
    let outcome = state
        .users
        .authenticate(
            Some(&username),
            password.map(|p| Password::new(p.to_owned())),
            client_ip,
        )
        .await;
    let (sub, email) = match outcome {
        Ok(AuthOutcome::Granted { subject, email }) => (subject, email),
        Ok(AuthOutcome::Denied(_)) => {
            state.requests.signin(false);
            // RFC 9110 §15.5.4: 403, credentials given but insufficient (a 401 would need
            // a `WWW-Authenticate` challenge, and a form is not HTTP authentication).
            return Ok(again(StatusCode::FORBIDDEN, "Wrong username or password."));
        }
        Err(error) => {
            tracing::warn!(error = &error as &dyn std::error::Error, "sign-in failed");
            return Ok(again(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable right now. Try again shortly.",
            ));
        }
    };
    // Taken, not read: a form submitted twice (two tabs, a double click) completes once.
    let Some(pending) = state.signin.finish(&handle, now).await? else {
        return Err(expired());
    };
    state.requests.signin(true);
    let identity = Identity {
        sub,
        auth_time: now.div_euclid(1000),
        email,
        claims: extra,
    };
    let session = state.signin.start_session(&identity, now).await?;
    // A session this browser had is replaced by the new one.
    if let Some(old) = cookie(&parts.headers, SESSION_COOKIE).and_then(Handle::parse) {
        state.signin.end_session(&old, now).await?;
    }
    let mut response = complete(state, pending.request, identity, now).await?;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            state,
            SESSION_COOKIE,
            session.expose(),
            Some(state.signin.session_ttl().as_secs()),
        ),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_once_and_repeats_are_noticed() {
        let p = AuthParams::parse(b"client_id=a&scope=openid+email&state=&scope=x");
        assert_eq!(p.client_id.as_deref(), Some("a"));
        assert_eq!(p.state, None);
        assert_eq!(p.repeated, Some("scope"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; jwks_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn scopes_of_openid_connect_are_open_to_every_client_and_others_checked() {
        assert_eq!(
            scope(Some("openid email openid"), None)
                .ok()
                .flatten()
                .as_deref(),
            Some("openid email")
        );
        assert!(scope(Some("bad\\"), None).is_err());
        assert_eq!(scope(None, None).ok().flatten(), None);
    }

    #[test]
    fn unregistered_redirect_uris_are_absolute_http_uris_that_can_be_a_location() {
        for good in [
            "http://127.0.0.1:3000/cb?x=1",
            "HTTPS://app.example/a/b;c=d?e=f/g?h",
            "http://[::1]:8080/cb",
            "http://[::ffff:127.0.0.1]/",
            "http://a%20b.example",
            "http://localhost",
        ] {
            assert!(is_web_uri(good), "{good}");
        }
        for bad in [
            "com.example.app:/cb",
            "http://",
            "http:///cb",
            "http://a/cb#frag",
            "http://a/b c",
            "http://é.example/",
            "http://a]b/",
            "http://[::1/",
            "http://[v1.x]/",
            "http://a/[b]",
            "http://user@a/",
            "http://a:/",
            "http://a:65536/",
            "http://a:8x/",
            "http://a/%zz",
        ] {
            assert!(!is_web_uri(bad), "{bad}");
        }
    }

    #[test]
    fn answers_keep_the_redirect_uris_own_query() {
        let r = redirect_to("https://app/cb?x=1", &[("code", "c d")]);
        assert_eq!(r.headers()[header::LOCATION], "https://app/cb?x=1&code=c+d");
        let r = redirect_to("https://app/cb", &[("state", "s")]);
        assert_eq!(r.headers()[header::LOCATION], "https://app/cb?state=s");
    }
}
