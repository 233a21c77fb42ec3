//! Persistence of keys behind a narrow async trait, so the key domain never sees SQL
//! and every backend passes the same test suite.

mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use memory::MemoryStore;

use crate::keys::{KeyId, KeyRecord};

/// A boxed future, so the store traits stay object-safe (`Arc<dyn KeyStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything that can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(String),
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
}
