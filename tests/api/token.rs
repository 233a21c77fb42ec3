//! `POST /token` (RFC 6749 §3.2, §4.3, §4.4, §5) issuing RFC 9068 access tokens.

use hyper::StatusCode;
use jwks_server::clients::ClientSpec;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestResponse, auth_log_rows, jwt_claims, jwt_header, spawn_app_with,
};

fn spec(id: &str) -> ClientSpec {
    ClientSpec {
        id: id.into(),
        ..ClientSpec::default()
    }
}

/// Checks the §5.2 error shape: status, code, JSON, no-store.
fn assert_oauth_error(res: &TestResponse, status: StatusCode, code: &str) {
    assert_eq!(res.status, status, "{:?}", res.body);
    assert_eq!(res.json()["error"], code, "{:?}", res.body);
    assert!(res.json()["error_description"].is_string());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("pragma"), Some("no-cache"));
    if code == "invalid_client" {
        assert!(
            res.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic ")),
            "{:?}",
            res.headers
        );
    }
}

async fn token_ok(app: &TestApp, body: &str, basic: Option<(&str, &str)>) -> Value {
    let res = app.post_form("/token", body, basic).await;
    assert_eq!(res.status, StatusCode::OK, "{body}: {:?}", res.body);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("pragma"), Some("no-cache"));
    res.json()
}

/// Verifies an access token with the independent `jsonwebtoken` crate against the JWKS,
/// as an RFC 9068 §4 resource server would (typ, iss, aud, exp, signature).
pub fn verify_access(
    token: &str,
    jwks: &Value,
    issuer: &str,
    audience: &str,
) -> Result<Value, String> {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    let header = decode_header(token).map_err(|e| e.to_string())?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(format!("typ {:?}", header.typ));
    }
    let kid = header.kid.ok_or("no kid")?;
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} not in JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud", "iat", "nbf"]);
    decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn client_credentials_for_an_unregistered_client_in_open_mode_gives_a_valid_rfc_9068_token() {
    let app = spawn_app_with(&["--token-ttl", "120s"]).await;
    let issuer = app.url("");
    let body = token_ok(&app, "grant_type=client_credentials&client_id=svc", None).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 120);
    assert!(body.get("scope").is_none(), "no scope asked, none granted");
    let token = body["access_token"].as_str().expect("token");
    let header = jwt_header(token);
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string() && header["alg"] == "RS256");
    let claims = verify_access(token, &app.jwks().await, &issuer, "jwks-server").expect("verifies");
    assert_eq!(claims["sub"], "svc");
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["iss"], issuer);
    assert_eq!(
        claims["aud"], "jwks-server",
        "the documented default audience"
    );
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        120
    );
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(claims["jti"].as_str().expect("jti").len(), 36);
    // Any secret is fine for an unregistered id in open mode.
    token_ok(
        &app,
        "grant_type=client_credentials",
        Some(("svc", "whatever")),
    )
    .await;
}

#[tokio::test]
async fn a_registered_client_must_present_its_own_secret_by_basic_or_in_the_body() {
    let app = spawn_app_with(&[]).await;
    // A ':' in the id survives Basic because both parts are form-url-encoded (§2.3.1).
    let secret = app.add_client(spec("svc:a/b")).await;
    token_ok(
        &app,
        "grant_type=client_credentials",
        Some(("svc:a/b", &secret)),
    )
    .await;
    let post =
        format!("grant_type=client_credentials&client_id=svc%3Aa%2Fb&client_secret={secret}");
    token_ok(&app, &post, None).await;
    for (body, basic) in [
        ("grant_type=client_credentials", Some(("svc:a/b", "wrong"))),
        ("grant_type=client_credentials&client_id=svc%3Aa%2Fb", None),
        (
            "grant_type=client_credentials&client_id=svc%3Aa%2Fb&client_secret=wrong",
            None,
        ),
        ("grant_type=client_credentials", None),
    ] {
        let res = app.post_form("/token", body, basic).await;
        assert_oauth_error(&res, StatusCode::UNAUTHORIZED, "invalid_client");
    }
}

#[tokio::test]
async fn users_mode_admits_only_registered_clients_with_their_secret() {
    let app = spawn_app_with(&["--auth", "users"]).await;
    let res = app
        .post_form(
            "/token",
            "grant_type=client_credentials&client_id=stranger",
            None,
        )
        .await;
    assert_oauth_error(&res, StatusCode::UNAUTHORIZED, "invalid_client");
    let secret = app.add_client(spec("svc")).await;
    token_ok(
        &app,
        "grant_type=client_credentials",
        Some(("svc", &secret)),
    )
    .await;
    let res = app
        .post_form(
            "/token",
            "grant_type=client_credentials",
            Some(("svc", "nope")),
        )
        .await;
    assert_oauth_error(&res, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn malformed_requests_answer_invalid_request_and_unknown_grants_unsupported_grant_type() {
    let app = spawn_app_with(&[]).await;
    let secret = app.add_client(spec("svc")).await;
    for body in [
        "client_id=svc", // no grant_type
        "grant_type=client_credentials&grant_type=client_credentials&client_id=x", // repeated
        "grant_type=client_credentials&client_id=x&scope=a&scope=b",
        "grant_type=client_credentials&client_secret=x", // secret, no id
        "grant_type=password&client_id=x&username=u",    // no password
        "grant_type=client_credentials&client_id=x&audience=a&resource=https://r",
        "grant_type=client_credentials&client_id=x&claims=[1]",
        "grant_type=client_credentials&client_id=x&claims=%7B%22iss%22%3A%22me%22%7D",
        "grant_type=client_credentials&client_id=x&test_case=nope",
    ] {
        let res = app.post_form("/token", body, None).await;
        assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Basic and body credentials at once (RFC 6749 §2.3).
    let both = format!("grant_type=client_credentials&client_id=svc&client_secret={secret}");
    let res = app.post_form("/token", &both, Some(("svc", &secret))).await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
    // A JSON body is a malformed request, not 415.
    let res = app
        .send(
            hyper::Method::POST,
            "/token",
            &[("content-type", "application/json")],
            r#"{"grant_type":"client_credentials","client_id":"x"}"#,
        )
        .await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
    // The authorization code grant without its code.
    let res = app
        .post_form("/token", "grant_type=authorization_code&client_id=x", None)
        .await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
    for grant in [
        "implicit",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let res = app
            .post_form("/token", &format!("grant_type={grant}&client_id=x"), None)
            .await;
        assert_oauth_error(&res, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let res = app
        .post_form(
            "/token",
            "grant_type=client_credentials&client_id=x&resource=not-a-uri",
            None,
        )
        .await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_target");
    assert_eq!(
        app.send(hyper::Method::GET, "/token", &[], "").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn scopes_are_limited_to_what_a_registered_client_may_ask() {
    let app = spawn_app_with(&[]).await;
    let secret = app
        .add_client(ClientSpec {
            scopes: vec!["read".into(), "write".into()],
            ..spec("svc")
        })
        .await;
    let basic = Some(("svc", secret.as_str()));
    let all = token_ok(&app, "grant_type=client_credentials", basic).await;
    assert_eq!(all["scope"], "read write", "none asked: all allowed");
    assert_eq!(
        jwt_claims(all["access_token"].as_str().expect("t"))["scope"],
        "read write"
    );
    let one = token_ok(&app, "grant_type=client_credentials&scope=read", basic).await;
    assert_eq!(one["scope"], "read");
    assert_eq!(
        jwt_claims(one["access_token"].as_str().expect("t"))["scope"],
        "read"
    );
    for scope in ["admin", "read+admin", "bad%5Cscope"] {
        let res = app
            .post_form(
                "/token",
                &format!("grant_type=client_credentials&scope={scope}"),
                basic,
            )
            .await;
        assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_scope");
    }
    // An unregistered client in open mode gets what it asks for.
    let open = token_ok(
        &app,
        "grant_type=client_credentials&client_id=x&scope=a+b",
        None,
    )
    .await;
    assert_eq!(open["scope"], "a b");
}

#[tokio::test]
async fn the_audience_comes_from_the_request_then_the_client_then_the_flag() {
    let app = spawn_app_with(&["--audience", "flag-aud"]).await;
    let secret = app
        .add_client(ClientSpec {
            audience: Some("client-aud".into()),
            ..spec("svc")
        })
        .await;
    let aud = |body: Value| jwt_claims(body["access_token"].as_str().expect("t"))["aud"].clone();
    let basic = Some(("svc", secret.as_str()));
    assert_eq!(
        aud(token_ok(&app, "grant_type=client_credentials", basic).await),
        "client-aud"
    );
    assert_eq!(
        aud(token_ok(&app, "grant_type=client_credentials&audience=api", basic).await),
        "api"
    );
    assert_eq!(
        aud(token_ok(
            &app,
            "grant_type=client_credentials&resource=https%3A%2F%2Fapi.example%2F",
            basic
        )
        .await),
        "https://api.example/",
        "RFC 8707 resource"
    );
    assert_eq!(
        aud(token_ok(&app, "grant_type=client_credentials&client_id=other", None).await),
        "flag-aud"
    );
}

#[tokio::test]
async fn fixed_client_claims_and_open_mode_claims_are_added_but_server_claims_are_not_replaced() {
    let app = spawn_app_with(&[]).await;
    let secret = app
        .add_client(ClientSpec {
            claims: vec![r#"tenant="acme""#.into(), r#"roles=["a","b"]"#.into()],
            ..spec("svc")
        })
        .await;
    let body = token_ok(
        &app,
        "grant_type=client_credentials&claims=%7B%22role%22%3A%22tester%22%2C%22tenant%22%3A%22other%22%7D",
        Some(("svc", &secret)),
    )
    .await;
    let token = body["access_token"].as_str().expect("t");
    let claims =
        verify_access(token, &app.jwks().await, &app.url(""), "jwks-server").expect("valid");
    assert_eq!(claims["roles"], json!(["a", "b"]));
    assert_eq!(claims["role"], "tester");
    assert_eq!(claims["tenant"], "other", "the request's claims come last");
    assert_eq!(claims["client_id"], "svc");
    for reserved in [
        "iss",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "sub",
        "scope",
    ] {
        let claims = form_urlencoded::byte_serialize(format!(r#"{{"{reserved}":1}}"#).as_bytes())
            .collect::<String>();
        let res = app
            .post_form(
                "/token",
                &format!("grant_type=client_credentials&client_id=x&claims={claims}"),
                None,
            )
            .await;
        assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let users = spawn_app_with(&["--auth", "users"]).await;
    let secret = users.add_client(spec("svc")).await;
    let res = users
        .post_form(
            "/token",
            "grant_type=client_credentials&claims=%7B%7D",
            Some(("svc", &secret)),
        )
        .await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_client_limited_to_one_grant_is_an_unauthorized_client_for_the_other() {
    let app = spawn_app_with(&[]).await;
    let secret = app
        .add_client(ClientSpec {
            grant_types: vec!["client_credentials".into()],
            ..spec("svc")
        })
        .await;
    let res = app
        .post_form(
            "/token",
            "grant_type=password&username=u&password=p",
            Some(("svc", &secret)),
        )
        .await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "unauthorized_client");
}

async fn register(app: &TestApp, username: &str) -> String {
    let res = app
        .send(
            hyper::Method::POST,
            "/register",
            &[("content-type", "application/json")],
            serde_json::to_vec(
                &json!({"username": username, "email": format!("{username}@example.com")}),
            )
            .expect("json"),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    res.json()["password"]
        .as_str()
        .expect("password")
        .to_owned()
}

#[tokio::test]
async fn the_password_grant_follows_the_auth_rules_and_writes_an_audit_row() {
    let app = spawn_app_with(&[]).await;
    let password = register(&app, "alice").await;
    let body = token_ok(
        &app,
        &format!(
            "grant_type=password&client_id=web&username=alice&password={password}&scope=profile"
        ),
        None,
    )
    .await;
    let claims = jwt_claims(body["access_token"].as_str().expect("t"));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "profile");
    let res = app
        .post_form(
            "/token",
            "grant_type=password&client_id=web&username=alice&password=wrong",
            None,
        )
        .await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_grant");
    // Open mode: an unregistered username gets a token, as at /auth.
    let body = token_ok(
        &app,
        "grant_type=password&client_id=web&username=bob&password=x",
        None,
    )
    .await;
    assert_eq!(
        jwt_claims(body["access_token"].as_str().expect("t"))["sub"],
        "bob"
    );
    // One audit row per successful authentication, as at /auth.
    let pool = app.sqlite_reader().await;
    let rows = auth_log_rows(&pool).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "127.0.0.1");
    assert!(rows[0].1.is_some() && rows[1].1.is_none());

    let users = spawn_app_with(&["--auth", "users"]).await;
    let secret = users.add_client(spec("web")).await;
    let res = users
        .post_form(
            "/token",
            "grant_type=password&username=nobody&password=x",
            Some(("web", &secret)),
        )
        .await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn the_token_endpoint_has_its_own_rate_limit_and_the_password_grant_obeys_the_auth_limit() {
    let app = spawn_app_with(&["--token-rate-limit", "2"]).await;
    for _ in 0..2 {
        token_ok(&app, "grant_type=client_credentials&client_id=x", None).await;
    }
    let res = app
        .post_form("/token", "grant_type=client_credentials&client_id=x", None)
        .await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(res.header("retry-after").is_some());
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        app.auth("").await.status,
        StatusCode::OK,
        "/auth has its own limiter"
    );

    let app = spawn_app_with(&["--auth-rate-limit", "1", "--token-rate-limit", "0"]).await;
    let body = "grant_type=password&client_id=x&username=u&password=p";
    token_ok(&app, body, None).await;
    let res = app.post_form("/token", body, None).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    token_ok(&app, "grant_type=client_credentials&client_id=x", None).await;
}

#[tokio::test]
async fn auth_also_answers_the_token_as_access_token() {
    let app = spawn_app_with(&[]).await;
    let body = app.auth("").await.json();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_i64());
}

/// The `password` grant's username limit counts characters, as at `/auth` and as
/// `openapi.json`'s `maxLength` does: a username of 256 non-ASCII characters (512 bytes)
/// is accepted, one of 257 is `invalid_request`.
#[tokio::test]
async fn the_password_grant_limits_usernames_in_characters_not_bytes() {
    let app = spawn_app_with(&[]).await;
    let form = |name: &str| {
        let name: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
        format!("grant_type=password&client_id=web&username={name}&password=x")
    };
    let name = "ü".repeat(256);
    let body = token_ok(&app, &form(&name), None).await;
    let claims = jwt_claims(body["access_token"].as_str().expect("token"));
    assert_eq!(claims["sub"], name.as_str());
    let res = app.post_form("/token", &form(&"ü".repeat(257)), None).await;
    assert_oauth_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
    app.stop().await;
}
