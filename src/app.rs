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

use crate::config::{DRAIN_TIMEOUT, RATE_LIMIT_MAX_CLIENTS, RATE_LIMIT_WINDOW, Settings};
use crate::http::{AppState, Limits, SharedState, router, serve_connections};
use crate::keys::{Clock, KeyStore, RotateError, Rotator, SystemClock};
use crate::persist::StoreError;
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::tls::{Tls, TlsError};
use crate::token::Issuer;
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
    /// The audit writer, the rotation task and the store, stopped in order at the end.
    pub background: Background,
}

/// Builds everything a request needs: bootstraps the keys (loads them, brings the
/// schedule up to date, persists what that created), starts the audit writer and sets
/// up the password hasher, rate limiters and issuer. Reused by the server, by tests
/// and by anything that must answer requests without a socket. The rotation task is not
/// started here; [`Background::start_rotation`] starts it.
///
/// # Errors
/// [`AppError::Keys`] if the keys cannot be loaded or created.
pub async fn build_state(
    settings: &Settings,
    issuer: String,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<Services, AppError> {
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
    let issuer = Issuer::new(issuer, settings.token.audience.clone(), settings.token.ttl);
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
    });
    let (stop_rotation, _) = watch::channel(false);
    Ok(Services {
        state,
        limits,
        background: Background {
            audit_writer,
            rotator,
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
/// 2. the rotation task: told to stop, it abandons a step in progress (nothing of a
///    step is persisted before its one transaction, and a cut-off transaction rolls back);
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
    /// The rotation task, once started; stopped second.
    rotation: Option<tokio::task::JoinHandle<()>>,
    /// Tells the rotation task to stop.
    stop_rotation: watch::Sender<bool>,
    /// The database of keys and users; closed last.
    store: Arc<dyn Store>,
}

impl Background {
    /// Starts the rotation task (once; later calls do nothing).
    pub fn start_rotation(&mut self) {
        if self.rotation.is_none() {
            let stop = self.stop_rotation.subscribe();
            self.rotation = Some(tokio::spawn(self.rotator.clone().run(stop)));
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
        if let Some(rotation) = self.rotation
            && tokio::time::timeout(DRAIN_TIMEOUT, rotation).await.is_err()
        {
            tracing::warn!("the rotation task did not stop in time");
        }
        if tokio::time::timeout(DRAIN_TIMEOUT, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("the store did not close in time");
        }
    }
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
        let services = build_state(&settings, settings.issuer_for(addr), store, clock).await?;
        Ok(Self {
            listener,
            addr,
            router: router(services.state.clone(), services.limits),
            state: services.state,
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

    /// Serves until `shutdown` resolves, then stops accepting, drains in-flight
    /// requests (up to [`DRAIN_TIMEOUT`]) and stops the background work
    /// ([`Background::stop`]).
    pub async fn run_until_stopped(mut self, shutdown: impl Future<Output = ()> + Send) {
        self.background.start_rotation();
        let (stop_reload, stopped) = watch::channel(false);
        let reload = self.tls.clone().map(|tls| tokio::spawn(tls.watch(stopped)));
        let scheme = if self.tls.is_some() { "https" } else { "http" };
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
        drop(self.router);
        drop(self.state);
        self.background.stop().await;
        tracing::info!("stopped");
    }
}
