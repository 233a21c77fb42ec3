//! The command line: flags for the server (each with a `JWKS_*` environment variable)
//! and the subcommands. Parsing only; [`crate::config`] validates and turns the result
//! into [`crate::config::Settings`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::parse_duration;
use crate::keys::Algorithm;

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
    /// Register a client and print its generated secret (shown this once).
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
        /// A redirect URI (repeatable; kept for interactive sign-in).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A grant type the client may use: `client_credentials` or `password`
        /// (repeatable); without any, both.
        #[arg(long = "grant-type", value_name = "G")]
        grant_types: Vec<String>,
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
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
    // --- the issuer surface (issue 11) ---
    /// Most `POST /token` requests per client IP in any rolling second; 0 turns it off.
    #[arg(long, env = "JWKS_TOKEN_RATE_LIMIT", default_value_t = 50)]
    pub token_rate_limit: u32,
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
