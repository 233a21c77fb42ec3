//! What every persistence interface shares: the [`StoreError`] type and the boxed
//! [`BoxFuture`] that keeps the interfaces object-safe.
//!
//! The interfaces themselves belong to the modules that consume them
//! ([`crate::keys::KeyStore`], [`crate::users::UserStore`]); `store/` implements them.
//! This module sits below all three, so none of them imports another to name an error.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

/// A boxed future, so the store traits stay object-safe (`Arc<dyn KeyStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything that can go wrong in a store. Causes are kept typed: a variant whose text
/// already shows its cause holds it as a field, the others expose it as `source()`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The database server could not be reached at start-up.
    #[error("cannot connect to {url}")]
    Connect {
        /// Where, with any password redacted.
        url: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A database file was refused as it is: not SQLite, not ours, in use, unreadable.
    #[error("{}: {reason}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why, in words the operator can act on.
        reason: String,
    },
    /// A file beside the database (its lock or master key file) could not be used.
    #[error("{}: {what}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database was migrated by a newer build; nothing was touched.
    #[error(
        "{database} was migrated by a newer jwks-server (schema version {found}; this build knows up to {known}); \
         refusing to touch it"
    )]
    NewerSchema {
        /// Which database (a path or "the database").
        database: String,
        /// The unknown migration found.
        found: i64,
        /// The latest migration this build knows.
        known: i64,
    },
    /// The stored keys were sealed under another master key than the one configured.
    #[error(
        "sealed under master key {found}, but the configured master key is {expected}; start with the master key \
         that sealed these keys (the latest one given to `keys rewrap`, if any)"
    )]
    WrongMasterKey {
        /// Id of the master key that sealed the stored keys.
        found: String,
        /// Id of the configured master key.
        expected: String,
    },
    /// The configured master key is unreadable or malformed.
    #[error("{origin} does not hold a usable master key")]
    MasterKey {
        /// Where it came from: an environment variable or a file.
        origin: String,
        /// Why it is unusable.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No master key was configured where one is required.
    #[error("{0}")]
    MasterKeyRequired(&'static str),
    /// A private key could not be sealed for storage, or the master key not be used.
    #[error("cannot seal a private key")]
    Seal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The stored keys changed since the version a change was planned from (another
    /// writer went first); nothing was applied. Reload and plan again.
    #[error("the stored keys changed since they were loaded")]
    Stale,
    /// A unique field (`"username"` or `"email"`) is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// No stored, unrevoked key has this id; the change was refused whole.
    #[error("no stored key {0} that is not revoked")]
    UnknownKey(String),
    /// A key with this thumbprint is already stored; the change was refused whole.
    #[error("key {0} is already stored")]
    DuplicateKey(String),
    /// A stored row could not be turned back into a key (tampered, moved, unparsable).
    #[error("stored key {kid} is unusable")]
    Corrupt {
        /// The stored key id.
        kid: String,
        /// Why it could not be used.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The operation means nothing for this backend (e.g. rewrapping an in-memory store).
    #[error("{0}")]
    Unsupported(&'static str),
    /// A stored value could not be encoded or decoded as JSON.
    #[error("a stored value is not the JSON it should be")]
    Json(#[from] serde_json::Error),
    /// A lock of the in-memory store was poisoned by a panic.
    #[error("memory store lock poisoned")]
    Poisoned,
}
