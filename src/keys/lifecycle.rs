//! Pure planning of the key lifecycle: from the stored keys, the time and the settings
//! to a [`Plan`] of what one rotation step must create, postpone and drop. No task, no
//! store, no clock of its own: [`super::Rotator`] loads, calls [`Lifecycle::plan`],
//! applies and publishes.
//!
//! Keys move through their states by time alone (see [`super::Schedule`]); planning
//! creates the next key early enough, postpones a retirement when it could not, and
//! drops keys that expired (keeping the newest for `?expired=true`).

use std::sync::Arc;
use std::time::Duration;

use super::KeyId;
use super::clock::{UnixMillis, millis};
use super::keyset::KeySet;
use super::record::{KeyRecord, KeyState, Schedule};
use super::signing::Algorithm;
use super::store::KeyInfo;

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

/// A command of an operator (the CLI or the admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Plan a new successor now.
    Rotate {
        /// The new key signs at once instead of after `publish_ahead`.
        immediate: bool,
    },
    /// Withdraw a key for good.
    Revoke {
        /// The key.
        kid: KeyId,
        /// Why (kept with the key).
        reason: String,
    },
}

/// What an [`Operation`] must change, computed from the keys and the time alone.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OperationPlan {
    /// The schedule of the one key to generate, if any.
    pub create: Option<Schedule>,
    /// Keys whose retirement moves, with their new schedules.
    pub reschedule: Vec<(KeyId, Schedule)>,
    /// Pending keys that give way (they never signed).
    pub remove: Vec<KeyId>,
    /// The key to revoke, if any.
    pub revoke: Option<KeyId>,
}

/// Why an operation was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationRefused {
    /// No stored key has this id.
    #[error("no key {0} is stored")]
    UnknownKey(KeyId),
    /// The key was revoked before.
    #[error("key {0} is already revoked")]
    AlreadyRevoked(KeyId),
    /// The key expired: it is no longer published, and nothing it signed is valid.
    #[error("key {0} has already expired; it is no longer published")]
    AlreadyExpired(KeyId),
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
    pub(super) fn patience(&self, create: &[Schedule], now: UnixMillis) -> Duration {
        let ahead = millis(self.publish_ahead);
        let spare = create
            .iter()
            .map(|s| s.activates_at - ahead - now)
            .min()
            .unwrap_or(0);
        Duration::from_millis(u64::try_from(spare / 2).unwrap_or(0))
    }

    pub(super) fn schedule(&self, now: UnixMillis, activates_at: UnixMillis) -> Schedule {
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

    /// Plans an operator's command against the stored keys (revoked ones included) at
    /// `now`.
    ///
    /// - **Rotate**: a new key, published now, that signs after `publish_ahead`
    ///   (`immediate`: at once). Keys that would still sign after it takes over retire
    ///   then; pending keys that would only have signed later give way (they never signed).
    /// - **Revoke**: the key is withdrawn. If it signs now, a fresh key signs at once for
    ///   the rest of its slot (an emergency: immediate signing beats pre-publication). If it
    ///   was pending, its predecessor covers its slot, so the chain has no gap.
    ///
    /// # Errors
    /// [`OperationRefused`] for a kid that is unknown, revoked already, or expired.
    pub fn plan_operation(
        &self,
        keys: &[KeyInfo],
        operation: &Operation,
        now: UnixMillis,
    ) -> Result<OperationPlan, OperationRefused> {
        let live: Vec<&KeyInfo> = keys.iter().filter(|k| k.revoked.is_none()).collect();
        let mut plan = OperationPlan::default();
        match operation {
            Operation::Rotate { immediate } => {
                let takes_over = if *immediate {
                    now
                } else {
                    now + millis(self.publish_ahead)
                };
                plan.create = Some(self.schedule(now, takes_over));
                for key in live {
                    let s = key.schedule;
                    if s.retires_at <= takes_over {
                        continue;
                    }
                    if s.activates_at >= takes_over {
                        plan.remove.push(key.kid.clone());
                    } else {
                        plan.reschedule
                            .push((key.kid.clone(), self.retiring_at(s, takes_over)));
                    }
                }
            }
            Operation::Revoke { kid, .. } => {
                let key = keys
                    .iter()
                    .find(|k| &k.kid == kid)
                    .ok_or_else(|| OperationRefused::UnknownKey(kid.clone()))?;
                match key.state_at(now) {
                    KeyState::Revoked => return Err(OperationRefused::AlreadyRevoked(kid.clone())),
                    KeyState::Expired => return Err(OperationRefused::AlreadyExpired(kid.clone())),
                    KeyState::Active => {
                        let s = key.schedule;
                        plan.create = Some(Schedule {
                            created_at: now,
                            published_at: now,
                            activates_at: now,
                            retires_at: s.retires_at,
                            expires_at: s.retires_at + self.after_retirement_ms(),
                        });
                    }
                    KeyState::Pending => {
                        let s = key.schedule;
                        if let Some(before) = live
                            .iter()
                            .find(|k| k.kid != *kid && k.schedule.retires_at == s.activates_at)
                        {
                            plan.reschedule.push((
                                before.kid.clone(),
                                self.retiring_at(before.schedule, s.retires_at),
                            ));
                        }
                    }
                    KeyState::Retired => {}
                }
                plan.revoke = Some(kid.clone());
            }
        }
        Ok(plan)
    }

    /// While the store cannot be reached no successor can be persisted, so the chain must
    /// not run out: the tail (the key that retires last; it has been published since
    /// before it signed) keeps signing, its retirement moved to a full creation lead
    /// ahead. Every replica computes the same from the same schedule, so they all keep
    /// signing with the same published key. `None` while the tail has runway left.
    #[must_use]
    pub fn bridge_outage(
        &self,
        keys: &[Arc<KeyRecord>],
        now: UnixMillis,
    ) -> Option<(KeyId, Schedule)> {
        let tail = keys
            .iter()
            .filter(|k| k.schedule.state_at(now) != KeyState::Expired)
            .max_by_key(|k| k.schedule.retires_at)?;
        let horizon = now + millis(self.publish_ahead) + self.lead_ms();
        (tail.schedule.retires_at < horizon)
            .then(|| (tail.kid.clone(), self.retiring_at(tail.schedule, horizon)))
    }

    /// `schedule` with its retirement moved to `retires_at`, and its expiry after it.
    fn retiring_at(&self, schedule: Schedule, retires_at: UnixMillis) -> Schedule {
        Schedule {
            retires_at,
            expires_at: retires_at + self.after_retirement_ms(),
            ..schedule
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    const START: i64 = 1_700_000_000_000;

    fn lifecycle() -> Lifecycle {
        crate::testing::minute_lifecycle()
    }

    fn key(s: Schedule) -> Arc<KeyRecord> {
        KeyRecord::new(SigningKey::generate(Algorithm::EdDsa).expect("gen"), s)
    }

    #[test]
    fn plan_is_empty_when_the_schedule_is_far_enough_ahead() {
        let life = lifecycle();
        let now = START;
        let keys = vec![
            key(life.expired_schedule(now)),
            key(life.schedule(now, now - 1)),
            key(life.schedule(now, now + 59_999)),
        ];
        assert_eq!(life.plan(&keys, now), Plan::default());
    }

    /// One row of the planning table: the keys held (as schedules), and what the plan
    /// must be at `START`, every instant relative to `START`.
    struct Case {
        name: &'static str,
        keys: fn(&Lifecycle) -> Vec<Schedule>,
        /// `activates_at - START` of each key to create, in order.
        creates: &'static [i64],
        /// `retires_at - START` of the postponed key, if one is.
        postponed_to: Option<i64>,
        /// Indexes into `keys` of the keys to drop.
        removes: &'static [usize],
    }

    #[test]
    fn plans_follow_the_table() {
        let now = START;
        let cases = [
            Case {
                name: "fresh start: an expired key and a first key that signs at once",
                keys: |_| vec![],
                // The expired key's life lies wholly in the past.
                creates: &[-(60_000 + 35_000 + 1_000), 0],
                postponed_to: None,
                removes: &[],
            },
            Case {
                name: "the successor is due: it activates exactly when the tail retires",
                keys: |l| vec![l.expired_schedule(START), l.schedule(START, START - 30_000)],
                creates: &[30_000],
                postponed_to: None,
                removes: &[],
            },
            Case {
                name: "a late step postpones the tail rather than shorten publish-ahead",
                keys: |l| vec![l.expired_schedule(START), l.schedule(START, START - 55_000)],
                // publish_ahead (20 s) plus the capped slack (1 s).
                creates: &[21_000],
                postponed_to: Some(21_000),
                removes: &[],
            },
            Case {
                name: "of two expired keys only the newest is kept",
                keys: |l| {
                    vec![
                        l.expired_schedule(START - 10_000),
                        l.expired_schedule(START),
                        l.schedule(START, START - 1),
                        l.schedule(START, START + 59_999),
                    ]
                },
                creates: &[],
                postponed_to: None,
                removes: &[0],
            },
            Case {
                name: "without an expired key one is created for ?expired=true",
                keys: |l| {
                    vec![
                        l.schedule(START, START - 1),
                        l.schedule(START, START + 59_999),
                    ]
                },
                creates: &[-(60_000 + 35_000 + 1_000)],
                postponed_to: None,
                removes: &[],
            },
        ];
        let life = lifecycle();
        for case in cases {
            let keys: Vec<_> = (case.keys)(&life).into_iter().map(key).collect();
            let plan = life.plan(&keys, now);
            let creates: Vec<i64> = plan.create.iter().map(|s| s.activates_at - now).collect();
            assert_eq!(creates, case.creates, "{}", case.name);
            for s in &plan.create {
                assert_eq!(s.retires_at - s.activates_at, 60_000, "{}", case.name);
                assert_eq!(s.expires_at - s.retires_at, 35_000, "{}", case.name);
            }
            assert_eq!(
                plan.postpone.as_ref().map(|(_, s)| s.retires_at - now),
                case.postponed_to,
                "{}",
                case.name
            );
            let removes: Vec<_> = case.removes.iter().map(|&i| keys[i].kid.clone()).collect();
            assert_eq!(plan.remove, removes, "{}", case.name);
        }
    }

    fn info(s: Schedule) -> KeyInfo {
        let record = key(s);
        KeyInfo {
            kid: record.kid.clone(),
            alg: Algorithm::EdDsa,
            schedule: s,
            revoked: None,
        }
    }

    #[test]
    fn operations_follow_the_table() {
        let life = lifecycle();
        let now = START;
        // An expired key, the active key (retires in 30 s), its pending successor.
        let keys = vec![
            info(life.expired_schedule(now)),
            info(life.schedule(now, now - 30_000)),
            info(life.schedule(now, now + 30_000)),
        ];
        let (expired, active, pending) = (&keys[0], &keys[1], &keys[2]);
        let mut revoked = info(life.schedule(now, now - 90_000));
        revoked.revoked = Some(crate::keys::Revocation {
            at: now - 1,
            reason: String::new(),
        });
        let mut with_revoked = keys.clone();
        with_revoked.push(revoked.clone());
        let revoke = |k: &KeyInfo| Operation::Revoke {
            kid: k.kid.clone(),
            reason: "test".into(),
        };

        // Rotate: a key that signs after publish_ahead; the active key retires then; the
        // pending successor (it would sign only after that) gives way.
        let plan = life
            .plan_operation(&keys, &Operation::Rotate { immediate: false }, now)
            .expect("rotate");
        let created = plan.create.expect("a new key");
        assert_eq!(
            (created.published_at, created.activates_at),
            (now, now + 20_000)
        );
        assert_eq!(plan.reschedule.len(), 1);
        assert_eq!(plan.reschedule[0].0, active.kid);
        assert_eq!(plan.reschedule[0].1.retires_at, now + 20_000);
        assert_eq!(plan.reschedule[0].1.expires_at, now + 20_000 + 35_000);
        assert_eq!(plan.remove, vec![pending.kid.clone()]);
        assert_eq!(plan.revoke, None);

        // Rotate --immediate: signs now; the active key retires now.
        let plan = life
            .plan_operation(&keys, &Operation::Rotate { immediate: true }, now)
            .expect("rotate");
        assert_eq!(plan.create.expect("new").activates_at, now);
        assert_eq!(plan.reschedule[0].1.retires_at, now);

        // Revoke the active key: a fresh key signs at once for the rest of its slot.
        let plan = life
            .plan_operation(&keys, &revoke(active), now)
            .expect("revoke");
        let fresh = plan.create.expect("a replacement");
        assert_eq!(
            (fresh.activates_at, fresh.retires_at),
            (now, active.schedule.retires_at)
        );
        assert_eq!(plan.revoke, Some(active.kid.clone()));
        assert!(plan.reschedule.is_empty() && plan.remove.is_empty());

        // Revoke the pending key: its predecessor covers its slot; nothing new.
        let plan = life
            .plan_operation(&keys, &revoke(pending), now)
            .expect("revoke");
        assert_eq!(plan.create, None);
        assert_eq!(plan.reschedule.len(), 1);
        assert_eq!(plan.reschedule[0].0, active.kid);
        assert_eq!(plan.reschedule[0].1.retires_at, pending.schedule.retires_at);

        // Refusals.
        assert_eq!(
            life.plan_operation(&keys, &revoke(expired), now),
            Err(OperationRefused::AlreadyExpired(expired.kid.clone()))
        );
        assert_eq!(
            life.plan_operation(&with_revoked, &revoke(&revoked), now),
            Err(OperationRefused::AlreadyRevoked(revoked.kid.clone()))
        );
        let unknown = info(life.schedule(now, now));
        assert_eq!(
            life.plan_operation(&keys, &revoke(&unknown), now),
            Err(OperationRefused::UnknownKey(unknown.kid.clone()))
        );
    }
}
