//! OpenID Connect ID tokens (OpenID Connect Core 1.0 §2, §3.1.3.6): `typ: JWT`, signed
//! by the active key like every other token.

use aws_lc_rs::digest::{self, SHA256, SHA512};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value};

use super::access::{serialize, sign_with};
use super::{IssuedToken, Issuer};
use crate::keys::{Algorithm, KeyError, KeyRecord, UnixMillis};

/// What an ID token says about the sign-in.
#[derive(Debug, Clone, Copy)]
pub struct IdGrant<'a> {
    /// `sub`: who signed in.
    pub sub: &'a str,
    /// `aud`: the client id (OpenID Connect Core §2).
    pub client_id: &'a str,
    /// `auth_time`, Unix seconds.
    pub auth_time: i64,
    /// `nonce`, when the authorization request had one.
    pub nonce: Option<&'a str>,
    /// The access token issued with it, for `at_hash`.
    pub access_token: &'a str,
    /// The claims the scopes allow and the extra claims, none of them the server's own.
    pub claims: &'a Map<String, Value>,
}

#[derive(Debug, Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
}

/// `at_hash` (OpenID Connect Core §3.1.3.6): the base64url of the left half of the hash
/// of the access token's ASCII, with the hash of the JWS algorithm: SHA-256 for RS256 and
/// ES256; SHA-512 for EdDSA over Ed25519 (the convention of the OpenID Foundation's
/// certified providers, since the `alg` names no hash).
#[must_use]
pub fn at_hash(alg: Algorithm, access_token: &str) -> String {
    let hash = match alg {
        Algorithm::Rs256 | Algorithm::Es256 => digest::digest(&SHA256, access_token.as_bytes()),
        Algorithm::EdDsa => digest::digest(&SHA512, access_token.as_bytes()),
    };
    let bytes = hash.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

impl Issuer {
    /// Issues an ID token signed by the active `key` at `now`; like every token, its
    /// `exp` never passes the key's own.
    ///
    /// # Errors
    /// [`KeyError`] if signing or serialization fails.
    pub fn issue_id_token(
        &self,
        key: &KeyRecord,
        grant: &IdGrant<'_>,
        now: UnixMillis,
    ) -> Result<IssuedToken, KeyError> {
        let iat = now.div_euclid(1000);
        let exp = (iat + self.ttl_secs).min(key.schedule.expires_at.div_euclid(1000));
        let claims = IdClaims {
            iss: &self.iss,
            sub: grant.sub,
            aud: grant.client_id,
            exp,
            iat,
            auth_time: grant.auth_time,
            nonce: grant.nonce,
            at_hash: at_hash(key.algorithm(), grant.access_token),
        };
        let extra = (!grant.claims.is_empty()).then_some(grant.claims);
        let payload = serialize(&claims, extra)?;
        Ok(IssuedToken {
            token: sign_with(key, &key.jws_header, &payload)?,
            expires_in: exp - iat,
            jti: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // OpenID Connect Core §A.3 (RS256): the access token and its at_hash.
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(at_hash(Algorithm::Rs256, token), "77QmUPtjPfzWtF2AnpK9RQ");
        assert_eq!(at_hash(Algorithm::Es256, token), "77QmUPtjPfzWtF2AnpK9RQ");
        // 32 bytes of SHA-512 make 43 characters.
        assert_eq!(at_hash(Algorithm::EdDsa, token).len(), 43);
    }
}
