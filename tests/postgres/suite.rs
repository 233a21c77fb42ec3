//! The shared store suite (`tests/api/store_suite.rs`) on PostgreSQL, a fresh schema per
//! part, dropped afterwards.

use std::sync::Arc;

use jwks_server::config::DatabaseUrl;
use jwks_server::keys::{KeyStore as _, MasterKey, Sealer};
use jwks_server::store::{PostgresStore, Store};

use crate::store_suite::run_suite;

pub async fn the_postgres_store_passes_the_suite(raw: String) {
    let url = DatabaseUrl::new(raw.clone());
    let schemas = std::sync::Mutex::new(Vec::new());
    run_suite(async || {
        let mut bytes = [0u8; 6];
        aws_lc_rs::rand::fill(&mut bytes).expect("rng");
        let schema = format!(
            "suite_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        schemas.lock().expect("lock").push(schema.clone());
        let sealer = Sealer::new(MasterKey::from_passphrase("suite")).expect("sealer");
        let store = PostgresStore::connect(&url, Some(&schema), sealer)
            .await
            .expect("connect");
        store
            .load_keys()
            .await
            .expect("a shared store plans from the version it loaded");
        Arc::new(store) as Arc<dyn Store>
    })
    .await;
    // Leave the database as we found it.
    let pool = sqlx::PgPool::connect(&raw).await.expect("connect");
    for schema in schemas.into_inner().expect("lock") {
        let sql = format!("DROP SCHEMA \"{schema}\" CASCADE");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect("drop schema");
    }
    pool.close().await;
}
