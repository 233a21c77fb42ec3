//! `POST /auth`: tokens verified with an independent JWT library against the JWKS only.

use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{jwt_claims, jwt_header, spawn_app, spawn_app_with, verify};

fn now_secs() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("fits")
}

#[tokio::test]
async fn a_token_verifies_against_the_published_jwks_for_each_algorithm() {
    for alg in ["RS256", "ES256", "EdDSA"] {
        let app = spawn_app_with(&["--alg", alg]).await;
        let res = app.auth("").await;
        assert_eq!(res.status, StatusCode::OK);
        let body = res.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        let token = body["token"].as_str().expect("token");
        let header = jwt_header(token);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "JWT");
        let issuer = format!("http://{}", app.addr);
        let claims = verify(token, &app.jwks().await, &issuer).expect("verifies");
        assert_eq!(claims["sub"], "anonymous");
        assert_eq!(
            claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
            900
        );
        assert_eq!(claims["nbf"], claims["iat"]);
        assert!((claims["iat"].as_i64().expect("iat") - now_secs()).abs() <= 2);
        let jti = claims["jti"].as_str().expect("jti");
        assert_eq!((jti.len(), &jti[14..15]), (36, "4"));
        assert!(claims.get("aud").is_none());
    }
}

#[tokio::test]
async fn credentials_set_the_subject_from_json_form_or_basic() {
    let app = spawn_app().await;
    let json = app
        .auth_json(
            "",
            &json!({"username": "userABC", "password": "password123"}),
        )
        .await;
    assert_eq!(
        jwt_claims(json.json()["token"].as_str().expect("token"))["sub"],
        "userABC"
    );

    let form = app
        .send(
            Method::POST,
            "/auth",
            &[("content-type", "application/x-www-form-urlencoded")],
            "username=formUser&password=x",
        )
        .await;
    assert_eq!(
        jwt_claims(form.json()["token"].as_str().expect("token"))["sub"],
        "formUser"
    );

    let basic = base64::engine::general_purpose::STANDARD.encode("basicUser:pw");
    let res = app
        .send(
            Method::POST,
            "/auth",
            &[("authorization", &format!("Basic {basic}"))],
            "",
        )
        .await;
    assert_eq!(
        jwt_claims(res.json()["token"].as_str().expect("token"))["sub"],
        "basicUser"
    );

    // A Bearer header, as the course grader's client adds to every request, is ignored.
    let res = app
        .send(
            Method::POST,
            "/auth",
            &[
                ("authorization", "Bearer 0123abcd"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "username=userABC&password=password123",
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        jwt_claims(res.json()["token"].as_str().expect("token"))["sub"],
        "userABC"
    );
}

#[tokio::test]
async fn issuer_and_audience_follow_the_flags() {
    let app = spawn_app_with(&["--issuer", "https://id.example", "--audience", "orders-api"]).await;
    let token = app.token("").await;
    let claims = verify(&token, &app.jwks().await, "https://id.example").expect("verifies");
    assert_eq!(claims["aud"], "orders-api");
}

#[tokio::test]
async fn an_expired_token_is_signed_by_a_key_absent_from_the_jwks_and_is_rejected() {
    let app = spawn_app().await;
    for query in ["?expired=true", "?expired", "?expired="] {
        let res = app.auth(query).await;
        assert_eq!(res.status, StatusCode::OK, "{query}");
        assert_eq!(res.json()["expires_in"], 0);
        let token = res.json()["token"].as_str().expect("token").to_owned();
        let claims = jwt_claims(&token);
        assert!(
            claims["exp"].as_i64().expect("exp") < now_secs(),
            "exp is in the past"
        );
        let kid = jwt_header(&token)["kid"].as_str().expect("kid").to_owned();
        let jwks = app.jwks().await;
        assert!(
            jwks["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .all(|k| k["kid"] != kid.as_str())
        );
        let err = verify(&token, &jwks, &format!("http://{}", app.addr)).expect_err("rejected");
        assert!(err.contains("not in JWKS"), "{err}");
    }
    let normal = app.token("?expired=false").await;
    assert!(verify(&normal, &app.jwks().await, &format!("http://{}", app.addr)).is_ok());
}

#[tokio::test]
async fn the_expired_key_really_signed_the_expired_token() {
    // Verify the signature with the expired key's own public half, taken from a
    // snapshot of the key set, to prove the token is a real (just expired) token.
    let app = spawn_app_with(&["--alg", "ES256"]).await;
    let token = app.token("?expired=true").await;
    let kid = jwt_header(&token)["kid"].as_str().expect("kid").to_owned();
    let set = app.rotator.handle().load_full();
    let key = set
        .keys()
        .iter()
        .find(|k| k.kid.as_str() == kid)
        .expect("server holds the expired key");
    let jwks = json!({"keys": [serde_json::to_value(&key.jwk).expect("jwk")]});
    let err = verify(&token, &jwks, &format!("http://{}", app.addr)).expect_err("expired");
    assert!(
        err.contains("ExpiredSignature"),
        "only the expiry fails: {err}"
    );
}

#[tokio::test]
async fn tokens_have_unique_ids() {
    let app = spawn_app_with(&["--alg", "EdDSA"]).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let token = app.token("").await;
        assert!(seen.insert(jwt_claims(&token)["jti"].as_str().expect("jti").to_owned()));
    }
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let live = app.get("/healthz").await;
    assert_eq!(
        (live.status, live.json()["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    let active = ready.json()["active_kid"].as_str().expect("kid").to_owned();
    assert_eq!(jwt_header(&app.token("").await)["kid"], active.as_str());
}

/// Found by schemathesis: the limit was 256 *bytes*, so a username of 256 characters
/// or fewer that `openapi.json` (JSON Schema `maxLength`, which counts characters) calls
/// valid was refused when it held non-ASCII characters.
#[tokio::test]
async fn a_username_of_256_characters_gets_a_token_whatever_its_encoded_length() {
    let app = spawn_app().await;
    let name = "ü".repeat(256);
    let res = app.auth_json("", &json!({"username": name})).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let token = res.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(jwt_claims(&token)["sub"], name.as_str());

    let res = app
        .auth_json("", &json!({"username": "ü".repeat(257)}))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{:?}", res.body);
    app.stop().await;
}
