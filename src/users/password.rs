//! Password hashing with Argon2id (PHC strings), on the blocking pool, with a
//! semaphore bounding concurrent hashes so a burst cannot starve the server.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;

use super::{Password, UserError};

/// Argon2id with OWASP's recommended minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and verifies passwords off the async executor.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when a user does not exist so
    /// that the answer takes as long as for a user who does. Computed on first use, so
    /// start-up pays nothing for it.
    dummy: Arc<OnceLock<String>>,
    /// How many verifications ran against the dummy hash (for tests and metrics).
    dummy_checks: Arc<AtomicU64>,
}

impl PasswordHasher {
    /// A hasher running at most `max_concurrent` hashes at once.
    #[must_use]
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy: Arc::default(),
            dummy_checks: Arc::default(),
        }
    }

    /// Hashes `password` into a PHC string.
    ///
    /// # Errors
    /// [`UserError::Hash`] if hashing fails.
    pub async fn hash(&self, password: Password) -> Result<String, UserError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(UserError::HasherClosed)?;
        tokio::task::spawn_blocking(move || hash_blocking(password.expose()))
            .await
            .map_err(UserError::Task)?
    }

    /// Whether `password` matches `phc`. With no stored hash (unknown user) it checks
    /// against the dummy hash and answers `false`, taking the same time.
    ///
    /// # Errors
    /// [`UserError::Hash`] if the stored hash is not a valid PHC string.
    pub async fn verify(&self, password: Password, phc: Option<String>) -> Result<bool, UserError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(UserError::HasherClosed)?;
        let known = phc.is_some();
        if !known {
            self.dummy_checks.fetch_add(1, Ordering::Relaxed);
        }
        let dummy = Arc::clone(&self.dummy);
        let matched = tokio::task::spawn_blocking(move || {
            let phc = match phc {
                Some(phc) => phc,
                None => dummy_hash(&dummy)?.to_owned(),
            };
            let parsed = PasswordHash::new(&phc).map_err(UserError::Hash)?;
            Ok::<_, UserError>(
                argon2()
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await
        .map_err(UserError::Task)??;
        Ok(known && matched)
    }
}

impl PasswordHasher {
    /// How many verifications ran against the dummy hash so far.
    #[must_use]
    pub fn dummy_checks(&self) -> u64 {
        self.dummy_checks.load(Ordering::Relaxed)
    }
}

fn dummy_hash(cell: &OnceLock<String>) -> Result<&str, UserError> {
    if cell.get().is_none() {
        let random = crate::token::uuid_v4().map_err(|_| UserError::Random)?;
        // A concurrent first use may have set it already; either hash serves.
        let _ = cell.set(hash_blocking(&random)?);
    }
    Ok(cell.get().map(String::as_str).expect("set just above"))
}

fn hash_blocking(password: &str) -> Result<String, UserError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| UserError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(UserError::Hash)?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(UserError::Hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hasher = PasswordHasher::new(2);
        let hash = hasher
            .hash(Password::new("correct horse".into()))
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.contains("correct horse"));
        assert!(
            hasher
                .verify(Password::new("correct horse".into()), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify(Password::new("wrong".into()), Some(hash))
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn an_unknown_user_is_checked_against_the_dummy_hash_and_fails() {
        let hasher = PasswordHasher::new(1);
        assert!(
            !hasher
                .verify(Password::new("anything".into()), None)
                .await
                .expect("verify")
        );
        assert_eq!(hasher.dummy_checks(), 1);
        assert!(
            hasher
                .verify(Password::new("x".into()), Some("not a phc".into()))
                .await
                .is_err()
        );
    }
}
