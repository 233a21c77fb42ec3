//! The real `jwks-server` binary as a child process, and a minimal HTTP client for it.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A master key for child processes (base64 of bytes 0..32).
pub const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A running server process; killed when dropped.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub base: String,
    /// Every stderr line so far (JSON logs).
    pub logs: Arc<Mutex<Vec<String>>>,
}

/// How a server process that never started listening ended.
#[derive(Debug)]
pub struct Exited {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary with `args` (plus `--port 0` and JSON logs) and `envs`, and
    /// waits until it listens, or until it exits.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Result<Self, Exited> {
        Self::start_command(Command::new(env!("CARGO_BIN_EXE_jwks-server")), args, envs)
    }

    /// Like [`Server::start`], with at most `files` open file descriptors
    /// (`RLIMIT_NOFILE`, for this process only).
    pub fn start_with_file_limit(
        files: u32,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Self, Exited> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_jwks-server"));
        Self::start_command(command, args, envs)
    }

    /// The lines of the log so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("lock").clone()
    }

    fn start_command(
        mut command: Command,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Self, Exited> {
        command
            .args(["--port", "0", "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "info");
        for var in [
            "JWKS_MASTER_KEY",
            "NOT_MY_KEY",
            "JWKS_DATABASE",
            "JWKS_MASTER_KEY_FILE",
        ] {
            command.env_remove(var);
        }
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(log) = serde_json::from_str::<Value>(&line)
                    && log["fields"]["message"] == "listening"
                {
                    let _ = tx.send(Some(
                        log["fields"]["addr"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                }
                seen.lock().expect("lock").push(line);
            }
            let _ = tx.send(None);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(addr)) => Ok(Self {
                child,
                base: format!("http://{addr}"),
                logs: lines,
            }),
            _ => {
                let code = child.wait().ok().and_then(|s| s.code());
                let stderr = lines.lock().expect("lock").join("\n");
                Err(Exited { code, stderr })
            }
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "clean exit after SIGTERM: {status}");
    }

    /// `kill -9`.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client.
pub struct HttpClient(Hyper<HttpConnector, Empty<Bytes>>);

impl Default for HttpClient {
    fn default() -> Self {
        Self(Hyper::builder(TokioExecutor::new()).build_http())
    }
}

impl HttpClient {
    async fn send(&self, method: hyper::Method, url: &str) -> (u16, String) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(url)
            .body(Empty::new())
            .expect("request");
        match self.0.request(req).await {
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
            Err(_) => (0, String::new()),
        }
    }

    /// `GET url`: status (0 when unreachable) and body.
    pub async fn get(&self, url: &str) -> (u16, String) {
        self.send(hyper::Method::GET, url).await
    }

    /// `POST url` without a body.
    pub async fn post(&self, url: &str) -> (u16, String) {
        self.send(hyper::Method::POST, url).await
    }

    /// The token from `POST {base}/auth{query}`.
    pub async fn token(&self, base: &str, query: &str) -> String {
        let (status, body) = self.post(&format!("{base}/auth{query}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("json")["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}
