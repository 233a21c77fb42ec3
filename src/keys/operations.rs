//! Operators' commands ([`Operation`]: rotate now, revoke a key) carried out as writers of
//! the store like the rotator: load the keys with their version, plan
//! ([`super::Lifecycle::plan_operation`]), generate what the plan needs, apply over the
//! version, and plan again if another writer went first.
//!
//! [`operate_on_store`] works on a store directly, with or without a server running
//! (`jwks-server keys rotate|revoke`): running servers see the change at their next poll.
//! [`super::Rotator::operate`] does the same inside a server (the admin API), serialized
//! with rotation steps, and publishes the result at once.

use std::sync::Arc;
use std::time::Duration;

use super::clock::{Clock, UnixMillis};
use super::keygen;
use super::lifecycle::{Lifecycle, Operation, OperationPlan, OperationRefused};
use super::metrics::LifecycleMetrics;
use super::record::KeyRecord;
use super::signing::SigningKey;
use super::store::{KeyChange, KeyInfo, KeyStore, KeyVersion, Revocation};
use super::{KeyError, KeyId};
use crate::persist::StoreError;

/// How often an operation plans again after another writer changed the keys first.
const ATTEMPTS: usize = 5;

/// Why an operation failed; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// The command makes no sense for the keys as they are.
    #[error(transparent)]
    Refused(#[from] OperationRefused),
    /// Generating the new key failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers changed the keys every time this one tried.
    #[error("the stored keys kept changing under this operation; try again")]
    Contended,
}

/// What an operation did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The store version after the change.
    pub version: KeyVersion,
    /// The key it created, if any.
    pub created: Option<KeyInfo>,
    /// The key it revoked, if any.
    pub revoked: Option<KeyId>,
    /// Whether the created key signs at once, without having been published ahead (a
    /// revoked signing key, or `rotate --immediate`).
    pub signs_at_once: bool,
}

/// Carries out `operation` on `store` directly.
///
/// # Errors
/// [`OperationError`]; then nothing changed.
pub async fn operate_on_store(
    store: &dyn KeyStore,
    lifecycle: &Lifecycle,
    operation: &Operation,
    clock: &dyn Clock,
) -> Result<Outcome, OperationError> {
    for _ in 0..ATTEMPTS {
        let loaded = store.load_keys().await?;
        let listed = store.list_keys().await?.value;
        let prepared = prepare(lifecycle, operation, &loaded.value, &listed, clock, None).await?;
        match store.apply(loaded.version, &prepared.change).await {
            Ok(version) => {
                let outcome = prepared.outcome(version);
                super::rotator::log_operation(&outcome);
                return Ok(outcome);
            }
            Err(StoreError::Stale) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(OperationError::Contended)
}

/// A planned operation with its key generated, ready to apply.
#[derive(Debug)]
pub(super) struct Prepared {
    /// The change to apply.
    pub(super) change: KeyChange,
    signs_at_once: bool,
}

impl Prepared {
    /// What was done, once `change` is applied as `version`.
    pub(super) fn outcome(&self, version: KeyVersion) -> Outcome {
        Outcome {
            version,
            created: self.change.insert.first().map(|k| KeyInfo {
                kid: k.kid.clone(),
                alg: k.algorithm(),
                schedule: k.schedule,
                revoked: None,
            }),
            revoked: self.change.revoke.first().map(|(kid, _)| kid.clone()),
            signs_at_once: self.signs_at_once,
        }
    }
}

/// Plans `operation` over the live `records` (and the `listed` revoked keys), generates
/// the key it needs at normal priority (an operator is waiting), and plans again at the
/// time the key is ready, so generation does not eat into the publish-ahead time.
pub(super) async fn prepare(
    lifecycle: &Lifecycle,
    operation: &Operation,
    records: &[Arc<KeyRecord>],
    listed: &[KeyInfo],
    clock: &dyn Clock,
    metrics: Option<&LifecycleMetrics>,
) -> Result<Prepared, OperationError> {
    let infos = key_infos(records, listed);
    let first = lifecycle.plan_operation(&infos, operation, clock.now())?;
    let fresh = if first.create.is_some() {
        let started = std::time::Instant::now();
        let key = keygen::generate(lifecycle.alg, 1, Duration::ZERO)
            .await?
            .pop();
        if let Some(metrics) = metrics {
            metrics.observe_generation(lifecycle.alg, 1, started.elapsed().as_secs_f64());
        }
        key
    } else {
        None
    };
    let now = clock.now();
    let plan = lifecycle.plan_operation(&infos, operation, now)?;
    let reason = match operation {
        Operation::Revoke { reason, .. } => reason.clone(),
        Operation::Rotate { .. } => String::new(),
    };
    Ok(build(&plan, records, fresh, now, reason))
}

/// The live keys as [`KeyInfo`]s, plus the revoked ones from the listing.
fn key_infos(records: &[Arc<KeyRecord>], listed: &[KeyInfo]) -> Vec<KeyInfo> {
    records
        .iter()
        .map(|k| KeyInfo {
            kid: k.kid.clone(),
            alg: k.algorithm(),
            schedule: k.schedule,
            revoked: None,
        })
        .chain(listed.iter().filter(|k| k.revoked.is_some()).cloned())
        .collect()
}

fn build(
    plan: &OperationPlan,
    records: &[Arc<KeyRecord>],
    fresh: Option<SigningKey>,
    now: UnixMillis,
    reason: String,
) -> Prepared {
    let mut change = KeyChange {
        remove: plan.remove.clone(),
        ..KeyChange::default()
    };
    let mut signs_at_once = false;
    if let (Some(schedule), Some(key)) = (plan.create, fresh) {
        signs_at_once = schedule.activates_at <= now;
        change.insert.push(KeyRecord::new(key, schedule));
    }
    for (kid, schedule) in &plan.reschedule {
        if let Some(key) = records.iter().find(|k| &k.kid == kid) {
            change.reschedule.push(key.rescheduled(*schedule));
        }
    }
    if let Some(kid) = &plan.revoke {
        change
            .revoke
            .push((kid.clone(), Revocation { at: now, reason }));
    }
    Prepared {
        change,
        signs_at_once,
    }
}
