//! HTTPS: the handshake with a CA made in the test (TLS 1.3 and 1.2), the `https://`
//! default issuer, plain HTTP refused, reloads (files changed, SIGHUP) that keep open
//! connections, failed reloads that keep the old certificate, and exit status 2 for an
//! unusable certificate or key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ProtocolVersion, SupportedProtocolVersion};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::helpers::{TestApp, jwt_claims, spawn_app_with};
use crate::process::Server;

/// A test certificate authority.
struct Ca(CertifiedIssuer<'static, KeyPair>);

/// A leaf certificate for `localhost` and its key, as PEM, and the certificate's DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "jwks-server test CA");
        let key = KeyPair::generate().expect("CA key");
        Self(CertifiedIssuer::self_signed(params, key).expect("CA certificate"))
    }

    fn der(&self) -> CertificateDer<'static> {
        self.0.der().clone()
    }

    fn leaf(&self) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &self.0).expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// Replaces `path` at once, as a deployment tool would (write beside it, rename).
fn replace(path: &Path, contents: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, contents).expect("write");
    std::fs::rename(&temp, path).expect("rename");
}

/// Certificate and key files in `dir`.
fn write_files(dir: &Path, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    replace(&key, &leaf.key_pem);
    replace(&cert, &leaf.cert_pem);
    (cert, key)
}

/// A server over HTTPS; it reloads from the files in the returned directory, which
/// must outlive it.
async fn spawn_tls(leaf: &Leaf) -> (TestApp, tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = write_files(dir.path(), leaf);
    let app = spawn_app_with(&[
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        key.to_str().expect("utf-8"),
    ])
    .await;
    (app, dir, cert, key)
}

async fn connect(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("CA accepted");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await
}

/// The leaf certificate the server presents to a new connection.
async fn served_leaf(addr: SocketAddr, ca: &CertificateDer<'static>) -> Vec<u8> {
    let stream = connect(addr, ca, rustls::ALL_VERSIONS)
        .await
        .expect("handshake");
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")[0]
        .to_vec()
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body).
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .expect("reads");
        assert!(n > 0, "connection closed mid-response: {text}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn request(stream: &mut TlsStream<TcpStream>, method: &str, path: &str) -> String {
    let head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("sent");
    read_response(stream).await
}

fn body_json(response: &str) -> Value {
    let (_, body) = response.split_once("\r\n\r\n").expect("a body");
    serde_json::from_str(body).expect("JSON")
}

#[tokio::test]
async fn https_serves_tls_1_3_and_1_2_with_an_https_issuer() {
    let ca = Ca::new();
    let (app, _dir, _, _) = spawn_tls(&ca.leaf()).await;
    for (versions, expected) in [
        (&[&rustls::version::TLS13][..], ProtocolVersion::TLSv1_3),
        (&[&rustls::version::TLS12][..], ProtocolVersion::TLSv1_2),
    ] {
        let mut stream = connect(app.addr, &ca.der(), versions)
            .await
            .expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        assert_eq!(stream.get_ref().1.alpn_protocol(), None, "none asked");
        let jwks = request(&mut stream, "GET", "/jwks").await;
        assert!(jwks.starts_with("HTTP/1.1 200 "), "{jwks}");
        assert!(jwks.contains("x-content-type-options: nosniff"), "{jwks}");
        assert!(
            !body_json(&jwks)["keys"]
                .as_array()
                .expect("keys")
                .is_empty()
        );
        // The same connection carries a second request.
        let auth = request(&mut stream, "POST", "/auth").await;
        assert!(auth.starts_with("HTTP/1.1 200 "), "{auth}");
        let token = body_json(&auth)["token"]
            .as_str()
            .expect("token")
            .to_owned();
        assert_eq!(
            jwt_claims(&token)["iss"],
            format!("https://127.0.0.1:{}", app.addr.port())
        );
        // Over HTTPS the sign-in cookies are `Secure`.
        let page = request(
            &mut stream,
            "GET",
            "/authorize?response_type=code&client_id=x&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
        )
        .await;
        assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
        let cookie = page
            .lines()
            .find(|l| l.starts_with("set-cookie: jwks_browser="))
            .expect("a browser cookie");
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_refused() {
    let ca = Ca::new();
    let (app, _dir, _, _) = spawn_tls(&ca.leaf()).await;
    let mut plain = TcpStream::connect(app.addr).await.expect("connects");
    plain
        .write_all(b"GET /jwks HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("sent");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("keys"),
        "no JWKS over plain HTTP"
    );
    assert!(
        !served_leaf(app.addr, &ca.der()).await.is_empty(),
        "TLS still served"
    );
}

#[tokio::test]
async fn changed_files_are_served_to_new_connections_and_open_ones_keep_going() {
    let ca = Ca::new();
    let (first, second) = (ca.leaf(), ca.leaf());
    let (app, _dir, cert, _) = spawn_tls(&first).await;
    let mut open = connect(app.addr, &ca.der(), rustls::ALL_VERSIONS)
        .await
        .expect("handshake");
    assert!(
        request(&mut open, "GET", "/healthz")
            .await
            .starts_with("HTTP/1.1 200 ")
    );
    assert_eq!(served_leaf(app.addr, &ca.der()).await, first.der);

    write_files(cert.parent().expect("dir"), &second);
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_leaf(app.addr, &ca.der()).await != second.der {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = request(&mut open, "GET", "/jwks").await;
    assert!(
        again.starts_with("HTTP/1.1 200 "),
        "the open connection was dropped: {again}"
    );
}

#[tokio::test]
async fn a_reload_that_fails_keeps_the_old_certificate() {
    let ca = Ca::new();
    let (first, second) = (ca.leaf(), ca.leaf());
    let (app, _dir, cert, key) = spawn_tls(&first).await;
    // Garbage, then a certificate with a key that is not its own.
    for (cert_pem, key_pem) in [
        ("not a certificate", "not a key"),
        (second.cert_pem.as_str(), first.key_pem.as_str()),
    ] {
        replace(&key, key_pem);
        replace(&cert, cert_pem);
        tokio::time::sleep(jwks_server::tls::RELOAD_POLL * 2 + Duration::from_millis(500)).await;
        assert_eq!(
            served_leaf(app.addr, &ca.der()).await,
            first.der,
            "{cert_pem}"
        );
    }
    // Fixed files are picked up again.
    replace(&key, &second.key_pem);
    let deadline = Instant::now() + Duration::from_secs(5);
    while served_leaf(app.addr, &ca.der()).await != second.der {
        assert!(
            Instant::now() < deadline,
            "the fixed files were never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn logged(server: &Server, message: &str) -> Vec<Value> {
    server
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|log| log["fields"]["message"] == message)
        .collect()
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_serving() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = write_files(dir.path(), &ca.leaf());
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let args = [
        "--database",
        ":memory:",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ];
    let server = Server::start(&args, &[]).expect("starts");
    let pid = server.child.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reloads = logged(&server, "TLS certificate reloaded");
        if let Some(reload) = reloads.first() {
            assert_eq!(reload["fields"]["reason"], "SIGHUP");
            break;
        }
        assert!(Instant::now() < deadline, "no reload logged after SIGHUP");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.terminate();
}

#[test]
fn an_unusable_certificate_or_key_exits_with_status_2_and_the_reason() {
    let ca = Ca::new();
    let (leaf, other) = (ca.leaf(), ca.leaf());
    let dir = tempfile::tempdir().expect("dir");
    let file = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        path.to_str().expect("utf-8").to_owned()
    };
    let (cert, key) = (
        file("cert.pem", &leaf.cert_pem),
        file("key.pem", &leaf.key_pem),
    );
    let other_key = file("other.pem", &other.key_pem);
    let garbage = file("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let missing = dir
        .path()
        .join("missing.pem")
        .to_str()
        .expect("utf-8")
        .to_owned();
    for (cert, key, reason) in [
        (&garbage, &key, "holds no valid PEM certificate"),
        (&key, &key, "holds no valid PEM certificate"),
        (&cert, &garbage, "holds no valid PEM private key"),
        (&cert, &cert, "holds no valid PEM private key"),
        (&cert, &other_key, "does not fit the certificate"),
        (&missing, &key, "cannot read"),
    ] {
        let args = [
            "--database",
            ":memory:",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ];
        let exited = Server::start(&args, &[]).expect_err("refuses to start");
        assert_eq!(exited.code, Some(2), "{cert} {key}: {}", exited.stderr);
        assert!(
            exited.stderr.contains(reason),
            "{reason}: {}",
            exited.stderr
        );
    }
}
