//! [`SignInStore`] for every backend: the SQL backends run the statements of `sql.rs`
//! (written once), the memory store keeps a map.

use std::collections::HashMap;

use sqlx::{Postgres, Sqlite};

use super::sql::Sql;
use super::{MemoryStore, PostgresStore, SqliteStore};
use crate::keys::UnixMillis;
use crate::persist::{BoxFuture, StoreError};
use crate::signin::{HandleHash, SignInStore, StateKind};

/// [`SignInStore`] over one SQL backend's pool.
macro_rules! impl_signin_store {
    ($type:ty, $db:ty) => {
        impl SignInStore for $type {
            fn put_state<'a>(
                &'a self,
                kind: StateKind,
                handle: &'a HandleHash,
                data: &'a str,
                expires_at: UnixMillis,
                now: UnixMillis,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                Box::pin(Sql::<$db>::put_state(
                    self.pool(),
                    kind,
                    handle,
                    data,
                    expires_at,
                    now,
                ))
            }

            fn get_state<'a>(
                &'a self,
                kind: StateKind,
                handle: &'a HandleHash,
                now: UnixMillis,
            ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
                Box::pin(Sql::<$db>::get_state(self.pool(), kind, handle, now))
            }

            fn take_state<'a>(
                &'a self,
                kind: StateKind,
                handle: &'a HandleHash,
                now: UnixMillis,
            ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
                Box::pin(Sql::<$db>::take_state(self.pool(), kind, handle, now))
            }
        }
    };
}

impl_signin_store!(SqliteStore, Sqlite);
impl_signin_store!(PostgresStore, Postgres);

/// The sign-in rows of a [`MemoryStore`]: hash -> (kind, data, expires at).
pub(super) type MemoryState = HashMap<HandleHash, (StateKind, String, UnixMillis)>;

impl SignInStore for MemoryStore {
    fn put_state<'a>(
        &'a self,
        kind: StateKind,
        handle: &'a HandleHash,
        data: &'a str,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self
            .signin
            .lock()
            .map(|mut rows| {
                rows.retain(|_, (_, _, expires)| *expires > now);
                rows.insert(handle.clone(), (kind, data.to_owned(), expires_at));
            })
            .map_err(|_| StoreError::Poisoned);
        Box::pin(async move { result })
    }

    fn get_state<'a>(
        &'a self,
        kind: StateKind,
        handle: &'a HandleHash,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let result = self
            .signin
            .lock()
            .map(|rows| {
                rows.get(handle)
                    .filter(|(k, _, expires)| *k == kind && *expires > now)
                    .map(|(_, data, _)| data.clone())
            })
            .map_err(|_| StoreError::Poisoned);
        Box::pin(async move { result })
    }

    fn take_state<'a>(
        &'a self,
        kind: StateKind,
        handle: &'a HandleHash,
        now: UnixMillis,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let result = self
            .signin
            .lock()
            .map(|mut rows| match rows.get(handle) {
                Some((k, _, _)) if *k == kind => rows
                    .remove(handle)
                    .filter(|(_, _, expires)| *expires > now)
                    .map(|(_, data, _)| data),
                _ => None,
            })
            .map_err(|_| StoreError::Poisoned);
        Box::pin(async move { result })
    }
}
