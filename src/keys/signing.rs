//! Private key material: generation with aws-lc-rs, PKCS#8 import/export for sealing,
//! and signing. A [`SigningKey`] is parsed once and cached, so issuing a token never
//! re-parses a private key.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};

use super::KeyError;
use super::jwk::Jwk;

/// A JWS signing algorithm this server can issue tokens with (RFC 7518 §3.1, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over an RSA-2048 key.
    Rs256,
    /// ECDSA over P-256 with SHA-256.
    Es256,
    /// EdDSA over Ed25519.
    EdDsa,
}

impl Algorithm {
    /// The `alg` value as it appears in a JWS header and a JWK.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(format!(
                "unknown algorithm '{other}' (expected RS256, ES256 or EdDSA)"
            )),
        }
    }
}

/// A parsed private key, ready to sign. Its `Debug` never shows key material.
pub enum SigningKey {
    /// An RSA key pair (RS256).
    Rsa(signature::RsaKeyPair),
    /// A P-256 key pair (ES256).
    Ec(EcdsaKeyPair),
    /// An Ed25519 key pair (EdDSA).
    Ed(Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.algorithm())
    }
}

impl SigningKey {
    /// Generates a fresh key pair. RSA generation is slow (tens of milliseconds, with
    /// spikes past 100 ms): call it on the blocking pool.
    ///
    /// # Errors
    /// [`KeyError::Generate`] if the crypto library fails.
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let failed = |_| KeyError::Generate(alg);
        Ok(match alg {
            Algorithm::Rs256 => {
                Self::Rsa(signature::RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?)
            }
            Algorithm::Es256 => {
                Self::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?)
            }
            Algorithm::EdDsa => Self::Ed(Ed25519KeyPair::generate().map_err(failed)?),
        })
    }

    /// Parses a PKCS#8 document produced by [`SigningKey::to_pkcs8`].
    ///
    /// # Errors
    /// [`KeyError::Parse`] if the bytes are not a valid key of that algorithm.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let parse = |e: aws_lc_rs::error::KeyRejected| KeyError::Parse {
            alg,
            reason: e.to_string(),
        };
        Ok(match alg {
            Algorithm::Rs256 => Self::Rsa(signature::RsaKeyPair::from_pkcs8(der).map_err(parse)?),
            Algorithm::Es256 => Self::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(parse)?,
            ),
            Algorithm::EdDsa => Self::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(parse)?),
        })
    }

    /// Exports the private key as a PKCS#8 v1 DER document, for sealing.
    ///
    /// # Errors
    /// [`KeyError::Export`] if the crypto library fails.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, KeyError> {
        let der = match self {
            Self::Rsa(k) => AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(k)
                .map_err(|_| KeyError::Export)?
                .as_ref()
                .to_vec(),
            Self::Ec(k) => k
                .to_pkcs8v1()
                .map_err(|_| KeyError::Export)?
                .as_ref()
                .to_vec(),
            Self::Ed(k) => k
                .to_pkcs8v1()
                .map_err(|_| KeyError::Export)?
                .as_ref()
                .to_vec(),
        };
        Ok(der)
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        match self {
            Self::Rsa(_) => Algorithm::Rs256,
            Self::Ec(_) => Algorithm::Es256,
            Self::Ed(_) => Algorithm::EdDsa,
        }
    }

    /// The public half as a JWK, with its RFC 7638 thumbprint as `kid`.
    #[must_use]
    pub fn public_jwk(&self) -> Jwk {
        match self {
            Self::Rsa(k) => {
                let public = k.public_key();
                Jwk::rsa(
                    public.modulus().big_endian_without_leading_zero(),
                    public.exponent().big_endian_without_leading_zero(),
                )
            }
            // An uncompressed SEC1 point: 0x04 || x || y, 32 bytes each for P-256.
            Self::Ec(k) => {
                let point = k.public_key().as_ref();
                Jwk::ec_p256(&point[1..33], &point[33..65])
            }
            Self::Ed(k) => Jwk::ed25519(k.public_key().as_ref()),
        }
    }

    /// Signs `message` and returns the JWS signature bytes (RFC 7518 §3.3, §3.4; for
    /// ES256 the fixed-width `R || S` form).
    ///
    /// # Errors
    /// [`KeyError::Sign`] if the crypto library fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Self::Ec(k) => Ok(k
                .sign(&SystemRandom::new(), message)
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec()),
            Self::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

impl SigningKey {
    /// Whether `signature` is this key's signature of `message` (checked with the public
    /// half only, as a verifier would).
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
        };
        match self {
            Self::Rsa(k) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k.public_key().as_ref())
                    .verify(message, signature)
                    .is_ok()
            }
            Self::Ec(k) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.public_key().as_ref())
                    .verify(message, signature)
                    .is_ok()
            }
            Self::Ed(k) => UnparsedPublicKey::new(&ED25519, k.public_key().as_ref())
                .verify(message, signature)
                .is_ok(),
        }
    }

    /// The public key as a PEM `PUBLIC KEY` document (RFC 7468 §13: SubjectPublicKeyInfo,
    /// base64 in 64-character lines, a final newline), as `openssl pkey -pubout` writes it.
    ///
    /// # Errors
    /// [`KeyError::Export`] if the crypto library cannot encode it.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        use aws_lc_rs::encoding::PublicKeyX509Der;
        use base64::Engine as _;
        let der = match self {
            Self::Rsa(k) => AsDer::<PublicKeyX509Der<'static>>::as_der(k.public_key()),
            Self::Ec(k) => AsDer::<PublicKeyX509Der<'static>>::as_der(k.public_key()),
            Self::Ed(k) => AsDer::<PublicKeyX509Der<'static>>::as_der(k.public_key()),
        }
        .map_err(|_| KeyError::Export)?;
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).map_err(|_| KeyError::Export)?);
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Ok(pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_pkcs8_with_the_same_public_key() {
        for alg in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
            let key = SigningKey::generate(alg).expect("generate");
            let der = key.to_pkcs8().expect("export");
            let again = SigningKey::from_pkcs8(alg, &der).expect("import");
            assert_eq!(key.public_jwk(), again.public_jwk(), "{alg}");
            assert_eq!(again.algorithm(), alg);
        }
    }

    #[test]
    fn pkcs8_of_one_algorithm_does_not_parse_as_another() {
        let der = SigningKey::generate(Algorithm::EdDsa)
            .expect("generate")
            .to_pkcs8()
            .expect("export");
        assert!(SigningKey::from_pkcs8(Algorithm::Es256, &der).is_err());
        assert!(SigningKey::from_pkcs8(Algorithm::Rs256, b"garbage").is_err());
    }

    #[test]
    fn signatures_verify_under_the_public_key_only_when_untouched() {
        for alg in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
            let key = SigningKey::generate(alg).expect("generate");
            let mut sig = key.sign(b"message").expect("sign");
            assert!(key.verify(b"message", &sig), "{alg}");
            assert!(!key.verify(b"massage", &sig), "{alg}");
            sig[0] ^= 1;
            assert!(!key.verify(b"message", &sig), "{alg}");
            let pem = key.public_key_pem().expect("pem");
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{alg}");
            assert!(pem.ends_with("\n-----END PUBLIC KEY-----\n"), "{alg}");
            assert!(pem.lines().all(|l| l.len() <= 64));
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = SigningKey::generate(Algorithm::Es256).expect("generate");
        assert_eq!(format!("{key:?}"), "SigningKey(ES256, <redacted>)");
    }

    #[test]
    fn algorithm_names_parse_and_print_as_in_rfc_7518() {
        for alg in [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa] {
            assert_eq!(alg.as_str().parse::<Algorithm>(), Ok(alg));
        }
        assert!("HS256".parse::<Algorithm>().is_err());
    }
}
