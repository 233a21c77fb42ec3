//! A [`KeyStore`] that keeps keys in process memory only: for `--database :memory:`
//! and for tests of the key domain.

use std::sync::{Arc, Mutex};

use super::{
    BoxFuture, KeyChange, KeyStore, LoginEvent, NewUser, StoreError, StoredUser, UserStore,
};
use crate::keys::KeyRecord;

/// Keys, users and the authentication log held in memory; gone when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    keys: Mutex<Vec<Arc<KeyRecord>>>,
    users: Mutex<Users>,
    /// Registered clients (`store/clients.rs`).
    pub(super) clients: Mutex<super::clients::MemoryClients>,
}

#[derive(Debug, Default)]
struct Users {
    rows: Vec<(NewUser, i64)>,
    logins: Vec<LoginEvent>,
}

impl MemoryStore {
    /// Every authentication logged so far, oldest first.
    #[must_use]
    pub fn logins(&self) -> Vec<LoginEvent> {
        self.users
            .lock()
            .map(|u| u.logins.clone())
            .unwrap_or_default()
    }
}

impl KeyStore for MemoryStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRecord>>, StoreError>> {
        let keys = self.keys.lock().map(|k| k.clone()).map_err(|_| poisoned());
        Box::pin(async move { keys })
    }

    fn apply<'a>(&'a self, change: &'a KeyChange) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self
            .keys
            .lock()
            .map_err(|_| poisoned())
            .and_then(|mut keys| {
                // Like the SQL stores' unique thumbprint: a key is stored once, and a change
                // that breaks the rule is refused whole.
                for (i, new) in change.insert.iter().enumerate() {
                    let repeated = keys
                        .iter()
                        .chain(&change.insert[..i])
                        .any(|k| k.kid == new.kid);
                    if repeated {
                        return Err(StoreError::Database(format!(
                            "key {} is already stored",
                            new.kid
                        )));
                    }
                }
                keys.retain(|k| !change.remove.contains(&k.kid));
                for moved in &change.reschedule {
                    if let Some(slot) = keys.iter_mut().find(|k| k.kid == moved.kid) {
                        *slot = Arc::clone(moved);
                    }
                }
                keys.extend(change.insert.iter().cloned());
                Ok(())
            });
        Box::pin(async move { result })
    }
}

impl UserStore for MemoryStore {
    fn create_user<'a>(&'a self, user: &'a NewUser) -> BoxFuture<'a, Result<i64, StoreError>> {
        let result = self
            .users
            .lock()
            .map_err(|_| poisoned())
            .and_then(|mut users| {
                if users.rows.iter().any(|(u, _)| u.username == user.username) {
                    return Err(StoreError::Conflict("username"));
                }
                if users.rows.iter().any(|(u, _)| u.email == user.email) {
                    return Err(StoreError::Conflict("email"));
                }
                let id = i64::try_from(users.rows.len()).unwrap_or(i64::MAX - 1) + 1;
                users.rows.push((user.clone(), id));
                Ok(id)
            });
        Box::pin(async move { result })
    }

    fn find_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredUser>, StoreError>> {
        let result = self.users.lock().map_err(|_| poisoned()).map(|users| {
            users
                .rows
                .iter()
                .find(|(u, _)| u.username == username)
                .map(|(u, id)| StoredUser {
                    id: *id,
                    password_hash: u.password_hash.clone(),
                })
        });
        Box::pin(async move { result })
    }

    fn record_logins<'a>(
        &'a self,
        events: &'a [LoginEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self
            .users
            .lock()
            .map_err(|_| poisoned())
            .map(|mut users| users.logins.extend_from_slice(events));
        Box::pin(async move { result })
    }
}

fn poisoned() -> StoreError {
    StoreError::Database("memory store lock poisoned".into())
}
