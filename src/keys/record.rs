//! One key and its schedule. A key's state is a pure function of its schedule and the
//! time, so every replica and every request agrees on it without coordination.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::clock::UnixMillis;
use super::jwk::{Jwk, KeyId};
use super::signing::{Algorithm, SigningKey};

/// Where a key stands in its life at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing (clients fetch it before it is used).
    Pending,
    /// Published and signing every new token.
    Active,
    /// Published, no longer signing: its last tokens are still valid.
    Retired,
    /// Never published again; kept only to sign `?expired=true` tokens.
    Expired,
    /// Withdrawn by an operator (a leaked key): never published, never signs, never
    /// comes back. Terminal, whatever the schedule says.
    Revoked,
}

impl KeyState {
    /// The state's name as operators see it (`keys list`, the admin API, metrics).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// The explicit timestamps of a key's life, all in Unix milliseconds.
///
/// Invariant: `published_at <= activates_at <= retires_at <= expires_at`, and
/// `expires_at >= retires_at + longest token lifetime + clock skew`, so every token the
/// key signs expires before the key leaves the JWKS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When the key was generated.
    pub created_at: UnixMillis,
    /// When the public key entered the JWKS.
    pub published_at: UnixMillis,
    /// When the key starts signing.
    pub activates_at: UnixMillis,
    /// When the key stops signing.
    pub retires_at: UnixMillis,
    /// When the public key leaves the JWKS for good (the key's `exp`).
    pub expires_at: UnixMillis,
}

impl Schedule {
    /// The key's state at `now`.
    #[must_use]
    pub fn state_at(&self, now: UnixMillis) -> KeyState {
        if now >= self.expires_at {
            KeyState::Expired
        } else if now >= self.retires_at {
            KeyState::Retired
        } else if now >= self.activates_at {
            KeyState::Active
        } else {
            KeyState::Pending
        }
    }

    /// Whether the public key is in the JWKS at `now`.
    #[must_use]
    pub fn is_published_at(&self, now: UnixMillis) -> bool {
        self.published_at <= now && now < self.expires_at
    }

    /// Whether the key signs new tokens at `now`.
    #[must_use]
    pub fn is_active_at(&self, now: UnixMillis) -> bool {
        self.state_at(now) == KeyState::Active
    }
}

/// A key with its schedule: what the store persists and the key set publishes.
#[derive(Debug)]
pub struct KeyRecord {
    /// The RFC 7638 thumbprint of the public key.
    pub kid: KeyId,
    /// The parsed private key, cached for signing; shared by reschedules of the key.
    pub key: Arc<SigningKey>,
    /// The public JWK, computed once.
    pub jwk: Jwk,
    /// The base64url JWS protected header for tokens this key signs, computed once.
    pub jws_header: String,
    /// The same header with `typ: "at+jwt"`, for RFC 9068 access tokens (§2.1).
    pub access_jws_header: String,
    /// The key's life.
    pub schedule: Schedule,
}

impl KeyRecord {
    /// Wraps a key with its schedule, deriving the `kid`, JWK and JWS header once.
    #[must_use]
    pub fn new(key: SigningKey, schedule: Schedule) -> Arc<Self> {
        let jwk = key.public_jwk();
        let kid = jwk.kid().clone();
        let header = |typ: &str| {
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"alg":"{}","kid":"{kid}","typ":"{typ}"}}"#,
                key.algorithm()
            ))
        };
        let jws_header = header("JWT");
        let access_jws_header = header("at+jwt");
        Arc::new(Self {
            kid,
            key: Arc::new(key),
            jwk,
            jws_header,
            access_jws_header,
            schedule,
        })
    }

    /// The same key under a new schedule (used when a retirement is postponed).
    #[must_use]
    pub fn rescheduled(&self, schedule: Schedule) -> Arc<Self> {
        Arc::new(Self {
            kid: self.kid.clone(),
            key: Arc::clone(&self.key),
            jwk: self.jwk.clone(),
            jws_header: self.jws_header.clone(),
            access_jws_header: self.access_jws_header.clone(),
            schedule,
        })
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_the_schedule_with_half_open_intervals() {
        let s = Schedule {
            created_at: 0,
            published_at: 0,
            activates_at: 10,
            retires_at: 20,
            expires_at: 30,
        };
        assert_eq!(s.state_at(9), KeyState::Pending);
        assert_eq!(s.state_at(10), KeyState::Active);
        assert_eq!(s.state_at(19), KeyState::Active);
        assert_eq!(s.state_at(20), KeyState::Retired);
        assert_eq!(s.state_at(29), KeyState::Retired);
        assert_eq!(s.state_at(30), KeyState::Expired);
        assert!(s.is_published_at(0) && s.is_published_at(29) && !s.is_published_at(30));
        assert!(!s.is_published_at(-1));
    }

    #[test]
    fn header_names_the_algorithm_and_kid() {
        let key = SigningKey::generate(Algorithm::EdDsa).expect("generate");
        let s = Schedule {
            created_at: 0,
            published_at: 0,
            activates_at: 0,
            retires_at: 1,
            expires_at: 2,
        };
        let record = KeyRecord::new(key, s);
        let header = URL_SAFE_NO_PAD.decode(&record.jws_header).expect("b64");
        let header: serde_json::Value = serde_json::from_slice(&header).expect("json");
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], record.kid.as_str());
        let access = URL_SAFE_NO_PAD
            .decode(&record.access_jws_header)
            .expect("b64");
        let access: serde_json::Value = serde_json::from_slice(&access).expect("json");
        assert_eq!(access["typ"], "at+jwt");
        assert_eq!(access["kid"], header["kid"]);
        let moved = record.rescheduled(Schedule {
            retires_at: 5,
            expires_at: 9,
            ..s
        });
        assert_eq!(moved.kid, record.kid);
        assert_eq!(moved.schedule.retires_at, 5);
    }
}
