//! What the SQL backends share: turning a stored row back into a [`KeyRecord`] (open the
//! sealed key, parse it, check it against its recorded thumbprint) and sealing a record
//! for storage.

use std::str::FromStr;
use std::sync::Arc;

use super::StoreError;
use crate::keys::{Algorithm, KeyId, KeyRecord, Schedule, Sealer, SigningKey};

/// A key row as stored, before it is opened.
pub(super) struct StoredKey {
    pub(super) thumbprint: String,
    pub(super) alg: String,
    pub(super) sealed: Vec<u8>,
    pub(super) schedule: Schedule,
}

/// Opens a stored key.
///
/// # Errors
/// [`StoreError::WrongMasterKey`] when another master key sealed it; [`StoreError::Corrupt`]
/// for a tampered, moved or unparsable key.
pub(super) fn open(sealer: &Sealer, row: StoredKey) -> Result<Arc<KeyRecord>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        kid: row.thumbprint.clone(),
        reason,
    };
    let alg = Algorithm::from_str(&row.alg).map_err(corrupt)?;
    let kid = KeyId::from_stored(row.thumbprint.clone());
    let der = sealer.open(&kid, &row.sealed).map_err(|e| match e {
        crate::keys::SealError::WrongMasterKey { .. } => StoreError::WrongMasterKey(e.to_string()),
        other => corrupt(other.to_string()),
    })?;
    let key = SigningKey::from_pkcs8(alg, &der).map_err(|e| corrupt(e.to_string()))?;
    let record = KeyRecord::new(key, row.schedule);
    if record.kid != kid {
        return Err(corrupt(
            "the key does not match its recorded thumbprint".into(),
        ));
    }
    Ok(record)
}

/// Seals a record's private key for its row.
///
/// # Errors
/// [`StoreError::Database`] if export or encryption fails.
pub(super) fn seal(sealer: &Sealer, record: &KeyRecord) -> Result<Vec<u8>, StoreError> {
    let der = record
        .key
        .to_pkcs8()
        .map_err(|e| StoreError::Database(e.to_string()))?;
    sealer
        .seal(&record.kid, &der)
        .map_err(|e| StoreError::Database(e.to_string()))
}

/// `keys.exp`: the key's `exp` in whole Unix seconds, rounded up.
pub(super) fn exp_seconds(expires_at_ms: i64) -> i64 {
    expires_at_ms.div_euclid(1000) + i64::from(expires_at_ms.rem_euclid(1000) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_rounds_up_to_whole_seconds() {
        assert_eq!(exp_seconds(1_000), 1);
        assert_eq!(exp_seconds(1_001), 2);
        assert_eq!(exp_seconds(-500), 0);
    }
}
