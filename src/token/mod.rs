//! JWT claims and signing (RFC 7519, RFC 7515 compact serialization). Tokens are signed
//! with the cached [`KeyRecord`] the key set hands out; this module never picks a key.
//!
//! - this file: the `/auth` JWT (`typ: JWT`);
//! - `access.rs`: RFC 9068 access tokens and the negative-test tokens ([`TestCase`]);
//! - `id.rs`: OpenID Connect ID tokens;
//! - `verify.rs`: verification of our own tokens against the in-memory key set, for
//!   introspection.

mod access;
mod id;
mod verify;

pub use access::{
    AccessGrant, TEST_CASE_OFFSET_SECS, TEST_JTI_PREFIX, TestCase, UnpublishedKeys, WRONG_AUDIENCE,
    WRONG_ISSUER,
};
pub use id::{IdGrant, at_hash};
pub use verify::{verify_access, verify_own};

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::keys::{KeyError, KeyRecord, UnixMillis};

/// The registered claims of every token this server issues.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Claims<'a> {
    /// Issuer (`--issuer`).
    pub iss: &'a str,
    /// Subject: the username, or `anonymous`.
    pub sub: &'a str,
    /// Audience, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<&'a str>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// A unique token id (UUIDv4).
    pub jti: String,
}

/// A signed token and its remaining lifetime.
#[derive(Debug)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Seconds until `exp` (0 for a token that is already expired).
    pub expires_in: i64,
    /// The token's `jti`; `None` for an ID token, which carries none.
    pub jti: Option<String>,
}

/// Issues tokens with fixed issuer, audience and lifetime.
#[derive(Debug, Clone)]
pub struct Issuer {
    iss: String,
    aud: Option<String>,
    ttl_secs: i64,
}

impl Issuer {
    /// An issuer. `ttl` is truncated to whole seconds (JWT times are seconds).
    #[must_use]
    pub fn new(iss: String, aud: Option<String>, ttl: Duration) -> Self {
        Self {
            iss,
            aud,
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// The `iss` of every token.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.iss
    }

    /// The configured `--audience`, if any.
    #[must_use]
    pub fn audience(&self) -> Option<&str> {
        self.aud.as_deref()
    }

    /// The token lifetime in seconds.
    #[must_use]
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Issues a token signed by the active `key` at `now`. Its `exp` never passes the
    /// key's own `exp`, so it verifies against the JWKS for its whole life.
    ///
    /// # Errors
    /// [`KeyError`] if signing, the RNG or serialization fails.
    pub fn issue(
        &self,
        key: &KeyRecord,
        subject: &str,
        now: UnixMillis,
    ) -> Result<IssuedToken, KeyError> {
        let iat = now.div_euclid(1000);
        let exp = (iat + self.ttl_secs).min(key.schedule.expires_at.div_euclid(1000));
        let jti = uuid_v4()?;
        let token = self.sign(key, subject, iat, exp, jti.clone())?;
        Ok(IssuedToken {
            token,
            expires_in: exp - iat,
            jti: Some(jti),
        })
    }

    /// Issues a token as the expired `key` would have signed it just before it retired:
    /// its `exp` is at or before the key's `exp`, so already in the past.
    ///
    /// # Errors
    /// [`KeyError::Sign`] if signing fails.
    pub fn issue_expired(&self, key: &KeyRecord, subject: &str) -> Result<IssuedToken, KeyError> {
        let iat = key.schedule.retires_at.div_euclid(1000) - 1;
        let exp = (iat + self.ttl_secs).min(key.schedule.expires_at.div_euclid(1000));
        let jti = uuid_v4()?;
        let token = self.sign(key, subject, iat, exp, jti.clone())?;
        Ok(IssuedToken {
            token,
            expires_in: 0,
            jti: Some(jti),
        })
    }

    fn sign(
        &self,
        key: &KeyRecord,
        sub: &str,
        iat: i64,
        exp: i64,
        jti: String,
    ) -> Result<String, KeyError> {
        let claims = Claims {
            iss: &self.iss,
            sub,
            aud: self.aud.as_deref(),
            iat,
            nbf: iat,
            exp,
            jti,
        };
        let payload = serde_json::to_vec(&claims).map_err(KeyError::Json)?;
        let mut token = String::with_capacity(key.jws_header.len() + payload.len() * 4 / 3 + 400);
        token.push_str(&key.jws_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = key.key.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// A random (version 4) UUID in its hyphenated form (RFC 9562 §5.4).
///
/// # Errors
/// [`KeyError::Random`] if the system RNG fails.
pub fn uuid_v4() -> Result<String, KeyError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| KeyError::Random)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut uuid = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            uuid.push('-');
        }
        uuid.push(char::from(HEX[usize::from(byte >> 4)]));
        uuid.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    Ok(uuid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, Schedule, SigningKey};

    fn record(retires_at: i64, expires_at: i64) -> std::sync::Arc<KeyRecord> {
        let s = Schedule {
            created_at: 0,
            published_at: 0,
            activates_at: 0,
            retires_at,
            expires_at,
        };
        KeyRecord::new(SigningKey::generate(Algorithm::Es256).expect("gen"), s)
    }

    fn claims(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).expect("payload");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
    }

    #[test]
    fn claims_carry_issuer_subject_audience_and_a_ttl_long_life() {
        let issuer = Issuer::new(
            "https://issuer".into(),
            Some("api".into()),
            Duration::from_secs(900),
        );
        let key = record(10_000_000, 20_000_000);
        let t = issuer.issue(&key, "alice", 1_000_500).expect("issue");
        let c = claims(&t.token);
        assert_eq!(c["iss"], "https://issuer");
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["aud"], "api");
        assert_eq!(c["iat"], 1000);
        assert_eq!(c["nbf"], 1000);
        assert_eq!(c["exp"], 1900);
        assert_eq!(t.expires_in, 900);
        assert_eq!(t.token.split('.').count(), 3);
    }

    #[test]
    fn a_token_never_outlives_its_key() {
        let issuer = Issuer::new("i".into(), None, Duration::from_secs(900));
        let key = record(1_000_000, 1_100_000);
        let c = claims(&issuer.issue(&key, "bob", 1_000_000).expect("issue").token);
        assert_eq!(c["exp"], 1100);
        assert!(c.get("aud").is_none());
    }

    #[test]
    fn an_expired_token_expires_at_or_before_its_key() {
        let issuer = Issuer::new("i".into(), None, Duration::from_secs(60));
        let key = record(1_000_000, 1_070_000);
        let t = issuer.issue_expired(&key, "anonymous").expect("issue");
        let c = claims(&t.token);
        assert_eq!(c["iat"], 999);
        assert_eq!(c["exp"], 1059);
        assert_eq!(t.expires_in, 0);
    }

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let a = uuid_v4().expect("uuid");
        let b = uuid_v4().expect("uuid");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        let dashes: Vec<usize> = a.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23]);
        assert!(
            a.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
