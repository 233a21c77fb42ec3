//! The documents a verifier fetches before any token: discovery (RFC 8414 §3, OpenID
//! Connect Discovery 1.0 §4) when served, then the JWK Set from its `jwks_uri` or the
//! well-known paths, and the caching a verifier relies on (`Cache-Control`, `ETag`, 304
//! on `If-None-Match`, RFC 9111 §5.2 and RFC 9110 §13.1.2).

use hyper::StatusCode;
use hyper::header;
use serde_json::{Map, Value};

use super::client::{Fetched, HttpClient};
use super::jwks::{self, KeyRing};
use super::{Check, SelftestError, Target, shown};

/// Where discovery is looked for: the issuer URL plus this suffix (OpenID Connect
/// Discovery §4; RFC 8414 §3 puts it before the path, which is the same for a bare host).
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Where the JWKS is looked for without discovery, in order.
const JWKS_PATHS: [&str; 2] = ["/.well-known/jwks.json", "/jwks"];

/// What discovery names (RFC 8414 §2).
#[derive(Debug, Clone, Default)]
pub(super) struct Discovery {
    /// `issuer`.
    pub(super) issuer: Option<String>,
    /// `token_endpoint`.
    pub(super) token_endpoint: Option<String>,
}

/// What the document checks found.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// The discovery document, when served.
    pub(super) discovery: Option<Discovery>,
    /// The keys, when a JWK Set was fetched and had the right shape.
    pub(super) ring: Option<KeyRing>,
}

/// Checks discovery, the JWK Set and its caching, appending one line per check.
///
/// # Errors
/// [`SelftestError::Unreachable`] when the first request (discovery) gets no answer.
pub(super) async fn check(
    client: &HttpClient,
    target: &Target,
    checks: &mut Vec<Check>,
) -> Result<Found, SelftestError> {
    let response = client
        .get(&target.url(DISCOVERY_PATH), &[])
        .await
        .map_err(SelftestError::Unreachable)?;
    let mut found = Found::default();
    let mut jwks = None;
    match response.status {
        StatusCode::OK => match serde_json::from_slice::<Value>(&response.body) {
            Ok(Value::Object(document)) => {
                checks.push(Check::pass(
                    "discovery",
                    format!("served at {DISCOVERY_PATH}"),
                ));
                checks.push(issuer(&document, target));
                let (check, fetched) = jwks_uri(client, &document).await;
                checks.push(check);
                jwks = fetched;
                found.discovery = Some(Discovery {
                    issuer: string(&document, "issuer"),
                    token_endpoint: string(&document, "token_endpoint"),
                });
            }
            _ => checks.push(Check::fail(
                "discovery",
                format!("{DISCOVERY_PATH} is not a JSON object (RFC 8414 §3.2)"),
            )),
        },
        StatusCode::NOT_FOUND => checks.push(Check::skip(
            "discovery",
            format!(
                "not served (404); JWKS looked up at {}",
                JWKS_PATHS.join(", then ")
            ),
        )),
        status => checks.push(Check::fail(
            "discovery",
            format!("{DISCOVERY_PATH} answered {status}"),
        )),
    }
    let (url, response) = match jwks {
        Some(fetched) => fetched,
        None => match well_known_jwks(client, target).await {
            Ok(fetched) => fetched,
            Err(detail) => {
                checks.push(Check::fail("jwks fetch", detail));
                return Ok(found);
            }
        },
    };
    checks.push(Check::pass(
        "jwks fetch",
        format!("{} ({} bytes)", shown(&url), response.body.len()),
    ));
    let (document_checks, ring) = jwks::check_document(&response.body);
    checks.extend(document_checks);
    caching(client, &url, &response, checks).await;
    found.ring = ring;
    Ok(found)
}

fn string(document: &Map<String, Value>, name: &str) -> Option<String> {
    document
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// RFC 8414 §3.3, OpenID Connect Discovery §4.3: the `issuer` is the URL the client was
/// given, byte for byte; a client must refuse any other.
fn issuer(document: &Map<String, Value>, target: &Target) -> Check {
    match document.get("issuer").and_then(Value::as_str) {
        Some(issuer) if issuer == target.issuer => {
            Check::pass("discovery issuer", format!("\"{}\"", shown(issuer)))
        }
        Some(issuer) => {
            let slash = issuer.trim_end_matches('/') == target.issuer.trim_end_matches('/');
            Check::fail(
                "discovery issuer",
                format!(
                    "\"{}\" is not \"{}\"{} (RFC 8414 §3.3: byte for byte)",
                    shown(issuer),
                    shown(&target.issuer),
                    if slash {
                        ", a trailing slash apart"
                    } else {
                        ""
                    }
                ),
            )
        }
        None => Check::fail(
            "discovery issuer",
            "no string \"issuer\" (RFC 8414 §2: REQUIRED)",
        ),
    }
}

/// OpenID Connect Discovery §3: `jwks_uri` is REQUIRED, and a verifier fetches the keys
/// from there, not from a path it guesses.
async fn jwks_uri(
    client: &HttpClient,
    document: &Map<String, Value>,
) -> (Check, Option<(String, Fetched)>) {
    let name = "discovery jwks_uri";
    let Some(url) = document.get("jwks_uri").and_then(Value::as_str) else {
        return (
            Check::fail(name, "no string \"jwks_uri\" (OpenID Connect Discovery §3)"),
            None,
        );
    };
    if url.starts_with("https://") {
        return (
            Check::warn(
                name,
                format!("{} not fetched: https:// is not supported yet", shown(url)),
            ),
            None,
        );
    }
    if !url.starts_with("http://") {
        return (
            Check::fail(name, format!("{} is not an absolute URL", shown(url))),
            None,
        );
    }
    match client.get(url, &[]).await {
        Ok(response) if response.status == StatusCode::OK => (
            Check::pass(name, format!("{} answers 200", shown(url))),
            Some((url.to_owned(), response)),
        ),
        Ok(response) => (
            Check::fail(name, format!("{} answered {}", shown(url), response.status)),
            None,
        ),
        Err(error) => (Check::fail(name, format!("{}: {error}", shown(url))), None),
    }
}

/// The JWKS at the first well-known path that does not answer 404.
async fn well_known_jwks(
    client: &HttpClient,
    target: &Target,
) -> Result<(String, Fetched), String> {
    let mut tried = Vec::new();
    for path in JWKS_PATHS {
        let url = target.url(path);
        match client.get(&url, &[]).await {
            Ok(response) if response.status == StatusCode::OK => return Ok((url, response)),
            Ok(response) if response.status == StatusCode::NOT_FOUND => {
                tried.push(format!("{path} 404"));
            }
            Ok(response) => return Err(format!("{path} answered {}", response.status)),
            Err(error) => return Err(format!("{path}: {error}")),
        }
    }
    Err(format!("no JWKS: {}", tried.join(", ")))
}

/// `Cache-Control` and `ETag` on the JWKS, and a 304 for its own ETag. Absent means
/// every verifier refetches (or guesses how long to cache): a warning, not a failure.
async fn caching(client: &HttpClient, url: &str, response: &Fetched, checks: &mut Vec<Check>) {
    checks.push(match response.header(header::CACHE_CONTROL) {
        Some(value) if value.contains("no-store") => Check::warn(
            "Cache-Control",
            format!("\"{}\": verifiers cannot cache the keys", shown(value)),
        ),
        Some(value) => Check::pass("Cache-Control", format!("\"{}\"", shown(value))),
        None => Check::warn(
            "Cache-Control",
            "absent: verifiers cannot tell how long to cache the keys (RFC 9111 §5.2)",
        ),
    });
    let Some(etag) = response.header(header::ETAG) else {
        checks.push(Check::warn(
            "ETag",
            "absent: verifiers cannot revalidate their copy (RFC 9110 §8.8.3)",
        ));
        checks.push(Check::warn(
            "304 Not Modified",
            "not checked: no ETag to send",
        ));
        return;
    };
    checks.push(Check::pass("ETag", shown(etag)));
    checks.push(match client.get(url, &[("if-none-match", etag)]).await {
        Ok(again) if again.status == StatusCode::NOT_MODIFIED => {
            Check::pass("304 Not Modified", "for If-None-Match with its own ETag")
        }
        Ok(again) => Check::warn(
            "304 Not Modified",
            format!(
                "answered {} to If-None-Match with its own ETag (RFC 9110 §13.1.2)",
                again.status
            ),
        ),
        Err(error) => Check::fail("304 Not Modified", error.to_string()),
    });
}
