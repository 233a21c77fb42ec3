//! Out of file descriptors (defect 4 of issue 14): the server warns about failed accepts
//! at most once a second, not every 50 ms, and serves again once descriptors free up.
//! The real binary runs with a low `RLIMIT_NOFILE` of its own.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{HttpClient, Server};

fn messages(server: &Server, message: &str) -> Vec<Value> {
    server
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|log| log["fields"]["message"] == message)
        .collect()
}

#[tokio::test]
async fn descriptor_exhaustion_logs_a_warning_a_second_and_recovers() {
    let args = [
        "--database",
        ":memory:",
        "--alg",
        "EdDSA",
        "--request-timeout",
        "60s",
    ];
    let server = Server::start_with_file_limit(64, &args, &[]).expect("starts");
    let addr = server.base.trim_start_matches("http://").to_owned();
    let client = HttpClient::default();
    assert_eq!(client.get(&format!("{}/healthz", server.base)).await.0, 200);

    // More idle connections than the server has descriptors: the kernel completes the
    // handshakes (the listen backlog), and the server's accept fails with EMFILE.
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connects"),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while messages(&server, "accept failed; retrying").is_empty() {
        assert!(Instant::now() < deadline, "accept never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let warnings = messages(&server, "accept failed; retrying");
    // Three seconds of retries every 50 ms: 60 lines before the fix, at most 5 now.
    assert!(
        (2..=5).contains(&warnings.len()),
        "{} warnings in about 3 s",
        warnings.len()
    );
    let suppressed: u64 = warnings
        .iter()
        .filter_map(|w| w["fields"]["suppressed"].as_u64())
        .sum();
    assert!(
        suppressed >= 20,
        "the left-out failures are counted: {suppressed}"
    );

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if client.get(&format!("{}/jwks", server.base)).await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while messages(&server, "accepting connections again").is_empty() {
        assert!(Instant::now() < deadline, "recovery was not logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(messages(&server, "accepting connections again").len(), 1);
}
