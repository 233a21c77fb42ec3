//! The SQLite backend: one file (WAL mode, `synchronous=FULL`), used by one process.
//!
//! Opening is careful with what it finds: a file that is not SQLite, or a SQLite file
//! this server did not create, is refused untouched; a second process on the same file
//! is refused by an exclusive lock on `<file>.lock`; a database that holds keys is never
//! given a new master key. With no master key configured, the first start writes a
//! random one to `<file>.key` (mode 0600) and later starts read it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection as _, Row, Sqlite};

use super::sealed::{self, StoredKey, exp_seconds};
use super::{
    BoxFuture, KeyChange, KeyStore, LoginEvent, NewUser, StoreError, StoredUser, UserStore,
};
use crate::keys::{KeyId, KeyRecord, MasterKey, Schedule, SealError, Sealer};

/// Audit rows per `INSERT` (two bound values each): far below SQLite's limit of bound
/// parameters (32,766; 999 before 3.32), so a full batch is two statements.
const LOGIN_ROWS_PER_STATEMENT: usize = 256;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_keys.sql")),
    (2, include_str!("../../migrations/sqlite/0002_users.sql")),
    (4, include_str!("../../migrations/sqlite/0004_clients.sql")),
];

/// Keys and users in a SQLite file.
pub struct SqliteStore {
    pool: SqlitePool,
    sealer: Sealer,
    path: PathBuf,
    /// Held for the life of the store: the exclusive lock on `<file>.lock`.
    _lock: File,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("sealer", &self.sealer)
            .finish_non_exhaustive()
    }
}

fn db(error: sqlx::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

fn refuse(path: &Path, why: impl fmt::Display) -> StoreError {
    StoreError::Database(format!("{}: {why}", path.display()))
}

/// `<file><suffix>`, beside the database.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and runs its migrations. With `master`
    /// `None`, uses the key file beside the database, creating it only for a database
    /// that holds no keys.
    ///
    /// # Errors
    /// [`StoreError::Database`] with the reason: unreadable path, not a SQLite file, a
    /// foreign SQLite file, another process using it, a missing or bad key file.
    pub async fn open(path: &Path, master: Option<MasterKey>) -> Result<Self, StoreError> {
        let exists = path.try_exists().map_err(|e| refuse(path, e))?;
        if exists {
            let mut header = [0u8; 16];
            File::open(path)
                .and_then(|mut f| f.read_exact(&mut header))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => refuse(
                        path,
                        "is not a SQLite database (empty or too short); refusing to touch it",
                    ),
                    _ => refuse(path, format!("cannot read it: {e}")),
                })?;
            if &header != b"SQLite format 3\0" {
                return Err(refuse(
                    path,
                    "is not a SQLite database; refusing to touch it",
                ));
            }
        }
        let lock = Self::lock(path)?;
        // Inspect an existing file read-only first: nothing is written to a file that
        // turns out not to be ours (setting WAL mode would rewrite its header).
        let sample = if exists {
            Self::inspect(path).await?
        } else {
            None
        };
        let master = match master {
            Some(master) => master,
            None => Self::key_file(path, sample.is_some())?,
        };
        let sealer = Sealer::new(master).map_err(|e| StoreError::Database(e.to_string()))?;
        // A wrong master key is refused before anything is opened for writing.
        if let Some((thumbprint, sealed)) = &sample
            && let Err(error) = sealer.open(&KeyId::from_stored(thumbprint.clone()), sealed)
        {
            return Err(match error {
                SealError::WrongMasterKey { .. } => StoreError::WrongMasterKey(error.to_string()),
                other => StoreError::Corrupt {
                    kid: thumbprint.clone(),
                    reason: other.to_string(),
                },
            });
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(!exists)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| refuse(path, format!("cannot open it: {e}")))?;
        let store = Self {
            pool,
            sealer,
            path: path.to_path_buf(),
            _lock: lock,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Checks that an existing file is a database of ours; returns one stored key (its
    /// thumbprint and sealed bytes) to test the master key on, if it holds any.
    async fn inspect(path: &Path) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| refuse(path, format!("cannot open it: {e}")))?;
        let tables: Vec<String> =
            sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut conn)
                .await
                .map_err(|e| refuse(path, format!("cannot read it (corrupt?): {e}")))?
                .iter()
                .map(|r| r.try_get("name"))
                .collect::<Result<_, _>>()
                .map_err(db)?;
        let ours = tables.iter().any(|t| t == "schema_migrations");
        if !ours && tables.iter().any(|t| t != "sqlite_sequence") {
            return Err(refuse(
                path,
                "is a SQLite database that jwks-server did not create; refusing to touch it",
            ));
        }
        let sample = if ours {
            sqlx::query(
                "SELECT m.thumbprint, k.key FROM keys k JOIN key_meta m ON m.kid = k.kid LIMIT 1",
            )
            .fetch_optional(&mut conn)
            .await
            .map_err(db)?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("thumbprint")?, r.try_get("key")?)))
            .transpose()
            .map_err(db)?
        } else {
            None
        };
        let _ = sqlx::Connection::close(conn).await;
        Ok(sample)
    }

    /// Takes the exclusive lock that keeps a second process off this database.
    fn lock(path: &Path) -> Result<File, StoreError> {
        let lock_path = beside(path, ".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| refuse(&lock_path, format!("cannot create the lock file: {e}")))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(refuse(
                path,
                "another jwks-server process is using this database (use PostgreSQL to run several replicas)",
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(refuse(&lock_path, format!("cannot lock: {e}")))
            }
        }
    }

    /// Reads the key file beside the database, or creates it for a database without keys.
    fn key_file(path: &Path, has_keys: bool) -> Result<MasterKey, StoreError> {
        let key_path = beside(path, ".key");
        match std::fs::read_to_string(&key_path) {
            Ok(text) => MasterKey::from_base64(&text).map_err(|e| refuse(&key_path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !has_keys => {
                let key = MasterKey::generate().map_err(|e| StoreError::Database(e.to_string()))?;
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&key_path).map_err(|e| refuse(&key_path, e))?;
                writeln!(file, "{}", key.to_base64())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| refuse(&key_path, e))?;
                tracing::warn!(
                    file = %key_path.display(),
                    "no master key configured: generated one; back this file up, or set JWKS_MASTER_KEY"
                );
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(refuse(
                path,
                format!(
                    "holds sealed keys but its master key file {} is missing; set JWKS_MASTER_KEY, NOT_MY_KEY or \
                     --master-key-file to the key it was created with",
                    key_path.display()
                ),
            )),
            Err(e) => Err(refuse(&key_path, e)),
        }
    }

    /// Applies the migrations not yet applied, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Database`] if a migration fails, or if the database records a
    /// migration this build does not know (a newer jwks-server wrote it); nothing is
    /// applied then.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.try_get("version"))
            .collect::<Result<_, _>>()
            .map_err(db)?;
        // A newer build may have changed the meaning of what it stored: never run an
        // older one over its schema (the transaction rolls back, nothing is written).
        if let Some(newer) = applied
            .iter()
            .find(|v| !MIGRATIONS.iter().any(|(known, _)| known == *v))
        {
            let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
            return Err(refuse(
                &self.path,
                format!(
                    "was migrated by a newer jwks-server (schema version {newer}; this build knows up to \
                     {latest}); refusing to touch it"
                ),
            ));
        }
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db)?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, unixepoch())",
            )
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tracing::info!(version, "applied SQLite migration");
        }
        tx.commit().await.map_err(db)
    }

    /// Re-seals every key under `new` in one transaction; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] if a key cannot be opened with the current master key or the
    /// database fails; then nothing changed.
    pub async fn rewrap(&self, new: &Sealer) -> Result<usize, StoreError> {
        let keys = self.load_keys().await?;
        let mut tx = self.pool.begin().await.map_err(db)?;
        for record in &keys {
            sqlx::query("UPDATE keys SET key = ? WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = ?)")
                .bind(sealed::seal(new, record)?)
                .bind(record.kid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(keys.len())
    }

    /// The connection pool, for tests that inspect the tables.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl KeyStore for SqliteStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRecord>>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT k.key, m.thumbprint, m.alg, m.created_at, m.published_at, m.activates_at, m.retires_at, \
                 m.expires_at FROM keys k JOIN key_meta m ON m.kid = k.kid ORDER BY k.kid",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.iter()
                .map(|row| {
                    let get = |name: &str| row.try_get::<i64, _>(name).map_err(db);
                    let stored = StoredKey {
                        thumbprint: row.try_get("thumbprint").map_err(db)?,
                        alg: row.try_get("alg").map_err(db)?,
                        sealed: row.try_get("key").map_err(db)?,
                        schedule: Schedule {
                            created_at: get("created_at")?,
                            published_at: get("published_at")?,
                            activates_at: get("activates_at")?,
                            retires_at: get("retires_at")?,
                            expires_at: get("expires_at")?,
                        },
                    };
                    sealed::open(&self.sealer, stored)
                })
                .collect()
        })
    }

    fn apply<'a>(&'a self, change: &'a KeyChange) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            for record in &change.insert {
                let kid: i64 =
                    sqlx::query("INSERT INTO keys (key, exp) VALUES (?, ?) RETURNING kid")
                        .bind(sealed::seal(&self.sealer, record)?)
                        .bind(exp_seconds(record.schedule.expires_at))
                        .fetch_one(&mut *tx)
                        .await
                        .and_then(|r| r.try_get("kid"))
                        .map_err(db)?;
                let s = record.schedule;
                sqlx::query(
                    "INSERT INTO key_meta (kid, thumbprint, alg, created_at, published_at, activates_at, retires_at, \
                     expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(kid)
                .bind(record.kid.as_str())
                .bind(record.algorithm().as_str())
                .bind(s.created_at)
                .bind(s.published_at)
                .bind(s.activates_at)
                .bind(s.retires_at)
                .bind(s.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            for record in &change.reschedule {
                let s = record.schedule;
                sqlx::query("UPDATE keys SET exp = ? WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = ?)")
                    .bind(exp_seconds(s.expires_at))
                    .bind(record.kid.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                sqlx::query(
                    "UPDATE key_meta SET retires_at = ?, expires_at = ? WHERE thumbprint = ?",
                )
                .bind(s.retires_at)
                .bind(s.expires_at)
                .bind(record.kid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            for kid in &change.remove {
                sqlx::query(
                    "DELETE FROM keys WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = ?)",
                )
                .bind(kid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        // The last connection to close checkpoints the WAL into the main file and
        // deletes it (SQLite's default): without this, a cleanly stopped server would
        // leave its keys in `<file>-wal`, and a copy of the main file alone would lose them.
        Box::pin(self.pool.close())
    }
}

impl UserStore for SqliteStore {
    fn create_user<'a>(&'a self, user: &'a NewUser) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO users (username, password_hash, email) VALUES (?, ?, ?) RETURNING id",
            )
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(&user.email)
            .fetch_one(&self.pool)
            .await
            .and_then(|r| r.try_get("id"))
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    if d.message().contains("users.email") {
                        StoreError::Conflict("email")
                    } else {
                        StoreError::Conflict("username")
                    }
                }
                _ => db(e),
            })
        })
    }

    fn find_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredUser>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT id, password_hash FROM users WHERE username = ?")
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
            row.map(|r| {
                Ok(StoredUser {
                    id: r.try_get("id").map_err(db)?,
                    password_hash: r.try_get("password_hash").map_err(db)?,
                })
            })
            .transpose()
        })
    }

    fn record_logins<'a>(
        &'a self,
        events: &'a [LoginEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // Two statements per chunk, not two per row: one multi-row INSERT and one
            // UPDATE over the distinct users (measured in BENCHMARKS.md).
            let mut tx = self.pool.begin().await.map_err(db)?;
            for chunk in events.chunks(LOGIN_ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                    "INSERT INTO auth_logs (request_ip, user_id) ",
                );
                insert.push_values(chunk, |mut row, event| {
                    row.push_bind(&event.request_ip).push_bind(event.user_id);
                });
                insert.build().execute(&mut *tx).await.map_err(db)?;
                let mut users: Vec<i64> = chunk.iter().filter_map(|e| e.user_id).collect();
                users.sort_unstable();
                users.dedup();
                if !users.is_empty() {
                    let mut update = sqlx::QueryBuilder::<Sqlite>::new(
                        "UPDATE users SET last_login = CURRENT_TIMESTAMP WHERE id IN (",
                    );
                    let mut ids = update.separated(", ");
                    for id in users {
                        ids.push_bind(id);
                    }
                    update.push(")");
                    update.build().execute(&mut *tx).await.map_err(db)?;
                }
            }
            tx.commit().await.map_err(db)
        })
    }
}
