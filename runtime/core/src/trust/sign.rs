//! Producing signatures of the shape [`Trust`](super::Trust) verifies: a signed signing key
//! (`sjwk`) made with a root key, a manifest signature made with the signing key, and the
//! signatures of a root key package.
//!
//! For publishers without the ADU service (which signs RS256 itself), and for tests.
//!
//! ```
//! use handrail::trust::sign::KeyPair;
//! let root = KeyPair::generate_ed25519()?;
//! let signing = KeyPair::generate_ed25519()?;
//! let sjwk = root.sign_key("contoso.root.1", &signing.public_jwk(Some("contoso.signing.1")))?;
//! let manifest = r#"{"updateId": {"provider": "contoso", "name": "x", "version": "1"}}"#;
//! let signature = signing.sign_manifest(manifest.as_bytes(), &sjwk)?;
//! assert_eq!(signature.split('.').count(), 3);
//! # Ok::<(), handrail::trust::KeyError>(())
//! ```

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::key::{Algorithm, KeyError, PublicKey};

enum Inner {
    Rsa(signature::RsaKeyPair),
    P256(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

/// A private key that signs with one [`Algorithm`].
pub struct KeyPair {
    inner: Inner,
    public: PublicKey,
}

fn err(message: impl Into<String>) -> KeyError {
    KeyError(message.into())
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl KeyPair {
    /// A fresh Ed25519 key.
    pub fn generate_ed25519() -> Result<KeyPair, KeyError> {
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| err("cannot generate an Ed25519 key"))?;
        KeyPair::from_pkcs8(pkcs8.as_ref())
    }

    /// A fresh P-256 key.
    pub fn generate_p256() -> Result<KeyPair, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .map_err(|_| err("cannot generate a P-256 key"))?;
        KeyPair::from_pkcs8(pkcs8.as_ref())
    }

    /// Reads a PEM `PRIVATE KEY` (PKCS #8: RSA, P-256 or Ed25519).
    pub fn from_pem(text: &str) -> Result<KeyPair, KeyError> {
        let body: String = text
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| err("not a PEM `PRIVATE KEY` (PKCS #8)"))?;
        KeyPair::from_pkcs8(&der)
    }

    /// Reads a PKCS #8 DER private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<KeyPair, KeyError> {
        if let Ok(k) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = public_from_jwk(json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64url(k.public_key().as_ref())
            }))?;
            return Ok(KeyPair {
                inner: Inner::Ed25519(k),
                public,
            });
        }
        if let Ok(k) = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
            &SystemRandom::new(),
        ) {
            let point = k.public_key().as_ref();
            let public = public_from_jwk(json!({
                "kty": "EC", "crv": "P-256",
                "x": b64url(&point[1..33]), "y": b64url(&point[33..])
            }))?;
            return Ok(KeyPair {
                inner: Inner::P256(k),
                public,
            });
        }
        let k = signature::RsaKeyPair::from_pkcs8(der)
            .map_err(|e| err(format!("not an RSA, P-256 or Ed25519 PKCS #8 key: {e}")))?;
        let public = PublicKey::from_rsa_der(k.public().as_ref())?;
        Ok(KeyPair {
            inner: Inner::Rsa(k),
            public,
        })
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The public key as a JWK (with `alg`, and `kid` when given).
    pub fn public_jwk(&self, kid: Option<&str>) -> Map<String, Value> {
        let mut jwk = self.public.to_jwk();
        if let Some(kid) = kid {
            jwk.insert("kid".into(), kid.into());
        }
        jwk
    }

    /// A compact JWS of `payload` with `header` (to which `alg` is added).
    pub fn sign_jws(
        &self,
        mut header: Map<String, Value>,
        payload: &[u8],
    ) -> Result<String, KeyError> {
        header.insert("alg".into(), self.public.algorithm().name().into());
        let input = format!(
            "{}.{}",
            b64url(Value::Object(header).to_string().as_bytes()),
            b64url(payload)
        );
        let rng = SystemRandom::new();
        let signature = match &self.inner {
            Inner::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| err("RSA signing failed"))?;
                sig
            }
            Inner::P256(k) => k
                .sign(&rng, input.as_bytes())
                .map_err(|_| err("ECDSA signing failed"))?
                .as_ref()
                .to_vec(),
            Inner::Ed25519(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{input}.{}", b64url(&signature)))
    }

    /// Signs a signing key's JWK as root key `root_kid`: the `sjwk` of a manifest
    /// signature.
    pub fn sign_key(
        &self,
        root_kid: &str,
        signing_jwk: &Map<String, Value>,
    ) -> Result<String, KeyError> {
        let mut header = Map::new();
        header.insert("kid".into(), root_kid.into());
        self.sign_jws(
            header,
            Value::Object(signing_jwk.clone()).to_string().as_bytes(),
        )
    }

    /// Signs the exact bytes of an `updateManifest` string with this signing key, whose
    /// signed form (from a root key's [`sign_key`](Self::sign_key)) is `sjwk`.
    pub fn sign_manifest(&self, manifest: &[u8], sjwk: &str) -> Result<String, KeyError> {
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(manifest));
        let mut header = Map::new();
        header.insert("sjwk".into(), sjwk.into());
        self.sign_jws(header, json!({ "sha256": digest }).to_string().as_bytes())
    }

    /// Signs a root key package's `protected` object, given as its JSON text: RS256 over
    /// the compact form ADU's agent re-serialises it to before checking (members in the
    /// order written, `/` as `\/`). The result is the `sig` of the package's
    /// `signatures` entry at this key's position in `rootKeys`. RSA keys only: the
    /// package format knows no other.
    pub fn sign_root_key_package(&self, protected: &str) -> Result<String, KeyError> {
        let Inner::Rsa(k) = &self.inner else {
            return Err(err(format!(
                "a root key package is signed RS256, and this is an {} key",
                self.algorithm()
            )));
        };
        let signed = super::parson::Json::parse(protected)
            .map_err(|e| err(format!("`protected` is {e}")))?
            .to_parson_string();
        let mut sig = vec![0; k.public().modulus_len()];
        k.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .map_err(|_| err("RSA signing failed"))?;
        Ok(b64url(&sig))
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }
}

fn public_from_jwk(value: Value) -> Result<PublicKey, KeyError> {
    match value {
        Value::Object(map) => PublicKey::from_jwk(&map),
        _ => Err(err("not a JWK")),
    }
}
