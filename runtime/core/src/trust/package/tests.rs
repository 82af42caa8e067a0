use std::path::{Path, PathBuf};

use super::super::sign::KeyPair;
use super::super::{SignatureError, Trust, key};
use super::*;
use crate::config::Config;

const ANCHOR: &str = include_str!("../../../tests/keys/rsa-root.pem");
const PACKAGE_ROOT: &str = include_str!("../../../tests/keys/rsa-package-root.pem");
const SIGNING: &str = include_str!("../../../tests/keys/rsa-signing.pem");

fn pair(pem: &str) -> KeyPair {
    KeyPair::from_pem(pem).unwrap()
}

fn anchor_pem() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys/rsa-root.pub.pem")
}

/// A `rootKeys` entry for `key` as ADU's packages write one: `n` base64url, `e` a number.
fn entry(key: &KeyPair) -> String {
    let n = key.public_jwk(None)["n"].as_str().unwrap().to_owned();
    format!(r#"{{"keyType": "RSA", "n": "{n}", "e": 65537}}"#)
}

/// A `protected` object with root keys `root.anchor` (the anchor) then `root.package`,
/// `root.retired` disabled, and the signing key `SIGNING` disabled by its SHA-256.
fn protected() -> String {
    protected_with(&[
        ("root.anchor", &pair(ANCHOR)),
        ("root.package", &pair(PACKAGE_ROOT)),
    ])
}

/// [`protected`] with `root_keys`, in that order.
fn protected_with(root_keys: &[(&str, &KeyPair)]) -> String {
    let hash = key::encode_b64url(&pair(SIGNING).public().adu_key_hash().unwrap());
    let keys: Vec<String> = root_keys
        .iter()
        .map(|(kid, key)| format!("    \"{kid}\": {}", entry(key)))
        .collect();
    format!(
        r#"{{
  "isTest": false,
  "version": 1,
  "published": 1675972876,
  "disabledRootKeys": ["root.retired"],
  "disabledSigningKeys": [{{"alg": "SHA256", "hash": "{hash}"}}],
  "rootKeys": {{
{}
  }}
}}"#,
        keys.join(",\n")
    )
}

/// The package of `protected` with `signers`' signatures, in that order.
fn package(protected: &str, signers: &[&KeyPair]) -> String {
    let signatures: Vec<String> = signers
        .iter()
        .map(|k| {
            format!(
                r#"{{"alg": "RS256", "sig": "{}"}}"#,
                k.sign_root_key_package(protected).unwrap()
            )
        })
        .collect();
    format!(
        "{{\"protected\": {protected},\n\"signatures\": [{}]}}",
        signatures.join(", ")
    )
}

/// The package of [`protected`] signed by the anchor and the package root.
fn good_package() -> String {
    package(&protected(), &[&pair(ANCHOR), &pair(PACKAGE_ROOT)])
}

/// The trust `[signing]` makes of the anchor's PEM (as `root.anchor`) and `package`,
/// with `extra` lines; the error as the configuration's reader shows it.
fn load_with(package: &str, extra: &str) -> Result<Trust, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rootkeys.json");
    std::fs::write(&path, package).unwrap();
    let text = format!(
        "[signing]\nroot_keys = [{{ kid = \"root.anchor\", pem_file = \"{}\" }}]\nroot_key_package = \"{}\"\n{extra}",
        anchor_pem().display(),
        path.display()
    );
    let config = Config::parse(Path::new("c.toml"), &text).map_err(|e| e.to_string())?;
    Trust::from_config(&config.signing).map_err(|e| {
        let e = e.to_string();
        // Every package error names the file.
        assert!(e.contains(&path.display().to_string()), "{e}");
        e
    })
}

fn load(package: &str) -> Result<Trust, String> {
    load_with(package, "")
}

/// A manifest signature whose signing key `signing` is signed by `root` as `root_kid`.
fn signature_under(root: &KeyPair, root_kid: &str, signing: &KeyPair) -> String {
    let sjwk = root
        .sign_key(root_kid, &signing.public_jwk(Some("signing.1")))
        .unwrap();
    signing.sign_manifest(b"manifest", &sjwk).unwrap()
}

#[test]
fn a_good_package_verifies_and_its_root_keys_vouch_for_signing_keys() {
    let trust = load(&good_package()).unwrap();
    let signing = KeyPair::generate_p256().unwrap();
    // A root key only the package carries.
    let signed = trust
        .verify(
            b"manifest",
            &signature_under(&pair(PACKAGE_ROOT), "root.package", &signing),
        )
        .unwrap();
    assert_eq!(signed.root_kid, "root.package");
    // The anchor, named in the package too, still signs.
    let signed = trust
        .verify(
            b"manifest",
            &signature_under(&pair(ANCHOR), "root.anchor", &signing),
        )
        .unwrap();
    assert_eq!(signed.root_kid, "root.anchor");
    // Without the package the same signature is refused: the package is what trusts it.
    let config = Config::parse(
        Path::new("c.toml"),
        &format!(
            "[signing]\nroot_keys = [{{ kid = \"root.anchor\", pem_file = \"{}\" }}]\n",
            anchor_pem().display()
        ),
    )
    .unwrap();
    assert_eq!(
        Trust::from_config(&config.signing).unwrap().verify(
            b"manifest",
            &signature_under(&pair(PACKAGE_ROOT), "root.package", &signing),
        ),
        Err(SignatureError::UnknownRootKey("root.package".into()))
    );
}

#[test]
fn the_packages_disabled_root_keys_and_signing_keys_are_refused() {
    let trust = load(&good_package()).unwrap();
    let signing = KeyPair::generate_ed25519().unwrap();
    assert_eq!(
        trust.verify(
            b"manifest",
            &signature_under(&pair(PACKAGE_ROOT), "root.retired", &signing),
        ),
        Err(SignatureError::DisabledRootKey("root.retired".into()))
    );
    let hash = key::encode_b64url(&pair(SIGNING).public().adu_key_hash().unwrap());
    assert_eq!(
        trust.verify(
            b"manifest",
            &signature_under(&pair(PACKAGE_ROOT), "root.package", &pair(SIGNING)),
        ),
        Err(SignatureError::DisallowedSigningKey(hash))
    );
    // A disabled root key is refused even when the package carries it.
    let retiring = protected().replace("\"root.retired\"", "\"root.package\"");
    let trust = load(&package(&retiring, &[&pair(ANCHOR)])).unwrap();
    assert_eq!(
        trust.verify(
            b"manifest",
            &signature_under(&pair(PACKAGE_ROOT), "root.package", &signing),
        ),
        Err(SignatureError::DisabledRootKey("root.package".into()))
    );
}

#[test]
fn a_stronger_hash_in_disabled_signing_keys_names_the_key_too() {
    use sha2::Digest as _;
    let der = pair(SIGNING).public().rsa_public_key_der().unwrap();
    let hash = key::encode_b64url(&sha2::Sha512::digest(&der));
    let sha256 = key::encode_b64url(&pair(SIGNING).public().adu_key_hash().unwrap());
    let protected = protected().replace(
        &format!(r#"{{"alg": "SHA256", "hash": "{sha256}"}}"#),
        &format!(r#"{{"alg": "sha512", "hash": "{hash}"}}"#),
    );
    let trust = load(&package(&protected, &[&pair(ANCHOR)])).unwrap();
    assert_eq!(
        trust.verify(
            b"manifest",
            &signature_under(&pair(PACKAGE_ROOT), "root.package", &pair(SIGNING)),
        ),
        Err(SignatureError::DisallowedSigningKey(hash))
    );
}

#[test]
fn a_changed_byte_in_protected_fails() {
    let good = good_package();
    let changed = good.replacen("\"version\": 1", "\"version\": 2", 1);
    assert_ne!(good, changed);
    let e = load(&changed).unwrap_err();
    assert!(
        e.contains("root_key_package: ")
            && e.contains(": signatures[0]: does not verify with root key `root.anchor`"),
        "{e}"
    );
    // Whitespace is not signed: only the re-serialised form is.
    let spaced = good.replacen("\"version\": 1", "\"version\" :\t1", 1);
    load(&spaced).unwrap();
}

#[test]
fn a_signature_at_the_wrong_position_fails() {
    let swapped = package(&protected(), &[&pair(PACKAGE_ROOT), &pair(ANCHOR)]);
    let e = load(&swapped).unwrap_err();
    assert!(
        e.contains("signatures[0]: does not verify with root key `root.anchor`"),
        "{e}"
    );
    // The anchor second in rootKeys: its signature must be second.
    let second = protected_with(&[
        ("root.package", &pair(PACKAGE_ROOT)),
        ("root.anchor", &pair(ANCHOR)),
    ]);
    let e = load(&package(&second, &[&pair(ANCHOR)])).unwrap_err();
    assert!(e.contains("signatures[1]: is missing"), "{e}");
    let e = load(&package(&second, &[&pair(ANCHOR), &pair(PACKAGE_ROOT)])).unwrap_err();
    assert!(e.contains("signatures[1]: does not verify"), "{e}");
    load(&package(&second, &[&pair(PACKAGE_ROOT), &pair(ANCHOR)])).unwrap();
}

#[test]
fn a_package_without_the_anchors_kid_fails() {
    let protected = protected().replace("\"root.anchor\": ", "\"root.other\": ");
    let e = load(&package(&protected, &[&pair(ANCHOR)])).unwrap_err();
    assert!(
        e.contains("protected.rootKeys: has no key `root.anchor`"),
        "{e}"
    );
}

#[test]
fn a_package_needs_an_anchor_that_is_not_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rootkeys.json");
    std::fs::write(&path, good_package()).unwrap();
    let config = Config::parse(
        Path::new("c.toml"),
        &format!("[signing]\nroot_key_package = \"{}\"\n", path.display()),
    )
    .unwrap();
    let e = Trust::from_config(&config.signing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("root_key_package: {}: ", path.display()))
            && e.contains("proves nothing without a key to check it with"),
        "{e}"
    );
    let e = load_with(&good_package(), "disabled_root_keys = [\"root.anchor\"]\n").unwrap_err();
    assert!(e.contains("proves nothing"), "{e}");
    // An anchor that is not RSA cannot have signed it.
    let ed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys/ed25519-root.pub.pem");
    let config = Config::parse(
        Path::new("c.toml"),
        &format!(
            "[signing]\nroot_keys = [{{ kid = \"root.anchor\", pem_file = \"{}\" }}]\nroot_key_package = \"{}\"\n",
            ed.display(),
            path.display()
        ),
    )
    .unwrap();
    let e = Trust::from_config(&config.signing).unwrap_err().to_string();
    assert!(
        e.contains("signatures[0]: root key `root.anchor` is configured as an EdDSA key"),
        "{e}"
    );
}

#[test]
fn a_package_key_for_a_configured_kid_must_be_the_configured_key() {
    let protected = protected().replace(&entry(&pair(ANCHOR)), &entry(&pair(SIGNING)));
    let e = load(&package(&protected, &[&pair(ANCHOR)])).unwrap_err();
    assert!(
        e.contains("protected.rootKeys.\"root.anchor\": is another key than root key `root.anchor` as configured"),
        "{e}"
    );
}

#[test]
fn a_test_package_is_refused_unless_test_packages_are_allowed() {
    let protected = protected().replace("\"isTest\": false", "\"isTest\": true");
    let test = package(&protected, &[&pair(ANCHOR)]);
    let e = load(&test).unwrap_err();
    assert!(
        e.contains("protected.isTest: this is a test package"),
        "{e}"
    );
    load_with(&test, "root_key_package_allow_test = true\n").unwrap();
    // Absent means a production package.
    let absent = self::protected().replace("\"isTest\": false,", "");
    load(&package(&absent, &[&pair(ANCHOR)])).unwrap();
}

#[test]
fn an_exponent_given_as_a_string_fails() {
    let protected = protected().replacen("\"e\": 65537", "\"e\": \"AQAB\"", 1);
    let e = load(&package(&protected, &[&pair(ANCHOR)])).unwrap_err();
    assert!(
        e.contains("protected.rootKeys.\"root.anchor\".e: must be a number, not a string"),
        "{e}"
    );
}

#[test]
fn a_sha1_disabled_signing_key_fails() {
    let protected = protected().replace("\"alg\": \"SHA256\"", "\"alg\": \"sha1\"");
    let e = load(&package(&protected, &[&pair(ANCHOR)])).unwrap_err();
    assert!(
        e.contains("protected.disabledSigningKeys[0].alg: `sha1` is too weak"),
        "{e}"
    );
}

#[test]
fn a_slash_is_escaped_when_protected_is_re_serialised() {
    use base64::Engine as _;
    // `n` in standard base64, as ADU's decoder also reads it: it has a `/`.
    let anchor = pair(ANCHOR);
    let url_n = anchor.public_jwk(None)["n"].as_str().unwrap().to_owned();
    let standard_n =
        base64::engine::general_purpose::STANDARD.encode(key::decode_b64url(&url_n).unwrap());
    assert!(standard_n.contains('/'), "{standard_n}");
    let protected = protected().replace(&url_n, &standard_n);
    let text = package(&protected, &[&anchor]);
    let parsed = RootKeyPackage::parse(&text).unwrap();
    assert!(
        parsed
            .signed_text()
            .contains(&standard_n.replace('/', "\\/")),
        "{}",
        parsed.signed_text()
    );
    assert!(!parsed.signed_text().contains(' '));
    load(&text).unwrap();
    // A signature over the unescaped text is not ADU's and does not verify.
    let unescaped = parsed.signed_text().replace("\\/", "/");
    let mut sig = Vec::new();
    {
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                ANCHOR
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let k = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        sig.resize(k.public().modulus_len(), 0);
        k.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            unescaped.as_bytes(),
            &mut sig,
        )
        .unwrap();
    }
    let wrong = format!(
        "{{\"protected\": {protected}, \"signatures\": [{{\"alg\": \"RS256\", \"sig\": \"{}\"}}]}}",
        key::encode_b64url(&sig)
    );
    let e = load(&wrong).unwrap_err();
    assert!(e.contains("signatures[0]: does not verify"), "{e}");
}

#[test]
fn every_parse_rule_names_its_field() {
    let good = good_package();
    let anchor_n = pair(ANCHOR).public_jwk(None)["n"]
        .as_str()
        .unwrap()
        .to_owned();
    let sig0 = good
        .split("\"sig\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let hash = key::encode_b64url(&pair(SIGNING).public().adu_key_hash().unwrap());
    let cases: Vec<(String, &str)> = vec![
        ("[]".into(), "must be an object, not an array"),
        ("{\"protected\": {}".into(), "not JSON"),
        (
            good.replacen("\"version\": 1,", "\"version\": 1, \"version\": 1,", 1),
            "appears twice",
        ),
        (
            good.replacen("\"protected\"", "\"unprotected\"", 1),
            "unprotected: unknown member",
        ),
        (
            good.replacen("\"isTest\": false", "\"isTest\": \"false\"", 1),
            "protected.isTest: must be a boolean, not a string",
        ),
        (
            good.replacen("\"version\": 1", "\"version\": 0", 1),
            "protected.version: must not be 0",
        ),
        (
            good.replacen("\"version\": 1", "\"version\": \"1\"", 1),
            "protected.version: must be a number",
        ),
        (
            good.replacen("\"version\": 1,", "", 1),
            "protected.version: is missing",
        ),
        (
            good.replacen("\"published\": 1675972876", "\"published\": 0.5", 1),
            "protected.published: must be a positive number",
        ),
        (
            good.replacen("\"disabledRootKeys\": [\"root.retired\"],", "", 1),
            "protected.disabledRootKeys: is missing",
        ),
        (
            good.replacen("[\"root.retired\"]", "\"root.retired\"", 1),
            "protected.disabledRootKeys: must be an array, not a string",
        ),
        (
            good.replacen("[\"root.retired\"]", "[\"root.retired\", 7]", 1),
            "protected.disabledRootKeys[1]: must be a string, not a number",
        ),
        (
            good.replacen(
                &format!("[{{\"alg\": \"SHA256\", \"hash\": \"{hash}\"}}]"),
                "{}",
                1,
            ),
            "protected.disabledSigningKeys: must be an array, not an object",
        ),
        (
            good.replacen("\"alg\": \"SHA256\"", "\"alg\": \"SHA224\"", 1),
            "protected.disabledSigningKeys[0].alg: `SHA224` is too weak",
        ),
        (
            good.replacen("\"alg\": \"SHA256\"", "\"alg\": \"MD5\"", 1),
            "protected.disabledSigningKeys[0].alg: `MD5` is not a hash algorithm",
        ),
        (
            good.replacen(&hash, "", 1),
            "protected.disabledSigningKeys[0].hash: is empty",
        ),
        (
            good.replacen(&hash, "not*base64", 1),
            "protected.disabledSigningKeys[0].hash: is neither base64url nor standard base64",
        ),
        (
            good.replacen(&hash, &hash[..20], 1),
            "protected.disabledSigningKeys[0].hash: is 15 bytes, and a SHA256 hash is 32",
        ),
        (
            good.replacen(
                &format!("\"hash\": \"{hash}\""),
                &format!("\"hash\": \"{hash}\", \"kid\": \"x\""),
                1,
            ),
            "protected.disabledSigningKeys[0].kid: unknown member",
        ),
        (
            {
                let start = good.find("\"rootKeys\"").unwrap();
                let end = good[start..].find("\n  }").unwrap() + start + 4;
                format!("{}\"rootKeys\": {{}}{}", &good[..start], &good[end..])
            },
            "protected.rootKeys: is empty",
        ),
        (
            good.replacen("\"keyType\": \"RSA\"", "\"keyType\": \"rsa\"", 1),
            "protected.rootKeys.\"root.anchor\".keyType: `rsa` is not supported",
        ),
        (
            good.replacen("\"keyType\": \"RSA\", ", "", 1),
            "protected.rootKeys.\"root.anchor\".keyType: is missing",
        ),
        (
            good.replacen(&anchor_n, "", 1),
            "protected.rootKeys.\"root.anchor\".n: is empty",
        ),
        (
            good.replacen(&anchor_n, "@@@@", 1),
            "protected.rootKeys.\"root.anchor\".n: is neither base64url nor standard base64",
        ),
        (
            good.replacen(&anchor_n, "AQAB", 1),
            "protected.rootKeys.\"root.anchor\".n: an RSA modulus of about 24 bits",
        ),
        (
            good.replacen("\"e\": 65537", "\"e\": 0", 1),
            "protected.rootKeys.\"root.anchor\".e: must be a positive whole number",
        ),
        (
            good.replacen("\"e\": 65537", "\"e\": 65537.5", 1),
            "protected.rootKeys.\"root.anchor\".e: must be a positive whole number",
        ),
        (
            good.replacen("\"e\": 65537", "\"e\": 65537, \"kid\": \"x\"", 1),
            "protected.rootKeys.\"root.anchor\".kid: unknown member",
        ),
        (
            good.replacen("\"root.anchor\": {", "\"\": {", 1),
            "protected.rootKeys.\"\": an empty kid names no key",
        ),
        (
            good.replacen(&entry(&pair(ANCHOR)), "\"RSA\"", 1),
            "protected.rootKeys.\"root.anchor\": must be an object, not a string",
        ),
        (
            {
                let start = good.find("\"signatures\"").unwrap();
                format!("{}\"signatures\": []}}", &good[..start])
            },
            "signatures: is empty",
        ),
        (
            {
                let start = good.find(",\n\"signatures\"").unwrap();
                format!("{}}}", &good[..start])
            },
            "signatures: is missing",
        ),
        (
            good.replacen("\"alg\": \"RS256\"", "\"alg\": \"rs256\"", 1),
            "signatures[0].alg: `rs256` is not RS256, RS384 or RS512",
        ),
        (good.replacen(&sig0, "", 1), "signatures[0].sig: is empty"),
        (
            good.replacen(&format!("\"sig\": \"{sig0}\""), "\"sig\": 1", 1),
            "signatures[0].sig: must be a string, not a number",
        ),
    ];
    for (text, want) in cases {
        let e = load(&text).unwrap_err();
        assert!(e.contains(want), "{e}\nlacks: {want}");
    }
    // RS384 and RS512 parse, and are checked as RS256, as ADU checks them.
    load(&good.replacen("\"alg\": \"RS256\"", "\"alg\": \"RS512\"", 1)).unwrap();
}

#[test]
fn a_relative_or_unreadable_package_path_is_refused_naming_the_key() {
    let e = Config::parse(
        Path::new("c.toml"),
        "[signing]\nroot_key_package = \"rootkeys.json\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("signing.root_key_package: `rootkeys.json` is not an absolute path"),
        "{e}"
    );
    let config = Config::parse(
        Path::new("c.toml"),
        &format!(
            "[signing]\nroot_keys = [{{ kid = \"root.anchor\", pem_file = \"{}\" }}]\nroot_key_package = \"/nonexistent/rootkeys.json\"\n",
            anchor_pem().display()
        ),
    )
    .unwrap();
    let e = Trust::from_config(&config.signing).unwrap_err().to_string();
    assert!(
        e.starts_with("root_key_package: /nonexistent/rootkeys.json: "),
        "{e}"
    );
}
