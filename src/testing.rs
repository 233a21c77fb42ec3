//! Fakes for tests, unit and black-box alike: stores that misbehave in controlled ways.
//! Built on [`MemoryStore`], so they keep its rules (a key stored once, changes applied
//! only over the version they were planned from). Not used by the server itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::keys::{
    Algorithm, KeyChange, KeyInfo, KeyRecord, KeyStore, KeyVersion, Lifecycle, RotationLease,
    Sealer, Versioned,
};
use crate::persist::{BoxFuture, StoreError};
use crate::store::MemoryStore;

/// A lifecycle in minutes for tests of planning and rotation: EdDSA keys (fast to
/// generate) that sign for 60 s, published 20 s ahead, tokens of 30 s, 5 s of skew.
#[must_use]
pub fn minute_lifecycle() -> Lifecycle {
    Lifecycle {
        alg: Algorithm::EdDsa,
        rotation_interval: Duration::from_secs(60),
        publish_ahead: Duration::from_secs(20),
        token_ttl: Duration::from_secs(30),
        clock_skew: Duration::from_secs(5),
    }
}

/// A key store that stops answering `apply` once [`StallingStore::stall`] is called: a
/// rotation step then hangs in it, as in a database that accepts a connection and never
/// answers.
#[derive(Debug, Default)]
pub struct StallingStore {
    keys: MemoryStore,
    stalled: AtomicBool,
}

impl StallingStore {
    /// From now on, `apply` never returns.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

impl KeyStore for StallingStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<Arc<KeyRecord>>>, StoreError>> {
        self.keys.load_keys()
    }

    fn list_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<KeyInfo>>, StoreError>> {
        self.keys.list_keys()
    }

    fn apply<'a>(
        &'a self,
        base: KeyVersion,
        change: &'a KeyChange,
    ) -> BoxFuture<'a, Result<KeyVersion, StoreError>> {
        if self.stalled.load(Ordering::SeqCst) {
            Box::pin(std::future::pending())
        } else {
            self.keys.apply(base, change)
        }
    }

    fn key_version(&self) -> BoxFuture<'_, Result<KeyVersion, StoreError>> {
        self.keys.key_version()
    }

    fn rewrap<'a>(&'a self, new: &'a Sealer) -> BoxFuture<'a, Result<usize, StoreError>> {
        self.keys.rewrap(new)
    }
}

/// One in-memory key set shared by several [`SharedMemory::replica`] handles, as
/// replicas share one PostgreSQL database: a lease that one replica holds at a time, and
/// optimistic changes over the shared version.
#[derive(Debug, Default)]
pub struct SharedMemory {
    keys: MemoryStore,
    leader: Mutex<Option<u32>>,
}

impl SharedMemory {
    /// The store as replica `id` sees it.
    #[must_use]
    pub fn replica(self: &Arc<Self>, id: u32) -> Arc<dyn KeyStore> {
        Arc::new(Replica {
            shared: Arc::clone(self),
            id,
        })
    }

    /// The replica holding the lease, if any.
    #[must_use]
    pub fn leader(&self) -> Option<u32> {
        *self.leader.lock().expect("leader lock")
    }

    /// The leader dies: its lease goes with it, and the next replica to ask takes it.
    pub fn depose(&self) {
        *self.leader.lock().expect("leader lock") = None;
    }

    /// The shared store itself.
    #[must_use]
    pub fn store(&self) -> &MemoryStore {
        &self.keys
    }
}

#[derive(Debug)]
struct Replica {
    shared: Arc<SharedMemory>,
    id: u32,
}

#[derive(Debug)]
struct Lease(Arc<SharedMemory>, u32);

impl RotationLease for Lease {
    fn is_held(&self) -> BoxFuture<'_, bool> {
        let held = self.0.leader() == Some(self.1);
        Box::pin(async move { held })
    }
}

impl KeyStore for Replica {
    fn load_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<Arc<KeyRecord>>>, StoreError>> {
        self.shared.keys.load_keys()
    }

    fn list_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<KeyInfo>>, StoreError>> {
        self.shared.keys.list_keys()
    }

    fn apply<'a>(
        &'a self,
        base: KeyVersion,
        change: &'a KeyChange,
    ) -> BoxFuture<'a, Result<KeyVersion, StoreError>> {
        self.shared.keys.apply(base, change)
    }

    fn key_version(&self) -> BoxFuture<'_, Result<KeyVersion, StoreError>> {
        self.shared.keys.key_version()
    }

    fn rewrap<'a>(&'a self, new: &'a Sealer) -> BoxFuture<'a, Result<usize, StoreError>> {
        self.shared.keys.rewrap(new)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn try_lease(&self) -> BoxFuture<'_, Result<Option<Box<dyn RotationLease>>, StoreError>> {
        let mut leader = self.shared.leader.lock().expect("leader lock");
        let lease = match *leader {
            Some(other) if other != self.id => None,
            _ => {
                *leader = Some(self.id);
                Some(Box::new(Lease(Arc::clone(&self.shared), self.id)) as Box<dyn RotationLease>)
            }
        };
        Box::pin(async move { Ok(lease) })
    }
}

/// A key store that is unreachable while its switch is on, as a database during an
/// outage: every call fails, leases included. Wraps any store (a replica of
/// [`SharedMemory`], say); stores sharing one switch go down together.
#[derive(Debug)]
pub struct FlakyStore {
    inner: Arc<dyn KeyStore>,
    down: Arc<AtomicBool>,
}

impl FlakyStore {
    /// `inner`, unreachable while `down` is set.
    #[must_use]
    pub fn new(inner: Arc<dyn KeyStore>, down: Arc<AtomicBool>) -> Self {
        Self { inner, down }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Database(sqlx::Error::PoolTimedOut))
        } else {
            Ok(())
        }
    }
}

impl KeyStore for FlakyStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<Arc<KeyRecord>>>, StoreError>> {
        match self.check() {
            Ok(()) => self.inner.load_keys(),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn list_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<KeyInfo>>, StoreError>> {
        match self.check() {
            Ok(()) => self.inner.list_keys(),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn apply<'a>(
        &'a self,
        base: KeyVersion,
        change: &'a KeyChange,
    ) -> BoxFuture<'a, Result<KeyVersion, StoreError>> {
        match self.check() {
            Ok(()) => self.inner.apply(base, change),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn key_version(&self) -> BoxFuture<'_, Result<KeyVersion, StoreError>> {
        match self.check() {
            Ok(()) => self.inner.key_version(),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    fn rewrap<'a>(&'a self, new: &'a Sealer) -> BoxFuture<'a, Result<usize, StoreError>> {
        self.inner.rewrap(new)
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    fn try_lease(&self) -> BoxFuture<'_, Result<Option<Box<dyn RotationLease>>, StoreError>> {
        match self.check() {
            Ok(()) => self.inner.try_lease(),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}
