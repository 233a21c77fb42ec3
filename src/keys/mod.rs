//! The key lifecycle: generation, public JWK export with its RFC 7638 `kid`, the
//! schedule every key follows (pending, active, retired, expired), pure planning of the
//! next keys ([`Lifecycle`]), the immutable [`KeySet`] snapshot that requests read, the
//! [`Rotator`] task that keeps the schedule ahead of the clock, leadership among
//! replicas, and the sealing of private keys for storage.
//!
//! It knows nothing of HTTP or SQL. It defines what it needs of storage ([`KeyStore`],
//! [`KeyChange`], [`KeyVersion`], [`RotationLease`]); `store/` implements that, and
//! `http/` only reads the published snapshot.

mod clock;
mod jwk;
mod keygen;
mod keyset;
mod leadership;
mod lifecycle;
mod metrics;
mod operations;
mod record;
mod rotator;
mod seal;
mod signing;
mod store;

pub use clock::{Clock, ManualClock, SystemClock, UnixMillis};
pub use jwk::{Jwk, KeyId};
pub use keyset::{Epoch, KeySet, KeySetHandle};
pub use leadership::SHARED_POLL;
pub use lifecycle::{Lifecycle, Operation, OperationPlan, OperationRefused, Plan};
pub use metrics::LifecycleMetrics;
pub use operations::{OperationError, Outcome, operate_on_store};
pub use record::{KeyRecord, KeyState, Schedule};
pub use rotator::{RotateError, Rotator};
pub use seal::{MasterKey, SealError, Sealer};
pub use signing::{Algorithm, SigningKey};
pub use store::{KeyChange, KeyInfo, KeyStore, KeyVersion, Revocation, RotationLease, Versioned};

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
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Claims could not be serialized.
    #[error("claims could not be serialized")]
    Json(#[source] serde_json::Error),
    /// A private key could not be exported for sealing.
    #[error("could not export a private key")]
    Export,
    /// A blocking key-generation task panicked or was cancelled.
    #[error("key generation task failed")]
    Task(#[source] tokio::task::JoinError),
}
