//! Three server processes sharing one PostgreSQL database: one rotator, identical JWKS,
//! tokens that verify across replicas, a `kill -9` mid-rotation, and recovery after the
//! database connections are cut.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection as _;

use crate::process::{HttpClient, MASTER_KEY, Server};

/// How long each key signs in these tests.
const INTERVAL: Duration = Duration::from_secs(2);

fn start(url: &str) -> Server {
    let args = [
        "--database",
        url,
        "--alg",
        "EdDSA",
        "--rotation-interval",
        "2s",
        "--publish-ahead",
        "1500ms",
        "--jwks-max-age",
        "1s",
        "--token-ttl",
        "1s",
        "--clock-skew",
        "0s",
        "--auth-rate-limit",
        "0",
        "--issuer",
        "fleet",
    ];
    Server::start(&args, &[("JWKS_MASTER_KEY", MASTER_KEY)]).expect("the replica starts")
}

async fn get(client: &HttpClient, url: &str) -> (u16, String) {
    client.get(url).await
}

pub async fn fresh_database(admin_url: &str) -> (String, String) {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).expect("rng");
    let name = format!(
        "jwks_r_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("admin connection");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create db");
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    (format!("{base}/{name}"), name)
}

pub async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await;
    }
}

async fn keys_created(url: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar("SELECT COALESCE(last_value, 0) FROM keys_kid_seq")
        .fetch_one(&mut conn)
        .await
        .expect("seq")
}

async fn orphans(url: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let sql = "SELECT count(*) FROM keys k FULL JOIN key_meta m ON m.kid = k.kid WHERE m.kid IS NULL OR k.kid IS NULL";
    sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("count")
}

/// Waits until every replica serves the same JWKS; returns it.
async fn converge(client: &HttpClient, replicas: &[&Server]) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut bodies = Vec::new();
        for r in replicas {
            bodies.push(get(client, &format!("{}/jwks", r.base)).await.1);
        }
        if bodies.windows(2).all(|w| w[0] == w[1]) && !bodies[0].is_empty() {
            return bodies.swap_remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not converge: {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verify_token(token: &str, jwks: &str) -> Result<(), String> {
    let jwks: Value = serde_json::from_str(jwks).map_err(|e| e.to_string())?;
    crate::helpers::verify(token, &jwks, "fleet").map(|_| ())
}

/// Needs a multi-thread runtime: the replicas are child processes, the checks async.
pub async fn three_replicas_share_one_key_set_survive_kill_9_and_a_database_outage(
    admin_url: String,
) {
    let (url, name) = fresh_database(&admin_url).await;
    let client = HttpClient::default();
    let (a, b, c) = (start(&url), start(&url), start(&url));
    let jwks = converge(&client, &[&a, &b, &c]).await;
    assert!(!jwks.contains("\"keys\":[]"));

    // Tokens from each replica verify against every other replica's JWKS, over several
    // rotations; and the key set only grows by one key per interval, not three.
    let created_before = keys_created(&url).await;
    let started = Instant::now();
    while started.elapsed() < INTERVAL * 3 {
        for issuer in [&a, &b, &c] {
            let (status, body) = client.post(&format!("{}/auth", issuer.base)).await;
            assert_eq!(status, 200, "{body}");
            let token = serde_json::from_str::<Value>(&body).expect("json")["token"]
                .as_str()
                .expect("token")
                .to_owned();
            for verifier in [&a, &b, &c] {
                let (_, jwks) = get(&client, &format!("{}/jwks", verifier.base)).await;
                verify_token(&token, &jwks)
                    .unwrap_or_else(|e| panic!("{} -> {}: {e}", issuer.base, verifier.base));
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let created = keys_created(&url).await - created_before;
    assert!(
        (2..=6).contains(&created),
        "{created} keys created in three intervals by three replicas"
    );
    let jwks = converge(&client, &[&a, &b, &c]).await;
    for r in [&a, &b, &c] {
        let (status, ready) = get(&client, &format!("{}/readyz", r.base)).await;
        assert_eq!(status, 200);
        assert!(ready.contains("\"store\":\"ok\""), "{ready}");
    }
    assert!(!jwks.is_empty());

    // kill -9 each replica in turn at an arbitrary moment of the rotation cycle; the
    // others carry on, a successor takes over rotation, and no half-written key remains.
    let mut a = a;
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        let _ = a.child.kill();
        let _ = a.child.wait();
        assert_eq!(
            orphans(&url).await,
            0,
            "a key row without its metadata (or the reverse)"
        );
        a = start(&url);
    }
    let before = keys_created(&url).await;
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(
        keys_created(&url).await > before,
        "rotation continued after the kills"
    );
    converge(&client, &[&a, &b, &c]).await;

    // Cut every database connection: replicas keep serving from memory and recover.
    {
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("admin");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(&name)
            .execute(&mut admin)
            .await
            .expect("terminate");
    }
    for r in [&a, &b, &c] {
        assert_eq!(get(&client, &format!("{}/jwks", r.base)).await.0, 200);
        assert_eq!(client.post(&format!("{}/auth", r.base)).await.0, 200);
    }
    let before = keys_created(&url).await;
    tokio::time::sleep(INTERVAL * 2).await;
    assert!(
        keys_created(&url).await > before,
        "rotation resumed after the outage"
    );
    let jwks = converge(&client, &[&a, &b, &c]).await;
    let (_, body) = client.post(&format!("{}/auth", b.base)).await;
    let token = serde_json::from_str::<Value>(&body).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    verify_token(&token, &jwks).expect("verifies after recovery");

    drop((a, b, c));
    drop_database(&admin_url, &name).await;
}

/// The replica that leads rotation holds its lease on a store connection; closing the
/// store used to wait for that connection until the close deadline (10 s). SIGTERM must
/// end a leader well within the deadline.
pub async fn the_leading_replica_exits_promptly_on_sigterm(admin_url: String) {
    let (url, name) = fresh_database(&admin_url).await;
    let leader = start(&url);
    let client = HttpClient::default();
    let (status, _) = get(&client, &format!("{}/readyz", leader.base)).await;
    assert_eq!(status, 200);
    let pid = leader.child.id().to_string();
    let mut leader = leader;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    let exited = loop {
        if let Some(status) = leader.child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = exited.expect("the leader exits within 5 s of SIGTERM");
    assert!(status.success(), "{status}");
    drop(leader);
    drop_database(&admin_url, &name).await;
}
