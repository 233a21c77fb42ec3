//! Discovery (OIDC Discovery §4, RFC 8414 §3) and CORS on the public documents.

use hyper::{Method, StatusCode};
use jwks_server::clients::ClientSpec;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn both_well_known_documents_name_the_issuer_and_endpoints_that_work() {
    let app = spawn_app_with(&["--alg", "ES256"]).await;
    let issuer = app.url("");
    let doc = app.discovery().await;
    let oauth = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(oauth.status, StatusCode::OK);
    assert_eq!(oauth.json(), doc, "one document");
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{issuer}/introspect")
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["client_credentials", "password", "authorization_code"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    // OpenID Connect Discovery §3 and RFC 8414 §2: the interactive sign-in surface.
    assert_eq!(doc["authorization_endpoint"], format!("{issuer}/authorize"));
    assert_eq!(doc["userinfo_endpoint"], format!("{issuer}/userinfo"));
    assert_eq!(doc["end_session_endpoint"], format!("{issuer}/logout"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["response_modes_supported"],
        serde_json::json!(["query"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["request_uri_parameter_supported"], false);
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["openid", "profile", "email"])
    );
    for claim in ["sub", "auth_time", "nonce", "preferred_username", "email"] {
        assert!(
            doc["claims_supported"]
                .as_array()
                .expect("list")
                .contains(&serde_json::json!(claim)),
            "{claim}"
        );
    }
    // Every advertised endpoint answers.
    let path = |url: &serde_json::Value| {
        url.as_str()
            .expect("url")
            .strip_prefix(&issuer)
            .expect("under the issuer")
            .to_owned()
    };
    assert_eq!(
        app.get(&path(&doc["jwks_uri"])).await.status,
        StatusCode::OK
    );
    let res = app
        .post_form(
            &path(&doc["token_endpoint"]),
            "grant_type=client_credentials&client_id=x",
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let token = res.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let res = app
        .post_form(
            &path(&doc["introspection_endpoint"]),
            &format!("token={token}"),
            Some(("x", "")),
        )
        .await;
    assert_eq!(res.json()["active"], true);
}

#[tokio::test]
async fn the_document_is_cached_with_a_strong_etag_and_follows_registered_scopes() {
    let app = spawn_app_with(&[]).await;
    let res = app.get("/.well-known/openid-configuration").await;
    let etag = res.header("etag").expect("etag").to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    assert_eq!(res.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(res.header("content-type"), Some("application/json"));
    let again = app.get("/.well-known/openid-configuration").await;
    assert_eq!(again.body, res.body, "serialized once, byte-identical");
    let cached = app
        .send(
            Method::GET,
            "/.well-known/openid-configuration",
            &[("if-none-match", &etag)],
            "",
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    let head = app
        .send(
            Method::HEAD,
            "/.well-known/oauth-authorization-server",
            &[],
            "",
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    app.add_client(ClientSpec {
        id: "svc".into(),
        scopes: vec!["write read".into()],
        ..ClientSpec::default()
    })
    .await;
    let res = app.get("/.well-known/openid-configuration").await;
    assert_eq!(
        res.json()["scopes_supported"],
        serde_json::json!(["openid", "profile", "email", "read", "write"])
    );
    assert_ne!(res.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn the_issuer_is_exactly_the_flag_never_the_host_header_and_its_path_is_served() {
    let issuer = "https://id.example.test/tenant/";
    let app = spawn_app_with(&["--issuer", issuer]).await;
    let res = app
        .send(
            Method::GET,
            "/.well-known/openid-configuration",
            &[("host", "evil.example")],
            "",
        )
        .await;
    let doc = res.json();
    assert_eq!(doc["issuer"], issuer, "no slash added or dropped");
    assert_eq!(
        doc["token_endpoint"],
        "https://id.example.test/tenant/token"
    );
    assert_eq!(
        doc["jwks_uri"],
        "https://id.example.test/tenant/.well-known/jwks.json"
    );
    // OIDC Discovery §4 appends, RFC 8414 §3 inserts.
    for path in [
        "/tenant/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/tenant",
        "/.well-known/oauth-authorization-server/tenant/",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(res.json(), doc, "{path}");
    }
    assert_eq!(
        app.get("/tenant/.well-known/jwks.json").await.status,
        StatusCode::OK
    );
    let res = app
        .post_form(
            "/tenant/token",
            "grant_type=client_credentials&client_id=x",
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let claims = crate::helpers::jwt_claims(res.json()["access_token"].as_str().expect("t"));
    assert_eq!(claims["iss"], issuer);
}

#[tokio::test]
async fn public_documents_answer_cors_requests_and_preflights_from_any_origin() {
    let app = spawn_app_with(&[]).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
        "/jwks",
    ] {
        // GET of the JWKS is answered by the fast path in front of the router.
        let res = app
            .send(Method::GET, path, &[("origin", "https://app.example")], "")
            .await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(
            res.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        let pre = app
            .send(
                Method::OPTIONS,
                path,
                &[
                    ("origin", "https://app.example"),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "if-none-match"),
                ],
                "",
            )
            .await;
        assert_eq!(pre.status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
        assert!(
            pre.header("access-control-allow-methods")
                .expect("methods")
                .contains("GET")
        );
        assert_eq!(pre.header("access-control-allow-headers"), Some("*"));
    }
    let res = app.send(Method::HEAD, "/jwks", &[], "").await;
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn a_wildcard_host_without_issuer_and_open_mode_off_loopback_are_logged_at_start_up() {
    let warnings = |args: &[&str]| {
        let server = crate::process::Server::start(args, &[]).expect("starts");
        let logs = server.logs.lock().expect("lock").clone();
        let warnings: Vec<serde_json::Value> = logs
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["level"] == "WARN")
            .collect();
        drop(server);
        warnings
    };
    let logged = warnings(&["--host", "0.0.0.0", "--database", ":memory:"]);
    let text: Vec<&str> = logged
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(
        text.iter().any(|m| m.contains("the issuer")
            && m.contains("http://127.0.0.1:")
            && m.contains("--issuer")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("--auth open on a non-loopback address")),
        "{text:?}"
    );
    let quiet = warnings(&[
        "--host",
        "0.0.0.0",
        "--issuer",
        "https://id.example",
        "--auth",
        "users",
        "--database",
        ":memory:",
    ]);
    assert!(quiet.is_empty(), "{quiet:?}");
}
