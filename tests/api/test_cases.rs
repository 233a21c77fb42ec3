//! Negative-test tokens (`test_case=NAME` at `POST /token`): each is rejected by a
//! correct verifier for exactly its one defect, and is otherwise valid. Checked with the
//! independent `jsonwebtoken` crate.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper::StatusCode;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::Value;

use crate::helpers::{TestApp, jwt_claims, jwt_header, spawn_app_with};

const NAMES: [&str; 9] = [
    "expired",
    "not_yet_valid",
    "unknown_kid",
    "bad_signature",
    "wrong_issuer",
    "wrong_audience",
    "alg_none",
    "hs256_key_confusion",
    "wrong_typ",
];

async fn test_token(app: &TestApp, case: &str) -> String {
    let res = app
        .post_form(
            "/token",
            &format!("grant_type=client_credentials&client_id=tester&test_case={case}"),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{case}: {:?}", res.body);
    assert_eq!(res.json()["test_case"], case);
    res.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// What a careful RFC 9068 verifier checks, with a 5-minute leeway.
fn strict(issuer: &str) -> Validation {
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[issuer]);
    v.set_audience(&["jwks-server"]);
    v.leeway = 300;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud", "iat", "nbf"]);
    v
}

/// The PEM of a P-256 JWK, built here from `x` and `y` (SubjectPublicKeyInfo of
/// RFC 5480), independently of the server's encoder.
fn p256_pem(jwk: &Value) -> String {
    let coordinate = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect(name))
            .expect("b64")
    };
    let mut der = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
    der.push(0x04);
    der.extend(coordinate("x"));
    der.extend(coordinate("y"));
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn kind(
    result: Result<jsonwebtoken::TokenData<Value>, jsonwebtoken::errors::Error>,
) -> Option<ErrorKind> {
    result.err().map(|e| e.into_kind())
}

#[tokio::test]
async fn the_test_cases_are_listed_one_per_line() {
    let app = spawn_app_with(&[]).await;
    let res = app.get("/token/test-cases").await;
    assert_eq!(res.status, StatusCode::OK);
    let text = String::from_utf8(res.body.to_vec()).expect("utf-8");
    let listed: Vec<&str> = text
        .lines()
        .map(|l| l.split(':').next().expect("name"))
        .collect();
    assert_eq!(listed, NAMES);
    assert!(text.lines().all(|l| l.len() > 20), "{text}");
}

#[tokio::test]
async fn each_test_case_has_exactly_its_one_defect() {
    let app = spawn_app_with(&["--alg", "ES256"]).await;
    let issuer = app.url("");
    let jwks = app.jwks().await;
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("jwks");
    let active_kid = jwt_header(&app.token("").await)["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let key_of = |token: &str| {
        let kid = jwt_header(token)["kid"].as_str().expect("kid").to_owned();
        set.find(&kid)
            .map(|jwk| DecodingKey::from_jwk(jwk).expect("key"))
    };
    let now = i64::try_from(jsonwebtoken::get_current_timestamp()).expect("time");
    let valid_claims = |token: &str| {
        let c = jwt_claims(token);
        assert_eq!(c["sub"], "tester");
        assert_eq!(c["client_id"], "tester");
        assert!(c["jti"].is_string());
        c
    };

    // expired: exp more than 5 minutes past; valid once exp is not checked.
    let t = test_token(&app, "expired").await;
    let key = key_of(&t).expect("signed by a published key");
    assert_eq!(
        jwt_header(&t)["kid"],
        active_kid.as_str(),
        "the current key"
    );
    assert_eq!(
        kind(decode(&t, &key, &strict(&issuer))),
        Some(ErrorKind::ExpiredSignature)
    );
    let mut v = strict(&issuer);
    v.validate_exp = false;
    decode::<Value>(&t, &key, &v).expect("only exp is wrong");
    assert!(valid_claims(&t)["exp"].as_i64().expect("exp") < now - 300);

    // not_yet_valid: nbf more than 5 minutes ahead.
    let t = test_token(&app, "not_yet_valid").await;
    let key = key_of(&t).expect("published key");
    assert_eq!(
        kind(decode(&t, &key, &strict(&issuer))),
        Some(ErrorKind::ImmatureSignature)
    );
    let mut v = strict(&issuer);
    v.validate_nbf = false;
    decode::<Value>(&t, &key, &v).expect("only nbf is wrong");
    assert!(valid_claims(&t)["nbf"].as_i64().expect("nbf") > now + 300);

    // unknown_kid: a real ES256 signature by a key that the JWKS does not hold.
    let t = test_token(&app, "unknown_kid").await;
    assert!(key_of(&t).is_none());
    assert_eq!(jwt_header(&t)["alg"], "ES256");
    assert_eq!(jwt_header(&t)["typ"], "at+jwt");
    let sig = URL_SAFE_NO_PAD
        .decode(t.rsplit('.').next().expect("sig"))
        .expect("b64");
    assert_eq!(sig.len(), 64);
    assert_eq!(
        test_token(&app, "unknown_kid").await.split('.').next(),
        t.split('.').next(),
        "one unpublished key"
    );
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(&t)
        .expect("decodes")
        .claims;
    assert_eq!(claims["iss"], issuer.as_str());

    // bad_signature: the right kid, a broken signature.
    let t = test_token(&app, "bad_signature").await;
    let key = key_of(&t).expect("published key");
    assert_eq!(
        kind(decode(&t, &key, &strict(&issuer))),
        Some(ErrorKind::InvalidSignature)
    );
    let claims = valid_claims(&t);
    assert!(claims["exp"].as_i64().expect("exp") > now);

    // wrong_issuer
    let t = test_token(&app, "wrong_issuer").await;
    let key = key_of(&t).expect("published key");
    assert_eq!(
        kind(decode(&t, &key, &strict(&issuer))),
        Some(ErrorKind::InvalidIssuer)
    );
    let mut v = strict(&issuer);
    v.iss = None;
    decode::<Value>(&t, &key, &v).expect("only iss is wrong");

    // wrong_audience
    let t = test_token(&app, "wrong_audience").await;
    let key = key_of(&t).expect("published key");
    assert_eq!(
        kind(decode(&t, &key, &strict(&issuer))),
        Some(ErrorKind::InvalidAudience)
    );
    let mut v = strict(&issuer);
    v.validate_aud = false;
    decode::<Value>(&t, &key, &v).expect("only aud is wrong");

    // alg_none: an unsecured JWT (RFC 7519 §6) with otherwise valid claims.
    let t = test_token(&app, "alg_none").await;
    assert_eq!(jwt_header(&t)["alg"], "none");
    assert!(t.ends_with('.'), "empty signature");
    assert!(
        jsonwebtoken::decode_header(&t).is_err(),
        "a library that knows its algorithms refuses it"
    );
    let claims = valid_claims(&t);
    assert_eq!(claims["iss"], issuer.as_str());
    assert!(claims["exp"].as_i64().expect("exp") > now);

    // hs256_key_confusion: HS256 keyed with the active key's public PEM.
    let t = test_token(&app, "hs256_key_confusion").await;
    assert_eq!(jwt_header(&t)["alg"], "HS256");
    let jwk_value = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == jwt_header(&t)["kid"])
        .expect("the active key's kid")
        .clone();
    let mut hs = strict(&issuer);
    hs.algorithms = vec![Algorithm::HS256];
    let pem = p256_pem(&jwk_value);
    decode::<Value>(&t, &DecodingKey::from_secret(pem.as_bytes()), &hs)
        .expect("a verifier that trusts the header's alg would accept it");
    let key = key_of(&t).expect("kid published");
    assert_eq!(
        kind(decode(&t, &key, &strict(&issuer))),
        Some(ErrorKind::InvalidAlgorithm)
    );

    // wrong_typ: valid in every way but typ.
    let t = test_token(&app, "wrong_typ").await;
    assert_eq!(jwt_header(&t)["typ"], "JWT");
    let key = key_of(&t).expect("published key");
    decode::<Value>(&t, &key, &strict(&issuer)).expect("only typ is wrong");

    // None of them is active at /introspect.
    for case in NAMES {
        let t = test_token(&app, case).await;
        let res = app
            .post_form("/introspect", &format!("token={t}"), Some(("tester", "")))
            .await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json(), serde_json::json!({"active": false}), "{case}");
    }
}

#[tokio::test]
async fn test_cases_work_with_the_password_grant_and_are_off_in_users_mode() {
    let app = spawn_app_with(&[]).await;
    let res = app
        .post_form(
            "/token",
            "grant_type=password&client_id=web&username=bob&password=x&test_case=expired",
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        jwt_claims(res.json()["access_token"].as_str().expect("t"))["sub"],
        "bob"
    );

    let users = spawn_app_with(&["--auth", "users"]).await;
    let secret = users
        .add_client(jwks_server::clients::ClientSpec {
            id: "svc".into(),
            ..Default::default()
        })
        .await;
    let res = users
        .post_form(
            "/token",
            "grant_type=client_credentials&test_case=expired",
            Some(("svc", &secret)),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["error"], "invalid_request");
}
