//! The key lifecycle: generation, public JWK export with its RFC 7638 `kid`, the
//! schedule every key follows (pending, active, retired, expired), the immutable
//! [`KeySet`] snapshot that requests read, the [`Rotator`] task that keeps the schedule
//! ahead of the clock, and the sealing of private keys for storage.
//!
//! It knows nothing of HTTP or SQL: the store persists [`KeyRecord`]s through the
//! [`crate::store::KeyStore`] trait, and `http/` only reads the published snapshot.

mod clock;
mod jwk;
mod keygen;
mod keyset;
mod record;
mod rotator;
mod seal;
mod signing;

pub use clock::{Clock, ManualClock, SystemClock, UnixMillis};
pub use jwk::{Jwk, KeyId};
pub use keyset::{Epoch, KeySet, KeySetHandle};
pub use record::{KeyRecord, KeyState, Schedule};
pub use rotator::{Lifecycle, Plan, RotateError, Rotator, SHARED_POLL};
pub use seal::{MasterKey, SealError, Sealer};
pub use signing::{Algorithm, SigningKey};

/// Everything that can go wrong inside the key domain.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The crypto library refused to generate a key pair.
    #[error("could not generate a {0} key pair")]
    Generate(Algorithm),
    /// Stored private key bytes did not parse as a key of the recorded algorithm.
    #[error("stored private key for {alg} does not parse: {reason}")]
    Parse {
        /// The algorithm the key was recorded with.
        alg: Algorithm,
        /// What the crypto library said.
        reason: String,
    },
    /// The crypto library failed to sign (it never should for a valid key).
    #[error("signing failed")]
    Sign,
    /// A private key could not be exported for sealing.
    #[error("could not export a private key")]
    Export,
    /// A blocking key-generation task panicked or was cancelled.
    #[error("key generation task failed: {0}")]
    Task(String),
}
