//! Start-up and shutdown. [`build_state`] turns settings and an open store into
//! everything a request needs ([`Services`]); [`Application`] binds, serves HTTP/1.1
//! connections until told to stop, drains in-flight requests, then hands over to
//! [`Background::stop`], the one place that stops what outlives requests, in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderValue;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::clients::{ClientRegistry, ClientStore};
use crate::config::AdminTokenSource;
use crate::config::{DRAIN_TIMEOUT, RATE_LIMIT_MAX_CLIENTS, RATE_LIMIT_WINDOW, Settings};
use crate::http::{
    AdminState, AppState, Discovery, Limits, SharedState, admin_router, router, serve_connections,
    startup_warnings,
};
use crate::keys::{Clock, KeyStore, RotateError, Rotator, SystemClock};
use crate::metrics::Metrics;
use crate::persist::StoreError;
use crate::ratelimit::RateLimiter;
use crate::secret::Secret;
use crate::signin::{SignIn, SignInStore};
use crate::store::Store;
use crate::tls::{Tls, TlsError};
use crate::token::{Issuer, UnpublishedKeys};
use crate::users::{AuditLog, AuditWriter, PasswordHasher, UserStore, Users};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Keys could not be loaded or created.
    #[error("cannot prepare signing keys")]
    Keys(#[from] RotateError),
    /// The store could not be opened.
    #[error("cannot open the key store")]
    Store(#[from] StoreError),
    /// The admin token file could not be read.
    #[error("cannot read the admin token file {}", path.display())]
    AdminToken {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error("cannot use the TLS certificate")]
    Tls(#[from] TlsError),
}

/// Everything a request needs, over an open store, and the owner of what runs behind it.
#[derive(Debug)]
pub struct Services {
    /// What handlers read: the key-set handle, the issuer, users, settings of the layer.
    pub state: AppState,
    /// The per-route rate limiters.
    pub limits: Limits,
    /// Every metric, for the admin listener's `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The audit writer, the rotation task and the store, stopped in order at the end.
    pub background: Background,
}

/// Builds everything a request needs: bootstraps the keys (loads them, brings the
/// schedule up to date, persists what that created), loads the registered clients,
/// starts the audit writer and sets up the password hasher, rate limiters, issuer and
/// discovery document. Reused by the server, by tests
/// and by anything that must answer requests without a socket. The rotation task is not
/// started here; [`Background::start_rotation`] starts it.
///
/// # Errors
/// [`AppError::Keys`] if the keys cannot be loaded or created; [`AppError::Store`] if
/// the clients cannot be loaded.
pub async fn build_state(
    settings: &Settings,
    issuer: String,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<Services, AppError> {
    let key_store: Arc<dyn KeyStore> = store.clone();
    let user_store: Arc<dyn UserStore> = store.clone();
    let client_store: Arc<dyn ClientStore> = store.clone();
    let signin_store: Arc<dyn SignInStore> = store.clone();
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
    let issuer_is_https = issuer.starts_with("https://");
    let issuer = Issuer::new(issuer, settings.token.audience.clone(), settings.token.ttl);
    // The issuer surface (issue 11): clients in memory, the discovery document.
    let clients = ClientRegistry::load(client_store, settings.auth.mode).await?;
    let discovery = Discovery::new(issuer.issuer().to_owned(), settings.keys.alg);
    let metrics = Arc::new(Metrics::new(
        rotator.metrics(),
        rotator.handle(),
        Arc::clone(&clock),
        settings.keys.publish_ahead,
    ));
    let cache_control = format!("public, max-age={}", settings.jwks_max_age.as_secs());
    let state = AppState::new(SharedState {
        keys: rotator.handle(),
        rotator: rotator.clone(),
        issuer,
        clock,
        jwks_cache_control: HeaderValue::from_str(&cache_control).expect("digits and ASCII"),
        users,
        trust_proxy: settings.auth.trust_proxy,
        body_timeout: settings.http.request_timeout,
        requests: metrics.requests.clone(),
        clients: clients.clone(),
        discovery,
        unpublished: UnpublishedKeys::default(),
        test_case_counts: Default::default(),
        password_limiter: limits.auth.clone(),
        token_limiter: limiter(settings.oauth.token_rate_limit),
        authorize_limiter: limiter(settings.oauth.authorize_rate_limit),
        clock_skew_secs: i64::try_from(settings.keys.clock_skew.as_secs()).unwrap_or(60),
        signin: SignIn::new(signin_store, settings.oauth.session_ttl),
        // Over HTTPS here, or behind a TLS-terminating proxy that the issuer names.
        secure_cookies: settings.tls.is_some() || issuer_is_https,
    });
    let (stop_rotation, _) = watch::channel(false);
    Ok(Services {
        state,
        limits,
        metrics,
        background: Background {
            audit_writer,
            rotator,
            clients,
            rotation: None,
            stop_rotation,
            store,
        },
    })
}

/// The one owner of what outlives requests. [`Background::stop`] stops it in this order,
/// each step after the one before has finished:
/// 1. the audit writer: refuses new rows, commits every queued row, exits (requests
///    must have drained first, or their rows would be refused);
/// 2. the rotation task and the clients' poll task: told to stop, the rotation task
///    abandons a step in progress (nothing of a step is persisted before its one
///    transaction, and a cut-off transaction rolls back);
///    then the rotation lease is given up (it holds a store connection);
/// 3. the store: closed last, after its last use by either (SQLite folds its
///    write-ahead log into the main file).
///
/// Each step waits at most [`DRAIN_TIMEOUT`].
#[derive(Debug)]
pub struct Background {
    /// The group-commit writer of `auth_logs`; stopped first.
    audit_writer: AuditWriter,
    /// The rotator the task runs; requests read its key-set handle.
    rotator: Rotator,
    /// The registered clients; its poll task reloads them when another process changed
    /// them.
    clients: ClientRegistry,
    /// The rotation and clients' poll tasks, once started; stopped second.
    rotation: Option<[tokio::task::JoinHandle<()>; 2]>,
    /// Tells those tasks to stop.
    stop_rotation: watch::Sender<bool>,
    /// The database of keys and users; closed last.
    store: Arc<dyn Store>,
}

impl Background {
    /// Starts the rotation task and the clients' poll task (once; later calls do
    /// nothing).
    pub fn start_rotation(&mut self) {
        if self.rotation.is_none() {
            let stop = self.stop_rotation.subscribe();
            self.rotation = Some([
                tokio::spawn(self.rotator.clone().run(stop.clone())),
                tokio::spawn(self.clients.clone().run(stop)),
            ]);
        }
    }

    /// The rotator, e.g. for tests that step it with a manual clock.
    #[must_use]
    pub fn rotator(&self) -> &Rotator {
        &self.rotator
    }

    /// Stops the audit writer, the rotation task and the store, in that order.
    pub async fn stop(self) {
        if tokio::time::timeout(DRAIN_TIMEOUT, self.audit_writer.stop())
            .await
            .is_err()
        {
            tracing::warn!("audit log writer did not finish in time");
        }
        let _ = self.stop_rotation.send(true);
        for task in self.rotation.into_iter().flatten() {
            if tokio::time::timeout(DRAIN_TIMEOUT, task).await.is_err() {
                tracing::warn!("a background task did not stop in time");
            }
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, self.rotator.resign())
            .await
            .is_err()
        {
            tracing::warn!("could not give up the rotation lease in time");
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the store did not close in time");
        }
    }
}

/// The admin API's token from its configured source.
fn admin_token(settings: &Settings) -> Result<Option<Arc<Secret>>, AppError> {
    Ok(match &settings.admin.token {
        None => None,
        Some(AdminTokenSource::Value(token)) => Some(Arc::new(token.clone())),
        Some(AdminTokenSource::File(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| AppError::AdminToken {
                path: path.clone(),
                source,
            })?;
            Some(Arc::new(Secret::new(text.trim().to_owned())))
        }
    })
}

/// A server that is bound and has its keys, ready to run.
#[derive(Debug)]
pub struct Application {
    /// The bound socket; dropped when shutdown begins, so no new connection is accepted.
    listener: TcpListener,
    /// Its address (the real port when 0 was asked for).
    addr: SocketAddr,
    /// The routes; dropped after the drain.
    router: Router,
    /// The handlers' state, also for the JWKS fast path in front of the router.
    state: AppState,
    /// The operators' listener and its routes, when `--admin-port` is set.
    admin: Option<(TcpListener, Router)>,
    /// Stopped after the drain, in its documented order.
    background: Background,
    /// The settings it was built from.
    settings: Settings,
    /// HTTPS: the acceptor and the certificate files it reloads, when configured.
    tls: Option<Tls>,
}

impl Application {
    /// Opens the configured store, binds, and prepares the keys, with the system clock.
    ///
    /// # Errors
    /// [`AppError`] if the store cannot be opened, the address is taken or the keys
    /// cannot be prepared.
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let store = crate::store::open(&settings.database, &settings.master_key).await?;
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
        // A bad certificate fails before anything is bound or generated.
        let tls = settings.tls.as_ref().map(Tls::load).transpose()?;
        // Bind before the keys are prepared: connections that arrive meanwhile wait in
        // the listen backlog and are answered as soon as the keys exist.
        let addr = settings.http.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| AppError::Bind { addr, source })?;
        let admin =
            match settings.admin.addr {
                Some(admin_addr) => Some(TcpListener::bind(admin_addr).await.map_err(
                    |source| AppError::Bind {
                        addr: admin_addr,
                        source,
                    },
                )?),
                None => None,
            };
        let token = admin_token(&settings)?;
        let key_store: Arc<dyn KeyStore> = store.clone();
        let issuer = settings.issuer_for(addr);
        for note in startup_warnings(
            addr.ip(),
            settings.token.issuer.is_some(),
            &issuer,
            settings.auth.mode == crate::users::AuthMode::Open,
        ) {
            tracing::warn!("{note}");
        }
        let services = build_state(&settings, issuer, store, Arc::clone(&clock)).await?;
        let admin = admin.map(|listener| {
            let routes = admin_router(AdminState {
                rotator: services.background.rotator().clone(),
                store: key_store,
                token,
                metrics: Arc::clone(&services.metrics),
                clock,
            });
            (listener, routes)
        });
        Ok(Self {
            listener,
            addr,
            router: router(services.state.clone(), services.limits),
            state: services.state,
            admin,
            background: services.background,
            settings,
            tls,
        })
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's bound address, when there is one.
    #[must_use]
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The password hasher, e.g. for tests that read its counters.
    #[must_use]
    pub fn password_hasher(&self) -> PasswordHasher {
        self.state.users.hasher().clone()
    }

    /// The rotator, e.g. for tests that step it with a manual clock.
    #[must_use]
    pub fn rotator(&self) -> Rotator {
        self.background.rotator().clone()
    }

    /// The client registry, e.g. for tests that reload it at once.
    #[must_use]
    pub fn clients(&self) -> ClientRegistry {
        self.background.clients.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains in-flight
    /// requests (up to [`DRAIN_TIMEOUT`]) and stops the background work
    /// ([`Background::stop`]).
    pub async fn run_until_stopped(mut self, shutdown: impl Future<Output = ()> + Send) {
        self.background.start_rotation();
        let (stop_reload, stopped) = watch::channel(false);
        let reload = self.tls.clone().map(|tls| tokio::spawn(tls.watch(stopped)));
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        // The admin listener: the same connection handling (and TLS) as the public one.
        let (admin_stop, admin_stopped) = watch::channel(false);
        let admin = self.admin.take().map(|(listener, routes)| {
            let addr = listener.local_addr().ok();
            tracing::info!(?addr, scheme, "admin listener (metrics, /admin API)");
            let acceptor = self.tls.as_ref().map(Tls::acceptor);
            let timeout = self.settings.http.request_timeout;
            let mut stopped = admin_stopped.clone();
            let make_service = move |peer: SocketAddr| {
                let routes = routes.clone();
                hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    routes.clone().oneshot(req)
                })
            };
            tokio::spawn(serve_connections(
                listener,
                acceptor,
                timeout,
                make_service,
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
            ))
        });
        tracing::info!(addr = %self.addr, scheme, alg = %self.settings.keys.alg, "listening");
        let router = self.router.clone();
        let state = self.state.clone();
        let make_service = move |peer: SocketAddr| {
            let router = router.clone();
            let state = state.clone();
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
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
            })
        };
        serve_connections(
            self.listener,
            self.tls.as_ref().map(Tls::acceptor),
            self.settings.http.request_timeout,
            make_service,
            shutdown,
        )
        .await;
        let _ = stop_reload.send(true);
        if let Some(reload) = reload {
            let _ = reload.await;
        }
        // The admin API acts through the rotator: it stops before the background does.
        let _ = admin_stop.send(true);
        if let Some(admin) = admin
            && tokio::time::timeout(DRAIN_TIMEOUT, admin).await.is_err()
        {
            tracing::warn!("admin listener did not stop in time");
        }
        drop(self.router);
        drop(self.state);
        self.background.stop().await;
        tracing::info!("stopped");
    }
}
