//! What the key lifecycle counts: rotations and their failures, revocations, keys that
//! signed without pre-publication, retirements postponed for a late successor, key generation time, and store operations. Plain
//! Prometheus client types, so `crate::metrics` registers them without `keys/` knowing
//! about the registry; every update is an atomic add.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::signing::Algorithm;

/// A metric's labels: fixed names and values, never a kid, user or address.
type Labels = Vec<(&'static str, &'static str)>;

/// The lifecycle's counters. Clones share the same values.
#[derive(Debug, Clone)]
pub struct LifecycleMetrics {
    /// Rotation steps that changed the stored keys.
    pub rotations: Counter,
    /// Rotation steps that failed (the rotator retries).
    pub rotation_failures: Counter,
    /// Keys revoked by an operator through this process.
    pub revocations: Counter,
    /// Keys that signed at once, without being published ahead (a revoked signing key,
    /// `rotate --immediate`).
    pub immediate_activations: Counter,
    /// Seconds one key took to generate, by algorithm.
    pub key_generation_seconds: Family<Labels, Histogram>,
    /// Store operations, by operation.
    pub store_operations: Family<Labels, Counter>,
    /// Store operations that failed, by operation.
    pub store_errors: Family<Labels, Counter>,
    /// When the store last answered (Unix seconds).
    pub store_last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// 1 while a spare successor is generated and waiting, else 0.
    pub spare_ready: Gauge,
    /// Retirements postponed because the successor was late: the old key went on
    /// signing, so there was never a moment without an active key.
    pub postponed_retirements: Counter,
}

impl Default for LifecycleMetrics {
    fn default() -> Self {
        Self {
            rotations: Counter::default(),
            rotation_failures: Counter::default(),
            revocations: Counter::default(),
            immediate_activations: Counter::default(),
            // From 1 ms (Ed25519) to about 8 s (RSA on a starved core at idle priority).
            key_generation_seconds: Family::new_with_constructor(|| {
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.001, 2.0, 14,
                ))
            }),
            store_operations: Family::default(),
            store_errors: Family::default(),
            store_last_success: Gauge::default(),
            spare_ready: Gauge::default(),
            postponed_retirements: Counter::default(),
        }
    }
}

impl LifecycleMetrics {
    /// Records that generating `count` keys of `alg` took `seconds` in all.
    pub fn observe_generation(&self, alg: Algorithm, count: usize, seconds: f64) {
        if count == 0 {
            return;
        }
        let histogram = self
            .key_generation_seconds
            .get_or_create_owned(&vec![("alg", alg.as_str())]);
        // Keys of one batch are generated side by side: each took about the batch's time.
        for _ in 0..count {
            histogram.observe(seconds);
        }
    }

    /// Records one store operation and whether it succeeded, at `now_secs`.
    pub fn observe_store<T, E>(
        &self,
        operation: &'static str,
        result: &Result<T, E>,
        now_secs: f64,
    ) {
        let labels = vec![("operation", operation)];
        self.store_operations.get_or_create(&labels).inc();
        if result.is_ok() {
            self.store_last_success.set(now_secs);
        } else {
            self.store_errors.get_or_create(&labels).inc();
        }
    }
}
