//! Sealing of private keys at rest with AES-256-GCM.
//!
//! Sealed format, version 1:
//! `0x01 || master-key id (8 bytes) || nonce (12 bytes) || ciphertext || tag (16 bytes)`.
//! The nonce is fresh and random for every seal. The associated data binds the
//! ciphertext to its key's `kid`, so a ciphertext moved to another key's row fails to
//! open. The master-key id records which master key sealed it, so a database can be
//! re-sealed under a new master key (`jwks-server keys rewrap`) and an old key is
//! recognised as the wrong one instead of producing garbage.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hkdf;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::jwk::KeyId;

const VERSION: u8 = 1;
const ID_LEN: usize = 8;
const HEADER_LEN: usize = 1 + ID_LEN + NONCE_LEN;

/// Why a sealed key could not be opened or a master key not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The sealed blob is too short or of an unknown version.
    #[error("sealed key is malformed or of an unknown format version")]
    Malformed,
    /// The blob was sealed under a master key this server was not given.
    #[error("sealed under master key {found}, but the configured master key is {expected}")]
    WrongMasterKey {
        /// Id of the master key that sealed the blob.
        found: String,
        /// Id of the configured master key.
        expected: String,
    },
    /// Authentication failed: tampered ciphertext, or a ciphertext moved to another key.
    #[error("sealed key failed authentication (tampered, or moved from another key)")]
    Tampered,
    /// The master key text is not base64 of 32 bytes.
    #[error("master key must be base64 of exactly 32 bytes")]
    BadMasterKey,
    /// The crypto library failed.
    #[error("encryption failed")]
    Crypto,
}

/// A 256-bit master key. Its `Debug` shows only its public id, never the bytes.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    id: [u8; ID_LEN],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id={}, <redacted>)", self.id_hex())
    }
}

impl MasterKey {
    /// A master key from 32 raw bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut input = b"jwks-server master key id\0".to_vec();
        input.extend_from_slice(&bytes);
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&digest(&SHA256, &input).as_ref()[..ID_LEN]);
        Self { bytes, id }
    }

    /// A master key from base64 text of 32 bytes (`JWKS_MASTER_KEY`, key files).
    ///
    /// # Errors
    /// [`SealError::BadMasterKey`] if the text is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let raw = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadMasterKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| SealError::BadMasterKey)?;
        Ok(Self::from_bytes(bytes))
    }

    /// A master key stretched from an arbitrary secret string with HKDF-SHA256
    /// (`NOT_MY_KEY`). HKDF adds no work factor: the string should itself be a
    /// high-entropy secret.
    #[must_use]
    pub fn from_passphrase(secret: &str) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"jwks-server NOT_MY_KEY v1");
        let prk = salt.extract(secret.as_bytes());
        let mut bytes = [0; 32];
        prk.expand(&[b"master key"], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut bytes))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self::from_bytes(bytes)
    }

    /// A fresh random master key.
    ///
    /// # Errors
    /// [`SealError::Crypto`] if the system RNG fails.
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = [0; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SealError::Crypto)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as base64 text, for writing a key file. Handle the result as a secret.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// The public identifier recorded in every blob this key seals (hex).
    #[must_use]
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Seals and opens private keys under one master key.
pub struct Sealer {
    master: MasterKey,
    aead: RandomizedNonceKey,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

fn aad(kid: &KeyId) -> Vec<u8> {
    let mut aad = b"jwks-server sealed key v1\0".to_vec();
    aad.extend_from_slice(kid.as_str().as_bytes());
    aad
}

impl Sealer {
    /// A sealer for `master`.
    ///
    /// # Errors
    /// [`SealError::Crypto`] if the crypto library rejects the key.
    pub fn new(master: MasterKey) -> Result<Self, SealError> {
        let aead =
            RandomizedNonceKey::new(&AES_256_GCM, &master.bytes).map_err(|_| SealError::Crypto)?;
        Ok(Self { master, aead })
    }

    /// Seals `plaintext` (a PKCS#8 private key) for the key `kid`.
    ///
    /// # Errors
    /// [`SealError::Crypto`] if encryption fails.
    pub fn seal(&self, kid: &KeyId, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut body = plaintext.to_vec();
        let nonce = self
            .aead
            .seal_in_place_append_tag(Aad::from(aad(kid)), &mut body)
            .map_err(|_| SealError::Crypto)?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(VERSION);
        out.extend_from_slice(&self.master.id);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a blob sealed by [`Sealer::seal`] for the key `kid`.
    ///
    /// # Errors
    /// [`SealError::Malformed`], [`SealError::WrongMasterKey`] or [`SealError::Tampered`].
    pub fn open(&self, kid: &KeyId, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_LEN + AES_256_GCM.tag_len() || sealed[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let id = &sealed[1..=ID_LEN];
        if id != self.master.id {
            let found = id.iter().map(|b| format!("{b:02x}")).collect();
            return Err(SealError::WrongMasterKey {
                found,
                expected: self.master.id_hex(),
            });
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1 + ID_LEN..HEADER_LEN])
            .map_err(|_| SealError::Malformed)?;
        let mut body = sealed[HEADER_LEN..].to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(aad(kid)), &mut body)
            .map_err(|_| SealError::Tampered)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid(s: &str) -> KeyId {
        KeyId::from_stored(s.to_owned())
    }

    #[test]
    fn a_sealed_key_opens_for_its_own_kid_only() {
        let sealer = Sealer::new(MasterKey::generate().expect("rng")).expect("sealer");
        let sealed = sealer.seal(&kid("a"), b"private key bytes").expect("seal");
        assert!(!sealed.windows(17).any(|w| w == b"private key bytes"));
        assert_eq!(
            sealer.open(&kid("a"), &sealed).expect("open"),
            b"private key bytes"
        );
        assert_eq!(sealer.open(&kid("b"), &sealed), Err(SealError::Tampered));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let sealer = Sealer::new(MasterKey::generate().expect("rng")).expect("sealer");
        let one = sealer.seal(&kid("a"), b"same").expect("seal");
        let two = sealer.seal(&kid("a"), b"same").expect("seal");
        assert_ne!(one[..HEADER_LEN], two[..HEADER_LEN]);
    }

    #[test]
    fn tampering_and_wrong_master_keys_are_told_apart() {
        let sealer = Sealer::new(MasterKey::generate().expect("rng")).expect("sealer");
        let mut sealed = sealer.seal(&kid("a"), b"secret").expect("seal");
        let other = Sealer::new(MasterKey::generate().expect("rng")).expect("sealer");
        assert!(matches!(
            other.open(&kid("a"), &sealed),
            Err(SealError::WrongMasterKey { .. })
        ));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(sealer.open(&kid("a"), &sealed), Err(SealError::Tampered));
        assert_eq!(
            sealer.open(&kid("a"), &sealed[..10]),
            Err(SealError::Malformed)
        );
        sealed[0] = 9;
        assert_eq!(sealer.open(&kid("a"), &sealed), Err(SealError::Malformed));
    }

    #[test]
    fn master_keys_parse_from_base64_and_passphrases_deterministically() {
        let key = MasterKey::generate().expect("rng");
        let again = MasterKey::from_base64(&key.to_base64()).expect("parse");
        assert_eq!(key.id_hex(), again.id_hex());
        assert!(matches!(
            MasterKey::from_base64("c2hvcnQ="),
            Err(SealError::BadMasterKey)
        ));
        assert_eq!(
            MasterKey::from_passphrase("x").id_hex(),
            MasterKey::from_passphrase("x").id_hex()
        );
        assert_ne!(
            MasterKey::from_passphrase("x").id_hex(),
            MasterKey::from_passphrase("y").id_hex()
        );
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }
}
