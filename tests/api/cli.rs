//! The binary's command line: invalid settings exit 2 with a one-line reason.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jwks-server"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs")
}

#[test]
fn invalid_settings_exit_2_with_a_one_line_reason() {
    for args in [
        &["--jwks-max-age", "20m"][..],
        &["--token-ttl", "0s"],
        &["--clock-skew", "5m"],
        &["--alg", "HS256"],
        &["--port", "99999"],
        &["--rotation-interval", "soon"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr
                .lines()
                .next()
                .is_some_and(|l| l.starts_with("error")),
            "{args:?}: {stderr}"
        );
    }
    let out = run(&["--jwks-max-age", "20m"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}

#[test]
fn help_shows_each_default() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for default in [
        "[default: 127.0.0.1]",
        "[default: 8080]",
        "[default: RS256]",
        "[default: 15m]",
        "[default: 1h]",
        "[default: 5m]",
        "[env: JWKS_PORT=",
    ] {
        assert!(help.contains(default), "--help lacks {default}");
    }
}
