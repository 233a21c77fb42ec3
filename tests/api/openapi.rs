//! The OpenAPI document (`openapi.json`) against the router: the same paths and methods
//! as `http::ROUTES` (from which the router is built), served byte for byte at
//! `GET /openapi.json` with a strong ETag. What the document says of each response is
//! checked by schemathesis against a live server (`tests/contract/run.sh`).

use std::collections::BTreeSet;

use hyper::{Method, StatusCode};
use jwks_server::http::{OPENAPI_JSON, ROUTES};
use serde_json::Value;

use crate::helpers::spawn_app;

/// The method keys of an OpenAPI path item (OpenAPI 3.1 §4.8.9).
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item is an object");
            item.keys()
                .filter(|key| METHODS.contains(&key.as_str()))
                .map(|method| (path.clone(), method.to_ascii_uppercase()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_document_lists_exactly_the_routes_the_router_serves() {
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|route| {
            route
                .methods()
                .map(|m| (route.path.to_owned(), m.to_owned()))
        })
        .collect();
    let documented = documented_operations(&document());
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in openapi.json: {undocumented:?}; in openapi.json but not routed: {unrouted:?}"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_an_operation_id_and_responses_everywhere() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1."), "{version}");
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.contains_key("431"),
                "{method} {path}: any request can answer 431"
            );
        }
    }
}

#[tokio::test]
async fn the_served_document_is_the_file_with_a_strong_etag() {
    let app = spawn_app().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.header("cache-control"), Some("no-cache"));
    let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json at the repository root");
    assert_eq!(res.body.as_ref(), file.as_slice());
    let served: Value = res.json();
    assert!(
        served["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1."))
    );

    // RFC 9110 §8.8.3: a strong tag is a quoted string without the `W/` prefix.
    let etag = res.header("etag").expect("ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    let again = app.get("/openapi.json").await;
    assert_eq!(
        again.header("etag"),
        Some(etag.as_str()),
        "stable across requests"
    );

    // RFC 9110 §13.1.2: a matching If-None-Match answers 304 with the tag, no body.
    for candidate in [etag.clone(), format!("W/{etag}"), "*".to_owned()] {
        let res = app
            .send(
                Method::GET,
                "/openapi.json",
                &[("if-none-match", &candidate)],
                "",
            )
            .await;
        assert_eq!(res.status, StatusCode::NOT_MODIFIED, "{candidate}");
        assert_eq!(res.header("etag"), Some(etag.as_str()));
        assert!(res.body.is_empty());
    }
    let stale = app
        .send(
            Method::GET,
            "/openapi.json",
            &[("if-none-match", "\"other\"")],
            "",
        )
        .await;
    assert_eq!(stale.status, StatusCode::OK);

    let head = app.send(Method::HEAD, "/openapi.json", &[], "").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert!(head.body.is_empty());

    let post = app.send(Method::POST, "/openapi.json", &[], "").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    app.stop().await;
}
