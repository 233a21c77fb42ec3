//! The key lifecycle seen over HTTP: the four invariants at every instant of many
//! rotations, driven by a manual clock; and one short run on the real clock.

use std::collections::HashSet;
use std::time::Duration;

use jwks_server::keys::ManualClock;
use serde_json::Value;

use crate::helpers::{jwt_claims, jwt_header, spawn_app_with, spawn_app_with_clock, verify};

const FLAGS: &[&str] = &[
    "--alg",
    "EdDSA",
    "--rotation-interval",
    "60s",
    "--publish-ahead",
    "20s",
    "--jwks-max-age",
    "10s",
    "--token-ttl",
    "30s",
    "--clock-skew",
    "5s",
    "--issuer",
    "iss",
];

fn kids(jwks: &Value) -> HashSet<String> {
    crate::helpers::kids(jwks).into_iter().collect()
}

#[tokio::test]
async fn the_four_invariants_hold_at_every_instant_across_rotations() {
    let start = jwks_server::keys::Clock::now(&jwks_server::keys::SystemClock);
    let clock = ManualClock::new(start);
    let app = spawn_app_with_clock(FLAGS, clock.clone()).await;
    let mut next_step = app.rotator.step().await.expect("step");
    let mut outstanding: Vec<(String, i64)> = Vec::new();
    let mut signing_kids = HashSet::new();
    // Eight minutes in 2 s ticks: eight rotations.
    for _ in 0..240 {
        clock.advance(Duration::from_secs(2));
        let now = jwks_server::keys::Clock::now(&clock);
        if now >= next_step {
            next_step = app.rotator.step().await.expect("step");
        }
        let jwks = app.jwks().await;
        let published = kids(&jwks);
        // 1. never empty, exactly one active key
        assert!(!published.is_empty());
        let set = app.rotator.handle().load_full();
        let active: Vec<_> = set
            .keys()
            .iter()
            .filter(|k| k.schedule.is_active_at(now))
            .collect();
        assert_eq!(active.len(), 1);
        // 4. an expired key is never published
        for key in set.keys() {
            if key.schedule.expires_at <= now {
                assert!(
                    !published.contains(key.kid.as_str()),
                    "expired key published"
                );
            }
        }
        let token = app.token("").await;
        let kid = jwt_header(&token)["kid"].as_str().expect("kid").to_owned();
        assert_eq!(kid, active[0].kid.as_str(), "the active key signs");
        signing_kids.insert(kid.clone());
        // 3. the token's exp is not later than its key's exp
        let exp = jwt_claims(&token)["exp"].as_i64().expect("exp");
        assert!(exp * 1000 <= active[0].schedule.expires_at);
        outstanding.push((token, exp));
        // 2. every token issued so far verifies against the JWKS until its own exp
        outstanding.retain(|(_, exp)| *exp * 1000 > now);
        for (token, _) in &outstanding {
            verify(token, &jwks, "iss")
                .unwrap_or_else(|e| panic!("token stopped verifying before its exp: {e}"));
        }
    }
    assert!(
        signing_kids.len() >= 8,
        "rotated through {} keys",
        signing_kids.len()
    );
}

#[tokio::test]
async fn the_next_key_is_published_before_it_signs() {
    let start = jwks_server::keys::Clock::now(&jwks_server::keys::SystemClock);
    let clock = ManualClock::new(start);
    let app = spawn_app_with_clock(FLAGS, clock.clone()).await;
    let first = jwt_header(&app.token("").await)["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let mut next_step = app.rotator.step().await.expect("step");
    let mut first_seen: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for _ in 0..200 {
        clock.advance(Duration::from_millis(1_000));
        let now = jwks_server::keys::Clock::now(&clock);
        if now >= next_step {
            next_step = app.rotator.step().await.expect("step");
        }
        for kid in kids(&app.jwks().await) {
            first_seen.entry(kid).or_insert(now);
        }
        let signer = jwt_header(&app.token("").await)["kid"]
            .as_str()
            .expect("kid")
            .to_owned();
        if signer != first {
            let seen = first_seen[&signer];
            assert!(
                now - seen >= 20_000,
                "published only {} ms before signing",
                now - seen
            );
        }
    }
}

#[tokio::test]
async fn keys_rotate_on_the_real_clock_without_breaking_tokens() {
    let app = spawn_app_with(&[
        "--alg",
        "EdDSA",
        "--rotation-interval",
        "400ms",
        "--publish-ahead",
        "200ms",
        "--jwks-max-age",
        "0s",
        "--token-ttl",
        "1s",
        "--clock-skew",
        "0s",
        "--issuer",
        "iss",
    ])
    .await;
    let mut signers = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2_500);
    while tokio::time::Instant::now() < deadline {
        let token = app.token("").await;
        signers.insert(jwt_header(&token)["kid"].as_str().expect("kid").to_owned());
        verify(&token, &app.jwks().await, "iss")
            .expect("a fresh token verifies against a fresh JWKS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        signers.len() >= 3,
        "only {} signing keys in 2.5 s",
        signers.len()
    );
    app.stop().await;
}
