//! Sealed key records as read from the database (`Sealer::open`) and the PKCS#8 they
//! hold (`SigningKey::from_pkcs8`). Input: the first byte picks the case.
//! - raw bytes opened as a stored record: never panics, never opens (no valid tag);
//! - bytes sealed, one byte flipped, opened: only the untouched record opens, to the same
//!   bytes, and only for its own key id;
//! - bytes parsed as PKCS#8 of each algorithm: never panics.
#![no_main]

use std::sync::LazyLock;

use jwks_server::keys::{Algorithm, KeyId, MasterKey, Sealer, SigningKey};
use libfuzzer_sys::fuzz_target;

static SEALER: LazyLock<Sealer> = LazyLock::new(|| {
    Sealer::new(MasterKey::from_passphrase("fuzz")).expect("a sealer for a fixed key")
});

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let kid = KeyId::from_stored("fuzz-kid".to_owned());
    match which % 3 {
        0 => assert!(SEALER.open(&kid, rest).is_err()),
        1 => {
            let Some((&at, plaintext)) = rest.split_first() else {
                return;
            };
            let mut sealed = SEALER.seal(&kid, plaintext).expect("seals");
            assert_eq!(SEALER.open(&kid, &sealed).expect("opens"), plaintext);
            let other = KeyId::from_stored("other-kid".to_owned());
            assert!(SEALER.open(&other, &sealed).is_err(), "bound to its key id");
            let at = usize::from(at) % sealed.len();
            sealed[at] ^= 0x01;
            assert!(SEALER.open(&kid, &sealed).is_err(), "byte {at} flipped");
        }
        _ => {
            for alg in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
                let _ = SigningKey::from_pkcs8(alg, rest);
            }
        }
    }
});
