//! ADU's root key package: a signed list of root keys and revocations, read as ADU's
//! agent reads it, and verified against root keys the device already trusts.
//!
//! ```json
//! {
//!   "protected": {
//!     "isTest": false,
//!     "version": 1,
//!     "published": 1675972876,
//!     "disabledRootKeys": ["ADU.200701.R"],
//!     "disabledSigningKeys": [{"alg": "SHA256", "hash": "<base64url>"}],
//!     "rootKeys": {
//!       "ADU.200702.R": {"keyType": "RSA", "n": "<base64url modulus>", "e": 65537}
//!     }
//!   },
//!   "signatures": [{"alg": "RS256", "sig": "<base64url>"}]
//! }
//! ```
//!
//! The rules are ADU's parser's (rootkeypackage_parse.c): `disabledRootKeys`,
//! `disabledSigningKeys` and a non-empty `rootKeys` and `signatures` are required;
//! `version` is a non-zero number and `published` a positive one; a root key is
//! `keyType` `"RSA"` exactly, with `n` in base64url or standard base64 and `e` a JSON
//! number; a `disabledSigningKeys` entry hashes with SHA-256 or stronger; a signature's
//! `alg` is `RS256`, `RS384` or `RS512` (and, as in ADU, it is checked as RS256
//! whatever it says). Where ADU's agent lets something through without meaning to (an
//! `isTest` that is not a boolean, a kid that is not a string, a member it has no use
//! for), the package is refused here, naming the field.
//!
//! The signatures cover `protected` as parson re-serialises it (see [`super::parson`]),
//! and they are positional: `signatures[i]` is the signature of the key at position `i`
//! of `rootKeys`. [`RootKeyPackage::verify`] checks, for every anchor key, that its kid
//! is in `rootKeys` and its positional signature verifies with the anchor's own key,
//! which is ADU's check with the device's configured keys in the place of the ones
//! compiled into ADU's agent.

use sha2::{Digest, Sha256, Sha384, Sha512};

use super::key::{Algorithm, PublicKey, decode_adu_base64url};
use super::parson::Json;

/// Largest root key package read, in bytes. ADU's production package is about 2 KiB.
pub const MAX_ROOT_KEY_PACKAGE_BYTES: u64 = 256 * 1024;

/// A hash algorithm a `disabledSigningKeys` entry names a key by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum KeyHashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl KeyHashAlgorithm {
    /// The digest of `bytes`.
    pub(crate) fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            KeyHashAlgorithm::Sha256 => Sha256::digest(bytes).to_vec(),
            KeyHashAlgorithm::Sha384 => Sha384::digest(bytes).to_vec(),
            KeyHashAlgorithm::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }

    fn len(self) -> usize {
        match self {
            KeyHashAlgorithm::Sha256 => 32,
            KeyHashAlgorithm::Sha384 => 48,
            KeyHashAlgorithm::Sha512 => 64,
        }
    }
}

/// A signing key a package disables: the hash of its PKCS#1 `RSAPublicKey` DER.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct DisabledSigningKey {
    pub(crate) algorithm: KeyHashAlgorithm,
    pub(crate) hash: Vec<u8>,
}

/// A parsed root key package whose signatures are not yet checked.
#[derive(Debug)]
pub(crate) struct RootKeyPackage {
    /// `protected.isTest` (false when absent).
    pub(crate) is_test: bool,
    /// `protected.disabledRootKeys`.
    pub(crate) disabled_root_keys: Vec<String>,
    /// `protected.disabledSigningKeys`.
    pub(crate) disabled_signing_keys: Vec<DisabledSigningKey>,
    /// `protected.rootKeys`, in the package's order.
    pub(crate) root_keys: Vec<(String, PublicKey)>,
    /// `signatures[i].sig`, decoded.
    signatures: Vec<Vec<u8>>,
    /// `protected` as parson serialises it: the bytes the signatures cover.
    signed: String,
}

/// What is wrong with a package, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackageError {
    /// The field, e.g. `protected.rootKeys."ADU.200702.R".e`; empty for the whole file.
    pub(crate) field: String,
    /// What is wrong with it.
    pub(crate) message: String,
}

impl std::fmt::Display for PackageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn fail<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, PackageError> {
    Err(PackageError {
        field: field.into(),
        message: message.into(),
    })
}

/// `parent.name`, or `name` at the top of the file.
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// The members of the object at `field` (empty: the whole file).
fn object<'a>(value: &'a Json, field: &str) -> Result<&'a [(String, Json)], PackageError> {
    match value {
        Json::Object(members) => Ok(members),
        other => fail(field, format!("must be an object, not {}", other.kind())),
    }
}

/// The members of the object at `field`, refusing members not in `known`: a member the
/// package format does not have is a mistake or a feature this reader lacks, and
/// either way nothing it says is silently dropped.
fn members<'a>(
    value: &'a Json,
    field: &str,
    known: &[&str],
) -> Result<&'a [(String, Json)], PackageError> {
    let members = object(value, field)?;
    if let Some((name, _)) = members.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return fail(
            join(field, name),
            format!("unknown member (expected {})", known.join(", ")),
        );
    }
    Ok(members)
}

fn required<'a>(object: &'a Json, field: &str, name: &str) -> Result<&'a Json, PackageError> {
    object
        .get(name)
        .map_or_else(|| fail(join(field, name), "is missing"), Ok)
}

fn string<'a>(value: &'a Json, field: &str) -> Result<&'a str, PackageError> {
    match value {
        Json::String(s) if !s.is_empty() => Ok(s),
        Json::String(_) => fail(field, "is empty"),
        other => fail(field, format!("must be a string, not {}", other.kind())),
    }
}

fn number(value: &Json, field: &str) -> Result<f64, PackageError> {
    match value {
        Json::Number(n) => Ok(*n),
        other => fail(field, format!("must be a number, not {}", other.kind())),
    }
}

fn array<'a>(value: &'a Json, field: &str) -> Result<&'a [Json], PackageError> {
    match value {
        Json::Array(items) => Ok(items),
        other => fail(field, format!("must be an array, not {}", other.kind())),
    }
}

fn base64url(value: &Json, field: &str) -> Result<Vec<u8>, PackageError> {
    decode_adu_base64url(string(value, field)?).map_or_else(
        || fail(field, "is neither base64url nor standard base64"),
        Ok,
    )
}

impl RootKeyPackage {
    /// Parses a package's text; the error names the field.
    pub(crate) fn parse(text: &str) -> Result<RootKeyPackage, PackageError> {
        let document = Json::parse(text).or_else(|e| fail("", e))?;
        members(&document, "", &["protected", "signatures"])?;
        let protected = required(&document, "", "protected")?;
        let field = "protected";
        members(
            protected,
            field,
            &[
                "isTest",
                "version",
                "published",
                "disabledRootKeys",
                "disabledSigningKeys",
                "rootKeys",
            ],
        )?;
        let is_test = match protected.get("isTest") {
            None => false,
            Some(Json::Bool(b)) => *b,
            Some(other) => {
                return fail(
                    "protected.isTest",
                    format!("must be a boolean, not {}", other.kind()),
                );
            }
        };
        let version = number(required(protected, field, "version")?, "protected.version")?;
        if version == 0.0 {
            return fail("protected.version", "must not be 0");
        }
        let published = number(
            required(protected, field, "published")?,
            "protected.published",
        )?;
        // ADU's agent keeps the whole seconds (time_t), which must be positive.
        if !(published >= 1.0 && published.is_finite()) {
            return fail(
                "protected.published",
                "must be a positive number (seconds since 1970)",
            );
        }
        let disabled_root_keys = array(
            required(protected, field, "disabledRootKeys")?,
            "protected.disabledRootKeys",
        )?
        .iter()
        .enumerate()
        .map(|(i, kid)| {
            let field = format!("protected.disabledRootKeys[{i}]");
            string(kid, &field).map(str::to_owned)
        })
        .collect::<Result<Vec<_>, _>>()?;
        let disabled_signing_keys = array(
            required(protected, field, "disabledSigningKeys")?,
            "protected.disabledSigningKeys",
        )?
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            disabled_signing_key(entry, &format!("protected.disabledSigningKeys[{i}]"))
        })
        .collect::<Result<Vec<_>, _>>()?;
        let root_keys_field = "protected.rootKeys";
        // Every member of `rootKeys` is a kid.
        let root_keys = object(required(protected, field, "rootKeys")?, root_keys_field)?;
        if root_keys.is_empty() {
            return fail(root_keys_field, "is empty: a package must carry a root key");
        }
        let root_keys = root_keys
            .iter()
            .map(|(kid, def)| {
                root_key(kid, def, &format!("{root_keys_field}.\"{kid}\""))
                    .map(|k| (kid.clone(), k))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let signatures = array(required(&document, "", "signatures")?, "signatures")?;
        if signatures.is_empty() {
            return fail("signatures", "is empty: a package must be signed");
        }
        let signatures = signatures
            .iter()
            .enumerate()
            .map(|(i, entry)| signature(entry, &format!("signatures[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RootKeyPackage {
            is_test,
            disabled_root_keys,
            disabled_signing_keys,
            root_keys,
            signatures,
            signed: protected.to_parson_string(),
        })
    }

    /// Checks that every anchor (`kid`, key) is in `rootKeys` and that the signature at
    /// its position verifies, RS256 over `protected`, with the anchor's key.
    pub(crate) fn verify(&self, anchors: &[(&str, &PublicKey)]) -> Result<(), PackageError> {
        for (kid, key) in anchors {
            let Some(position) = self.root_keys.iter().position(|(k, _)| k == kid) else {
                return fail(
                    "protected.rootKeys",
                    format!(
                        "has no key `{kid}`: every configured root key must be in the package and sign it"
                    ),
                );
            };
            let field = format!("signatures[{position}]");
            let Some(signature) = self.signatures.get(position) else {
                return fail(
                    field,
                    format!(
                        "is missing: root key `{kid}` is at position {position} of protected.rootKeys, and its signature must be at the same position"
                    ),
                );
            };
            if key.algorithm() != Algorithm::Rs256 {
                return fail(
                    field,
                    format!(
                        "root key `{kid}` is configured as an {} key, and a root key package is signed RS256",
                        key.algorithm()
                    ),
                );
            }
            if !key.verify(Algorithm::Rs256, self.signed.as_bytes(), signature) {
                return fail(
                    field,
                    format!(
                        "does not verify with root key `{kid}` as configured: `protected` was changed after signing, or this is not `{kid}`'s signature"
                    ),
                );
            }
        }
        Ok(())
    }

    /// The bytes the signatures cover.
    #[cfg(test)]
    pub(crate) fn signed_text(&self) -> &str {
        &self.signed
    }
}

fn disabled_signing_key(entry: &Json, field: &str) -> Result<DisabledSigningKey, PackageError> {
    members(entry, field, &["alg", "hash"])?;
    let alg_field = format!("{field}.alg");
    let alg = string(required(entry, field, "alg")?, &alg_field)?;
    let algorithm = match alg.to_ascii_lowercase().as_str() {
        "sha256" => KeyHashAlgorithm::Sha256,
        "sha384" => KeyHashAlgorithm::Sha384,
        "sha512" => KeyHashAlgorithm::Sha512,
        "sha1" | "sha224" => {
            return fail(
                alg_field,
                format!("`{alg}` is too weak: SHA256 or stronger is required"),
            );
        }
        _ => {
            return fail(
                alg_field,
                format!("`{alg}` is not a hash algorithm (SHA256, SHA384 or SHA512)"),
            );
        }
    };
    let hash_field = format!("{field}.hash");
    let hash = base64url(required(entry, field, "hash")?, &hash_field)?;
    if hash.len() != algorithm.len() {
        return fail(
            hash_field,
            format!(
                "is {} bytes, and a {alg} hash is {}: it names no key",
                hash.len(),
                algorithm.len()
            ),
        );
    }
    Ok(DisabledSigningKey { algorithm, hash })
}

fn root_key(kid: &str, def: &Json, field: &str) -> Result<PublicKey, PackageError> {
    if kid.is_empty() {
        return fail(field, "an empty kid names no key");
    }
    members(def, field, &["keyType", "n", "e"])?;
    let key_type = string(
        required(def, field, "keyType")?,
        &format!("{field}.keyType"),
    )?;
    if key_type != "RSA" {
        return fail(
            format!("{field}.keyType"),
            format!("`{key_type}` is not supported: a package's root keys are \"RSA\""),
        );
    }
    let n = base64url(required(def, field, "n")?, &format!("{field}.n"))?;
    let e_field = format!("{field}.e");
    let e = number(required(def, field, "e")?, &e_field)?;
    if !(e >= 1.0 && e <= f64::from(u32::MAX) && e.fract() == 0.0) {
        return fail(e_field, "must be a positive whole number (65537)");
    }
    let e = (e as u32).to_be_bytes();
    PublicKey::from_rsa_components(&n, &e).or_else(|err| fail(format!("{field}.n"), err.0))
}

fn signature(entry: &Json, field: &str) -> Result<Vec<u8>, PackageError> {
    members(entry, field, &["alg", "sig"])?;
    let alg_field = format!("{field}.alg");
    let alg = string(required(entry, field, "alg")?, &alg_field)?;
    if !matches!(alg, "RS256" | "RS384" | "RS512") {
        return fail(alg_field, format!("`{alg}` is not RS256, RS384 or RS512"));
    }
    base64url(required(entry, field, "sig")?, &format!("{field}.sig"))
}

#[cfg(test)]
mod tests;
