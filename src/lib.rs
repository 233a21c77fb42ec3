//! jwks-server: owns signing keys, rotates them on a schedule, publishes the public
//! halves as a JWK Set and issues signed JWTs.
//!
//! # Layout
//! - [`cli`]: command-line flags and subcommands (clap), each flag with a `JWKS_*` env var
//!   (the master-key passphrase: `NOT_MY_KEY`); durations are parsed here.
//! - [`config`]: validated [`config::Settings`], nested by concern.
//! - [`telemetry`]: the `tracing` subscriber.
//! - [`secret`]: [`secret::Secret`], the one string wrapper whose `Debug` is redacted.
//! - [`app`]: [`app::Application`]: bind, prepare keys, serve, drain.
//! - [`http`]: routes, handlers and the JSON error shape; translation only.
//! - [`keys`]: the key lifecycle: generation, JWK + RFC 7638 `kid`, schedules, the
//!   immutable [`keys::KeySet`] snapshot, the [`keys::Rotator`] task, sealing.
//! - [`token`]: JWT claims and signing with a cached key.
//! - [`store`]: persistence behind the [`store::KeyStore`] and [`store::UserStore`] traits.
//! - [`clients`]: OAuth 2.0 clients: hashed secrets, the [`clients::ClientStore`]
//!   interface and the in-memory [`clients::ClientRegistry`] the token endpoint reads.
//! - [`users`]: registration, Argon2id passwords, authentication modes, the audit log.
//! - [`signin`]: interactive sign-in's state (pending requests, sessions, codes, PKCE),
//!   kept in the database so that replicas share it.
//! - [`ratelimit`]: the per-client sliding-window-log limiter.
//! - [`selftest`]: `jwks-server selftest [URL]`, a conformance check of a live JWKS server
//!   over HTTP (its own client and strict JWT verifier; never opens the store).
//! - [`tls`]: HTTPS with rustls: certificates from PEM files, reloaded without a restart.

pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod operator;
pub mod persist;
pub mod ratelimit;
pub mod secret;
pub mod selftest;
pub mod signin;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod tls;
pub mod token;
pub mod users;
