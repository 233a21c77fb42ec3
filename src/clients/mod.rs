//! OAuth 2.0 clients of the token endpoint (RFC 6749 §2): the [`Client`] record, its
//! generated secret (stored only as a hash, compared in constant time), the
//! [`ClientStore`] interface this module needs of storage, and the in-memory
//! [`ClientRegistry`] that requests read.
//!
//! It owns no SQL (`store/clients.rs` implements [`ClientStore`]) and no HTTP: `http/`
//! parses the credentials and asks [`ClientRegistry::authenticate`].

mod registry;

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

pub use registry::{CLIENTS_POLL, ClientAuth, ClientRegistry, Snapshot};

use crate::persist::{BoxFuture, StoreError};

/// Claims a client's fixed claims (or the `claims` parameter) can never set: the
/// server's own (RFC 9068 §2.2), and `sub` and `scope`, so that extra claims can neither
/// claim a registered user's identity without the password nor widen a registered
/// client's allowed scopes.
pub const RESERVED_CLAIMS: [&str; 8] = [
    "iss",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "sub",
    "scope",
];

/// Longest client id accepted (bytes).
pub const MAX_CLIENT_ID_BYTES: usize = 255;

/// Everything that can go wrong with a client definition.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A field failed validation; the text says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A grant type a client may use at `POST /token` (RFC 6749 §4.1, §4.3, §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
    /// `password` (RFC 6749 §4.3).
    Password,
    /// `authorization_code` (RFC 6749 §4.1), after interactive sign-in.
    AuthorizationCode,
}

impl GrantType {
    /// Every grant type the server implements.
    pub const ALL: [Self; 3] = [
        Self::ClientCredentials,
        Self::Password,
        Self::AuthorizationCode,
    ];

    /// The `grant_type` value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::Password => "password",
            Self::AuthorizationCode => "authorization_code",
        }
    }

    /// Parses a `grant_type` value this server implements.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// A client id: 1 to 255 visible ASCII characters (RFC 6749 Appendix A.1, without space).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// Validates `raw`.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] naming the rule.
    pub fn parse(raw: &str) -> Result<Self, ClientError> {
        if (1..=MAX_CLIENT_ID_BYTES).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_graphic())
        {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ClientError::Invalid(format!(
                "a client id is 1 to {MAX_CLIENT_ID_BYTES} visible ASCII characters (no spaces)"
            )))
        }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A freshly generated client secret: 32 random bytes, base64url. Shown once; its
/// `Debug` never shows it.
pub struct ClientSecret(String);

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl ClientSecret {
    /// A new random secret.
    ///
    /// # Errors
    /// [`ClientError::Random`] if the system RNG fails.
    pub fn generate() -> Result<Self, ClientError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ClientError::Random)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The secret text, to print once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its stored form.
    #[must_use]
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

/// SHA-256 of a client secret. The secret is 256 random bits, so a fast hash is enough:
/// nothing can be guessed from it, and the token endpoint pays no key-stretching cost.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

impl SecretHash {
    /// The hash of `secret`.
    #[must_use]
    pub fn of(secret: &str) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, secret.as_bytes()).as_ref());
        Self(out)
    }

    /// Whether `presented` is the secret, compared in constant time.
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        let candidate = Self::of(presented);
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &candidate.0).is_ok()
    }

    /// Lowercase hex, as stored.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses the stored hex form.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] if it is not 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::Invalid("a stored secret hash is not 64 hex digits".into());
        if text.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

/// A registered client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// Its id.
    pub id: ClientId,
    /// The hash of its secret; `None` for a public client (RFC 6749 §2.1), which has no
    /// secret and must use PKCE (RFC 7636).
    pub secret_hash: Option<SecretHash>,
    /// A name to show people on the sign-in page (the id when it has none).
    pub name: Option<String>,
    /// Scopes it may ask for; empty means it may ask for none.
    pub scopes: Vec<String>,
    /// Grant types it may use.
    pub grant_types: Vec<GrantType>,
    /// `aud` of its tokens when the request names none.
    pub audience: Option<String>,
    /// Claims added to each of its tokens (never a [`RESERVED_CLAIMS`] name).
    pub claims: Map<String, Value>,
    /// Redirect URIs of the authorization code flow, matched exactly (RFC 6749 §3.1.2).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser afterwards, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
}

impl Client {
    /// Whether it is a public client (no secret).
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// The name shown to people.
    #[must_use]
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.id.as_str())
    }
}

/// Whether `uri` can be a redirect URI: absolute, no fragment, no whitespace or control
/// characters (RFC 6749 §3.1.2).
#[must_use]
pub fn is_redirect_uri(uri: &str) -> bool {
    let absolute = uri.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    absolute && !uri.contains('#') && !uri.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `token` is a valid scope token (RFC 6749 §3.3: `%x21 / %x23-5B / %x5D-7E`).
#[must_use]
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// Parses extra claims (a JSON object) and refuses the server's own names.
///
/// # Errors
/// [`ClientError::Invalid`] if it is not an object or sets a reserved claim.
pub fn parse_claims(json: &str) -> Result<Map<String, Value>, ClientError> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| ClientError::Invalid(format!("claims must be a JSON object: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ClientError::Invalid("claims must be a JSON object".into()));
    };
    check_claims(&map)?;
    Ok(map)
}

/// Refuses a claim set that names one of [`RESERVED_CLAIMS`].
///
/// # Errors
/// [`ClientError::Invalid`] naming the claim.
pub fn check_claims(map: &Map<String, Value>) -> Result<(), ClientError> {
    match RESERVED_CLAIMS.iter().find(|name| map.contains_key(**name)) {
        Some(name) => Err(ClientError::Invalid(format!(
            "the claim '{name}' is set by the server and cannot be given"
        ))),
        None => Ok(()),
    }
}

/// What `jwks-server clients add` asks for.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    /// The id.
    pub id: String,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Allowed grant types (`client_credentials`, `password`, `authorization_code`);
    /// empty means all a client of its kind may use.
    pub grant_types: Vec<String>,
    /// Default audience.
    pub audience: Option<String>,
    /// Fixed claims as `NAME=JSON`.
    pub claims: Vec<String>,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// A public client: no secret, PKCE required, the authorization code grant only.
    pub public: bool,
    /// Display name.
    pub name: Option<String>,
}

impl Client {
    /// Validates `spec` and gives a confidential client a fresh secret, returned with it
    /// (once); a public client gets none.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] naming the bad field; [`ClientError::Random`].
    pub fn create(spec: &ClientSpec) -> Result<(Self, Option<ClientSecret>), ClientError> {
        let id = ClientId::parse(&spec.id)?;
        let mut scopes = Vec::new();
        for scope in spec.scopes.iter().flat_map(|s| s.split(' ')) {
            if !is_scope_token(scope) {
                return Err(ClientError::Invalid(format!(
                    "invalid scope '{scope}' (RFC 6749 §3.3: visible ASCII except '\"' and '\\')"
                )));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        let mut grant_types = Vec::new();
        for name in &spec.grant_types {
            let grant = GrantType::parse(name).ok_or_else(|| {
                ClientError::Invalid(format!(
                    "unknown grant type '{name}' (client_credentials, password or authorization_code)"
                ))
            })?;
            // RFC 6749 §4.4: the client credentials grant is for confidential clients.
            if spec.public && grant == GrantType::ClientCredentials {
                return Err(ClientError::Invalid(
                    "a public client has no credentials: it cannot use client_credentials (RFC 6749 §4.4)"
                        .into(),
                ));
            }
            if !grant_types.contains(&grant) {
                grant_types.push(grant);
            }
        }
        if grant_types.is_empty() {
            grant_types = if spec.public {
                vec![GrantType::AuthorizationCode]
            } else {
                GrantType::ALL.to_vec()
            };
        }
        if spec
            .name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty() || n.chars().count() > 100)
        {
            return Err(ClientError::Invalid(
                "a client name is 1 to 100 characters".into(),
            ));
        }
        if spec.audience.as_deref().is_some_and(str::is_empty) {
            return Err(ClientError::Invalid(
                "the audience must not be empty".into(),
            ));
        }
        let mut claims = Map::new();
        for pair in &spec.claims {
            let (name, json) = pair.split_once('=').ok_or_else(|| {
                ClientError::Invalid(format!("--claim takes NAME=JSON, got '{pair}'"))
            })?;
            if name.is_empty() {
                return Err(ClientError::Invalid(
                    "a claim name must not be empty".into(),
                ));
            }
            let value: Value = serde_json::from_str(json).map_err(|e| {
                ClientError::Invalid(format!(
                    "claim '{name}': the value is not JSON ({e}); quote strings: '\"text\"'"
                ))
            })?;
            claims.insert(name.to_owned(), value);
        }
        check_claims(&claims)?;
        for uri in spec
            .redirect_uris
            .iter()
            .chain(&spec.post_logout_redirect_uris)
        {
            if !is_redirect_uri(uri) {
                return Err(ClientError::Invalid(format!(
                    "redirect URI '{uri}' must be absolute and carry no fragment (RFC 6749 §3.1.2)"
                )));
            }
        }
        let secret = if spec.public {
            None
        } else {
            Some(ClientSecret::generate()?)
        };
        Ok((
            Self {
                id,
                secret_hash: secret.as_ref().map(ClientSecret::hash),
                name: spec.name.clone(),
                scopes,
                grant_types,
                audience: spec.audience.clone(),
                claims,
                redirect_uris: spec.redirect_uris.clone(),
                post_logout_redirect_uris: spec.post_logout_redirect_uris.clone(),
            },
            secret,
        ))
    }
}

/// What the clients registry needs of storage. Every change bumps a version that
/// running servers poll.
pub trait ClientStore: Send + Sync + fmt::Debug {
    /// Every registered client, by id.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails or a row is unusable.
    fn list_clients(&self) -> BoxFuture<'_, Result<Vec<Client>, StoreError>>;

    /// Registers `client` and bumps the version, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (`"client_id"`) if the id is taken.
    fn insert_client<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes the client and bumps the version; `false` if there was none.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn remove_client<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// A number that changes with every change to the clients.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn clients_version(&self) -> BoxFuture<'_, Result<i64, StoreError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_32_random_bytes_and_match_only_themselves() {
        let a = ClientSecret::generate().expect("rng");
        let b = ClientSecret::generate().expect("rng");
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).expect("b64").len(), 32);
        assert_ne!(a.expose(), b.expose());
        let hash = a.hash();
        assert!(hash.matches(a.expose()));
        assert!(!hash.matches(b.expose()));
        assert!(!hash.matches(""));
        assert_eq!(SecretHash::from_hex(&hash.to_hex()).expect("hex"), hash);
        assert!(SecretHash::from_hex("zz").is_err());
        assert_eq!(format!("{a:?} {hash:?}").matches("<redacted>").count(), 2);
    }

    #[test]
    fn specs_are_validated_field_by_field() {
        let spec = |f: &dyn Fn(&mut ClientSpec)| {
            let mut s = ClientSpec {
                id: "svc".into(),
                ..ClientSpec::default()
            };
            f(&mut s);
            Client::create(&s).map(|(c, _)| c)
        };
        let public = spec(&|s| {
            s.public = true;
            s.name = Some("Web app".into());
        })
        .expect("valid");
        assert!(public.is_public());
        assert_eq!(public.grant_types, [GrantType::AuthorizationCode]);
        assert_eq!(public.display_name(), "Web app");
        assert!(
            spec(&|s| {
                s.public = true;
                s.grant_types = vec!["client_credentials".into()];
            })
            .is_err()
        );
        assert!(spec(&|s| s.name = Some(" ".into())).is_err());
        assert!(spec(&|s| s.post_logout_redirect_uris = vec!["nope".into()]).is_err());
        assert!(is_redirect_uri("com.example.app:/cb"));
        assert!(!is_redirect_uri("https://a/b c"));
        let ok = spec(&|s| {
            s.scopes = vec!["read write".into(), "read".into()];
            s.claims = vec![r#"tenant="acme""#.into(), "level=3".into()];
            s.redirect_uris = vec!["https://app.example/cb".into()];
        })
        .expect("valid");
        assert_eq!(ok.scopes, ["read", "write"]);
        assert_eq!(ok.grant_types, GrantType::ALL);
        assert_eq!(ok.claims["tenant"], "acme");
        assert_eq!(ok.claims["level"], 3);
        assert!(spec(&|s| s.id = "has space".into()).is_err());
        assert!(spec(&|s| s.id = String::new()).is_err());
        assert!(spec(&|s| s.scopes = vec!["bad\"scope".into()]).is_err());
        assert!(spec(&|s| s.claims = vec!["iss=\"x\"".into()]).is_err());
        assert!(spec(&|s| s.claims = vec!["name=bare".into()]).is_err());
        assert!(spec(&|s| s.claims = vec!["novalue".into()]).is_err());
        assert!(spec(&|s| s.grant_types = vec!["implicit".into()]).is_err());
        assert!(spec(&|s| s.redirect_uris = vec!["/relative".into()]).is_err());
        assert!(spec(&|s| s.redirect_uris = vec!["https://a/#frag".into()]).is_err());
        assert!(spec(&|s| s.audience = Some(String::new())).is_err());
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(is_scope_token("read:all"));
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(!is_scope_token(bad), "{bad}");
        }
        assert!(parse_claims(r#"{"a":1}"#).is_ok());
        assert!(parse_claims("[1]").is_err());
        assert!(parse_claims(r#"{"jti":"x"}"#).is_err());
    }
}
