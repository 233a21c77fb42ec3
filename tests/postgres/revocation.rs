//! Revoking a key on three PostgreSQL replicas under traffic: every replica drops it
//! within 2 seconds, no request fails, and a replica started later never publishes it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::jwt_header;
use crate::operations_api::{json_kids, run_keys, traffic};
use crate::process::{HttpClient, MASTER_KEY, Server};

pub async fn a_revoke_reaches_every_postgres_replica_within_two_seconds_under_traffic(
    admin_url: String,
) {
    let (url, name) = crate::replicas::fresh_database(&admin_url).await;
    let start = || {
        Server::start(
            &[
                "--database",
                &url,
                "--alg",
                "EdDSA",
                "--auth-rate-limit",
                "0",
                "--publish-ahead",
                "2s",
                "--jwks-max-age",
                "1s",
            ],
            &[("JWKS_MASTER_KEY", MASTER_KEY)],
        )
        .expect("a replica starts")
    };
    let replicas = [start(), start(), start()];
    let client = HttpClient::default();
    let (_, ready) = client.get(&format!("{}/readyz", replicas[0].base)).await;
    let active = serde_json::from_str::<Value>(&ready).expect("json")["active_kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let (stop, sent, failed, load) = traffic(replicas.iter().map(|r| r.base.clone()).collect());
    let (ok, _, err) = run_keys(&["revoke", &active, "--reason", "drill"], &url);
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for replica in &replicas {
        let (status, jwks) = client.get(&format!("{}/jwks", replica.base)).await;
        assert_eq!(status, 200);
        assert!(
            !json_kids(&jwks).contains(&active),
            "{} still publishes it",
            replica.base
        );
        let token = client.token(&replica.base, "").await;
        assert_ne!(jwt_header(&token)["kid"], active.as_str());
    }
    stop.store(true, Ordering::SeqCst);
    load.await.expect("traffic");
    assert!(sent.load(Ordering::SeqCst) > 30);
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no request failed");
    // A replica that was down at the time never publishes it.
    let late = start();
    let (_, jwks) = client.get(&format!("{}/jwks", late.base)).await;
    assert!(!json_kids(&jwks).contains(&active));
    for replica in replicas {
        replica.terminate();
    }
    late.terminate();
    crate::replicas::drop_database(&admin_url, &name).await;
}
