//! Prometheus metrics: the registry, the request counters the HTTP layer bumps, and the
//! collectors that read the key set and the process at scrape time. Served as the
//! Prometheus text format (0.0.4) at `GET /metrics` on the admin listener.
//!
//! Counting costs the hot paths one atomic add: every labelled counter a request bumps
//! is resolved once, here, at start-up. No label takes an unbounded value (no kid, user
//! or address).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::keys::{Clock, KeySetHandle, KeyState, LifecycleMetrics};

type Labels = Vec<(&'static str, &'static str)>;

/// How a token was asked for at `/auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthGrant {
    /// No credentials (open mode).
    Anonymous,
    /// A username and password.
    Password,
}

/// Why `/auth` refused credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials in `users` mode.
    MissingCredentials,
    /// The username is not registered (`users` mode).
    UnknownUser,
    /// The password does not match.
    WrongPassword,
}

/// The counters requests bump, each resolved once.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    jwks_ok: Counter,
    jwks_not_modified: Counter,
    /// `[grant][expired]` for `/auth`.
    auth_tokens: [[Counter; 2]; 2],
    /// `[grant][test_case]` for `/token`: `client_credentials`, `password`.
    token_tokens: [[Counter; 2]; 2],
    auth_failures: [Counter; 3],
    /// `/token` tokens of the authorization code grant.
    code_tokens: Counter,
    /// Sign-in form submissions: `[failed, succeeded]`.
    signins: [Counter; 2],
    /// 429s of `/token` and `/authorize`, whose handlers check their own limits (those
    /// of `/auth` and `/register` are counted by their middleware).
    token_limited: Counter,
    authorize_limited: Counter,
    rate_limited: Family<Labels, Counter>,
    tokens: Family<Labels, Counter>,
}

impl RequestMetrics {
    fn new(
        jwks: &Family<Labels, Counter>,
        tokens: &Family<Labels, Counter>,
        failures: &Family<Labels, Counter>,
        signins: &Family<Labels, Counter>,
        rate_limited: Family<Labels, Counter>,
    ) -> Self {
        let issued = |endpoint, grant, kind| {
            tokens.get_or_create_owned(&vec![
                ("endpoint", endpoint),
                ("grant", grant),
                ("kind", kind),
            ])
        };
        let token = |grant, kind| issued("/auth", grant, kind);
        let oauth = |grant, kind| issued("/token", grant, kind);
        let failure = |reason| failures.get_or_create_owned(&vec![("reason", reason)]);
        Self {
            jwks_ok: jwks.get_or_create_owned(&vec![("status", "200")]),
            jwks_not_modified: jwks.get_or_create_owned(&vec![("status", "304")]),
            auth_tokens: [
                [token("anonymous", "normal"), token("anonymous", "expired")],
                [token("password", "normal"), token("password", "expired")],
            ],
            token_tokens: [
                [
                    oauth("client_credentials", "normal"),
                    oauth("client_credentials", "test_case"),
                ],
                [oauth("password", "normal"), oauth("password", "test_case")],
            ],
            auth_failures: [
                failure("missing_credentials"),
                failure("unknown_user"),
                failure("wrong_password"),
            ],
            code_tokens: oauth("authorization_code", "normal"),
            signins: [
                signins.get_or_create_owned(&vec![("outcome", "refused")]),
                signins.get_or_create_owned(&vec![("outcome", "signed_in")]),
            ],
            token_limited: rate_limited.get_or_create_owned(&vec![("route", "/token")]),
            authorize_limited: rate_limited.get_or_create_owned(&vec![("route", "/authorize")]),
            rate_limited,
            tokens: tokens.clone(),
        }
    }

    /// A JWKS response: 200, or 304 when `not_modified`.
    pub fn jwks_response(&self, not_modified: bool) {
        if not_modified {
            self.jwks_not_modified.inc();
        } else {
            self.jwks_ok.inc();
        }
    }

    /// A token issued at `/auth`.
    pub fn auth_token(&self, grant: AuthGrant, expired: bool) {
        self.auth_tokens[grant as usize][usize::from(expired)].inc();
    }

    /// A token issued at `/token`: for `password` (else `client_credentials`), and
    /// whether it is a negative-test token.
    pub fn oauth_token(&self, password: bool, test_case: bool) {
        self.token_tokens[usize::from(password)][usize::from(test_case)].inc();
    }

    /// Tokens issued for an authorization code at `/token`.
    pub fn code_token(&self) {
        self.code_tokens.inc();
    }

    /// A `/token` request refused with 429.
    pub fn token_limited(&self) {
        self.token_limited.inc();
    }

    /// An `/authorize` request refused with 429.
    pub fn authorize_limited(&self) {
        self.authorize_limited.inc();
    }

    /// A sign-in form submitted with wrong credentials (`false`) or signed in (`true`).
    pub fn signin(&self, signed_in: bool) {
        self.signins[usize::from(signed_in)].inc();
    }

    /// Refused credentials at `/auth`.
    pub fn auth_failure(&self, reason: AuthFailure) {
        self.auth_failures[reason as usize].inc();
    }

    /// The counter of tokens issued by `endpoint` for `grant`, of `kind` (`normal`,
    /// `expired`, `test_case`); resolve it once and keep it.
    #[must_use]
    pub fn tokens(
        &self,
        endpoint: &'static str,
        grant: &'static str,
        kind: &'static str,
    ) -> Counter {
        self.tokens.get_or_create_owned(&vec![
            ("endpoint", endpoint),
            ("grant", grant),
            ("kind", kind),
        ])
    }

    /// The counter of requests refused with 429 on `route`; resolve it once and keep it.
    #[must_use]
    pub fn rate_limited(&self, route: &'static str) -> Counter {
        self.rate_limited
            .get_or_create_owned(&vec![("route", route)])
    }
}

/// Every metric of the process, ready to encode.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// What requests count.
    pub requests: RequestMetrics,
}

impl Metrics {
    /// Registers the request counters, the lifecycle's counters, and the collectors of
    /// the key set (read at scrape time, against `clock`) and of the process.
    #[must_use]
    pub fn new(
        lifecycle: &LifecycleMetrics,
        keys: KeySetHandle,
        clock: Arc<dyn Clock>,
        publish_ahead: std::time::Duration,
    ) -> Self {
        // No registry prefix: the process collector keeps the standard `process_*` names.
        let mut registry = Registry::default();
        let jwks = Family::<Labels, Counter>::default();
        let tokens = Family::<Labels, Counter>::default();
        let failures = Family::<Labels, Counter>::default();
        let rate_limited = Family::<Labels, Counter>::default();
        let signins = Family::<Labels, Counter>::default();
        registry.register(
            "jwks_signins",
            "Sign-in form submissions, by outcome (signed_in, refused)",
            signins.clone(),
        );
        registry.register("jwks_responses", "JWKS responses by status", jwks.clone());
        registry.register(
            "jwks_tokens_issued",
            "Tokens issued, by endpoint, grant and kind (normal, expired, test_case)",
            tokens.clone(),
        );
        registry.register(
            "jwks_authentication_failures",
            "Refused credentials, by reason",
            failures.clone(),
        );
        registry.register(
            "jwks_rate_limited_requests",
            "Requests refused with 429, by route",
            rate_limited.clone(),
        );
        registry.register(
            "jwks_rotations",
            "Rotation steps that changed the stored keys",
            lifecycle.rotations.clone(),
        );
        registry.register(
            "jwks_rotation_failures",
            "Rotation steps that failed (retried)",
            lifecycle.rotation_failures.clone(),
        );
        registry.register(
            "jwks_key_revocations",
            "Keys revoked through this process",
            lifecycle.revocations.clone(),
        );
        registry.register(
            "jwks_immediate_activations",
            "Keys that signed at once, without being published ahead (a fresh chain, a revoked signing key, rotate --immediate)",
            lifecycle.immediate_activations.clone(),
        );
        registry.register_with_unit(
            "jwks_key_generation",
            "Time to generate one key, by algorithm",
            Unit::Seconds,
            lifecycle.key_generation_seconds.clone(),
        );
        registry.register(
            "jwks_store_operations",
            "Store operations of the rotator, by operation",
            lifecycle.store_operations.clone(),
        );
        registry.register(
            "jwks_store_errors",
            "Store operations that failed, by operation",
            lifecycle.store_errors.clone(),
        );
        registry.register(
            "jwks_store_last_success_timestamp_seconds",
            "When the store last answered the rotator",
            lifecycle.store_last_success.clone(),
        );
        registry.register(
            "jwks_postponed_retirements",
            "Retirements postponed because the successor key was late (the old key signed on: no gap)",
            lifecycle.postponed_retirements.clone(),
        );
        registry.register(
            "jwks_spare_key_ready",
            "1 while a successor key is generated ahead of need and waiting",
            lifecycle.spare_ready.clone(),
        );
        registry.register(
            "jwks_build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(KeysCollector {
            keys,
            clock,
            publish_ahead,
        }));
        registry.register_collector(Box::new(ProcessCollector));
        let requests = RequestMetrics::new(&jwks, &tokens, &failures, &signins, rate_limited);
        Self { registry, requests }
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// The key set as it stands at scrape time.
#[derive(Debug)]
struct KeysCollector {
    keys: KeySetHandle,
    clock: Arc<dyn Clock>,
    publish_ahead: std::time::Duration,
}

#[allow(
    clippy::cast_precision_loss,
    reason = "millisecond timestamps and small counts are exact in an f64"
)]
fn seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: f64,
) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for KeysCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let now = self.clock.now();
        let set = self.keys.load();
        let mut counts = [0i64; 4];
        for key in set.keys() {
            let slot = match key.schedule.state_at(now) {
                KeyState::Pending => 0,
                KeyState::Active => 1,
                KeyState::Retired => 2,
                KeyState::Expired | KeyState::Revoked => 3,
            };
            counts[slot] += 1;
        }
        let mut family = encoder.encode_descriptor(
            "jwks_keys",
            "Keys held, by state (expired: kept to sign ?expired=true tokens)",
            None,
            MetricType::Gauge,
        )?;
        for (state, count) in ["pending", "active", "retired", "expired"]
            .iter()
            .zip(counts)
        {
            let labels = [("state", *state)];
            ConstGauge::new(count).encode(family.encode_family(&labels)?)?;
        }
        let epoch = set.at(now);
        if let Some(active) = &epoch.active {
            gauge(
                &mut encoder,
                "jwks_active_key_age_seconds",
                "How long the signing key has signed",
                seconds(now - active.schedule.activates_at),
            )?;
        }
        let next = set
            .keys()
            .iter()
            .filter(|k| k.schedule.state_at(now) == KeyState::Pending)
            .min_by_key(|k| k.schedule.activates_at);
        if let Some(next) = next {
            gauge(
                &mut encoder,
                "jwks_next_key_activation_timestamp_seconds",
                "When the next key starts signing",
                seconds(next.schedule.activates_at),
            )?;
            gauge(
                &mut encoder,
                "jwks_next_key_publish_lead_seconds",
                "How long before it signs the next key was published (below publish_ahead_seconds: late)",
                seconds(next.schedule.activates_at - next.schedule.published_at),
            )?;
        }
        gauge(
            &mut encoder,
            "jwks_publish_ahead_seconds",
            "The configured --publish-ahead",
            self.publish_ahead.as_secs_f64(),
        )?;
        Ok(())
    }
}

/// CPU time, resident memory and open descriptors of this process, from `/proc/self`.
/// Standard `process_*` names (no `jwks_` prefix), as every Prometheus client exports them.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some(stat) = std::fs::read_to_string("/proc/self/stat").ok() else {
            return Ok(());
        };
        // Fields after the parenthesised command name; utime and stime are fields 14 and
        // 15 (proc(5)), in clock ticks; rss is field 24, in pages (4 KiB on x86_64).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let ticks = 100.0; // USER_HZ: 100 on every Linux configuration in use
        #[allow(
            clippy::cast_precision_loss,
            reason = "tick and page counts are exact in an f64"
        )]
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            let cpu = ConstCounter::new((utime + stime) as f64 / ticks);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?)?;
        }
        #[allow(
            clippy::cast_precision_loss,
            reason = "page counts are exact in an f64"
        )]
        if let Some(rss) = field(24) {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory",
                (rss * 4096) as f64,
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            #[allow(clippy::cast_precision_loss, reason = "descriptor counts are small")]
            let open = fds.count() as f64;
            gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors",
                open,
            )?;
        }
        Ok(())
    }
}
