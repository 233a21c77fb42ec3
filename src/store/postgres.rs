//! The PostgreSQL backend, for several replicas sharing one key set.
//!
//! Same tables and semantics as SQLite (see `migrations/postgres/`), plus what sharing
//! needs: a `key_set_version` row that every change bumps (replicas poll it; a change
//! applies only over the version it was planned from), and a session advisory lock
//! that elects the one replica that rotates. The lock lives on a dedicated connection
//! that is closed, not pooled, when the lease is dropped; a replica killed with
//! `kill -9` loses its session and so the lock, and another replica takes over.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row};
use tokio::sync::Mutex;

use super::sealed::{self, StoredKey, exp_seconds};
use super::{
    BoxFuture, KeyChange, KeyStore, LoginEvent, NewUser, RotationLease, StoreError, StoredUser,
    UserStore,
};
use crate::keys::{KeyRecord, Schedule, Sealer};

/// Key of the advisory lock that elects the rotating replica.
const ROTATION_LOCK: i64 = 0x6a77_6b73_726f_7461; // "jwksrota"
/// Key of the advisory lock that serializes migrations of replicas starting together.
const MIGRATION_LOCK: i64 = 0x6a77_6b73_6d69_6772; // "jwksmigr"

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_keys.sql")),
    (2, include_str!("../../migrations/postgres/0002_users.sql")),
    (
        4,
        include_str!("../../migrations/postgres/0004_clients.sql"),
    ),
];

/// A database URL whose password never reaches `Debug` or logs.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    #[must_use]
    pub fn new(url: String) -> Self {
        Self(url)
    }

    /// The URL itself, password included; for connecting only.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL names PostgreSQL.
    #[must_use]
    pub fn is_postgres(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // scheme://user:password@host/db?password=x -> scheme://user:***@host/db?password=***
        let (base, query) = match self.0.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.0.as_str(), None),
        };
        match (base.find("://"), base.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                match base[scheme_end + 3..at].split_once(':') {
                    Some((user, _)) => {
                        write!(f, "{}{user}:***{}", &base[..scheme_end + 3], &base[at..])?;
                    }
                    None => f.write_str(base)?,
                }
            }
            _ => f.write_str(base)?,
        }
        let Some(query) = query else { return Ok(()) };
        for (i, pair) in query.split('&').enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                    write!(f, "{name}=***")?;
                }
                _ => f.write_str(pair)?,
            }
        }
        Ok(())
    }
}

/// Keys and users in PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
    sealer: Sealer,
    /// The key-set version this process last loaded or wrote.
    loaded_version: AtomicI64,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("sealer", &self.sealer)
            .finish_non_exhaustive()
    }
}

fn db(error: sqlx::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

impl PostgresStore {
    /// Connects, optionally into `schema` (created if missing; tests use one each), and
    /// runs the migrations.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the server is unreachable or a migration fails.
    pub async fn connect(
        url: &DatabaseUrl,
        schema: Option<&str>,
        sealer: Sealer,
    ) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(&url.0).map_err(db)?;
        if let Some(schema) = schema {
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Database(format!("cannot connect to {url}: {e}")))?;
        if let Some(schema) = schema {
            // The name comes from our own tests, never from a request.
            let create = format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.replace('"', "")
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&pool)
                .await
                .map_err(db)?;
        }
        let store = Self {
            pool,
            sealer,
            loaded_version: AtomicI64::new(-1),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet applied, one transaction each, under an advisory
    /// lock so replicas starting together do not race.
    ///
    /// # Errors
    /// [`StoreError::Database`] if a migration fails; it is rolled back.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
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
        // Never run an older build over a schema a newer one migrated (the transaction
        // rolls back; nothing is written).
        if let Some(newer) = applied
            .iter()
            .find(|v| !MIGRATIONS.iter().any(|(known, _)| known == *v))
        {
            return Err(StoreError::Database(format!(
                "the database was migrated by a newer jwks-server (schema version {newer}); refusing to use it"
            )));
        }
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db)?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(crate::keys::Clock::now(&crate::keys::SystemClock))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(db)
    }

    /// Re-seals every key under `new` in one transaction; returns how many.
    ///
    /// # Errors
    /// [`StoreError`] if a key cannot be opened or the database fails; then nothing changed.
    pub async fn rewrap(&self, new: &Sealer) -> Result<usize, StoreError> {
        let keys = self.load_keys().await?;
        let mut tx = self.pool.begin().await.map_err(db)?;
        for record in &keys {
            sqlx::query("UPDATE keys SET key = $1 WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = $2)")
                .bind(sealed::seal(new, record)?)
                .bind(record.kid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(keys.len())
    }

    /// The connection pool, for the clients tables (`store/clients.rs`).
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn open_row(&self, row: &sqlx::postgres::PgRow) -> Result<Arc<KeyRecord>, StoreError> {
        let get_i64 = |name: &str| row.try_get::<i64, _>(name).map_err(db);
        let stored = StoredKey {
            thumbprint: row.try_get("thumbprint").map_err(db)?,
            alg: row.try_get("alg").map_err(db)?,
            sealed: row.try_get("key").map_err(db)?,
            schedule: Schedule {
                created_at: get_i64("created_at")?,
                published_at: get_i64("published_at")?,
                activates_at: get_i64("activates_at")?,
                retires_at: get_i64("retires_at")?,
                expires_at: get_i64("expires_at")?,
            },
        };
        sealed::open(&self.sealer, stored)
    }
}

impl KeyStore for PostgresStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Vec<Arc<KeyRecord>>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let version: i64 = sqlx::query("SELECT version FROM key_set_version WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .and_then(|r| r.try_get("version"))
                .map_err(db)?;
            let rows = sqlx::query(
                "SELECT k.key, m.thumbprint, m.alg, m.created_at, m.published_at, m.activates_at, m.retires_at, \
                 m.expires_at FROM keys k JOIN key_meta m ON m.kid = k.kid ORDER BY k.kid",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            let keys = rows
                .iter()
                .map(|row| self.open_row(row))
                .collect::<Result<Vec<_>, _>>()?;
            self.loaded_version.store(version, Ordering::SeqCst);
            Ok(keys)
        })
    }

    fn apply<'a>(&'a self, change: &'a KeyChange) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let expected = self.loaded_version.load(Ordering::SeqCst);
            let mut tx = self.pool.begin().await.map_err(db)?;
            let bumped = sqlx::query(
                "UPDATE key_set_version SET version = version + 1 WHERE id = 1 AND version = $1",
            )
            .bind(expected)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if bumped.rows_affected() != 1 {
                return Err(StoreError::Stale);
            }
            for record in &change.insert {
                let der = record
                    .key
                    .to_pkcs8()
                    .map_err(|e| StoreError::Database(e.to_string()))?;
                let sealed = self
                    .sealer
                    .seal(&record.kid, &der)
                    .map_err(|e| StoreError::Database(e.to_string()))?;
                let kid: i64 =
                    sqlx::query("INSERT INTO keys (key, exp) VALUES ($1, $2) RETURNING kid")
                        .bind(sealed)
                        .bind(exp_seconds(record.schedule.expires_at))
                        .fetch_one(&mut *tx)
                        .await
                        .and_then(|r| r.try_get("kid"))
                        .map_err(db)?;
                let s = record.schedule;
                sqlx::query(
                    "INSERT INTO key_meta (kid, thumbprint, alg, created_at, published_at, activates_at, retires_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
                sqlx::query(
                    "UPDATE keys SET exp = $1 WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = $2)",
                )
                .bind(exp_seconds(s.expires_at))
                .bind(record.kid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                sqlx::query(
                    "UPDATE key_meta SET retires_at = $1, expires_at = $2 WHERE thumbprint = $3",
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
                    "DELETE FROM keys WHERE kid = (SELECT kid FROM key_meta WHERE thumbprint = $1)",
                )
                .bind(kid.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            tx.commit().await.map_err(db)?;
            self.loaded_version.store(expected + 1, Ordering::SeqCst);
            Ok(())
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn try_lease(&self) -> BoxFuture<'_, Result<Option<Box<dyn RotationLease>>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            // The session lock must die with this connection, never linger in the pool.
            conn.close_on_drop();
            let locked: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind(ROTATION_LOCK)
                .fetch_one(&mut *conn)
                .await
                .and_then(|r| r.try_get("locked"))
                .map_err(db)?;
            Ok(locked.then(|| Box::new(AdvisoryLease(Mutex::new(conn))) as Box<dyn RotationLease>))
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.close())
    }

    fn key_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move {
            sqlx::query("SELECT version FROM key_set_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .and_then(|r| r.try_get("version"))
                .map_err(db)
        })
    }
}

/// The rotation lease: a session advisory lock on a connection of its own.
struct AdvisoryLease(Mutex<PoolConnection<Postgres>>);

impl fmt::Debug for AdvisoryLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdvisoryLease")
    }
}

impl RotationLease for AdvisoryLease {
    fn is_held(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut conn = self.0.lock().await;
            // A session lock lives as long as its session: if the session was terminated
            // (or the server restarted) the lock went with it, and this query fails.
            sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok()
        })
    }
}

impl UserStore for PostgresStore {
    fn create_user<'a>(&'a self, user: &'a NewUser) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO users (username, password_hash, email) VALUES ($1, $2, $3) RETURNING id")
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(&user.email)
                .fetch_one(&self.pool)
                .await
                .and_then(|r| r.try_get("id"))
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        if d.constraint().is_some_and(|c| c.contains("email")) {
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
            let row = sqlx::query("SELECT id, password_hash FROM users WHERE username = $1")
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
            let ips: Vec<&str> = events.iter().map(|e| e.request_ip.as_str()).collect();
            let users: Vec<Option<i64>> = events.iter().map(|e| e.user_id).collect();
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query("INSERT INTO auth_logs (request_ip, user_id) SELECT * FROM UNNEST($1::text[], $2::bigint[])")
                .bind(&ips)
                .bind(&users)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("UPDATE users SET last_login = now() AT TIME ZONE 'UTC' WHERE id = ANY($1::bigint[])")
                .bind(users.iter().flatten().copied().collect::<Vec<i64>>())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_show_their_password() {
        let url = DatabaseUrl::new("postgres://app:s3cret@db.internal:5432/keys".into());
        assert_eq!(url.to_string(), "postgres://app:***@db.internal:5432/keys");
        assert_eq!(
            format!("{url:?}"),
            "postgres://app:***@db.internal:5432/keys"
        );
        assert_eq!(
            DatabaseUrl::new("postgres://root@127.0.0.1/test".into()).to_string(),
            "postgres://root@127.0.0.1/test"
        );
        assert_eq!(
            DatabaseUrl::new(
                "postgres://db/keys?user=app&Password=s3cret&sslmode=require&password".into()
            )
            .to_string(),
            "postgres://db/keys?user=app&Password=***&sslmode=require&password"
        );
        assert_eq!(
            DatabaseUrl::new("postgres://app:a%40b@db/k?password=x@y".into()).to_string(),
            "postgres://app:***@db/k?password=***"
        );
        assert!(DatabaseUrl::is_postgres("postgresql://x") && !DatabaseUrl::is_postgres("jwks.db"));
    }
}
