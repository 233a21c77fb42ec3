//! `POST /introspect` (RFC 7662): active only for our own untampered, unexpired tokens.

use hyper::StatusCode;
use jwks_server::clients::ClientSpec;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

async fn access_token(app: &TestApp, body: &str) -> String {
    let res = app.post_form("/token", body, None).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    res.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

#[tokio::test]
async fn an_issued_access_token_is_active_with_its_claims() {
    let app = spawn_app_with(&[]).await;
    let token = access_token(
        &app,
        "grant_type=client_credentials&client_id=svc&scope=read&audience=api",
    )
    .await;
    let res = app
        .post_form(
            "/introspect",
            &format!("token={token}&token_type_hint=access_token"),
            Some(("rs", "any")),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let body = res.json();
    let claims = crate::helpers::jwt_claims(&token);
    assert_eq!(body["active"], true);
    for name in [
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "nbf",
        "jti",
    ] {
        assert_eq!(body[name], claims[name], "{name}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    // The JWT of /auth is ours too.
    let auth = app.token("").await;
    let res = app
        .post_form("/introspect", &format!("token={auth}"), Some(("rs", "")))
        .await;
    assert_eq!(res.json()["active"], true);
    assert_eq!(res.json()["sub"], "anonymous");
}

#[tokio::test]
async fn anything_but_our_own_valid_token_is_inactive_with_200() {
    let app = spawn_app_with(&[]).await;
    let other = spawn_app_with(&[]).await;
    let token = access_token(&app, "grant_type=client_credentials&client_id=svc").await;
    let foreign = access_token(&other, "grant_type=client_credentials&client_id=svc").await;
    let expired = app.token("?expired=true").await;
    let (head, rest) = token.split_once('.').expect("jws");
    let (payload, sig) = rest.split_once('.').expect("jws");
    // The same signature over another payload (claims of the foreign token).
    let foreign_payload = foreign.split('.').nth(1).expect("payload");
    let swapped = format!("{head}.{foreign_payload}.{sig}");
    let truncated = format!("{head}.{payload}.{}", &sig[..sig.len() - 4]);
    for candidate in [
        foreign.as_str(),
        expired.as_str(),
        swapped.as_str(),
        truncated.as_str(),
        "not-a-token",
        "a.b.c",
    ] {
        let res = app
            .post_form(
                "/introspect",
                &format!("token={candidate}"),
                Some(("rs", "")),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json(), json!({"active": false}), "{candidate}");
    }
}

#[tokio::test]
async fn the_caller_must_authenticate_as_a_client() {
    let app = spawn_app_with(&[]).await;
    let token = access_token(&app, "grant_type=client_credentials&client_id=svc").await;
    let res = app
        .post_form("/introspect", &format!("token={token}"), None)
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.json()["error"], "invalid_client");
    assert!(res.header("www-authenticate").is_some());
    let res = app.post_form("/introspect", "client_id=rs", None).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["error"], "invalid_request");

    let users = spawn_app_with(&["--auth", "users"]).await;
    let secret = users
        .add_client(ClientSpec {
            id: "rs".into(),
            ..ClientSpec::default()
        })
        .await;
    let token = access_token(
        &users,
        &format!("grant_type=client_credentials&client_id=rs&client_secret={secret}"),
    )
    .await;
    let res = users
        .post_form(
            "/introspect",
            &format!("token={token}"),
            Some(("stranger", "x")),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = users
        .post_form(
            "/introspect",
            &format!("token={token}"),
            Some(("rs", &secret)),
        )
        .await;
    assert_eq!(res.json()["active"], true);
}
