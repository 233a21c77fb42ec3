//! Interactive sign-in (OpenID Connect Core 1.0 §3.1, RFC 6749 §4.1, RFC 7636): the
//! state a browser flow needs between requests, kept in the database so that any
//! replica can continue what another began.
//!
//! - a **pending request**: a validated authorization request waiting for the person to
//!   sign in, with the CSRF token its sign-in form must carry (10 minutes);
//! - a **session**: who signed in and when, behind the session cookie (`--session-ttl`);
//! - an **authorization code**: single use, 60 seconds, bound to the client, the
//!   redirect URI, the PKCE challenge and the nonce (RFC 6749 §4.1.2, §10.5);
//! - a **spent code**: once a code has bought an access token, the token's `jti`, kept
//!   as long as the token lives, so that a second use of the code revokes it
//!   (RFC 6749 §4.1.2);
//! - a **revoked token**: a `jti` that `/introspect` and `/userinfo` refuse until the
//!   token would have expired anyway.
//!
//! Each is found by the SHA-256 of a random 256-bit [`Handle`] that only the browser or
//! the client holds: the table alone redeems nothing. No HTTP and no SQL here: `http/`
//! drives the flow, `store/` implements [`SignInStore`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use crate::keys::UnixMillis;
use crate::persist::{BoxFuture, StoreError};

/// How long a pending authorization request waits for the person to sign in.
pub const REQUEST_TTL: Duration = Duration::from_secs(600);
/// How long an authorization code can be redeemed: RFC 6749 §4.1.2 recommends at most
/// ten minutes; one is plenty for a client that redeems at once.
pub const CODE_TTL: Duration = Duration::from_secs(60);

/// Claims the server sets in an ID token or access token that sign-in's extra claims
/// (open mode) can never set: OpenID Connect Core §2 and RFC 9068 §2.2.
pub const ID_TOKEN_RESERVED: [&str; 17] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "sid",
    "client_id",
    "scope",
];

/// Which kind of state a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// A pending authorization request.
    Request,
    /// A browser session.
    Session,
    /// An authorization code.
    Code,
    /// A redeemed code: the `jti` of the access token it bought.
    SpentCode,
    /// An access token revoked before its `exp`.
    RevokedToken,
}

impl StateKind {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Session => "session",
            Self::Code => "code",
            Self::SpentCode => "spent_code",
            Self::RevokedToken => "revoked_token",
        }
    }
}

/// What sign-in needs of storage: rows of short-lived state by the hash of their handle.
/// An expired row is never returned.
pub trait SignInStore: Send + Sync + fmt::Debug {
    /// Stores a row (and removes rows expired by `now`).
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn put_state<'a>(
        &'a self,
        kind: StateKind,
        handle: &'a HandleHash,
        data: &'a str,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The row's data, if it exists and has not expired.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn get_state<'a>(
        &'a self,
        kind: StateKind,
        handle: &'a HandleHash,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// Removes the row and returns its data if it had not expired, atomically: of two
    /// concurrent takes (on any replicas), at most one gets the data.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn take_state<'a>(
        &'a self,
        kind: StateKind,
        handle: &'a HandleHash,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;
}

/// What a redeemed code bought: the access token to revoke if the code comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Spent {
    /// The access token's `jti`.
    jti: String,
    /// The access token's `exp`, in Unix milliseconds.
    expires_at: UnixMillis,
}

/// What presenting a code at the token endpoint found.
#[derive(Debug)]
pub enum Redemption {
    /// The code's first use: its grant.
    Granted(Box<CodeGrant>),
    /// The code was used before and bought a token; that token is now revoked
    /// (RFC 6749 §4.1.2: "SHOULD revoke ... all tokens previously issued based on that
    /// authorization code").
    Replayed,
    /// Not a code of ours, expired, or spent without buying a token.
    Unknown,
}

/// A random 256-bit handle, base64url: a session cookie, a code, a pending request's id.
/// Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Handle(String);

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handle(<redacted>)")
    }
}

/// The length of a [`Handle`]: 32 bytes in unpadded base64url.
const HANDLE_CHARS: usize = 43;

impl Handle {
    /// A fresh random handle.
    ///
    /// # Errors
    /// [`SignInError::Random`] if the system RNG fails.
    pub fn generate() -> Result<Self, SignInError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SignInError::Random)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A handle as presented by a browser or client; `None` if it cannot be one of ours.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == HANDLE_CHARS
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')))
        .then(|| Self(text.to_owned()))
    }

    /// The text to hand out.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keys the row by.
    #[must_use]
    pub fn hash(&self) -> HandleHash {
        HandleHash::of(self.0.as_bytes())
    }
}

/// The SHA-256 of a [`Handle`], in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HandleHash(String);

impl HandleHash {
    /// What the store keys a revoked token by: the SHA-256 of its `jti`, apart from
    /// every handle's by a prefix.
    #[must_use]
    pub fn of_token_id(jti: &str) -> Self {
        Self::of(format!("jti:{jti}").as_bytes())
    }

    fn of(bytes: &[u8]) -> Self {
        let hash = digest(&SHA256, bytes);
        Self(hash.as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The stored text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything that can go wrong in sign-in's bookkeeping.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A stored row is not what this build wrote.
    #[error("a stored sign-in row is unreadable: {0}")]
    Corrupt(#[source] serde_json::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A validated authorization request (OpenID Connect Core §3.1.2.1), as it waits for
/// sign-in and as its code remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: String,
    /// Where the answer goes: a registered URI, or (open mode) any http(s) URI.
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request must repeat it,
    /// RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    /// The requested scope, space-delimited.
    pub scope: Option<String>,
    /// Echoed to the client.
    pub state: Option<String>,
    /// Put into the ID token.
    pub nonce: Option<String>,
    /// The S256 PKCE challenge (RFC 7636 §4.2).
    pub code_challenge: Option<String>,
    /// `max_age` in seconds (OpenID Connect Core §3.1.2.1).
    pub max_age: Option<i64>,
    /// `login_hint`, to fill in the username.
    pub login_hint: Option<String>,
}

impl AuthorizationRequest {
    /// Whether the scope asks for an ID token.
    #[must_use]
    pub fn wants_openid(&self) -> bool {
        has_scope(self.scope.as_deref(), "openid")
    }
}

/// Whether the space-delimited `scope` contains `name`.
#[must_use]
pub fn has_scope(scope: Option<&str>, name: &str) -> bool {
    scope.is_some_and(|s| s.split(' ').any(|t| t == name))
}

/// Who signed in (OpenID Connect Core §2: `sub`, `auth_time`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The subject: the username.
    pub sub: String,
    /// When the person signed in, Unix seconds.
    pub auth_time: i64,
    /// The registered user's email address (`users`).
    pub email: Option<String>,
    /// Extra claims the tester asked for on the sign-in page (open mode); never one of
    /// [`ID_TOKEN_RESERVED`].
    pub claims: Map<String, Value>,
}

/// A pending authorization request and the CSRF token of its sign-in form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The request.
    pub request: AuthorizationRequest,
    /// The token the form must send back (a second random handle).
    pub csrf: String,
    /// The [`HandleHash`] of the browser-binding cookie of the browser that opened it:
    /// the form is accepted only from that browser.
    pub browser: String,
}

/// What an authorization code stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The request it answers.
    pub request: AuthorizationRequest,
    /// Who signed in.
    pub identity: Identity,
}

/// The sign-in bookkeeping over a [`SignInStore`].
#[derive(Debug, Clone)]
pub struct SignIn {
    store: Arc<dyn SignInStore>,
    session_ttl: Duration,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl SignIn {
    /// Sign-in over `store`, with sessions that last `session_ttl`.
    #[must_use]
    pub fn new(store: Arc<dyn SignInStore>, session_ttl: Duration) -> Self {
        Self { store, session_ttl }
    }

    /// How long a session lasts.
    #[must_use]
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    async fn put<T: Serialize>(
        &self,
        kind: StateKind,
        value: &T,
        ttl: Duration,
        now: UnixMillis,
    ) -> Result<Handle, SignInError> {
        let handle = Handle::generate()?;
        let data = serde_json::to_string(value).map_err(SignInError::Corrupt)?;
        self.store
            .put_state(
                kind,
                &handle.hash(),
                &data,
                now.saturating_add(millis(ttl)),
                now,
            )
            .await?;
        Ok(handle)
    }

    fn decode<T: DeserializeOwned>(data: Option<String>) -> Result<Option<T>, SignInError> {
        data.map(|d| serde_json::from_str(&d).map_err(SignInError::Corrupt))
            .transpose()
    }

    /// Stores a pending request opened by the browser whose binding cookie hashes to
    /// `browser`; returns its handle and the record (with the form's CSRF token).
    ///
    /// # Errors
    /// Store or RNG failures.
    pub async fn begin(
        &self,
        request: AuthorizationRequest,
        browser: HandleHash,
        now: UnixMillis,
    ) -> Result<(Handle, Pending), SignInError> {
        let pending = Pending {
            request,
            csrf: Handle::generate()?.0,
            browser: browser.0,
        };
        let handle = self
            .put(StateKind::Request, &pending, REQUEST_TTL, now)
            .await?;
        Ok((handle, pending))
    }

    /// The pending request behind `handle`, if it is still pending.
    ///
    /// # Errors
    /// Store failures; an unreadable row.
    pub async fn pending(
        &self,
        handle: &Handle,
        now: UnixMillis,
    ) -> Result<Option<Pending>, SignInError> {
        let data = self
            .store
            .get_state(StateKind::Request, &handle.hash(), now)
            .await?;
        Self::decode(data)
    }

    /// Ends a pending request (it was answered); `None` if another request did first.
    ///
    /// # Errors
    /// Store failures; an unreadable row.
    pub async fn finish(
        &self,
        handle: &Handle,
        now: UnixMillis,
    ) -> Result<Option<Pending>, SignInError> {
        let data = self
            .store
            .take_state(StateKind::Request, &handle.hash(), now)
            .await?;
        Self::decode(data)
    }

    /// Starts a session for `identity`; returns the cookie's value.
    ///
    /// # Errors
    /// Store or RNG failures.
    pub async fn start_session(
        &self,
        identity: &Identity,
        now: UnixMillis,
    ) -> Result<Handle, SignInError> {
        self.put(StateKind::Session, identity, self.session_ttl, now)
            .await
    }

    /// The session behind a cookie, if it is still valid.
    ///
    /// # Errors
    /// Store failures; an unreadable row.
    pub async fn session(
        &self,
        handle: &Handle,
        now: UnixMillis,
    ) -> Result<Option<Identity>, SignInError> {
        let data = self
            .store
            .get_state(StateKind::Session, &handle.hash(), now)
            .await?;
        Self::decode(data)
    }

    /// Ends a session; returns whether there was one.
    ///
    /// # Errors
    /// Store failures.
    pub async fn end_session(&self, handle: &Handle, now: UnixMillis) -> Result<bool, SignInError> {
        Ok(self
            .store
            .take_state(StateKind::Session, &handle.hash(), now)
            .await?
            .is_some())
    }

    /// Issues an authorization code for `grant`.
    ///
    /// # Errors
    /// Store or RNG failures.
    pub async fn issue_code(
        &self,
        grant: &CodeGrant,
        now: UnixMillis,
    ) -> Result<Handle, SignInError> {
        self.put(StateKind::Code, grant, CODE_TTL, now).await
    }

    /// Redeems a code: its grant the first time. A code that comes back after it
    /// bought a token ([`SignIn::spend`]) revokes that token, once.
    ///
    /// # Errors
    /// Store failures; an unreadable row.
    pub async fn redeem(&self, code: &str, now: UnixMillis) -> Result<Redemption, SignInError> {
        let Some(handle) = Handle::parse(code) else {
            return Ok(Redemption::Unknown);
        };
        let hash = handle.hash();
        let data = self.store.take_state(StateKind::Code, &hash, now).await?;
        if let Some(grant) = Self::decode(data)? {
            return Ok(Redemption::Granted(Box::new(grant)));
        }
        let spent = self
            .store
            .take_state(StateKind::SpentCode, &hash, now)
            .await?;
        let Some(spent) = Self::decode::<Spent>(spent)? else {
            return Ok(Redemption::Unknown);
        };
        self.store
            .put_state(
                StateKind::RevokedToken,
                &HandleHash::of_token_id(&spent.jti),
                "{}",
                spent.expires_at,
                now,
            )
            .await?;
        Ok(Redemption::Replayed)
    }

    /// Records that the code bought the access token `jti`, which expires at
    /// `expires_at`: until then, presenting the code again revokes the token.
    ///
    /// # Errors
    /// Store failures.
    pub async fn spend(
        &self,
        code: &str,
        jti: &str,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), SignInError> {
        let Some(handle) = Handle::parse(code) else {
            return Ok(());
        };
        let spent = Spent {
            jti: jti.to_owned(),
            expires_at,
        };
        let data = serde_json::to_string(&spent).map_err(SignInError::Corrupt)?;
        self.store
            .put_state(StateKind::SpentCode, &handle.hash(), &data, expires_at, now)
            .await?;
        Ok(())
    }

    /// Whether the access token `jti` was revoked (and would not have expired yet).
    ///
    /// # Errors
    /// Store failures.
    pub async fn is_revoked(&self, jti: &str, now: UnixMillis) -> Result<bool, SignInError> {
        Ok(self
            .store
            .get_state(StateKind::RevokedToken, &HandleHash::of_token_id(jti), now)
            .await?
            .is_some())
    }
}

/// Whether `value` is a PKCE code verifier or S256 challenge: 43 to 128 characters of
/// `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"` (RFC 7636 §4.1, §4.2).
#[must_use]
pub fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` answers the S256 `challenge`:
/// `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge` (RFC 7636 §4.6).
#[must_use]
pub fn pkce_matches(challenge: &str, verifier: &str) -> bool {
    if !is_pkce_value(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
    aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes())
        .is_ok()
}

/// Parses the extra claims typed on the sign-in page (open mode): empty is none; else a
/// JSON object that sets none of [`ID_TOKEN_RESERVED`].
///
/// # Errors
/// A sentence for the page.
pub fn parse_extra_claims(text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return Err("Extra claims must be a JSON object, such as {\"roles\": [\"admin\"]}.".into());
    };
    if let Some(name) = ID_TOKEN_RESERVED.iter().find(|n| map.contains_key(**n)) {
        return Err(format!(
            "The claim \"{name}\" is set by the server and cannot be given."
        ));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn pkce_follows_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(challenge, verifier));
        assert!(!pkce_matches(challenge, &verifier.replace('d', "e")));
        assert!(!pkce_matches(challenge, "short"));
        assert!(is_pkce_value(challenge));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn handles_are_random_and_only_parse_in_their_own_shape() {
        let a = Handle::generate().expect("rng");
        let b = Handle::generate().expect("rng");
        assert_ne!(a, b);
        assert_eq!(Handle::parse(a.expose()), Some(a.clone()));
        assert_eq!(a.hash().as_str().len(), 64);
        assert!(Handle::parse("short").is_none());
        assert!(Handle::parse(&"=".repeat(43)).is_none());
        assert_eq!(format!("{a:?}"), "Handle(<redacted>)");
    }

    #[test]
    fn extra_claims_are_an_object_without_server_claims() {
        assert!(parse_extra_claims("  ").expect("empty").is_empty());
        assert_eq!(
            parse_extra_claims(r#"{"roles":["a"]}"#).expect("ok")["roles"][0],
            "a"
        );
        assert!(parse_extra_claims("[1]").is_err());
        assert!(parse_extra_claims(r#"{"nonce":"x"}"#).is_err());
    }

    fn request() -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: "app".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_given: true,
            scope: Some("openid profile".into()),
            state: None,
            nonce: Some("n".into()),
            code_challenge: None,
            max_age: None,
            login_hint: None,
        }
    }

    #[tokio::test]
    async fn codes_redeem_once_and_expire() {
        let signin = SignIn::new(Arc::new(MemoryStore::default()), Duration::from_secs(60));
        let identity = Identity {
            sub: "alice".into(),
            auth_time: 1,
            email: None,
            claims: Map::new(),
        };
        let grant = CodeGrant {
            request: request(),
            identity,
        };
        let code = signin.issue_code(&grant, 1_000).await.expect("issue");
        assert!(matches!(
            signin.redeem(code.expose(), 2_000).await.expect("redeem"),
            Redemption::Granted(g) if *g == grant
        ));
        // Spent without buying a token (a failed redemption): unknown ever after.
        assert!(matches!(
            signin.redeem(code.expose(), 2_000).await.expect("again"),
            Redemption::Unknown
        ));
        let late = signin.issue_code(&grant, 1_000).await.expect("issue");
        let expired = 1_000 + millis(CODE_TTL);
        assert!(matches!(
            signin.redeem(late.expose(), expired).await.expect("late"),
            Redemption::Unknown
        ));
        assert!(matches!(
            signin.redeem("not a code", 0).await.expect("junk"),
            Redemption::Unknown
        ));
    }

    #[tokio::test]
    async fn a_code_used_twice_revokes_the_token_it_bought_until_that_token_expires() {
        let signin = SignIn::new(Arc::new(MemoryStore::default()), Duration::from_secs(60));
        let grant = CodeGrant {
            request: request(),
            identity: Identity {
                sub: "alice".into(),
                auth_time: 1,
                email: None,
                claims: Map::new(),
            },
        };
        let code = signin.issue_code(&grant, 1_000).await.expect("issue");
        assert!(matches!(
            signin.redeem(code.expose(), 2_000).await.expect("redeem"),
            Redemption::Granted(_)
        ));
        signin
            .spend(code.expose(), "jti-1", 900_000, 2_000)
            .await
            .expect("spend");
        assert!(!signin.is_revoked("jti-1", 3_000).await.expect("read"));
        assert!(matches!(
            signin.redeem(code.expose(), 3_000).await.expect("replay"),
            Redemption::Replayed
        ));
        assert!(signin.is_revoked("jti-1", 4_000).await.expect("read"));
        assert!(!signin.is_revoked("jti-2", 4_000).await.expect("read"));
        // Revoked once: a third use finds nothing more to revoke.
        assert!(matches!(
            signin.redeem(code.expose(), 5_000).await.expect("third"),
            Redemption::Unknown
        ));
        // Past the token's own expiry nothing needs remembering.
        assert!(!signin.is_revoked("jti-1", 900_000).await.expect("read"));
    }

    #[tokio::test]
    async fn sessions_and_pending_requests_live_until_ended() {
        let signin = SignIn::new(Arc::new(MemoryStore::default()), Duration::from_secs(60));
        let browser = Handle::generate().expect("rng").hash();
        let (handle, pending) = signin.begin(request(), browser, 0).await.expect("begin");
        assert_eq!(
            signin.pending(&handle, 1).await.expect("get"),
            Some(pending.clone())
        );
        assert_eq!(
            signin.finish(&handle, 1).await.expect("take"),
            Some(pending)
        );
        assert_eq!(signin.pending(&handle, 1).await.expect("gone"), None);
        let identity = Identity {
            sub: "bob".into(),
            auth_time: 0,
            email: Some("b@example.com".into()),
            claims: Map::new(),
        };
        let cookie = signin.start_session(&identity, 0).await.expect("start");
        assert_eq!(
            signin.session(&cookie, 59_999).await.expect("get"),
            Some(identity)
        );
        assert_eq!(
            signin.session(&cookie, 60_000).await.expect("expired"),
            None
        );
        assert!(!signin.end_session(&cookie, 60_000).await.expect("end"));
    }
}
