//! A store that keeps keys and users in process memory only: for `--database :memory:`
//! and for tests of the key domain. It follows the SQL stores' rules: a key is stored
//! once, and a change applies only over the version it was planned from.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::keys::{KeyChange, KeyInfo, KeyRecord, KeyStore, KeyVersion, Sealer, Versioned};
use crate::persist::{BoxFuture, StoreError};
use crate::users::{LoginEvent, NewUser, StoredUser, UserStore};

/// Keys, users and the authentication log held in memory; gone when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    keys: Mutex<Keys>,
    users: Mutex<Users>,
    /// Registered clients (`store/clients.rs`).
    pub(super) clients: Mutex<super::clients::MemoryClients>,
    /// Sign-in state (`store/signin.rs`).
    pub(super) signin: Mutex<super::signin::MemoryState>,
}

#[derive(Debug, Default)]
struct Keys {
    /// Keys that are not revoked.
    rows: Vec<Arc<KeyRecord>>,
    /// Revoked keys: never loaded again, still listed.
    revoked: Vec<KeyInfo>,
    /// Counts applied changes, like `key_set_version` in the SQL stores.
    version: i64,
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

    fn keys(&self) -> Result<MutexGuard<'_, Keys>, StoreError> {
        self.keys.lock().map_err(|_| StoreError::Poisoned)
    }

    fn users(&self) -> Result<MutexGuard<'_, Users>, StoreError> {
        self.users.lock().map_err(|_| StoreError::Poisoned)
    }
}

impl Keys {
    fn versioned<T>(&self, value: T) -> Versioned<T> {
        Versioned {
            version: KeyVersion::new(self.version),
            value,
        }
    }

    fn apply(&mut self, base: KeyVersion, change: &KeyChange) -> Result<KeyVersion, StoreError> {
        if base.get() != self.version {
            return Err(StoreError::Stale);
        }
        // Like the SQL stores' unique thumbprint: a key is stored once, and a change
        // that breaks the rule is refused whole.
        for (i, new) in change.insert.iter().enumerate() {
            let repeated = self
                .rows
                .iter()
                .chain(&change.insert[..i])
                .any(|k| k.kid == new.kid)
                || self.revoked.iter().any(|k| k.kid == new.kid);
            if repeated {
                return Err(StoreError::DuplicateKey(new.kid.to_string()));
            }
        }
        for (kid, _) in &change.revoke {
            if !self.rows.iter().any(|k| &k.kid == kid) {
                return Err(StoreError::UnknownKey(kid.to_string()));
            }
        }
        for (kid, revocation) in &change.revoke {
            if let Some(i) = self.rows.iter().position(|k| &k.kid == kid) {
                let key = self.rows.remove(i);
                let mut info = info(&key);
                info.revoked = Some(revocation.clone());
                self.revoked.push(info);
            }
        }
        self.rows.retain(|k| !change.remove.contains(&k.kid));
        for moved in &change.reschedule {
            if let Some(slot) = self.rows.iter_mut().find(|k| k.kid == moved.kid) {
                *slot = Arc::clone(moved);
            }
        }
        self.rows.extend(change.insert.iter().cloned());
        self.version += 1;
        Ok(KeyVersion::new(self.version))
    }
}

fn info(key: &KeyRecord) -> KeyInfo {
    KeyInfo {
        kid: key.kid.clone(),
        alg: key.algorithm(),
        schedule: key.schedule,
        revoked: None,
    }
}

impl KeyStore for MemoryStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<Arc<KeyRecord>>>, StoreError>> {
        let keys = self.keys().map(|k| k.versioned(k.rows.clone()));
        Box::pin(async move { keys })
    }

    fn list_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<KeyInfo>>, StoreError>> {
        let keys = self.keys().map(|k| {
            k.versioned(
                k.rows
                    .iter()
                    .map(|r| info(r))
                    .chain(k.revoked.iter().cloned())
                    .collect(),
            )
        });
        Box::pin(async move { keys })
    }

    fn apply<'a>(
        &'a self,
        base: KeyVersion,
        change: &'a KeyChange,
    ) -> BoxFuture<'a, Result<KeyVersion, StoreError>> {
        let result = self.keys().and_then(|mut keys| keys.apply(base, change));
        Box::pin(async move { result })
    }

    fn key_version(&self) -> BoxFuture<'_, Result<KeyVersion, StoreError>> {
        let version = self.keys().map(|k| KeyVersion::new(k.version));
        Box::pin(async move { version })
    }

    fn rewrap<'a>(&'a self, _new: &'a Sealer) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async {
            Err(StoreError::Unsupported(
                "an in-memory database has nothing to rewrap",
            ))
        })
    }
}

impl UserStore for MemoryStore {
    fn create_user<'a>(&'a self, user: &'a NewUser) -> BoxFuture<'a, Result<i64, StoreError>> {
        let result = self.users().and_then(|mut users| {
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
        let result = self.users().map(|users| {
            users
                .rows
                .iter()
                .find(|(u, _)| u.username == username)
                .map(|(u, id)| StoredUser {
                    id: *id,
                    password_hash: u.password_hash.clone(),
                    email: Some(u.email.clone()),
                })
        });
        Box::pin(async move { result })
    }

    fn record_logins<'a>(
        &'a self,
        events: &'a [LoginEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self
            .users()
            .map(|mut users| users.logins.extend_from_slice(events));
        Box::pin(async move { result })
    }
}
