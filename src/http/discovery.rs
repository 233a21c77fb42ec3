//! Discovery: `GET`/`HEAD /.well-known/openid-configuration` (OIDC Discovery §4) and
//! `/.well-known/oauth-authorization-server` (RFC 8414 §3), one document served with a
//! strong ETag and the JWKS's `Cache-Control`. The `issuer` is exactly `--issuer`, never
//! the request's `Host`. The document is serialized once per change of what it states
//! (the published algorithms, the registered scopes), not per request.
//!
//! Also CORS for the public documents (discovery and JWKS): `Access-Control-Allow-Origin:
//! *` and answered preflights, so browser apps can fetch them.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use aws_lc_rs::digest::{SHA256, digest};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::jwks::matches_etag;
use super::state::AppState;
use crate::clients::GrantType;
use crate::keys::Algorithm;

/// `Access-Control-Allow-Origin` of the public documents.
pub(super) const ALLOW_ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");

/// The discovery document and what it was built from.
#[derive(Debug)]
struct Cached {
    jwks_etag: Bytes,
    clients_version: i64,
    body: Bytes,
    etag: HeaderValue,
}

/// The issuer's URLs and the cached discovery document.
#[derive(Debug)]
pub struct Discovery {
    issuer: String,
    /// The issuer without a trailing slash, to which endpoint paths are appended.
    base: String,
    /// The algorithm of new keys (advertised before its first key is published).
    alg: Algorithm,
    cache: ArcSwapOption<Cached>,
}

/// RFC 8414 §2 metadata and the OpenID Connect Discovery 1.0 §3 fields that apply.
#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: String,
    end_session_endpoint: String,
    grant_types_supported: Vec<&'static str>,
    response_types_supported: [&'static str; 1],
    response_modes_supported: [&'static str; 1],
    /// RFC 7636 §4.3: S256 only.
    code_challenge_methods_supported: [&'static str; 1],
    /// `none`: public clients, which authenticate with PKCE (RFC 8414 §2).
    token_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    scopes_supported: Vec<&'a str>,
    claims_supported: [&'static str; 12],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: Vec<&'static str>,
    /// RFC 9207: every authorization response carries `iss`.
    authorization_response_iss_parameter_supported: bool,
    /// OpenID Connect Discovery §3 defaults this to true: say that it is not.
    request_uri_parameter_supported: bool,
    request_parameter_supported: bool,
    claims_parameter_supported: bool,
}

impl Discovery {
    /// The discovery of `issuer`, whose new keys use `alg`.
    #[must_use]
    pub fn new(issuer: String, alg: Algorithm) -> Self {
        let base = issuer.trim_end_matches('/').to_owned();
        Self {
            issuer,
            base,
            alg,
            cache: ArcSwapOption::empty(),
        }
    }

    /// The path part of the issuer (`/p` of `https://host/p`), if it has one.
    #[must_use]
    pub fn issuer_path(&self) -> Option<&str> {
        let rest = self
            .base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, r)| r);
        rest.find('/').map(|i| &rest[i..]).filter(|p| !p.is_empty())
    }

    fn build(&self, state: &AppState, jwks_etag: Bytes) -> Cached {
        let snapshot = state.clients.snapshot();
        let now = state.clock.now();
        let set = state.keys.load();
        let mut algs: Vec<&'static str> = set
            .keys()
            .iter()
            .filter(|k| k.schedule.is_published_at(now))
            .map(|k| k.algorithm().as_str())
            .chain([self.alg.as_str()])
            .collect();
        algs.sort_unstable();
        algs.dedup();
        let methods = ["client_secret_basic", "client_secret_post"];
        let mut scopes: Vec<&str> = super::authorize::OIDC_SCOPES.to_vec();
        scopes.extend(
            snapshot
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| !super::authorize::OIDC_SCOPES.contains(s)),
        );
        let document = Metadata {
            issuer: &self.issuer,
            authorization_endpoint: format!("{}/authorize", self.base),
            token_endpoint: format!("{}/token", self.base),
            userinfo_endpoint: format!("{}/userinfo", self.base),
            jwks_uri: format!("{}/.well-known/jwks.json", self.base),
            introspection_endpoint: format!("{}/introspect", self.base),
            end_session_endpoint: format!("{}/logout", self.base),
            grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
            response_types_supported: ["code"],
            response_modes_supported: ["query"],
            code_challenge_methods_supported: ["S256"],
            token_endpoint_auth_methods_supported: [methods[0], methods[1], "none"],
            introspection_endpoint_auth_methods_supported: methods,
            scopes_supported: scopes,
            claims_supported: [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "preferred_username",
                "email",
                "email_verified",
                "client_id",
            ],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: algs,
            authorization_response_iss_parameter_supported: true,
            request_uri_parameter_supported: false,
            request_parameter_supported: false,
            claims_parameter_supported: false,
        };
        let body = serde_json::to_vec(&document).expect("metadata of strings serializes");
        let hash = digest(&SHA256, &body);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]));
        Cached {
            jwks_etag,
            clients_version: snapshot.version,
            body: Bytes::from(body),
            etag: HeaderValue::from_str(&etag).expect("an ETag is visible ASCII"),
        }
    }

    /// The current document, rebuilt only when the published keys or the clients changed.
    fn current(&self, state: &AppState) -> Arc<Cached> {
        let jwks_etag = state.keys.load().at(state.clock.now()).etag.clone();
        let clients_version = state.clients.snapshot().version;
        if let Some(cached) = self.cache.load_full()
            && cached.jwks_etag == jwks_etag
            && cached.clients_version == clients_version
        {
            return cached;
        }
        let fresh = Arc::new(self.build(state, jwks_etag));
        self.cache.store(Some(Arc::clone(&fresh)));
        fresh
    }
}

/// Serves the discovery document, or 304 when the client holds this version.
pub(super) async fn discovery_get(State(state): State<AppState>, request: Request) -> Response {
    let cached = state.discovery.current(&state);
    let not_modified = request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|v| matches_etag(v.as_bytes(), cached.etag.as_bytes()));
    let mut response = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(cached.body.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, state.jwks_cache_control.clone());
    h.insert(header::ETAG, cached.etag.clone());
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW_ANY_ORIGIN);
    response
}

/// Answers a CORS preflight for a public document (Fetch standard, CORS protocol):
/// any origin, the read methods, any request header, cached for a day.
pub(super) async fn cors_preflight() -> Response {
    preflight("GET, HEAD, OPTIONS", "*")
}

/// A CORS preflight answer for any origin: these methods and request headers.
pub(super) fn preflight(methods: &'static str, headers: &'static str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW_ANY_ORIGIN);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(headers),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

/// What the start-up log should say about the issuer and the authentication mode.
#[must_use]
pub fn startup_warnings(
    host: IpAddr,
    issuer_configured: bool,
    issuer: &str,
    open: bool,
) -> Vec<String> {
    let mut notes = Vec::new();
    if host.is_unspecified() && !issuer_configured {
        notes.push(format!(
            "--host {host} listens on every address, but the issuer (iss, and every URL in the discovery \
             document) is {issuer}: clients that reach this server by another name must be given that issuer. \
             Set --issuer (JWKS_ISSUER) to the URL clients use"
        ));
    }
    if open && !host.is_loopback() {
        notes.push(format!(
            "--auth open on a non-loopback address ({host}): anyone who can reach this server can obtain \
             tokens for any unregistered client id; use --auth users outside a test setup"
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_path_is_what_follows_the_authority() {
        let path = |iss: &str| {
            Discovery::new(iss.into(), Algorithm::Es256)
                .issuer_path()
                .map(str::to_owned)
        };
        assert_eq!(path("http://127.0.0.1:8080"), None);
        assert_eq!(path("http://127.0.0.1:8080/"), None);
        assert_eq!(path("https://id.example/p"), Some("/p".into()));
        assert_eq!(path("https://id.example/a/b/"), Some("/a/b".into()));
    }

    #[test]
    fn wildcard_hosts_and_open_mode_get_warnings() {
        let any: IpAddr = "0.0.0.0".parse().expect("ip");
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let notes = startup_warnings(any, false, "http://127.0.0.1:8080", true);
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("http://127.0.0.1:8080") && notes[0].contains("--issuer"));
        assert!(notes[1].contains("--auth open"));
        assert!(startup_warnings(any, true, "https://x", false).is_empty());
        assert!(startup_warnings(lo, false, "http://127.0.0.1:8080", true).is_empty());
    }
}
