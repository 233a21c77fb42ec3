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

use super::sql::{Dialect, Sql};
use crate::keys::{
    KeyChange, KeyId, KeyInfo, KeyRecord, KeyStore, KeyVersion, MasterKey, SealError, Sealer,
    Versioned,
};
use crate::persist::{BoxFuture, StoreError};
use crate::users::{LoginEvent, NewUser, StoredUser, UserStore};

/// Audit rows per `INSERT` (two bound values each): far below SQLite's limit of bound
/// parameters (32,766; 999 before 3.32), so a full batch is two statements.
const LOGIN_ROWS_PER_STATEMENT: usize = 256;

/// How long a busy lock file is tried again before a second process is refused.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_keys.sql")),
    (2, include_str!("../../migrations/sqlite/0002_users.sql")),
    (
        3,
        include_str!("../../migrations/sqlite/0003_key_set_version.sql"),
    ),
    (4, include_str!("../../migrations/sqlite/0004_clients.sql")),
    (
        5,
        include_str!("../../migrations/sqlite/0005_revocation.sql"),
    ),
    (6, include_str!("../../migrations/sqlite/0006_signin.sql")),
];

impl Dialect for Sqlite {
    const CREATE_MIGRATIONS: &'static str = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
                                             applied_at INTEGER NOT NULL)";
    const MIGRATION_LOCK: Option<&'static str> = None;
    // A SQLite transaction reads one snapshot already.
    const SNAPSHOT: Option<&'static str> = None;
}

/// Keys and users in a SQLite file.
pub struct SqliteStore {
    pool: SqlitePool,
    sealer: Sealer,
    path: PathBuf,
    /// Held for the life of a server's store: the exclusive lock on `<file>.lock`.
    /// `None` for an operator's store ([`SqliteStore::attach`]).
    _lock: Option<File>,
}

/// Who opens the database: the one server process, or an operator's command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Operator,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("sealer", &self.sealer)
            .finish_non_exhaustive()
    }
}

fn refuse(path: &Path, why: impl fmt::Display) -> StoreError {
    StoreError::Refused {
        path: path.to_path_buf(),
        reason: why.to_string(),
    }
}

fn file_error(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::File {
        path: path.to_path_buf(),
        what,
        source,
    }
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
    /// [`StoreError::Refused`] or [`StoreError::File`] with the reason: unreadable path,
    /// not a SQLite file, a foreign SQLite file, another process using it, a missing key
    /// file; [`StoreError::MasterKey`] for a bad key file; [`StoreError::WrongMasterKey`].
    pub async fn open(path: &Path, master: Option<MasterKey>) -> Result<Self, StoreError> {
        Self::open_as(path, master, Role::Server).await
    }

    /// Opens an existing database for an operator's command (`keys list|rotate|revoke`)
    /// while a server may be running on it: without the single-process lock, which the
    /// server holds. Both write through SQLite's own locking (WAL, a busy timeout), every
    /// change over the key-set version it was planned from, and the server picks the
    /// change up at its next poll.
    ///
    /// # Errors
    /// As [`SqliteStore::open`]; also [`StoreError::Refused`] if there is no database.
    pub async fn attach(path: &Path, master: Option<MasterKey>) -> Result<Self, StoreError> {
        if !path
            .try_exists()
            .map_err(file_error(path, "cannot inspect it"))?
        {
            return Err(refuse(path, "no such database"));
        }
        Self::open_as(path, master, Role::Operator).await
    }

    async fn open_as(
        path: &Path,
        master: Option<MasterKey>,
        role: Role,
    ) -> Result<Self, StoreError> {
        let exists = path
            .try_exists()
            .map_err(file_error(path, "cannot inspect it"))?;
        if exists {
            let mut header = [0u8; 16];
            File::open(path)
                .and_then(|mut f| f.read_exact(&mut header))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => refuse(
                        path,
                        "is not a SQLite database (empty or too short); refusing to touch it",
                    ),
                    _ => file_error(path, "cannot read it")(e),
                })?;
            if &header != b"SQLite format 3\0" {
                return Err(refuse(
                    path,
                    "is not a SQLite database; refusing to touch it",
                ));
            }
        }
        let lock = match role {
            Role::Server => Some(Self::lock(path).await?),
            Role::Operator => None,
        };
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
        let sealer = Sealer::new(master).map_err(|e| StoreError::Seal(e.into()))?;
        // A wrong master key is refused before anything is opened for writing.
        if let Some((thumbprint, sealed)) = &sample
            && let Err(error) = sealer.open(&KeyId::from_stored(thumbprint.clone()), sealed)
        {
            return Err(match error {
                SealError::WrongMasterKey { found, expected } => {
                    StoreError::WrongMasterKey { found, expected }
                }
                other => StoreError::Corrupt {
                    kid: thumbprint.clone(),
                    source: other.into(),
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
                .collect::<Result<_, _>>()?;
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
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("thumbprint")?, r.try_get("key")?)))
            .transpose()?
        } else {
            None
        };
        let _ = sqlx::Connection::close(conn).await;
        Ok(sample)
    }

    /// Takes the exclusive lock that keeps a second process off this database. A lock
    /// that is busy is tried again for [`LOCK_PATIENCE`]: a process that forks (any
    /// `Command` spawned by a program that just closed its store, tests included) holds a
    /// copy of the lock's descriptor until its child execs, and a server that is
    /// stopping holds it until it has exited.
    async fn lock(path: &Path) -> Result<File, StoreError> {
        let lock_path = beside(path, ".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(file_error(&lock_path, "cannot create the lock file"))?;
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(refuse(
                        path,
                        "another jwks-server process is using this database (use PostgreSQL to run several replicas)",
                    ));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(file_error(&lock_path, "cannot lock")(e));
                }
            }
        }
    }

    /// Reads the key file beside the database, or creates it for a database without keys.
    fn key_file(path: &Path, has_keys: bool) -> Result<MasterKey, StoreError> {
        let key_path = beside(path, ".key");
        match std::fs::read_to_string(&key_path) {
            Ok(text) => MasterKey::from_base64(&text).map_err(|e| StoreError::MasterKey {
                origin: key_path.display().to_string(),
                source: e.into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !has_keys => {
                let key = MasterKey::generate().map_err(|e| StoreError::Seal(e.into()))?;
                let mut options = OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(&key_path)
                    .map_err(file_error(&key_path, "cannot create the master key file"))?;
                writeln!(file, "{}", key.to_base64())
                    .and_then(|()| file.sync_all())
                    .map_err(file_error(&key_path, "cannot write the master key file"))?;
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
            Err(e) => Err(file_error(&key_path, "cannot read the master key file")(e)),
        }
    }

    /// Applies the migrations not yet applied, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::NewerSchema`] if a newer jwks-server migrated the file;
    /// [`StoreError::Database`] if a migration fails. Nothing is applied then.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Sql::<Sqlite>::migrate(&self.pool, MIGRATIONS, &self.path.display().to_string()).await
    }

    /// The connection pool, for tests that inspect the tables.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl KeyStore for SqliteStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<Arc<KeyRecord>>>, StoreError>> {
        Box::pin(Sql::<Sqlite>::load_keys(&self.pool, &self.sealer))
    }

    fn list_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<KeyInfo>>, StoreError>> {
        Box::pin(Sql::<Sqlite>::list_keys(&self.pool))
    }

    fn apply<'a>(
        &'a self,
        base: KeyVersion,
        change: &'a KeyChange,
    ) -> BoxFuture<'a, Result<KeyVersion, StoreError>> {
        Box::pin(Sql::<Sqlite>::apply(&self.pool, &self.sealer, base, change))
    }

    fn key_version(&self) -> BoxFuture<'_, Result<KeyVersion, StoreError>> {
        Box::pin(Sql::<Sqlite>::key_version(&self.pool))
    }

    fn rewrap<'a>(&'a self, new: &'a Sealer) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(Sql::<Sqlite>::rewrap(&self.pool, &self.sealer, new))
    }

    /// An operator's command (`keys rotate`, `keys revoke`) may write while the server
    /// runs, so the server polls the version like a PostgreSQL replica. Leadership needs
    /// no lease: only one server process opens the file.
    fn is_shared(&self) -> bool {
        true
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
        Box::pin(Sql::<Sqlite>::create_user(&self.pool, user))
    }

    fn find_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredUser>, StoreError>> {
        Box::pin(Sql::<Sqlite>::find_user(&self.pool, username))
    }

    fn record_logins<'a>(
        &'a self,
        events: &'a [LoginEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // Two statements per chunk, not two per row: one multi-row INSERT and one
            // UPDATE over the distinct users (measured in BENCHMARKS.md).
            let mut tx = self.pool.begin().await?;
            for chunk in events.chunks(LOGIN_ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                    "INSERT INTO auth_logs (request_ip, user_id) ",
                );
                insert.push_values(chunk, |mut row, event| {
                    row.push_bind(&event.request_ip).push_bind(event.user_id);
                });
                insert.build().execute(&mut *tx).await?;
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
                    update.build().execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
