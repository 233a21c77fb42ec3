//! `POST /token`, the OAuth 2.0 token endpoint (RFC 6749 §3.2, §4.3, §4.4, §5) issuing
//! RFC 9068 access tokens, and `GET /token/test-cases`. Clients come from the in-memory
//! registry and the key from the in-memory key set: a `client_credentials` request
//! never touches the database.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::body::read_body;
use super::discovery::ALLOW_ANY_ORIGIN;
use super::error::ApiError;
use super::json::JsonObject;
use super::limit::{ClientIp, retry_after_secs};
use super::oauth::{Caller, Params, authenticate_client, no_store};
use super::state::AppState;
use crate::clients::{GrantType, check_claims, is_scope_token};
use crate::ratelimit::Decision;
use crate::signin::{Redemption, SignInError, has_scope, pkce_matches};
use crate::token::{AccessGrant, IdGrant, TestCase, WRONG_AUDIENCE};
use crate::users::{AuthMode, AuthOutcome, Password};

/// `aud` when neither the request, the client nor `--audience` names one: an access
/// token always has an audience (RFC 9068 §2.2).
pub const DEFAULT_AUDIENCE: &str = "jwks-server";

/// Longest username accepted, in characters (as `openapi.json`'s `maxLength` counts
/// them), as at `/auth`.
const MAX_USERNAME_CHARS: usize = 256;

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct AccessTokenResponse {
    /// The RFC 9068 JWT.
    pub access_token: String,
    /// Always `Bearer` (RFC 6750).
    pub token_type: &'static str,
    /// Seconds until `exp`.
    pub expires_in: i64,
    /// The granted scope; absent when none was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Which negative-test token this is, for `test_case` requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_case: Option<&'static str>,
    /// The OpenID Connect ID token, for an authorization code granted `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// `POST /token`: a token, or an RFC 6749 §5.2 error; no-store either way.
pub(super) async fn token_grant(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    request: Request,
) -> Response {
    let mut response = no_store(grant(&state, client_ip, request).await);
    // Browser apps redeem their codes here (CORS; no credentials, so any origin).
    response
        .headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW_ANY_ORIGIN);
    response
}

/// A CORS preflight of `/token`.
pub(super) async fn token_preflight() -> Response {
    super::discovery::preflight("POST, OPTIONS", "authorization, content-type")
}

/// # Errors
/// The RFC 6749 §5.2 codes, as [`ApiError`] variants; 429 past `--token-rate-limit`.
async fn grant(
    state: &AppState,
    client_ip: Option<std::net::IpAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    // Before the body is read: a limited request costs no parsing.
    if let (Some(limiter), Some(ip)) = (&state.token_limiter, client_ip)
        && let Decision::Limited { retry_after } = limiter.check(ip, Instant::now())
    {
        state.requests.token_limited();
        return Err(ApiError::RateLimited {
            retry_after_secs: retry_after_secs(retry_after),
        });
    }
    let (parts, body) = request.into_parts();
    let bytes = read_body(&parts.headers, body, state.body_timeout).await?;
    let params = Params::parse(&parts.headers, &bytes)?;
    // RFC 6749 §4.3.2, §4.4.2: grant_type is REQUIRED; a missing one is a malformed
    // request, an unknown one `unsupported_grant_type` (§5.2).
    let grant_name = params
        .grant_type
        .as_deref()
        .ok_or_else(|| ApiError::InvalidRequest("grant_type is required".into()))?;
    let grant = GrantType::parse(grant_name).ok_or_else(|| {
        ApiError::UnsupportedGrantType(format!(
            "grant type '{grant_name}' is not supported; use client_credentials, password or authorization_code"
        ))
    })?;
    let client = authenticate_client(state, &parts.headers, &params)?;
    let (client_id, registered) = (client.id(), client.registered());
    // RFC 6749 §5.2 unauthorized_client: a registered client limited to other grants.
    if let Some(c) = registered
        && !c.grant_types.contains(&grant)
    {
        return Err(ApiError::UnauthorizedClient(format!(
            "client '{client_id}' may not use the {} grant",
            grant.as_str()
        )));
    }
    if grant == GrantType::AuthorizationCode {
        return code_grant(state, &params, &client).await;
    }
    let open = state.clients.mode() == AuthMode::Open;
    let test_case = match params.test_case.as_deref() {
        None => None,
        Some(_) if !open => {
            return Err(ApiError::InvalidRequest(
                "negative-test tokens are off in --auth users".into(),
            ));
        }
        Some(name) => Some(TestCase::parse(name).ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "unknown test_case '{name}'; GET /token/test-cases lists them"
            ))
        })?),
    };
    let scope = granted_scope(
        params.scope.as_deref(),
        registered.map(|c| c.scopes.as_slice()),
    )?;
    let audience = audience(
        state,
        &params,
        registered.and_then(|c| c.audience.as_deref()),
    )?;
    let extra = extra_claims(open, &params, registered.map(|c| &c.claims))?;

    let subject = match grant {
        // RFC 6749 §4.4 / RFC 9068 §2.2: the client acts on its own behalf.
        GrantType::ClientCredentials => client_id.to_owned(),
        // RFC 6749 §4.3.2: the resource owner's credentials, checked like `/auth`.
        GrantType::Password => password_subject(state, &params, client_ip).await?,
        GrantType::AuthorizationCode => return code_grant(state, &params, &client).await,
    };

    let now = state.clock.now();
    let set = state.keys.load();
    let key = set
        .at(now)
        .active
        .as_ref()
        .ok_or(ApiError::Unavailable("no active signing key"))?;
    let access = AccessGrant {
        sub: &subject,
        client_id,
        aud: audience,
        scope: scope.as_deref(),
        extra: extra.as_ref(),
    };
    let issued = match test_case {
        None => state.issuer.issue_access(key, &access, now)?,
        Some(case) => {
            let unpublished = state.unpublished.get(key.algorithm()).await?;
            let issued = state
                .issuer
                .issue_test_case(case, key, &unpublished, &access, now)?;
            let index = TestCase::ALL.iter().position(|c| *c == case).unwrap_or(0);
            let count = state.test_case_counts[index].fetch_add(1, Ordering::Relaxed) + 1;
            tracing::info!(
                test_case = case.name(),
                client_id,
                count,
                "issued a negative-test token (not a valid token)"
            );
            issued
        }
    };
    state
        .requests
        .oauth_token(matches!(grant, GrantType::Password), test_case.is_some());
    let answer = AccessTokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope,
        test_case: test_case.map(TestCase::name),
        id_token: None,
    };
    Ok(json_response(&answer))
}

impl AccessTokenResponse {
    /// The JSON body: the bytes `serde_json` writes for this type, without its escaper's
    /// pass over the tokens ([`JsonObject`]).
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        // Sized once for the tokens: a growing buffer would copy them several times.
        let capacity = self.access_token.len() + self.id_token.as_ref().map_or(0, String::len);
        let mut object = JsonObject::with_capacity(capacity + 160);
        object.string("access_token", &self.access_token);
        object.string("token_type", self.token_type);
        object.integer("expires_in", self.expires_in);
        if let Some(scope) = &self.scope {
            object.string("scope", scope);
        }
        if let Some(test_case) = self.test_case {
            object.string("test_case", test_case);
        }
        if let Some(id_token) = &self.id_token {
            object.string("id_token", id_token);
        }
        object.finish()
    }
}

fn json_response(answer: &AccessTokenResponse) -> Response {
    let mut response = Response::new(axum::body::Body::from(answer.to_json()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.5, OpenID Connect Core
/// §3.1.3): the code is redeemed once (at any replica), and only by the client it was
/// issued to, with the same redirect URI and the PKCE verifier of its challenge.
async fn code_grant(
    state: &AppState,
    params: &Params<'_>,
    client: &Caller,
) -> Result<Response, ApiError> {
    if params.test_case.is_some() || params.claims.is_some() {
        return Err(ApiError::InvalidRequest(
            "test_case and claims do not apply to the authorization code grant (extra claims are typed on the sign-in page)"
                .into(),
        ));
    }
    let code = params
        .code
        .as_deref()
        .ok_or_else(|| ApiError::InvalidRequest("code is required (RFC 6749 §4.1.3)".into()))?;
    let now = state.clock.now();
    let invalid = || {
        ApiError::InvalidGrant(
            "the authorization code is invalid, expired, already used, or was issued to another client".into(),
        )
    };
    let unavailable = |e: SignInError| {
        tracing::warn!(error = &e as &dyn std::error::Error, "cannot redeem a code");
        ApiError::Unavailable("the sign-in database is unreachable; try again shortly")
    };
    // Taken before it is checked: a code presented with the wrong client, redirect URI
    // or verifier is spent, so it cannot be tried again (RFC 6749 §10.5).
    let grant = match state.signin.redeem(code, now).await.map_err(unavailable)? {
        Redemption::Granted(grant) => grant,
        Redemption::Replayed => {
            // RFC 6749 §4.1.2, §10.5: a code used twice is refused, and the access token
            // it bought is revoked (at /introspect and /userinfo: it is a JWT).
            tracing::warn!(
                client_id = client.id(),
                "an authorization code was used twice; the access token it bought is revoked"
            );
            return Err(invalid());
        }
        Redemption::Unknown => return Err(invalid()),
    };
    let request = &grant.request;
    if request.client_id != client.id() {
        return Err(invalid());
    }
    // RFC 6749 §4.1.3: required and equal when the authorization request had it.
    match params.redirect_uri.as_deref() {
        Some(uri) if uri == request.redirect_uri => {}
        None if !request.redirect_uri_given => {}
        _ => {
            return Err(ApiError::InvalidGrant(
                "redirect_uri must be the one of the authorization request".into(),
            ));
        }
    }
    // RFC 7636 §4.6.
    match (&request.code_challenge, params.code_verifier.as_deref()) {
        (None, None) => {}
        (Some(challenge), Some(verifier)) if pkce_matches(challenge, verifier) => {}
        (Some(_), None) => {
            return Err(ApiError::InvalidGrant(
                "code_verifier is required: the authorization request sent a code_challenge".into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidGrant(
                "code_verifier does not match the code_challenge (RFC 7636 §4.6)".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::InvalidGrant(
                "code_verifier given, but the authorization request sent no code_challenge".into(),
            ));
        }
    }
    let identity = &grant.identity;
    let scope = request.scope.as_deref();
    // The user's claims the scopes allow (OpenID Connect Core §5.4), then the extra ones.
    let mut user = Map::new();
    if has_scope(scope, "profile") {
        user.insert(
            "preferred_username".into(),
            Value::from(identity.sub.as_str()),
        );
    }
    if has_scope(scope, "email")
        && let Some(email) = &identity.email
    {
        user.insert("email".into(), Value::from(email.as_str()));
        // Nothing here proves that the person owns the address.
        user.insert("email_verified".into(), Value::Bool(false));
    }
    user.extend(identity.claims.clone());
    let registered = client.registered();
    let mut extra = registered.map(|c| c.claims.clone()).unwrap_or_default();
    extra.extend(user.clone());
    extra.insert("auth_time".into(), Value::from(identity.auth_time));
    let audience = audience(
        state,
        params,
        registered.and_then(|c| c.audience.as_deref()),
    )?;
    let set = state.keys.load();
    let key = set
        .at(now)
        .active
        .as_ref()
        .ok_or(ApiError::Unavailable("no active signing key"))?;
    let access = state.issuer.issue_access(
        key,
        &AccessGrant {
            sub: &identity.sub,
            client_id: client.id(),
            aud: audience,
            scope,
            extra: Some(&extra),
        },
        now,
    )?;
    // Remembered for as long as the token is accepted, so that a second use of the code
    // revokes it. A concurrent second use that lands before this write is refused
    // without revoking (the window is the signing time).
    if let Some(jti) = &access.jti {
        let accepted_until =
            (now.div_euclid(1000) + access.expires_in + state.clock_skew_secs).saturating_mul(1000);
        if let Err(error) = state.signin.spend(code, jti, accepted_until, now).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cannot record a redeemed code: a second use of it will not revoke its token"
            );
        }
    }
    let id_token = if request.wants_openid() {
        let id = state.issuer.issue_id_token(
            key,
            &IdGrant {
                sub: &identity.sub,
                client_id: client.id(),
                auth_time: identity.auth_time,
                nonce: request.nonce.as_deref(),
                access_token: &access.token,
                claims: &user,
            },
            now,
        )?;
        Some(id.token)
    } else {
        None
    };
    state.requests.code_token();
    Ok(json_response(&AccessTokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        scope: request.scope.clone(),
        test_case: None,
        id_token,
    }))
}

/// RFC 6749 §3.3: the granted scope. A registered client may ask only for its allowed
/// scopes, and asking none grants them all; an unregistered one (open mode) gets what it
/// asks for.
fn granted_scope(
    requested: Option<&str>,
    allowed: Option<&[String]>,
) -> Result<Option<String>, ApiError> {
    let mut granted: Vec<&str> = Vec::new();
    for token in requested.unwrap_or("").split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(ApiError::InvalidScope(format!(
                "'{token}' is not a valid scope (RFC 6749 §3.3)"
            )));
        }
        if let Some(allowed) = allowed
            && !allowed.iter().any(|a| a == token)
        {
            return Err(ApiError::InvalidScope(format!(
                "scope '{token}' is not allowed for this client"
            )));
        }
        if !granted.contains(&token) {
            granted.push(token);
        }
    }
    if requested.is_none()
        && let Some(allowed) = allowed
    {
        granted = allowed.iter().map(String::as_str).collect();
    }
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

/// `aud`: the `audience` parameter or RFC 8707 `resource`, else the client's default,
/// else `--audience`, else [`DEFAULT_AUDIENCE`].
fn audience<'a>(
    state: &'a AppState,
    params: &'a Params<'_>,
    client_default: Option<&'a str>,
) -> Result<&'a str, ApiError> {
    let requested = match (params.audience.as_deref(), params.resource.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "give either audience or resource, not both".into(),
            ));
        }
        (Some(audience), None) => Some(audience),
        (None, Some(resource)) => {
            // RFC 8707 §2: an absolute URI without a fragment.
            let absolute = resource.split_once(':').is_some_and(|(scheme, rest)| {
                !rest.is_empty()
                    && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            });
            if !absolute || resource.contains('#') {
                return Err(ApiError::InvalidTarget(format!(
                    "resource '{resource}' must be an absolute URI without a fragment (RFC 8707 §2)"
                )));
            }
            Some(resource)
        }
        (None, None) => None,
    };
    if requested == Some(WRONG_AUDIENCE) {
        return Err(ApiError::InvalidTarget(
            "that audience is reserved for the wrong_audience test case".into(),
        ));
    }
    Ok(requested
        .or(client_default)
        .or(state.issuer.audience())
        .unwrap_or(DEFAULT_AUDIENCE))
}

/// The client's fixed claims, then (open mode only) the `claims` parameter over them.
fn extra_claims(
    open: bool,
    params: &Params<'_>,
    fixed: Option<&Map<String, Value>>,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let requested = match params.claims.as_deref() {
        None => None,
        Some(_) if !open => {
            return Err(ApiError::InvalidRequest(
                "the claims parameter is accepted in --auth open only".into(),
            ));
        }
        Some(json) => {
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
                return Err(ApiError::InvalidRequest(
                    "claims must be a JSON object".into(),
                ));
            };
            check_claims(&map).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
            Some(map)
        }
    };
    Ok(match (fixed.filter(|f| !f.is_empty()), requested) {
        (None, None) => None,
        (Some(fixed), None) => Some(fixed.clone()),
        (None, Some(requested)) => Some(requested),
        (Some(fixed), Some(requested)) => {
            let mut merged = fixed.clone();
            merged.extend(requested);
            Some(merged)
        }
    })
}

/// The resource owner of a `password` grant, with the rules, audit rows and rate limit
/// of `/auth`.
async fn password_subject(
    state: &AppState,
    params: &Params<'_>,
    client_ip: Option<std::net::IpAddr>,
) -> Result<String, ApiError> {
    let (Some(username), Some(password)) = (params.username.as_deref(), params.password.as_deref())
    else {
        return Err(ApiError::InvalidRequest(
            "the password grant needs username and password (RFC 6749 §4.3.2)".into(),
        ));
    };
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(ApiError::InvalidRequest(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters"
        )));
    }
    if let (Some(limiter), Some(ip)) = (&state.password_limiter, client_ip)
        && let Decision::Limited { retry_after } = limiter.check(ip, Instant::now())
    {
        return Err(ApiError::RateLimited {
            retry_after_secs: retry_after_secs(retry_after),
        });
    }
    match state
        .users
        .authenticate(
            Some(username),
            Some(Password::new(password.to_owned())),
            client_ip,
        )
        .await?
    {
        AuthOutcome::Granted { subject, .. } => Ok(subject),
        // RFC 6749 §5.2 invalid_grant: the resource owner credentials are invalid.
        AuthOutcome::Denied(_) => Err(ApiError::InvalidGrant(
            "invalid username or password".into(),
        )),
    }
}

/// `GET /token/test-cases`: one line per negative-test case, `name: what is wrong`.
pub(super) async fn token_test_cases() -> Response {
    let mut text = String::new();
    for case in TestCase::ALL {
        text.push_str(case.name());
        text.push_str(": ");
        text.push_str(case.description());
        text.push('\n');
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_response_is_the_json_serde_writes() {
        let mut answer = AccessTokenResponse {
            access_token: "eyJ0eXAiOiJhdCtqd3QifQ.eyJzdWIiOiJzdmMifQ.c2ln".into(),
            token_type: "Bearer",
            expires_in: 900,
            scope: None,
            test_case: None,
            id_token: None,
        };
        let same = |a: &AccessTokenResponse| {
            assert_eq!(
                String::from_utf8(a.to_json()).expect("utf-8"),
                serde_json::to_string(a).expect("json")
            );
        };
        same(&answer);
        answer.scope = Some("read \"write\"".into());
        answer.test_case = Some("expired");
        answer.id_token = Some("a.b.c".into());
        answer.expires_in = 0;
        same(&answer);
    }

    #[test]
    fn scopes_are_checked_against_what_the_client_may_ask() {
        let allowed = ["read".to_owned(), "write".to_owned()];
        assert_eq!(
            granted_scope(None, Some(&allowed)).expect("ok").as_deref(),
            Some("read write")
        );
        assert_eq!(
            granted_scope(Some("write read write"), Some(&allowed))
                .expect("ok")
                .as_deref(),
            Some("write read")
        );
        assert!(matches!(
            granted_scope(Some("admin"), Some(&allowed)),
            Err(ApiError::InvalidScope(_))
        ));
        assert_eq!(granted_scope(None, Some(&[])).expect("ok"), None);
        assert_eq!(
            granted_scope(Some("anything"), None)
                .expect("ok")
                .as_deref(),
            Some("anything")
        );
        assert!(matches!(
            granted_scope(Some("bad\\scope"), None),
            Err(ApiError::InvalidScope(_))
        ));
        assert_eq!(granted_scope(None, None).expect("ok"), None);
    }
}
