//! Key generation off the request path. An RSA-2048 key costs about 30 ms of CPU. On a
//! saturated core that work takes the core from the request loop in slices of a few
//! milliseconds, which is what moves the p99 of a busy server when it rotates
//! (BENCHMARKS.md). So when there is time to spare, each key is first generated on a
//! thread of its own at idle CPU priority (`SCHED_IDLE`: it runs only when the core has
//! nothing else to do). A key that is not done within its patience is generated again
//! at normal priority on the blocking pool, and the first of the two to finish is used:
//! a busy core delays a key by at most its patience, which the rotator sets to half the
//! time left before the key must be published, so the other half remains for the
//! normal-priority generation.

use std::time::Duration;

use tokio::sync::oneshot;

use super::KeyError;
use super::signing::{Algorithm, SigningKey};

/// Generates `count` keys of `alg`. With a zero `patience` (a key needed now) they are
/// generated at normal priority on the blocking pool, concurrently.
///
/// # Errors
/// [`KeyError`] if generation fails or its task dies.
pub(super) async fn generate(
    alg: Algorithm,
    count: usize,
    patience: Duration,
) -> Result<Vec<SigningKey>, KeyError> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            if patience.is_zero() {
                tokio::spawn(at_normal_priority(alg))
            } else {
                tokio::spawn(in_background(alg, patience))
            }
        })
        .collect();
    let mut keys = Vec::with_capacity(count);
    for task in tasks {
        keys.push(task.await.map_err(KeyError::Task)??);
    }
    Ok(keys)
}

async fn at_normal_priority(alg: Algorithm) -> Result<SigningKey, KeyError> {
    tokio::task::spawn_blocking(move || SigningKey::generate(alg))
        .await
        .map_err(KeyError::Task)?
}

/// One key at idle priority, or at normal priority once `patience` has run out.
async fn in_background(alg: Algorithm, patience: Duration) -> Result<SigningKey, KeyError> {
    let (done, mut result) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("jwks-keygen".into())
        .spawn(move || {
            lower_own_priority();
            // The receiver may be gone (the normal-priority copy won): nothing to do.
            let _ = done.send(SigningKey::generate(alg));
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start a key generation thread");
        return at_normal_priority(alg).await;
    }
    match tokio::time::timeout(patience, &mut result).await {
        Ok(Ok(key)) => return key,
        Ok(Err(_)) => return at_normal_priority(alg).await,
        Err(_) => {}
    }
    tracing::debug!(
        patience_ms = patience.as_millis(),
        "key generation at idle priority is slow; generating at normal priority too"
    );
    let normal = at_normal_priority(alg);
    tokio::select! {
        Ok(key) = &mut result => key,
        key = normal => key,
    }
}

/// Moves the calling thread to `SCHED_IDLE`; a failure only costs the latency benefit.
fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(error) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        {
            tracing::debug!(?error, "cannot lower the key generation thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_come_at_idle_priority_and_at_normal_priority() {
        let idle = generate(Algorithm::Es256, 2, Duration::from_secs(60))
            .await
            .expect("idle priority");
        let normal = generate(Algorithm::EdDsa, 2, Duration::ZERO)
            .await
            .expect("normal priority");
        assert_eq!(idle.len(), 2);
        assert_eq!(normal.len(), 2);
        assert!(idle.iter().all(|k| k.algorithm() == Algorithm::Es256));
        assert_ne!(idle[0].public_jwk(), idle[1].public_jwk());
    }

    #[tokio::test]
    async fn a_slow_idle_generation_falls_back_to_normal_priority() {
        // A patience far shorter than an RSA generation takes the fallback path; the
        // key still comes, and is whole.
        let keys = generate(Algorithm::Rs256, 1, Duration::from_nanos(1))
            .await
            .expect("fallback");
        assert_eq!(keys[0].algorithm(), Algorithm::Rs256);
        assert!(keys[0].sign(b"message").is_ok());
    }

    #[test]
    fn the_calling_thread_is_moved_to_sched_idle() {
        std::thread::spawn(|| {
            lower_own_priority();
            #[cfg(target_os = "linux")]
            assert_eq!(
                thread_priority::thread_schedule_policy().expect("policy"),
                thread_priority::ThreadSchedulePolicy::Normal(
                    thread_priority::NormalThreadSchedulePolicy::Idle
                )
            );
        })
        .join()
        .expect("thread");
    }
}
