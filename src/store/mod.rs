//! Persistence of keys behind a narrow async trait, so the key domain never sees SQL
//! and every backend passes the same test suite.

mod clients;
mod memory;
mod postgres;
mod sealed;
mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use clients::{PostgresClients, SqliteClients, open_client_store};
pub use memory::MemoryStore;
pub use postgres::{DatabaseUrl, PostgresStore};
pub use sqlite::SqliteStore;

use crate::keys::{KeyId, KeyRecord};

/// A boxed future, so the store traits stay object-safe (`Arc<dyn KeyStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything that can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(String),
    /// The stored keys were sealed under another master key than the one configured.
    #[error(
        "{0}; start with the master key that sealed these keys (the latest one given to `keys rewrap`, if any)"
    )]
    WrongMasterKey(String),
    /// The stored keys changed since this process loaded them (another replica
    /// rotated); nothing was applied. Reload and plan again.
    #[error("the stored keys changed since they were loaded")]
    Stale,
    /// A unique field (`"username"` or `"email"`) is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A stored row could not be turned back into a key.
    #[error("stored key {kid} is unusable: {reason}")]
    Corrupt {
        /// The stored key id.
        kid: String,
        /// Why it could not be used.
        reason: String,
    },
}

/// One atomic change to the stored keys: all of it is applied, or none.
#[derive(Debug, Default)]
pub struct KeyChange {
    /// New keys to store.
    pub insert: Vec<Arc<KeyRecord>>,
    /// Existing keys whose schedule changed (a postponed retirement).
    pub reschedule: Vec<Arc<KeyRecord>>,
    /// Keys to delete for good.
    pub remove: Vec<KeyId>,
}

impl KeyChange {
    /// Whether the change does nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty() && self.reschedule.is_empty() && self.remove.is_empty()
    }
}

/// Durable storage of signing keys and their schedules.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Every stored key, parsed and ready to sign.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails or a row cannot be opened.
    fn load_keys(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRecord>>, StoreError>>;

    /// Applies `change` in one transaction.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails; then nothing was applied.
    fn apply<'a>(&'a self, change: &'a KeyChange) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Whether other processes may change the same keys (replicas sharing a database).
    /// A shared store is polled for changes and elects one rotation leader.
    fn is_shared(&self) -> bool {
        false
    }

    /// Tries to become the one process that changes the stored keys; `Ok(None)` when
    /// another process holds the lease. A store used by one process always grants it.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn try_lease(&self) -> BoxFuture<'_, Result<Option<Box<dyn RotationLease>>, StoreError>> {
        Box::pin(async { Ok(Some(Box::new(SoleProcess) as Box<dyn RotationLease>)) })
    }

    /// A number that changes whenever any process changes the stored keys.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn key_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async { Ok(0) })
    }

    /// Releases the database at shutdown, after its last use (keys and users). SQLite
    /// folds its write-ahead log into the main file here, so a stopped server leaves one
    /// self-contained file to back up. Later calls on the store fail.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Proof that this process leads rotation. Dropping it gives the role up.
pub trait RotationLease: Send + Sync + std::fmt::Debug {
    /// Whether the lease is still held (a database may drop it with the connection).
    fn is_held(&self) -> BoxFuture<'_, bool>;
}

/// The lease of a store that only one process uses: always held.
#[derive(Debug)]
struct SoleProcess;

impl RotationLease for SoleProcess {
    fn is_held(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}

/// A backend that stores keys, users and clients (one database).
pub trait Store: KeyStore + UserStore + crate::clients::ClientStore {}

impl<T: KeyStore + UserStore + crate::clients::ClientStore> Store for T {}

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique username.
    pub username: String,
    /// Unique email address.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// What authentication needs of a stored user.
#[derive(Debug, Clone)]
pub struct StoredUser {
    /// `users.id`.
    pub id: i64,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// One successful authentication, for `auth_logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEvent {
    /// The user, or `None` for an unregistered name in open mode.
    pub user_id: Option<i64>,
    /// The client's IP address as text.
    pub request_ip: String,
}

/// Durable storage of users and the authentication log.
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Creates a user and returns its id.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] naming the field if the username or email is taken.
    fn create_user<'a>(&'a self, user: &'a NewUser) -> BoxFuture<'a, Result<i64, StoreError>>;

    /// The user with this username, if any.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn find_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredUser>, StoreError>>;

    /// In one transaction: adds an `auth_logs` row per event and sets `last_login` of
    /// each named user.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails; then no row was written.
    fn record_logins<'a>(
        &'a self,
        events: &'a [LoginEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}
