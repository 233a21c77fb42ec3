//! The strict JWS parser and verifier of `selftest` (`selftest/jwt.rs`) and its reading
//! of a JWK Set (`selftest/jwks.rs`), against a published set of one key of each
//! algorithm and a token each key signed, made once per process. Input: the first byte
//! picks the case.
//! - any text parsed: a parsed token is three canonical base64url parts within 16 KiB
//!   whose header and claims read the same as `serde_json` reads them, without `crit`;
//!   every refusal is `malformed`;
//! - any text verified: it verifies only if it is a genuine token;
//! - a genuine token with bytes replaced, inserted or removed: a token that verifies has
//!   the genuine signing input and claims;
//! - any bytes as a JWK Set, then the genuine tokens against what it yields: no check
//!   prints a detail past its limit, and a token verifies only under its own algorithm.
#![no_main]

#[path = "edits.rs"]
mod edits;

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edits::{edited, signed_part};
use jwks_server::keys::{Algorithm, SigningKey};
use jwks_server::selftest::fuzzing::{Expected, Keys, parse, verify};
use jwks_server::selftest::{MAX_DETAIL_CHARS, MAX_TOKEN_BYTES};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const NOW: i64 = 1_750_000_000;
const EXPECTED: Expected<'static> = Expected {
    issuer: Some("http://issuer"),
    audience: Some("api"),
    typ: Some("at+jwt"),
    now: NOW,
};

/// A genuine token, the algorithm that signed it and its claims.
struct Genuine {
    token: String,
    alg: &'static str,
    claims: Map<String, Value>,
}

struct Fixture {
    keys: Keys,
    tokens: Vec<Genuine>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let signing: Vec<SigningKey> = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa]
        .into_iter()
        .map(|alg| SigningKey::generate(alg).expect("a key"))
        .collect();
    let document =
        json!({ "keys": signing.iter().map(SigningKey::public_jwk).collect::<Vec<_>>() });
    let (_, keys) = Keys::from_jwks(document.to_string().as_bytes());
    let keys = keys.expect("our own JWK Set");
    let tokens = signing
        .iter()
        .map(|key| {
            let alg = key.algorithm().as_str();
            let header =
                json!({"alg": alg, "kid": key.public_jwk().kid().as_str(), "typ": "at+jwt"});
            let claims = json!({
                "iss": "http://issuer", "sub": "svc", "aud": ["api", "other"],
                "iat": NOW, "nbf": NOW, "exp": NOW + 600, "scope": "read",
            });
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = key.sign(input.as_bytes()).expect("signs");
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
            let (verified_alg, claims) = verify(&token, &keys, EXPECTED).expect("verifies");
            assert_eq!(verified_alg, alg);
            Genuine { token, alg, claims }
        })
        .collect();
    Fixture { keys, tokens }
});

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => check_parse(&String::from_utf8_lossy(rest)),
        1 => {
            let token = String::from_utf8_lossy(rest);
            if let Ok((_, claims)) = verify(&token, &fixture.keys, EXPECTED) {
                let genuine = fixture
                    .tokens
                    .iter()
                    .find(|g| signed_part(&g.token) == signed_part(&token));
                assert_eq!(genuine.map(|g| &g.claims), Some(&claims), "forged: {token}");
            }
        }
        2 => {
            let Some((&pick, edits)) = rest.split_first() else {
                return;
            };
            let genuine = &fixture.tokens[usize::from(pick) % fixture.tokens.len()];
            let token = edited(&genuine.token, edits);
            check_parse(&token);
            if let Ok((alg, claims)) = verify(&token, &fixture.keys, EXPECTED) {
                assert_eq!(signed_part(&token), signed_part(&genuine.token), "{token}");
                assert_eq!((alg, &claims), (genuine.alg, &genuine.claims), "{token}");
            }
        }
        _ => {
            let (checks, keys) = Keys::from_jwks(rest);
            for check in &checks {
                let chars = check.detail.chars().count();
                assert!(
                    chars <= MAX_DETAIL_CHARS + 1,
                    "{}: {chars} characters",
                    check.name
                );
            }
            let Some(keys) = keys else {
                return;
            };
            for genuine in &fixture.tokens {
                let expected = Expected {
                    now: NOW,
                    ..Expected::default()
                };
                if let Ok((alg, _)) = verify(&genuine.token, &keys, expected) {
                    assert_eq!(alg, genuine.alg, "verified under another algorithm");
                }
            }
        }
    }
});

fn check_parse(token: &str) {
    match parse(token) {
        Ok(parsed) => {
            assert!(token.len() <= MAX_TOKEN_BYTES);
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(parts.len(), 3, "{token}");
            let decoded: Vec<Vec<u8>> = parts
                .iter()
                .map(|part| URL_SAFE_NO_PAD.decode(part).expect("base64url"))
                .collect();
            for (part, bytes) in parts.iter().zip(&decoded) {
                assert_eq!(
                    &URL_SAFE_NO_PAD.encode(bytes),
                    part,
                    "not canonical base64url"
                );
            }
            let header: Map<String, Value> = serde_json::from_slice(&decoded[0]).expect("JSON");
            let claims: Map<String, Value> = serde_json::from_slice(&decoded[1]).expect("JSON");
            assert_eq!(parsed.header, header);
            assert_eq!(parsed.claims, claims);
            assert!(!header.contains_key("crit"));
            assert_eq!(
                parsed.kid.as_deref(),
                header.get("kid").and_then(Value::as_str)
            );
        }
        Err(reason) => assert!(reason.starts_with("malformed ("), "{reason}"),
    }
}
