//! Public JWKs (RFC 7517) and their RFC 7638 thumbprints, which serve as `kid`.
//!
//! [`Jwk`] has no field for a private member (`d`, `p`, `q`, `dp`, `dq`, `qi`): a
//! private parameter cannot be published because it cannot be represented.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// A key identifier: the base64url RFC 7638 JWK thumbprint (SHA-256) of the public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// Wraps a stored identifier. The store checks it against the key's own thumbprint.
    #[must_use]
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The identifier as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public half of a signing key, as published in the JWK Set.
///
/// Members are serialized in this order; absent ones are skipped. All binary values
/// are base64url without padding (RFC 7515 §2), and RSA integers carry no leading zero
/// octets (RFC 7518 §6.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    kty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    kid: KeyId,
    #[serde(rename = "use")]
    usage: &'static str,
    alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

impl Jwk {
    /// An RSA public key from its big-endian modulus and exponent.
    #[must_use]
    pub fn rsa(modulus: &[u8], exponent: &[u8]) -> Self {
        let n = b64(strip_leading_zeros(modulus));
        let e = b64(strip_leading_zeros(exponent));
        // RFC 7638 §3.2: required members only, in lexicographic order, no whitespace.
        let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
        Self {
            kty: "RSA",
            crv: None,
            kid,
            usage: "sig",
            alg: "RS256",
            n: Some(n),
            e: Some(e),
            x: None,
            y: None,
        }
    }

    /// A P-256 public key from its affine coordinates (32 bytes each).
    #[must_use]
    pub fn ec_p256(x: &[u8], y: &[u8]) -> Self {
        let (x, y) = (b64(x), b64(y));
        let kid = thumbprint(&format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ));
        Self {
            kty: "EC",
            crv: Some("P-256"),
            kid,
            usage: "sig",
            alg: "ES256",
            n: None,
            e: None,
            x: Some(x),
            y: Some(y),
        }
    }

    /// An Ed25519 public key (RFC 8037 §2).
    #[must_use]
    pub fn ed25519(public: &[u8]) -> Self {
        let x = b64(public);
        let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        Self {
            kty: "OKP",
            crv: Some("Ed25519"),
            kid,
            usage: "sig",
            alg: "EdDSA",
            n: None,
            e: None,
            x: Some(x),
            y: None,
        }
    }

    /// The key's identifier (its RFC 7638 thumbprint).
    #[must_use]
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }
}

/// RFC 7638 §3: base64url(SHA-256(canonical JSON of the required members)).
fn thumbprint(canonical: &str) -> KeyId {
    KeyId(b64(digest(&SHA256, canonical.as_bytes()).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    // RFC 7638 §3.1, the worked example.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rsa_thumbprint_matches_the_rfc_7638_example() {
        let n = URL_SAFE_NO_PAD.decode(RFC7638_N).expect("n");
        let e = URL_SAFE_NO_PAD.decode("AQAB").expect("e");
        let jwk = Jwk::rsa(&n, &e);
        assert_eq!(
            jwk.kid().as_str(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn leading_zero_octets_are_stripped_and_do_not_change_the_kid() {
        let n = URL_SAFE_NO_PAD.decode(RFC7638_N).expect("n");
        let mut padded = vec![0, 0];
        padded.extend_from_slice(&n);
        let jwk = Jwk::rsa(&padded, &[0, 1, 0, 1]);
        assert_eq!(
            jwk.kid().as_str(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        let json = serde_json::to_value(&jwk).expect("json");
        assert_eq!(json["e"], "AQAB");
        assert_eq!(json["n"], RFC7638_N);
    }

    #[test]
    fn ed25519_thumbprint_matches_rfc_8037_appendix_a3() {
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("x");
        let jwk = Jwk::ed25519(&x);
        assert_eq!(
            jwk.kid().as_str(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn json_members_are_exactly_the_public_ones() {
        let rsa = serde_json::to_value(Jwk::rsa(&[1, 2, 3], &[1, 0, 1])).expect("json");
        let mut keys: Vec<_> = rsa.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["alg", "e", "kid", "kty", "n", "use"]);
        let ec = serde_json::to_value(Jwk::ec_p256(&[7; 32], &[9; 32])).expect("json");
        let mut keys: Vec<_> = ec.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(ec["crv"], "P-256");
        let okp = serde_json::to_value(Jwk::ed25519(&[3; 32])).expect("json");
        assert_eq!(okp["kty"], "OKP");
        assert_eq!(okp["crv"], "Ed25519");
        assert!(okp.get("y").is_none() && okp.get("d").is_none());
    }
}
