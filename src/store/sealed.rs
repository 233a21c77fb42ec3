//! What the SQL backends share about private keys: turning a stored row back into a
//! [`KeyRecord`] (open the sealed key, parse it, check it against its recorded
//! thumbprint) and sealing a record for storage.

use std::sync::Arc;

use crate::keys::{KeyInfo, KeyRecord, SealError, Sealer, SigningKey};
use crate::persist::StoreError;

/// A key row as stored, before it is opened.
pub(super) struct StoredKey {
    /// Its id, algorithm and schedule.
    pub(super) info: KeyInfo,
    /// The sealed PKCS#8 private key.
    pub(super) sealed: Vec<u8>,
}

/// Opens a stored key.
///
/// # Errors
/// [`StoreError::WrongMasterKey`] when another master key sealed it; [`StoreError::Corrupt`]
/// for a tampered, moved or unparsable key.
pub(super) fn open(sealer: &Sealer, row: StoredKey) -> Result<Arc<KeyRecord>, StoreError> {
    let KeyInfo {
        kid, alg, schedule, ..
    } = row.info;
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
        kid: kid.to_string(),
        source,
    };
    let der = sealer.open(&kid, &row.sealed).map_err(|e| match e {
        SealError::WrongMasterKey { found, expected } => {
            StoreError::WrongMasterKey { found, expected }
        }
        other => corrupt(other.into()),
    })?;
    let key = SigningKey::from_pkcs8(alg, &der).map_err(|e| corrupt(e.into()))?;
    let record = KeyRecord::new(key, schedule);
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
/// [`StoreError::Seal`] if export or encryption fails.
pub(super) fn seal(sealer: &Sealer, record: &KeyRecord) -> Result<Vec<u8>, StoreError> {
    let der = record
        .key
        .to_pkcs8()
        .map_err(|e| StoreError::Seal(e.into()))?;
    sealer
        .seal(&record.kid, &der)
        .map_err(|e| StoreError::Seal(e.into()))
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
