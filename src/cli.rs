//! The command line: flags for the server (each with a `JWKS_*` environment variable, but
//! `NOT_MY_KEY` for the passphrase; secret values are hidden from `--help`)
//! and the subcommands, and the parsing of their values (durations among them). Parsing
//! only: `config` validates the result and builds `Settings` from it; this module knows
//! nothing of `config`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::keys::Algorithm;
use crate::secret::Secret;
use crate::telemetry::LogFormat;

/// A JWKS server: owns signing keys, rotates them, publishes the JWK Set and issues JWTs.
#[derive(Debug, Parser)]
#[command(name = "jwks-server", version, about)]
pub struct Cli {
    /// What to do; without a subcommand the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// Parses `argv` (program name first) from the command line alone: every argument's
    /// environment variable is ignored. For tests, whose results must not depend on
    /// `JWKS_*` variables set in the caller's shell.
    ///
    /// # Errors
    /// The [`clap::Error`] a bad command line gives.
    pub fn try_parse_without_env<I, T>(argv: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command_without_env().try_get_matches_from(argv)?;
        <Self as clap::FromArgMatches>::from_arg_matches(&matches)
    }

    /// The command with every environment lookup switched off, subcommands included.
    #[must_use]
    pub fn command_without_env() -> clap::Command {
        fn without_env(command: clap::Command) -> clap::Command {
            command
                .mut_args(|arg| arg.env(None))
                .mut_subcommands(without_env)
        }
        without_env(<Self as clap::CommandFactory>::command())
    }
}

/// Subcommands besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage stored keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Check a live JWKS server for conformance (discovery, JWKS, caching, tokens) and
    /// print PASS, WARN or FAIL per check. Exit status: 0 without a FAIL, 1 with one,
    /// 2 for a bad URL or an unreachable server. Opens no database, writes no file.
    Selftest {
        /// The server's `http://` URL (its issuer) [default: http://<host>:<port> from
        /// the server's own settings; a wildcard host means 127.0.0.1].
        url: Option<String>,
    },
    /// Manage the OAuth 2.0 clients of `POST /token`; works while servers run (they see
    /// a change within 2 seconds).
    Clients {
        /// What to do.
        #[command(subcommand)]
        action: ClientsCommand,
    },
}

/// `jwks-server clients ...`
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client and print its generated secret (shown this once; a public
    /// client has none).
    Add {
        /// The client id (visible ASCII, no spaces).
        id: String,
        /// A scope the client may ask for (repeatable; space-separated lists too).
        /// Without any, the client may ask for none.
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// `aud` of its tokens when a request names none.
        #[arg(long, value_name = "A")]
        audience: Option<String>,
        /// A claim added to each of its tokens, `NAME=JSON` (repeatable), e.g.
        /// `--claim tenant='"acme"'` or `--claim roles='["a","b"]'`.
        #[arg(long = "claim", value_name = "NAME=JSON")]
        claims: Vec<String>,
        /// A redirect URI of the authorization code flow, matched exactly (repeatable).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Where `/logout` may send the browser afterwards, matched exactly (repeatable).
        #[arg(long = "post-logout-redirect-uri", value_name = "URI")]
        post_logout_redirect_uris: Vec<String>,
        /// A grant type the client may use: `client_credentials`, `password` or
        /// `authorization_code` (repeatable); without any, all of them (a public client:
        /// `authorization_code`).
        #[arg(long = "grant-type", value_name = "G")]
        grant_types: Vec<String>,
        /// A public client (a browser or mobile app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// The name the sign-in page shows (default: the id).
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
    },
    /// List the registered clients (never their secrets).
    List,
    /// Remove a client; its tokens stay valid until they expire.
    Remove {
        /// The client id.
        id: String,
    },
}

/// `jwks-server keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-seal every stored private key under a new master key, in one transaction.
    /// Afterwards start the server with the new key only.
    Rewrap {
        /// File holding the new master key (base64 of 32 bytes); create one with
        /// `head -c 32 /dev/urandom | base64 > new.key`.
        #[arg(long, env = "JWKS_NEW_MASTER_KEY_FILE")]
        new_master_key_file: PathBuf,
    },
    /// List every key: kid, algorithm, state and each instant of its schedule (never
    /// private material; opens no private key). Works while a server runs.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Plan a new key now: published at once, signing after --publish-ahead. Works while
    /// servers run: they pick it up within a second.
    Rotate {
        /// The new key signs at once (verifiers that cached the JWKS reject its tokens
        /// until they fetch it again).
        #[arg(long)]
        immediate: bool,
    },
    /// Revoke a key for good (a leaked key): it leaves the JWKS of every server within a
    /// second; if it was signing, a fresh key signs at once.
    Revoke {
        /// The key's kid (see `keys list`). A kid is base64url and may start with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Why, kept with the key.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// Who may get a token at `/auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthModeArg {
    /// Anyone gets a token; a registered username needs its password.
    Open,
    /// Only registered users with the right password get a token.
    Users,
}

/// Every flag of the server. Durations take `300ms`, `30s`, `15m`, `1h` or `1d`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "JWKS_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "JWKS_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Algorithm of newly generated keys: RS256 (RSA-2048), ES256 (P-256) or EdDSA (Ed25519).
    #[arg(long, env = "JWKS_ALG", value_enum, default_value = "RS256")]
    pub alg: AlgorithmArg,
    /// Lifetime of issued tokens (whole seconds, at least 1s).
    #[arg(long, env = "JWKS_TOKEN_TTL", default_value = "15m", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// How long each key signs before the next one takes over.
    #[arg(long, env = "JWKS_ROTATION_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub rotation_interval: Duration,
    /// How long a new key is published before it signs (at least --jwks-max-age).
    #[arg(long, env = "JWKS_PUBLISH_AHEAD", default_value = "15m", value_parser = parse_duration)]
    pub publish_ahead: Duration,
    /// `Cache-Control: max-age` of the JWKS (whole seconds).
    #[arg(long, env = "JWKS_JWKS_MAX_AGE", default_value = "5m", value_parser = parse_duration)]
    pub jwks_max_age: Duration,
    /// Allowance for verifiers whose clocks run behind (at most 60s): keys stay
    /// published this long after their last token expires.
    #[arg(long, env = "JWKS_CLOCK_SKEW", default_value = "30s", value_parser = parse_duration)]
    pub clock_skew: Duration,
    /// `iss` claim of issued tokens [default: http://<host>:<port>]
    #[arg(long, env = "JWKS_ISSUER")]
    pub issuer: Option<String>,
    /// `aud` claim of issued tokens; omitted when unset.
    #[arg(long, env = "JWKS_AUDIENCE")]
    pub audience: Option<String>,
    /// Longest time a request may take to arrive (headers and body).
    #[arg(long, env = "JWKS_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Who may get a token: `open` (anyone; registered names need their password) or
    /// `users` (registered users only).
    #[arg(long, env = "JWKS_AUTH", value_enum, default_value_t = AuthModeArg::Open)]
    pub auth: AuthModeArg,
    /// Most `POST /auth` requests per client IP in any rolling second; 0 turns it off.
    #[arg(long, env = "JWKS_AUTH_RATE_LIMIT", default_value_t = 10)]
    pub auth_rate_limit: u32,
    /// Most `POST /register` requests per client IP in any rolling second; 0 turns it off.
    #[arg(long, env = "JWKS_REGISTER_RATE_LIMIT", default_value_t = 5)]
    pub register_rate_limit: u32,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy you trust).
    #[arg(long, env = "JWKS_TRUST_PROXY")]
    pub trust_proxy: bool,
    /// Log format.
    #[arg(long, env = "JWKS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Key database: a SQLite file path, or `:memory:` to keep keys in memory only.
    #[arg(long, env = "JWKS_DATABASE", default_value = "jwks.db")]
    pub database: String,
    /// File holding the base64 master key that seals private keys at rest.
    #[arg(long, env = "JWKS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Master key that seals private keys at rest: base64 of 32 bytes. Prefer the
    /// environment variable: a flag's value is visible in the process list.
    ///
    /// First match wins: JWKS_MASTER_KEY (or this flag), then NOT_MY_KEY (or
    /// --master-passphrase), then --master-key-file, else a key file beside the SQLite
    /// database. An empty value counts as unset.
    #[arg(
        long,
        env = "JWKS_MASTER_KEY",
        hide_env_values = true,
        value_name = "BASE64",
        value_parser = parse_secret
    )]
    pub master_key: Option<Secret>,
    /// Passphrase the master key is derived from: any string, stretched with HKDF-SHA256.
    /// Prefer the environment variable: a flag's value is visible in the process list.
    ///
    /// Use a long random string. First match wins: JWKS_MASTER_KEY (or --master-key),
    /// then NOT_MY_KEY (or this flag), then --master-key-file, else a key file beside
    /// the SQLite database. An empty value counts as unset.
    #[arg(
        long,
        env = "NOT_MY_KEY",
        hide_env_values = true,
        value_name = "PASSPHRASE",
        value_parser = parse_secret
    )]
    pub master_passphrase: Option<Secret>,
    /// Port of the admin listener (`GET /metrics`, the `/admin` API); off unless set.
    #[arg(long, env = "JWKS_ADMIN_PORT")]
    pub admin_port: Option<u16>,
    /// Address of the admin listener.
    #[arg(long, env = "JWKS_ADMIN_HOST", default_value = "127.0.0.1")]
    pub admin_host: IpAddr,
    /// Bearer token of the admin API. Prefer the environment variable or
    /// --admin-token-file: a flag's value is visible in the process list. Without a token
    /// the admin API answers 401 to everything (`/metrics` needs none).
    #[arg(
        long,
        env = "JWKS_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = parse_secret
    )]
    pub admin_token: Option<Secret>,
    /// File holding the admin API's bearer token (used when JWKS_ADMIN_TOKEN is unset).
    #[arg(long, env = "JWKS_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    // --- the issuer surface (issue 11) ---
    /// Most `POST /token` requests per client IP in any rolling second; 0 turns it off.
    #[arg(long, env = "JWKS_TOKEN_RATE_LIMIT", default_value_t = 50)]
    pub token_rate_limit: u32,
    // --- interactive sign-in (issue 12) ---
    /// How long a sign-in session lasts: within it, `/authorize` skips the sign-in page
    /// (unless `prompt=login` or `max_age` asks otherwise).
    #[arg(long, env = "JWKS_SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// Most `GET`/`POST /authorize` requests per client IP in any rolling second; 0 turns
    /// it off. Each sign-in page shown stores a pending request for 10 minutes: this
    /// bounds how many one address can store.
    #[arg(long, env = "JWKS_AUTHORIZE_RATE_LIMIT", default_value_t = 20)]
    pub authorize_rate_limit: u32,
    /// PEM file with the TLS certificate chain, leaf first; with --tls-key, the server
    /// speaks HTTPS only. Reloaded on SIGHUP and when the file changes.
    #[arg(long, env = "JWKS_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "JWKS_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

/// `--alg` as clap sees it; a thin wrapper so clap can list the choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmArg(pub Algorithm);

impl clap::ValueEnum for AlgorithmArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Self(Algorithm::Rs256),
            Self(Algorithm::Es256),
            Self(Algorithm::EdDsa),
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.as_str()))
    }
}

/// Wraps a secret flag's value at once, so that no `Debug` of the parsed flags shows it.
fn parse_secret(text: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(text.to_owned()))
}

/// Parses `300ms`, `30s`, `15m`, `1h`, `1d` (a bare number is seconds).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let bad = || format!("invalid duration '{text}' (use e.g. 300ms, 30s, 15m, 1h, 1d)");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = |mul: u64| n.checked_mul(mul).map(Duration::from_secs).ok_or_else(bad);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3_600),
        "d" => secs(86_400),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn a_kid_that_starts_with_a_hyphen_is_a_kid_not_a_flag() {
        let cli =
            Cli::try_parse_without_env(["jwks-server", "keys", "revoke", "-Yq3x", "--reason", "r"])
                .expect("parses");
        match cli.command {
            Some(Command::Keys {
                action: KeysCommand::Revoke { kid, reason },
            }) => assert_eq!((kid.as_str(), reason.as_str()), ("-Yq3x", "r")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn help_never_shows_the_value_of_a_secret_flag() {
        let command = Cli::command();
        for (flag, env) in [
            ("master-key", "JWKS_MASTER_KEY"),
            ("master-passphrase", "NOT_MY_KEY"),
        ] {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(flag))
                .expect("the flag exists");
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new(env)), "{flag}");
            assert!(arg.is_hide_env_values_set(), "{flag}");
            assert!(!arg.is_hide_set(), "--help lists {flag}");
        }
    }

    #[test]
    fn durations_parse_in_each_unit() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "ms", "1.5h", "-1s", "10x", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
