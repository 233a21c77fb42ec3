//! The checks of a JWK Set document (RFC 7517 §5) and the verification keys it yields.
//!
//! Everything here reads the document as given, from raw JSON: it does not reuse
//! [`crate::keys::Jwk`], since a conformance check must not trust the code it checks
//! (the RFC 7638 thumbprint is computed again, independently). Key members are decoded
//! strictly: base64url without padding and without stray trailing bits (RFC 7515 §2).

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::{Check, shown};

/// Members that hold private or symmetric key material: RSA (RFC 7518 §6.3.2), EC
/// (§6.2.2), OKP (RFC 8037 §2) and `oct` (§6.4.1). None may appear in a published set.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"];

/// The smallest RSA modulus worth trusting (RFC 7518 §3.3: 2048 bits or larger).
const MIN_RSA_BITS: usize = 2048;

/// Public key material this verifier can use.
#[derive(Debug, Clone)]
enum Material {
    /// RSA modulus and exponent, big-endian (RFC 7518 §6.3.1).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed SEC1 P-256 point, `0x04 || x || y` (RFC 7518 §6.2.1).
    P256 { point: Vec<u8> },
    /// An Ed25519 public key (RFC 8037 §2).
    Ed25519 { x: Vec<u8> },
}

impl Material {
    /// The JWS `alg` this key verifies (RFC 7518 §3.1, RFC 8037 §3.1).
    const fn alg(&self) -> &'static str {
        match self {
            Self::Rsa { .. } => "RS256",
            Self::P256 { .. } => "ES256",
            Self::Ed25519 { .. } => "EdDSA",
        }
    }
}

/// A published key the verifier can check signatures with.
#[derive(Debug, Clone)]
pub(super) struct PublicKey {
    kid: Option<String>,
    alg: Option<String>,
    material: Material,
}

impl PublicKey {
    /// The JWS `alg` this key verifies: its own `alg` member must agree (RFC 7517 §4.4).
    pub(super) fn alg(&self) -> &'static str {
        self.material.alg()
    }

    /// Whether the key's `alg` member, when present, names `alg`.
    pub(super) fn allows(&self, alg: &str) -> bool {
        self.alg.as_deref().is_none_or(|own| own == alg) && self.alg() == alg
    }

    /// Verifies a JWS signature over `message` (RFC 7515 §5.2 step 8). For ES256 the
    /// signature is the 64-byte `R || S` (RFC 7518 §3.4), never DER.
    pub(super) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Material::P256 { point } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok(),
            Material::Ed25519 { x } => UnparsedPublicKey::new(&ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// The usable keys of a JWK Set, looked up by `kid`.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyRing {
    keys: Vec<PublicKey>,
    kids: BTreeSet<String>,
}

impl KeyRing {
    /// The keys published under `kid`.
    pub(super) fn find<'a>(&'a self, kid: &'a str) -> impl Iterator<Item = &'a PublicKey> {
        self.keys
            .iter()
            .filter(move |key| key.kid.as_deref() == Some(kid))
    }

    /// Whether any key of the set, usable or not, is published under `kid`.
    pub(super) fn publishes(&self, kid: &str) -> bool {
        self.kids.contains(kid)
    }
}

/// Checks a JWKS document; the key ring is `None` when the document is not a JWK Set
/// at all (then only the shape line is reported).
pub(super) fn check_document(body: &[u8]) -> (Vec<Check>, Option<KeyRing>) {
    let keys = match shape(body) {
        Ok(keys) => keys,
        Err(detail) => return (vec![Check::fail("jwks shape", detail)], None),
    };
    let mut checks = vec![if keys.is_empty() {
        Check::warn(
            "jwks shape",
            "{\"keys\": []}: no key, so no token can verify",
        )
    } else {
        Check::pass(
            "jwks shape",
            format!("{{\"keys\": [...]}} with {} key(s)", keys.len()),
        )
    }];
    checks.push(private_members(&keys));
    checks.push(unique_kids(&keys));
    checks.push(use_and_alg(&keys));
    let mut ring = KeyRing::default();
    let mut problems = Vec::new();
    let mut unchecked = Vec::new();
    let mut not_thumbprints = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let label = label(key, i);
        if let Some(kid) = key.get("kid").and_then(Value::as_str) {
            ring.kids.insert(kid.to_owned());
        }
        match material(key) {
            Ok(Some((material, canonical))) => {
                let kid = key.get("kid").and_then(Value::as_str);
                // RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace.
                let thumbprint = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
                if kid.is_some_and(|kid| kid != thumbprint) {
                    not_thumbprints.push(format!("{label} (thumbprint {thumbprint})"));
                }
                ring.keys.push(PublicKey {
                    kid: kid.map(str::to_owned),
                    alg: key.get("alg").and_then(Value::as_str).map(str::to_owned),
                    material,
                });
            }
            Ok(None) => unchecked.push(label),
            Err(problem) => problems.push(format!("{label}: {problem}")),
        }
    }
    checks.push(if !problems.is_empty() {
        Check::fail("key material", problems.join("; "))
    } else if !unchecked.is_empty() {
        Check::warn(
            "key material",
            format!(
                "not checked (kty/crv unknown here): {}",
                unchecked.join(", ")
            ),
        )
    } else {
        let kinds: BTreeSet<&str> = ring
            .keys
            .iter()
            .map(|key| match key.material {
                Material::Rsa { .. } => "RSA n/e minimal unpadded base64url, >= 2048 bits",
                Material::P256 { .. } => "EC P-256 x/y 32 bytes",
                Material::Ed25519 { .. } => "Ed25519 x 32 bytes",
            })
            .collect();
        Check::pass(
            "key material",
            kinds.into_iter().collect::<Vec<_>>().join("; "),
        )
    });
    checks.push(if not_thumbprints.is_empty() {
        Check::pass(
            "RFC 7638 kids",
            format!(
                "every kid of {} checked key(s) is its thumbprint",
                ring.keys.len()
            ),
        )
    } else {
        Check::warn(
            "RFC 7638 kids",
            format!("kid is not the thumbprint: {}", not_thumbprints.join(", ")),
        )
    });
    (checks, Some(ring))
}

/// RFC 7517 §5: an object whose `keys` member is an array of JWKs, each an object with
/// a string `kty` (§4.1).
fn shape(body: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {}", shown(&e.to_string())))?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWK Set: no \"keys\" array (RFC 7517 §5)")?;
    keys.iter()
        .enumerate()
        .map(|(i, key)| match key {
            Value::Object(members) if members.get("kty").is_some_and(Value::is_string) => {
                Ok(members.clone())
            }
            Value::Object(_) => Err(format!("key #{i} has no string \"kty\" (RFC 7517 §4.1)")),
            _ => Err(format!("key #{i} is not a JSON object")),
        })
        .collect()
}

/// How a key is named in a detail: its kid, else its position.
fn label(key: &Map<String, Value>, i: usize) -> String {
    match key.get("kid").and_then(Value::as_str) {
        Some(kid) => format!("kid {}", shown(kid)),
        None => format!("key #{i}"),
    }
}

fn private_members(keys: &[Map<String, Value>]) -> Check {
    let leaks: Vec<String> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| {
            let found: Vec<&str> = PRIVATE_MEMBERS
                .into_iter()
                .filter(|m| key.contains_key(*m))
                .collect();
            (!found.is_empty()).then(|| format!("{}: {}", label(key, i), found.join(", ")))
        })
        .collect();
    if leaks.is_empty() {
        Check::pass(
            "private members",
            "none of d, p, q, dp, dq, qi, k, oth is published",
        )
    } else {
        Check::fail(
            "private members",
            format!("private key material published: {}", leaks.join("; ")),
        )
    }
}

/// RFC 7517 §4.5: keys of one set SHOULD have distinct `kid` values; a verifier picks the
/// key by the token's `kid` (RFC 7515 §4.1.4).
fn unique_kids(keys: &[Map<String, Value>]) -> Check {
    let mut seen = BTreeMap::<&str, usize>::new();
    let mut missing = 0;
    for key in keys {
        match key.get("kid").and_then(Value::as_str) {
            Some(kid) => *seen.entry(kid).or_default() += 1,
            None => missing += 1,
        }
    }
    let duplicates: Vec<String> = seen
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(kid, count)| format!("{} ({count}x)", shown(kid)))
        .collect();
    if !duplicates.is_empty() {
        Check::fail(
            "unique kids",
            format!("duplicate kid: {}", duplicates.join(", ")),
        )
    } else if missing > 0 {
        Check::warn(
            "unique kids",
            format!("{missing} key(s) without a kid: verifiers cannot pick them by kid"),
        )
    } else {
        Check::pass("unique kids", format!("{} distinct kid(s)", seen.len()))
    }
}

/// The `alg` values a key of this `kty`/`crv` may carry for signing (RFC 7518 §3.1,
/// RFC 8037 §3.1; `Ed25519`/`Ed448` are the fully specified names of RFC 9864).
fn signing_algs(kty: &str, crv: Option<&str>) -> Option<&'static [&'static str]> {
    Some(match (kty, crv) {
        ("RSA", _) => &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        ("EC", Some("P-256")) => &["ES256"],
        ("EC", Some("P-384")) => &["ES384"],
        ("EC", Some("P-521")) => &["ES512"],
        ("EC", Some("secp256k1")) => &["ES256K"],
        ("OKP", Some("Ed25519")) => &["EdDSA", "Ed25519"],
        ("OKP", Some("Ed448")) => &["EdDSA", "Ed448"],
        ("oct", _) => &["HS256", "HS384", "HS512"],
        _ => return None,
    })
}

/// `use` (RFC 7517 §4.2) and `alg` (§4.4): absent is a warning (both are optional, but
/// verifiers that select keys by them skip a key without them); present but
/// contradicting the key type is a failure.
fn use_and_alg(keys: &[Map<String, Value>]) -> Check {
    let mut wrong = Vec::new();
    let mut absent = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let label = label(key, i);
        let kty = key.get("kty").and_then(Value::as_str).unwrap_or_default();
        let crv = key.get("crv").and_then(Value::as_str);
        match key.get("use") {
            None => absent.push(format!("{label}: no use")),
            Some(Value::String(usage)) if usage == "sig" || usage == "enc" => {}
            Some(other) => wrong.push(format!("{label}: use {}", shown(&other.to_string()))),
        }
        match key.get("alg") {
            None => absent.push(format!("{label}: no alg")),
            Some(Value::String(alg)) => match signing_algs(kty, crv) {
                Some(allowed) if allowed.contains(&alg.as_str()) => {}
                Some(_) if key.get("use").and_then(Value::as_str) == Some("enc") => {}
                Some(_) => wrong.push(format!(
                    "{label}: alg {} does not fit kty {}{}",
                    shown(alg),
                    shown(kty),
                    crv.map(|c| format!("/{}", shown(c))).unwrap_or_default()
                )),
                None => absent.push(format!(
                    "{label}: alg {} not checked for kty {}",
                    shown(alg),
                    shown(kty)
                )),
            },
            Some(other) => wrong.push(format!("{label}: alg {}", shown(&other.to_string()))),
        }
    }
    if !wrong.is_empty() {
        Check::fail("use/alg", wrong.join("; "))
    } else if !absent.is_empty() {
        Check::warn("use/alg", absent.join("; "))
    } else {
        Check::pass(
            "use/alg",
            "present on every key and consistent with kty/crv",
        )
    }
}

/// A required string member, decoded as strict base64url.
fn member(key: &Map<String, Value>, name: &str) -> Result<(String, Vec<u8>), String> {
    let text = key
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no string \"{name}\""))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("\"{name}\" is not unpadded base64url (RFC 7515 §2)"))?;
    Ok((text.to_owned(), bytes))
}

/// The key's material and its RFC 7638 canonical JSON; `None` for a key type this
/// verifier does not use; a reason when the members break their RFC's encoding rules.
fn material(key: &Map<String, Value>) -> Result<Option<(Material, String)>, String> {
    let kty = key.get("kty").and_then(Value::as_str).unwrap_or_default();
    let crv = key.get("crv").and_then(Value::as_str);
    let canonical = |members: &[(&str, &str)]| {
        let sorted: BTreeMap<&str, &str> = members.iter().copied().collect();
        serde_json::to_string(&sorted).unwrap_or_default()
    };
    match (kty, crv) {
        ("RSA", _) => {
            let (n_text, n) = member(key, "n")?;
            let (e_text, e) = member(key, "e")?;
            // RFC 7518 §6.3.1.1 and §6.3.1.2: the minimal octets, no leading zero.
            for (name, bytes) in [("n", &n), ("e", &e)] {
                if bytes.is_empty() {
                    return Err(format!("\"{name}\" is empty"));
                }
                if bytes.first() == Some(&0) {
                    return Err(format!(
                        "\"{name}\" has a leading zero octet (RFC 7518 §6.3.1: minimal octets)"
                    ));
                }
            }
            let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "modulus of {bits} bits (RFC 7518 §3.3: at least {MIN_RSA_BITS})"
                ));
            }
            let json = canonical(&[("e", &e_text), ("kty", "RSA"), ("n", &n_text)]);
            Ok(Some((Material::Rsa { n, e }, json)))
        }
        ("EC", None) => Err("no \"crv\" (RFC 7518 §6.2.1.1)".into()),
        ("EC", Some("P-256")) => {
            let (x_text, x) = member(key, "x")?;
            let (y_text, y) = member(key, "y")?;
            // RFC 7518 §6.2.1.2, §6.2.1.3: the full coordinate size, 32 octets for P-256.
            for (name, bytes) in [("x", &x), ("y", &y)] {
                if bytes.len() != 32 {
                    return Err(format!(
                        "\"{name}\" is {} bytes, not 32 (RFC 7518 §6.2.1)",
                        bytes.len()
                    ));
                }
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let json = canonical(&[
                ("crv", "P-256"),
                ("kty", "EC"),
                ("x", &x_text),
                ("y", &y_text),
            ]);
            Ok(Some((Material::P256 { point }, json)))
        }
        ("OKP", None) => Err("no \"crv\" (RFC 8037 §2)".into()),
        ("OKP", Some("Ed25519")) => {
            let (x_text, x) = member(key, "x")?;
            if x.len() != 32 {
                return Err(format!("\"x\" is {} bytes, not 32 (RFC 8037 §2)", x.len()));
            }
            let json = canonical(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", &x_text)]);
            Ok(Some((Material::Ed25519 { x }, json)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, SigningKey};
    use crate::selftest::Outcome;

    fn outcome(checks: &[Check], name: &str) -> Outcome {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} in {checks:?}"))
            .outcome
    }

    fn set_of(keys: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).expect("json")
    }

    fn our_key(alg: Algorithm) -> Value {
        let key = SigningKey::generate(alg).expect("generate");
        serde_json::to_value(key.public_jwk()).expect("json")
    }

    #[test]
    fn our_own_keys_pass_every_check() {
        let body = set_of(vec![
            our_key(Algorithm::Rs256),
            our_key(Algorithm::Es256),
            our_key(Algorithm::EdDsa),
        ]);
        let (checks, ring) = check_document(&body);
        assert!(
            checks.iter().all(|c| c.outcome == Outcome::Pass),
            "{checks:?}"
        );
        assert_eq!(ring.expect("ring").keys.len(), 3);
    }

    #[test]
    fn the_rfc_7638_example_kid_is_recognised_as_a_thumbprint() {
        // RFC 7638 §3.1, with a kid that is its thumbprint.
        let key = serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "e": "AQAB",
            "kid": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        });
        let (checks, _) = check_document(&set_of(vec![key.clone()]));
        assert_eq!(outcome(&checks, "RFC 7638 kids"), Outcome::Pass);
        let mut renamed = key;
        renamed["kid"] = "key-1".into();
        let (checks, _) = check_document(&set_of(vec![renamed]));
        assert_eq!(outcome(&checks, "RFC 7638 kids"), Outcome::Warn);
    }

    #[test]
    fn each_defect_fails_its_own_line() {
        let good = our_key(Algorithm::Es256);
        type Edit = fn(&mut Value);
        let cases: [(&str, Edit); 6] = [
            ("private members", |k| k["d"] = "AAAA".into()),
            ("use/alg", |k| k["alg"] = "RS256".into()),
            ("key material", |k| k["x"] = "AAAA".into()),
            ("key material", |k| k["y"] = "not base64!".into()),
            ("key material", |k| {
                k.as_object_mut().expect("object").remove("crv");
            }),
            ("use/alg", |k| k["use"] = Value::from(7)),
        ];
        for (line, break_it) in cases {
            let mut key = good.clone();
            break_it(&mut key);
            let (checks, _) = check_document(&set_of(vec![key]));
            assert_eq!(outcome(&checks, line), Outcome::Fail, "{line}: {checks:?}");
        }
    }

    #[test]
    fn rsa_members_must_be_minimal_and_unpadded() {
        let good = our_key(Algorithm::Rs256);
        let n = URL_SAFE_NO_PAD
            .decode(good["n"].as_str().expect("n"))
            .expect("b64");
        let mut padded = vec![0];
        padded.extend_from_slice(&n);
        for bad_n in [
            URL_SAFE_NO_PAD.encode(&padded),
            format!("{}=", good["n"].as_str().expect("n")),
            URL_SAFE_NO_PAD.encode(&n[..128]),
        ] {
            let mut key = good.clone();
            key["n"] = bad_n.into();
            let (checks, _) = check_document(&set_of(vec![key]));
            assert_eq!(outcome(&checks, "key material"), Outcome::Fail);
        }
        let mut key = good;
        key["e"] = "AAEAAQ".into();
        let (checks, _) = check_document(&set_of(vec![key]));
        assert_eq!(outcome(&checks, "key material"), Outcome::Fail);
    }

    #[test]
    fn documents_that_are_not_a_jwk_set_fail_the_shape_line_only() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{\"keys\": {}}",
            b"{\"keys\": [1]}",
            b"{\"keys\": [{}]}",
        ] {
            let (checks, ring) = check_document(body);
            assert!(ring.is_none());
            assert_eq!(checks.len(), 1);
            assert_eq!(outcome(&checks, "jwks shape"), Outcome::Fail);
        }
    }

    #[test]
    fn duplicate_kids_fail_and_missing_kids_warn() {
        let key = our_key(Algorithm::EdDsa);
        let (checks, _) = check_document(&set_of(vec![key.clone(), key.clone()]));
        assert_eq!(outcome(&checks, "unique kids"), Outcome::Fail);
        let mut anonymous = key;
        anonymous.as_object_mut().expect("object").remove("kid");
        let (checks, _) = check_document(&set_of(vec![anonymous]));
        assert_eq!(outcome(&checks, "unique kids"), Outcome::Warn);
    }
}
