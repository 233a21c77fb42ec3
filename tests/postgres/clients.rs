//! The clients registry on PostgreSQL: the `ClientStore` contract on a real server, and
//! the `clients` CLI changing the clients of running replicas.

use std::sync::Arc;

use jwks_server::clients::ClientStore as _;
use jwks_server::config::DatabaseUrl;
use jwks_server::keys::Sealer;
use jwks_server::store::{PostgresClients, PostgresStore};

use crate::clients_api::{add, cli, converge, start, store_contract};

pub async fn the_cli_changes_clients_of_postgres_replicas_which_all_see_them_within_2_seconds(
    admin_url: String,
) {
    let (url, name) = crate::replicas::fresh_database(&admin_url).await;
    let (a, b) = (start(&url), start(&url));
    let secret = add(&url, &["svc"]);
    converge(&[&a, &b], "svc", &secret, 200).await;
    let out = cli(&url, &["clients", "remove", "svc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    converge(&[&a, &b], "svc", &secret, 401).await;
    drop((a, b));
    crate::replicas::drop_database(&admin_url, &name).await;
}

/// The `ClientStore` contract on PostgreSQL, and a second writer beside the store.
pub async fn postgres_keeps_the_client_store_contract(raw: String) {
    let url = DatabaseUrl::new(raw.clone());
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).expect("rng");
    let schema = format!(
        "t_clients_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let sealer = Sealer::new(crate::helpers::test_master_key()).expect("sealer");
    let pg = Arc::new(
        PostgresStore::connect(&url, Some(&schema), sealer)
            .await
            .expect("connect"),
    );
    store_contract(pg.as_ref()).await;
    let beside = PostgresClients::connect(&url, Some(&schema))
        .await
        .expect("connect");
    assert_eq!(beside.list_clients().await.expect("list").len(), 1);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&raw)
        .await
        .expect("admin");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await;
}
