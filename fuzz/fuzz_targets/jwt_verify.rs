//! The JWT parsing of `/introspect`: `token::verify_own` against a real key set (one key
//! of each algorithm, made once per process) and tokens it issued at start (an access
//! token and an `/auth` token per key). Input: the first byte picks the case.
//! - any text as a token: it is active only if it is a genuine token;
//! - a genuine token with bytes replaced, inserted or removed: an accepted result has
//!   the genuine signing input and claims;
//! - a genuine token at another time: active exactly while its key is published, before
//!   `exp` and from `nbf`, each allowing the clock skew.
#![no_main]

#[path = "edits.rs"]
mod edits;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use edits::{edited, signed_part};
use jwks_server::keys::{Algorithm, KeyRecord, KeySet, Schedule, SigningKey, UnixMillis};
use jwks_server::token::{AccessGrant, Issuer, verify_own};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const ISSUER: &str = "https://issuer.example";
const NOW: UnixMillis = 1_750_000_000_000;
const HOUR: UnixMillis = 3_600_000;
const SKEW_SECS: i64 = 30;

/// A genuine token, the key that signed it and the claims `verify_own` returns for it.
struct Genuine {
    token: String,
    key: Arc<KeyRecord>,
    claims: Map<String, Value>,
}

struct Fixture {
    keys: KeySet,
    tokens: Vec<Genuine>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let schedule = Schedule {
        created_at: NOW - HOUR,
        published_at: NOW - HOUR,
        activates_at: NOW - HOUR,
        retires_at: NOW + HOUR / 2,
        expires_at: NOW + HOUR,
    };
    let records: Vec<Arc<KeyRecord>> = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa]
        .into_iter()
        .map(|alg| KeyRecord::new(SigningKey::generate(alg).expect("a key"), schedule))
        .collect();
    let keys = KeySet::build(records.clone(), NOW);
    let issuer = Issuer::new(ISSUER.into(), Some("api".into()), Duration::from_secs(600));
    let grant = AccessGrant {
        sub: "svc",
        client_id: "svc",
        aud: "api",
        scope: Some("read write"),
        extra: None,
    };
    let mut tokens = Vec::new();
    for key in &records {
        let access = issuer.issue_access(key, &grant, NOW).expect("issues");
        let auth = issuer.issue(key, "alice", NOW).expect("issues");
        for token in [access.token, auth.token] {
            let claims = verify_own(&token, &keys, ISSUER, NOW, SKEW_SECS).expect("active");
            tokens.push(Genuine {
                token,
                key: Arc::clone(key),
                claims,
            });
        }
    }
    Fixture { keys, tokens }
});

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let token = String::from_utf8_lossy(rest);
            if let Some(claims) = verify_own(&token, &fixture.keys, ISSUER, NOW, SKEW_SECS) {
                let genuine = fixture
                    .tokens
                    .iter()
                    .find(|g| signed_part(&g.token) == signed_part(&token));
                assert_eq!(genuine.map(|g| &g.claims), Some(&claims), "forged: {token}");
            }
        }
        1 => {
            let Some((&pick, edits)) = rest.split_first() else {
                return;
            };
            let genuine = &fixture.tokens[usize::from(pick) % fixture.tokens.len()];
            let token = edited(&genuine.token, edits);
            if let Some(claims) = verify_own(&token, &fixture.keys, ISSUER, NOW, SKEW_SECS) {
                assert_eq!(signed_part(&token), signed_part(&genuine.token), "{token}");
                assert_eq!(claims, genuine.claims, "{token}");
            }
        }
        _ => {
            let [pick, s0, s1, m0, m1, ..] = *rest else {
                return;
            };
            let genuine = &fixture.tokens[usize::from(pick) % fixture.tokens.len()];
            // Up to nine hours either side, to the millisecond.
            let offset = i64::from(i16::from_le_bytes([s0, s1])) * 1000
                + i64::from(u16::from_le_bytes([m0, m1]) % 1000);
            let now = NOW + offset;
            let now_secs = now.div_euclid(1000);
            let claim = |name: &str| genuine.claims.get(name).and_then(Value::as_i64);
            let exp = claim("exp").expect("our tokens carry exp");
            let nbf = claim("nbf").expect("our tokens carry nbf");
            let expected = genuine.key.schedule.is_published_at(now)
                && now_secs < exp + SKEW_SECS
                && nbf <= now_secs + SKEW_SECS;
            let active = verify_own(&genuine.token, &fixture.keys, ISSUER, now, SKEW_SECS);
            assert_eq!(active.is_some(), expected, "at {offset} ms from issue");
            if let Some(claims) = active {
                assert_eq!(claims, genuine.claims);
            }
        }
    }
});
