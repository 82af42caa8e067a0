//! Public keys: read from a JWK (as carried in a signed signing key, or configured) or a
//! PEM `PUBLIC KEY` file, identified by their RFC 7638 thumbprint, and used to verify one
//! of the three accepted JWS algorithms.

use std::fmt;

use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The JWS algorithms accepted for manifest signatures and signed signing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (what ADU uses), 2048 to 8192-bit keys.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// The algorithm a JWS header's `alg` names; `None` for any other (including `none`).
    pub fn from_jws(alg: &str) -> Option<Algorithm> {
        match alg {
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    /// The JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn key_err(message: impl Into<String>) -> KeyError {
    KeyError(message.into())
}

#[derive(Clone, PartialEq, Eq)]
enum Material {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point, `04 ‖ x ‖ y`.
    P256(Vec<u8>),
    /// The 32-byte public key.
    Ed25519(Vec<u8>),
}

/// A public key that verifies exactly one [`Algorithm`].
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    material: Material,
    kid: Option<String>,
    thumbprint: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm())
            .field("kid", &self.kid)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

/// Smallest RSA modulus accepted, in bits (ring's own floor for RS256).
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
const MAX_RSA_BITS: usize = 8192;

fn b64url() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

/// Decodes base64url with or without padding.
pub(crate) fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    b64url().decode(text).ok()
}

/// Decodes a JWK member as the JWK's writer may have encoded it: base64url (RFC 7517),
/// padded or not, or standard base64 with its padding, the form ADU's service writes the
/// `n` of every signing key in (`+` and `/`; its agent decodes it with a standard
/// base64 decoder that requires the padding). A mix of the two alphabets is neither.
pub(crate) fn decode_jwk_member(text: &str) -> Option<Vec<u8>> {
    decode_b64url(text).or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
}

/// Decodes as ADU's agent's `Base64URLDecode` does: `-` and `_` read as `+` and `/`, so
/// either alphabet (even mixed) is accepted, with or without `=` padding. Unlike that
/// decoder, text it would turn into garbage bytes (a length of 4k+1, a character outside
/// both alphabets) is refused rather than decoded.
pub(crate) fn decode_adu_base64url(text: &str) -> Option<Vec<u8>> {
    let standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
    .decode(standard)
    .ok()
    .filter(|bytes| !bytes.is_empty())
}

pub(crate) fn encode_b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A DER element: `tag`, its definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER of the unsigned big-endian `value` (no leading zeros): a zero byte is
/// put before a first byte with its high bit set, so the number stays positive.
fn der_unsigned_integer(value: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(value.len() + 1);
    if value.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(value);
    der(0x02, &content)
}

fn strip_leading_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

impl PublicKey {
    /// Reads a JWK (`kty` RSA, EC with `crv` P-256, or OKP with `crv` Ed25519). A JWK
    /// whose `alg` names an algorithm other than the one its key type verifies is refused.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<PublicKey, KeyError> {
        let text = |name: &str| -> Result<&str, KeyError> {
            match jwk.get(name) {
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(key_err(format!("JWK member `{name}` is not a string"))),
                None => Err(key_err(format!("JWK member `{name}` is missing"))),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>, KeyError> {
            decode_jwk_member(text(name)?).ok_or_else(|| {
                key_err(format!(
                    "JWK member `{name}` is neither base64url nor padded standard base64"
                ))
            })
        };
        let material = match text("kty")? {
            "RSA" => rsa_material(&bytes("n")?, &bytes("e")?)?,
            "EC" => match text("crv")? {
                "P-256" => {
                    let (x, y) = (bytes("x")?, bytes("y")?);
                    if x.len() != 32 || y.len() != 32 {
                        return Err(key_err("a P-256 JWK needs 32-byte `x` and `y`"));
                    }
                    let mut point = vec![4];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    Material::P256(point)
                }
                other => return Err(key_err(format!("EC curve `{other}` is not accepted"))),
            },
            "OKP" => match text("crv")? {
                "Ed25519" => {
                    let x = bytes("x")?;
                    if x.len() != 32 {
                        return Err(key_err("an Ed25519 JWK needs a 32-byte `x`"));
                    }
                    Material::Ed25519(x)
                }
                other => return Err(key_err(format!("OKP curve `{other}` is not accepted"))),
            },
            other => return Err(key_err(format!("key type `{other}` is not accepted"))),
        };
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(key_err("JWK member `kid` is not a string")),
        };
        let key = PublicKey::new(material, kid);
        if let Some(alg) = jwk.get("alg") {
            let alg = alg
                .as_str()
                .ok_or_else(|| key_err("JWK member `alg` is not a string"))?;
            if alg != key.algorithm().name() {
                return Err(key_err(format!(
                    "the JWK says `alg` {alg} but its key type verifies {}",
                    key.algorithm()
                )));
            }
        }
        Ok(key)
    }

    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo: RSA, P-256 or Ed25519) or
    /// `RSA PUBLIC KEY` (PKCS #1).
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = pem_body(text)?;
        let material = match label.as_str() {
            "PUBLIC KEY" => spki_material(&der)?,
            "RSA PUBLIC KEY" => pkcs1_material(&der)?,
            other => {
                return Err(key_err(format!(
                    "PEM block `{other}` is not a public key (expected `PUBLIC KEY`)"
                )));
            }
        };
        Ok(PublicKey::new(material, None))
    }

    /// An RSA key from its modulus and exponent (big-endian, leading zeros allowed).
    pub(crate) fn from_rsa_components(n: &[u8], e: &[u8]) -> Result<PublicKey, KeyError> {
        Ok(PublicKey::new(rsa_material(n, e)?, None))
    }

    /// Reads a PKCS #1 `RSAPublicKey` (DER).
    pub(crate) fn from_rsa_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        Ok(PublicKey::new(pkcs1_material(der)?, None))
    }

    /// The key as a JWK: its required members, `alg`, and `kid` when it has one.
    pub fn to_jwk(&self) -> Map<String, Value> {
        let mut jwk = Map::new();
        let mut put = |k: &str, v: String| {
            jwk.insert(k.to_owned(), Value::String(v));
        };
        match &self.material {
            Material::Rsa { n, e } => {
                put("kty", "RSA".into());
                put("n", encode_b64url(n));
                put("e", encode_b64url(e));
            }
            Material::P256(point) => {
                put("kty", "EC".into());
                put("crv", "P-256".into());
                put("x", encode_b64url(&point[1..33]));
                put("y", encode_b64url(&point[33..]));
            }
            Material::Ed25519(x) => {
                put("kty", "OKP".into());
                put("crv", "Ed25519".into());
                put("x", encode_b64url(x));
            }
        }
        put("alg", self.algorithm().name().into());
        if let Some(kid) = &self.kid {
            put("kid", kid.clone());
        }
        jwk
    }

    fn new(material: Material, kid: Option<String>) -> PublicKey {
        let thumbprint = thumbprint(&material);
        PublicKey {
            material,
            kid,
            thumbprint,
        }
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self.material {
            Material::Rsa { .. } => Algorithm::Rs256,
            Material::P256(_) => Algorithm::Es256,
            Material::Ed25519(_) => Algorithm::EdDsa,
        }
    }

    /// The JWK's `kid`, when it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): names the key whatever its `kid`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The name ADU's `disabledSigningKeys` give an RSA key: the SHA-256 of its PKCS#1
    /// `RSAPublicKey` DER (`SEQUENCE { n INTEGER, e INTEGER }`), the form its agent hashes
    /// (root_key_utils); `None` for other key types, which ADU does not sign with.
    pub fn adu_key_hash(&self) -> Option<[u8; 32]> {
        self.rsa_public_key_der()
            .map(|der| Sha256::digest(der).into())
    }

    /// The PKCS#1 `RSAPublicKey` DER of an RSA key (what ADU hashes to name one);
    /// `None` for other key types.
    pub(crate) fn rsa_public_key_der(&self) -> Option<Vec<u8>> {
        match &self.material {
            Material::Rsa { n, e } => {
                let mut body = der_unsigned_integer(n);
                body.extend(der_unsigned_integer(e));
                Some(der(0x30, &body))
            }
            Material::P256(_) | Material::Ed25519(_) => None,
        }
    }

    /// Checks `signature` over `message` made with `alg`; false when `alg` is not this
    /// key's algorithm or the signature does not verify.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if alg != self.algorithm() {
            return false;
        }
        match &self.material {
            Material::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Material::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
                    .is_ok()
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

fn rsa_material(n: &[u8], e: &[u8]) -> Result<Material, KeyError> {
    let (n, e) = (strip_leading_zeros(n), strip_leading_zeros(e));
    let bits = n.len() * 8;
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(key_err(format!(
            "an RSA modulus of about {bits} bits is outside {MIN_RSA_BITS}–{MAX_RSA_BITS}"
        )));
    }
    if e.is_empty() || e.len() > 4 {
        return Err(key_err("the RSA exponent is not a small positive number"));
    }
    Ok(Material::Rsa { n, e })
}

fn thumbprint(material: &Material) -> String {
    // RFC 7638: the required members only, in lexicographic order, no whitespace.
    let canonical = match material {
        Material::Rsa { n, e } => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            encode_b64url(e),
            encode_b64url(n)
        ),
        Material::P256(point) => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            encode_b64url(&point[1..33]),
            encode_b64url(&point[33..])
        ),
        Material::Ed25519(x) => format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            encode_b64url(x)
        ),
    };
    encode_b64url(&Sha256::digest(canonical.as_bytes()))
}

/// The label and decoded body of the first PEM block in `text`.
fn pem_body(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
        })
        .ok_or_else(|| key_err("no `-----BEGIN …-----` line"))?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines {
        if line == end {
            let der = base64::engine::general_purpose::STANDARD
                .decode(&body)
                .map_err(|e| key_err(format!("the PEM body is not base64: {e}")))?;
            return Ok((label, der));
        }
        body.push_str(line);
    }
    Err(key_err(format!("no `{end}` line")))
}

/// A DER reader just large enough for public keys.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// Reads one element with `tag` and returns its contents.
    fn take(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        let bad = || key_err("the key's DER encoding is malformed");
        let (&found, rest) = self.0.split_first().ok_or_else(bad)?;
        if found != tag {
            return Err(bad());
        }
        let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return Err(bad());
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[count..];
            len
        };
        if rest.len() < len {
            return Err(bad());
        }
        let (contents, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(contents)
    }
}

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
/// 1.2.840.113549.1.1.1
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.2.840.10045.2.1
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.3.101.112
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

fn spki_material(der: &[u8]) -> Result<Material, KeyError> {
    let mut spki = Der(Der(der).take(TAG_SEQUENCE)?);
    let mut algorithm = Der(spki.take(TAG_SEQUENCE)?);
    let oid = algorithm.take(TAG_OID)?;
    let bits = spki.take(TAG_BIT_STRING)?;
    let key = match bits.split_first() {
        Some((0, key)) => key,
        _ => return Err(key_err("the key's bit string is malformed")),
    };
    if oid == OID_RSA {
        pkcs1_material(key)
    } else if oid == OID_EC {
        if algorithm.take(TAG_OID)? != OID_P256 {
            return Err(key_err("only the P-256 curve is accepted for EC keys"));
        }
        if key.len() != 65 || key[0] != 4 {
            return Err(key_err("a P-256 key must be an uncompressed point"));
        }
        Ok(Material::P256(key.to_vec()))
    } else if oid == OID_ED25519 {
        if key.len() != 32 {
            return Err(key_err("an Ed25519 key must be 32 bytes"));
        }
        Ok(Material::Ed25519(key.to_vec()))
    } else {
        Err(key_err(
            "the key's algorithm is not accepted (RSA, P-256 or Ed25519)",
        ))
    }
}

fn pkcs1_material(der: &[u8]) -> Result<Material, KeyError> {
    let mut key = Der(Der(der).take(TAG_SEQUENCE)?);
    let n = key.take(TAG_INTEGER)?;
    let e = key.take(TAG_INTEGER)?;
    rsa_material(n, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(value: serde_json::Value) -> Result<PublicKey, KeyError> {
        PublicKey::from_jwk(value.as_object().unwrap())
    }

    #[test]
    fn the_rfc_7638_example_thumbprint() {
        // RFC 7638 section 3.1.
        let key = jwk(serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(key.kid(), Some("2011-04-29"));
        assert_eq!(key.algorithm(), Algorithm::Rs256);
    }

    #[test]
    fn unusable_jwks_are_refused_with_the_reason() {
        for (value, want) in [
            (
                serde_json::json!({"kty": "oct", "k": "AA"}),
                "key type `oct`",
            ),
            (
                serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
                "outside 2048",
            ),
            (
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
                "32-byte",
            ),
            (
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "alg": "RS256"}),
                "verifies EdDSA",
            ),
            (serde_json::json!({"kty": "EC", "crv": "P-384"}), "P-384"),
        ] {
            let e = jwk(value).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn a_signature_of_another_algorithm_never_verifies() {
        let key = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})).unwrap();
        assert!(!key.verify(Algorithm::Rs256, b"m", &[0; 64]));
        assert!(!key.verify(Algorithm::EdDsa, b"m", &[0; 64]));
    }

    #[test]
    fn malformed_pem_and_der_are_errors_not_panics() {
        for text in [
            "",
            "-----BEGIN PUBLIC KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\nMIQ=\n-----END PUBLIC KEY-----",
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----",
        ] {
            assert!(PublicKey::from_pem(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn standard_base64_members_as_adus_service_writes_them_are_the_same_key() {
        let pem = include_str!("../../tests/keys/rsa-root.pub.pem");
        let key = PublicKey::from_pem(pem).unwrap();
        let url = key.to_jwk();
        let n = decode_b64url(url["n"].as_str().unwrap()).unwrap();
        let standard = base64::engine::general_purpose::STANDARD.encode(&n);
        assert!(standard.contains(['+', '/']) || standard.ends_with('='));
        let adu = jwk(serde_json::json!({"kty": "RSA", "n": standard, "e": "AQAB"})).unwrap();
        assert_eq!(adu.thumbprint(), key.thumbprint());
        // Standard base64 needs its padding, as ADU's decoder does; mixed alphabets are
        // neither form.
        let unpadded = standard.trim_end_matches('=');
        if unpadded.len() != standard.len() {
            let e = jwk(serde_json::json!({"kty": "RSA", "n": unpadded, "e": "AQAB"}));
            assert!(e.is_err() || unpadded.chars().all(|c| c != '+' && c != '/'));
        }
        let mixed = format!("-{}", &standard[1..]);
        if mixed.contains(['+', '/']) {
            let e = jwk(serde_json::json!({"kty": "RSA", "n": mixed, "e": "AQAB"})).unwrap_err();
            assert!(e.to_string().contains("neither base64url nor"), "{e}");
        }
    }

    #[test]
    fn the_adu_key_hash_is_the_sha256_of_the_pkcs1_public_key() {
        // `openssl rsa -pubin -RSAPublicKey_out -outform DER | openssl dgst -sha256`,
        // base64url: what ADU's disabledSigningKeys say for this key.
        let key = PublicKey::from_pem(include_str!("../../tests/keys/rsa-root.pub.pem")).unwrap();
        assert_eq!(
            encode_b64url(&key.adu_key_hash().unwrap()),
            "CZXs0b1Me5G5UG_nqWjlS0PYZrPbvciNgGqQf0-2wh4"
        );
        let ed =
            PublicKey::from_pem(include_str!("../../tests/keys/ed25519-root.pub.pem")).unwrap();
        assert_eq!(ed.adu_key_hash(), None);
    }
}
