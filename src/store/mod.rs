//! Persistence: the backends that implement the storage interfaces their consumers
//! define ([`crate::keys::KeyStore`], [`crate::users::UserStore`]), and [`open`], which
//! opens the configured one with its master key.
//!
//! - `memory.rs`: process memory (`--database :memory:`, tests).
//! - `sqlite.rs`: a SQLite file: WAL, the single-process lock, foreign files refused, the
//!   key file beside the database.
//! - `postgres.rs`: PostgreSQL for replicas: the advisory rotation lease, `UNNEST` batches.
//! - `sql.rs`: every statement the two SQL backends share, written once.
//! - `signin.rs`: sign-in state (pending requests, sessions, codes) for every backend.
//! - `sealed.rs`: stored row <-> [`crate::keys::KeyRecord`] (sealing with the master key).
//! - `open.rs`: settings -> an open store.

mod clients;
mod memory;
mod open;
mod postgres;
mod sealed;
mod signin;
mod sql;
mod sqlite;

pub use clients::{PostgresClients, SqliteClients, open_client_store};
pub use memory::MemoryStore;
pub use open::{attach, open};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::keys::KeyStore;
use crate::signin::SignInStore;
use crate::users::UserStore;

/// A backend that stores keys, users, clients and sign-in state (one database).
pub trait Store: KeyStore + UserStore + crate::clients::ClientStore + SignInStore {}

impl<T: KeyStore + UserStore + crate::clients::ClientStore + SignInStore> Store for T {}
