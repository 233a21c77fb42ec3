//! `jwks-server selftest`: it passes against our own server (in-process and through the
//! real binary), and fails, on the right line, against small servers this file starts on
//! 127.0.0.1 with one deliberate defect each.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwks_server::keys::{Algorithm, SigningKey};
use jwks_server::selftest::{
    FetchError, HttpClient, MAX_BODY_BYTES, Outcome, REQUEST_TIMEOUT, Report, Target, run,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::helpers::spawn_app_with;
use crate::process::{MASTER_KEY, Server};

/// What a fake server gets wrong; the default gets nothing wrong.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    /// Publishes the private member `d`.
    private_d: bool,
    /// Publishes its key twice under one kid.
    duplicate_kid: bool,
    /// RSA `n` with a leading zero octet (needs an RS256 key).
    padded_n: bool,
    /// `/auth` tokens carry a signature with one bit flipped.
    bad_signature: bool,
    /// `?expired=true` tokens are signed by the published key.
    expired_kid_published: bool,
    /// No `ETag` and no 304.
    no_etag: bool,
    /// Discovery is served, with a trailing slash added to the issuer.
    issuer_slash: bool,
    /// Discovery names a `token_endpoint`, which serves negative-test tokens.
    token_endpoint: bool,
    /// The `unknown_kid` test case returns a valid token.
    lax_test_case: bool,
    /// The `wrong_typ` test case is expired too.
    sloppy_test_case: bool,
}

struct Fake {
    issuer: String,
    jwks: Vec<u8>,
    etag: Option<&'static str>,
    key: SigningKey,
    old: SigningKey,
    faults: Faults,
}

/// A running fake server; stopped when dropped.
struct FakeServer {
    url: String,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("fits")
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

fn header_of(key: &SigningKey, typ: &str) -> Value {
    json!({
        "alg": key.algorithm().as_str(),
        "kid": key.public_jwk().kid().as_str(),
        "typ": typ,
    })
}

fn sign(key: &SigningKey, claims: &Value, flip: bool) -> String {
    sign_with(key, &header_of(key, "JWT"), claims, flip)
}

fn sign_with(key: &SigningKey, header: &Value, claims: &Value, flip: bool) -> String {
    let input = format!("{}.{}", b64_json(header), b64_json(claims));
    let mut signature = key.sign(input.as_bytes()).expect("sign");
    if flip {
        signature[5] ^= 1;
    }
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

async fn fake_jwks(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    let matches = fake.etag.is_some_and(|etag| {
        headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            fake.jwks.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=60"),
    );
    if let Some(etag) = fake.etag {
        h.insert(header::ETAG, header::HeaderValue::from_static(etag));
    }
    response
}

async fn fake_auth(State(fake): State<Arc<Fake>>, RawQuery(query): RawQuery) -> Response {
    let now = now();
    let token = if query.as_deref() == Some("expired=true") {
        let key = if fake.faults.expired_kid_published {
            &fake.key
        } else {
            &fake.old
        };
        let claims =
            json!({"iss": fake.issuer, "sub": "anonymous", "iat": now - 3600, "exp": now - 3000});
        sign(key, &claims, false)
    } else {
        let claims = json!({"iss": fake.issuer, "sub": "anonymous", "iat": now, "nbf": now, "exp": now + 900});
        sign(&fake.key, &claims, fake.faults.bad_signature)
    };
    axum::Json(json!({"token": token, "token_type": "Bearer"})).into_response()
}

async fn fake_discovery(State(fake): State<Arc<Fake>>) -> Response {
    let slash = if fake.faults.issuer_slash { "/" } else { "" };
    let mut document = json!({
        "issuer": format!("{}{slash}", fake.issuer),
        "jwks_uri": format!("{}/.well-known/jwks.json", fake.issuer),
    });
    if fake.faults.token_endpoint {
        document["token_endpoint"] = format!("{}/token", fake.issuer).into();
    }
    axum::Json(document).into_response()
}

const FAKE_TEST_CASES: &str = "expired: exp is past\nwrong_issuer: iss is another\n\
    alg_none: unsigned\nunknown_kid: an unpublished key\nwrong_typ: typ is JWT\n";

async fn fake_test_cases() -> &'static str {
    FAKE_TEST_CASES
}

/// `POST /token`: RFC 9068 access tokens, or the negative-test token `test_case` names.
async fn fake_token(
    State(fake): State<Arc<Fake>>,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let now = now();
    let mut claims = json!({
        "iss": fake.issuer, "sub": form["client_id"], "client_id": form["client_id"],
        "aud": "api", "iat": now, "nbf": now, "exp": now + 900,
    });
    let mut key = &fake.key;
    let mut header = header_of(key, "at+jwt");
    match form.get("test_case").map(String::as_str) {
        None => {}
        Some("expired") => claims["exp"] = (now - 600).into(),
        Some("wrong_issuer") => claims["iss"] = "https://wrong.invalid".into(),
        Some("alg_none") => {
            header["alg"] = "none".into();
            let token = format!("{}.{}.", b64_json(&header), b64_json(&claims));
            return axum::Json(json!({ "access_token": token })).into_response();
        }
        Some("unknown_kid") if !fake.faults.lax_test_case => {
            key = &fake.old;
            header = header_of(key, "at+jwt");
        }
        Some("unknown_kid") => {}
        Some("wrong_typ") => {
            header["typ"] = "JWT".into();
            if fake.faults.sloppy_test_case {
                claims["exp"] = (now - 600).into();
            }
        }
        Some(_) => return StatusCode::BAD_REQUEST.into_response(),
    }
    let token = sign_with(key, &header, &claims, false);
    axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 900}))
        .into_response()
}

/// Starts a fake JWKS server with `faults` and a key of `alg`.
async fn fake_server(alg: Algorithm, faults: Faults) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let key = SigningKey::generate(alg).expect("generate");
    let old = SigningKey::generate(Algorithm::Es256).expect("generate");
    let mut jwk = serde_json::to_value(key.public_jwk()).expect("json");
    if faults.private_d {
        jwk["d"] = "c2VjcmV0".into();
    }
    if faults.padded_n {
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().expect("an RSA key"))
            .expect("b64");
        let mut padded = vec![0];
        padded.extend_from_slice(&n);
        jwk["n"] = URL_SAFE_NO_PAD.encode(padded).into();
    }
    let keys = if faults.duplicate_kid {
        vec![jwk.clone(), jwk]
    } else {
        vec![jwk]
    };
    let fake = Arc::new(Fake {
        issuer: issuer.clone(),
        jwks: serde_json::to_vec(&json!({ "keys": keys })).expect("json"),
        etag: (!faults.no_etag).then_some("\"v1\""),
        key,
        old,
        faults,
    });
    let mut router = Router::new()
        .route("/.well-known/jwks.json", get(fake_jwks))
        .route("/auth", post(fake_auth));
    if faults.issuer_slash || faults.token_endpoint {
        router = router.route("/.well-known/openid-configuration", get(fake_discovery));
    }
    if faults.token_endpoint {
        router = router
            .route("/token", post(fake_token))
            .route("/token/test-cases", get(fake_test_cases));
    }
    let router = router.with_state(fake);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    FakeServer { url: issuer, task }
}

async fn selftest(url: &str) -> Report {
    run(&Target::parse(url).expect("valid URL"))
        .await
        .expect("the server answers")
}

fn outcome(report: &Report, line: &str) -> Outcome {
    report
        .get(line)
        .unwrap_or_else(|| panic!("no line {line}:\n{}", report.render()))
        .outcome
}

/// The lines every conformant server without discovery or test cases passes.
const CORE_LINES: [&str; 12] = [
    "jwks fetch",
    "jwks shape",
    "private members",
    "unique kids",
    "use/alg",
    "key material",
    "RFC 7638 kids",
    "Cache-Control",
    "ETag",
    "304 Not Modified",
    "token verifies",
    "expired token",
];

#[tokio::test]
async fn selftest_passes_against_our_own_server_for_every_algorithm() {
    for alg in ["RS256", "ES256", "EdDSA"] {
        let app = spawn_app_with(&["--alg", alg]).await;
        let report = selftest(&app.url("")).await;
        for line in CORE_LINES {
            assert_eq!(
                outcome(&report, line),
                Outcome::Pass,
                "{alg} {line}:\n{}",
                report.render()
            );
        }
        let token = report.get("token verifies").expect("line");
        assert!(
            token.detail.contains(&format!("({alg})")),
            "{}",
            token.detail
        );
        assert!(!report.has_failures());
        assert_eq!(report.exit_code(), 0);
        app.stop().await;
    }
}

#[tokio::test]
async fn tokens_that_need_credentials_are_a_warning_not_a_failure() {
    let app = spawn_app_with(&["--auth", "users"]).await;
    let report = selftest(&app.url("")).await;
    assert_eq!(
        outcome(&report, "token verifies"),
        Outcome::Warn,
        "{}",
        report.render()
    );
    assert_eq!(outcome(&report, "expired token"), Outcome::Warn);
    assert_eq!(outcome(&report, "jwks shape"), Outcome::Pass);
    let cases = report.get("test cases").expect("line");
    assert_eq!(cases.outcome, Outcome::Skip);
    assert!(
        cases.detail.contains("need credentials"),
        "{}",
        cases.detail
    );
    assert_eq!(report.exit_code(), 0);
    app.stop().await;
}

#[tokio::test]
async fn the_unbroken_fake_passes_so_each_failure_below_is_its_defect() {
    let fake = fake_server(Algorithm::Rs256, Faults::default()).await;
    let report = selftest(&fake.url).await;
    for line in CORE_LINES {
        assert_eq!(outcome(&report, line), Outcome::Pass, "{}", report.render());
    }
}

/// Runs the self-test against a fake with `faults` and returns the report, asserting
/// that `line` failed and the exit status is 1.
async fn fails_on(alg: Algorithm, faults: Faults, line: &str) -> Report {
    let fake = fake_server(alg, faults).await;
    let report = selftest(&fake.url).await;
    assert_eq!(outcome(&report, line), Outcome::Fail, "{}", report.render());
    assert_eq!(report.exit_code(), 1);
    report
}

#[tokio::test]
async fn a_published_private_member_fails_the_private_members_line() {
    let faults = Faults {
        private_d: true,
        ..Faults::default()
    };
    let report = fails_on(Algorithm::Es256, faults, "private members").await;
    let detail = &report.get("private members").expect("line").detail;
    assert!(detail.contains(": d"), "{detail}");
    assert!(
        !detail.contains("c2VjcmV0"),
        "the secret is not echoed: {detail}"
    );
}

#[tokio::test]
async fn duplicate_kids_fail_the_unique_kids_line() {
    let faults = Faults {
        duplicate_kid: true,
        ..Faults::default()
    };
    let report = fails_on(Algorithm::EdDsa, faults, "unique kids").await;
    assert!(
        report
            .get("unique kids")
            .expect("line")
            .detail
            .contains("2x")
    );
}

#[tokio::test]
async fn a_non_minimal_rsa_modulus_fails_the_key_material_line() {
    let faults = Faults {
        padded_n: true,
        ..Faults::default()
    };
    let report = fails_on(Algorithm::Rs256, faults, "key material").await;
    let detail = &report.get("key material").expect("line").detail;
    assert!(detail.contains("leading zero"), "{detail}");
    // A key whose members break the rules is not used to verify.
    let token = &report.get("token verifies").expect("line").detail;
    assert!(token.contains("cannot be used"), "{token}");
}

#[tokio::test]
async fn a_token_whose_signature_does_not_verify_fails_the_token_line() {
    let faults = Faults {
        bad_signature: true,
        ..Faults::default()
    };
    let report = fails_on(Algorithm::Es256, faults, "token verifies").await;
    let detail = &report.get("token verifies").expect("line").detail;
    assert!(detail.contains("signature does not verify"), "{detail}");
    assert_eq!(outcome(&report, "jwks shape"), Outcome::Pass);
}

#[tokio::test]
async fn an_expired_token_with_a_published_kid_fails_the_expired_line() {
    let faults = Faults {
        expired_kid_published: true,
        ..Faults::default()
    };
    let report = fails_on(Algorithm::EdDsa, faults, "expired token").await;
    let detail = &report.get("expired token").expect("line").detail;
    assert!(detail.contains("is published"), "{detail}");
}

#[tokio::test]
async fn an_issuer_with_an_added_trailing_slash_fails_the_issuer_line() {
    let faults = Faults {
        issuer_slash: true,
        ..Faults::default()
    };
    let report = fails_on(Algorithm::Es256, faults, "discovery issuer").await;
    assert_eq!(outcome(&report, "discovery jwks_uri"), Outcome::Pass);
    let detail = &report.get("discovery issuer").expect("line").detail;
    assert!(detail.contains("trailing slash"), "{detail}");
}

#[tokio::test]
async fn negative_test_tokens_pass_when_each_is_rejected_for_its_own_reason() {
    let faults = Faults {
        token_endpoint: true,
        ..Faults::default()
    };
    let fake = fake_server(Algorithm::Es256, faults).await;
    let report = selftest(&fake.url).await;
    assert!(!report.has_failures(), "{}", report.render());
    let token = &report.get("token verifies").expect("line").detail;
    assert!(token.starts_with("from token_endpoint"), "{token}");
    for case in [
        "expired",
        "wrong_issuer",
        "alg_none",
        "unknown_kid",
        "wrong_typ",
    ] {
        let line = format!("test case {case}");
        assert_eq!(
            outcome(&report, &line),
            Outcome::Pass,
            "{}",
            report.render()
        );
    }
}

#[tokio::test]
async fn a_negative_test_token_that_verifies_fails_its_line() {
    let faults = Faults {
        token_endpoint: true,
        lax_test_case: true,
        ..Faults::default()
    };
    let report = fails_on(Algorithm::Es256, faults, "test case unknown_kid").await;
    let detail = &report.get("test case unknown_kid").expect("line").detail;
    assert!(detail.starts_with("accepted"), "{detail}");
    assert_eq!(outcome(&report, "test case expired"), Outcome::Pass);
}

#[tokio::test]
async fn a_negative_test_token_wrong_for_two_reasons_fails_its_line() {
    let faults = Faults {
        token_endpoint: true,
        sloppy_test_case: true,
        ..Faults::default()
    };
    let report = fails_on(Algorithm::EdDsa, faults, "test case wrong_typ").await;
    let detail = &report.get("test case wrong_typ").expect("line").detail;
    assert!(detail.contains("more than its reason"), "{detail}");
}

#[tokio::test]
async fn a_jwks_without_an_etag_warns_but_passes() {
    let faults = Faults {
        no_etag: true,
        ..Faults::default()
    };
    let fake = fake_server(Algorithm::Es256, faults).await;
    let report = selftest(&fake.url).await;
    assert_eq!(
        outcome(&report, "ETag"),
        Outcome::Warn,
        "{}",
        report.render()
    );
    assert_eq!(outcome(&report, "304 Not Modified"), Outcome::Warn);
    assert_eq!(outcome(&report, "Cache-Control"), Outcome::Pass);
    assert!(!report.has_failures(), "{}", report.render());
    assert_eq!(report.exit_code(), 0);
}

/// Runs the real binary with `args` in an empty working directory, off the runtime's
/// thread (the fake servers of this test run on it).
async fn binary_selftest(args: &[&str]) -> (Option<i32>, String, String, usize) {
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_jwks-server"));
        for (name, _) in std::env::vars() {
            if name.starts_with("JWKS_") || name == "NOT_MY_KEY" {
                command.env_remove(name);
            }
        }
        let out = command
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("binary runs");
        let files = std::fs::read_dir(dir.path()).expect("dir").count();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            files,
        )
    })
    .await
    .expect("joins")
}

fn line<'a>(stdout: &'a str, check: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{check}  ")))
        .unwrap_or_else(|| panic!("no {check} line:\n{stdout}"))
}

#[tokio::test]
async fn the_binary_passes_against_our_server_exits_0_and_writes_no_file() {
    let server = Server::start(
        &["--database", ":memory:", "--alg", "ES256"],
        &[("JWKS_MASTER_KEY", MASTER_KEY)],
    )
    .expect("server starts");
    let (code, stdout, stderr, files) = binary_selftest(&["selftest", &server.base]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(files, 0, "selftest wrote into its working directory");
    assert!(stdout.starts_with("CHECK "), "{stdout}");
    for check in CORE_LINES {
        assert!(
            line(&stdout, check).contains(" PASS "),
            "{check}:\n{stdout}"
        );
    }
    assert!(!stdout.contains(" FAIL "), "{stdout}");
    // Without a URL: the server's own address from the same flags.
    let port = server.base.rsplit(':').next().expect("a port");
    let (code, default_stdout, stderr, _) =
        binary_selftest(&["--host", "0.0.0.0", "--port", port, "selftest"]).await;
    assert_eq!(code, Some(0), "{default_stdout}{stderr}");
    assert!(
        line(&default_stdout, "jwks fetch").contains(&format!("http://127.0.0.1:{port}/")),
        "{default_stdout}"
    );
    // Kids and claim names, never a token: no three-part base64url string is printed.
    assert!(
        !stdout
            .split_whitespace()
            .any(|word| word.split('.').count() == 3 && word.len() > 40),
        "{stdout}"
    );
}

#[tokio::test]
async fn the_binary_exits_1_with_a_fail_and_2_when_it_cannot_run() {
    let fake = fake_server(
        Algorithm::Es256,
        Faults {
            private_d: true,
            ..Faults::default()
        },
    )
    .await;
    let (code, stdout, _, _) = binary_selftest(&["selftest", &fake.url]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        line(&stdout, "private members").contains(" FAIL "),
        "{stdout}"
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let (code, stdout, stderr, _) =
        binary_selftest(&["selftest", &format!("http://{closed}")]).await;
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");

    for url in ["https://example.com", "ftp://example.com", "not a url"] {
        let (code, _, stderr, _) = binary_selftest(&["selftest", url]).await;
        assert_eq!(code, Some(2), "{url}: {stderr}");
        assert!(stderr.starts_with("error: bad URL"), "{url}: {stderr}");
    }
}

#[tokio::test]
async fn the_client_refuses_a_body_over_its_limit() {
    let router = Router::new()
        .route("/big", get(|| async { vec![b'x'; MAX_BODY_BYTES + 1] }))
        .route("/fits", get(|| async { vec![b'x'; MAX_BODY_BYTES] }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let client = HttpClient::new();
    let fits = client
        .get(&format!("{base}/fits"), &[])
        .await
        .expect("fits");
    assert_eq!(fits.body.len(), MAX_BODY_BYTES);
    let big = client.get(&format!("{base}/big"), &[]).await;
    assert!(matches!(big, Err(FetchError::Body { .. })), "{big:?}");
    task.abort();
}

#[tokio::test]
async fn the_client_gives_up_on_a_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accepts and holds connections, never answers.
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let result = HttpClient::with_timeout(timeout)
        .get(&format!("http://{addr}/jwks"), &[])
        .await;
    assert!(
        matches!(result, Err(FetchError::Timeout { .. })),
        "{result:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout && elapsed < timeout * 10, "{elapsed:?}");
    assert_eq!(
        REQUEST_TIMEOUT,
        Duration::from_secs(10),
        "the documented default"
    );
    task.abort();
}
