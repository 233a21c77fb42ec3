//! Leadership among replicas that share one store: the rotation lease this process may
//! hold, and how often followers look for changes another replica made.
//!
//! Only the holder of the lease generates keys; every replica, leader or not, follows the
//! store's [`super::KeyVersion`] and reloads when it moves. A lease can vanish under its
//! holder (PostgreSQL drops a session lock with its connection), so it is checked before
//! every step that would write.

use std::time::Duration;

use super::store::{KeyStore, RotationLease};
use crate::persist::StoreError;

/// How often a replica on a shared store checks for keys another replica added. The
/// publish-ahead time must exceed it, so a key is everywhere before it signs.
pub const SHARED_POLL: Duration = Duration::from_secs(1);

/// This process's standing among the writers of a shared store.
#[derive(Debug, Default)]
pub(super) struct Leadership {
    /// The rotation lease, while this process leads.
    lease: Option<Box<dyn RotationLease>>,
}

impl Leadership {
    /// Whether this process leads now: keeps a lease that is still held, or tries to
    /// take the lease when it holds none (or lost it).
    ///
    /// # Errors
    /// [`StoreError`] if the store cannot be asked.
    pub(super) async fn ensure(&mut self, store: &dyn KeyStore) -> Result<bool, StoreError> {
        let held = match &self.lease {
            Some(lease) => lease.is_held().await,
            None => false,
        };
        if !held {
            if self.lease.take().is_some() {
                tracing::warn!("lost the rotation lease");
            }
            self.lease = store.try_lease().await?;
            if self.lease.is_some() {
                tracing::info!("leading key rotation");
            }
        }
        Ok(self.lease.is_some())
    }

    /// Gives the lease up (its connection closes), so another replica can lead and the
    /// store can close without waiting for a connection that is still checked out.
    pub(super) fn resign(&mut self) {
        if self.lease.take().is_some() {
            tracing::info!("gave up the rotation lease");
        }
    }
}
