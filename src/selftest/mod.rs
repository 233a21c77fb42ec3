//! `jwks-server selftest [URL]`: a conformance check of a live JWKS server, ours or
//! anyone's, over plain HTTP. It fetches discovery (RFC 8414, OpenID Connect Discovery
//! 1.0) when served and the JWK Set (RFC 7517), checks them, obtains tokens and verifies
//! them with its own strict verifier, and reports one [`Check`] per line.
//!
//! It owns the check runner and the [`Report`]; the checks live by concern in
//! `discovery` (documents and caching), `jwks` (the JWK Set and its keys), `jwt` (the
//! token parser and verifier) and `tokens` (tokens the server issues), and `client` is
//! the bounded HTTP client; `fuzzing` (hidden) lets the fuzz targets reach the parsers.
//! It opens no store, creates no file and never sees a private key; it prints kids and
//! claim names, never a token.

mod client;
mod discovery;
#[doc(hidden)]
pub mod fuzzing;
mod jwks;
mod jwt;
mod tokens;

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::Uri;

use crate::config::Settings;

pub use client::{FetchError, HttpClient, MAX_BODY_BYTES, REQUEST_TIMEOUT};
pub use jwt::{LEEWAY_SECS, MAX_TOKEN_BYTES};

/// The longest detail printed on a line (characters).
pub const MAX_DETAIL_CHARS: usize = 400;

/// Why the self-test could not run at all (the binary exits with status 2).
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    /// The URL is not one the self-test can check.
    #[error("bad URL '{url}': {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server did not answer the first request.
    #[error("server unreachable")]
    Unreachable(#[source] FetchError),
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server does what the standard asks.
    Pass,
    /// Allowed, but clients will fare worse (no ETag, a kid that is not a thumbprint).
    Warn,
    /// The server breaks a rule; the exit status is 1.
    Fail,
    /// Not applicable to this server (an endpoint it does not serve).
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `unique kids`.
    pub name: String,
    /// The result.
    pub outcome: Outcome,
    /// Why, in one line; never a token or key material.
    pub detail: String,
}

impl Check {
    /// A check; a detail past [`MAX_DETAIL_CHARS`] is cut (a set of many bad keys would
    /// otherwise print one endless line).
    fn new(name: impl Into<String>, outcome: Outcome, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL_CHARS) {
            detail.truncate(cut);
            detail.push('…');
        }
        Self {
            name: name.into(),
            outcome,
            detail,
        }
    }

    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Pass, detail)
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Warn, detail)
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Fail, detail)
    }

    fn skip(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Skip, detail)
    }
}

/// Every check of one run, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// The check named `name`, if it ran.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Whether any check failed.
    #[must_use]
    pub fn has_failures(&self) -> bool {
        self.checks.iter().any(|c| c.outcome == Outcome::Fail)
    }

    /// The process exit status: 0 without a failure, 1 with one.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        u8::from(self.has_failures())
    }

    /// The table: a header, one line per check, and a summary line.
    #[must_use]
    pub fn render(&self) -> String {
        let width = self
            .checks
            .iter()
            .map(|c| c.name.chars().count())
            .chain([5])
            .max()
            .unwrap_or(5);
        let mut out = format!("{:width$}  RESULT  DETAIL\n", "CHECK");
        let mut counts = [0usize; 4];
        for check in &self.checks {
            counts[check.outcome as usize] += 1;
            let _ = writeln!(
                out,
                "{:width$}  {:6}  {}",
                check.name,
                check.outcome.to_string(),
                check.detail
            );
        }
        let _ = writeln!(
            out,
            "{} checks: {} pass, {} warn, {} fail, {} skip",
            self.checks.len(),
            counts[0],
            counts[1],
            counts[2],
            counts[3]
        );
        out
    }
}

/// A server to check.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given, without a trailing slash: paths are appended to it.
    root: String,
    /// The `issuer` discovery must carry, byte for byte (RFC 8414 §3.3).
    issuer: String,
}

impl Target {
    /// A target from an `http://host[:port][/path]` URL; discovery's `issuer` must equal
    /// it as given.
    ///
    /// # Errors
    /// [`SelftestError::BadUrl`] for another scheme (`https://` is not supported yet),
    /// no host, a query or a fragment.
    pub fn parse(url: &str) -> Result<Self, SelftestError> {
        let bad = |reason| SelftestError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        if url.starts_with("https://") {
            return Err(bad(
                "https:// is not supported yet (no TLS client is built in); check over http:// or through a local proxy",
            ));
        }
        if !url.starts_with("http://") {
            return Err(bad("expected an http:// URL"));
        }
        if url.contains(['?', '#']) {
            return Err(bad("a query or fragment has no place in an issuer URL"));
        }
        let uri: Uri = url.parse().map_err(|_| bad("not a valid URL"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        Ok(Self {
            root: url.trim_end_matches('/').to_owned(),
            issuer: url.to_owned(),
        })
    }

    /// Our own server as `settings` describe it: [`default_url`] of its address, whose
    /// discovery must name the issuer its tokens carry (`--issuer`, else that URL).
    #[must_use]
    pub fn for_settings(settings: &Settings) -> Self {
        let url = default_url(settings.http.addr);
        Self {
            issuer: settings.issuer_for(settings.http.addr),
            root: url,
        }
    }

    /// The URL of `path` (which starts with `/`) on this server.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }
}

/// The URL of our own server listening on `addr`: `http://<host>:<port>`, with a wildcard
/// host (`0.0.0.0`, `::`) replaced by `127.0.0.1`.
#[must_use]
pub fn default_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(host, addr.port()))
}

/// Runs every check against `target`.
///
/// # Errors
/// [`SelftestError::Unreachable`] when the first request gets no answer.
pub async fn run(target: &Target) -> Result<Report, SelftestError> {
    let client = HttpClient::new();
    let mut report = Report::default();
    let found = discovery::check(&client, target, &mut report.checks).await?;
    let Some(ring) = found.ring else {
        return Ok(report);
    };
    let issuer = found
        .discovery
        .as_ref()
        .and_then(|d| d.issuer.clone())
        .unwrap_or_else(|| target.issuer.clone());
    let context = tokens::Context {
        client: &client,
        target,
        ring: &ring,
        issuer: &issuer,
        token_endpoint: found
            .discovery
            .as_ref()
            .and_then(|d| d.token_endpoint.clone()),
    };
    tokens::check(&context, &mut report.checks).await;
    Ok(report)
}

/// The time now in Unix seconds.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Text from the server made safe to print on one terminal line: control characters
/// (escape sequences among them) become `?`, and it is cut at 100 characters.
fn shown(text: &str) -> String {
    const MAX: usize = 100;
    let mut out: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_other_than_plain_http_are_refused_with_a_reason() {
        for url in [
            "https://example.com",
            "ftp://example.com",
            "example.com",
            "http://",
            "http://host/?q=1",
            "http://host/#f",
            "http://ho st",
        ] {
            assert!(
                matches!(Target::parse(url), Err(SelftestError::BadUrl { .. })),
                "{url}"
            );
        }
        let target = Target::parse("http://127.0.0.1:8080/tenant/").expect("valid");
        assert_eq!(target.url("/jwks"), "http://127.0.0.1:8080/tenant/jwks");
        assert_eq!(target.issuer, "http://127.0.0.1:8080/tenant/");
    }

    #[test]
    fn a_wildcard_host_is_checked_on_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        assert_eq!(default_url(any), "http://127.0.0.1:8080");
        let v6: SocketAddr = "[::]:9000".parse().expect("addr");
        assert_eq!(default_url(v6), "http://127.0.0.1:9000");
        let own: SocketAddr = "10.0.0.7:80".parse().expect("addr");
        assert_eq!(default_url(own), "http://10.0.0.7:80");
    }

    #[test]
    fn the_exit_status_is_1_only_with_a_failure() {
        let mut report = Report {
            checks: vec![
                Check::pass("a", "x"),
                Check::warn("b", "y"),
                Check::skip("c", "z"),
            ],
        };
        assert_eq!(report.exit_code(), 0);
        report.checks.push(Check::fail("d", "w"));
        assert_eq!(report.exit_code(), 1);
        let table = report.render();
        assert!(
            table.lines().any(|l| l.starts_with("d      FAIL    w")),
            "{table}"
        );
        assert!(table.ends_with("4 checks: 1 pass, 1 warn, 1 fail, 1 skip\n"));
    }

    #[test]
    fn a_long_detail_is_cut() {
        let check = Check::fail("x", "é".repeat(MAX_DETAIL_CHARS + 5));
        assert_eq!(check.detail.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(check.detail.ends_with('…'));
        assert_eq!(Check::pass("x", "short").detail, "short");
    }

    #[test]
    fn server_text_cannot_reach_the_terminal_raw() {
        assert_eq!(shown("kid\u{1b}[2J"), "kid?[2J");
        assert_eq!(shown(&"x".repeat(150)).chars().count(), 101);
    }
}
