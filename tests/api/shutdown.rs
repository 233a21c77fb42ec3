//! Graceful shutdown: requests in flight when the server is told to stop still get
//! their answers, and every audit row they waited for is committed.

use std::sync::Arc;
use std::time::Duration;

use jwks_server::app::Application;
use jwks_server::keys::SystemClock;
use jwks_server::store::MemoryStore;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::settings;

#[tokio::test]
async fn stopping_drains_in_flight_requests_and_flushes_their_audit_rows() {
    let store = Arc::new(MemoryStore::default());
    let app = Application::build_with(
        settings(&["--alg", "EdDSA"]),
        store.clone(),
        Arc::new(SystemClock),
    )
    .await
    .expect("app builds");
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    // Sixteen requests whose bodies are only half sent when the stop comes.
    let mut streams = Vec::new();
    for i in 0..16 {
        let body = format!(r#"{{"username":"user{i}"}}"#);
        let head = format!(
            "POST /auth HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("head");
        stream
            .write_all(&body.as_bytes()[..5])
            .await
            .expect("half a body");
        streams.push((stream, body));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).expect("server is running");
    tokio::time::sleep(Duration::from_millis(100)).await;

    for (stream, body) in &mut streams {
        stream
            .write_all(&body.as_bytes()[5..])
            .await
            .expect("rest of the body");
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
            .await
            .expect("answered before the drain deadline")
            .expect("read");
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .expect("joins");
    assert_eq!(
        store.logins().len(),
        16,
        "every answered request has its committed row"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
