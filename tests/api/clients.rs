//! The clients registry: `jwks-server clients add|list|remove` while servers run (on
//! SQLite beside the server's lock, on PostgreSQL with two replicas), every server
//! seeing a change within 2 seconds, and the `ClientStore` contract on every backend.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::rt::TokioExecutor;
use jwks_server::clients::{Client, ClientId, ClientSpec, ClientStore};
use jwks_server::persist::StoreError;
use jwks_server::store::{MemoryStore, SqliteClients, SqliteStore};

use crate::process::{MASTER_KEY, Server};

/// The deadline of issue 11: every running server sees a change within 2 seconds.
const CONVERGE: Duration = Duration::from_secs(2);

pub fn cli(database: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jwks-server"))
        .args(["--database", database])
        .args(args)
        .env("JWKS_MASTER_KEY", MASTER_KEY)
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs")
}

/// `clients add`: the secret from stdout.
pub fn add(database: &str, args: &[&str]) -> String {
    let mut argv = vec!["clients", "add"];
    argv.extend_from_slice(args);
    let out = cli(database, &argv);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_secret="))
        .expect("secret printed")
        .to_owned();
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&secret)
            .expect("base64url")
            .len(),
        32
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&secret),
        "the secret goes to stdout only"
    );
    secret
}

/// `POST {base}/token` for client_credentials with Basic; the status.
async fn token_status(base: &str, id: &str, secret: &str) -> u16 {
    let client = Hyper::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let req = hyper::Request::post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {basic}"))
        .body(Full::new(Bytes::from_static(
            b"grant_type=client_credentials",
        )))
        .expect("request");
    let res = client.request(req).await.expect("answers");
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    status
}

/// Waits (at most [`CONVERGE`]) until every server answers `want`.
pub async fn converge(servers: &[&Server], id: &str, secret: &str, want: u16) {
    let started = Instant::now();
    loop {
        let mut statuses = Vec::new();
        for s in servers {
            statuses.push(token_status(&s.base, id, secret).await);
        }
        if statuses.iter().all(|s| *s == want) {
            return;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "servers did not see the change within {CONVERGE:?}: {statuses:?}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn start(database: &str) -> Server {
    Server::start(
        &["--database", database, "--auth", "users", "--alg", "EdDSA"],
        &[("JWKS_MASTER_KEY", MASTER_KEY)],
    )
    .expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_changes_clients_of_a_running_sqlite_server_which_sees_them_within_2_seconds() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("jwks.db").display().to_string();
    let out = cli(&db, &["clients", "list"]);
    assert!(!out.status.success(), "no database yet");
    let server = start(&db);
    // The server holds the database's exclusive lock; the CLI writes beside it.
    let secret = add(
        &db,
        &[
            "svc",
            "--scope",
            "read",
            "--scope",
            "write",
            "--audience",
            "api",
            "--claim",
            r#"tenant="acme""#,
            "--redirect-uri",
            "https://app.example/cb",
        ],
    );
    converge(&[&server], "svc", &secret, 200).await;
    assert_eq!(token_status(&server.base, "svc", "wrong").await, 401);

    let out = cli(&db, &["clients", "list"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listing.contains("svc\tconfidential\tread write\tclient_credentials password authorization_code\tapi\t{\"tenant\":\"acme\"}\thttps://app.example/cb\t-"), "{listing}");
    assert!(!listing.contains(&secret));
    let dup = cli(&db, &["clients", "add", "svc"]);
    assert!(!dup.status.success(), "an id is registered once");
    assert!(String::from_utf8_lossy(&dup.stderr).contains("client_id"));
    let bad = cli(&db, &["clients", "add", "x", "--claim", "iss=\"me\""]);
    assert!(!bad.status.success());

    let out = cli(&db, &["clients", "remove", "svc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    converge(&[&server], "svc", &secret, 401).await;
    assert!(
        !cli(&db, &["clients", "remove", "svc"]).status.success(),
        "already gone"
    );
    server.terminate();
    assert!(!cli(":memory:", &["clients", "list"]).status.success());
}

/// The `ClientStore` contract, the same for every backend.
pub async fn store_contract(store: &dyn ClientStore) {
    let v0 = store.clients_version().await.expect("version");
    assert!(store.list_clients().await.expect("list").is_empty());
    let (b, _) = Client::create(&ClientSpec {
        id: "b".into(),
        scopes: vec!["x y".into()],
        grant_types: vec!["password".into()],
        audience: Some("aud".into()),
        claims: vec![r#"k={"n":[1,2]}"#.into()],
        redirect_uris: vec!["https://cb.example/".into()],
        post_logout_redirect_uris: vec!["https://cb.example/bye".into()],
        name: Some("Client B".into()),
        ..ClientSpec::default()
    })
    .expect("valid");
    // A public client: no secret hash stored at all.
    let (a, _) = Client::create(&ClientSpec {
        id: "a".into(),
        public: true,
        ..ClientSpec::default()
    })
    .expect("valid");
    store.insert_client(&b).await.expect("insert");
    store.insert_client(&a).await.expect("insert");
    let v1 = store.clients_version().await.expect("version");
    assert!(v1 > v0);
    assert_eq!(
        store.list_clients().await.expect("list"),
        vec![a.clone(), b.clone()],
        "every field, sorted by id"
    );
    assert!(matches!(
        store.insert_client(&a).await,
        Err(StoreError::Conflict("client_id"))
    ));
    assert_eq!(
        store.clients_version().await.expect("version"),
        v1,
        "a refused change bumps nothing"
    );
    let id = ClientId::parse("a").expect("id");
    assert!(store.remove_client(&id).await.expect("remove"));
    let v2 = store.clients_version().await.expect("version");
    assert!(v2 > v1);
    assert!(!store.remove_client(&id).await.expect("remove"));
    assert_eq!(store.clients_version().await.expect("version"), v2);
    assert_eq!(store.list_clients().await.expect("list"), vec![b]);
}

#[tokio::test]
async fn every_backend_keeps_the_client_store_contract() {
    store_contract(&MemoryStore::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("jwks.db");
    let sqlite = SqliteStore::open(&path, Some(crate::helpers::test_master_key()))
        .await
        .expect("open");
    store_contract(&sqlite).await;
    // A second writer beside the locked store sees the same rows and version.
    let beside = SqliteClients::open(&path)
        .await
        .expect("opens without the lock");
    assert_eq!(beside.list_clients().await.expect("list").len(), 1);
    assert_eq!(
        beside.clients_version().await.expect("v"),
        sqlite.clients_version().await.expect("v")
    );
    beside.close().await;
}
