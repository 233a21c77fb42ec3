//! TLS for the listeners: the certificate and key from PEM files, served by rustls
//! (TLS 1.3 and 1.2, the aws-lc-rs provider), and reloaded without a restart. A
//! [`CertResolver`] holds the current [`CertifiedKey`] behind an `ArcSwap`: every
//! handshake loads it once and never locks, and a reload swaps it, so connections that
//! are open keep their session and new ones get the new certificate. A reload that fails
//! keeps the old certificate. It does not know HTTP, and never logs key material.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use crate::config::TlsSettings;

/// How often the certificate and key files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(1);

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a malformed one.
    #[error("{} holds no valid PEM certificate", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser found, if anything.
        #[source]
        source: Option<rustls::pki_types::pem::Error>,
    },
    /// The key file holds no PEM private key, or a malformed one.
    #[error("{} holds no valid PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What the PEM parser found.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the key, or the key is not the certificate's.
    #[error("the key in {} does not fit the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// The TLS configuration could not be built.
    #[error("cannot configure TLS")]
    Config(#[source] rustls::Error),
}

/// The provider every TLS object here uses: aws-lc-rs, which also does the JWT crypto.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads and checks the certificate chain and key the settings name.
///
/// # Errors
/// [`TlsError`] if a file cannot be read, holds no certificate or key, or the key does
/// not match the certificate.
pub fn load_certified_key(settings: &TlsSettings) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(&settings.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Certificate {
            path: settings.cert.clone(),
            source: Some(source),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: settings.cert.clone(),
            source: None,
        });
    }
    let key_pem = read(&settings.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::Key {
        path: settings.key.clone(),
        source,
    })?;
    let mismatch = |source| TlsError::Mismatch {
        cert: settings.cert.clone(),
        key: settings.key.clone(),
        source,
    };
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(mismatch)?;
    // `from_der` lets a key whose public half it cannot tell pass; refuse it here too,
    // and refuse a leaf certificate rustls cannot parse.
    certified.keys_match().map_err(mismatch)?;
    Ok(certified)
}

/// The certificate every handshake gets: the one loaded last that was valid.
pub struct CertResolver {
    /// Swapped whole by a reload; loaded once per handshake.
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key, whatever rustls' `Debug` of it shows.
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A listener's TLS: the acceptor for connections and the files it reloads from.
#[derive(Clone)]
pub struct Tls {
    /// The paths of the certificate and key.
    settings: TlsSettings,
    /// What the acceptor's configuration asks for the certificate.
    resolver: Arc<CertResolver>,
    /// Accepts TLS connections with the current certificate.
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The acceptor's configuration holds the private key: only the paths are shown.
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate and key and builds the server configuration: TLS 1.3 and
    /// 1.2, no client certificates, ALPN `http/1.1` (the only protocol served).
    ///
    /// # Errors
    /// [`TlsError`] as [`load_certified_key`], or if rustls refuses the configuration.
    pub fn load(settings: &TlsSettings) -> Result<Self, TlsError> {
        let resolver = Arc::new(CertResolver {
            current: ArcSwap::from_pointee(load_certified_key(settings)?),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            settings: settings.clone(),
            resolver,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The acceptor for new connections.
    #[must_use]
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor.clone()
    }

    /// Loads the files again and, if they are valid, serves them to the next handshakes.
    ///
    /// # Errors
    /// [`TlsError`] as [`load_certified_key`]; the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = load_certified_key(&self.settings)?;
        self.resolver.current.store(Arc::new(certified));
        Ok(())
    }

    /// Reloads on SIGHUP and whenever either file changes (checked every
    /// [`RELOAD_POLL`]), until `stop` turns true. A failed reload is logged with its
    /// reason and retried only when the files change again (or on the next SIGHUP).
    ///
    /// The SIGHUP handler is installed when this is called, not when the future is
    /// first polled, so that a SIGHUP right after start-up cannot end the process.
    pub fn watch(self, stop: watch::Receiver<bool>) -> impl Future<Output = ()> + Send {
        let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "no SIGHUP handler; certificates reload when their files change");
                None
            }
        };
        self.watch_with(hangup, stop)
    }

    async fn watch_with(
        self,
        mut hangup: Option<tokio::signal::unix::Signal>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut seen = self.fingerprint();
        let mut poll = tokio::time::interval(RELOAD_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                _ = poll.tick() => {
                    let now = self.fingerprint();
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "the files changed"
                }
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    seen = self.fingerprint();
                    "SIGHUP"
                }
                _ = stop.wait_for(|stop| *stop) => break,
            };
            match self.reload() {
                Ok(()) => tracing::info!(
                    cert = %self.settings.cert.display(),
                    reason = why,
                    "TLS certificate reloaded"
                ),
                Err(error) => tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    reason = why,
                    "TLS certificate reload failed; still serving the previous one"
                ),
            }
        }
    }

    /// What identifies the files' current contents without reading them: modification
    /// time and length of each (`None` for a file that cannot be inspected).
    fn fingerprint(&self) -> [Option<(SystemTime, u64)>; 2] {
        [&self.settings.cert, &self.settings.key].map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
    }
}
