//! Interactive sign-in across PostgreSQL replicas: a session started at one replica is
//! valid at the other, and a code issued by one is redeemable at either, once; used
//! twice, at either, it revokes the token it bought at both.

use std::sync::Arc;

use hyper::StatusCode;
use jwks_server::config::DatabaseUrl;
use jwks_server::keys::{Sealer, SystemClock};
use jwks_server::store::PostgresStore;

use crate::helpers::{TestApp, settings, spawn, test_master_key};
use crate::signin_api::{
    Browser, authorize_path, introspect, pkce, redeem, redirect_params, submit, verify_id_token,
};

async fn replica(url: &DatabaseUrl, schema: &str) -> TestApp {
    let sealer = Sealer::new(test_master_key()).expect("sealer");
    let store = PostgresStore::connect(url, Some(schema), sealer)
        .await
        .expect("connect");
    spawn(
        settings(&[
            "--alg",
            "ES256",
            "--publish-ahead",
            "2s",
            "--jwks-max-age",
            "1s",
        ]),
        Arc::new(store),
        Arc::new(SystemClock),
    )
    .await
}

pub async fn sessions_and_codes_of_one_replica_are_honoured_once_at_another(raw: String) {
    let url = DatabaseUrl::new(raw.clone());
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).expect("rng");
    let schema = format!(
        "t_signin_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let a = replica(&url, &schema).await;
    let b = replica(&url, &schema).await;

    // Sign in at A; redeem the code at B.
    let mut browser = Browser::default();
    let p = pkce();
    let page = browser.get(&a, &authorize_path("app", &p, "")).await;
    assert_eq!(page.status, StatusCode::OK);
    let done = submit(&mut browser, &a, &page, "username=henry").await;
    let code = redirect_params(&done)["code"].clone();
    let res = redeem(&b, "app", &code, &p.verifier, None).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let id = res.json()["id_token"].as_str().expect("id").to_owned();
    let claims = verify_id_token(&id, &b.jwks().await, &b.url(""), "app");
    assert_eq!(claims["sub"], "henry");
    let access = res.json()["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    // (Each replica here has its own issuer, so B answers for B's tokens.)
    assert_eq!(introspect(&b, "app", &access).await["active"], true);
    // Spent at B, so refused at A; the replay at A revokes at B the token B issued.
    let again = redeem(&a, "app", &code, &p.verifier, None).await;
    assert_eq!(again.json()["error"], "invalid_grant");
    assert_eq!(
        introspect(&b, "app", &access).await,
        serde_json::json!({"active": false})
    );

    // The session cookie from A is valid at B (prompt=none answers with a code).
    let q = pkce();
    let silent = browser
        .get(&b, &authorize_path("app", &q, "&prompt=none"))
        .await;
    let code = redirect_params(&silent)["code"].clone();
    // Two replicas redeem the same code at once: exactly one wins.
    let (x, y) = tokio::join!(
        redeem(&a, "app", &code, &q.verifier, None),
        redeem(&b, "app", &code, &q.verifier, None)
    );
    let mut statuses = [x.status.as_u16(), y.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{:?} {:?}", x.body, y.body);

    // Logging out at B ends the session at A.
    let stale = browser.clone();
    let out = browser.get(&b, "/logout").await;
    assert_eq!(out.status, StatusCode::OK);
    // The browser's cookie is cleared by logout; the row is gone for every replica,
    // which a stale copy of the cookie shows.
    let mut stale = stale;
    let after = stale
        .get(&a, &authorize_path("app", &q, "&prompt=none"))
        .await;
    assert_eq!(redirect_params(&after)["error"], "login_required");

    a.stop().await;
    b.stop().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&raw)
        .await
        .expect("admin");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await;
}
