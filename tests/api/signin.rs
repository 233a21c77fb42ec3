//! Interactive sign-in over real HTTP: the authorization endpoint (OpenID Connect Core
//! §3.1.2, RFC 6749 §4.1), the sign-in page, sessions, codes with PKCE (RFC 7636), ID
//! tokens, `/userinfo` and RP-initiated logout. A small cookie jar plays the browser.

use std::collections::HashMap;

use aws_lc_rs::digest::{SHA256, SHA512, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::{Method, StatusCode};
use jwks_server::clients::ClientSpec;
use jwks_server::keys::ManualClock;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestResponse, auth_log_rows, jwt_claims, jwt_header, spawn_app_with,
    spawn_app_with_clock, verify,
};

/// The redirect URI of the test clients (nothing listens there: the tests read
/// `Location`).
pub const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// A cookie jar: what a browser keeps between requests to the server.
#[derive(Debug, Default, Clone)]
pub struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The value of a cookie the server set.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn absorb(&mut self, res: &TestResponse) {
        for value in res.headers.get_all("set-cookie") {
            let text = value.to_str().expect("ascii cookie");
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(n, _)| n != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// A GET with this browser's cookies.
    pub async fn get(&mut self, app: &TestApp, path: &str) -> TestResponse {
        let cookie = self.header();
        let res = app
            .send(Method::GET, path, &[("cookie", cookie.as_str())], "")
            .await;
        self.absorb(&res);
        res
    }

    /// A form POST with this browser's cookies.
    pub async fn post(&mut self, app: &TestApp, path: &str, body: &str) -> TestResponse {
        let cookie = self.header();
        let res = app
            .send(
                Method::POST,
                path,
                &[
                    ("cookie", cookie.as_str()),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                body.to_owned(),
            )
            .await;
        self.absorb(&res);
        res
    }
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("rng");
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `/authorize?...` for `client` with PKCE, `state=st`, `nonce=nn` and `extra`.
pub fn authorize_path(client: &str, pkce: &Pkce, extra: &str) -> String {
    format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile%20email\
         &state=st&nonce=nn&code_challenge={}&code_challenge_method=S256{extra}",
        enc(client),
        enc(CALLBACK),
        pkce.challenge
    )
}

/// The value of hidden field `name` of the sign-in page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    html[start..].split('"').next().expect("value").to_owned()
}

/// The query parameters of a redirect's `Location`.
pub fn redirect_params(res: &TestResponse) -> HashMap<String, String> {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{:?}", res.body);
    let location = res.header("location").expect("a Location");
    let query = location.split_once('?').expect("a query").1;
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn html(res: &TestResponse) -> String {
    String::from_utf8(res.body.to_vec()).expect("utf-8 page")
}

/// Fills in and submits the sign-in page `page` shows.
pub async fn submit(
    browser: &mut Browser,
    app: &TestApp,
    page: &TestResponse,
    fields: &str,
) -> TestResponse {
    let html = html(page);
    let body = format!(
        "request={}&csrf={}&{fields}",
        hidden(&html, "request"),
        hidden(&html, "csrf")
    );
    browser.post(app, "/signin", &body).await
}

/// Exchanges a code at `/token`.
pub async fn redeem(
    app: &TestApp,
    client: &str,
    code: &str,
    verifier: &str,
    basic: Option<(&str, &str)>,
) -> TestResponse {
    let mut body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={verifier}",
        enc(code),
        enc(CALLBACK)
    );
    if basic.is_none() {
        body.push_str(&format!("&client_id={}", enc(client)));
    }
    app.post_form("/token", &body, basic).await
}

/// The whole flow for `username`, returning the browser (now with a session) and the
/// token response.
pub async fn sign_in(app: &TestApp, client: &str, fields: &str) -> (Browser, Value) {
    let mut browser = Browser::default();
    let pkce = pkce();
    let page = browser.get(app, &authorize_path(client, &pkce, "")).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    let done = submit(&mut browser, app, &page, fields).await;
    let params = redirect_params(&done);
    let res = redeem(app, client, &params["code"], &pkce.verifier, None).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    (browser, res.json())
}

/// `GET /userinfo` with `access` as the Bearer token.
pub async fn userinfo(app: &TestApp, access: &str) -> TestResponse {
    let bearer = format!("Bearer {access}");
    app.send(
        Method::GET,
        "/userinfo",
        &[("authorization", bearer.as_str())],
        "",
    )
    .await
}

/// `POST /introspect` of `token` by the public client `client`: the answer's JSON.
pub async fn introspect(app: &TestApp, client: &str, token: &str) -> Value {
    let body = format!("client_id={client}&token={token}");
    app.post_form("/introspect", &body, None).await.json()
}

/// Verifies an ID token as a relying party does (OpenID Connect Core §3.1.3.7), with the
/// independent `jsonwebtoken` crate and only the JWKS: signature, `iss`, `aud`, `exp`.
pub fn verify_id_token(token: &str, jwks: &Value, issuer: &str, client: &str) -> Value {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    let header = decode_header(token).expect("a JWS header");
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("a JWK Set");
    let jwk = set
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid in the JWKS");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client]);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    decode::<Value>(
        token,
        &DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("the ID token verifies")
    .claims
}

async fn register(app: &TestApp, username: &str) -> String {
    let res = app
        .send(
            Method::POST,
            "/register",
            &[("content-type", "application/json")],
            json!({"username": username, "email": format!("{username}@example.com")}).to_string(),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{:?}", res.body);
    res.json()["password"]
        .as_str()
        .expect("password")
        .to_owned()
}

fn public_client(id: &str) -> ClientSpec {
    ClientSpec {
        id: id.into(),
        public: true,
        name: Some("Demo App".into()),
        redirect_uris: vec![CALLBACK.into()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:9/bye".into()],
        ..ClientSpec::default()
    }
}

#[tokio::test]
async fn a_registered_user_signs_in_to_a_public_client_with_pkce_and_gets_verified_tokens() {
    let app = spawn_app_with(&["--auth", "users", "--alg", "ES256"]).await;
    let password = register(&app, "alice").await;
    app.add_client(public_client("spa")).await;
    let mut browser = Browser::default();
    let p = pkce();
    let page = browser.get(&app, &authorize_path("spa", &p, "")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let text = html(&page);
    assert!(text.contains("Demo App"), "the client's name is shown");
    assert!(text.contains("<label for=\"username\">Username</label>"));
    assert!(text.contains("<label for=\"password\">Password</label>"));
    assert!(!text.contains("<script"), "usable without JavaScript");
    let binding = browser
        .cookie("jwks_browser")
        .expect("a browser cookie")
        .to_owned();

    // A wrong password: the page again, with the message, and no code.
    let wrong = submit(&mut browser, &app, &page, "username=alice&password=nope").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.header("location").is_none());
    assert!(
        html(&wrong).contains("<p class=\"error\" role=\"alert\">Wrong username or password.</p>")
    );
    assert!(browser.cookie("jwks_session").is_none());

    let done = submit(
        &mut browser,
        &app,
        &wrong,
        &format!("username=alice&password={password}"),
    )
    .await;
    let params = redirect_params(&done);
    assert_eq!(params["state"], "st");
    assert_eq!(params["iss"], app.url(""), "RFC 9207");
    assert!(
        done.header("location")
            .expect("location")
            .starts_with(CALLBACK)
    );
    let cookie = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .find(|v| v.starts_with("jwks_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    assert_eq!(browser.cookie("jwks_browser"), Some(binding.as_str()));

    let res = redeem(&app, "spa", &params["code"], &p.verifier, None).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    let tokens = res.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile email");
    let jwks = app.jwks().await;
    let id_token = tokens["id_token"].as_str().expect("an ID token");
    let claims = verify_id_token(id_token, &jwks, &app.url(""), "spa");
    assert_eq!(jwt_header(id_token)["typ"], "JWT");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "spa");
    assert_eq!(claims["nonce"], "nn");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], false);
    assert!(
        claims["auth_time"].as_i64().expect("auth_time") <= claims["iat"].as_i64().expect("iat")
    );
    let access = tokens["access_token"].as_str().expect("access token");
    let hash = digest(&SHA256, access.as_bytes());
    assert_eq!(
        claims["at_hash"],
        URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
    );
    let at = verify(access, &jwks, &app.url("")).expect("the access token verifies");
    assert_eq!(jwt_header(access)["typ"], "at+jwt");
    assert_eq!(
        (at["sub"].as_str(), at["client_id"].as_str()),
        (Some("alice"), Some("spa"))
    );

    // One audit row for the sign-in (not for the wrong password), as at /auth.
    let pool = app.sqlite_reader().await;
    let rows = auth_log_rows(&pool).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "127.0.0.1");
    assert!(rows[0].1.is_some());
    pool.close().await;

    // /userinfo with the access token.
    let info = userinfo(&app, access).await;
    assert_eq!(info.status, StatusCode::OK, "{:?}", info.body);
    assert_eq!(info.json()["sub"], "alice");
    assert_eq!(info.json()["email"], "alice@example.com");
    assert!(info.json().get("client_id").is_none());

    assert_eq!(introspect(&app, "spa", access).await["active"], true);

    // The same code twice: invalid_grant, and the access token it bought is revoked
    // (RFC 6749 §4.1.2) wherever this server is asked about it.
    let again = redeem(&app, "spa", &params["code"], &p.verifier, None).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");
    let info = userinfo(&app, access).await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED);
    assert_eq!(info.json()["error"], "invalid_token");
    assert_eq!(
        introspect(&app, "spa", access).await,
        json!({"active": false})
    );
    let third = redeem(&app, "spa", &params["code"], &p.verifier, None).await;
    assert_eq!(third.json()["error"], "invalid_grant");

    // The session: a later request skips the page, for any client, until prompt=login.
    let pkce2 = pkce();
    let skip = browser.get(&app, &authorize_path("spa", &pkce2, "")).await;
    let code = redirect_params(&skip)["code"].clone();
    let res = redeem(&app, "spa", &code, &pkce2.verifier, None).await;
    assert_eq!(
        jwt_claims(res.json()["id_token"].as_str().expect("id"))["auth_time"],
        claims["auth_time"]
    );
    let forced = browser
        .get(&app, &authorize_path("spa", &pkce2, "&prompt=login"))
        .await;
    assert_eq!(forced.status, StatusCode::OK, "prompt=login shows the page");
    let hinted = browser
        .get(
            &app,
            &authorize_path("spa", &pkce2, "&prompt=login&login_hint=alice"),
        )
        .await;
    assert!(
        html(&hinted).contains("value=\"alice\""),
        "login_hint fills the username"
    );
    // Another browser has no session: prompt=none is login_required.
    let mut stranger = Browser::default();
    let none = stranger
        .get(&app, &authorize_path("spa", &pkce2, "&prompt=none"))
        .await;
    let params = redirect_params(&none);
    assert_eq!(
        (params["error"].as_str(), params["state"].as_str()),
        ("login_required", "st")
    );
    let none = browser
        .get(&app, &authorize_path("spa", &pkce2, "&prompt=none"))
        .await;
    assert!(redirect_params(&none).contains_key("code"));
    app.stop().await;
}

#[tokio::test]
async fn max_age_asks_again_once_the_sign_in_is_older() {
    let clock = ManualClock::new(1_800_000_000_000);
    let app = spawn_app_with_clock(&["--alg", "EdDSA"], clock.clone()).await;
    let (mut browser, tokens) = sign_in(&app, "tester", "username=bob").await;
    // EdDSA: at_hash is the left half of SHA-512.
    let access = tokens["access_token"].as_str().expect("access");
    let claims = jwt_claims(tokens["id_token"].as_str().expect("id"));
    let hash = digest(&SHA512, access.as_bytes());
    assert_eq!(
        claims["at_hash"],
        URL_SAFE_NO_PAD.encode(&hash.as_ref()[..32])
    );
    clock.advance(std::time::Duration::from_secs(30));
    let p = pkce();
    let fresh = browser
        .get(&app, &authorize_path("tester", &p, "&max_age=60"))
        .await;
    assert!(
        redirect_params(&fresh).contains_key("code"),
        "30 s old is within max_age=60"
    );
    let stale = browser
        .get(&app, &authorize_path("tester", &p, "&max_age=10"))
        .await;
    assert_eq!(
        stale.status,
        StatusCode::OK,
        "30 s old is past max_age=10: the page again"
    );
    let none = browser
        .get(
            &app,
            &authorize_path("tester", &p, "&max_age=10&prompt=none"),
        )
        .await;
    assert_eq!(redirect_params(&none)["error"], "login_required");
    // Codes live 60 s.
    let page = browser
        .get(&app, &authorize_path("tester", &p, "&prompt=login"))
        .await;
    let done = submit(&mut browser, &app, &page, "username=bob").await;
    let code = redirect_params(&done)["code"].clone();
    clock.advance(std::time::Duration::from_secs(61));
    let late = redeem(&app, "tester", &code, &p.verifier, None).await;
    assert_eq!(late.json()["error"], "invalid_grant");
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_client_or_a_foreign_redirect_uri_is_shown_and_never_redirected_to() {
    let app = spawn_app_with(&["--auth", "users"]).await;
    app.add_client(public_client("spa")).await;
    let p = pkce();
    let evil = enc("https://evil.example/cb");
    for path in [
        // Unknown in users mode.
        authorize_path("nobody", &p, ""),
        // Not the registered URI (exact match: a trailing slash differs).
        format!("/authorize?response_type=code&client_id=spa&redirect_uri={evil}&state=s"),
        format!(
            "/authorize?response_type=code&client_id=spa&redirect_uri={}&state=s",
            enc(&format!("{CALLBACK}/"))
        ),
        // No client at all, or the redirect URI twice.
        format!(
            "/authorize?response_type=code&redirect_uri={}",
            enc(CALLBACK)
        ),
        format!("{}&redirect_uri={evil}", authorize_path("spa", &p, "")),
    ] {
        let res = app.get(&path).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(res.header("location").is_none(), "{path}");
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(html(&res).contains("role=\"alert\""), "{path}");
    }
    app.stop().await;
    // Open mode: any http(s) URI for an unregistered client, nothing else.
    let app = spawn_app_with(&[]).await;
    for uri in ["javascript:alert(1)", "http://a/#frag", "/relative"] {
        let path = format!(
            "/authorize?response_type=code&client_id=x&redirect_uri={}",
            enc(uri)
        );
        let res = app.get(&path).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(res.header("location").is_none());
    }
    let ok = format!(
        "/authorize?response_type=code&client_id=x&redirect_uri={}",
        enc("https://any.example/cb?keep=1")
    );
    assert_eq!(app.get(&ok).await.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn every_other_error_goes_back_to_the_redirect_uri_with_state_and_iss() {
    let app = spawn_app_with(&["--auth", "users"]).await;
    app.add_client(public_client("spa")).await;
    app.add_client(ClientSpec {
        id: "svc".into(),
        redirect_uris: vec![CALLBACK.into()],
        grant_types: vec!["client_credentials".into()],
        ..ClientSpec::default()
    })
    .await;
    app.add_client(ClientSpec {
        id: "web".into(),
        redirect_uris: vec![CALLBACK.into()],
        scopes: vec!["read".into()],
        ..ClientSpec::default()
    })
    .await;
    let p = pkce();
    let base = |client: &str| {
        format!(
            "/authorize?client_id={client}&redirect_uri={}&state=st",
            enc(CALLBACK)
        )
    };
    let challenge = format!("&code_challenge={}&code_challenge_method=S256", p.challenge);
    let cases = [
        (format!("{}{challenge}", base("spa")), "invalid_request"), // no response_type
        (
            format!("{}&response_type=token{challenge}", base("spa")),
            "unsupported_response_type",
        ),
        (
            format!("{}&response_type=code", base("spa")),
            "invalid_request",
        ), // public, no PKCE
        (
            format!(
                "{}&response_type=code&code_challenge={}&code_challenge_method=plain",
                base("spa"),
                p.verifier
            ),
            "invalid_request",
        ),
        (
            format!(
                "{}&response_type=code&code_challenge={}",
                base("spa"),
                p.verifier
            ),
            "invalid_request",
        ), // implied plain
        (
            format!(
                "{}&response_type=code&code_challenge=short&code_challenge_method=S256",
                base("spa")
            ),
            "invalid_request",
        ),
        (
            format!(
                "{}&response_type=code&code_challenge_method=S256",
                base("spa")
            ),
            "invalid_request",
        ),
        (
            format!(
                "{}&response_type=code{challenge}&scope=openid%20admin",
                base("web")
            ),
            "invalid_scope",
        ),
        (
            format!("{}&response_type=code{challenge}&scope=a%22b", base("spa")),
            "invalid_scope",
        ),
        (
            format!("{}&response_type=code", base("svc")),
            "unauthorized_client",
        ),
        (
            format!("{}&response_type=code{challenge}&request=eyJ", base("spa")),
            "request_not_supported",
        ),
        (
            format!(
                "{}&response_type=code{challenge}&request_uri=https://x",
                base("spa")
            ),
            "request_uri_not_supported",
        ),
        (
            format!("{}&response_type=code{challenge}&prompt=none", base("spa")),
            "login_required",
        ),
        (
            format!(
                "{}&response_type=code{challenge}&prompt=none%20login",
                base("spa")
            ),
            "invalid_request",
        ),
        (
            format!("{}&response_type=code{challenge}&prompt=bogus", base("spa")),
            "invalid_request",
        ),
        (
            format!("{}&response_type=code{challenge}&max_age=-1", base("spa")),
            "invalid_request",
        ),
        (
            format!(
                "{}&response_type=code{challenge}&response_mode=fragment",
                base("spa")
            ),
            "invalid_request",
        ),
        (
            format!(
                "{}&response_type=code{challenge}&scope=openid&scope=email",
                base("spa")
            ),
            "invalid_request",
        ),
    ];
    for (path, code) in cases {
        let res = app.get(&path).await;
        let params = redirect_params(&res);
        assert_eq!(
            params.get("error").map(String::as_str),
            Some(code),
            "{path}"
        );
        assert!(params.contains_key("error_description"), "{path}");
        assert_eq!(params["state"], "st", "{path}");
        assert_eq!(params["iss"], app.url(""), "{path}");
        assert!(
            res.header("location")
                .expect("location")
                .starts_with(CALLBACK)
        );
    }
    // The client's other scopes may be asked for, with OpenID Connect's.
    let ok = format!(
        "{}&response_type=code{challenge}&scope=openid%20read",
        base("web")
    );
    assert_eq!(app.get(&ok).await.status, StatusCode::OK);
    // POST /authorize takes the same parameters as a form (OpenID Connect Core §3.1.2.1).
    let form = ok.split_once('?').expect("query").1.to_owned();
    let mut browser = Browser::default();
    assert_eq!(
        browser.post(&app, "/authorize", &form).await.status,
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_redirect_uri_and_verifier_and_spent_by_any_attempt() {
    let app = spawn_app_with(&[]).await;
    let secret = app
        .add_client(ClientSpec {
            id: "web".into(),
            redirect_uris: vec![CALLBACK.into()],
            ..ClientSpec::default()
        })
        .await;
    let code_for = |p: Pkce| {
        let app = &app;
        async move {
            let mut browser = Browser::default();
            let page = browser.get(app, &authorize_path("web", &p, "")).await;
            let done = submit(&mut browser, app, &page, "username=carol").await;
            redirect_params(&done)["code"].clone()
        }
    };
    let p = pkce();
    // A confidential client must authenticate (RFC 6749 §4.1.3).
    let code = code_for(p.clone()).await;
    let res = redeem(&app, "web", &code, &p.verifier, None).await;
    assert_eq!(res.json()["error"], "invalid_client");
    // The wrong verifier spends the code: the right one cannot follow.
    let code = code_for(p.clone()).await;
    let res = redeem(&app, "web", &code, &pkce().verifier, Some(("web", &secret))).await;
    assert_eq!(res.json()["error"], "invalid_grant");
    let res = redeem(&app, "web", &code, &p.verifier, Some(("web", &secret))).await;
    assert_eq!(res.json()["error"], "invalid_grant");
    // No verifier for a challenged code.
    let code = code_for(p.clone()).await;
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        enc(CALLBACK)
    );
    let res = app.post_form("/token", &body, Some(("web", &secret))).await;
    assert_eq!(res.json()["error"], "invalid_grant");
    // Another client.
    let code = code_for(p.clone()).await;
    let res = redeem(&app, "other", &code, &p.verifier, None).await;
    assert_eq!(res.json()["error"], "invalid_grant");
    // Another redirect URI, or none when the request had one.
    let code = code_for(p.clone()).await;
    let body = format!(
        "grant_type=authorization_code&code={code}&code_verifier={}",
        p.verifier
    );
    let res = app.post_form("/token", &body, Some(("web", &secret))).await;
    assert_eq!(res.json()["error"], "invalid_grant");
    // A code that never was.
    let res = redeem(
        &app,
        "web",
        "x".repeat(43).as_str(),
        &p.verifier,
        Some(("web", &secret)),
    )
    .await;
    assert_eq!(res.json()["error"], "invalid_grant");
    // Done right.
    let code = code_for(p.clone()).await;
    let res = redeem(&app, "web", &code, &p.verifier, Some(("web", &secret))).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    assert_eq!(
        jwt_claims(res.json()["id_token"].as_str().expect("id"))["aud"],
        "web"
    );
    // A code without PKCE (allowed for a confidential client) takes no verifier.
    let mut browser = Browser::default();
    let path = format!(
        "/authorize?response_type=code&client_id=web&redirect_uri={}&scope=openid",
        enc(CALLBACK)
    );
    let page = browser.get(&app, &path).await;
    let done = submit(&mut browser, &app, &page, "username=carol").await;
    let code = redirect_params(&done)["code"].clone();
    let res = redeem(&app, "web", &code, &p.verifier, Some(("web", &secret))).await;
    assert_eq!(
        res.json()["error"],
        "invalid_grant",
        "a verifier without a challenge"
    );
    app.stop().await;
}

#[tokio::test]
async fn open_mode_signs_in_any_username_with_extra_claims_in_both_tokens() {
    let app = spawn_app_with(&[]).await;
    let mut browser = Browser::default();
    let p = pkce();
    let page = browser.get(&app, &authorize_path("anything", &p, "")).await;
    let text = html(&page);
    assert!(
        text.contains("<label for=\"claims\">"),
        "open mode offers extra claims"
    );
    for (claims, message) in [
        ("%5B1%5D", "must be a JSON object"),
        ("%7B%22sub%22%3A%22root%22%7D", "set by the server"),
        ("%7B%22nonce%22%3A1%7D", "set by the server"),
    ] {
        let res = submit(
            &mut browser,
            &app,
            &page,
            &format!("username=dave&claims={claims}"),
        )
        .await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(html(&res).contains(message), "{message}");
    }
    let empty = submit(&mut browser, &app, &page, "username=").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let claims = enc(r#"{"roles":["admin"],"tenant":"acme"}"#);
    let done = submit(
        &mut browser,
        &app,
        &page,
        &format!("username=dave&claims={claims}"),
    )
    .await;
    let code = redirect_params(&done)["code"].clone();
    let res = redeem(&app, "anything", &code, &p.verifier, None).await;
    let tokens = res.json();
    let id = jwt_claims(tokens["id_token"].as_str().expect("id"));
    assert_eq!(
        (
            id["sub"].as_str(),
            id["roles"][0].as_str(),
            id["tenant"].as_str()
        ),
        (Some("dave"), Some("admin"), Some("acme"))
    );
    let at = jwt_claims(tokens["access_token"].as_str().expect("at"));
    assert_eq!(at["roles"][0], "admin");
    assert_eq!(at["sub"], "dave");
    // A registered user's name still needs its password in open mode.
    let password = register(&app, "erin").await;
    let page = browser
        .get(&app, &authorize_path("anything", &p, "&prompt=login"))
        .await;
    let res = submit(&mut browser, &app, &page, "username=erin").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = submit(
        &mut browser,
        &app,
        &page,
        &format!("username=erin&password={password}"),
    )
    .await;
    assert!(redirect_params(&res).contains_key("code"));
    app.stop().await;
}

#[tokio::test]
async fn the_sign_in_form_is_accepted_only_from_its_browser_with_its_csrf_token_once() {
    let app = spawn_app_with(&[]).await;
    let p = pkce();
    let mut browser = Browser::default();
    let page = browser.get(&app, &authorize_path("x", &p, "")).await;
    let text = html(&page);
    let (request, csrf) = (hidden(&text, "request"), hidden(&text, "csrf"));
    let expired = |res: &TestResponse| {
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{:?}", res.body);
        assert!(res.header("location").is_none());
        assert!(html(res).contains("Sign-in expired"));
    };
    // Another browser (a cross-site POST carries no SameSite=Lax cookie either).
    let mut other = Browser::default();
    other.get(&app, &authorize_path("x", &p, "")).await;
    expired(
        &other
            .post(
                &app,
                "/signin",
                &format!("request={request}&csrf={csrf}&username=u"),
            )
            .await,
    );
    let mut bare = Browser::default();
    expired(
        &bare
            .post(
                &app,
                "/signin",
                &format!("request={request}&csrf={csrf}&username=u"),
            )
            .await,
    );
    // The right browser, a wrong or missing token.
    expired(
        &browser
            .post(
                &app,
                "/signin",
                &format!("request={request}&csrf={}&username=u", "A".repeat(43)),
            )
            .await,
    );
    expired(
        &browser
            .post(&app, "/signin", &format!("request={request}&username=u"))
            .await,
    );
    expired(&browser.post(&app, "/signin", "username=u").await);
    // Right: once. The same form again finds its request answered.
    let body = format!("request={request}&csrf={csrf}&username=u");
    assert!(redirect_params(&browser.post(&app, "/signin", &body).await).contains_key("code"));
    expired(&browser.post(&app, "/signin", &body).await);
    app.stop().await;
}

#[tokio::test]
async fn the_sign_in_form_obeys_the_auth_rate_limit() {
    let app = spawn_app_with(&["--auth", "users", "--auth-rate-limit", "2"]).await;
    let mut browser = Browser::default();
    let page = browser.get(&app, &authorize_path("x", &pkce(), "")).await;
    // In users mode an unregistered client is unknown: register one.
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    app.add_client(public_client("spa")).await;
    let page = browser.get(&app, &authorize_path("spa", &pkce(), "")).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(submit(&mut browser, &app, &page, "username=a&password=b").await);
    }
    let limited = statuses.last().expect("four");
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    assert!(html(limited).contains("Too many attempts"));
    app.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_and_redirects_only_to_a_registered_uri_with_state() {
    let app = spawn_app_with(&["--auth", "users"]).await;
    let password = register(&app, "frank").await;
    app.add_client(public_client("spa")).await;
    let (mut browser, tokens) =
        sign_in(&app, "spa", &format!("username=frank&password={password}")).await;
    let hint = tokens["id_token"].as_str().expect("id").to_owned();
    // A URI that is not registered, a hint that is not ours, a client that disagrees.
    for path in [
        format!(
            "/logout?client_id=spa&post_logout_redirect_uri={}",
            enc("https://evil.example/")
        ),
        format!(
            "/logout?post_logout_redirect_uri={}",
            enc("http://127.0.0.1:9/bye")
        ),
        "/logout?id_token_hint=not.a.token".to_owned(),
        format!("/logout?id_token_hint={hint}&client_id=other"),
    ] {
        let res = browser.get(&app, &path).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(res.header("location").is_none(), "{path}");
    }
    assert!(
        browser.cookie("jwks_session").is_some(),
        "a refused logout changes nothing"
    );
    // HEAD is safe: it ends nothing.
    let head = app
        .send(
            Method::HEAD,
            "/logout",
            &[(
                "cookie",
                format!(
                    "jwks_session={}",
                    browser.cookie("jwks_session").expect("s")
                )
                .as_str(),
            )],
            "",
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.header("set-cookie").is_none());
    // An access token is no id_token_hint.
    let res = browser
        .get(
            &app,
            &format!(
                "/logout?id_token_hint={}",
                tokens["access_token"].as_str().expect("at")
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let session = browser.cookie("jwks_session").expect("session").to_owned();
    let res = browser
        .get(
            &app,
            &format!(
                "/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye",
                enc("http://127.0.0.1:9/bye")
            ),
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        res.header("location"),
        Some("http://127.0.0.1:9/bye?state=bye")
    );
    assert!(
        browser.cookie("jwks_session").is_none(),
        "the cookie is cleared"
    );
    // The session is gone on the server too, not just the cookie.
    let stale = app
        .send(
            Method::GET,
            &authorize_path("spa", &pkce(), "&prompt=none"),
            &[("cookie", format!("jwks_session={session}").as_str())],
            "",
        )
        .await;
    assert_eq!(redirect_params(&stale)["error"], "login_required");
    // Without a redirect: the signed-out page.
    let res = browser.get(&app, "/logout").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(html(&res).contains("Signed out"));
    app.stop().await;
}

#[tokio::test]
async fn userinfo_answers_an_openid_access_token_and_challenges_everything_else() {
    let app = spawn_app_with(&[]).await;
    let (_, tokens) = sign_in(&app, "x", "username=gina").await;
    let access = tokens["access_token"].as_str().expect("at").to_owned();
    let get = |auth: Option<String>| {
        let app = &app;
        async move {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            app.send(Method::GET, "/userinfo", &headers, "").await
        }
    };
    // RFC 6750 §3.1: no token, no error code; a bad token, invalid_token.
    let res = get(None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.header("www-authenticate"),
        Some("Bearer realm=\"jwks-server\"")
    );
    for bad in [
        "Bearer nonsense".to_owned(),
        format!("Bearer {}", tokens["id_token"].as_str().expect("id")),
    ] {
        let res = get(Some(bad)).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert!(
            res.header("www-authenticate")
                .expect("challenge")
                .contains("error=\"invalid_token\"")
        );
    }
    // A token without openid (client_credentials): insufficient_scope.
    let cc = app
        .post_form(
            "/token",
            "grant_type=client_credentials&client_id=svc",
            None,
        )
        .await;
    let res = get(Some(format!(
        "Bearer {}",
        cc.json()["access_token"].as_str().expect("at")
    )))
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(
        res.header("www-authenticate")
            .expect("challenge")
            .contains("insufficient_scope")
    );
    let res = get(Some(format!("bearer {access}"))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["sub"], "gina");
    assert_eq!(res.json()["preferred_username"], "gina");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    // RFC 6750 §2.2: in a form body; not twice.
    let res = app
        .post_form("/userinfo", &format!("access_token={access}"), None)
        .await;
    assert_eq!(res.json()["sub"], "gina");
    let bearer = format!("Bearer {access}");
    let res = app
        .send(
            Method::POST,
            "/userinfo",
            &[
                ("authorization", bearer.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            format!("access_token={access}"),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    // CORS for browser apps: /userinfo and /token.
    for path in ["/userinfo", "/token"] {
        let res = app
            .send(
                Method::OPTIONS,
                path,
                &[
                    ("origin", "http://app.example"),
                    ("access-control-request-headers", "authorization"),
                ],
                "",
            )
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(res.header("access-control-allow-origin"), Some("*"));
        assert!(
            res.header("access-control-allow-headers")
                .expect("headers")
                .contains("authorization")
        );
    }
    app.stop().await;
}

/// The rows of `signin_state` (pending requests, sessions, codes) in the app's database.
async fn stored_signin_rows(app: &TestApp) -> i64 {
    let pool = app.sqlite_reader().await;
    let rows = sqlx::query_scalar("SELECT COUNT(*) FROM signin_state")
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    rows
}

#[tokio::test]
async fn head_of_authorize_answers_the_page_headers_and_stores_nothing() {
    let app = spawn_app_with(&[]).await;
    let path = authorize_path("spa-test", &pkce(), "");
    let head = app.send(Method::HEAD, &path, &[], "").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(head.header("content-security-policy").is_some());
    assert!(head.header("set-cookie").is_none());
    assert_eq!(stored_signin_rows(&app).await, 0);
    // HEAD validates as GET does: a bad request is refused the same way.
    let bad = app
        .send(Method::HEAD, "/authorize?client_id=x", &[], "")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // GET shows the page and stores its pending request.
    let (mut browser, _) = sign_in(&app, "spa-test", "username=erin").await;
    let signed_in = stored_signin_rows(&app).await;
    assert!(signed_in >= 1, "the session is stored");
    // With a session, GET would issue a code at once; HEAD issues none.
    let cookie = format!(
        "jwks_session={}",
        browser.cookie("jwks_session").expect("session")
    );
    let head = app
        .send(Method::HEAD, &path, &[("cookie", cookie.as_str())], "")
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.header("location").is_none());
    assert_eq!(stored_signin_rows(&app).await, signed_in);
    let get = browser.get(&app, &path).await;
    assert!(redirect_params(&get).contains_key("code"));
    assert_eq!(stored_signin_rows(&app).await, signed_in + 1);
    app.stop().await;
}

#[tokio::test]
async fn authorize_has_its_own_rate_limit_counted_in_metrics() {
    let app = spawn_app_with(&["--authorize-rate-limit", "2", "--admin-port", "0"]).await;
    let path = authorize_path("spa-test", &pkce(), "");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.get(&path).await);
    }
    assert_eq!(statuses[0].status, StatusCode::OK);
    let limited = statuses.last().expect("three");
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    assert!(html(limited).contains("Too many sign-in requests"));
    // Refused before anything is stored: two pages, two pending requests.
    assert_eq!(stored_signin_rows(&app).await, 2);
    let metrics = app.admin_send(Method::GET, "/metrics", &[], "").await;
    let text = String::from_utf8(metrics.body.to_vec()).expect("utf-8");
    assert!(
        text.lines()
            .any(|l| l == r#"jwks_rate_limited_requests_total{route="/authorize"} 1"#),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_sign_in_form_is_answered_413_as_a_page() {
    let app = spawn_app_with(&[]).await;
    let big = format!("username={}", "a".repeat(70_000));
    for path in ["/signin", "/authorize", "/logout"] {
        let res = app
            .send(
                Method::POST,
                path,
                &[("content-type", "application/x-www-form-urlencoded")],
                big.clone(),
            )
            .await;
        assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(html(&res).contains("Invalid request"), "{path}");
    }
    app.stop().await;
}
