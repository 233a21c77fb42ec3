//! Operating keys on a live deployment: the admin listener (its token, `/metrics`, list,
//! rotate, revoke), and the `keys list|rotate|revoke` commands against running servers on
//! SQLite and on three PostgreSQL replicas under traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use jwks_server::keys::ManualClock;
use serde_json::{Value, json};

use crate::helpers::{TestApp, jwt_header, kids, spawn_app_with, spawn_app_with_clock, verify};
use crate::process::{HttpClient, MASTER_KEY, Server};

const TOKEN: &str = "s3cret-admin-token";
const START: i64 = 1_800_000_000_000;

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn admin_get(app: &TestApp, path: &str, token: Option<&str>) -> crate::helpers::TestResponse {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    app.admin_send(Method::GET, path, &headers, Vec::new())
        .await
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> crate::helpers::TestResponse {
    let auth = bearer(TOKEN);
    app.admin_send(
        Method::POST,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&body).expect("json"),
    )
    .await
}

async fn active_kid(app: &TestApp) -> String {
    app.get("/readyz").await.json()["active_kid"]
        .as_str()
        .expect("active kid")
        .to_owned()
}

const ADMIN: [&str; 4] = ["--admin-port", "0", "--admin-token", TOKEN];

#[tokio::test]
async fn the_admin_api_wants_its_bearer_token_and_is_not_on_the_public_port() {
    let app = spawn_app_with(&ADMIN).await;
    for token in [None, Some("wrong"), Some("")] {
        let res = admin_get(&app, "/admin/keys", token).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(res.json()["error"], "unauthorized");
        assert!(
            res.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer"))
        );
    }
    let res = app
        .admin_send(
            Method::POST,
            "/admin/keys/rotate",
            &[("authorization", "Basic YWRtaW46eA==")],
            Vec::new(),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "Basic is no bearer token"
    );
    let listing = admin_get(&app, "/admin/keys", Some(TOKEN)).await;
    assert_eq!(listing.status, StatusCode::OK);
    let keys = listing.json()["keys"].as_array().expect("keys").clone();
    let states: Vec<&str> = keys
        .iter()
        .map(|k| k["state"].as_str().expect("state"))
        .collect();
    assert!(
        states.contains(&"active") && states.contains(&"expired"),
        "{states:?}"
    );
    for key in &keys {
        assert!(
            key.get("d").is_none() && key.get("key").is_none(),
            "no private material"
        );
        assert!(
            key["activates_at_ms"].as_i64().expect("ms")
                <= key["retires_at_ms"].as_i64().expect("ms")
        );
    }
    // Metrics need no token; nothing of the admin listener is on the public port.
    assert_eq!(
        admin_get(&app, "/metrics", None).await.status,
        StatusCode::OK
    );
    for path in ["/metrics", "/admin/keys"] {
        assert_eq!(app.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    app.stop().await;

    // Without a configured token every admin request is refused, whatever it carries.
    let app = spawn_app_with(&["--admin-port", "0"]).await;
    let res = admin_get(&app, "/admin/keys", Some(TOKEN)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        admin_get(&app, "/metrics", None).await.status,
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn revoking_the_signing_key_replaces_it_at_once_and_it_never_comes_back() {
    let app = spawn_app_with(&ADMIN).await;
    let leaked = active_kid(&app).await;
    let expired = admin_get(&app, "/admin/keys", Some(TOKEN)).await.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["state"] == "expired")
        .expect("an expired key")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let res = admin_post(
        &app,
        &format!("/admin/keys/{leaked}/revoke"),
        json!({"reason": "leaked"}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let outcome = res.json();
    assert_eq!(outcome["revoked"], leaked.as_str());
    assert_eq!(outcome["signs_at_once"], true);
    let fresh = outcome["created"]["kid"]
        .as_str()
        .expect("a fresh key")
        .to_owned();
    assert_ne!(fresh, leaked);

    // At once: gone from the JWKS, a fresh key signs, and ?expired=true does not use it.
    let jwks = app.jwks().await;
    assert!(
        !kids(&jwks).contains(&leaked),
        "revoked key still published"
    );
    let token = app.token("").await;
    assert_eq!(jwt_header(&token)["kid"], fresh.as_str());
    verify(&token, &jwks, &app.url("")).expect("a token of the fresh key verifies");
    assert_ne!(
        jwt_header(&app.token("?expired=true").await)["kid"],
        leaked.as_str()
    );
    assert_eq!(active_kid(&app).await, fresh);

    // Clear refusals.
    let again = admin_post(&app, &format!("/admin/keys/{leaked}/revoke"), json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.json()["error_description"]
            .as_str()
            .expect("text")
            .contains("already revoked")
    );
    let unknown = admin_post(&app, "/admin/keys/no-such-kid/revoke", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"], "unknown_key");
    let old = admin_post(&app, &format!("/admin/keys/{expired}/revoke"), json!({})).await;
    assert_eq!(old.status, StatusCode::CONFLICT);
    assert!(
        old.json()["error_description"]
            .as_str()
            .expect("text")
            .contains("expired")
    );
    let bad = admin_post(
        &app,
        &format!("/admin/keys/{fresh}/revoke"),
        json!({"why": 1}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let listing = admin_get(&app, "/admin/keys", Some(TOKEN)).await.json();
    let entry = listing["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == leaked.as_str())
        .expect("a revoked key stays listed")
        .clone();
    assert_eq!(entry["state"], "revoked");
    assert_eq!(entry["revoked_reason"], "leaked");
    app.stop().await;
}

#[tokio::test]
async fn rotate_publishes_a_successor_now_that_signs_after_publish_ahead() {
    let clock = ManualClock::new(START);
    let app = spawn_app_with_clock(&ADMIN, clock.clone()).await;
    let before = active_kid(&app).await;
    let res = admin_post(&app, "/admin/keys/rotate", json!({})).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let created = res.json()["created"].clone();
    let next = created["kid"].as_str().expect("kid").to_owned();
    assert_eq!(created["state"], "pending");
    assert_eq!(res.json()["signs_at_once"], false);
    // Published now, signing after --publish-ahead (15 minutes by default).
    assert!(kids(&app.jwks().await).contains(&next));
    assert_eq!(created["published_at_ms"], START);
    assert_eq!(created["activates_at_ms"], START + 900_000);
    assert_eq!(jwt_header(&app.token("").await)["kid"], before.as_str());
    let ready = app.get("/readyz").await.json();
    assert_eq!(ready["next_kid"], next.as_str());
    assert_eq!(ready["next_activates_at_ms"], START + 900_000);
    clock.advance(Duration::from_secs(900));
    assert_eq!(jwt_header(&app.token("").await)["kid"], next.as_str());
    assert!(
        kids(&app.jwks().await).contains(&before),
        "the old key stays for its tokens"
    );

    // --immediate: the new key signs at once.
    let res = admin_post(&app, "/admin/keys/rotate", json!({"immediate": true})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["signs_at_once"], true);
    let now_signing = res.json()["created"]["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert_eq!(
        jwt_header(&app.token("").await)["kid"],
        now_signing.as_str()
    );
    app.stop().await;
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text format");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[tokio::test]
async fn metrics_follow_the_lifecycle_as_it_moves() {
    let clock = ManualClock::new(START);
    let app = spawn_app_with_clock(
        &[
            &ADMIN[..],
            &[
                "--rotation-interval",
                "60s",
                "--publish-ahead",
                "20s",
                "--jwks-max-age",
                "10s",
            ],
        ]
        .concat(),
        clock.clone(),
    )
    .await;
    let scrape = || async { admin_get(&app, "/metrics", None).await };
    let res = scrape().await;
    assert!(
        res.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4"))
    );
    let text = String::from_utf8(res.body.to_vec()).expect("utf-8");
    assert_eq!(
        sample(&text, "jwks_keys", &[("state", "active")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "jwks_keys", &[("state", "expired")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "jwks_active_key_age_seconds", &[]), Some(0.0));
    assert_eq!(sample(&text, "jwks_publish_ahead_seconds", &[]), Some(20.0));
    // Nothing was late: no retirement waited for its successor.
    assert_eq!(
        sample(&text, "jwks_postponed_retirements_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "jwks_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(sample(&text, "process_open_fds", &[]).is_some_and(|n| n > 0.0));
    assert!(sample(&text, "process_resident_memory_bytes", &[]).is_some_and(|n| n > 0.0));
    assert!(sample(&text, "jwks_store_last_success_timestamp_seconds", &[]).is_some());

    // Requests count: JWKS 200 and 304, tokens by grant and kind, refused credentials.
    let etag = app
        .get("/jwks")
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    app.send(
        Method::GET,
        "/jwks",
        &[("if-none-match", &etag)],
        Vec::new(),
    )
    .await;
    app.token("").await;
    app.token("?expired=true").await;
    let text = String::from_utf8(scrape().await.body.to_vec()).expect("utf-8");
    assert_eq!(
        sample(&text, "jwks_responses_total", &[("status", "200")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "jwks_responses_total", &[("status", "304")]),
        Some(1.0)
    );
    let issued = |kind| {
        sample(
            &text,
            "jwks_tokens_issued_total",
            &[
                ("endpoint", "/auth"),
                ("grant", "anonymous"),
                ("kind", kind),
            ],
        )
    };
    assert_eq!(
        (issued("normal"), issued("expired")),
        (Some(1.0), Some(1.0))
    );

    // `/token` counts by grant and kind, negative-test tokens apart.
    for body in [
        "grant_type=client_credentials&client_id=metrics",
        "grant_type=client_credentials&client_id=metrics&test_case=expired",
    ] {
        let res = app
            .send(
                Method::POST,
                "/token",
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    }
    let text = String::from_utf8(scrape().await.body.to_vec()).expect("utf-8");
    let oauth = |kind| {
        sample(
            &text,
            "jwks_tokens_issued_total",
            &[
                ("endpoint", "/token"),
                ("grant", "client_credentials"),
                ("kind", kind),
            ],
        )
    };
    assert_eq!(
        (oauth("normal"), oauth("test_case")),
        (Some(1.0), Some(1.0))
    );

    // Through a rotation: the successor is published, then signs.
    let rotations = sample(&text, "jwks_rotations_total", &[]).expect("rotations");
    clock.advance(Duration::from_secs(30));
    app.rotator.step().await.expect("step");
    let text = String::from_utf8(scrape().await.body.to_vec()).expect("utf-8");
    assert_eq!(
        sample(&text, "jwks_keys", &[("state", "pending")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "jwks_rotations_total", &[]),
        Some(rotations + 1.0)
    );
    let activation =
        sample(&text, "jwks_next_key_activation_timestamp_seconds", &[]).expect("next");
    assert_eq!(activation, (START + 60_000) as f64 / 1000.0);
    let lead = sample(&text, "jwks_next_key_publish_lead_seconds", &[]).expect("lead");
    assert!(lead >= 20.0, "published {lead} s ahead");
    assert_eq!(
        sample(&text, "jwks_active_key_age_seconds", &[]),
        Some(30.0)
    );
    assert!(
        sample(
            &text,
            "jwks_key_generation_seconds_count",
            &[("alg", "RS256")]
        )
        .is_some_and(|n| n >= 1.0)
    );
    clock.advance(Duration::from_secs(31));
    let text = String::from_utf8(scrape().await.body.to_vec()).expect("utf-8");
    assert_eq!(
        sample(&text, "jwks_keys", &[("state", "retired")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "jwks_active_key_age_seconds", &[]), Some(1.0));

    // A revocation of the signing key counts, and so does its immediate replacement.
    let immediate = sample(&text, "jwks_immediate_activations_total", &[]).expect("immediate");
    let kid = active_kid(&app).await;
    admin_post(&app, &format!("/admin/keys/{kid}/revoke"), json!({})).await;
    let text = String::from_utf8(scrape().await.body.to_vec()).expect("utf-8");
    assert_eq!(sample(&text, "jwks_key_revocations_total", &[]), Some(1.0));
    assert_eq!(
        sample(&text, "jwks_immediate_activations_total", &[]),
        Some(immediate + 1.0)
    );
    app.stop().await;
}

pub fn run_keys(args: &[&str], database: &str) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jwks-server"))
        // Server flags come before the subcommand, as in `jwks-server --database X keys list`.
        .args(["--database", database, "keys"])
        .args(args)
        .env("JWKS_MASTER_KEY", MASTER_KEY)
        .env_remove("NOT_MY_KEY")
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn json_kids(jwks: &str) -> Vec<String> {
    kids(&serde_json::from_str(jwks).expect("jwks"))
}

/// `/auth` in a loop against every server until stopped; counts what was not a 200.
pub fn traffic(
    bases: Vec<String>,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, f, done) = (Arc::clone(&sent), Arc::clone(&failed), Arc::clone(&stop));
    let task = tokio::spawn(async move {
        let client = HttpClient::default();
        while !done.load(Ordering::SeqCst) {
            for base in &bases {
                let (status, _) = client.post(&format!("{base}/auth")).await;
                s.fetch_add(1, Ordering::SeqCst);
                if status != 200 {
                    f.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    (stop, sent, failed, task)
}

#[tokio::test]
async fn keys_commands_revoke_and_rotate_on_a_running_sqlite_server() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("live.db");
    let db = db.to_str().expect("utf-8 path");
    let server = Server::start(
        &["--database", db, "--alg", "ES256", "--auth-rate-limit", "0"],
        &[("JWKS_MASTER_KEY", MASTER_KEY)],
    )
    .expect("starts");
    let client = HttpClient::default();
    let (ok, listed, err) = run_keys(&["list", "--json"], db);
    assert!(ok, "{err}");
    let listing: Value = serde_json::from_str(&listed).expect("json listing");
    let active = listing["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["state"] == "active")
        .expect("an active key")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let (_, jwks) = client.get(&format!("{}/jwks", server.base)).await;
    assert!(json_kids(&jwks).contains(&active));

    let (stop, sent, failed, load) = traffic(vec![server.base.clone()]);
    let (ok, out, err) = run_keys(&["revoke", &active, "--reason", "leaked in a log"], db);
    assert!(ok, "{err}");
    let outcome: Value = serde_json::from_str(&out).expect("json outcome");
    assert_eq!(outcome["revoked"], active.as_str());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, jwks) = client.get(&format!("{}/jwks", server.base)).await;
    assert!(
        !json_kids(&jwks).contains(&active),
        "revoked key still published 2 s later"
    );
    let token = client.token(&server.base, "").await;
    let header = jwt_header(&token);
    assert_ne!(header["kid"], active.as_str());
    verify(
        &token,
        &serde_json::from_str(&jwks).expect("jwks"),
        &server.base,
    )
    .expect("verifies");

    let (ok, out, err) = run_keys(&["rotate"], db);
    assert!(ok, "{err}");
    let next = serde_json::from_str::<Value>(&out).expect("json")["created"]["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, jwks) = client.get(&format!("{}/jwks", server.base)).await;
    assert!(
        json_kids(&jwks).contains(&next),
        "rotated key not published 2 s later"
    );
    stop.store(true, Ordering::SeqCst);
    load.await.expect("traffic");
    assert!(sent.load(Ordering::SeqCst) > 10);
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no request failed");

    let (ok, table, err) = run_keys(&["list"], db);
    assert!(ok, "{err}");
    assert!(
        table.contains("revoked") && table.contains("leaked in a log"),
        "{table}"
    );
    assert!(
        table.contains(&next) && table.contains("pending"),
        "{table}"
    );
    let (ok, _, err) = run_keys(&["revoke", &active], db);
    assert!(!ok && err.contains("already revoked"), "{err}");
    let (ok, _, err) = run_keys(&["revoke", "nope"], db);
    assert!(!ok && err.contains("no key nope"), "{err}");
    server.terminate();

    // A stopped deployment too; and the revoked kid stays out after a restart.
    let (ok, _, err) = run_keys(&["list"], db);
    assert!(ok, "{err}");
    let server = Server::start(
        &["--database", db, "--alg", "ES256"],
        &[("JWKS_MASTER_KEY", MASTER_KEY)],
    )
    .expect("restarts");
    let (_, jwks) = client.get(&format!("{}/jwks", server.base)).await;
    assert!(
        !json_kids(&jwks).contains(&active),
        "a revoked kid came back"
    );
    server.terminate();
}
