//! RFC 9068 JWT access tokens (`typ: at+jwt`) and the negative-test tokens of
//! [`TestCase`]: each one wrong in exactly one way a correct verifier must catch.

use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{IssuedToken, Issuer, uuid_v4};
use crate::keys::{Algorithm, KeyError, KeyRecord, Schedule, SigningKey, UnixMillis};

/// `jti` prefix of negative-test tokens: harmless to a verifier, and how `/introspect`
/// recognises them on any replica without keeping state.
pub const TEST_JTI_PREFIX: &str = "test-case-";
/// `aud` of the `wrong_audience` case; never the audience of a real token.
pub const WRONG_AUDIENCE: &str = "urn:jwks-server:test-case:wrong-audience";
/// `iss` of the `wrong_issuer` case.
pub const WRONG_ISSUER: &str = "https://wrong-issuer.invalid";
/// How far the `expired` and `not_yet_valid` cases are out of range: twice the five
/// minutes of leeway some verifiers allow.
pub const TEST_CASE_OFFSET_SECS: i64 = 600;

/// What an access token says beyond the server's own claims.
#[derive(Debug, Clone, Copy)]
pub struct AccessGrant<'a> {
    /// `sub`: the client id (`client_credentials`) or the username (`password`).
    pub sub: &'a str,
    /// `client_id` (RFC 9068 §2.2).
    pub client_id: &'a str,
    /// `aud`; always present.
    pub aud: &'a str,
    /// The granted scope, space-delimited; `None` when none was granted.
    pub scope: Option<&'a str>,
    /// Extra claims (a client's fixed claims, the `claims` parameter); never one of
    /// [`crate::clients::RESERVED_CLAIMS`]; may replace `aud`.
    pub extra: Option<&'a Map<String, Value>>,
}

/// The claims of RFC 9068 §2.2, in the order they are serialized.
#[derive(Debug, Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// The negative-test tokens (`test_case=NAME` at `POST /token`, open mode only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCase {
    /// `exp` ten minutes past, signed by the current key.
    Expired,
    /// `nbf` ten minutes ahead.
    NotYetValid,
    /// Signed by a real key of the same algorithm that is never published.
    UnknownKid,
    /// The current key's signature with one bit flipped.
    BadSignature,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `aud` is an audience no real token carries.
    WrongAudience,
    /// `alg: none`, no signature (RFC 7519 §6).
    AlgNone,
    /// `alg: HS256` keyed with the active key's public key (PEM).
    Hs256KeyConfusion,
    /// `typ: JWT` instead of `at+jwt` (RFC 9068 §4).
    WrongTyp,
}

impl TestCase {
    /// Every case, in the order `GET /token/test-cases` lists them.
    pub const ALL: [Self; 9] = [
        Self::Expired,
        Self::NotYetValid,
        Self::UnknownKid,
        Self::BadSignature,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::AlgNone,
        Self::Hs256KeyConfusion,
        Self::WrongTyp,
    ];

    /// The `test_case` value.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::AlgNone => "alg_none",
            Self::Hs256KeyConfusion => "hs256_key_confusion",
            Self::WrongTyp => "wrong_typ",
        }
    }

    /// What is wrong with the token, in one line.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::Expired => {
                "exp is 10 minutes in the past (beyond a 5-minute leeway); signed by the current key"
            }
            Self::NotYetValid => "nbf is 10 minutes in the future (beyond a 5-minute leeway)",
            Self::UnknownKid => "signed by a real key whose kid is not in the JWKS",
            Self::BadSignature => "the current key's signature with one bit flipped",
            Self::WrongIssuer => "iss is https://wrong-issuer.invalid",
            Self::WrongAudience => "aud is urn:jwks-server:test-case:wrong-audience",
            Self::AlgNone => "alg is none and the signature is empty (unsecured JWT)",
            Self::Hs256KeyConfusion => {
                "alg is HS256, keyed with the active key's public key as PEM (key confusion)"
            }
            Self::WrongTyp => "typ is JWT, not at+jwt (RFC 9068 §4)",
        }
    }

    /// The case named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// One never-published key per algorithm, generated on first use (on the blocking
/// pool: RSA takes tens of milliseconds), for the `unknown_kid` case.
#[derive(Debug, Default)]
pub struct UnpublishedKeys {
    rsa: tokio::sync::OnceCell<Arc<KeyRecord>>,
    ec: tokio::sync::OnceCell<Arc<KeyRecord>>,
    ed: tokio::sync::OnceCell<Arc<KeyRecord>>,
}

impl UnpublishedKeys {
    /// The unpublished key of `alg`.
    ///
    /// # Errors
    /// [`KeyError`] if generation fails.
    pub async fn get(&self, alg: Algorithm) -> Result<Arc<KeyRecord>, KeyError> {
        let cell = match alg {
            Algorithm::Rs256 => &self.rsa,
            Algorithm::Es256 => &self.ec,
            Algorithm::EdDsa => &self.ed,
        };
        cell.get_or_try_init(|| async move {
            let key = tokio::task::spawn_blocking(move || SigningKey::generate(alg))
                .await
                .map_err(KeyError::Task)??;
            let never = Schedule {
                created_at: 0,
                published_at: 0,
                activates_at: 0,
                retires_at: 0,
                expires_at: 0,
            };
            Ok(KeyRecord::new(key, never))
        })
        .await
        .cloned()
    }
}

impl Issuer {
    /// Issues an RFC 9068 access token signed by the active `key` at `now`. Like
    /// [`Issuer::issue`], its `exp` never passes the key's own.
    ///
    /// # Errors
    /// [`KeyError::Sign`] if signing fails.
    pub fn issue_access(
        &self,
        key: &KeyRecord,
        grant: &AccessGrant<'_>,
        now: UnixMillis,
    ) -> Result<IssuedToken, KeyError> {
        let iat = now.div_euclid(1000);
        let exp = (iat + self.ttl_secs).min(key.schedule.expires_at.div_euclid(1000));
        let jti = uuid_v4()?;
        let claims = self.access_claims(grant, iat, iat, exp, jti.clone());
        let payload = serialize(&claims, grant.extra)?;
        Ok(IssuedToken {
            token: sign_with(key, &key.access_jws_header, &payload)?,
            expires_in: exp - iat,
            jti: Some(jti),
        })
    }

    /// Issues the negative-test token `case` for `grant`, with the active `key` (and,
    /// for `unknown_kid`, the `unpublished` key of the same algorithm).
    ///
    /// # Errors
    /// [`KeyError`] if signing or key generation fails.
    pub fn issue_test_case(
        &self,
        case: TestCase,
        key: &KeyRecord,
        unpublished: &KeyRecord,
        grant: &AccessGrant<'_>,
        now: UnixMillis,
    ) -> Result<IssuedToken, KeyError> {
        let now_secs = now.div_euclid(1000);
        let jti = format!("{TEST_JTI_PREFIX}{}", uuid_v4()?);
        let (iat, nbf, exp) = match case {
            TestCase::Expired => {
                let exp = now_secs - TEST_CASE_OFFSET_SECS;
                (exp - self.ttl_secs, exp - self.ttl_secs, exp)
            }
            TestCase::NotYetValid => {
                let nbf = now_secs + TEST_CASE_OFFSET_SECS;
                (now_secs, nbf, nbf + self.ttl_secs)
            }
            _ => (now_secs, now_secs, now_secs + self.ttl_secs),
        };
        let mut claims = self.access_claims(grant, iat, nbf, exp, jti.clone());
        match case {
            TestCase::WrongIssuer => claims.iss = WRONG_ISSUER,
            TestCase::WrongAudience => claims.aud = WRONG_AUDIENCE,
            _ => {}
        }
        let mut extra = grant.extra.cloned();
        if case == TestCase::WrongAudience
            && let Some(map) = extra.as_mut()
        {
            map.remove("aud");
        }
        let payload = serialize(&claims, extra.as_ref())?;
        let header = |alg: &str, typ: &str| {
            URL_SAFE_NO_PAD.encode(format!(
                r#"{{"alg":"{alg}","kid":"{}","typ":"{typ}"}}"#,
                key.kid
            ))
        };
        let token = match case {
            TestCase::UnknownKid => {
                sign_with(unpublished, &unpublished.access_jws_header, &payload)?
            }
            TestCase::WrongTyp => sign_with(key, &key.jws_header, &payload)?,
            TestCase::BadSignature => {
                let mut token = signing_input(&key.access_jws_header, &payload);
                let mut signature = key.key.sign(token.as_bytes())?;
                let middle = signature.len() / 2;
                signature[middle] ^= 0x01;
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(signature, &mut token);
                token
            }
            TestCase::AlgNone => {
                // RFC 7519 §6.1: an unsecured JWT ends with an empty signature.
                let mut token = signing_input(&header("none", "at+jwt"), &payload);
                token.push('.');
                token
            }
            TestCase::Hs256KeyConfusion => {
                let pem = key.key.public_key_pem()?;
                let mac_key = hmac::Key::new(hmac::HMAC_SHA256, pem.as_bytes());
                let mut token = signing_input(&header("HS256", "at+jwt"), &payload);
                let tag = hmac::sign(&mac_key, token.as_bytes());
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
                token
            }
            _ => sign_with(key, &key.access_jws_header, &payload)?,
        };
        Ok(IssuedToken {
            token,
            expires_in: (exp - now_secs).max(0),
            jti: Some(jti),
        })
    }

    fn access_claims<'a>(
        &'a self,
        grant: &AccessGrant<'a>,
        iat: i64,
        nbf: i64,
        exp: i64,
        jti: String,
    ) -> AccessClaims<'a> {
        AccessClaims {
            iss: &self.iss,
            sub: grant.sub,
            aud: grant.aud,
            exp,
            iat,
            nbf,
            jti,
            client_id: grant.client_id,
            scope: grant.scope,
        }
    }
}

/// The claims as JSON; extra claims are merged in (replacing `aud` if they name it)
/// only when there are any, so the common token costs one typed serialization.
pub(super) fn serialize<T: Serialize>(
    claims: &T,
    extra: Option<&Map<String, Value>>,
) -> Result<Vec<u8>, KeyError> {
    match extra {
        Some(extra) if !extra.is_empty() => {
            let Value::Object(mut map) =
                serde_json::to_value(claims).map_err(|_| KeyError::Sign)?
            else {
                return Err(KeyError::Sign);
            };
            for (name, value) in extra {
                map.insert(name.clone(), value.clone());
            }
            serde_json::to_vec(&map).map_err(|_| KeyError::Sign)
        }
        _ => serde_json::to_vec(claims).map_err(|_| KeyError::Sign),
    }
}

fn signing_input(header: &str, payload: &[u8]) -> String {
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    token
}

pub(super) fn sign_with(key: &KeyRecord, header: &str, payload: &[u8]) -> Result<String, KeyError> {
    let mut token = signing_input(header, payload);
    let signature = key.key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key() -> Arc<KeyRecord> {
        let s = Schedule {
            created_at: 0,
            published_at: 0,
            activates_at: 0,
            retires_at: 10_000_000,
            expires_at: 20_000_000,
        };
        KeyRecord::new(SigningKey::generate(Algorithm::Es256).expect("gen"), s)
    }

    fn part(token: &str, i: usize) -> Value {
        let raw = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).expect("part"))
            .expect("b64");
        serde_json::from_slice(&raw).expect("json")
    }

    #[test]
    fn access_tokens_carry_the_rfc_9068_claims_and_extra_claims_replace_defaults() {
        let issuer = Issuer::new("https://iss".into(), None, Duration::from_secs(60));
        let key = key();
        let mut extra = Map::new();
        extra.insert("tenant".into(), "acme".into());
        extra.insert("aud".into(), "other-api".into());
        let grant = AccessGrant {
            sub: "svc",
            client_id: "svc",
            aud: "api",
            scope: Some("read"),
            extra: None,
        };
        let t = issuer.issue_access(&key, &grant, 1_000_000).expect("issue");
        assert_eq!(part(&t.token, 0)["typ"], "at+jwt");
        let c = part(&t.token, 1);
        assert_eq!(
            (c["iss"].as_str(), c["sub"].as_str(), c["aud"].as_str()),
            (Some("https://iss"), Some("svc"), Some("api"))
        );
        assert_eq!(
            (c["iat"].as_i64(), c["exp"].as_i64()),
            (Some(1000), Some(1060))
        );
        assert_eq!(c["client_id"], "svc");
        assert_eq!(c["scope"], "read");
        let with_extra = AccessGrant {
            extra: Some(&extra),
            scope: None,
            ..grant
        };
        let c = part(
            &issuer
                .issue_access(&key, &with_extra, 1_000_000)
                .expect("issue")
                .token,
            1,
        );
        assert_eq!(c["tenant"], "acme");
        assert_eq!(c["aud"], "other-api");
        assert!(c.get("scope").is_none());
    }

    #[test]
    fn test_case_names_round_trip() {
        for case in TestCase::ALL {
            assert_eq!(TestCase::parse(case.name()), Some(case));
            assert!(!case.description().is_empty());
        }
        assert_eq!(TestCase::parse("nope"), None);
    }
}
