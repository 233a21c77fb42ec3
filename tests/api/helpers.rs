//! `spawn_app()` and typed helpers shared by the API tests.

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jwks_server::app::Application;
use jwks_server::cli::Cli;
use jwks_server::clients::{Client as OAuthClient, ClientRegistry, ClientSpec};
use jwks_server::config::Settings;
use jwks_server::keys::{Clock, ManualClock, MasterKey, Rotator, SystemClock};
use jwks_server::store::{SqliteStore, Store};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and a client pointed at it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener, when `--admin-port` was given.
    pub admin: Option<SocketAddr>,
    pub rotator: Rotator,
    pub clients: ClientRegistry,
    pub store: Arc<dyn Store>,
    hasher: jwks_server::users::PasswordHasher,
    pub dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A response with its body read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }
}

/// Settings from command-line style flags; port 0, in-memory keys and no rate limits
/// unless the flags say otherwise.
pub fn settings(args: &[&str]) -> Settings {
    let mut argv = vec!["jwks-server", "--port", "0"];
    for (flag, default) in [
        ("--database", ":memory:"),
        ("--auth-rate-limit", "0"),
        ("--register-rate-limit", "0"),
    ] {
        if !args.contains(&flag) {
            argv.extend([flag, default]);
        }
    }
    argv.extend_from_slice(args);
    // The shell's JWKS_* variables must not change what a test runs with.
    Settings::from_args(&Cli::try_parse_without_env(argv).expect("flags parse").serve)
        .expect("settings valid")
}

/// A server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// A server with extra flags.
pub async fn spawn_app_with(args: &[&str]) -> TestApp {
    spawn_sqlite(args, Arc::new(SystemClock)).await
}

/// A server whose key schedule reads `clock`.
pub async fn spawn_app_with_clock(args: &[&str], clock: ManualClock) -> TestApp {
    spawn_sqlite(args, Arc::new(clock)).await
}

/// The master key of test databases.
pub fn test_master_key() -> MasterKey {
    MasterKey::from_passphrase("jwks-server tests")
}

/// A server over a fresh SQLite file in its own temp directory.
pub async fn spawn_sqlite(args: &[&str], clock: Arc<dyn Clock>) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("jwks.db"), Some(test_master_key()))
        .await
        .expect("opens");
    spawn_in(dir, settings(args), Arc::new(store), clock).await
}

/// A server over an explicit store and clock.
pub async fn spawn(settings: Settings, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> TestApp {
    spawn_in(
        tempfile::tempdir().expect("temp dir"),
        settings,
        store,
        clock,
    )
    .await
}

async fn spawn_in(
    dir: tempfile::TempDir,
    settings: Settings,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> TestApp {
    let app = Application::build_with(settings, Arc::clone(&store), clock)
        .await
        .expect("app builds");
    let addr = app.local_addr();
    let admin = app.admin_addr();
    let rotator = app.rotator();
    let clients = app.clients();
    let hasher = app.password_hasher();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = Client::builder(TokioExecutor::new()).build_http();
    TestApp {
        addr,
        admin,
        rotator,
        clients,
        store,
        hasher,
        dir,
        client,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with optional headers and body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        self.request(method, self.url(path), headers, body).await
    }

    /// Sends a request to the admin listener.
    pub async fn admin_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let admin = self.admin.expect("started with --admin-port");
        self.request(method, format!("http://{admin}{path}"), headers, body)
            .await
    }

    async fn request(
        &self,
        method: Method,
        url: String,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).expect("request");
        let res = self.client.request(req).await.expect("server answers");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// `POST /auth` with a JSON body.
    pub async fn auth_json(&self, query: &str, body: &Value) -> TestResponse {
        let body = serde_json::to_vec(body).expect("json");
        self.send(
            Method::POST,
            &format!("/auth{query}"),
            &[("content-type", "application/json")],
            body,
        )
        .await
    }

    /// `POST /auth` with no body.
    pub async fn auth(&self, query: &str) -> TestResponse {
        self.send(Method::POST, &format!("/auth{query}"), &[], Bytes::new())
            .await
    }

    /// The token from a successful `/auth`.
    pub async fn token(&self, query: &str) -> String {
        let res = self.auth(query).await;
        assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
        res.json()["token"].as_str().expect("token").to_owned()
    }

    /// The current JWKS document.
    pub async fn jwks(&self) -> Value {
        let res = self.get("/.well-known/jwks.json").await;
        assert_eq!(res.status, StatusCode::OK);
        res.json()
    }

    /// `POST path` with a form body and optional HTTP Basic client credentials (both
    /// parts form-url-encoded first, as RFC 6749 §2.3.1 says).
    pub async fn post_form(
        &self,
        path: &str,
        body: &str,
        basic: Option<(&str, &str)>,
    ) -> TestResponse {
        use base64::Engine as _;
        let mut headers = vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        if let Some((id, secret)) = basic {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let joined = format!("{}:{}", enc(id), enc(secret));
            headers.push((
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(joined)
                ),
            ));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.send(Method::POST, path, &headers, body.to_owned())
            .await
    }

    /// Registers a client in the store and reloads the registry at once; returns its secret.
    pub async fn add_client(&self, spec: ClientSpec) -> String {
        let (client, secret) = OAuthClient::create(&spec).expect("valid client");
        self.store
            .insert_client(&client)
            .await
            .expect("client stored");
        // The server's own poll may have reloaded first; either way it is loaded now.
        self.clients.refresh().await.expect("reload");
        assert!(
            self.clients
                .snapshot()
                .clients
                .contains_key(client.id.as_str())
        );
        secret.map(|s| s.expose().to_owned()).unwrap_or_default()
    }

    /// The discovery document.
    pub async fn discovery(&self) -> Value {
        let res = self.get("/.well-known/openid-configuration").await;
        assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
        res.json()
    }

    /// How many password checks ran against the dummy hash.
    pub fn app_users_dummy_checks(&self) -> u64 {
        self.hasher.dummy_checks()
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task ends cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The decoded header of a compact JWS.
pub fn jwt_header(token: &str) -> Value {
    decode_part(token, 0)
}

/// The decoded claims of a compact JWS, without verification.
pub fn jwt_claims(token: &str) -> Value {
    decode_part(token, 1)
}

fn decode_part(token: &str, i: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(i).expect("JWS part");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&raw).expect("JSON")
}

/// Verifies `token` with the independent `jsonwebtoken` crate, using only `jwks`.
pub fn verify(token: &str, jwks: &Value, issuer: &str) -> Result<Value, String> {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} not in JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "iat", "nbf"]);
    decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

/// The kids of a JWKS document, in its order.
pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// A read-only connection to a SQLite database file, beside the server that writes it.
pub async fn sqlite_reader(path: &std::path::Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    sqlx::SqlitePool::connect_with(options)
        .await
        .expect("reader")
}

/// The `auth_logs` rows of a SQLite database, oldest first: `(request_ip, user_id)`.
pub async fn auth_log_rows(pool: &sqlx::SqlitePool) -> Vec<(String, Option<i64>)> {
    sqlx::query_as("SELECT request_ip, user_id FROM auth_logs ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("rows")
}

impl TestApp {
    /// A read-only connection to this server's SQLite file.
    pub async fn sqlite_reader(&self) -> sqlx::SqlitePool {
        sqlite_reader(&self.dir.path().join("jwks.db")).await
    }
}
