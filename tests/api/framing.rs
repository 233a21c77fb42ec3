//! Request smuggling (RFC 9112 §6.1, §6.3): a request framed by both `Content-Length`
//! and `Transfer-Encoding` is answered 400 and its connection closed. Over a raw socket,
//! since an HTTP client library would not send such a request.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::spawn_app;

/// Sends `request` and reads until the server closes the connection.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .expect("reads");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn content_length_with_transfer_encoding_answers_400_and_closes_the_connection() {
    let app = spawn_app().await;
    let pipelined = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for head in [
        "POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "POST /auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "GET /jwks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    ] {
        // A smuggled second request follows the body; it must never be answered.
        let answer = exchange(app.addr, &format!("{head}\r\n0\r\n\r\n{pipelined}")).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{head}: {answer}");
        assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    }
    // A body framed by Content-Length alone is served, on a connection kept open.
    let body = "username=a";
    let answer = exchange(
        app.addr,
        &format!(
            "POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            body.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200 ").count(), 2, "{answer}");
}
