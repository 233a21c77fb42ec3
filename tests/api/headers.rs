//! Security headers: `X-Content-Type-Options: nosniff` on every response (the JWKS fast
//! path and errors too); `Cache-Control: no-store` on every response that carries a
//! token or a password.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_response_says_nosniff() {
    let app = spawn_app().await;
    let jwks = app.get("/.well-known/jwks.json").await;
    let etag = jwks.header("etag").expect("etag").to_owned();
    let responses = [
        jwks,
        app.get("/jwks").await,
        app.send(Method::GET, "/jwks", &[("if-none-match", &etag)], "")
            .await,
        app.send(Method::HEAD, "/jwks", &[], "").await,
        app.get("/healthz").await,
        app.get("/readyz").await,
        app.auth("").await,
        app.auth("?expired=maybe").await,
        app.get("/nowhere").await,
        app.send(Method::DELETE, "/auth", &[], "").await,
        app.send(
            Method::POST,
            "/register",
            &[("content-type", "text/plain")],
            "x",
        )
        .await,
    ];
    for res in &responses {
        assert_eq!(
            res.header("x-content-type-options"),
            Some("nosniff"),
            "{} {:?}",
            res.status,
            res.body
        );
    }
    assert_eq!(responses[2].status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn responses_with_a_token_or_a_password_are_not_stored() {
    let app = spawn_app().await;
    let registered = app
        .send(
            Method::POST,
            "/register",
            &[("content-type", "application/json")],
            json!({"username": "nina", "email": "nina@example.com"}).to_string(),
        )
        .await;
    assert_eq!(registered.status, StatusCode::CREATED);
    assert_eq!(registered.header("cache-control"), Some("no-store"));
    let password = registered.json()["password"]
        .as_str()
        .expect("password")
        .to_owned();
    for res in [
        app.auth("").await,
        app.auth("?expired=true").await,
        app.auth_json("", &json!({"username": "nina", "password": password}))
            .await,
    ] {
        assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
        assert!(res.json()["token"].is_string());
        assert_eq!(res.header("cache-control"), Some("no-store"));
    }
    // The JWKS is public and meant to be cached.
    assert!(
        app.get("/jwks")
            .await
            .header("cache-control")
            .expect("cache-control")
            .starts_with("public, max-age=")
    );
}
