//! Flag values: durations (`parse_duration`), the master key (`MasterKey::from_base64`)
//! and whole command lines through clap and `Settings::from_args` (addresses, algorithms,
//! database URLs, the rules between flags). Input: NUL-separated arguments. Properties:
//! nothing panics; a parsed duration reads back the same in milliseconds (or seconds); what a
//! database URL shows does not depend on its password.
#![no_main]

use jwks_server::cli::{Cli, parse_duration};
use jwks_server::config::{DatabaseSettings, DatabaseUrl, Settings};
use jwks_server::keys::MasterKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<&str> = text.split('\0').collect();
    if let Some(first) = args.first() {
        if let Ok(duration) = parse_duration(first) {
            // Whole seconds past u64::MAX milliseconds only read back in seconds.
            let shown = match u64::try_from(duration.as_millis()) {
                Ok(ms) => format!("{ms}ms"),
                Err(_) => format!("{}s", duration.as_secs()),
            };
            assert_eq!(parse_duration(&shown), Ok(duration), "{first}");
        }
        let _ = MasterKey::from_base64(first);
    }
    let argv = std::iter::once("jwks-server").chain(args.iter().copied());
    if let Ok(cli) = Cli::try_parse_without_env(argv)
        && let Ok(settings) = Settings::from_args(&cli.serve)
    {
        let _ = format!("{settings:?}");
        if let DatabaseSettings::Postgres(url) = &settings.database {
            assert_redacted(url.expose());
        }
    }
    if let Some(first) = args.first() {
        assert_redacted(first);
    }
});

/// What a URL shows does not depend on the password of `scheme://user:password@host`.
fn assert_redacted(url: &str) {
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    let Some(scheme_end) = base.find("://").map(|i| i + 3) else {
        return;
    };
    let Some(at) = base.rfind('@').filter(|&at| at >= scheme_end) else {
        return;
    };
    let Some(colon) = base[scheme_end..at].find(':').map(|i| scheme_end + i) else {
        return;
    };
    let other = format!(
        "{}{}{}",
        &url[..=colon],
        "x".repeat(at - colon - 1),
        &url[at..]
    );
    assert_eq!(
        DatabaseUrl::new(url.to_owned()).to_string(),
        DatabaseUrl::new(other).to_string(),
        "the password shows"
    );
}
