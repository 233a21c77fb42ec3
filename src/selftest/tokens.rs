//! Tokens the server issues, checked with the self-test's own verifier against the JWKS
//! it publishes: a normal token (from the discovered `token_endpoint` with
//! `client_credentials`, RFC 6749 §4.4, else `POST /auth`), the `?expired=true` token of
//! `/auth`, and each negative-test token listed at `GET /token/test-cases`.

use std::time::Duration;

use hyper::StatusCode;
use hyper::header;
use serde_json::Value;

use super::client::{Fetched, HttpClient};
use super::jwks::KeyRing;
use super::jwt::{self, Expect, Rejection};
use super::{Check, Target, now_secs, shown};

/// The `client_id` the self-test presents (RFC 6749 §2.3.1); an open test issuer gives
/// any unregistered client a token.
const CLIENT_ID: &str = "jwks-server-selftest";
/// The most negative-test cases run, however many are listed.
const MAX_TEST_CASES: usize = 64;
/// The longest wait honoured from a 429's `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// What the token checks need.
#[derive(Debug)]
pub(super) struct Context<'a> {
    /// The HTTP client.
    pub(super) client: &'a HttpClient,
    /// The server.
    pub(super) target: &'a Target,
    /// The published keys.
    pub(super) ring: &'a KeyRing,
    /// The `iss` every token must carry: discovery's `issuer`, else the target's.
    pub(super) issuer: &'a str,
    /// Discovery's `token_endpoint`, if advertised.
    pub(super) token_endpoint: Option<String>,
}

/// What the normal token check found, for the negative-test cases.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Good {
    /// A token verified; its `aud`, which negative-test tokens are compared against.
    Verified { audience: Option<String> },
    /// Tokens need credentials the self-test does not have (`--auth users`).
    NeedsCredentials,
    /// No token was obtained, or it did not verify.
    Missing,
}

/// Appends the token checks.
pub(super) async fn check(context: &Context<'_>, checks: &mut Vec<Check>) {
    let good = normal_token(context, checks).await;
    checks.push(expired_token(context).await);
    test_cases(context, &good, checks).await;
}

/// POSTs `form`, once more after a 429's `Retry-After` (at most [`MAX_RETRY_AFTER`]):
/// the self-test sends a burst that a rate limit may meet.
async fn post(client: &HttpClient, url: &str, form: &[(&str, &str)]) -> Result<Fetched, String> {
    let first = client
        .post_form(url, form)
        .await
        .map_err(|e| e.to_string())?;
    if first.status != StatusCode::TOO_MANY_REQUESTS {
        return Ok(first);
    }
    let wait = first
        .header(header::RETRY_AFTER)
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .min(MAX_RETRY_AFTER);
    tokio::time::sleep(wait).await;
    client.post_form(url, form).await.map_err(|e| e.to_string())
}

/// The token member of a 200 answer: `access_token` (RFC 6749 §5.1), else `token`.
fn token_of(response: &Fetched) -> Result<String, String> {
    let body: Value =
        serde_json::from_slice(&response.body).map_err(|_| "the answer is not JSON".to_owned())?;
    ["access_token", "token"]
        .into_iter()
        .find_map(|name| body.get(name).and_then(Value::as_str))
        .map(str::to_owned)
        .ok_or_else(|| "the answer has no string access_token or token".to_owned())
}

/// `answered 401 invalid_client`: the status and the error code (RFC 6749 §5.2), if any.
fn answered(response: &Fetched) -> String {
    let code = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|body| body.get("error").and_then(Value::as_str).map(shown));
    match code {
        Some(code) => format!("answered {} {code}", response.status),
        None => format!("answered {}", response.status),
    }
}

fn reasons(rejections: &[Rejection]) -> String {
    rejections
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where tokens come from: the token endpoint (RFC 9068 access tokens, `typ: at+jwt`)
/// or `/auth`.
fn token_source(context: &Context<'_>) -> (String, &'static str, Option<&'static str>) {
    match &context.token_endpoint {
        Some(url) => (url.clone(), "token_endpoint", Some("at+jwt")),
        None => (context.target.url("/auth"), "POST /auth", None),
    }
}

/// A normal token verifies against the JWKS by its kid.
async fn normal_token(context: &Context<'_>, checks: &mut Vec<Check>) -> Good {
    const NAME: &str = "token verifies";
    let (url, source, typ) = token_source(context);
    if url.starts_with("https://") {
        checks.push(Check::warn(
            NAME,
            format!(
                "{source} {} not used: https:// is not supported yet",
                shown(&url)
            ),
        ));
        return Good::Missing;
    }
    let form: &[(&str, &str)] = if typ.is_some() {
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
        ]
    } else {
        &[]
    };
    let response = match post(context.client, &url, form).await {
        Ok(response) => response,
        Err(error) => {
            checks.push(Check::fail(NAME, format!("{source}: {error}")));
            return Good::Missing;
        }
    };
    match response.status {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED if typ.is_none() => {
            checks.push(Check::skip(
                NAME,
                format!(
                    "no token_endpoint in discovery and {source} {}",
                    answered(&response)
                ),
            ));
            return Good::Missing;
        }
        StatusCode::UNAUTHORIZED => {
            checks.push(Check::warn(
                NAME,
                format!(
                    "{source} {}: tokens need credentials; not checked",
                    answered(&response)
                ),
            ));
            return Good::NeedsCredentials;
        }
        _ => {
            checks.push(Check::fail(
                NAME,
                format!("{source} {}", answered(&response)),
            ));
            return Good::Missing;
        }
    }
    let token = match token_of(&response) {
        Ok(token) => token,
        Err(detail) => {
            checks.push(Check::fail(NAME, format!("{source}: {detail}")));
            return Good::Missing;
        }
    };
    let expect = Expect {
        issuer: Some(context.issuer),
        audience: None,
        typ,
        now: now_secs(),
    };
    match jwt::verify(&token, context.ring, &expect) {
        Ok(verified) => {
            checks.push(Check::pass(
                NAME,
                format!(
                    "from {source}: kid {} ({}), claims {}",
                    shown(verified.token.kid().unwrap_or_default()),
                    verified.alg,
                    verified.token.claim_names()
                ),
            ));
            let audience = match verified.token.claims.get("aud") {
                Some(Value::String(aud)) => Some(aud.clone()),
                Some(Value::Array(auds)) => auds.first().and_then(Value::as_str).map(str::to_owned),
                _ => None,
            };
            Good::Verified { audience }
        }
        Err(rejections) => {
            let kid = jwt::parse(&token)
                .ok()
                .and_then(|p| p.kid().map(shown))
                .unwrap_or_else(|| "(none)".into());
            checks.push(Check::fail(
                NAME,
                format!("from {source}: kid {kid}: {}", reasons(&rejections)),
            ));
            Good::Missing
        }
    }
}

/// `POST /auth?expired=true`: a token signed by an expired key, so its kid is absent
/// from the JWKS and its `exp` is past; a correct verifier rejects it.
async fn expired_token(context: &Context<'_>) -> Check {
    const NAME: &str = "expired token";
    let url = context.target.url("/auth?expired=true");
    let response = match post(context.client, &url, &[]).await {
        Ok(response) => response,
        Err(error) => return Check::fail(NAME, error),
    };
    match response.status {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            return Check::skip(
                NAME,
                format!("POST /auth?expired=true {}", answered(&response)),
            );
        }
        StatusCode::UNAUTHORIZED => {
            return Check::warn(
                NAME,
                format!(
                    "POST /auth?expired=true {}: tokens need credentials; not checked",
                    answered(&response)
                ),
            );
        }
        _ => {
            return Check::fail(
                NAME,
                format!("POST /auth?expired=true {}", answered(&response)),
            );
        }
    }
    let parsed = match token_of(&response).and_then(|t| jwt::parse(&t).map_err(|r| r.to_string())) {
        Ok(parsed) => parsed,
        Err(detail) => return Check::fail(NAME, detail),
    };
    let Some(kid) = parsed.kid() else {
        return Check::fail(NAME, "the token has no kid");
    };
    let now = now_secs();
    if context.ring.publishes(kid) {
        return Check::fail(
            NAME,
            format!(
                "kid {} is published: the expired key is still in the JWKS",
                shown(kid)
            ),
        );
    }
    match parsed.seconds("exp") {
        Some(exp) if exp < now => Check::pass(
            NAME,
            format!(
                "kid {} is not in the JWKS; exp {}s ago",
                shown(kid),
                now - exp
            ),
        ),
        Some(exp) => Check::fail(NAME, format!("exp is {}s in the future", exp - now)),
        None => Check::fail(NAME, "no numeric exp claim"),
    }
}

/// Whether `reason` is the one the test case `name` is defined by (the names of
/// `GET /token/test-cases`); `None` for a name this self-test does not know.
fn is_reason_of(name: &str, reason: &Rejection) -> Option<bool> {
    Some(match name {
        "expired" => matches!(reason, Rejection::Expired),
        "not_yet_valid" => matches!(reason, Rejection::NotYetValid),
        "unknown_kid" => matches!(reason, Rejection::UnknownKid(_)),
        "bad_signature" => matches!(reason, Rejection::BadSignature),
        "wrong_issuer" => matches!(reason, Rejection::WrongIssuer(_)),
        "wrong_audience" => matches!(reason, Rejection::WrongAudience),
        "alg_none" => matches!(reason, Rejection::Unsecured),
        "hs256_key_confusion" => matches!(reason, Rejection::AlgNotOfKey { .. }),
        "wrong_typ" => matches!(reason, Rejection::WrongTyp(_)),
        _ => return None,
    })
}

/// The `name: description` lines of `GET /token/test-cases`, bounded.
fn parse_test_cases(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the list is not UTF-8".to_owned())?;
    let mut cases = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (name, description) = line.split_once(':').unwrap_or((line, ""));
        let name = name.trim();
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!(
                "a line is not `name: description`: {}",
                shown(line)
            ));
        }
        cases.push((name.to_owned(), description.trim().to_owned()));
    }
    if cases.len() > MAX_TEST_CASES {
        return Err(format!("more than {MAX_TEST_CASES} cases listed"));
    }
    Ok(cases)
}

/// Each negative-test token must be rejected by the verifier for its stated reason, and
/// for no other.
async fn test_cases(context: &Context<'_>, good: &Good, checks: &mut Vec<Check>) {
    if *good == Good::NeedsCredentials {
        checks.push(Check::skip(
            "test cases",
            "tokens need credentials: negative-test tokens not requested",
        ));
        return;
    }
    let audience = match good {
        Good::Verified { audience } => audience.as_deref(),
        Good::NeedsCredentials | Good::Missing => None,
    };
    let list_url = context.target.url("/token/test-cases");
    let response = match context.client.get(&list_url, &[]).await {
        Ok(response) => response,
        Err(error) => {
            checks.push(Check::fail("test cases", error.to_string()));
            return;
        }
    };
    if response.status != StatusCode::OK {
        checks.push(Check::skip(
            "test cases",
            format!(
                "GET /token/test-cases answered {}: no negative-test tokens to check",
                response.status
            ),
        ));
        return;
    }
    let cases = match parse_test_cases(&response.body) {
        Ok(cases) if cases.is_empty() => {
            checks.push(Check::warn(
                "test cases",
                "GET /token/test-cases lists none",
            ));
            return;
        }
        Ok(cases) => cases,
        Err(detail) => {
            checks.push(Check::fail("test cases", detail));
            return;
        }
    };
    let endpoint = context
        .token_endpoint
        .clone()
        .unwrap_or_else(|| context.target.url("/token"));
    for (name, description) in cases {
        let check = test_case(context, &endpoint, &name, &description, audience).await;
        checks.push(check);
    }
}

async fn test_case(
    context: &Context<'_>,
    endpoint: &str,
    name: &str,
    description: &str,
    audience: Option<&str>,
) -> Check {
    let line = format!("test case {name}");
    if name == "wrong_audience" && audience.is_none() {
        return Check::skip(line, "no valid token's aud to compare with");
    }
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("test_case", name),
    ];
    let response = match post(context.client, endpoint, &form).await {
        Ok(response) if response.status == StatusCode::OK => response,
        Ok(response) => {
            return Check::fail(line, format!("POST token_endpoint {}", answered(&response)));
        }
        Err(error) => return Check::fail(line, error),
    };
    let token = match token_of(&response) {
        Ok(token) => token,
        Err(detail) => return Check::fail(line, detail),
    };
    let expect = Expect {
        issuer: Some(context.issuer),
        audience,
        typ: Some("at+jwt"),
        now: now_secs(),
    };
    let rejections = match jwt::verify(&token, context.ring, &expect) {
        Ok(_) => return Check::fail(line, "accepted: a verifier would take this token"),
        Err(rejections) => rejections,
    };
    let text = reasons(&rejections);
    match rejections.as_slice() {
        [only] => match is_reason_of(name, only) {
            Some(true) => Check::pass(line, format!("rejected: {text}")),
            Some(false) => Check::fail(line, format!("rejected for another reason: {text}")),
            None => Check::pass(
                line,
                format!(
                    "rejected: {text} (case not known here: {})",
                    shown(description)
                ),
            ),
        },
        _ => match is_reason_of(name, &rejections[0]) {
            None => Check::pass(
                line,
                format!(
                    "rejected: {text} (case not known here: {})",
                    shown(description)
                ),
            ),
            Some(_) => Check::fail(line, format!("rejected for more than its reason: {text}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_case_list_is_name_colon_description_lines() {
        let cases =
            parse_test_cases(b"expired: exp is past\nalg_none: unsigned\n\n").expect("parses");
        assert_eq!(
            cases,
            [
                ("expired".to_owned(), "exp is past".to_owned()),
                ("alg_none".to_owned(), "unsigned".to_owned())
            ]
        );
        assert!(parse_test_cases(b"<html>\n").is_err());
        assert!(parse_test_cases(&b"x: y\n".repeat(65)).is_err());
        assert!(parse_test_cases(&[0xff]).is_err());
    }

    #[test]
    fn every_known_case_has_exactly_one_reason() {
        let all = [
            Rejection::Expired,
            Rejection::NotYetValid,
            Rejection::UnknownKid("k".into()),
            Rejection::BadSignature,
            Rejection::WrongIssuer("i".into()),
            Rejection::WrongAudience,
            Rejection::Unsecured,
            Rejection::AlgNotOfKey {
                alg: "HS256".into(),
                key_alg: "RS256",
            },
            Rejection::WrongTyp("JWT".into()),
        ];
        for name in [
            "expired",
            "not_yet_valid",
            "unknown_kid",
            "bad_signature",
            "wrong_issuer",
            "wrong_audience",
            "alg_none",
            "hs256_key_confusion",
            "wrong_typ",
        ] {
            let matching = all
                .iter()
                .filter(|r| is_reason_of(name, r) == Some(true))
                .count();
            assert_eq!(matching, 1, "{name}");
        }
        assert_eq!(is_reason_of("new_case", &Rejection::Expired), None);
    }
}
