//! [`ClientStore`] for every backend. Each SQL statement is written once: SQLite reads
//! `$1, $2, ...` as numbered parameters like PostgreSQL, so one text serves both, and
//! one macro expands the same code over both pools.
//!
//! Also [`open_client_store`], what `jwks-server clients ...` uses: it writes the
//! clients tables while a server runs. On SQLite it opens the file *without* the
//! server's exclusive lock (WAL mode lets a second connection write, and the busy
//! timeout waits out the server's own transactions); it touches nothing but the clients
//! tables.

use std::path::Path;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};

use super::{MemoryStore, PostgresStore, SqliteStore};
use crate::clients::{Client, ClientId, ClientStore, GrantType, SecretHash};
use crate::config::DatabaseSettings;
use crate::config::DatabaseUrl;
use crate::persist::{BoxFuture, StoreError};

const LIST: &str = "SELECT client_id, secret_hash, scopes, grant_types, audience, claims, redirect_uris, \
                    client_name, post_logout_redirect_uris FROM clients ORDER BY client_id";
const INSERT: &str = "INSERT INTO clients (client_id, secret_hash, scopes, grant_types, audience, claims, \
                      redirect_uris, created_at, client_name, post_logout_redirect_uris) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const DELETE: &str = "DELETE FROM clients WHERE client_id = $1";
const BUMP: &str = "UPDATE clients_version SET version = version + 1 WHERE id = 1";
const VERSION: &str = "SELECT version FROM clients_version WHERE id = 1";
/// Whether the migration that last changed the clients tables (6) was applied.
const MIGRATED: &str = "SELECT COUNT(*) AS n FROM schema_migrations WHERE version = $1";

fn db(error: sqlx::Error) -> StoreError {
    StoreError::Database(error)
}

/// The stored columns of one client.
struct ClientRow {
    client_id: String,
    secret_hash: Option<String>,
    scopes: String,
    grant_types: String,
    audience: Option<String>,
    claims: String,
    redirect_uris: String,
    client_name: Option<String>,
    post_logout_redirect_uris: String,
}

impl ClientRow {
    fn from_client(client: &Client) -> Result<Self, StoreError> {
        Ok(Self {
            client_id: client.id.as_str().to_owned(),
            secret_hash: client.secret_hash.as_ref().map(SecretHash::to_hex),
            scopes: client.scopes.join(" "),
            grant_types: client
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            audience: client.audience.clone(),
            claims: to_json(&client.claims)?,
            redirect_uris: to_json(&client.redirect_uris)?,
            client_name: client.name.clone(),
            post_logout_redirect_uris: to_json(&client.post_logout_redirect_uris)?,
        })
    }

    fn into_client(self) -> Result<Client, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            kid: format!("client {}", self.client_id),
            source: reason.into(),
        };
        let grant_types = self
            .grant_types
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(|g| GrantType::parse(g).ok_or_else(|| corrupt(format!("unknown grant type {g}"))))
            .collect::<Result<_, _>>()?;
        Ok(Client {
            id: ClientId::parse(&self.client_id).map_err(|e| corrupt(e.to_string()))?,
            secret_hash: self
                .secret_hash
                .as_deref()
                .map(SecretHash::from_hex)
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            name: self.client_name.clone(),
            scopes: self
                .scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            grant_types,
            audience: self.audience.clone(),
            claims: serde_json::from_str(&self.claims).map_err(|e| corrupt(e.to_string()))?,
            redirect_uris: serde_json::from_str(&self.redirect_uris)
                .map_err(|e| corrupt(e.to_string()))?,
            post_logout_redirect_uris: serde_json::from_str(&self.post_logout_redirect_uris)
                .map_err(|e| corrupt(e.to_string()))?,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(value)?)
}

fn now_millis() -> i64 {
    crate::keys::Clock::now(&crate::keys::SystemClock)
}

/// The same statements over one backend's pool type.
macro_rules! client_sql {
    ($name:ident, $pool:ty) => {
        mod $name {
            use super::*;

            pub(super) async fn list(pool: &$pool) -> Result<Vec<Client>, StoreError> {
                let rows = sqlx::query(LIST).fetch_all(pool).await.map_err(db)?;
                rows.iter()
                    .map(|r| {
                        ClientRow {
                            client_id: r.try_get("client_id").map_err(db)?,
                            secret_hash: r.try_get("secret_hash").map_err(db)?,
                            scopes: r.try_get("scopes").map_err(db)?,
                            grant_types: r.try_get("grant_types").map_err(db)?,
                            audience: r.try_get("audience").map_err(db)?,
                            claims: r.try_get("claims").map_err(db)?,
                            redirect_uris: r.try_get("redirect_uris").map_err(db)?,
                            client_name: r.try_get("client_name").map_err(db)?,
                            post_logout_redirect_uris: r
                                .try_get("post_logout_redirect_uris")
                                .map_err(db)?,
                        }
                        .into_client()
                    })
                    .collect()
            }

            pub(super) async fn insert(pool: &$pool, client: &Client) -> Result<(), StoreError> {
                let row = ClientRow::from_client(client)?;
                let mut tx = pool.begin().await.map_err(db)?;
                sqlx::query(INSERT)
                    .bind(&row.client_id)
                    .bind(&row.secret_hash)
                    .bind(&row.scopes)
                    .bind(&row.grant_types)
                    .bind(&row.audience)
                    .bind(&row.claims)
                    .bind(&row.redirect_uris)
                    .bind(now_millis())
                    .bind(&row.client_name)
                    .bind(&row.post_logout_redirect_uris)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match &e {
                        sqlx::Error::Database(d) if d.is_unique_violation() => {
                            StoreError::Conflict("client_id")
                        }
                        _ => db(e),
                    })?;
                sqlx::query(BUMP).execute(&mut *tx).await.map_err(db)?;
                tx.commit().await.map_err(db)
            }

            pub(super) async fn remove(pool: &$pool, id: &ClientId) -> Result<bool, StoreError> {
                let mut tx = pool.begin().await.map_err(db)?;
                let removed = sqlx::query(DELETE)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
                if removed == 0 {
                    return Ok(false);
                }
                sqlx::query(BUMP).execute(&mut *tx).await.map_err(db)?;
                tx.commit().await.map_err(db)?;
                Ok(true)
            }

            pub(super) async fn version(pool: &$pool) -> Result<i64, StoreError> {
                sqlx::query(VERSION)
                    .fetch_one(pool)
                    .await
                    .and_then(|r| r.try_get("version"))
                    .map_err(db)
            }

            pub(super) async fn is_migrated(pool: &$pool) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query(MIGRATED)
                    .bind(6_i64)
                    .fetch_one(pool)
                    .await
                    .and_then(|r| r.try_get("n"))
                    .map_err(db)?;
                Ok(n == 1)
            }
        }
    };
}

client_sql!(sqlite_sql, sqlx::SqlitePool);
client_sql!(postgres_sql, sqlx::PgPool);

/// [`ClientStore`] for a type by delegating to one backend's statements.
macro_rules! impl_client_store {
    ($type:ty, $sql:ident, |$s:ident| $pool:expr) => {
        impl ClientStore for $type {
            fn list_clients(&self) -> BoxFuture<'_, Result<Vec<Client>, StoreError>> {
                let $s = self;
                Box::pin(async move { $sql::list($pool).await })
            }

            fn insert_client<'a>(
                &'a self,
                client: &'a Client,
            ) -> BoxFuture<'a, Result<(), StoreError>> {
                let $s = self;
                Box::pin(async move { $sql::insert($pool, client).await })
            }

            fn remove_client<'a>(
                &'a self,
                id: &'a ClientId,
            ) -> BoxFuture<'a, Result<bool, StoreError>> {
                let $s = self;
                Box::pin(async move { $sql::remove($pool, id).await })
            }

            fn clients_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
                let $s = self;
                Box::pin(async move { $sql::version($pool).await })
            }
        }
    };
}

impl_client_store!(SqliteStore, sqlite_sql, |s| s.pool());
impl_client_store!(PostgresStore, postgres_sql, |s| s.pool());
impl_client_store!(SqliteClients, sqlite_sql, |s| &s.pool);
impl_client_store!(PostgresClients, postgres_sql, |s| &s.pool);

/// The clients of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(super) struct MemoryClients {
    version: i64,
    clients: Vec<Client>,
}

impl ClientStore for MemoryStore {
    fn list_clients(&self) -> BoxFuture<'_, Result<Vec<Client>, StoreError>> {
        let result = self
            .clients
            .lock()
            .map(|c| {
                let mut list = c.clients.clone();
                list.sort_by(|a, b| a.id.cmp(&b.id));
                list
            })
            .map_err(|_| poisoned());
        Box::pin(async move { result })
    }

    fn insert_client<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self
            .clients
            .lock()
            .map_err(|_| poisoned())
            .and_then(|mut c| {
                if c.clients.iter().any(|x| x.id == client.id) {
                    return Err(StoreError::Conflict("client_id"));
                }
                c.clients.push(client.clone());
                c.version += 1;
                Ok(())
            });
        Box::pin(async move { result })
    }

    fn remove_client<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<bool, StoreError>> {
        let result = self.clients.lock().map_err(|_| poisoned()).map(|mut c| {
            let before = c.clients.len();
            c.clients.retain(|x| &x.id != id);
            let removed = c.clients.len() != before;
            if removed {
                c.version += 1;
            }
            removed
        });
        Box::pin(async move { result })
    }

    fn clients_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        let result = self
            .clients
            .lock()
            .map(|c| c.version)
            .map_err(|_| poisoned());
        Box::pin(async move { result })
    }
}

fn poisoned() -> StoreError {
    StoreError::Poisoned
}

/// The clients tables of a SQLite file, opened beside a running server (no lock).
#[derive(Debug)]
pub struct SqliteClients {
    pool: sqlx::SqlitePool,
}

/// The clients tables of a PostgreSQL database.
#[derive(Debug)]
pub struct PostgresClients {
    pool: sqlx::PgPool,
}

const NOT_MIGRATED: &str = "the database has no clients table yet: start this version of jwks-server on it once, \
                            or run `jwks-server migrate`";

impl SqliteClients {
    /// Opens the clients tables of the database at `path`, which a server must have
    /// created and migrated; it may be running.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the file is missing, not ours, or not migrated.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if !path.try_exists().unwrap_or(false) {
            return Err(StoreError::Refused {
                path: path.to_path_buf(),
                reason: "no such database; start the server once, or run `jwks-server migrate`"
                    .into(),
            });
        }
        // No journal-mode change (the server set WAL, which is persistent) and no lock
        // file: the server holds that, and this connection only ever writes `clients`.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Refused {
                path: path.to_path_buf(),
                reason: format!("cannot open it: {e}"),
            })?;
        let store = Self { pool };
        if !sqlite_sql::is_migrated(&store.pool).await.unwrap_or(false) {
            return Err(StoreError::Refused {
                path: path.to_path_buf(),
                reason: NOT_MIGRATED.into(),
            });
        }
        Ok(store)
    }

    /// Closes the connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl PostgresClients {
    /// Connects, optionally into `schema` (tests use one each); the database must be
    /// migrated.
    ///
    /// # Errors
    /// [`StoreError::Database`] if it is unreachable or not migrated.
    pub async fn connect(url: &DatabaseUrl, schema: Option<&str>) -> Result<Self, StoreError> {
        let store = Self {
            pool: super::postgres::pool(url, schema, 1).await?,
        };
        if !postgres_sql::is_migrated(&store.pool)
            .await
            .unwrap_or(false)
        {
            return Err(StoreError::Unsupported(NOT_MIGRATED));
        }
        Ok(store)
    }
}

/// The clients tables of the configured database, for `jwks-server clients ...`.
///
/// # Errors
/// [`StoreError::Database`] for an in-memory database (its clients live only in the
/// server process), or if the database cannot be opened.
pub async fn open_client_store(
    database: &DatabaseSettings,
) -> Result<Box<dyn ClientStore>, StoreError> {
    match database {
        DatabaseSettings::Memory => Err(StoreError::Unsupported(
            "an in-memory database keeps its clients inside the server process; use --database FILE or postgres://...",
        )),
        DatabaseSettings::Sqlite(path) => Ok(Box::new(SqliteClients::open(path).await?)),
        DatabaseSettings::Postgres(url) => Ok(Box::new(PostgresClients::connect(url, None).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ClientSpec;

    #[tokio::test]
    async fn sqlite_binds_numbered_placeholders_like_postgres() {
        let pool = SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .expect("memory db");
        // Out of order on purpose: `$2` must bind the second value, not the first one seen.
        let row = sqlx::query("SELECT $2 AS b, $1 AS a, $2 AS b2")
            .bind("first")
            .bind("second")
            .fetch_one(&pool)
            .await
            .expect("query");
        assert_eq!(row.get::<String, _>("a"), "first");
        assert_eq!(row.get::<String, _>("b"), "second");
        assert_eq!(row.get::<String, _>("b2"), "second");
    }

    #[test]
    fn rows_round_trip_every_field() {
        let (client, _) = Client::create(&ClientSpec {
            id: "svc".into(),
            scopes: vec!["a b".into()],
            grant_types: vec!["password".into()],
            audience: Some("api".into()),
            claims: vec![r#"x={"y":[1]}"#.into()],
            redirect_uris: vec!["https://app/cb".into()],
            post_logout_redirect_uris: vec!["https://app/bye".into()],
            name: Some("App".into()),
            public: false,
        })
        .expect("valid");
        let again = ClientRow::from_client(&client)
            .expect("row")
            .into_client()
            .expect("client");
        assert_eq!(again, client);
        let (public, _) = Client::create(&ClientSpec {
            id: "spa".into(),
            public: true,
            ..ClientSpec::default()
        })
        .expect("valid");
        let again = ClientRow::from_client(&public)
            .expect("row")
            .into_client()
            .expect("client");
        assert_eq!(again, public);
    }
}
