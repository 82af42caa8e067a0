//! Manifest signature verification on arbitrary input: the first line is the manifest,
//! the rest the `updateManifestSignature`, checked against fixed RSA and Ed25519 root keys.
//! Nothing may panic, and nothing may verify.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use handrail::config::{DisallowedSigningKey, RootKeyConfig, SigningConfig};
use handrail::trust::{PublicKey, Trust};
use libfuzzer_sys::fuzz_target;

const RSA_ROOT: &str = include_str!("../../runtime/core/tests/keys/rsa-root.pub.pem");
const ED_ROOT: &str = include_str!("../../runtime/core/tests/keys/ed25519-root.pub.pem");

fn trust() -> &'static Trust {
    static TRUST: OnceLock<Trust> = OnceLock::new();
    TRUST.get_or_init(|| {
        let root = |kid: &str, pem: &str| {
            let jwk: BTreeMap<String, String> = PublicKey::from_pem(pem)
                .expect("test key")
                .to_jwk()
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
                .collect();
            RootKeyConfig {
                kid: kid.into(),
                jwk: Some(jwk),
                jwk_file: None,
                pem_file: None,
            }
        };
        let config = SigningConfig {
            root_keys: vec![root("root.1", RSA_ROOT), root("root.2", ED_ROOT)],
            disallowed_signing_keys: vec![DisallowedSigningKey::Name("signing.0".into())],
            ..SigningConfig::default()
        };
        Trust::from_config(&config).expect("test trust")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (manifest, signature) = text.split_once('\n').unwrap_or((text, ""));
    if let Err(e) = trust().verify(manifest.as_bytes(), signature) {
        let _ = e.to_string();
    } else {
        panic!("a signature verified without a private key: {signature}");
    }
});
