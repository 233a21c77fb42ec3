//! What the key lifecycle needs of storage: the [`KeyStore`] interface, one atomic
//! [`KeyChange`], explicit [`KeyVersion`]s for optimistic concurrency, a metadata-only
//! [`KeyInfo`] listing, and the [`RotationLease`] that elects one writer among replicas.
//!
//! `keys/` owns these interfaces because it consumes them; `store/` implements them for
//! memory, SQLite and PostgreSQL. Every writer (the rotator today; a CLI or an admin
//! request tomorrow) works the same way: load a version, plan from it, apply over it,
//! and replan on [`StoreError::Stale`].

use std::sync::Arc;

use super::clock::UnixMillis;
use super::jwk::KeyId;
use super::record::{KeyRecord, KeyState, Schedule};
use super::seal::Sealer;
use super::signing::Algorithm;
use crate::persist::{BoxFuture, StoreError};

/// The version of the stored key set: every applied change makes a new one. Versions of
/// one store only compare for equality; no writer keeps one hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyVersion(i64);

impl KeyVersion {
    /// The version as the store records it.
    #[must_use]
    pub fn new(value: i64) -> Self {
        Self(value)
    }

    /// The recorded number.
    #[must_use]
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A value read from the store together with the key-set version it reflects.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The version the value was read at.
    pub version: KeyVersion,
    /// The value.
    pub value: T,
}

/// Why and when an operator withdrew a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// When (Unix milliseconds).
    pub at: UnixMillis,
    /// The operator's words (may be empty).
    pub reason: String,
}

/// One atomic change to the stored keys: all of it is applied, or none.
#[derive(Debug, Default)]
pub struct KeyChange {
    /// New keys to store.
    pub insert: Vec<Arc<KeyRecord>>,
    /// Existing keys whose schedule changed (a postponed or brought-forward retirement).
    pub reschedule: Vec<Arc<KeyRecord>>,
    /// Keys to delete for good (expired, or pending keys that never signed).
    pub remove: Vec<KeyId>,
    /// Keys to revoke: their rows stay (a revoked kid never comes back), but they are no
    /// longer loaded, published or used, and `keys.exp` becomes the revocation time.
    pub revoke: Vec<(KeyId, Revocation)>,
}

impl KeyChange {
    /// Whether the change does nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.insert.is_empty()
            && self.reschedule.is_empty()
            && self.remove.is_empty()
            && self.revoke.is_empty()
    }
}

/// What an operator may see of a stored key: never private material, and reading it
/// decrypts nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The RFC 7638 thumbprint.
    pub kid: KeyId,
    /// The signing algorithm.
    pub alg: Algorithm,
    /// Every instant of its life.
    pub schedule: Schedule,
    /// Set once an operator revoked it.
    pub revoked: Option<Revocation>,
}

impl KeyInfo {
    /// The key's state at `now`: [`KeyState::Revoked`] once revoked, else its schedule's.
    #[must_use]
    pub fn state_at(&self, now: UnixMillis) -> KeyState {
        if self.revoked.is_some() {
            KeyState::Revoked
        } else {
            self.schedule.state_at(now)
        }
    }
}

/// Durable storage of signing keys and their schedules.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Every stored key that is not revoked, parsed and ready to sign, with the version
    /// they were read at.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails or a row cannot be opened.
    fn load_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<Arc<KeyRecord>>>, StoreError>>;

    /// Every stored key's id, algorithm, schedule and revocation, revoked keys included,
    /// without opening any private key.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn list_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<KeyInfo>>, StoreError>>;

    /// Applies `change` in one transaction if the stored keys are still at `base`, the
    /// version it was planned from; returns the new version.
    ///
    /// # Errors
    /// [`StoreError::Stale`] if another writer changed the keys since `base`; any other
    /// [`StoreError`] if the database fails. Either way nothing was applied.
    fn apply<'a>(
        &'a self,
        base: KeyVersion,
        change: &'a KeyChange,
    ) -> BoxFuture<'a, Result<KeyVersion, StoreError>>;

    /// The current version, without reading any key (replicas poll it).
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn key_version(&self) -> BoxFuture<'_, Result<KeyVersion, StoreError>>;

    /// Re-seals every stored private key under `new` in one transaction; returns how
    /// many. Schedules and the version do not change.
    ///
    /// # Errors
    /// [`StoreError`] if a key cannot be opened with the current master key, or the
    /// database fails; then nothing changed.
    fn rewrap<'a>(&'a self, new: &'a Sealer) -> BoxFuture<'a, Result<usize, StoreError>>;

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
