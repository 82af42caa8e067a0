//! Manifest signatures: whether an update manifest comes from someone the device trusts.
//!
//! The shape is ADU's. The envelope's `updateManifestSignature` is a compact JWS whose
//! payload is `{"sha256": "<base64 sha256 of the updateManifest string>"}` and whose
//! header carries the *signing key* in `sjwk`: itself a compact JWS, signed by a *root
//! key* named by its header's `kid`, whose payload is the signing key as a JWK.
//!
//! ```text
//! updateManifestSignature = JWS{ header: {alg, sjwk}, payload: {"sha256": …} }  signed by the signing key
//! sjwk                    = JWS{ header: {alg, kid}, payload: <signing key JWK> }  signed by root key `kid`
//! ```
//!
//! ADU signs with RS256; ES256 (P-256) and EdDSA (Ed25519) are accepted in the same
//! shape, at either level. Root keys come from the `[signing]` configuration
//! ([`SigningConfig`]); a disabled root key, or a disallowed signing key (by `kid`,
//! RFC 7638 thumbprint or ADU's key hash), is refused even when its signatures are good.
//!
//! ADU's root key package (`root_key_package`, read by the `package` module) adds root
//! keys and revocations. ADU's agent trusts a package signed by the root keys compiled
//! into it; Handrail compiles in none, so the package must be signed by every configured
//! root key that is not disabled (its *anchors*: for ADU's packages, ADU's own root keys
//! installed as PEM files), each at its kid's position in the package's `rootKeys`. A
//! package with no anchor to check it is refused: one that vouches only for itself
//! proves nothing.
//!
//! [`Trust::check`] is applied right after a document is parsed. Child manifests are not
//! signed themselves: they are trusted through their size and sha256 in the signed
//! parent's `files` (checked by admission), so a child referenced only by `updateId` is
//! refused whenever the parent is signed or signing is required.

mod jws;
mod key;
mod package;
mod parson;
pub mod sign;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{DisallowedSigningKey, RootKeyConfig, SigningConfig};
use crate::manifest::Document;

pub use jws::MAX_JWS_BYTES;
pub use key::{Algorithm, KeyError, PublicKey};
pub use package::MAX_ROOT_KEY_PACKAGE_BYTES;

use package::{DisabledSigningKey, RootKeyPackage};

/// Largest key file read (`jwk_file`, `pem_file`), in bytes.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Why a manifest's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature, and signing is required.
    #[error(
        "the update manifest is unsigned and signing is required: deliver it in an envelope with its updateManifestSignature, or set `[signing] required = false` for unsigned test updates"
    )]
    Unsigned,
    /// A signature, but no root key to check it with, and signing is required.
    #[error(
        "updateManifestSignature: no root keys are configured (`[signing] root_keys`), so the signature cannot be verified"
    )]
    NoRootKeys,
    /// The signature or the signed signing key is not well formed.
    #[error("updateManifestSignature: {0}")]
    Malformed(String),
    /// The signing key is signed by a root key that is not trusted.
    #[error(
        "updateManifestSignature: the signing key is signed by root key `{0}`, which is not a trusted root key (`[signing] root_keys` or the root key package's `rootKeys`)"
    )]
    UnknownRootKey(String),
    /// The signing key is signed by a disabled root key.
    #[error(
        "updateManifestSignature: the signing key is signed by root key `{0}`, which is disabled (`[signing] disabled_root_keys` or the root key package's `disabledRootKeys`)"
    )]
    DisabledRootKey(String),
    /// The signing key's signature does not verify with the root key it names.
    #[error(
        "updateManifestSignature: the signing key's signature does not verify with root key `{0}`"
    )]
    BadSigningKey(String),
    /// The signing key is disallowed.
    #[error(
        "updateManifestSignature: signing key `{0}` is disallowed (`[signing] disallowed_signing_keys` or the root key package's `disabledSigningKeys`)"
    )]
    DisallowedSigningKey(String),
    /// The manifest signature does not verify with the signing key.
    #[error("updateManifestSignature: the signature does not verify with signing key `{0}`")]
    BadSignature(String),
    /// The signature is good but covers other bytes than the manifest's.
    #[error(
        "the update manifest was altered after signing: its sha256 is {actual} but the signature covers {signed}"
    )]
    Tampered {
        /// base64 sha256 of the `updateManifest` string received.
        actual: String,
        /// base64 sha256 the signature covers.
        signed: String,
    },
}

/// A `[signing]` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TrustConfigError {
    /// The entry, e.g. ``root_keys[0] (`ADU.200702.R`)`` or `disallowed_signing_keys[1]`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Who vouched for a verified manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    /// The root key that signed the signing key.
    pub root_kid: String,
    /// The signing key's `kid`, else its thumbprint.
    pub signing_key: String,
    /// The algorithm of the manifest signature.
    pub algorithm: Algorithm,
}

/// What [`Trust::check`] concluded about a document it let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The signature verified.
    Signed(SignedBy),
    /// Not verified, and signing is not required (the reason is logged).
    Unverified,
}

impl Verdict {
    /// True when the signature verified.
    pub fn is_signed(&self) -> bool {
        matches!(self, Verdict::Signed(_))
    }
}

/// The trust policy: root keys, revocations and whether signing is required.
#[derive(Debug, Clone)]
pub struct Trust {
    required: bool,
    roots: BTreeMap<String, PublicKey>,
    disabled_roots: BTreeSet<String>,
    disallowed_signing_keys: BTreeSet<String>,
    /// The root key package's `disabledSigningKeys`: hashes of RSA public keys.
    disabled_key_hashes: BTreeSet<DisabledSigningKey>,
}

impl Default for Trust {
    /// Signing required, no root keys: every manifest is refused.
    fn default() -> Self {
        Trust {
            required: true,
            roots: BTreeMap::new(),
            disabled_roots: BTreeSet::new(),
            disallowed_signing_keys: BTreeSet::new(),
            disabled_key_hashes: BTreeSet::new(),
        }
    }
}

impl Trust {
    /// A policy that lets unsigned manifests through (signatures present are still
    /// checked when root keys are known): for tests and demos.
    pub fn allow_unsigned() -> Trust {
        Trust {
            required: false,
            ..Trust::default()
        }
    }

    /// Builds the policy from `[signing]`, reading key files and the root key package.
    pub fn from_config(config: &SigningConfig) -> Result<Trust, TrustConfigError> {
        let mut roots = BTreeMap::new();
        for (index, root) in config.root_keys.iter().enumerate() {
            let err = |message: String| TrustConfigError {
                key: format!("root_keys[{index}] (`{}`)", root.kid),
                message,
            };
            if root.kid.is_empty() {
                return Err(err("`kid` is empty".into()));
            }
            let key = load_root_key(root).map_err(err)?;
            if let Some(kid) = key.kid()
                && kid != root.kid
            {
                return Err(err(format!("the JWK's own `kid` is `{kid}`")));
            }
            if roots.insert(root.kid.clone(), key).is_some() {
                return Err(err("another root key has this kid".into()));
            }
        }
        let mut trust = Trust {
            required: config.required,
            roots,
            disabled_roots: config.disabled_root_keys.iter().cloned().collect(),
            disallowed_signing_keys: config
                .disallowed_signing_keys
                .iter()
                .enumerate()
                .map(|(i, entry)| match entry {
                    DisallowedSigningKey::Name(name) => Ok(name.clone()),
                    // Kept by name: a key's ADU hash is compared as base64url text.
                    DisallowedSigningKey::Hash(hash) => hash
                        .digest()
                        .map(|d| key::encode_b64url(&d))
                        .map_err(|message| TrustConfigError {
                            key: format!("disallowed_signing_keys[{i}]"),
                            message,
                        }),
                })
                .collect::<Result<_, _>>()?,
            disabled_key_hashes: BTreeSet::new(),
        };
        if let Some(path) = &config.root_key_package {
            trust
                .add_root_key_package(path, config.root_key_package_allow_test)
                .map_err(|message| TrustConfigError {
                    key: "root_key_package".into(),
                    message: format!("{}: {message}", path.display()),
                })?;
        }
        Ok(trust)
    }

    /// Reads, checks and adds ADU's root key package at `path`: verified by every
    /// configured root key that is not disabled (the anchors), then its root keys
    /// trusted and its revocations applied.
    fn add_root_key_package(&mut self, path: &Path, allow_test: bool) -> Result<(), String> {
        let text = crate::limits::read_to_string(path, MAX_ROOT_KEY_PACKAGE_BYTES)
            .map_err(|e| e.to_string())?;
        let package = RootKeyPackage::parse(&text).map_err(|e| e.to_string())?;
        let anchors: Vec<(&str, &PublicKey)> = self
            .roots
            .iter()
            .filter(|(kid, _)| !self.disabled_roots.contains(*kid))
            .map(|(kid, key)| (kid.as_str(), key))
            .collect();
        if anchors.is_empty() {
            return Err("a root key package proves nothing without a key to check it with: configure the root keys that sign it in `[signing] root_keys` (for ADU's packages, ADU's own root keys as PEM files), none of them disabled".into());
        }
        package.verify(&anchors).map_err(|e| e.to_string())?;
        if package.is_test && !allow_test {
            return Err("protected.isTest: this is a test package, which is refused unless `[signing] root_key_package_allow_test = true`".into());
        }
        for (kid, key) in &package.root_keys {
            match self.roots.get(kid) {
                Some(configured) if configured.thumbprint() != key.thumbprint() => {
                    return Err(format!(
                        "protected.rootKeys.\"{kid}\": is another key than root key `{kid}` as configured in `[signing] root_keys`"
                    ));
                }
                Some(_) => {}
                None => {
                    self.roots.insert(kid.clone(), key.clone());
                }
            }
        }
        self.disabled_roots
            .extend(package.disabled_root_keys.iter().cloned());
        self.disabled_key_hashes
            .extend(package.disabled_signing_keys.iter().cloned());
        Ok(())
    }

    /// True when unsigned or unverifiable manifests are refused.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Checks a parsed document's signature against the policy.
    ///
    /// A plain manifest carries no signature. A present signature is always verified
    /// when root keys are configured, and a bad one is refused even when signing is not
    /// required: a signature that does not verify is never ignored.
    pub fn check(&self, document: &Document) -> Result<Verdict, SignatureError> {
        let signed = document.envelope().and_then(|e| {
            e.signature
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| (e.manifest_json.as_bytes(), s))
        });
        match signed {
            None if self.required => Err(SignatureError::Unsigned),
            None => {
                tracing::info!(
                    "the update manifest is unsigned; accepted because signing is not required"
                );
                Ok(Verdict::Unverified)
            }
            Some(_) if self.roots.is_empty() && !self.required => {
                tracing::warn!(
                    "the update manifest is signed but no root keys are configured; accepted unverified because signing is not required"
                );
                Ok(Verdict::Unverified)
            }
            Some((manifest, signature)) => self.verify(manifest, signature).map(Verdict::Signed),
        }
    }

    /// Verifies `signature` (the envelope's `updateManifestSignature`) over the exact
    /// bytes of the `updateManifest` string.
    pub fn verify(&self, manifest: &[u8], signature: &str) -> Result<SignedBy, SignatureError> {
        if self.roots.is_empty() {
            return Err(SignatureError::NoRootKeys);
        }
        let outer = jws::Jws::parse(signature).map_err(SignatureError::Malformed)?;
        let sjwk = outer.header_string("sjwk").ok_or_else(|| {
            SignatureError::Malformed("its header carries no signing key (`sjwk`)".into())
        })?;
        let signing_key = self.signing_key(sjwk)?;
        let name = signing_key
            .kid()
            .unwrap_or(signing_key.thumbprint())
            .to_owned();
        if !signing_key.verify(outer.algorithm, outer.signing_input, &outer.signature) {
            return Err(SignatureError::BadSignature(name));
        }
        let signed = signed_sha256(&outer.payload)?;
        let actual: [u8; 32] = Sha256::digest(manifest).into();
        if signed != actual {
            let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
            return Err(SignatureError::Tampered {
                actual: b64(&actual),
                signed: b64(&signed),
            });
        }
        Ok(SignedBy {
            root_kid: jws::Jws::parse(sjwk)
                .ok()
                .and_then(|j| j.header_string("kid").map(str::to_owned))
                .unwrap_or_default(),
            signing_key: name,
            algorithm: outer.algorithm,
        })
    }

    /// Verifies the signed signing key `sjwk` against the root keys and returns the key.
    fn signing_key(&self, sjwk: &str) -> Result<PublicKey, SignatureError> {
        let malformed =
            |m: String| SignatureError::Malformed(format!("the signing key (`sjwk`) {m}"));
        let token = jws::Jws::parse(sjwk).map_err(malformed)?;
        let kid = token
            .header_string("kid")
            .ok_or_else(|| malformed("names no root key (`kid`)".into()))?;
        if self.disabled_roots.contains(kid) {
            return Err(SignatureError::DisabledRootKey(kid.to_owned()));
        }
        let root = self
            .roots
            .get(kid)
            .ok_or_else(|| SignatureError::UnknownRootKey(kid.to_owned()))?;
        if !root.verify(token.algorithm, token.signing_input, &token.signature) {
            return Err(SignatureError::BadSigningKey(kid.to_owned()));
        }
        let jwk = match serde_json::from_slice::<Value>(&token.payload) {
            Ok(Value::Object(jwk)) => jwk,
            _ => return Err(malformed("payload is not a JSON object".into())),
        };
        let key = PublicKey::from_jwk(&jwk).map_err(|e| malformed(format!("is unusable: {e}")))?;
        let adu_name = key.adu_key_hash().map(|h| key::encode_b64url(&h));
        let names = key.kid().into_iter().chain([key.thumbprint()]);
        for name in names.chain(adu_name.as_deref()) {
            if self.disallowed_signing_keys.contains(name) {
                return Err(SignatureError::DisallowedSigningKey(name.to_owned()));
            }
        }
        if let Some(der) = key.rsa_public_key_der() {
            for disabled in &self.disabled_key_hashes {
                if disabled.algorithm.digest(&der) == disabled.hash {
                    return Err(SignatureError::DisallowedSigningKey(key::encode_b64url(
                        &disabled.hash,
                    )));
                }
            }
        }
        Ok(key)
    }
}

/// The digest in a signature payload `{"sha256": "<base64>"}` (standard or url-safe).
fn signed_sha256(payload: &[u8]) -> Result<[u8; 32], SignatureError> {
    let malformed = |m: &str| SignatureError::Malformed(format!("its payload {m}"));
    let value: Value = serde_json::from_slice(payload).map_err(|_| malformed("is not JSON"))?;
    let text = value
        .get("sha256")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("has no `sha256` string"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .or_else(|| key::decode_b64url(text))
        .ok_or_else(|| malformed("`sha256` is not base64"))?;
    bytes
        .try_into()
        .map_err(|_| malformed("`sha256` is not 32 bytes"))
}

fn load_root_key(root: &RootKeyConfig) -> Result<PublicKey, String> {
    let read = |path: &Path| {
        crate::limits::read_to_string(path, MAX_KEY_FILE_BYTES)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    match (&root.jwk, &root.jwk_file, &root.pem_file) {
        (Some(jwk), None, None) => {
            let map = jwk
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            PublicKey::from_jwk(&map).map_err(|e| e.to_string())
        }
        (None, Some(path), None) => {
            let text = read(path)?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => {
                    PublicKey::from_jwk(&map).map_err(|e| format!("{}: {e}", path.display()))
                }
                _ => Err(format!("{}: not a JSON object", path.display())),
            }
        }
        (None, None, Some(path)) => {
            PublicKey::from_pem(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
        }
        _ => Err("give exactly one of `jwk`, `jwk_file`, `pem_file`".into()),
    }
}

#[cfg(test)]
pub(crate) mod tests;
