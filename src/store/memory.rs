//! A [`KeyStore`] that keeps keys in process memory only: for `--database :memory:`
//! and for tests of the key domain.

use std::sync::{Arc, Mutex};

use super::{BoxFuture, KeyChange, KeyStore, StoreError};
use crate::keys::KeyRecord;

/// Keys held in memory; gone when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    keys: Mutex<Vec<Arc<KeyRecord>>>,
}

impl KeyStore for MemoryStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRecord>>, StoreError>> {
        let keys = self.keys.lock().map(|k| k.clone()).map_err(|_| poisoned());
        Box::pin(async move { keys })
    }

    fn apply<'a>(&'a self, change: &'a KeyChange) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self.keys.lock().map_err(|_| poisoned()).map(|mut keys| {
            keys.retain(|k| !change.remove.contains(&k.kid));
            for moved in &change.reschedule {
                if let Some(slot) = keys.iter_mut().find(|k| k.kid == moved.kid) {
                    *slot = Arc::clone(moved);
                }
            }
            keys.extend(change.insert.iter().cloned());
        });
        Box::pin(async move { result })
    }
}

fn poisoned() -> StoreError {
    StoreError::Database("memory store lock poisoned".into())
}
