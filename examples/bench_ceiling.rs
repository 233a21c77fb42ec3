//! Bench-only reference ceiling for `bench/run.sh`: the least work this machine can do to
//! answer the two requests jwks-server exists for, so each of the server's figures can be
//! read as a ratio measured in the same run on the same core.
//!
//! - `bench_ceiling serve --port P --jwks FILE --alg ALG`: hyper HTTP/1.1 on a
//!   single-threaded tokio runtime and nothing else (no router, no middleware, no logging).
//!   Any `GET`/`HEAD` answers the JWKS bytes read from `FILE` (fetched from the real
//!   server, so the body is byte-identical) with the same headers the server sends;
//!   `POST` (any path) drains the body and answers a token signing the same claims as
//!   `POST /auth` with one cached aws-lc-rs key of `ALG`.
//! - `... serve ... --tls-cert PEM --tls-key PEM`: the same over TLS with tokio-rustls and
//!   the aws-lc-rs provider, configured as the server's listener is (TLS 1.3 and 1.2, no
//!   client certificates, ALPN `http/1.1`) but with one fixed certificate: no reload, no
//!   handshake timeout. The issuer in the claims becomes `https://`, as the server's does.
//! - `bench_ceiling sign --alg ALG --secs S`: a raw signing loop without HTTP; prints
//!   `signs_per_sec=<n>` for a token-sized message.
//!
//! It deliberately shares no code with the library: it measures the machine, not us.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a bench tool reports its figures and usage on the terminal"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const USAGE: &str = "usage:
  bench_ceiling serve --port PORT --jwks FILE [--alg RS256|ES256|EdDSA]
                      [--tls-cert PEM --tls-key PEM]
  bench_ceiling sign  [--alg RS256|ES256|EdDSA] [--secs SECONDS]";

/// Token lifetime in the claims, as the server's default `--token-ttl 15m`.
const TTL_SECS: u64 = 900;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// One cached key pair, parsed once, as the server caches its active key.
enum Key {
    Rsa(RsaKeyPair, SystemRandom),
    Ec(EcdsaKeyPair, SystemRandom),
    Ed(Ed25519KeyPair),
}

impl Key {
    fn generate(alg: Alg) -> Result<Self, String> {
        let failed = |e: aws_lc_rs::error::Unspecified| format!("key generation: {e}");
        Ok(match alg {
            Alg::Rs256 => Self::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?,
                SystemRandom::new(),
            ),
            Alg::Es256 => Self::Ec(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?,
                SystemRandom::new(),
            ),
            Alg::EdDsa => Self::Ed(Ed25519KeyPair::generate().map_err(failed)?),
        })
    }

    /// Appends `.<base64url signature of message>` to `message`.
    fn sign_into(&self, message: &mut String) -> Result<(), String> {
        let failed = |e: aws_lc_rs::error::Unspecified| format!("signing: {e}");
        message.push('.');
        let signed = message.len() - 1;
        match self {
            Self::Rsa(key, rng) => {
                let mut sig = [0u8; 256];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    rng,
                    &message.as_bytes()[..signed],
                    &mut sig,
                )
                .map_err(failed)?;
                URL_SAFE_NO_PAD.encode_string(sig, message);
            }
            Self::Ec(key, rng) => {
                let sig = key
                    .sign(rng, &message.as_bytes()[..signed])
                    .map_err(failed)?;
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), message);
            }
            Self::Ed(key) => {
                let sig = key.sign(&message.as_bytes()[..signed]);
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), message);
            }
        }
        Ok(())
    }
}

/// What the server needs per connection: the key, the cached header and the JWKS.
struct Ceiling {
    key: Key,
    /// base64url of the JWS header, as the server caches it per key.
    jws_header: String,
    issuer: String,
    jwks: Bytes,
    etag: HeaderValue,
}

impl Ceiling {
    fn new(alg: Alg, jwks: Bytes, scheme: &str, port: u16) -> Result<Self, String> {
        let key = Key::generate(alg)?;
        // A kid of the same length as an RFC 7638 thumbprint (43 base64url characters).
        let kid = URL_SAFE_NO_PAD.encode(digest(&SHA256, alg.name().as_bytes()).as_ref());
        let header = format!(r#"{{"alg":"{}","kid":"{kid}","typ":"JWT"}}"#, alg.name());
        let hash = digest(&SHA256, &jwks);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]));
        Ok(Self {
            key,
            jws_header: URL_SAFE_NO_PAD.encode(header),
            issuer: format!("{scheme}://127.0.0.1:{port}"),
            jwks,
            etag: HeaderValue::from_str(&etag).map_err(|e| e.to_string())?,
        })
    }

    /// The same claims as the server's `POST /auth` without credentials.
    fn token(&self) -> Result<String, String> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let claims = format!(
            r#"{{"iss":"{}","sub":"anonymous","iat":{iat},"nbf":{iat},"exp":{},"jti":"{}"}}"#,
            self.issuer,
            iat + TTL_SECS,
            uuid_v4()?
        );
        let mut token = String::with_capacity(self.jws_header.len() + claims.len() * 4 / 3 + 400);
        token.push_str(&self.jws_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        self.key.sign_into(&mut token)?;
        Ok(token)
    }

    async fn answer(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let method = req.method().clone();
        let mut response = if method == Method::POST {
            // Drain the body as the server's extractor does; its content is not used.
            let _ = req.into_body().collect().await;
            match self.token() {
                Ok(token) => {
                    let body = format!(
                        r#"{{"token":"{token}","token_type":"Bearer","expires_in":{TTL_SECS}}}"#
                    );
                    Response::new(Full::new(Bytes::from(body)))
                }
                Err(error) => {
                    let mut r = Response::new(Full::new(Bytes::from(error)));
                    *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                    r
                }
            }
        } else {
            let mut r = Response::new(Full::new(self.jwks.clone()));
            let h = r.headers_mut();
            h.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            h.insert(ETAG, self.etag.clone());
            r
        };
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }
}

/// A random UUIDv4 in hyphenated form, as the server's `jti`.
fn uuid_v4() -> Result<String, String> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|e| e.to_string())?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = u128::from_be_bytes(b);
    Ok(format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        x >> 96,
        (x >> 80) & 0xffff,
        (x >> 64) & 0xffff,
        (x >> 48) & 0xffff,
        x & 0xffff_ffff_ffff
    ))
}

/// The server's TLS configuration (`src/tls.rs`) without its reloading resolver: the
/// aws-lc-rs provider, TLS 1.3 and 1.2, no client certificates, ALPN `http/1.1`.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("TLS configuration: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn serve(ceiling: Arc<Ceiling>, port: u16, tls: Option<TlsAcceptor>) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("bench_ceiling listening on {scheme}://{addr}");
    let http = hyper::server::conn::http1::Builder::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                eprintln!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ceiling = Arc::clone(&ceiling);
        let service = hyper::service::service_fn(move |req| Arc::clone(&ceiling).answer(req));
        let Some(tls) = &tls else {
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::spawn(async move {
                let _ = conn.await;
            });
            continue;
        };
        let (handshake, http) = (tls.accept(stream), http.clone());
        tokio::spawn(async move {
            if let Ok(stream) = handshake.await {
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            }
        });
    }
}

/// Signs a token-sized message for `secs` seconds; returns signatures per second.
fn sign_loop(alg: Alg, secs: f64) -> Result<f64, String> {
    let ceiling = Ceiling::new(alg, Bytes::new(), "http", 8080)?;
    let message = {
        let mut t = ceiling.jws_header.clone();
        t.push('.');
        URL_SAFE_NO_PAD.encode_string(
            r#"{"iss":"http://127.0.0.1:8080","sub":"anonymous","iat":1700000000,"nbf":1700000000,"exp":1700000900,"jti":"6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"}"#,
            &mut t,
        );
        t
    };
    let deadline = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut count: u64 = 0;
    let mut scratch = String::with_capacity(message.len() + 400);
    while start.elapsed() < deadline {
        for _ in 0..16 {
            scratch.clear();
            scratch.push_str(&message);
            ceiling.key.sign_into(&mut scratch)?;
        }
        count += 16;
    }
    #[allow(
        clippy::cast_precision_loss,
        reason = "a signature count fits f64 exactly"
    )]
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

struct Args {
    command: String,
    port: u16,
    jwks: Option<PathBuf>,
    alg: Alg,
    secs: f64,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().ok_or("missing command")?;
    let mut args = Args {
        command,
        port: 0,
        jwks: None,
        alg: Alg::Rs256,
        secs: 3.0,
        tls_cert: None,
        tls_key: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(|e| format!("--port: {e}"))?,
            "--jwks" => args.jwks = Some(PathBuf::from(value)),
            "--alg" => args.alg = Alg::parse(&value).ok_or(format!("unknown alg {value}"))?,
            "--secs" => args.secs = value.parse().map_err(|e| format!("--secs: {e}"))?,
            "--tls-cert" => args.tls_cert = Some(PathBuf::from(value)),
            "--tls-key" => args.tls_key = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), String> {
    match args.command.as_str() {
        "serve" => {
            let path = args.jwks.ok_or("serve needs --jwks FILE")?;
            let jwks = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
                (None, None) => None,
                _ => return Err("--tls-cert and --tls-key go together".into()),
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let ceiling = Ceiling::new(args.alg, Bytes::from(jwks), scheme, args.port)?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(serve(Arc::new(ceiling), args.port, tls))
        }
        "sign" => {
            let rate = sign_loop(args.alg, args.secs)?;
            println!("alg={} signs_per_sec={rate:.1}", args.alg.name());
            Ok(())
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench_ceiling: {error}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
