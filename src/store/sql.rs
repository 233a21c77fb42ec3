//! The SQL both backends share, written once. Every statement uses numbered `$n`
//! placeholders, which PostgreSQL and SQLite both accept, and runs through one generic
//! implementation; a backend supplies only its [`Dialect`] (what its SQL spells
//! differently) and keeps in its own file what is truly its own: SQLite's WAL, file lock
//! and key file; PostgreSQL's advisory lease, `UNNEST` batches and connection options.

use std::marker::PhantomData;
use std::sync::Arc;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::sealed::{self, StoredKey};
use crate::keys::UnixMillis;
use crate::keys::{
    KeyChange, KeyInfo, KeyRecord, KeyVersion, Revocation, Schedule, Sealer, Versioned,
};
use crate::persist::StoreError;
use crate::signin::{HandleHash, StateKind};
use crate::users::{NewUser, StoredUser};

/// What a backend's SQL spells differently.
pub(super) trait Dialect {
    /// The bookkeeping table of applied migrations.
    const CREATE_MIGRATIONS: &'static str;
    /// Run first in the migration transaction (serializes replicas starting together).
    const MIGRATION_LOCK: Option<&'static str>;
    /// Run first in a transaction that must read one consistent snapshot.
    const SNAPSHOT: Option<&'static str>;
}

/// The shared statements, for one database `DB`.
pub(super) struct Sql<DB>(PhantomData<DB>);

const SELECT_KEYS: &str = "SELECT m.thumbprint, m.alg, m.created_at, m.published_at, m.activates_at, \
                           m.retires_at, m.expires_at, k.key FROM keys k JOIN key_meta m ON m.kid = k.kid \
                           WHERE m.revoked_at IS NULL ORDER BY k.kid";
const SELECT_KEY_INFO: &str = "SELECT m.thumbprint, m.alg, m.created_at, m.published_at, m.activates_at, \
                               m.retires_at, m.expires_at, m.revoked_at, m.revoked_reason FROM key_meta m \
                               ORDER BY m.kid";
const SELECT_VERSION: &str = "SELECT version FROM key_set_version WHERE id = 1";

impl<DB> Sql<DB>
where
    DB: Database + Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    i64: for<'e> Encode<'e, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<i64>: for<'e> Encode<'e, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'e> Encode<'e, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Vec<u8>: for<'e> Encode<'e, DB> + for<'r> Decode<'r, DB> + Type<DB>,
{
    /// Applies the migrations not yet applied, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::NewerSchema`] if the database records a migration this build does
    /// not know (a newer jwks-server wrote it); [`StoreError::Database`] if a migration
    /// fails. Nothing is applied then.
    pub(super) async fn migrate(
        pool: &Pool<DB>,
        migrations: &[(i64, &'static str)],
        database: &str,
    ) -> Result<(), StoreError> {
        let mut tx = pool.begin().await?;
        if let Some(lock) = DB::MIGRATION_LOCK {
            sqlx::query::<DB>(lock).execute(&mut *tx).await?;
        }
        sqlx::query::<DB>(DB::CREATE_MIGRATIONS)
            .execute(&mut *tx)
            .await?;
        let applied: Vec<i64> = sqlx::query::<DB>("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get(0usize))
            .collect::<Result<_, _>>()?;
        // A newer build may have changed the meaning of what it stored: never run an
        // older one over its schema (the transaction rolls back, nothing is written).
        if let Some(&found) = applied
            .iter()
            .find(|v| !migrations.iter().any(|(known, _)| known == *v))
        {
            return Err(StoreError::NewerSchema {
                database: database.to_owned(),
                found,
                known: migrations.last().map_or(0, |(v, _)| *v),
            });
        }
        for (version, sql) in migrations {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query::<DB>(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            )
            .bind(*version)
            .bind(crate::keys::Clock::now(&crate::keys::SystemClock).div_euclid(1000))
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                version,
                database = <DB as Database>::NAME,
                "applied migration"
            );
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every key, opened with `sealer`, and the version they were read at.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails or a key cannot be opened.
    pub(super) async fn load_keys(
        pool: &Pool<DB>,
        sealer: &Sealer,
    ) -> Result<Versioned<Vec<Arc<KeyRecord>>>, StoreError> {
        let (version, rows) = Self::read_keys(pool, SELECT_KEYS).await?;
        let value = rows
            .iter()
            .map(|row| {
                let (info, sealed) = (key_info(row)?, row.try_get(7usize)?);
                sealed::open(sealer, StoredKey { info, sealed })
            })
            .collect::<Result<_, _>>()?;
        Ok(Versioned { version, value })
    }

    /// Every key's metadata, opening nothing.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails or a row is unreadable.
    pub(super) async fn list_keys(pool: &Pool<DB>) -> Result<Versioned<Vec<KeyInfo>>, StoreError> {
        let (version, rows) = Self::read_keys(pool, SELECT_KEY_INFO).await?;
        let value = rows
            .iter()
            .map(|row| {
                let mut info = key_info(row)?;
                let at: Option<i64> = row.try_get(7usize)?;
                let reason: Option<String> = row.try_get(8usize)?;
                info.revoked = at.map(|at| Revocation {
                    at,
                    reason: reason.unwrap_or_default(),
                });
                Ok::<_, StoreError>(info)
            })
            .collect::<Result<_, _>>()?;
        Ok(Versioned { version, value })
    }

    async fn read_keys(
        pool: &Pool<DB>,
        select: &'static str,
    ) -> Result<(KeyVersion, Vec<DB::Row>), StoreError> {
        let mut tx = pool.begin().await?;
        if let Some(snapshot) = DB::SNAPSHOT {
            sqlx::query::<DB>(snapshot).execute(&mut *tx).await?;
        }
        let version: i64 = sqlx::query::<DB>(SELECT_VERSION)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0usize)?;
        let rows = sqlx::query::<DB>(select).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok((KeyVersion::new(version), rows))
    }

    /// The current key-set version.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    pub(super) async fn key_version(pool: &Pool<DB>) -> Result<KeyVersion, StoreError> {
        let version: i64 = sqlx::query::<DB>(SELECT_VERSION)
            .fetch_one(pool)
            .await?
            .try_get(0usize)?;
        Ok(KeyVersion::new(version))
    }

    /// Applies `change` in one transaction over `base`.
    ///
    /// # Errors
    /// [`StoreError::Stale`] if the version moved on; [`StoreError`] if the database
    /// fails. Nothing is applied then.
    pub(super) async fn apply(
        pool: &Pool<DB>,
        sealer: &Sealer,
        base: KeyVersion,
        change: &KeyChange,
    ) -> Result<KeyVersion, StoreError> {
        let mut tx = pool.begin().await?;
        let bumped = sqlx::query::<DB>(
            "UPDATE key_set_version SET version = version + 1 WHERE id = 1 AND version = $1 RETURNING version",
        )
        .bind(base.get())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(bumped) = bumped else {
            return Err(StoreError::Stale);
        };
        let version = KeyVersion::new(bumped.try_get(0usize)?);
        for record in &change.insert {
            let kid: i64 =
                sqlx::query::<DB>("INSERT INTO keys (key, exp) VALUES ($1, $2) RETURNING kid")
                    .bind(sealed::seal(sealer, record)?)
                    .bind(sealed::exp_seconds(record.schedule.expires_at))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| duplicate(e, record))?
                    .try_get(0usize)?;
            let s = record.schedule;
            sqlx::query::<DB>(
                "INSERT INTO key_meta (kid, thumbprint, alg, created_at, published_at, activates_at, retires_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(kid)
            .bind(record.kid.as_str().to_owned())
            .bind(record.algorithm().as_str().to_owned())
            .bind(s.created_at)
            .bind(s.published_at)
            .bind(s.activates_at)
            .bind(s.retires_at)
            .bind(s.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| duplicate(e, record))?;
        }
        for record in &change.reschedule {
            let s = record.schedule;
            sqlx::query::<DB>(
                "UPDATE keys SET exp = $1 WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = $2)",
            )
            .bind(sealed::exp_seconds(s.expires_at))
            .bind(record.kid.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
            sqlx::query::<DB>(
                "UPDATE key_meta SET retires_at = $1, expires_at = $2 WHERE thumbprint = $3",
            )
            .bind(s.retires_at)
            .bind(s.expires_at)
            .bind(record.kid.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        }
        for (kid, revocation) in &change.revoke {
            // Only a key that is stored and not yet revoked: a revoked kid stays revoked.
            let revoked = sqlx::query::<DB>(
                "UPDATE key_meta SET revoked_at = $1, revoked_reason = $2 WHERE thumbprint = $3 \
                 AND revoked_at IS NULL RETURNING kid",
            )
            .bind(revocation.at)
            .bind(revocation.reason.clone())
            .bind(kid.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = revoked else {
                return Err(StoreError::UnknownKey(kid.to_string()));
            };
            let row_kid: i64 = row.try_get(0usize)?;
            // `keys.exp` is when the key leaves the JWKS: now.
            sqlx::query::<DB>("UPDATE keys SET exp = $1 WHERE kid = $2")
                .bind(sealed::exp_seconds(revocation.at))
                .bind(row_kid)
                .execute(&mut *tx)
                .await?;
        }
        for kid in &change.remove {
            sqlx::query::<DB>(
                "DELETE FROM keys WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = $1)",
            )
            .bind(kid.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(version)
    }

    /// Re-seals every key under `new` in one transaction; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] if a key cannot be opened with `current` or the database fails;
    /// then nothing changed.
    pub(super) async fn rewrap(
        pool: &Pool<DB>,
        current: &Sealer,
        new: &Sealer,
    ) -> Result<usize, StoreError> {
        let keys = Self::load_keys(pool, current).await?.value;
        let mut tx = pool.begin().await?;
        for record in &keys {
            sqlx::query::<DB>(
                "UPDATE keys SET key = $1 WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = $2)",
            )
            .bind(sealed::seal(new, record)?)
            .bind(record.kid.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(keys.len())
    }

    /// Creates a user and returns its id.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] naming the field if the username or email is taken.
    pub(super) async fn create_user(pool: &Pool<DB>, user: &NewUser) -> Result<i64, StoreError> {
        let row = sqlx::query::<DB>(
            "INSERT INTO users (username, password_hash, email) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(user.username.clone())
        .bind(user.password_hash.clone())
        .bind(user.email.clone())
        .fetch_one(pool)
        .await
        .map_err(|e| match &e {
            // SQLite says "UNIQUE constraint failed: users.email", PostgreSQL names the
            // constraint `users_email_key`: both mention the column.
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                if d.message().contains("email")
                    || d.constraint().is_some_and(|c| c.contains("email"))
                {
                    StoreError::Conflict("email")
                } else {
                    StoreError::Conflict("username")
                }
            }
            _ => StoreError::Database(e),
        })?;
        Ok(row.try_get(0usize)?)
    }

    /// The user with this username, if any.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    pub(super) async fn find_user(
        pool: &Pool<DB>,
        username: &str,
    ) -> Result<Option<StoredUser>, StoreError> {
        let row =
            sqlx::query::<DB>("SELECT id, password_hash, email FROM users WHERE username = $1")
                .bind(username.to_owned())
                .fetch_optional(pool)
                .await?;
        row.map(|r| {
            Ok(StoredUser {
                id: r.try_get(0usize)?,
                password_hash: r.try_get(1usize)?,
                email: r.try_get(2usize)?,
            })
        })
        .transpose()
    }
}

impl<DB> Sql<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    i64: for<'e> Encode<'e, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'e> Encode<'e, DB> + for<'r> Decode<'r, DB> + Type<DB>,
{
    /// Stores a sign-in row, after removing the rows expired by `now` (the table only
    /// ever holds what is live, without a sweeper task).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub(super) async fn put_state(
        pool: &Pool<DB>,
        kind: StateKind,
        handle: &HandleHash,
        data: &str,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        sqlx::query::<DB>("DELETE FROM signin_state WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await?;
        sqlx::query::<DB>(
            "INSERT INTO signin_state (handle_hash, kind, data, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(handle.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .bind(data.to_owned())
        .bind(expires_at)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// The data of a live sign-in row.
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub(super) async fn get_state(
        pool: &Pool<DB>,
        kind: StateKind,
        handle: &HandleHash,
        now: UnixMillis,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query::<DB>(
            "SELECT data FROM signin_state WHERE handle_hash = $1 AND kind = $2 AND expires_at > $3",
        )
        .bind(handle.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .bind(now)
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|r| r.try_get(0usize)).transpose()?)
    }

    /// Deletes a sign-in row and returns its data if it was live. One `DELETE ...
    /// RETURNING`: of two concurrent takes, only one sees the row (both databases lock
    /// it for the delete).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub(super) async fn take_state(
        pool: &Pool<DB>,
        kind: StateKind,
        handle: &HandleHash,
        now: UnixMillis,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query::<DB>(
            "DELETE FROM signin_state WHERE handle_hash = $1 AND kind = $2 RETURNING data, expires_at",
        )
        .bind(handle.as_str().to_owned())
        .bind(kind.as_str().to_owned())
        .fetch_optional(pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get(1usize)?;
        Ok((expires_at > now)
            .then(|| row.try_get(0usize))
            .transpose()?)
    }
}

/// The metadata columns of a key row, in the order [`SELECT_KEY_INFO`] names them.
fn key_info<R: Row>(row: &R) -> Result<KeyInfo, StoreError>
where
    usize: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let thumbprint: String = row.try_get(0usize)?;
    let alg: String = row.try_get(1usize)?;
    let alg = alg.parse().map_err(|reason: String| StoreError::Corrupt {
        kid: thumbprint.clone(),
        source: reason.into(),
    })?;
    Ok(KeyInfo {
        kid: crate::keys::KeyId::from_stored(thumbprint),
        alg,
        schedule: Schedule {
            created_at: row.try_get(2usize)?,
            published_at: row.try_get(3usize)?,
            activates_at: row.try_get(4usize)?,
            retires_at: row.try_get(5usize)?,
            expires_at: row.try_get(6usize)?,
        },
        revoked: None,
    })
}

/// A unique violation on insert means the thumbprint is stored already.
fn duplicate(error: sqlx::Error, record: &KeyRecord) -> StoreError {
    match &error {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::DuplicateKey(record.kid.to_string())
        }
        _ => StoreError::Database(error),
    }
}
