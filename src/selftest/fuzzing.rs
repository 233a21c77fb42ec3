//! Entry points for the `selftest_jwt` fuzz target: the self-test's strict JWS parser
//! and verifier (`jwt.rs`) and its reading of a JWK Set document (`jwks.rs`), reachable
//! from outside the crate without making their types public. Not part of the API
//! (hidden from the docs); each function is the production code path, with the token or
//! document as a server under test would send it, and every rejection of a token
//! rendered as the report prints it.

use serde_json::{Map, Value};

use super::Check;
use super::jwks::{self, KeyRing};
use super::jwt::{self, Expect};

/// The verification keys of a JWK Set document, as the self-test reads it.
#[derive(Debug, Clone)]
pub struct Keys(KeyRing);

impl Keys {
    /// The usable keys of `document` and the checks of it the report shows; no keys
    /// when it is not a JWK Set at all.
    #[must_use]
    pub fn from_jwks(document: &[u8]) -> (Vec<Check>, Option<Self>) {
        let (checks, ring) = jwks::check_document(document);
        (checks, ring.map(Self))
    }
}

/// A token the parser accepted, before any signature check.
#[derive(Debug, Clone)]
pub struct ParsedToken {
    /// The JOSE header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// The header's `kid`, when it is a string.
    pub kid: Option<String>,
    /// `exp` in whole seconds, as the verifier reads it.
    pub exp: Option<i64>,
    /// The claim names as the report prints them.
    pub claim_names: String,
}

/// `token` through the strict parser (three unpadded base64url parts, JSON objects with
/// distinct member names, no `crit`, at most [`super::MAX_TOKEN_BYTES`]).
///
/// # Errors
/// The rejection as the report prints it.
pub fn parse(token: &str) -> Result<ParsedToken, String> {
    let parsed = jwt::parse(token).map_err(|r| r.to_string())?;
    Ok(ParsedToken {
        kid: parsed.kid().map(str::to_owned),
        exp: parsed.seconds("exp"),
        claim_names: parsed.claim_names(),
        header: parsed.header,
        claims: parsed.claims,
    })
}

/// What [`verify`] requires of a token besides its signature.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// The `iss` it must carry.
    pub issuer: Option<&'a str>,
    /// An audience `aud` must contain.
    pub audience: Option<&'a str>,
    /// The `typ` it must carry (`at+jwt`, `jwt`), any when `None`.
    pub typ: Option<&'a str>,
    /// The time now, Unix seconds.
    pub now: i64,
}

/// `token` verified against `keys`: the algorithm and the claims of a token that passes.
///
/// # Errors
/// Every reason it fails for, as the report prints them.
pub fn verify(
    token: &str,
    keys: &Keys,
    expected: Expected<'_>,
) -> Result<(&'static str, Map<String, Value>), Vec<String>> {
    let expect = Expect {
        issuer: expected.issuer,
        audience: expected.audience,
        typ: expected.typ,
        now: expected.now,
    };
    jwt::verify(token, &keys.0, &expect)
        .map(|verified| (verified.alg, verified.token.claims))
        .map_err(|rejections| rejections.iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::keys::{Algorithm, SigningKey};
    use crate::selftest::Outcome;

    #[test]
    fn the_fuzz_entry_points_run_the_selftest_parsers() {
        let key = SigningKey::generate(Algorithm::EdDsa).expect("generate");
        let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
        let (checks, keys) = Keys::from_jwks(jwks.as_bytes());
        let keys = keys.expect("a JWK Set");
        assert_eq!(checks[0].outcome, Outcome::Pass, "{checks:?}");
        let (checks, none) = Keys::from_jwks(b"[]");
        assert!(none.is_none());
        assert_eq!(checks[0].outcome, Outcome::Fail, "{checks:?}");

        let jwk = key.public_jwk();
        let kid = jwk.kid().as_str();
        let header = serde_json::json!({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"});
        let claims = serde_json::json!({"iss": "http://i", "exp": 1_000});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes()).expect("sign");
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));

        let parsed = parse(&token).expect("parses");
        assert_eq!(parsed.exp, Some(1_000));
        assert_eq!(parsed.claim_names, "exp, iss");
        assert_eq!(parsed.kid.as_deref(), Some(kid));
        assert!(
            parse("a.b")
                .expect_err("two parts")
                .starts_with("malformed")
        );

        let expected = Expected {
            issuer: Some("http://i"),
            typ: Some("at+jwt"),
            now: 900,
            ..Expected::default()
        };
        let (alg, verified) = verify(&token, &keys, expected).expect("verifies");
        assert_eq!(
            (alg, verified.get("exp")),
            ("EdDSA", Some(&Value::from(1_000)))
        );
        let late = Expected {
            now: 2_000,
            ..expected
        };
        assert_eq!(
            verify(&token, &keys, late).err(),
            Some(vec!["exp is past".to_owned()])
        );
    }
}
