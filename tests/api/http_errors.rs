//! Every error answers `{"error", "error_description"}` with the right status.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestResponse, spawn_app};

fn assert_error(res: &TestResponse, status: StatusCode, code: &str) {
    assert_eq!(res.status, status, "{:?}", res.body);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    assert_eq!(body["error"], code);
    assert!(
        !body["error_description"]
            .as_str()
            .expect("description")
            .is_empty()
    );
}

#[tokio::test]
async fn wrong_methods_answer_405_with_allow() {
    let app = spawn_app().await;
    for method in [
        Method::GET,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
    ] {
        let res = app.send(method.clone(), "/auth", &[], "").await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(res.header("allow"), Some("POST"));
        if method != Method::HEAD {
            assert_error(&res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        }
    }
    for path in ["/.well-known/jwks.json", "/jwks"] {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let res = app.send(method.clone(), path, &[], "").await;
            assert_error(&res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            assert_eq!(
                res.header("allow"),
                Some("GET, HEAD, OPTIONS"),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_paths_answer_404() {
    let app = spawn_app().await;
    assert_error(&app.get("/nope").await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &app.send(Method::POST, "/auth/extra", &[], "").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn a_bad_expired_value_answers_the_documented_400() {
    let app = spawn_app().await;
    let res = app.auth("?expired=yes").await;
    assert_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(
        res.json(),
        json!({"error": "invalid_request", "error_description": "Invalid 'expired' query parameter. Must be 'true' or 'false'."})
    );
}

#[tokio::test]
async fn malformed_or_mistyped_bodies_answer_400_not_422() {
    let app = spawn_app().await;
    let json = [("content-type", "application/json")];
    for body in [
        r#"{"username": "#,
        r#"{"username": 5}"#,
        r#"["a"]"#,
        r#""text""#,
        r#"{"username": ""}"#,
    ] {
        let res = app.send(Method::POST, "/auth", &json, body).await;
        assert_error(&res, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let basic = [("authorization", "Basic not-base64!")];
    assert_error(
        &app.send(Method::POST, "/auth", &basic, "").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

#[tokio::test]
async fn unsupported_content_types_answer_415() {
    let app = spawn_app().await;
    let res = app
        .send(
            Method::POST,
            "/auth",
            &[("content-type", "text/plain")],
            "username=a",
        )
        .await;
    assert_error(
        &res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn oversized_bodies_answer_413() {
    let app = spawn_app().await;
    let big = format!(r#"{{"username": "{}"}}"#, "a".repeat(20 * 1024));
    let res = app
        .send(
            Method::POST,
            "/auth",
            &[("content-type", "application/json")],
            big,
        )
        .await;
    assert_error(&res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let app = spawn_app().await;
    let huge = "a".repeat(20 * 1024);
    let res = app
        .send(Method::GET, "/jwks", &[("x-filler", &huge)], "")
        .await;
    assert_eq!(res.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn a_body_that_never_arrives_times_out() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = crate::helpers::spawn_app_with(&["--request-timeout", "300ms"]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = "POST /auth HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await;
    assert!(read.is_ok(), "server answered or closed within the timeout");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"));
}
