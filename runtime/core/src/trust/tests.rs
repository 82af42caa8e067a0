use super::sign::KeyPair;
use super::*;
use crate::config::{Config, DisallowedSigningKey};

const RSA_ROOT: &str = include_str!("../../tests/keys/rsa-root.pem");
const RSA_ROOT_PUB: &str = include_str!("../../tests/keys/rsa-root.pub.pem");
const RSA_SIGNING: &str = include_str!("../../tests/keys/rsa-signing.pem");
const P256_ROOT: &str = include_str!("../../tests/keys/p256-root.pem");
const P256_ROOT_PUB: &str = include_str!("../../tests/keys/p256-root.pub.pem");
const ED_ROOT: &str = include_str!("../../tests/keys/ed25519-root.pem");
const ED_ROOT_PUB: &str = include_str!("../../tests/keys/ed25519-root.pub.pem");

const MANIFEST: &str = r#"{"updateId":{"provider":"contoso","name":"toaster","version":"1.0"}}"#;

fn pair(pem: &str) -> KeyPair {
    KeyPair::from_pem(pem).unwrap()
}

/// `root_keys` entries trusting each `root` as its `kid`, as inline JWKs.
fn trust_config(roots: &[(&str, &KeyPair)]) -> Vec<RootKeyConfig> {
    let mut config = SigningConfig::default();
    for (kid, root) in roots {
        config.root_keys.push(RootKeyConfig {
            kid: (*kid).to_owned(),
            jwk: Some(
                root.public_jwk(None)
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
                    .collect(),
            ),
            jwk_file: None,
            pem_file: None,
        });
    }
    config.root_keys
}

/// A policy trusting `root` as `kid`, plus revocations.
fn trust(roots: &[(&str, &KeyPair)], disabled: &[&str], disallowed: &[&str]) -> Trust {
    let mut config = SigningConfig {
        root_keys: trust_config(roots),
        ..SigningConfig::default()
    };
    config.disabled_root_keys = disabled.iter().map(|s| s.to_string()).collect();
    config.disallowed_signing_keys = disallowed
        .iter()
        .map(|s| DisallowedSigningKey::Name(s.to_string()))
        .collect();
    Trust::from_config(&config).unwrap()
}

/// A signing key's JWK as ADU's service writes it in an `sjwk`: `n` in standard base64
/// with its padding (`+`, `/`, `=`), `e` = "AQAB", then `alg` and `kid`.
fn adu_jwk(key: &KeyPair, kid: &str) -> serde_json::Map<String, Value> {
    use base64::Engine as _;
    let url = key.public_jwk(None);
    let n = key::decode_b64url(url["n"].as_str().unwrap()).unwrap();
    let n = base64::engine::general_purpose::STANDARD.encode(n);
    assert!(n.contains(['+', '/']) && n.ends_with('='), "{n}");
    let jwk = serde_json::json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": kid});
    jwk.as_object().unwrap().clone()
}

/// The ADU hash of the test signing key, made with `openssl rsa -RSAPublicKey_out
/// -outform DER | openssl dgst -sha256`, base64url: ADU's `disabledSigningKeys` name.
const RSA_SIGNING_ADU_HASH: &str = "egG9175-oqkLDXndQ7QZ2apfzAqNh1xMJF07YV2S7GY";

/// An ADU-shaped signature of `manifest`: RSA root `root.1` signs the RSA signing key,
/// written as ADU's service writes it.
fn adu_signature(manifest: &str) -> String {
    let sjwk = pair(RSA_ROOT)
        .sign_key("root.1", &adu_jwk(&pair(RSA_SIGNING), "signing.1"))
        .unwrap();
    pair(RSA_SIGNING)
        .sign_manifest(manifest.as_bytes(), &sjwk)
        .unwrap()
}

fn rsa_trust() -> Trust {
    trust(&[("root.1", &pair(RSA_ROOT))], &[], &[])
}

#[test]
fn an_adu_rs256_signature_verifies() {
    let signed = rsa_trust()
        .verify(MANIFEST.as_bytes(), &adu_signature(MANIFEST))
        .unwrap();
    assert_eq!(
        signed,
        SignedBy {
            root_kid: "root.1".into(),
            signing_key: "signing.1".into(),
            algorithm: Algorithm::Rs256,
        }
    );
}

#[test]
fn ed25519_and_p256_keys_work_at_either_level() {
    let ed = KeyPair::generate_ed25519().unwrap();
    let p256 = KeyPair::generate_p256().unwrap();
    let rsa = pair(RSA_ROOT);
    for (root, signing) in [(&ed, &p256), (&p256, &ed), (&rsa, &ed), (&ed, &ed)] {
        let sjwk = root.sign_key("r", &signing.public_jwk(None)).unwrap();
        let signature = signing.sign_manifest(MANIFEST.as_bytes(), &sjwk).unwrap();
        let signed = trust(&[("r", root)], &[], &[])
            .verify(MANIFEST.as_bytes(), &signature)
            .unwrap();
        assert_eq!(signed.algorithm, signing.algorithm());
        assert_eq!(signed.signing_key, signing.public().thumbprint());
    }
}

#[test]
fn a_tampered_manifest_is_refused_with_both_hashes() {
    let signature = adu_signature(MANIFEST);
    let altered = MANIFEST.replace("1.0", "6.6");
    let e = rsa_trust()
        .verify(altered.as_bytes(), &signature)
        .unwrap_err();
    let SignatureError::Tampered { actual, signed } = &e else {
        panic!("{e:?}")
    };
    assert_ne!(actual, signed);
    assert!(e.to_string().contains("altered after signing"), "{e}");
}

#[test]
fn a_tampered_signature_payload_or_key_is_refused() {
    let signature = adu_signature(MANIFEST);
    let parts: Vec<&str> = signature.split('.').collect();
    // Another payload under the same signature.
    let other = KeyPair::generate_ed25519().unwrap();
    let forged_payload = other
        .sign_jws(
            serde_json::Map::new(),
            br#"{"sha256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#,
        )
        .unwrap();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        forged_payload.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert_eq!(
        rsa_trust().verify(MANIFEST.as_bytes(), &swapped),
        Err(SignatureError::BadSignature("signing.1".into()))
    );
    // A signing key the root never signed, passed off with the root's kid.
    let sjwk = other.sign_key("root.1", &other.public_jwk(None)).unwrap();
    let signature = other.sign_manifest(MANIFEST.as_bytes(), &sjwk).unwrap();
    assert_eq!(
        rsa_trust().verify(MANIFEST.as_bytes(), &signature),
        Err(SignatureError::BadSigningKey("root.1".into()))
    );
}

#[test]
fn wrong_unknown_disabled_root_keys_and_disallowed_signing_keys_are_refused() {
    let signature = adu_signature(MANIFEST);
    let stranger = KeyPair::generate_ed25519().unwrap();
    let m = MANIFEST.as_bytes();
    assert_eq!(
        trust(&[("root.2", &pair(RSA_ROOT))], &[], &[]).verify(m, &signature),
        Err(SignatureError::UnknownRootKey("root.1".into()))
    );
    assert_eq!(
        trust(&[("root.1", &stranger)], &[], &[]).verify(m, &signature),
        Err(SignatureError::BadSigningKey("root.1".into()))
    );
    assert_eq!(
        trust(&[("root.1", &pair(RSA_ROOT))], &["root.1"], &[]).verify(m, &signature),
        Err(SignatureError::DisabledRootKey("root.1".into()))
    );
    assert_eq!(
        trust(&[("root.1", &pair(RSA_ROOT))], &[], &["signing.1"]).verify(m, &signature),
        Err(SignatureError::DisallowedSigningKey("signing.1".into()))
    );
    let thumbprint = pair(RSA_SIGNING).public().thumbprint().to_owned();
    assert_eq!(
        trust(&[("root.1", &pair(RSA_ROOT))], &[], &[&thumbprint]).verify(m, &signature),
        Err(SignatureError::DisallowedSigningKey(thumbprint))
    );
    // ADU's name for the key: the hash of its PKCS#1 public key, as a plain entry or in
    // the form of ADU's root key package.
    assert_eq!(
        trust(&[("root.1", &pair(RSA_ROOT))], &[], &[RSA_SIGNING_ADU_HASH]).verify(m, &signature),
        Err(SignatureError::DisallowedSigningKey(
            RSA_SIGNING_ADU_HASH.into()
        ))
    );
    let mut config = Config::parse(
        Path::new("c.toml"),
        &format!(
            "[signing]\ndisallowed_signing_keys = [{{ alg = \"sha256\", hash = \"{RSA_SIGNING_ADU_HASH}\" }}]\n"
        ),
    )
    .unwrap();
    config.signing.root_keys = trust_config(&[("root.1", &pair(RSA_ROOT))]);
    assert_eq!(
        Trust::from_config(&config.signing)
            .unwrap()
            .verify(m, &signature),
        Err(SignatureError::DisallowedSigningKey(
            RSA_SIGNING_ADU_HASH.into()
        ))
    );
    assert_eq!(
        Trust::allow_unsigned().verify(m, &signature),
        Err(SignatureError::NoRootKeys)
    );
}

#[test]
fn a_revocation_that_names_no_key_is_refused_when_the_configuration_is_read() {
    for (entry, want) in [
        ("\"\"", "disallowed_signing_keys[0]: an empty name"),
        (
            "{ alg = \"SHA1\", hash = \"egG9175-oqkLDXndQ7QZ2apfzAqNh1xMJF07YV2S7GY\" }",
            "disallowed_signing_keys[0]: alg `SHA1`",
        ),
        (
            "{ alg = \"SHA256\", hash = \"not-32-bytes\" }",
            "is not 32 bytes of base64url",
        ),
        (
            "{ sha = \"x\" }",
            "unknown field `sha`, expected `alg` or `hash`",
        ),
        ("3", "disallowed_signing_keys"),
    ] {
        let text = format!("[signing]\ndisallowed_signing_keys = [{entry}]\n");
        let e = Config::parse(Path::new("c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{entry}: {e} lacks {want}");
    }
}

#[test]
fn garbage_signatures_are_malformed_not_panics() {
    let t = rsa_trust();
    for s in ["", "x", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.AA"] {
        assert!(
            matches!(t.verify(b"{}", s), Err(SignatureError::Malformed(_))),
            "{s}"
        );
    }
}

fn envelope(manifest: &str, signature: Option<&str>) -> Document {
    let mut v =
        serde_json::json!({"workflow": {"action": 3, "id": "w"}, "updateManifest": manifest});
    if let Some(s) = signature {
        v["updateManifestSignature"] = s.into();
    }
    crate::manifest::parse_document(v.to_string().as_bytes()).unwrap()
}

const FULL: &str = include_str!("../../tests/manifests/valid/one-inline-step.json");

#[test]
fn check_applies_the_policy_to_documents() {
    let plain = crate::manifest::parse_document(FULL.as_bytes()).unwrap();
    let signed = envelope(FULL, Some(&adu_signature(FULL)));
    let unsigned = envelope(FULL, None);
    let required = rsa_trust();
    assert_eq!(required.check(&plain), Err(SignatureError::Unsigned));
    assert_eq!(required.check(&unsigned), Err(SignatureError::Unsigned));
    assert!(required.check(&signed).unwrap().is_signed());
    // Not required: unsigned passes, but a bad signature is still refused.
    let mut config = SigningConfig {
        required: false,
        ..SigningConfig::default()
    };
    config.root_keys = vec![RootKeyConfig {
        kid: "root.1".into(),
        jwk: None,
        jwk_file: None,
        pem_file: None,
    }];
    let relaxed = Trust {
        required: false,
        ..rsa_trust()
    };
    assert_eq!(relaxed.check(&plain), Ok(Verdict::Unverified));
    let tampered = envelope(&FULL.replace("1.0", "6.6"), Some(&adu_signature(FULL)));
    assert!(matches!(
        relaxed.check(&tampered),
        Err(SignatureError::Tampered { .. })
    ));
    assert!(Trust::from_config(&config).is_err());
    // The default policy refuses everything.
    assert_eq!(
        Trust::default().check(&plain),
        Err(SignatureError::Unsigned)
    );
    assert_eq!(
        Trust::default().check(&signed),
        Err(SignatureError::NoRootKeys)
    );
}

#[test]
fn root_keys_load_from_pem_and_jwk_files_named_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("[signing]\nroot_keys = [\n");
    for (kid, public) in [
        ("rsa", RSA_ROOT_PUB),
        ("p256", P256_ROOT_PUB),
        ("ed", ED_ROOT_PUB),
    ] {
        let path = dir.path().join(format!("{kid}.pem"));
        std::fs::write(&path, public).unwrap();
        text.push_str(&format!(
            "  {{ kid = \"{kid}\", pem_file = \"{}\" }},\n",
            path.display()
        ));
    }
    let jwk_path = dir.path().join("root.jwk");
    let jwk = pair(ED_ROOT).public_jwk(Some("jwk"));
    std::fs::write(&jwk_path, serde_json::Value::Object(jwk).to_string()).unwrap();
    text.push_str(&format!(
        "  {{ kid = \"jwk\", jwk_file = \"{}\" }},\n]\n",
        jwk_path.display()
    ));
    let config = Config::parse(Path::new("c.toml"), &text).unwrap();
    let t = Trust::from_config(&config.signing).unwrap();
    let signing = KeyPair::generate_p256().unwrap();
    for (kid, root) in [
        ("rsa", RSA_ROOT),
        ("p256", P256_ROOT),
        ("ed", ED_ROOT),
        ("jwk", ED_ROOT),
    ] {
        let sjwk = pair(root).sign_key(kid, &signing.public_jwk(None)).unwrap();
        let signature = signing.sign_manifest(b"m", &sjwk).unwrap();
        assert_eq!(t.verify(b"m", &signature).unwrap().root_kid, kid);
    }
}

#[test]
fn bad_root_key_configurations_name_the_key() {
    for (text, want) in [
        (
            "[signing]\nroot_keys = [{ kid = \"a\" }]",
            "root_keys[0] (`a`): give exactly one of",
        ),
        (
            "[signing]\nroot_keys = [{ kid = \"a\", pem_file = \"relative.pem\" }]",
            "signing.root_keys[0].pem_file",
        ),
        (
            "[signing]\nroot_keys = [{ kid = \"a\", pem_file = \"/nonexistent/k.pem\" }]",
            "/nonexistent/k.pem",
        ),
        (
            "[signing]\nroot_keys = [{ kid = \"a\", pem_file = \"/dev/zero\" }]",
            "not a regular file",
        ),
        (
            "[signing]\nroot_keys = [{ kid = \"a\", jwk = { kty = \"RSA\", n = \"AQAB\", e = \"AQAB\" } }]",
            "outside 2048",
        ),
        ("[signing]\nrequire = false", "require"),
    ] {
        // The configuration's own form is checked when it is parsed, its keys when the
        // trust is made from it.
        let e = match Config::parse(Path::new("c.toml"), text) {
            Err(e) => e.to_string(),
            Ok(config) => Trust::from_config(&config.signing)
                .expect_err("refused")
                .to_string(),
        };
        assert!(e.contains(want), "{e} lacks {want}");
    }
    assert!(Config::default().signing.required);
    assert!(
        Config::parse(Path::new("c.toml"), "")
            .unwrap()
            .signing
            .required
    );
}
