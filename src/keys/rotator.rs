//! Rotation: planning each key's schedule ([`Lifecycle`]) and the background task that
//! keeps the schedule ahead of the clock ([`Rotator`]).
//!
//! Keys move through their states by time alone (see [`super::Schedule`]); what the
//! rotator does is create the next key early enough, postpone a retirement when it
//! could not, drop keys that expired, persist each change in one transaction, and only
//! then publish the new snapshot.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use super::clock::{Clock, UnixMillis, millis};
use super::keygen;
use super::keyset::{KeySet, KeySetHandle};
use super::record::{KeyRecord, KeyState, Schedule};
use super::signing::Algorithm;
use super::{KeyError, KeyId};
use crate::store::{KeyChange, KeyStore, RotationLease, StoreError};

/// The settings that shape every key's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// Algorithm of newly generated keys.
    pub alg: Algorithm,
    /// How long each key signs.
    pub rotation_interval: Duration,
    /// How long a key is published before it signs.
    pub publish_ahead: Duration,
    /// The longest lifetime of a token.
    pub token_ttl: Duration,
    /// Allowance for verifiers whose clocks run behind ours.
    pub clock_skew: Duration,
}

/// What one rotation step must do, computed from the keys and the time alone.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Schedules of keys to generate, in activation order.
    pub create: Vec<Schedule>,
    /// A key whose retirement must be postponed, with its new schedule.
    pub postpone: Option<(KeyId, Schedule)>,
    /// Expired keys to forget (all but the newest expired one).
    pub remove: Vec<KeyId>,
}

/// Extra lead given to a key published later than planned, so that the time spent
/// persisting and swapping the snapshot does not eat into `publish_ahead`. Capped at
/// half the creation lead, so a successor created on time never postpones its
/// predecessor.
const PUBLISH_SLACK_MS: i64 = 1_000;

impl Lifecycle {
    fn interval_ms(&self) -> i64 {
        millis(self.rotation_interval).max(1)
    }

    fn after_retirement_ms(&self) -> i64 {
        millis(self.token_ttl) + millis(self.clock_skew)
    }

    /// How long before its deadline the next key is created: room for a slow RSA
    /// generation and a late wake-up, without publishing keys absurdly early.
    fn lead_ms(&self) -> i64 {
        (self.interval_ms() / 4).max(1_000)
    }

    /// How long new keys with these schedules may take at idle CPU priority: half the
    /// time left before the first of them must be published, so the normal-priority
    /// fallback still has the other half. Zero when a key is needed at once (a fresh
    /// chain, the expired key of a fresh start, a late step).
    fn patience(&self, create: &[Schedule], now: UnixMillis) -> Duration {
        let ahead = millis(self.publish_ahead);
        let spare = create
            .iter()
            .map(|s| s.activates_at - ahead - now)
            .min()
            .unwrap_or(0);
        Duration::from_millis(u64::try_from(spare / 2).unwrap_or(0))
    }

    fn schedule(&self, now: UnixMillis, activates_at: UnixMillis) -> Schedule {
        let retires_at = activates_at + self.interval_ms();
        Schedule {
            created_at: now,
            published_at: now,
            activates_at,
            retires_at,
            expires_at: retires_at + self.after_retirement_ms(),
        }
    }

    /// A schedule that lies wholly in the past, for the key that signs `?expired=true`
    /// tokens on a fresh start. It was never published.
    #[must_use]
    pub fn expired_schedule(&self, now: UnixMillis) -> Schedule {
        let expires_at = now - 1_000;
        let retires_at = expires_at - self.after_retirement_ms();
        let activates_at = retires_at - self.interval_ms();
        Schedule {
            created_at: now,
            published_at: activates_at,
            activates_at,
            retires_at,
            expires_at,
        }
    }

    /// The key with the latest retirement: the end of the signing chain.
    fn tail(keys: &[Arc<KeyRecord>], now: UnixMillis) -> Option<&Arc<KeyRecord>> {
        keys.iter()
            .filter(|k| k.schedule.retires_at > now)
            .max_by_key(|k| k.schedule.retires_at)
    }

    /// Plans the keys needed so that, from `now`, one key is always active and each new
    /// key is published at least `publish_ahead` before it signs.
    #[must_use]
    pub fn plan(&self, keys: &[Arc<KeyRecord>], now: UnixMillis) -> Plan {
        let mut plan = Plan::default();
        let mut expired: Vec<&Arc<KeyRecord>> = keys
            .iter()
            .filter(|k| k.schedule.state_at(now) == KeyState::Expired)
            .collect();
        expired.sort_by_key(|k| std::cmp::Reverse(k.schedule.expires_at));
        if expired.is_empty() {
            plan.create.push(self.expired_schedule(now));
        }
        plan.remove = expired.iter().skip(1).map(|k| k.kid.clone()).collect();

        let ahead = millis(self.publish_ahead);
        let horizon = now + ahead + self.lead_ms();
        let mut tail = match Self::tail(keys, now) {
            Some(key) => key.schedule,
            None => {
                // Nothing signs (fresh start, or a restart after the schedule ran out):
                // the first key of a new chain signs at once; no client can hold a
                // stale JWKS that lacks it, because no key was active to cache.
                let first = self.schedule(now, now);
                plan.create.push(first);
                first
            }
        };
        let mut tail_is_new = Self::tail(keys, now).is_none();
        while tail.retires_at < horizon {
            let activates_at = tail
                .retires_at
                .max(now + ahead + PUBLISH_SLACK_MS.min(ahead).min(self.lead_ms() / 2));
            if activates_at > tail.retires_at {
                let postponed = Schedule {
                    retires_at: activates_at,
                    expires_at: activates_at + self.after_retirement_ms(),
                    ..tail
                };
                if tail_is_new {
                    *plan.create.last_mut().expect("a new tail was pushed") = postponed;
                } else if let Some(key) = Self::tail(keys, now) {
                    plan.postpone = Some((key.kid.clone(), postponed));
                }
            }
            let next = self.schedule(now, activates_at);
            plan.create.push(next);
            tail = next;
            tail_is_new = true;
        }
        plan
    }

    /// When the rotator must next look at `keys`: when the next key is due to be
    /// created, or when a key changes state (to log it and drop expired keys).
    #[must_use]
    pub fn next_wake(&self, set: &KeySet, now: UnixMillis) -> UnixMillis {
        let due = Self::tail(set.keys(), now).map_or(now, |k| {
            k.schedule.retires_at - millis(self.publish_ahead) - self.lead_ms()
        });
        let transition = set.next_transition(now).unwrap_or(i64::MAX);
        due.min(transition).max(now)
    }
}

/// Why a rotation step failed. The step changed nothing; the rotator retries.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Key generation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Persisting the change failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The background task that owns key rotation.
#[derive(Debug, Clone)]
pub struct Rotator {
    lifecycle: Lifecycle,
    store: Arc<dyn KeyStore>,
    keys: KeySetHandle,
    clock: Arc<dyn Clock>,
    /// Serializes steps (the background task, tests, a future admin command), so two
    /// steps never plan from the same snapshot and create the same successor twice.
    step_lock: Arc<tokio::sync::Mutex<()>>,
    /// State kept between steps for stores shared by several replicas.
    shared: Arc<tokio::sync::Mutex<SharedState>>,
    /// Whether the last step reached the store.
    store_ok: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct SharedState {
    /// The rotation lease, while this process leads.
    lease: Option<Box<dyn RotationLease>>,
    /// The store's key version the published snapshot reflects.
    seen_version: Option<i64>,
}

/// How often a replica on a shared store checks for keys another replica added. The
/// publish-ahead time must exceed it, so a key is everywhere before it signs.
pub const SHARED_POLL: Duration = Duration::from_secs(1);

/// How long the rotator waits before retrying a failed step.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Rotator {
    /// A rotator that keeps `keys` current, persisting through `store`.
    #[must_use]
    pub fn new(
        lifecycle: Lifecycle,
        store: Arc<dyn KeyStore>,
        keys: KeySetHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            lifecycle,
            store,
            keys,
            clock,
            step_lock: Arc::default(),
            shared: Arc::default(),
            store_ok: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Loads the stored keys, brings the schedule up to date and builds the first
    /// snapshot. Runs before the server accepts connections.
    ///
    /// # Errors
    /// [`RotateError`] if the store cannot be read or written, or generation fails.
    pub async fn bootstrap(
        lifecycle: Lifecycle,
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RotateError> {
        let stored = store.load_keys().await?;
        let keys = KeySetHandle::new(KeySet::build(stored, clock.now()));
        let rotator = Self::new(lifecycle, store, keys, clock);
        rotator.step().await?;
        Ok(rotator)
    }

    /// The handle requests read the published snapshot from.
    #[must_use]
    pub fn handle(&self) -> KeySetHandle {
        self.keys.clone()
    }

    /// One rotation step: plan, generate, persist, publish. Returns when the next step
    /// is due.
    ///
    /// # Errors
    /// [`RotateError`]; then nothing was persisted or published.
    pub async fn step(&self) -> Result<UnixMillis, RotateError> {
        let _serialized = self.step_lock.lock().await;
        let result = self.step_serialized().await;
        self.store_ok.store(
            !matches!(result, Err(RotateError::Store(_))),
            Ordering::Relaxed,
        );
        result
    }

    /// Whether the last rotation step reached the store. While it cannot, requests are
    /// still served from memory with the keys already published.
    #[must_use]
    pub fn is_store_reachable(&self) -> bool {
        self.store_ok.load(Ordering::Relaxed)
    }

    async fn step_serialized(&self) -> Result<UnixMillis, RotateError> {
        if !self.store.is_shared() {
            return self.rotate().await;
        }
        let mut shared = self.shared.lock().await;
        let version = self.store.key_version().await?;
        if shared.seen_version != Some(version) {
            let keys = self.store.load_keys().await?;
            self.keys.publish(KeySet::build(keys, self.clock.now()));
            shared.seen_version = Some(version);
            tracing::debug!(version, "loaded the stored keys");
        }
        let held = match &shared.lease {
            Some(lease) => lease.is_held().await,
            None => false,
        };
        if !held {
            if shared.lease.take().is_some() {
                tracing::warn!("lost the rotation lease");
            }
            shared.lease = self.store.try_lease().await?;
            if shared.lease.is_some() {
                tracing::info!("leading key rotation");
            }
        }
        let poll = self.clock.now() + millis(SHARED_POLL);
        if shared.lease.is_none() {
            let set = self.keys.load();
            return Ok(self.lifecycle.next_wake(&set, self.clock.now()).min(poll));
        }
        let next = match self.rotate().await {
            Err(RotateError::Store(StoreError::Stale)) => {
                // Another replica changed the keys first; reload on the next step.
                shared.seen_version = None;
                return Ok(self.clock.now());
            }
            other => other?,
        };
        shared.seen_version = Some(self.store.key_version().await?);
        Ok(next.min(poll))
    }

    /// Plans, generates, persists and publishes; the caller holds the rotation lease.
    async fn rotate(&self) -> Result<UnixMillis, RotateError> {
        let current = self.keys.load_full();
        let now = self.clock.now();
        let needed = self.lifecycle.plan(current.keys(), now).create;
        let patience = self.lifecycle.patience(&needed, now);
        let mut fresh = keygen::generate(self.lifecycle.alg, needed.len(), patience).await?;

        // Schedules are fixed only after generation, so a slow RSA key does not shorten
        // the time its successor is published before it signs.
        let now = self.clock.now();
        let plan = self.lifecycle.plan(current.keys(), now);
        let mut change = KeyChange {
            remove: plan.remove.clone(),
            ..KeyChange::default()
        };
        for schedule in &plan.create {
            let Some(key) = fresh.pop() else { break };
            change.insert.push(KeyRecord::new(key, *schedule));
        }
        if let Some((kid, schedule)) = &plan.postpone
            && let Some(key) = current.keys().iter().find(|k| &k.kid == kid)
        {
            change.reschedule.push(key.rescheduled(*schedule));
        }
        if !change.is_empty() {
            self.store.apply(&change).await?;
            let mut keys: Vec<Arc<KeyRecord>> = current
                .keys()
                .iter()
                .filter(|k| {
                    !change.remove.contains(&k.kid)
                        && !change.reschedule.iter().any(|r| r.kid == k.kid)
                })
                .cloned()
                .collect();
            keys.extend(change.reschedule.iter().cloned());
            keys.extend(change.insert.iter().cloned());
            self.keys.publish(KeySet::build(keys, self.clock.now()));
            log_change(&change, &self.keys.load(), self.clock.now());
        }
        let set = self.keys.load();
        Ok(self.lifecycle.next_wake(&set, self.clock.now()))
    }

    /// Runs rotation steps until `shutdown` turns true. Never blocks a request: keys
    /// are generated on the blocking pool and published with one atomic swap.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut last_state = state_summary(&self.keys.load(), self.clock.now());
        loop {
            // A step may wait minutes for a key generated at idle priority on a busy
            // core; shutting down abandons it (nothing is persisted until the end, and
            // a store transaction that is cut off rolls back).
            let stepped = tokio::select! {
                stepped = self.step() => stepped,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let wait = match stepped {
                Ok(next) => {
                    Duration::from_millis(u64::try_from(next - self.clock.now()).unwrap_or(0))
                }
                Err(error) => {
                    tracing::error!(%error, "key rotation failed; retrying");
                    RETRY_AFTER
                }
            };
            let set = self.keys.load();
            let now = self.clock.now();
            let state = state_summary(&set, now);
            if state != last_state {
                log_transitions(&last_state, &state, set.at(now).published);
                last_state = state;
            }
            // A floor keeps a clock that jumps from turning this into a busy loop.
            let wait = wait.max(Duration::from_millis(10));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        tracing::info!("key rotation stopped");
    }
}

type StateSummary = Vec<(KeyId, KeyState)>;

fn state_summary(set: &KeySet, now: UnixMillis) -> StateSummary {
    set.keys()
        .iter()
        .map(|k| (k.kid.clone(), k.schedule.state_at(now)))
        .collect()
}

fn log_change(change: &KeyChange, set: &KeySet, now: UnixMillis) {
    let published = set.at(now).published;
    for key in &change.insert {
        match key.schedule.state_at(now) {
            KeyState::Expired => {
                tracing::info!(kid = %key.kid, "created expired key for ?expired=true tokens")
            }
            state => {
                tracing::info!(kid = %key.kid, alg = %key.algorithm(), ?state, activates_at = key.schedule.activates_at, published, "published next key")
            }
        }
    }
    for key in &change.reschedule {
        tracing::warn!(kid = %key.kid, retires_at = key.schedule.retires_at, "postponed retirement: successor was late");
    }
    for kid in &change.remove {
        tracing::info!(%kid, published, "dropped expired key");
    }
}

fn log_transitions(before: &StateSummary, after: &StateSummary, published: usize) {
    for (kid, state) in after {
        let previous = before.iter().find(|(k, _)| k == kid).map(|(_, s)| *s);
        if previous.is_some() && previous != Some(*state) {
            tracing::info!(%kid, ?state, published, "key changed state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{ManualClock, SigningKey};
    use crate::store::MemoryStore;

    const START: i64 = 1_700_000_000_000;

    fn lifecycle() -> Lifecycle {
        Lifecycle {
            alg: Algorithm::EdDsa,
            rotation_interval: Duration::from_secs(60),
            publish_ahead: Duration::from_secs(20),
            token_ttl: Duration::from_secs(30),
            clock_skew: Duration::from_secs(5),
        }
    }

    fn active_count(set: &KeySet, now: i64) -> usize {
        set.keys()
            .iter()
            .filter(|k| k.schedule.is_active_at(now))
            .count()
    }

    #[tokio::test]
    async fn fresh_start_creates_an_active_key_a_successor_and_an_expired_key() {
        let clock = ManualClock::new(START);
        let rotator = Rotator::bootstrap(
            lifecycle(),
            Arc::new(MemoryStore::default()),
            Arc::new(clock.clone()),
        )
        .await
        .expect("bootstrap");
        let set = rotator.handle().load_full();
        assert_eq!(active_count(&set, START), 1);
        let expired = set.newest_expired(START).expect("an expired key");
        assert!(!expired.schedule.is_published_at(START));
        assert!(expired.schedule.expires_at < START);
        assert!(set.at(START).active.is_some());
    }

    #[tokio::test]
    async fn invariants_hold_at_every_instant_over_many_rotations() {
        let clock = ManualClock::new(START);
        let life = lifecycle();
        let store = Arc::new(MemoryStore::default());
        let rotator = Rotator::bootstrap(life, store.clone(), Arc::new(clock.clone()))
            .await
            .expect("bootstrap");
        let handle = rotator.handle();
        let mut seen_active = std::collections::HashSet::new();
        let mut next = rotator.step().await.expect("step");
        // Walk ten rotation intervals in 250 ms ticks; the rotator runs when it asked to.
        for _ in 0..(10 * 60 * 4) {
            clock.advance(Duration::from_millis(250));
            let now = clock.now();
            if now >= next {
                next = rotator.step().await.expect("step");
            }
            let set = handle.load_full();
            let epoch = set.at(now);
            // 1. never empty, exactly one active key
            assert!(epoch.published >= 1);
            assert_eq!(active_count(&set, now), 1, "at {now}");
            let active = epoch.active.as_ref().expect("active");
            assert!(active.schedule.is_active_at(now));
            // 3. a token signed now expires no later than its key
            assert!(now + millis(life.token_ttl) <= active.schedule.expires_at);
            // 4. no expired key is published, and the active key was published at least
            // publish_ahead before it signed (except the very first key).
            let doc: serde_json::Value = serde_json::from_slice(&epoch.jwks).expect("jwks");
            let kids = doc["keys"].as_array().expect("keys");
            assert_eq!(kids.len(), epoch.published);
            for kid in kids {
                let key = set
                    .keys()
                    .iter()
                    .find(|k| k.kid.as_str() == kid["kid"])
                    .expect("published key is held");
                assert_ne!(
                    key.schedule.state_at(now),
                    KeyState::Expired,
                    "expired key published at {now}"
                );
            }
            assert!(
                kids.iter().any(|k| k["kid"] == active.kid.as_str()),
                "active key unpublished at {now}"
            );
            if seen_active.insert(active.kid.clone()) && seen_active.len() > 1 {
                assert!(
                    active.schedule.activates_at - active.schedule.published_at
                        >= millis(life.publish_ahead)
                );
            }
        }
        assert!(
            seen_active.len() >= 10,
            "rotated {} times",
            seen_active.len()
        );
        // Expired keys are dropped: at most one is kept.
        let set = handle.load_full();
        let now = clock.now();
        assert_eq!(
            set.keys()
                .iter()
                .filter(|k| k.schedule.state_at(now) == KeyState::Expired)
                .count(),
            1
        );
        assert_eq!(
            store.load_keys().await.expect("load").len(),
            set.keys().len()
        );
    }

    #[tokio::test]
    async fn a_late_rotator_postpones_the_retirement_instead_of_leaving_a_gap() {
        let clock = ManualClock::new(START);
        let life = lifecycle();
        let rotator = Rotator::bootstrap(
            life,
            Arc::new(MemoryStore::default()),
            Arc::new(clock.clone()),
        )
        .await
        .expect("bootstrap");
        let set = rotator.handle().load_full();
        let tail = set
            .keys()
            .iter()
            .map(|k| k.schedule.retires_at)
            .max()
            .expect("keys");
        // Sleep through the moment the next key was due, to 5 s before the tail retires.
        clock.set(tail - 5_000);
        rotator.step().await.expect("step");
        let set = rotator.handle().load_full();
        let now = clock.now();
        let next = set
            .keys()
            .iter()
            .max_by_key(|k| k.schedule.activates_at)
            .expect("keys");
        assert!(next.schedule.activates_at - now >= millis(life.publish_ahead));
        for t in (now..next.schedule.retires_at).step_by(500) {
            assert_eq!(active_count(&set, t), 1, "at {t}");
        }
    }

    #[tokio::test]
    async fn a_rotator_waking_when_asked_never_postpones_a_retirement() {
        // Short periods, where the publish slack and the creation lead are closest.
        let life = Lifecycle {
            rotation_interval: Duration::from_secs(2),
            publish_ahead: Duration::from_secs(2),
            token_ttl: Duration::from_secs(1),
            clock_skew: Duration::ZERO,
            ..lifecycle()
        };
        let clock = ManualClock::new(START);
        let rotator = Rotator::bootstrap(
            life,
            Arc::new(MemoryStore::default()),
            Arc::new(clock.clone()),
        )
        .await
        .expect("bootstrap");
        let mut next = rotator.step().await.expect("step");
        for _ in 0..40 {
            clock.set(next);
            let set = rotator.handle().load_full();
            let plan = life.plan(set.keys(), next);
            assert!(plan.postpone.is_none(), "postponed at {next}: {plan:?}");
            next = rotator.step().await.expect("step").max(next + 10);
        }
    }

    #[tokio::test]
    async fn restart_after_the_schedule_ran_out_starts_a_new_chain() {
        let clock = ManualClock::new(START);
        let store: Arc<dyn KeyStore> = Arc::new(MemoryStore::default());
        Rotator::bootstrap(lifecycle(), store.clone(), Arc::new(clock.clone()))
            .await
            .expect("bootstrap");
        clock.advance(Duration::from_secs(3_600));
        let rotator = Rotator::bootstrap(lifecycle(), store, Arc::new(clock.clone()))
            .await
            .expect("restart");
        let set = rotator.handle().load_full();
        assert_eq!(active_count(&set, clock.now()), 1);
        assert_eq!(
            set.keys()
                .iter()
                .filter(|k| k.schedule.state_at(clock.now()) == KeyState::Expired)
                .count(),
            1
        );
    }

    #[test]
    fn plan_is_empty_when_the_schedule_is_far_enough_ahead() {
        let life = lifecycle();
        let now = START;
        let key =
            |s: Schedule| KeyRecord::new(SigningKey::generate(Algorithm::EdDsa).expect("gen"), s);
        let keys = vec![
            key(life.expired_schedule(now)),
            key(life.schedule(now, now - 1)),
            key(life.schedule(now, now + 59_999)),
        ];
        assert_eq!(life.plan(&keys, now), Plan::default());
    }

    #[tokio::test]
    async fn the_run_loop_stops_on_shutdown() {
        let rotator = Rotator::bootstrap(
            lifecycle(),
            Arc::new(MemoryStore::default()),
            Arc::new(crate::keys::SystemClock),
        )
        .await
        .expect("bootstrap");
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(rotator.run(rx));
        tx.send(true).expect("send");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .expect("joins");
    }

    /// A store that stops answering `apply` once told to: a rotation step hangs in it.
    #[derive(Debug, Default)]
    struct Stalling {
        keys: MemoryStore,
        stalled: AtomicBool,
    }

    impl KeyStore for Stalling {
        fn load_keys(
            &self,
        ) -> crate::store::BoxFuture<'_, Result<Vec<Arc<KeyRecord>>, StoreError>> {
            self.keys.load_keys()
        }
        fn apply<'a>(
            &'a self,
            change: &'a KeyChange,
        ) -> crate::store::BoxFuture<'a, Result<(), StoreError>> {
            if self.stalled.load(Ordering::SeqCst) {
                Box::pin(std::future::pending())
            } else {
                self.keys.apply(change)
            }
        }
    }

    #[tokio::test]
    async fn shutdown_abandons_a_step_that_hangs() {
        let clock = ManualClock::new(START);
        let store = Arc::new(Stalling::default());
        let rotator = Rotator::bootstrap(lifecycle(), store.clone(), Arc::new(clock.clone()))
            .await
            .expect("bootstrap");
        store.stalled.store(true, Ordering::SeqCst);
        // Past the first key's retirement: the next step must persist a successor.
        clock.advance(Duration::from_secs(24 * 3600));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(rotator.run(rx));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!task.is_finished(), "the step hangs in the store");
        tx.send(true).expect("send");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops although its step never finishes")
            .expect("joins");
    }

    /// Replicas of one process each over a shared in-memory store: a lease that one
    /// holds at a time, a version that counts changes, and optimistic apply.
    #[derive(Debug, Default)]
    struct SharedMemory {
        keys: MemoryStore,
        version: std::sync::atomic::AtomicI64,
        leader: std::sync::Mutex<Option<u32>>,
    }

    #[derive(Debug)]
    struct Replica {
        shared: Arc<SharedMemory>,
        id: u32,
        loaded: std::sync::atomic::AtomicI64,
    }

    #[derive(Debug)]
    struct Lease(Arc<SharedMemory>, u32);

    impl RotationLease for Lease {
        fn is_held(&self) -> crate::store::BoxFuture<'_, bool> {
            let held = *self.0.leader.lock().expect("lock") == Some(self.1);
            Box::pin(async move { held })
        }
    }

    impl KeyStore for Replica {
        fn load_keys(
            &self,
        ) -> crate::store::BoxFuture<'_, Result<Vec<Arc<KeyRecord>>, StoreError>> {
            self.loaded
                .store(self.shared.version.load(Ordering::SeqCst), Ordering::SeqCst);
            self.shared.keys.load_keys()
        }
        fn apply<'a>(
            &'a self,
            change: &'a KeyChange,
        ) -> crate::store::BoxFuture<'a, Result<(), StoreError>> {
            let loaded = self.loaded.load(Ordering::SeqCst);
            let bumped = self.shared.version.compare_exchange(
                loaded,
                loaded + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            self.loaded.store(loaded + 1, Ordering::SeqCst);
            if bumped.is_err() {
                return Box::pin(async { Err(StoreError::Stale) });
            }
            self.shared.keys.apply(change)
        }
        fn is_shared(&self) -> bool {
            true
        }
        fn try_lease(
            &self,
        ) -> crate::store::BoxFuture<'_, Result<Option<Box<dyn RotationLease>>, StoreError>>
        {
            let mut leader = self.shared.leader.lock().expect("lock");
            let lease = match *leader {
                Some(other) if other != self.id => None,
                _ => {
                    *leader = Some(self.id);
                    Some(Box::new(Lease(self.shared.clone(), self.id)) as Box<dyn RotationLease>)
                }
            };
            Box::pin(async move { Ok(lease) })
        }
        fn key_version(&self) -> crate::store::BoxFuture<'_, Result<i64, StoreError>> {
            let version = self.shared.version.load(Ordering::SeqCst);
            Box::pin(async move { Ok(version) })
        }
    }

    #[tokio::test]
    async fn replicas_on_a_shared_store_elect_one_rotator_and_converge() {
        let clock = ManualClock::new(START);
        let shared = Arc::new(SharedMemory::default());
        let replica = |id| -> Arc<dyn KeyStore> {
            Arc::new(Replica {
                shared: shared.clone(),
                id,
                loaded: std::sync::atomic::AtomicI64::new(-1),
            })
        };
        let a = Rotator::bootstrap(lifecycle(), replica(1), Arc::new(clock.clone()))
            .await
            .expect("a");
        let b = Rotator::bootstrap(lifecycle(), replica(2), Arc::new(clock.clone()))
            .await
            .expect("b");
        let changes_after_bootstrap = shared.version.load(Ordering::SeqCst);
        let mut a_alive = true;
        for tick in 0..(8 * 60) {
            clock.advance(Duration::from_secs(1));
            if a_alive {
                a.step().await.expect("a steps");
            }
            b.step().await.expect("b steps");
            let now = clock.now();
            let (sa, sb) = (a.handle().load_full(), b.handle().load_full());
            if a_alive {
                assert_eq!(sa.at(now).jwks, sb.at(now).jwks, "diverged at tick {tick}");
                assert_eq!(sa.at(now).etag, sb.at(now).etag);
            }
            assert_eq!(
                sb.keys()
                    .iter()
                    .filter(|k| k.schedule.is_active_at(now))
                    .count(),
                1
            );
            if tick == 4 * 60 {
                a_alive = false;
                // The leader dies: its lease goes with it; B takes over at its next step.
                *shared.leader.lock().expect("lock") = None;
            }
        }
        assert_eq!(*shared.leader.lock().expect("lock"), Some(2), "B took over");
        // Eight one-minute rotations: one new key per rotation plus housekeeping, not two.
        let changes = shared.version.load(Ordering::SeqCst) - changes_after_bootstrap;
        assert!((8..=20).contains(&changes), "{changes} changes");
        let kids: Vec<_> = shared
            .keys
            .load_keys()
            .await
            .expect("keys")
            .iter()
            .map(|k| k.kid.clone())
            .collect();
        let mut unique = kids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), kids.len());
    }
}
