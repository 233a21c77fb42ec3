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
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row};
use tokio::sync::Mutex;

use super::sql::{Dialect, Sql};
use crate::config::DatabaseUrl;
use crate::keys::{
    KeyChange, KeyInfo, KeyRecord, KeyStore, KeyVersion, RotationLease, Sealer, Versioned,
};
use crate::persist::{BoxFuture, StoreError};
use crate::users::{LoginEvent, NewUser, StoredUser, UserStore};

/// Key of the advisory lock that elects the rotating replica.
const ROTATION_LOCK: i64 = 0x6a77_6b73_726f_7461; // "jwksrota"

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_keys.sql")),
    (2, include_str!("../../migrations/postgres/0002_users.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_key_set_version.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_clients.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_revocation.sql"),
    ),
    (6, include_str!("../../migrations/postgres/0006_signin.sql")),
];

impl Dialect for Postgres {
    const CREATE_MIGRATIONS: &'static str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
                                             applied_at BIGINT NOT NULL)";
    // Replicas starting together must not race (the lock ends with the transaction); the
    // key is 0x6a776b736d696772, "jwksmigr".
    const MIGRATION_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(7671718633749964658)");
    // The version and the rows must come from one snapshot.
    const SNAPSHOT: Option<&'static str> = Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
}

/// A pool of at most `max` connections to `url`, into `schema` when given.
///
/// # Errors
/// [`StoreError::Connect`] if the server is unreachable; [`StoreError::Database`] for a
/// malformed URL.
pub(super) async fn pool(
    url: &DatabaseUrl,
    schema: Option<&str>,
    max: u32,
) -> Result<PgPool, StoreError> {
    let mut options = PgConnectOptions::from_str(url.expose())?;
    if let Some(schema) = schema {
        options = options.options([("search_path", schema)]);
    }
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            url: url.to_string(),
            source,
        })
}

/// Keys and users in PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
    sealer: Sealer,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("sealer", &self.sealer)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, optionally into `schema` (created if missing; tests use one each), and
    /// runs the migrations.
    ///
    /// # Errors
    /// [`StoreError::Connect`] if the server is unreachable; [`StoreError::Database`] if
    /// a migration fails.
    pub async fn connect(
        url: &DatabaseUrl,
        schema: Option<&str>,
        sealer: Sealer,
    ) -> Result<Self, StoreError> {
        let pool = pool(url, schema, 8).await?;
        if let Some(schema) = schema {
            // The name comes from our own tests, never from a request.
            let create = format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.replace('"', "")
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&pool)
                .await?;
        }
        let store = Self { pool, sealer };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations not yet applied, in one transaction, under an advisory
    /// lock so replicas starting together do not race.
    ///
    /// # Errors
    /// [`StoreError::NewerSchema`] if a newer jwks-server migrated the database;
    /// [`StoreError::Database`] if a migration fails. Nothing is applied then.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Sql::<Postgres>::migrate(&self.pool, MIGRATIONS, "the database").await
    }

    /// The connection pool, for the clients tables (`store/clients.rs`).
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl KeyStore for PostgresStore {
    fn load_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<Arc<KeyRecord>>>, StoreError>> {
        Box::pin(Sql::<Postgres>::load_keys(&self.pool, &self.sealer))
    }

    fn list_keys(&self) -> BoxFuture<'_, Result<Versioned<Vec<KeyInfo>>, StoreError>> {
        Box::pin(Sql::<Postgres>::list_keys(&self.pool))
    }

    fn apply<'a>(
        &'a self,
        base: KeyVersion,
        change: &'a KeyChange,
    ) -> BoxFuture<'a, Result<KeyVersion, StoreError>> {
        Box::pin(Sql::<Postgres>::apply(
            &self.pool,
            &self.sealer,
            base,
            change,
        ))
    }

    fn key_version(&self) -> BoxFuture<'_, Result<KeyVersion, StoreError>> {
        Box::pin(Sql::<Postgres>::key_version(&self.pool))
    }

    fn rewrap<'a>(&'a self, new: &'a Sealer) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(Sql::<Postgres>::rewrap(&self.pool, &self.sealer, new))
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn try_lease(&self) -> BoxFuture<'_, Result<Option<Box<dyn RotationLease>>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            // The session lock must die with this connection, never linger in the pool.
            conn.close_on_drop();
            let locked: bool = sqlx::query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind(ROTATION_LOCK)
                .fetch_one(&mut *conn)
                .await?
                .try_get("locked")?;
            Ok(locked.then(|| Box::new(AdvisoryLease(Mutex::new(conn))) as Box<dyn RotationLease>))
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.close())
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
        Box::pin(Sql::<Postgres>::create_user(&self.pool, user))
    }

    fn find_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredUser>, StoreError>> {
        Box::pin(Sql::<Postgres>::find_user(&self.pool, username))
    }

    fn record_logins<'a>(
        &'a self,
        events: &'a [LoginEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let ips: Vec<&str> = events.iter().map(|e| e.request_ip.as_str()).collect();
            let users: Vec<Option<i64>> = events.iter().map(|e| e.user_id).collect();
            let mut tx = self.pool.begin().await?;
            sqlx::query("INSERT INTO auth_logs (request_ip, user_id) SELECT * FROM UNNEST($1::text[], $2::bigint[])")
                .bind(&ips)
                .bind(&users)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE users SET last_login = now() AT TIME ZONE 'UTC' WHERE id = ANY($1::bigint[])")
                .bind(users.iter().flatten().copied().collect::<Vec<i64>>())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}
