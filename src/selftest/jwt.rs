//! A strict, bounded parser and verifier of compact JWS tokens (RFC 7515 §7.1,
//! RFC 7519 §7.2) against a [`KeyRing`]. It reads untrusted bytes: a token longer than
//! [`MAX_TOKEN_BYTES`] is refused unread, every part must be unpadded base64url, header
//! and claims must be JSON objects, and a `crit` header is refused (RFC 7515 §4.1.11:
//! this verifier understands no extension).
//!
//! Verification happens in two stages. The signature stage (alg, kid, signature) stops
//! at the first failure, since nothing in an unverified token can be trusted; the claims
//! stage (`typ`, `iss`, `aud`, `exp`, `nbf`) then lists every defect, so a negative-test
//! token can be shown to be wrong for exactly one reason.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::jwks::KeyRing;
use super::shown;

/// The longest token accepted (bytes); ours are well under 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock difference allowed on `exp` and `nbf` (RFC 7519 §4.1.4: "some small leeway").
pub const LEEWAY_SECS: i64 = 60;

/// Why a token does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rejection {
    /// Not a compact JWS with a JSON header and JSON claims.
    Malformed(String),
    /// `alg: none`: an unsecured JWT (RFC 7519 §6), never acceptable here.
    Unsecured,
    /// The header names no `kid`.
    NoKid,
    /// No published key has the token's `kid`.
    UnknownKid(String),
    /// A key with the token's `kid` is published, but its members are unusable (see the
    /// `key material` line) or of a type this verifier does not know.
    UnusableKey(String),
    /// The header's `alg` is not the algorithm of the key it names (RFC 8725 §3.1: the
    /// key, not the token, decides the algorithm; HS256 "key confusion" ends here).
    AlgNotOfKey {
        /// The header's `alg`.
        alg: String,
        /// The algorithm of the key.
        key_alg: &'static str,
    },
    /// The signature does not verify under the key.
    BadSignature,
    /// `typ` is not the one expected (RFC 9068 §4: `at+jwt` for access tokens).
    WrongTyp(String),
    /// `iss` is missing or not the issuer.
    WrongIssuer(String),
    /// `aud` does not contain the expected audience.
    WrongAudience,
    /// `exp` is missing, or past (beyond [`LEEWAY_SECS`]).
    Expired,
    /// `nbf` is in the future (beyond [`LEEWAY_SECS`]).
    NotYetValid,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed ({why})"),
            Self::Unsecured => f.write_str("alg none (unsecured)"),
            Self::NoKid => f.write_str("no kid in the header"),
            Self::UnknownKid(kid) => write!(f, "kid {} is not in the JWKS", shown(kid)),
            Self::UnusableKey(kid) => {
                write!(
                    f,
                    "kid {} is published but its key cannot be used",
                    shown(kid)
                )
            }
            Self::AlgNotOfKey { alg, key_alg } => {
                write!(f, "alg {} is not the key's {key_alg}", shown(alg))
            }
            Self::BadSignature => f.write_str("signature does not verify"),
            Self::WrongTyp(typ) => write!(f, "typ {}", shown(typ)),
            Self::WrongIssuer(iss) => write!(f, "iss {}", shown(iss)),
            Self::WrongAudience => f.write_str("aud is not the expected audience"),
            Self::Expired => f.write_str("exp is past"),
            Self::NotYetValid => f.write_str("nbf is in the future"),
        }
    }
}

/// A parsed but unverified token.
#[derive(Debug, Clone)]
pub(super) struct Parsed {
    /// The JOSE header.
    pub(super) header: Map<String, Value>,
    /// The claims.
    pub(super) claims: Map<String, Value>,
    /// `BASE64URL(header) '.' BASE64URL(payload)`, the signing input (RFC 7515 §5.1).
    signing_input: String,
    signature: Vec<u8>,
}

impl Parsed {
    /// The header's `kid`, when it is a string.
    #[must_use]
    pub(super) fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// A numeric claim in whole seconds (RFC 7519 §2 NumericDate).
    #[must_use]
    pub(super) fn seconds(&self, name: &str) -> Option<i64> {
        let value = self.claims.get(name)?;
        value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f.floor() as i64))
    }

    /// The claim names, for display (never their values).
    #[must_use]
    pub(super) fn claim_names(&self) -> String {
        self.claims
            .keys()
            .map(|name| shown(name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Splits and decodes a compact JWS.
///
/// # Errors
/// [`Rejection::Malformed`] for anything but three base64url parts with a JSON object as
/// header and as claims, within [`MAX_TOKEN_BYTES`].
pub(super) fn parse(token: &str) -> Result<Parsed, Rejection> {
    let malformed = |why: &str| Rejection::Malformed(why.to_owned());
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| Rejection::Malformed(format!("{what} is not unpadded base64url")))
    };
    let object = |bytes: Vec<u8>, what: &str| {
        serde_json::from_slice::<UniqueObject>(&bytes)
            .map(|object| object.0)
            .map_err(|_| {
                Rejection::Malformed(format!(
                    "{what} is not a JSON object with distinct member names"
                ))
            })
    };
    let header_map = object(decode(header, "header")?, "header")?;
    let claims = object(decode(payload, "payload")?, "claims")?;
    let signature = decode(signature, "signature")?;
    if header_map.contains_key("crit") {
        return Err(malformed("crit header (RFC 7515 §4.1.11) not understood"));
    }
    Ok(Parsed {
        header: header_map,
        claims,
        signing_input: format!("{header}.{payload}"),
        signature,
    })
}

/// A JSON object whose member names are distinct. RFC 7515 §5.2 and RFC 7519 §7.2 let a
/// parser either reject duplicates or take the last one; a strict one rejects them, since
/// two libraries that read different values of one name disagree about the token.
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = UniqueObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueObject, A::Error> {
                let mut members = Map::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if members.insert(name, value).is_some() {
                        return Err(de::Error::custom("duplicate member name"));
                    }
                }
                Ok(UniqueObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// What a token must say besides carrying a valid signature.
#[derive(Debug, Clone, Default)]
pub(super) struct Expect<'a> {
    /// The `iss` it must carry (byte for byte).
    pub(super) issuer: Option<&'a str>,
    /// An audience `aud` must contain (RFC 7519 §4.1.3: a string or an array).
    pub(super) audience: Option<&'a str>,
    /// The `typ` it must carry (RFC 9068 §4: `at+jwt`); `None` accepts any or none.
    pub(super) typ: Option<&'a str>,
    /// The time now, Unix seconds.
    pub(super) now: i64,
}

/// A token that verified.
#[derive(Debug, Clone)]
pub(super) struct Verified {
    /// The token.
    pub(super) token: Parsed,
    /// The algorithm it was verified with.
    pub(super) alg: &'static str,
}

/// Verifies `token` against `keys` and `expect`.
///
/// # Errors
/// Every reason it fails for: one from the signature stage, or every claim defect.
pub(super) fn verify(
    token: &str,
    keys: &KeyRing,
    expect: &Expect<'_>,
) -> Result<Verified, Vec<Rejection>> {
    let parsed = parse(token).map_err(|r| vec![r])?;
    let alg = verify_signature(&parsed, keys).map_err(|r| vec![r])?;
    let defects = claim_defects(&parsed, expect);
    if defects.is_empty() {
        Ok(Verified { token: parsed, alg })
    } else {
        Err(defects)
    }
}

/// RFC 7515 §5.2: the key is the one the `kid` names, and its own algorithm decides.
fn verify_signature(token: &Parsed, keys: &KeyRing) -> Result<&'static str, Rejection> {
    let alg = token
        .header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| Rejection::Malformed("no alg in the header".into()))?;
    if alg == "none" {
        return Err(Rejection::Unsecured);
    }
    let kid = token.kid().ok_or(Rejection::NoKid)?;
    let mut candidates = keys.find(kid).peekable();
    let Some(first) = candidates.peek().cloned() else {
        return Err(if keys.publishes(kid) {
            Rejection::UnusableKey(kid.to_owned())
        } else {
            Rejection::UnknownKid(kid.to_owned())
        });
    };
    let key = candidates
        .find(|key| key.allows(alg))
        .ok_or_else(|| Rejection::AlgNotOfKey {
            alg: alg.to_owned(),
            key_alg: first.alg(),
        })?;
    if key.verifies(token.signing_input.as_bytes(), &token.signature) {
        Ok(key.alg())
    } else {
        Err(Rejection::BadSignature)
    }
}

fn claim_defects(token: &Parsed, expect: &Expect<'_>) -> Vec<Rejection> {
    let mut defects = Vec::new();
    if let Some(typ) = expect.typ {
        let actual = token.header.get("typ").and_then(Value::as_str);
        // RFC 9068 §4 allows the `application/` prefix; media types are case-insensitive.
        let stripped = actual.map(|t| {
            t.strip_prefix("application/")
                .unwrap_or(t)
                .to_ascii_lowercase()
        });
        if stripped.as_deref() != Some(typ) {
            defects.push(Rejection::WrongTyp(actual.unwrap_or("(none)").to_owned()));
        }
    }
    if let Some(issuer) = expect.issuer {
        match token.claims.get("iss").and_then(Value::as_str) {
            Some(iss) if iss == issuer => {}
            other => defects.push(Rejection::WrongIssuer(other.unwrap_or("(none)").to_owned())),
        }
    }
    if let Some(audience) = expect.audience {
        let contains = match token.claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !contains {
            defects.push(Rejection::WrongAudience);
        }
    }
    // RFC 7519 §4.1.4: reject on or after exp; every token we check must carry one.
    match token.seconds("exp") {
        Some(exp) if expect.now < exp.saturating_add(LEEWAY_SECS) => {}
        _ => defects.push(Rejection::Expired),
    }
    // RFC 7519 §4.1.5.
    if token
        .seconds("nbf")
        .is_some_and(|nbf| nbf > expect.now.saturating_add(LEEWAY_SECS))
    {
        defects.push(Rejection::NotYetValid);
    }
    defects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, SigningKey};
    use crate::selftest::jwks::check_document;

    const NOW: i64 = 1_800_000_000;

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).expect("json"))
    }

    fn ring_of(key: &SigningKey) -> KeyRing {
        let set = serde_json::json!({ "keys": [key.public_jwk()] });
        check_document(&serde_json::to_vec(&set).expect("json"))
            .1
            .expect("a JWK Set")
    }

    fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature = key.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn header(key: &SigningKey) -> Value {
        serde_json::json!({
            "alg": key.algorithm().as_str(),
            "kid": key.public_jwk().kid().as_str(),
            "typ": "at+jwt",
        })
    }

    fn claims() -> Value {
        serde_json::json!({"iss": "http://i", "aud": ["a", "b"], "exp": NOW + 60, "nbf": NOW - 1})
    }

    fn expect() -> Expect<'static> {
        Expect {
            issuer: Some("http://i"),
            audience: Some("b"),
            typ: Some("at+jwt"),
            now: NOW,
        }
    }

    #[test]
    fn tokens_of_every_algorithm_verify() {
        for alg in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
            let key = SigningKey::generate(alg).expect("generate");
            let token = sign(&key, &header(&key), &claims());
            let verified = verify(&token, &ring_of(&key), &expect()).expect("verifies");
            assert_eq!(verified.alg, alg.as_str());
            assert_eq!(verified.token.claim_names(), "aud, exp, iss, nbf");
        }
    }

    #[test]
    fn each_defect_is_the_one_reason_given() {
        let key = SigningKey::generate(Algorithm::Es256).expect("generate");
        let ring = ring_of(&key);
        let with = |edit: fn(&mut Value, &mut Value)| {
            let (mut h, mut c) = (header(&key), claims());
            edit(&mut h, &mut c);
            sign(&key, &h, &c)
        };
        type Edit = fn(&mut Value, &mut Value);
        let cases: [(Edit, Rejection); 6] = [
            (|_, c| c["exp"] = (NOW - 600).into(), Rejection::Expired),
            (|_, c| c["nbf"] = (NOW + 600).into(), Rejection::NotYetValid),
            (
                |_, c| c["iss"] = "http://other".into(),
                Rejection::WrongIssuer("http://other".into()),
            ),
            (|_, c| c["aud"] = "c".into(), Rejection::WrongAudience),
            (
                |h, _| h["typ"] = "JWT".into(),
                Rejection::WrongTyp("JWT".into()),
            ),
            (
                |h, _| h["kid"] = "nope".into(),
                Rejection::UnknownKid("nope".into()),
            ),
        ];
        for (edit, reason) in cases {
            let token = with(edit);
            assert_eq!(
                verify(&token, &ring, &expect()).map(|v| v.alg),
                Err(vec![reason])
            );
        }
    }

    #[test]
    fn signatures_that_do_not_match_are_rejected() {
        let key = SigningKey::generate(Algorithm::Rs256).expect("generate");
        let ring = ring_of(&key);
        let token = sign(&key, &header(&key), &claims());
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("b64");
        bytes[10] ^= 1;
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(
            verify(&flipped, &ring, &expect()).map(|v| v.alg),
            Err(vec![Rejection::BadSignature])
        );
        // HS256 keyed with anything: the key is RSA, so the alg is refused unread.
        let mut h = header(&key);
        h["alg"] = "HS256".into();
        let confused = format!("{}.{}.{}", b64(&h), b64(&claims()), "AAAA");
        let result = verify(&confused, &ring, &expect());
        assert!(matches!(
            result.as_ref().err().map(Vec::as_slice),
            Some([Rejection::AlgNotOfKey { .. }])
        ));
        h["alg"] = "none".into();
        let unsecured = format!("{}.{}.", b64(&h), b64(&claims()));
        assert_eq!(
            verify(&unsecured, &ring, &expect()).map(|v| v.alg),
            Err(vec![Rejection::Unsecured])
        );
    }

    #[test]
    fn the_parser_refuses_anything_but_three_base64url_json_parts() {
        let good_header = b64(&serde_json::json!({"alg": "ES256"}));
        let good_claims = b64(&serde_json::json!({"exp": 1}));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for token in [
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{good_header}.{good_claims}"),
            format!("{good_header}=.{good_claims}.AAAA"),
            format!("{good_header}.{good_claims}.AA+A"),
            format!("{}.{good_claims}.AAAA", b64(&Value::from(5))),
            format!("{good_header}.{}.AAAA", URL_SAFE_NO_PAD.encode("[1]")),
            format!(
                "{good_header}.{}.AAAA",
                URL_SAFE_NO_PAD.encode(r#"{"exp": 1, "exp": 9999999999}"#)
            ),
            format!(
                "{}.{good_claims}.AAAA",
                URL_SAFE_NO_PAD.encode(r#"{"alg": "ES256", "alg": "none"}"#)
            ),
            format!(
                "{}.{good_claims}.AAAA",
                b64(&serde_json::json!({"alg": "ES256", "crit": ["x"]}))
            ),
            long,
        ] {
            assert!(
                matches!(parse(&token), Err(Rejection::Malformed(_))),
                "{token:.40}"
            );
        }
        assert!(parse(&format!("{good_header}.{good_claims}.AAAA")).is_ok());
        let nested = URL_SAFE_NO_PAD.encode(r#"{"exp": 1, "a": {"b": 1}, "c": {"b": 2}}"#);
        assert!(parse(&format!("{good_header}.{nested}.AAAA")).is_ok());
    }
}
