//! Settings, validated once and nested by concern. Everything that tunes the server is
//! validated here and nowhere else, from the flags `cli` parsed (clap reads the `JWKS_*`
//! environment); nothing here reads the environment itself. Secrets are held in
//! redacting wrappers.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::cli::{AuthModeArg, ServeArgs};
use crate::keys::Lifecycle;
use crate::secret::Secret;
use crate::telemetry::LogFormat;
use crate::users::AuthMode;

mod database_url;
pub use database_url::DatabaseUrl;

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest request head (request line and headers) accepted (bytes).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 64;
/// How long shutdown waits for in-flight requests before giving up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest clock-skew allowance accepted.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// An invalid combination of settings. The binary exits with status 2.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A setting is out of range or contradicts another.
    #[error("{0}")]
    Invalid(String),
}

/// Where the server listens and how it treats connections.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Longest time a request may take to arrive.
    pub request_timeout: Duration,
}

/// The certificate and key files of HTTPS (`--tls-cert`, `--tls-key`); read by `tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// PEM private key of the leaf.
    pub key: std::path::PathBuf,
}

/// What issued tokens look like.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss`; `None` means `http://<host>:<bound port>` (`https://` with TLS).
    pub issuer: Option<String>,
    /// `aud`, if any.
    pub audience: Option<String>,
    /// Lifetime of a token.
    pub ttl: Duration,
}

/// Users, authentication and rate limits.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Who may get a token.
    pub mode: AuthMode,
    /// `POST /auth` requests per client IP per rolling second; 0 is off.
    pub auth_rate_limit: u32,
    /// `POST /register` requests per client IP per rolling second; 0 is off.
    pub register_rate_limit: u32,
    /// Whether `X-Forwarded-For` names the client.
    pub trust_proxy: bool,
}

/// Most client IPs a rate limiter tracks at once.
pub const RATE_LIMIT_MAX_CLIENTS: usize = 65_536;
/// The rolling window of the rate limits.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(1);

/// Where keys are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSettings {
    /// Keys live in process memory only.
    Memory,
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database shared by replicas (`postgres://...`).
    Postgres(DatabaseUrl),
}

/// Where the master key that seals private keys comes from, in order of precedence.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `--master-key` / `JWKS_MASTER_KEY`: base64 of 32 bytes.
    Base64(Secret),
    /// `--master-passphrase` / `NOT_MY_KEY`: any string, stretched with HKDF-SHA256.
    Passphrase(Secret),
    /// `--master-key-file`: a file holding base64 of 32 bytes.
    File(std::path::PathBuf),
    /// None given: a key file beside a SQLite database, created on its first start.
    BesideDatabase,
}

impl MasterKeySource {
    /// The first source given, in the order of the variants; an empty key or passphrase
    /// counts as unset. Reads only `args` (clap has already read the environment).
    #[must_use]
    pub fn from_args(args: &ServeArgs) -> Self {
        let given = |secret: &Option<Secret>| {
            secret
                .as_ref()
                .filter(|secret| !secret.expose().is_empty())
                .cloned()
        };
        if let Some(key) = given(&args.master_key) {
            Self::Base64(key)
        } else if let Some(phrase) = given(&args.master_passphrase) {
            Self::Passphrase(phrase)
        } else if let Some(path) = &args.master_key_file {
            Self::File(path.clone())
        } else {
            Self::BesideDatabase
        }
    }
}

/// All settings of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listening.
    pub http: HttpSettings,
    /// Key lifecycle.
    pub keys: Lifecycle,
    /// Tokens.
    pub token: TokenSettings,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Key storage.
    pub database: DatabaseSettings,
    /// Users and rate limits.
    pub auth: AuthSettings,
    /// Where the master key comes from.
    pub master_key: MasterKeySource,
    /// The operators' listener.
    pub admin: AdminSettings,
    /// The OAuth 2.0 token endpoint.
    pub oauth: OAuthSettings,
    /// HTTPS instead of HTTP, when both files are given.
    pub tls: Option<TlsSettings>,
}

/// The admin listener: `/metrics` and the `/admin` API, off unless a port is given.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Where it listens; `None`: no admin listener.
    pub addr: Option<SocketAddr>,
    /// Where the admin API's bearer token comes from; `None`: every admin request is 401.
    pub token: Option<AdminTokenSource>,
}

/// Where the admin API's bearer token comes from.
#[derive(Debug, Clone)]
pub enum AdminTokenSource {
    /// `JWKS_ADMIN_TOKEN` or `--admin-token`.
    Value(Secret),
    /// `--admin-token-file`: read at start-up.
    File(std::path::PathBuf),
}

/// The OAuth 2.0 endpoints: `POST /token` and interactive sign-in.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// `POST /token` requests per client IP per rolling second; 0 is off.
    pub token_rate_limit: u32,
    /// How long a sign-in session lasts.
    pub session_ttl: Duration,
    /// `/authorize` requests per client IP per rolling second; 0 is off.
    pub authorize_rate_limit: u32,
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

impl Settings {
    /// Validates parsed flags. Pure: reads only `args`, never the environment.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with a one-line reason.
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        if args.token_ttl < Duration::from_secs(1) || args.token_ttl.subsec_nanos() != 0 {
            return Err(invalid(
                "--token-ttl must be a whole number of seconds, at least 1s",
            ));
        }
        if args.rotation_interval < Duration::from_millis(100) {
            return Err(invalid("--rotation-interval must be at least 100ms"));
        }
        if args.jwks_max_age.subsec_nanos() != 0 {
            return Err(invalid("--jwks-max-age must be a whole number of seconds"));
        }
        if args.jwks_max_age > args.publish_ahead {
            return Err(invalid(format!(
                "--jwks-max-age ({}) must not exceed --publish-ahead ({}): clients caching the JWKS would miss the next key",
                format_duration(args.jwks_max_age),
                format_duration(args.publish_ahead)
            )));
        }
        if args.clock_skew > MAX_CLOCK_SKEW {
            return Err(invalid("--clock-skew must be at most 60s"));
        }
        if args.session_ttl < Duration::from_secs(1) {
            return Err(invalid("--session-ttl must be at least 1s"));
        }
        if args.request_timeout.is_zero() {
            return Err(invalid("--request-timeout must be greater than zero"));
        }
        if args.issuer.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("--issuer must not be empty"));
        }
        let database = match args.database.as_str() {
            "" => return Err(invalid("--database must not be empty")),
            ":memory:" => DatabaseSettings::Memory,
            url if DatabaseUrl::is_postgres(url) => {
                DatabaseSettings::Postgres(DatabaseUrl::new(url.to_owned()))
            }
            path => DatabaseSettings::Sqlite(path.into()),
        };
        if matches!(database, DatabaseSettings::Postgres(_))
            && args.publish_ahead < crate::keys::SHARED_POLL + Duration::from_millis(500)
        {
            return Err(invalid(
                "with PostgreSQL, --publish-ahead must be at least 1500ms: replicas learn of a new key within 1s",
            ));
        }
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSettings {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => return Err(invalid("--tls-cert and --tls-key must be given together")),
        };
        Ok(Self {
            tls,
            http: HttpSettings {
                addr: SocketAddr::new(args.host, args.port),
                request_timeout: args.request_timeout,
            },
            keys: Lifecycle {
                alg: args.alg.0,
                rotation_interval: args.rotation_interval,
                publish_ahead: args.publish_ahead,
                token_ttl: args.token_ttl,
                clock_skew: args.clock_skew,
            },
            token: TokenSettings {
                issuer: args.issuer.clone(),
                audience: args.audience.clone(),
                ttl: args.token_ttl,
            },
            jwks_max_age: args.jwks_max_age,
            log_format: args.log_format,
            database,
            master_key: MasterKeySource::from_args(args),
            admin: AdminSettings {
                addr: args
                    .admin_port
                    .map(|port| SocketAddr::new(args.admin_host, port)),
                token: match (&args.admin_token, &args.admin_token_file) {
                    (Some(token), _) if !token.expose().is_empty() => {
                        Some(AdminTokenSource::Value(token.clone()))
                    }
                    (_, Some(path)) => Some(AdminTokenSource::File(path.clone())),
                    _ => None,
                },
            },
            auth: AuthSettings {
                mode: match args.auth {
                    AuthModeArg::Open => AuthMode::Open,
                    AuthModeArg::Users => AuthMode::Users,
                },
                auth_rate_limit: args.auth_rate_limit,
                register_rate_limit: args.register_rate_limit,
                trust_proxy: args.trust_proxy,
            },
            oauth: OAuthSettings {
                token_rate_limit: args.token_rate_limit,
                session_ttl: args.session_ttl,
                authorize_rate_limit: args.authorize_rate_limit,
            },
        })
    }

    /// The issuer for a server bound to `addr`: `https://` when it serves TLS.
    #[must_use]
    pub fn issuer_for(&self, addr: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.token.issuer.clone().unwrap_or_else(|| {
            let host = match addr.ip() {
                ip if ip.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
                ip => ip,
            };
            format!("{scheme}://{}", SocketAddr::new(host, addr.port()))
        })
    }
}

fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;
    use crate::cli::Cli;
    use crate::keys::Algorithm;

    /// Parses `args` (after the program name) from the command line alone.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut argv = vec!["jwks-server"];
        argv.extend_from_slice(args);
        Cli::try_parse_without_env(argv)
    }

    fn settings(args: &[&str]) -> Result<Settings, ConfigError> {
        Settings::from_args(&parse(args).expect("parses").serve)
    }

    /// Every environment variable `command` or its subcommands read.
    fn env_names(command: &clap::Command) -> Vec<String> {
        command
            .get_arguments()
            .filter_map(clap::Arg::get_env)
            .map(|name| name.to_string_lossy().into_owned())
            .chain(command.get_subcommands().flat_map(env_names))
            .collect()
    }

    /// Which source, and what it holds (test values only).
    fn describe(source: &MasterKeySource) -> String {
        match source {
            MasterKeySource::Base64(key) => format!("key {}", key.expose()),
            MasterKeySource::Passphrase(phrase) => format!("passphrase {}", phrase.expose()),
            MasterKeySource::File(path) => format!("file {}", path.display()),
            MasterKeySource::BesideDatabase => "beside the database".into(),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = settings(&[]).expect("valid");
        assert_eq!(s.http.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(s.keys.alg, Algorithm::Rs256);
        assert_eq!(s.keys.rotation_interval, Duration::from_secs(3600));
        assert_eq!(s.keys.publish_ahead, Duration::from_secs(900));
        assert_eq!(s.token.ttl, Duration::from_secs(900));
        assert_eq!(s.jwks_max_age, Duration::from_secs(300));
        assert_eq!(s.database, DatabaseSettings::Sqlite("jwks.db".into()));
        assert_eq!(
            s.issuer_for("127.0.0.1:8080".parse().expect("addr")),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            s.issuer_for("0.0.0.0:9".parse().expect("addr")),
            "http://127.0.0.1:9"
        );
    }

    #[test]
    fn contradictions_are_rejected_with_a_reason() {
        let err = settings(&["--jwks-max-age", "20m"]).expect_err("max-age > publish-ahead");
        assert!(err.to_string().contains("--publish-ahead"));
        assert!(settings(&["--token-ttl", "500ms"]).is_err());
        assert!(settings(&["--token-ttl", "1500ms"]).is_err());
        assert!(settings(&["--clock-skew", "2m"]).is_err());
        assert!(settings(&["--rotation-interval", "10ms"]).is_err());
        assert!(settings(&["--jwks-max-age", "1500ms"]).is_err());
        assert!(settings(&["--request-timeout", "0s"]).is_err());
        assert!(settings(&["--issuer", ""]).is_err());
        assert!(settings(&["--database", ""]).is_err());
        assert_eq!(
            settings(&["--database", ":memory:"])
                .expect("valid")
                .database,
            DatabaseSettings::Memory
        );
        assert_eq!(
            settings(&["--alg", "EdDSA", "--issuer", "x"])
                .expect("valid")
                .keys
                .alg,
            Algorithm::EdDsa
        );
        assert!(parse(&["--alg", "HS256"]).is_err());
        assert!(parse(&["--token-ttl", "soon"]).is_err());
    }

    #[test]
    fn tls_needs_both_files_and_makes_the_default_issuer_https() {
        let s = settings(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).expect("valid");
        assert_eq!(
            s.tls,
            Some(TlsSettings {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(
            s.issuer_for("0.0.0.0:8443".parse().expect("addr")),
            "https://127.0.0.1:8443"
        );
        for half in [["--tls-cert", "c.pem"], ["--tls-key", "k.pem"]] {
            let err = settings(&half).expect_err("one file alone");
            assert!(err.to_string().contains("together"), "{err}");
        }
    }

    #[test]
    fn settings_never_show_the_master_key_in_debug_output() {
        let mut s = settings(&[]).expect("valid");
        for source in [
            MasterKeySource::Base64(Secret::new(
                "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGhlLXRlc3Q=".into(),
            )),
            MasterKeySource::Passphrase(Secret::new(
                "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGhlLXRlc3Q=".into(),
            )),
        ] {
            s.master_key = source;
            let shown = format!("{s:?} {s:#?}");
            assert!(!shown.contains("c2VjcmV0"), "{shown}");
            assert!(shown.contains("<redacted>"));
        }
    }

    #[test]
    fn the_test_command_reads_no_environment_variable() {
        let real = env_names(&Cli::command());
        for name in [
            "JWKS_PORT",
            "JWKS_DATABASE",
            "JWKS_MASTER_KEY",
            "NOT_MY_KEY",
            "JWKS_MASTER_KEY_FILE",
            "JWKS_NEW_MASTER_KEY_FILE",
        ] {
            assert!(real.iter().any(|n| n == name), "the CLI lacks {name}");
        }
        assert_eq!(env_names(&Cli::command_without_env()), Vec::<String>::new());
    }

    #[test]
    fn a_master_key_given_on_the_command_line_is_used_and_never_shown() {
        let key = "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGhlLXRlc3Q=";
        let cli = parse(&["--master-key", key]).expect("parses");
        assert!(!format!("{cli:?}").contains(key));
        let s = Settings::from_args(&cli.serve).expect("valid");
        assert_eq!(describe(&s.master_key), format!("key {key}"));
        let s = settings(&["--master-passphrase", "a long phrase"]).expect("valid");
        assert_eq!(describe(&s.master_key), "passphrase a long phrase");
    }

    #[test]
    fn master_key_sources_follow_the_documented_precedence() {
        let key = ["--master-key", "a2V5"];
        let phrase = ["--master-passphrase", "phrase"];
        let file = ["--master-key-file", "master.key"];
        let no_key = ["--master-key", ""];
        let no_phrase = ["--master-passphrase", ""];
        for (args, expected) in [
            ([&key[..], &phrase, &file].concat(), "key a2V5"),
            ([&phrase[..], &key, &file].concat(), "key a2V5"),
            ([&phrase[..], &file].concat(), "passphrase phrase"),
            ([&no_key[..], &phrase, &file].concat(), "passphrase phrase"),
            ([&no_key[..], &no_phrase, &file].concat(), "file master.key"),
            (file.to_vec(), "file master.key"),
            ([&no_key[..], &no_phrase].concat(), "beside the database"),
            (vec![], "beside the database"),
        ] {
            let s = settings(&args).expect("valid");
            assert_eq!(describe(&s.master_key), expected, "{args:?}");
        }
    }

    #[test]
    fn database_urls_that_differ_only_in_the_password_are_not_equal() {
        let url = |password| {
            settings(&["--database", &format!("postgres://app:{password}@db/keys")])
                .expect("valid")
                .database
        };
        assert_eq!(url("one"), url("one"));
        assert_ne!(url("one"), url("two"));
        assert_eq!(format!("{:?}", url("one")), format!("{:?}", url("two")));
    }
}
