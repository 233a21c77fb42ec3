//! The JWK Set endpoints.

use hyper::{Method, StatusCode};

use crate::helpers::spawn_app;

#[tokio::test]
async fn both_paths_serve_the_same_public_keys_with_caching_headers() {
    let app = spawn_app().await;
    let a = app.get("/.well-known/jwks.json").await;
    let b = app.get("/jwks").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b.body);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("cache-control"), Some("public, max-age=300"));
    let etag = a.header("etag").expect("etag");
    assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"));
    let keys = a.json()["keys"].as_array().expect("keys").clone();
    assert_eq!(
        keys.len(),
        1,
        "a fresh server publishes its active key only"
    );
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    let n = key["n"].as_str().expect("n");
    assert!(
        !n.contains('=') && !n.contains('+') && !n.contains('/'),
        "base64url without padding"
    );
    assert_eq!(
        n.len(),
        342,
        "2048-bit modulus without a leading zero octet"
    );
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(
            key.get(private).is_none(),
            "private member {private} published"
        );
    }
}

#[tokio::test]
async fn a_matching_if_none_match_answers_304_and_others_200() {
    let app = spawn_app().await;
    let first = app.get("/jwks").await;
    let etag = first.header("etag").expect("etag").to_owned();
    let again = app
        .send(Method::GET, "/jwks", &[("if-none-match", &etag)], "")
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.header("cache-control"), Some("public, max-age=300"));
    let other = app
        .send(Method::GET, "/jwks", &[("if-none-match", "\"stale\"")], "")
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body, first.body);
}

#[tokio::test]
async fn head_returns_the_headers_without_a_body() {
    let app = spawn_app().await;
    let get = app.get("/.well-known/jwks.json").await;
    let head = app
        .send(Method::HEAD, "/.well-known/jwks.json", &[], "")
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), get.header("etag"));
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
}

#[tokio::test]
async fn other_algorithms_publish_their_own_key_types() {
    let ec = crate::helpers::spawn_app_with(&["--alg", "ES256"]).await;
    let key = ec.jwks().await["keys"][0].clone();
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert_eq!(key["x"].as_str().map(str::len), Some(43));
    assert_eq!(key["y"].as_str().map(str::len), Some(43));
    let ed = crate::helpers::spawn_app_with(&["--alg", "EdDSA"]).await;
    let key = ed.jwks().await["keys"][0].clone();
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key.get("y").is_none() && key.get("d").is_none());
}
