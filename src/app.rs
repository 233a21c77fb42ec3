//! [`Application`]: binds the listener first, loads or creates the keys, then serves
//! HTTP/1.1 connections until told to stop, draining in-flight requests, stopping the
//! rotation task and closing the store on the way out.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::clients::{ClientRegistry, ClientStore};
use crate::config::MasterKeySource;
use crate::config::{
    DRAIN_TIMEOUT, DatabaseSettings, MAX_HEADER_BYTES, MAX_HEADERS, RATE_LIMIT_MAX_CLIENTS,
    RATE_LIMIT_WINDOW, Settings,
};
use crate::http::Limits;
use crate::http::{AppState, Discovery, SharedState, router, startup_warnings};
use crate::keys::{Clock, Rotator, SystemClock};
use crate::keys::{MasterKey, Sealer};
use crate::ratelimit::RateLimiter;
use crate::store::{KeyStore, MemoryStore, PostgresStore, SqliteStore, Store, UserStore};
use crate::token::{Issuer, UnpublishedKeys};
use crate::users::{AuditLog, PasswordHasher, Users};

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Keys could not be loaded or created.
    #[error("cannot prepare signing keys: {0}")]
    Keys(#[from] crate::keys::RotateError),
    /// The master key is malformed or unreadable.
    #[error("master key: {0}")]
    MasterKey(String),
    /// The key store could not be opened.
    #[error("cannot open the key store: {0}")]
    Store(String),
}

/// The master key named by `source`; `None` when none was given (a SQLite database then
/// keeps a key file beside itself).
///
/// # Errors
/// [`AppError::MasterKey`] if the key is malformed or its file unreadable.
pub fn master_key(source: &MasterKeySource) -> Result<Option<MasterKey>, AppError> {
    let bad = |what: String| AppError::MasterKey(what);
    match source {
        MasterKeySource::Base64(secret) => MasterKey::from_base64(secret.expose())
            .map(Some)
            .map_err(|e| bad(format!("JWKS_MASTER_KEY: {e}"))),
        MasterKeySource::Passphrase(secret) => {
            Ok(Some(MasterKey::from_passphrase(secret.expose())))
        }
        MasterKeySource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            MasterKey::from_base64(&text)
                .map(Some)
                .map_err(|e| bad(format!("{}: {e}", path.display())))
        }
        MasterKeySource::BesideDatabase => Ok(None),
    }
}

/// Opens the configured store, running its migrations.
///
/// # Errors
/// [`AppError`] if the database cannot be opened or the master key is unusable.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, AppError> {
    let store: Arc<dyn Store> = match &settings.database {
        DatabaseSettings::Memory => Arc::new(MemoryStore::default()),
        DatabaseSettings::Sqlite(path) => {
            let master = master_key(&settings.master_key)?;
            let store = SqliteStore::open(path, master)
                .await
                .map_err(|e| AppError::Store(e.to_string()))?;
            tracing::info!(database = %path.display(), "using SQLite");
            Arc::new(store)
        }
        DatabaseSettings::Postgres(url) => {
            let master = master_key(&settings.master_key)?.ok_or_else(|| {
                AppError::Store(
                    "PostgreSQL needs the master key shared by all replicas: set JWKS_MASTER_KEY, NOT_MY_KEY or \
                     --master-key-file"
                        .into(),
                )
            })?;
            let sealer = Sealer::new(master).map_err(|e| AppError::Store(e.to_string()))?;
            let store = PostgresStore::connect(url, None, sealer)
                .await
                .map_err(|e| AppError::Store(e.to_string()))?;
            tracing::info!(database = %url, "using PostgreSQL");
            Arc::new(store)
        }
    };
    Ok(store)
}

/// Re-seals every stored key under `new` (`jwks-server keys rewrap`); returns how many.
///
/// # Errors
/// [`AppError`] if the store cannot be opened with the current master key, or the
/// rewrap fails (then nothing changed).
pub async fn rewrap_keys(settings: &Settings, new: MasterKey) -> Result<usize, AppError> {
    let new = Sealer::new(new).map_err(|e| AppError::MasterKey(e.to_string()))?;
    let store_error = |e: crate::store::StoreError| AppError::Store(e.to_string());
    match &settings.database {
        DatabaseSettings::Memory => Err(AppError::Store(
            "an in-memory database has nothing to rewrap".into(),
        )),
        DatabaseSettings::Sqlite(path) => {
            let store = SqliteStore::open(path, master_key(&settings.master_key)?)
                .await
                .map_err(store_error)?;
            store.rewrap(&new).await.map_err(store_error)
        }
        DatabaseSettings::Postgres(url) => {
            let master = master_key(&settings.master_key)?.ok_or_else(|| {
                AppError::MasterKey("set the current master key to rewrap".into())
            })?;
            let sealer = Sealer::new(master).map_err(|e| AppError::MasterKey(e.to_string()))?;
            let store = PostgresStore::connect(url, None, sealer)
                .await
                .map_err(store_error)?;
            store.rewrap(&new).await.map_err(store_error)
        }
    }
}

/// A server that is bound and has its keys, ready to run.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    /// The handlers' state, for the JWKS fast path in front of the router.
    state: AppState,
    rotator: Rotator,
    audit_writer: tokio::task::JoinHandle<()>,
    users: Users,
    settings: Settings,
    /// Closed last, once requests, the audit writer and the rotator have stopped.
    store: Arc<dyn Store>,
    /// The registered clients; its poll task runs with the server and stops with the rotator.
    clients: ClientRegistry,
}

impl Application {
    /// Binds, opens the store and prepares the keys, with the system clock.
    ///
    /// # Errors
    /// [`AppError`] if the address is taken or the keys cannot be prepared.
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let store = open_store(&settings).await?;
        Self::build_with(settings, store, Arc::new(SystemClock)).await
    }

    /// Like [`Application::build`] with an explicit store and clock (for tests).
    ///
    /// # Errors
    /// [`AppError`] if the address is taken or the keys cannot be prepared.
    pub async fn build_with(
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AppError> {
        // Bind first: connections that arrive while keys are prepared wait in the
        // listen backlog and are answered as soon as the keys exist.
        let addr = settings.http.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| AppError::Bind { addr, source })?;
        let key_store: Arc<dyn KeyStore> = store.clone();
        let user_store: Arc<dyn UserStore> = store.clone();
        let rotator = Rotator::bootstrap(settings.keys, key_store, Arc::clone(&clock)).await?;
        let (audit, audit_writer) = AuditLog::spawn(user_store.clone());
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let users = Users::new(
            user_store,
            PasswordHasher::new(cores),
            audit,
            settings.auth.mode,
        );
        let limiter = |per_second: u32| {
            RateLimiter::new(per_second, RATE_LIMIT_WINDOW, RATE_LIMIT_MAX_CLIENTS).map(Arc::new)
        };
        let limits = Limits {
            auth: limiter(settings.auth.auth_rate_limit),
            register: limiter(settings.auth.register_rate_limit),
        };
        let issuer = Issuer::new(
            settings.issuer_for(addr),
            settings.token.audience.clone(),
            settings.token.ttl,
        );
        // The issuer surface (issue 11): clients in memory, discovery, start-up notes.
        let client_store: Arc<dyn ClientStore> = store.clone();
        let clients = ClientRegistry::load(client_store, settings.auth.mode)
            .await
            .map_err(|e| AppError::Store(format!("cannot load the clients: {e}")))?;
        let discovery = Discovery::new(issuer.issuer().to_owned(), settings.keys.alg);
        for note in startup_warnings(
            addr.ip(),
            settings.token.issuer.is_some(),
            issuer.issuer(),
            settings.auth.mode == crate::users::AuthMode::Open,
        ) {
            tracing::warn!("{note}");
        }
        let cache_control = format!("public, max-age={}", settings.jwks_max_age.as_secs());
        let state = AppState::new(SharedState {
            keys: rotator.handle(),
            rotator: rotator.clone(),
            issuer,
            clock,
            jwks_cache_control: HeaderValue::from_str(&cache_control).expect("digits and ASCII"),
            users: users.clone(),
            trust_proxy: settings.auth.trust_proxy,
            body_timeout: settings.http.request_timeout,
            clients: clients.clone(),
            discovery,
            unpublished: UnpublishedKeys::default(),
            test_case_counts: Default::default(),
            password_limiter: limits.auth.clone(),
            token_limiter: limiter(settings.oauth.token_rate_limit),
            clock_skew_secs: i64::try_from(settings.keys.clock_skew.as_secs()).unwrap_or(60),
        });
        Ok(Self {
            listener,
            addr,
            router: router(state.clone(), limits),
            state,
            rotator,
            audit_writer,
            users,
            settings,
            store,
            clients,
        })
    }

    /// The bound port (useful with port 0).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The password hasher, e.g. for tests that read its counters.
    #[must_use]
    pub fn password_hasher(&self) -> PasswordHasher {
        self.users.hasher().clone()
    }

    /// The clients registry, e.g. for tests that reload it at once.
    #[must_use]
    pub fn clients(&self) -> ClientRegistry {
        self.clients.clone()
    }

    /// The rotator, e.g. for tests that step it with a manual clock.
    #[must_use]
    pub fn rotator(&self) -> Rotator {
        self.rotator.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains in-flight
    /// requests (up to a deadline) and stops the rotation task.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let clients_poll = tokio::spawn(self.clients.clone().run(stop_rx.clone()));
        let rotation = tokio::spawn(self.rotator.clone().run(stop_rx));
        tracing::info!(addr = %self.addr, alg = %self.settings.keys.alg, "listening");

        let graceful = GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.settings.http.request_timeout)
            .max_buf_size(MAX_HEADER_BYTES)
            .max_headers(MAX_HEADERS);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let state = self.state.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let fast = crate::http::jwks_fast_path(&state, &req);
                let router = router.clone();
                async move {
                    if let Some(response) = fast {
                        return Ok(response);
                    }
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    router.oneshot(req).await
                }
            });
            let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tracing::info!("shutting down: draining in-flight requests");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain deadline passed; closing remaining connections");
        }
        // Every request still holding the audit log has finished; dropping the last
        // handle lets the writer commit what is queued and stop.
        drop(self.router);
        drop(self.users);
        drop(self.state);
        if tokio::time::timeout(DRAIN_TIMEOUT, self.audit_writer)
            .await
            .is_err()
        {
            tracing::warn!("audit log writer did not finish in time");
        }
        let _ = stop_tx.send(true);
        let _ = rotation.await;
        let _ = clients_poll.await;
        if tokio::time::timeout(DRAIN_TIMEOUT, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the store did not close in time");
        }
        tracing::info!("stopped");
    }
}
