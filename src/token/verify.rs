//! Verification of our own tokens for `/introspect` (RFC 7662), against the in-memory
//! [`KeySet`] only, never the database. A token is ours when it is signed with the
//! header's algorithm by a key of the snapshot that is published now (pending, active or
//! retired; an expired or unknown `kid` never verifies), names our issuer, and is within
//! `exp`/`nbf` allowing the clock skew. Negative-test tokens are never ours.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::access::{TEST_JTI_PREFIX, WRONG_AUDIENCE};
use crate::keys::{KeySet, UnixMillis};

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: Option<&'a str>,
}

/// The claims of `token` if it is an active token of `issuer` at `now`; `None` otherwise.
#[must_use]
pub fn verify_own(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    now: UnixMillis,
    skew_secs: i64,
) -> Option<Map<String, Value>> {
    verify(token, keys, issuer, now, skew_secs, &["at+jwt", "JWT"])
}

/// Like [`verify_own`], for RFC 9068 access tokens only (`typ: at+jwt`): what a resource
/// of ours (`/userinfo`) accepts. An ID token is not an access token (RFC 9068 §4).
#[must_use]
pub fn verify_access(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    now: UnixMillis,
    skew_secs: i64,
) -> Option<Map<String, Value>> {
    verify(token, keys, issuer, now, skew_secs, &["at+jwt"])
}

fn verify(
    token: &str,
    keys: &KeySet,
    issuer: &str,
    now: UnixMillis,
    skew_secs: i64,
    types: &[&str],
) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (header_b64, payload_b64, signature_b64) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header_raw = URL_SAFE_NO_PAD.decode(header_b64).ok()?;
    let header: Header<'_> = serde_json::from_slice(&header_raw).ok()?;
    // Our two token types: RFC 9068 access tokens and the `/auth` JWTs.
    if !header.typ.is_some_and(|t| types.contains(&t)) {
        return None;
    }
    let key = keys
        .keys()
        .iter()
        .find(|k| k.kid.as_str() == header.kid && k.schedule.is_published_at(now))?;
    // The algorithm is the key's, never the header's choice (RFC 8725 §3.1).
    if key.algorithm().as_str() != header.alg {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).ok()?;
    let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
    if !key.key.verify(signed.as_bytes(), &signature) {
        return None;
    }
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
    let Value::Object(claims) = serde_json::from_slice(&payload).ok()? else {
        return None;
    };
    let now_secs = now.div_euclid(1000);
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    let in_range = claims.get("iss").and_then(Value::as_str) == Some(issuer)
        && number("exp").is_some_and(|exp| now_secs < exp + skew_secs)
        && number("nbf").is_none_or(|nbf| nbf <= now_secs + skew_secs);
    let test_token = claims
        .get("jti")
        .and_then(Value::as_str)
        .is_some_and(|j| j.starts_with(TEST_JTI_PREFIX))
        || claims.get("aud").and_then(Value::as_str) == Some(WRONG_AUDIENCE);
    (in_range && !test_token).then_some(claims)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::keys::{Algorithm, KeyRecord, Schedule, SigningKey};
    use crate::token::{AccessGrant, Issuer, TestCase};

    fn key(published: i64, expires: i64) -> Arc<KeyRecord> {
        let s = Schedule {
            created_at: published,
            published_at: published,
            activates_at: published,
            retires_at: expires - 1,
            expires_at: expires,
        };
        KeyRecord::new(SigningKey::generate(Algorithm::EdDsa).expect("gen"), s)
    }

    const GRANT: AccessGrant<'static> = AccessGrant {
        sub: "svc",
        client_id: "svc",
        aud: "api",
        scope: None,
        extra: None,
    };

    #[test]
    fn only_untouched_tokens_of_a_published_key_and_our_issuer_are_active() {
        let issuer = Issuer::new("https://iss".into(), None, Duration::from_secs(60));
        let live = key(0, 10_000_000);
        let gone = key(0, 500_000);
        let set = KeySet::build(vec![live.clone(), gone.clone()], 0);
        let now = 1_000_000;
        let token = issuer
            .issue_access(&live, &GRANT, now)
            .expect("issue")
            .token;
        assert!(verify_own(&token, &set, "https://iss", now, 30).is_some());
        assert!(verify_own(&token, &set, "https://other", now, 30).is_none());
        assert!(verify_own(&token, &set, "https://iss", now + 89_000, 30).is_some());
        assert!(verify_own(&token, &set, "https://iss", now + 90_000, 30).is_none());
        let mut tampered = token.clone();
        tampered.insert(token.find('.').expect("dot") + 3, 'A');
        assert!(verify_own(&tampered, &set, "https://iss", now, 30).is_none());
        // Signed when the key was valid, but the key has since expired.
        let old = issuer
            .issue_access(&gone, &GRANT, 400_000)
            .expect("issue")
            .token;
        assert!(verify_own(&old, &set, "https://iss", 400_000, 30).is_some());
        assert!(verify_own(&old, &set, "https://iss", 500_000, 1_000).is_none());
        for case in TestCase::ALL {
            let t = issuer
                .issue_test_case(case, &live, &key(0, 1), &GRANT, now)
                .expect("issue")
                .token;
            assert!(
                verify_own(&t, &set, "https://iss", now, 30).is_none(),
                "{case:?}"
            );
        }
        assert!(verify_own("a.b", &set, "https://iss", now, 30).is_none());
        assert!(verify_own("a.b.c.d", &set, "https://iss", now, 30).is_none());
    }
}
