//! Opening the configured store: the master key from its source, then the backend.

use std::sync::Arc;

use super::{MemoryStore, PostgresStore, SqliteStore, Store};
use crate::config::{DatabaseSettings, MasterKeySource};
use crate::keys::{MasterKey, Sealer};
use crate::persist::StoreError;

/// The master key named by `source`; `None` when none was given (a SQLite database then
/// keeps a key file beside itself).
///
/// # Errors
/// [`StoreError::MasterKey`] if the key is malformed or its file unreadable.
pub(super) fn master_key(source: &MasterKeySource) -> Result<Option<MasterKey>, StoreError> {
    let unusable = |origin: String| {
        move |e: Box<dyn std::error::Error + Send + Sync>| StoreError::MasterKey {
            origin,
            source: e,
        }
    };
    match source {
        MasterKeySource::Base64(secret) => MasterKey::from_base64(secret.expose())
            .map(Some)
            .map_err(|e| unusable("JWKS_MASTER_KEY".into())(e.into())),
        MasterKeySource::Passphrase(secret) => {
            Ok(Some(MasterKey::from_passphrase(secret.expose())))
        }
        MasterKeySource::File(path) => {
            let origin = || path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| unusable(origin())(e.into()))?;
            MasterKey::from_base64(&text)
                .map(Some)
                .map_err(|e| unusable(origin())(e.into()))
        }
        MasterKeySource::BesideDatabase => Ok(None),
    }
}

/// Opens the configured store for an operator's command beside running servers: SQLite
/// without the single-process lock the server holds ([`SqliteStore::attach`]); PostgreSQL
/// as a server would.
///
/// # Errors
/// [`StoreError`] if the database cannot be opened or the master key is unusable;
/// [`StoreError::Unsupported`] for an in-memory database (it lives in its server).
pub async fn attach(
    database: &DatabaseSettings,
    master: &MasterKeySource,
) -> Result<Arc<dyn Store>, StoreError> {
    match database {
        DatabaseSettings::Memory => Err(StoreError::Unsupported(
            "an in-memory database lives inside its server process; use the admin API (--admin-port)",
        )),
        DatabaseSettings::Sqlite(path) => Ok(Arc::new(
            SqliteStore::attach(path, master_key(master)?).await?,
        )),
        DatabaseSettings::Postgres(_) => open(database, master).await,
    }
}

/// Opens the configured store with its master key, running its migrations.
///
/// # Errors
/// [`StoreError`] if the database cannot be opened or the master key is unusable.
pub async fn open(
    database: &DatabaseSettings,
    master: &MasterKeySource,
) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match database {
        DatabaseSettings::Memory => Arc::new(MemoryStore::default()),
        DatabaseSettings::Sqlite(path) => {
            let store = SqliteStore::open(path, master_key(master)?).await?;
            tracing::info!(database = %path.display(), "using SQLite");
            Arc::new(store)
        }
        DatabaseSettings::Postgres(url) => {
            let master = master_key(master)?.ok_or(StoreError::MasterKeyRequired(
                "PostgreSQL needs the master key shared by all replicas: set JWKS_MASTER_KEY, NOT_MY_KEY or \
                 --master-key-file",
            ))?;
            let sealer = Sealer::new(master).map_err(|e| StoreError::Seal(e.into()))?;
            let store = PostgresStore::connect(url, None, sealer).await?;
            tracing::info!(database = %url, "using PostgreSQL");
            Arc::new(store)
        }
    };
    Ok(store)
}
