//! The `handrail` command end to end: validation messages, exit codes, the state lock,
//! status and history, reboot/resume, and the example manifests through the built-in
//! WebAssembly script handler.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::{Device, Run, script_manifest};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/manifests");

#[test]
fn validate_gives_a_distinct_clear_message_for_each_malformed_manifest() {
    let device = Device::new();
    let mut messages = BTreeSet::new();
    let mut count = 0;
    let mut files: Vec<_> = fs::read_dir(Path::new(CORPUS).join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let run = device.run(&["validate", path.to_str().unwrap()]);
        assert_eq!(run.code(), Some(2), "{}: {}", path.display(), run.stderr());
        let message = run.stderr();
        assert!(
            message.starts_with("error: "),
            "{}: {message}",
            path.display()
        );
        assert!(
            messages.insert(message.clone()),
            "{} repeats: {message}",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 20, "only {count} malformed manifests");
}

#[test]
fn validate_accepts_the_script_examples_and_names_unknown_handlers() {
    let device = Device::new();
    let parent = Path::new(CORPUS).join("valid/parent-reference-step.json");
    let run = device.run(&["validate", parent.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stdout().contains("MSOE-Update-Demo"),
        "{}",
        run.stdout()
    );
    let json = device.run(&["--json", "validate", parent.to_str().unwrap()]);
    assert_eq!(json.last_json()["valid"], true);

    let unknown = device.manifest(
        "unknown.json",
        &serde_json::json!({
            "updateId": {"provider": "p", "name": "n", "version": "1"},
            "compatibility": [{"model": "m"}],
            "instructions": {"steps": [{"handler": "contoso/nothing:1", "files": []}]},
            "manifestVersion": "5.0"
        }),
    );
    let run = device.run(&["validate", unknown.to_str().unwrap()]);
    assert_eq!(run.code(), Some(2));
    assert!(
        run.stderr().contains("instructions.steps[0].handler")
            && run.stderr().contains("contoso/nothing:1"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_script_deployment_succeeds_and_shows_in_history_and_status() {
    let device = Device::new();
    let manifest = device.manifest(
        "update.json",
        &script_manifest(&device, &["one", "two"], &[]),
    );
    let run = device.run(&[
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stdout().contains("succeeded"), "{}", run.stdout());
    assert!(device.device.join("one").exists() && device.device.join("two").exists());

    let status = device.run(&["status"]);
    assert!(status.stdout().contains("no deployment in progress"));
    assert!(status.stdout().contains("one") && status.stdout().contains("two"));
    let history = device.run(&["--json", "history"]).last_json();
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["report"]["status"], "succeeded");

    // Deploying again: every step is already installed (900) and nothing is re-run.
    let before = device.log().len();
    let run = device.run(&[
        "--json",
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0));
    let report = run.last_json();
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "already-installed")
    );
    let after: Vec<String> = device.log()[before..].to_vec();
    assert!(
        after.iter().all(|l| l.ends_with("is-installed")),
        "{after:?}"
    );
}

#[test]
fn reboot_exit_code_then_resume_continues_at_the_next_action() {
    let device = Device::new();
    let manifest = device.manifest(
        "update.json",
        &script_manifest(&device, &["fw", "after"], &["install=605", ""]),
    );
    let run = device.run(&[
        "--json",
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    assert_eq!(
        run.code(),
        Some(3),
        "reboot required: {}\n{}",
        run.stdout(),
        run.stderr()
    );
    assert_eq!(run.last_json()["interruption"], "immediate-reboot");
    assert_eq!(device.log().last().map(String::as_str), Some("fw install"));

    let busy = device.run(&[
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    assert_eq!(busy.code(), Some(6), "{}", busy.stderr());
    assert!(
        busy.stderr().contains("handrail resume"),
        "{}",
        busy.stderr()
    );

    let before = device.log().len();
    let resumed = device.run(&["resume"]);
    assert_eq!(
        resumed.code(),
        Some(0),
        "{}\n{}",
        resumed.stdout(),
        resumed.stderr()
    );
    assert_eq!(
        device.log()[before],
        "fw apply",
        "continues at the next action"
    );
    assert!(!device.log()[before..].iter().any(|l| l == "fw install"));
    assert!(device.device.join("after").exists());
}

#[test]
fn a_second_process_is_refused_while_the_first_owns_the_state() {
    let device = Device::new();
    let manifest = device.manifest("update.json", &script_manifest(&device, &["slow"], &[]));
    // Hold the state directory's lock the way a running `handrail` does (flock on the
    // lock file).
    fs::create_dir_all(&device.state).unwrap();
    let lock = fs::File::create(device.state.join("lock")).unwrap();
    lock.lock().unwrap();
    let before: Vec<_> = fs::read_dir(&device.state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let run = device.run(&[
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(6), "{}", run.stderr());
    assert!(
        run.stderr().contains("in use by another handrail process"),
        "{}",
        run.stderr()
    );
    let after: Vec<_> = fs::read_dir(&device.state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after, "the refused process changed nothing");
    assert!(device.log().is_empty());
}

#[test]
fn without_a_configuration_unsigned_manifests_are_refused_unless_allowed() {
    let device = Device::new();
    let manifest = device.manifest("m.json", &script_manifest(&device, &["a"], &[]));
    let payloads = device.payloads.to_str().unwrap();
    let args = ["deploy", manifest.to_str().unwrap(), "--payloads", payloads];
    let run = device.run_strict(&args);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("unsigned and signing is required"),
        "{}",
        run.stderr()
    );
    let run = device.run_strict(&["validate", manifest.to_str().unwrap()]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(device.log().is_empty(), "nothing ran: {:?}", device.log());
    assert_eq!(device.run(&args).code(), Some(0));
}

/// A one-step script update whose file is a `files` entry (`f1`), as a signed parent's
/// must be, with installed criteria `criteria`.
fn signable_update(device: &Device, criteria: &str) -> serde_json::Value {
    let mut manifest = script_manifest(device, &[criteria], &[]);
    let script = fs::read(device.payloads.join("device-step.sh")).unwrap();
    manifest["instructions"]["steps"][0]["files"] = serde_json::json!(["f1"]);
    manifest["files"] = serde_json::json!({"f1": {
        "fileName": "device-step.sh",
        "sizeInBytes": script.len(),
        "hashes": {"sha256": common::sha256_base64(&script)},
    }});
    manifest
}

/// The test keys' folder, its RSA root key and its RSA signing key.
fn test_keys() -> (
    std::path::PathBuf,
    handrail::trust::sign::KeyPair,
    handrail::trust::sign::KeyPair,
) {
    use handrail::trust::sign::KeyPair;
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/keys");
    let pair =
        |name: &str| KeyPair::from_pem(&fs::read_to_string(keys.join(name)).unwrap()).unwrap();
    let (root, signing) = (pair("rsa-root.pem"), pair("rsa-signing.pem"));
    (keys, root, signing)
}

/// Writes the device's configuration `config.toml` trusting the test keys' RSA root key
/// as `root.1`, and returns its path.
fn trusting_test_root(device: &Device, keys: &Path) -> std::path::PathBuf {
    let config = device.tmp.path().join("config.toml");
    device.write_config(
        &config,
        &format!(
            "[signing]\nroot_keys = [{{ kid = \"root.1\", pem_file = \"{}\" }}]\n",
            keys.join("rsa-root.pub.pem")
                .canonicalize()
                .unwrap()
                .display()
        ),
    );
    config
}

/// Signs manifests with the test signing key under root `root.1`, and the configuration
/// that trusts that root.
struct Signer {
    signing: handrail::trust::sign::KeyPair,
    sjwk: String,
    config: std::path::PathBuf,
}

impl Signer {
    fn new(device: &Device) -> Signer {
        let (keys, root, signing) = test_keys();
        let sjwk = root
            .sign_key("root.1", &signing.public_jwk(Some("signing.1")))
            .unwrap();
        let config = trusting_test_root(device, &keys);
        Signer {
            signing,
            sjwk,
            config,
        }
    }

    /// The `updateManifestSignature` of `manifest`.
    fn sign(&self, manifest: &str) -> String {
        self.signing
            .sign_manifest(manifest.as_bytes(), &self.sjwk)
            .unwrap()
    }
}

/// Writes the envelope `id.json` of `manifest` signed by `signature`, as the service
/// delivers it.
fn envelope(device: &Device, manifest: &str, signature: &str, id: &str) -> std::path::PathBuf {
    device.manifest(
        &format!("{id}.json"),
        &serde_json::json!({
            "workflow": {"action": 3, "id": id},
            "updateManifest": manifest,
            "updateManifestSignature": signature,
            "fileUrls": {"f1": "http://example.invalid/device-step.sh"},
        }),
    )
}

/// `handrail --config <config> deploy <envelope>` over the device's payloads, signing
/// required.
fn deploy_signed(device: &Device, config: &Path, envelope: &Path) -> Run {
    device.run_strict(&[
        "--config",
        config.to_str().unwrap(),
        "deploy",
        envelope.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ])
}

#[test]
fn a_signed_envelope_deploys_through_the_binary_and_a_tampered_one_does_not() {
    let device = Device::new();
    let text = signable_update(&device, "signed").to_string();
    let signer = Signer::new(&device);
    let signature = signer.sign(&text);
    let config = signer.config.clone();
    let tampered = envelope(
        &device,
        &text.replace("signed", "forged"),
        &signature,
        "tampered",
    );
    let run = deploy_signed(&device, &config, &tampered);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("altered after signing"),
        "{}",
        run.stderr()
    );
    assert!(device.log().is_empty());
    let run = deploy_signed(
        &device,
        &config,
        &envelope(&device, &text, &signature, "genuine"),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(!device.log().is_empty());
}

#[test]
fn configured_grants_reach_a_built_in_handler_and_a_wrong_id_is_refused_by_key() {
    let device = Device::new();
    let config = device.tmp.path().join("config.toml");
    let boot = device.device.join("boot");
    fs::write(
        &config,
        format!(
            "[handler_grants.\"microsoft/swupdate:2\"]\nwrite = [\"{}\"]\n",
            boot.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = device.run(&["--config", config, "--json", "handlers", "list"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let list = run.last_json();
    let swupdate = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "microsoft/swupdate:2")
        .expect("the built-in swupdate handler");
    assert_eq!(swupdate["capabilities"]["write"][0], boot.to_str().unwrap());
    assert_eq!(swupdate["capabilities"]["run"][0], "/usr/bin/swupdate");
    let human = device.run(&["--config", config, "handlers", "list"]);
    assert!(
        human
            .stdout()
            .contains(&format!("write: [{}]", boot.display())),
        "{}",
        human.stdout()
    );

    let wrong = device.tmp.path().join("wrong.toml");
    fs::write(
        &wrong,
        "[handler_grants.\"microsoft/swupdate:9\"]\nwrite = [\"/var/lib/boot\"]\n",
    )
    .unwrap();
    let run = device.run(&["--config", wrong.to_str().unwrap(), "handlers", "list"]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("handler_grants.\"microsoft/swupdate:9\": no handler"),
        "{}",
        run.stderr()
    );
}

#[test]
fn exit_codes_say_what_failed_where_it_failed() {
    let device = Device::new();
    let parent = Path::new(CORPUS).join("valid/parent-reference-step.json");
    let parent = parent.to_str().unwrap();

    // A file the user named that cannot be read: bad input.
    let run = device.run(&["validate", "/nonexistent/update.json"]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("/nonexistent/update.json"),
        "{}",
        run.stderr()
    );

    // A root key the configuration names that cannot be used: bad input, naming it.
    let config = device.tmp.path().join("keys.toml");
    fs::write(
        &config,
        "[signing]\nroot_keys = [{ kid = \"k1\", pem_file = \"/nonexistent/root.pem\" }]\n",
    )
    .unwrap();
    let run = device.run_strict(&["--config", config.to_str().unwrap(), "validate", parent]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("/nonexistent/root.pem"),
        "{}",
        run.stderr()
    );

    // The state directory itself failing is internal, not the user's input.
    let broken = Device::new();
    let _ = fs::remove_dir_all(&broken.state);
    fs::write(&broken.state, b"not a folder").unwrap();
    let run = broken.run(&["handlers", "list"]);
    assert_eq!(run.code(), Some(10), "{}", run.stderr());
}

/// A manifest signed as ADU's service signs it: the signing key's JWK in the `sjwk` has
/// `n` in standard base64 with its padding and `e` = "AQAB"; the parent's compatibility
/// says `deviceManufacturer`/`deviceModel`.
#[test]
fn an_envelope_signed_as_adus_service_signs_it_deploys_and_is_refused_once_its_key_is_revoked() {
    use base64::Engine as _;

    let device = Device::new();
    let mut manifest = signable_update(&device, "adu-signed");
    manifest["compatibility"] =
        serde_json::json!([{"deviceManufacturer": "contoso", "deviceModel": "e2e"}]);
    let text = manifest.to_string();
    let (keys, root, signing) = test_keys();
    let url_n = signing.public_jwk(None)["n"].as_str().unwrap().to_owned();
    let n = base64::engine::general_purpose::STANDARD.encode(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(url_n)
            .unwrap(),
    );
    assert!(n.contains(['+', '/']) && n.ends_with('='), "{n}");
    let adu_jwk = serde_json::json!({
        "kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "ADU.signing.1",
    });
    let sjwk = root
        .sign_key("ADU.root.1", adu_jwk.as_object().unwrap())
        .unwrap();
    let signature = signing.sign_manifest(text.as_bytes(), &sjwk).unwrap();
    let root_pem = keys.join("rsa-root.pub.pem").canonicalize().unwrap();
    let config = |revoked: &str| {
        let path = device
            .tmp
            .path()
            .join(format!("config{}.toml", revoked.len()));
        device.write_config(
            &path,
            &format!(
                "[device]\nmanufacturer = \"contoso\"\nmodel = \"e2e\"\n\n[signing]\nroot_keys = [{{ kid = \"ADU.root.1\", pem_file = \"{}\" }}]\n{revoked}",
                root_pem.display()
            ),
        );
        path
    };
    let envelope = |manifest: &str, id: &str| envelope(&device, manifest, &signature, id);
    let deploy = |config: &Path, envelope: &Path| deploy_signed(&device, config, envelope);

    // Tampered: refused because the manifest changed, not because of the key's form.
    let trusting = config("");
    let run = deploy(
        &trusting,
        &envelope(&text.replace("adu-signed", "forged"), "tampered"),
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("altered after signing"),
        "{}",
        run.stderr()
    );

    // The signing key revoked as ADU names it, by the hash of its public key: refused.
    // (`openssl rsa -RSAPublicKey_out -outform DER | openssl dgst -sha256`, base64url.)
    let revoking = config(
        "disallowed_signing_keys = [{ alg = \"SHA256\", hash = \"egG9175-oqkLDXndQ7QZ2apfzAqNh1xMJF07YV2S7GY\" }]\n",
    );
    let run = deploy(&revoking, &envelope(&text, "revoked"));
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("is disallowed"), "{}", run.stderr());
    assert!(device.log().is_empty());

    let run = deploy(&trusting, &envelope(&text, "genuine"));
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(!device.log().is_empty());
}

/// `protected` of a root key package carrying `root_keys` (kid, key) in that order, with
/// `disabled_root_keys` and the ADU hashes (SHA-256) of `disabled_signing_keys`.
fn root_key_package_protected(
    root_keys: &[(&str, &handrail::trust::sign::KeyPair)],
    disabled_root_keys: &[&str],
    disabled_signing_keys: &[&handrail::trust::sign::KeyPair],
) -> String {
    let keys: Vec<String> = root_keys
        .iter()
        .map(|(kid, key)| {
            let n = key.public_jwk(None)["n"].as_str().unwrap().to_owned();
            format!(r#""{kid}": {{"keyType": "RSA", "n": "{n}", "e": 65537}}"#)
        })
        .collect();
    let hashes: Vec<String> = disabled_signing_keys
        .iter()
        .map(|key| {
            use base64::Engine as _;
            let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(key.public().adu_key_hash().unwrap());
            format!(r#"{{"alg": "SHA256", "hash": "{hash}"}}"#)
        })
        .collect();
    format!(
        r#"{{"isTest": false, "version": 2, "published": 1717171717, "disabledRootKeys": {}, "disabledSigningKeys": [{}], "rootKeys": {{{}}}}}"#,
        serde_json::json!(disabled_root_keys),
        hashes.join(", "),
        keys.join(", ")
    )
}

/// A root key package of `protected` whose `signatures` are `signers`', in that order.
fn root_key_package(protected: &str, signers: &[&handrail::trust::sign::KeyPair]) -> String {
    let signatures: Vec<String> = signers
        .iter()
        .map(|key| {
            let sig = key.sign_root_key_package(protected).unwrap();
            format!(r#"{{"alg": "RS256", "sig": "{sig}"}}"#)
        })
        .collect();
    format!(
        "{{\n  \"protected\": {protected},\n  \"signatures\": [{}]\n}}\n",
        signatures.join(", ")
    )
}

/// A device migrating from ADU keeps its root key package: configured with only an
/// anchor key (a PEM) and the package, it trusts a root key only the package carries,
/// and refuses the root key and the signing key the package disables.
#[test]
fn a_root_key_package_trusts_its_root_keys_and_revokes_what_it_disables() {
    use handrail::trust::sign::KeyPair;

    let device = Device::new();
    let text = signable_update(&device, "from-package").to_string();
    let (keys, anchor, revoked_signing) = test_keys();
    let package_root =
        KeyPair::from_pem(&fs::read_to_string(keys.join("rsa-package-root.pem")).unwrap()).unwrap();
    // `root.retired` is disabled by the package that carries it.
    let protected = root_key_package_protected(
        &[
            ("root.anchor", &anchor),
            ("root.package", &package_root),
            ("root.retired", &revoked_signing),
        ],
        &["root.retired"],
        &[&revoked_signing],
    );
    let package = device.tmp.path().join("rootkeys.json");
    fs::write(
        &package,
        root_key_package(&protected, &[&anchor, &package_root]),
    )
    .unwrap();
    let anchor_pem = keys.join("rsa-root.pub.pem").canonicalize().unwrap();
    let config = |name: &str, package: Option<&Path>| {
        let path = device.tmp.path().join(name);
        let package = package
            .map(|p| format!("root_key_package = \"{}\"\n", p.display()))
            .unwrap_or_default();
        device.write_config(
            &path,
            &format!(
                "[signing]\nroot_keys = [{{ kid = \"root.anchor\", pem_file = \"{}\" }}]\n{package}",
                anchor_pem.display()
            ),
        );
        path
    };
    let with_package = config("with-package.toml", Some(&package));
    let signed = |root: &KeyPair, root_kid: &str, signing: &KeyPair, id: &str| {
        let sjwk = root
            .sign_key(root_kid, &signing.public_jwk(Some("signing.1")))
            .unwrap();
        let signature = signing.sign_manifest(text.as_bytes(), &sjwk).unwrap();
        envelope(&device, &text, &signature, id)
    };
    let signing = KeyPair::generate_p256().unwrap();
    let genuine = signed(&package_root, "root.package", &signing, "genuine");

    // The root key the package disables, though the package carries it.
    let run = deploy_signed(
        &device,
        &with_package,
        &signed(&revoked_signing, "root.retired", &signing, "retired-root"),
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("root key `root.retired`, which is disabled"),
        "{}",
        run.stderr()
    );
    // The signing key the package disables, under a root key it trusts.
    let run = deploy_signed(
        &device,
        &with_package,
        &signed(
            &package_root,
            "root.package",
            &revoked_signing,
            "revoked-signing",
        ),
    );
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("is disallowed"), "{}", run.stderr());
    // Without the package, its root key is nobody's.
    let run = deploy_signed(&device, &config("anchor-only.toml", None), &genuine);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("root key `root.package`, which is not a trusted root key"),
        "{}",
        run.stderr()
    );
    assert!(device.log().is_empty(), "nothing ran: {:?}", device.log());

    let run = deploy_signed(&device, &with_package, &genuine);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(!device.log().is_empty());
}

/// A root key package that cannot be used stops the binary before anything runs, naming
/// the file and the field.
#[test]
fn a_faulty_root_key_package_is_refused_naming_its_file_and_field() {
    let device = Device::new();
    let (keys, anchor, _) = test_keys();
    let protected = root_key_package_protected(&[("root.anchor", &anchor)], &[], &[])
        .replace("\"e\": 65537", "\"e\": \"AQAB\"");
    let package = device.tmp.path().join("rootkeys.json");
    fs::write(&package, root_key_package(&protected, &[&anchor])).unwrap();
    let config = device.tmp.path().join("config.toml");
    device.write_config(
        &config,
        &format!(
            "[signing]\nroot_keys = [{{ kid = \"root.anchor\", pem_file = \"{}\" }}]\nroot_key_package = \"{}\"\n",
            keys.join("rsa-root.pub.pem").canonicalize().unwrap().display(),
            package.display()
        ),
    );
    let parent = Path::new(CORPUS).join("valid/parent-reference-step.json");
    let run = device.run_strict(&[
        "--config",
        config.to_str().unwrap(),
        "validate",
        parent.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    let want = format!(
        "signing.root_key_package: {}: protected.rootKeys.\"root.anchor\".e: must be a number, not a string",
        package.display()
    );
    assert!(run.stderr().contains(&want), "{}", run.stderr());
}

/// ADU's demos give several steps of one update the same installedCriteria, and its agent
/// runs them: so does Handrail, warning of it by step.
#[test]
fn steps_that_share_installed_criteria_run_with_a_warning_naming_them() {
    let device = Device::new();
    let manifest = device.manifest(
        "shared.json",
        &script_manifest(&device, &["shared-1.0", "shared-1.0"], &[]),
    );
    let run = device.run(&["validate", manifest.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let warning =
        "instructions.steps[0], instructions.steps[1] share installedCriteria `shared-1.0`";
    assert!(run.stderr().contains(warning), "{}", run.stderr());

    let run = device.deploy_json(&manifest);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stderr().contains(warning), "{}", run.stderr());
    // Each step's handler answers for itself: the second finds what the first applied.
    let report = run.last_json();
    let outcomes: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded", "already-installed"], "{report}");
}

/// An import manifest as ADU's tools write it (PowerShell's `New-AduImportManifest`: UTF-8
/// with a byte-order mark, manifestVersion "4.0", `files` as an array of `filename`
/// entries, steps naming their files by name) validates and deploys; a payload file that
/// does not match its entry is refused, naming it.
#[test]
fn an_import_manifest_as_adus_tools_write_it_deploys() {
    let device = Device::new();
    let mut manifest = script_manifest(&device, &["imported-1.0"], &[]);
    let script = fs::read(device.payloads.join("device-step.sh")).unwrap();
    manifest["manifestVersion"] = "4.0".into();
    manifest["createdDateTime"] = "2026-11-30T04:02:43.9745720Z".into();
    manifest["instructions"]["steps"][0]["type"] = "inline".into();
    manifest["files"] = serde_json::json!([{
        "filename": "device-step.sh",
        "sizeInBytes": script.len(),
        "hashes": {"sha256": common::sha256_base64(&script)},
    }]);
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(serde_json::to_vec_pretty(&manifest).unwrap());
    let path = device
        .tmp
        .path()
        .join("contoso.device-steps.1.0.importmanifest.json");
    fs::write(&path, &bytes).unwrap();
    let path = path.to_str().unwrap();

    let run = device.run(&["validate", path]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let run = device.deploy_json(Path::new(path));
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert_eq!(run.last_json()["steps"][0]["outcome"], "succeeded");

    // The same manifest, its file grown by a byte: refused before anything runs.
    let tampered = device.tmp.path().join("tampered");
    fs::create_dir_all(&tampered).unwrap();
    let mut grown = script.clone();
    grown.push(b'\n');
    fs::write(tampered.join("device-step.sh"), grown).unwrap();
    let before = device.log().len();
    let run = device.run(&[
        "deploy",
        path,
        "--payloads",
        tampered.to_str().unwrap(),
        "--id",
        "tampered",
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("device-step.sh"), "{}", run.stderr());
    assert_eq!(device.log().len(), before, "nothing ran");
}

/// A detached parent manifest as ADU's service delivers a large update: the signed
/// `updateManifest` names a payload file (`detachedManifestFileId`, with its size and
/// sha256 in `files`) that holds the full manifest as `{"updateManifest": "<string>"}`.
#[test]
fn a_detached_parent_manifest_is_read_from_its_payload_file_checked_and_run() {
    let device = Device::new();
    let full = signable_update(&device, "detached-full");
    let detached_name = "contoso.device-steps.1.0.updatemanifest.json";
    let detached = serde_json::json!({"updateManifest": full.to_string()}).to_string();
    let write_detached = |text: &str| fs::write(device.payloads.join(detached_name), text).unwrap();
    write_detached(&detached);
    let outer = serde_json::json!({
        "manifestVersion": "5",
        "updateId": full["updateId"],
        "compatibility": full["compatibility"],
        "detachedManifestFileId": "fdm",
        "files": {"fdm": {
            "fileName": detached_name,
            "sizeInBytes": detached.len(),
            "hashes": {"sha256": common::sha256_base64(detached.as_bytes())},
        }},
        "createdDateTime": "2026-12-02T00:00:00Z",
    })
    .to_string();
    let signer = Signer::new(&device);
    let signature = signer.sign(&outer);
    let config = signer.config.clone();
    let envelope = envelope(&device, &outer, &signature, "detached");

    // validate reads it from the folder given (or the envelope's own folder).
    let run = device.run_strict(&[
        "--config",
        config.to_str().unwrap(),
        "validate",
        envelope.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());

    // The full manifest changed after signing: its hash no longer matches; nothing runs.
    write_detached(&detached.replace("detached-full", "detached-fake"));
    let run = deploy_signed(&device, &config, &envelope);
    assert_ne!(run.code(), Some(0), "{}", run.stdout());
    assert!(
        run.stderr().contains(detached_name) && run.stderr().contains("does not match files.fdm"),
        "{}",
        run.stderr()
    );
    assert!(device.log().is_empty());

    // Not ADU's delivered form (the manifest as an object, not a string): named as such.
    let as_object = serde_json::json!({"updateManifest": full}).to_string();
    write_detached(&as_object);
    let mut wrong_form = serde_json::from_str::<serde_json::Value>(&outer).unwrap();
    wrong_form["files"]["fdm"]["sizeInBytes"] = as_object.len().into();
    wrong_form["files"]["fdm"]["hashes"]["sha256"] =
        common::sha256_base64(as_object.as_bytes()).into();
    let wrong_form = wrong_form.to_string();
    let wrong_signature = signer.sign(&wrong_form);
    let run = deploy_signed(
        &device,
        &config,
        &self::envelope(&device, &wrong_form, &wrong_signature, "object-form"),
    );
    assert_ne!(run.code(), Some(0), "{}", run.stdout());
    assert!(
        run.stderr()
            .contains("`updateManifest` is the full manifest as a string"),
        "{}",
        run.stderr()
    );

    write_detached(&detached);
    let run = deploy_signed(&device, &config, &envelope);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(
        device.log().iter().any(|l| l.contains("detached-full")),
        "{:?}",
        device.log()
    );
}

/// ADU's workflow rules through the binary: every step's is-installed and download run
/// before the first install (a download that fails leaves nothing installed), any code
/// above 0 is a success, and a failed is-installed counts as "not installed".
#[test]
fn adus_phase_order_and_result_rules_hold_through_the_binary() {
    let device = Device::new();
    let codes = ["install=700", "is-installed=0", "download=0"];
    let failing = device.manifest(
        "failing.json",
        &script_manifest(&device, &["a", "b", "c"], &codes),
    );
    let run = device.deploy_json(&failing);
    assert_eq!(run.code(), Some(1), "{}\n{}", run.stdout(), run.stderr());
    let report = run.last_json();
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(report["failure"]["step"], 2, "{report}");
    assert_eq!(report["failure"]["action"], "download", "{report}");
    assert_eq!(
        device.log(),
        [
            "a is-installed",
            "a download",
            "b is-installed",
            "b download",
            "c is-installed",
            "c download"
        ],
        "nothing installs before every step has downloaded"
    );
    assert!(
        run.stderr().contains("taken as not installed"),
        "the failed is-installed is named: {}",
        run.stderr()
    );

    fs::remove_file(device.device.join("log")).unwrap();
    let passing = device.manifest(
        "passing.json",
        &script_manifest(&device, &["a", "b"], &codes[..2]),
    );
    let run = device.deploy_json(&passing);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    let report = run.last_json();
    let install_of_a = report["steps"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "install")
        .unwrap()
        .clone();
    assert_eq!(install_of_a["result"]["resultCode"], 700, "{report}");
    assert!(
        run.stderr().contains("counted as success"),
        "{}",
        run.stderr()
    );
    let log = device.log();
    let first_install = log.iter().position(|l| l.ends_with(" install")).unwrap();
    assert!(
        log[..first_install]
            .iter()
            .filter(|l| l.ends_with(" download"))
            .count()
            == 2,
        "{log:?}"
    );
}

/// `handrail status` keeps its records true: version 2.0 of an update replaces the
/// records of 1.0 (other criteria, same handler, no component).
#[test]
fn status_lists_what_a_later_version_installed_not_what_it_replaced() {
    let device = Device::new();
    let v1 = device.manifest(
        "v1.json",
        &script_manifest(&device, &["steps-1.0-a", "steps-1.0-b"], &[]),
    );
    assert_eq!(device.deploy(&v1).code(), Some(0));
    let mut update = script_manifest(&device, &["steps-2.0-a"], &[]);
    update["updateId"]["version"] = "2.0".into();
    let v2 = device.manifest("v2.json", &update);
    let run = device.deploy(&v2);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    let status = device.run(&["status"]).stdout();
    assert!(status.contains("steps-2.0-a"), "{status}");
    assert!(!status.contains("steps-1.0"), "{status}");
}

/// One `validate` names every problem once, then the signature's verdict on its own line.
#[test]
fn validate_names_every_problem_once_then_the_signature_verdict() {
    let device = Device::new();
    let semantic = device.manifest(
        "semantic.json",
        &serde_json::json!({
            "updateId": {"provider": "p", "name": "n", "version": "1"},
            "manifestVersion": "5",
            "compatibility": [{"manufacturer": "contoso"}],
            "instructions": {"steps": [{"handler": "nope/x:1", "files": ["../a"]}]},
        }),
    );
    let structural = device.manifest(
        "structural.json",
        &serde_json::json!({
            "updateId": {"provider": "p", "name": "n", "version": "1"},
            "manifestVersion": "9",
            "compatibility": [{"manufacturer": "contoso"}],
            "instructions": {"steps": [{"handler": 5, "files": []}]},
        }),
    );
    for (manifest, problems) in [
        (
            &semantic,
            &["unknown handler `nope/x:1`", "file name \"../a\""][..],
        ),
        (
            &structural,
            &[
                "unsupported manifestVersion `9`",
                "handler: must be a string",
            ][..],
        ),
    ] {
        let run = device.run_strict(&["validate", manifest.to_str().unwrap()]);
        assert_eq!(run.code(), Some(2), "{}", run.stderr());
        let stderr = run.stderr();
        for problem in problems {
            assert_eq!(stderr.matches(problem).count(), 1, "{problem}: {stderr}");
        }
        let last = stderr.trim_end().lines().last().unwrap();
        assert!(
            last.starts_with("signature: the update manifest is unsigned"),
            "{stderr}"
        );
    }
}

/// A damaged history entry costs only itself: `health` names it and still says healthy,
/// `history` lists the rest, and the next deployment sets it aside.
#[test]
fn a_damaged_history_entry_is_named_passed_over_and_set_aside() {
    let device = Device::new();
    let first = device.manifest("first.json", &script_manifest(&device, &["h-1"], &[]));
    assert_eq!(device.deploy(&first).code(), Some(0));
    let history = device.state.join("history");
    let entry = fs::read_dir(&history)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    fs::write(&entry, b"{\"sequence\": 1, \"rep").unwrap();
    let name = entry.file_name().unwrap().to_str().unwrap().to_owned();

    let health = device.run(&["health"]);
    assert_eq!(health.code(), Some(0), "{}", health.stderr());
    assert!(health.stdout().contains("healthy"), "{}", health.stdout());
    assert!(
        health.stderr().contains(&name) && health.stderr().contains("damaged history entry"),
        "{}",
        health.stderr()
    );
    let listed = device.run(&["history"]);
    assert_eq!(listed.code(), Some(0), "{}", listed.stderr());
    assert!(listed.stderr().contains(&name), "{}", listed.stderr());

    let second = device.manifest("second.json", &script_manifest(&device, &["h-2"], &[]));
    let run = device.deploy(&second);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(history.join(format!("{name}.damaged")).exists());
    assert!(!entry.exists());
    let listed = device.run(&["history"]);
    assert_eq!(listed.code(), Some(0), "{}", listed.stderr());
    assert!(!listed.stderr().contains(&name), "{}", listed.stderr());
}

/// The built-in apt and script-driven swupdate handlers fail as ADU's do, with ADU's
/// extended result codes, in the download phase, before either tool runs: the codes a
/// fleet dashboard keys on, through the binary.
#[test]
fn the_built_in_apt_and_swupdate_handlers_fail_with_adus_codes_through_the_binary() {
    use handrail_test_support::manifest::{Update, inline_step};
    let device = Device::new();
    let write = |name: &str, bytes: &[u8]| fs::write(device.payloads.join(name), bytes).unwrap();
    write(
        "apt-good.json",
        br#"{"name": "demo", "version": "1.0", "packages": [{"name": "hello"}]}"#,
    );
    write("apt-bad.json", b"{\"name\": \"demo\", \"packages\": ");
    write("install.sh", b"#!/bin/bash\nexit 0\n");
    write("image.swu", b"not an image");
    let cases = [
        (
            inline_step("microsoft/apt:1", &["apt-good.json"], serde_json::json!({})),
            "0x30200007",
        ),
        (
            inline_step(
                "microsoft/apt:1",
                &["apt-bad.json"],
                serde_json::json!({"installedCriteria": "apt-bad-1.0"}),
            ),
            "0x30000068",
        ),
        (
            inline_step(
                "microsoft/swupdate:2",
                &["install.sh"],
                serde_json::json!({"scriptFileName": "install.sh", "swuFileName": "image.swu", "installedCriteria": "2.0"}),
            ),
            "0x30100103",
        ),
        (
            inline_step(
                "microsoft/swupdate:2",
                &["install.sh", "image.swu"],
                serde_json::json!({"scriptFileName": "other.sh", "swuFileName": "image.swu", "installedCriteria": "2.0"}),
            ),
            "0x30100107",
        ),
    ];
    for (i, (step, code)) in cases.into_iter().enumerate() {
        let manifest = Update::new("contoso", &format!("adu-codes-{i}"), "1.0")
            .compatible_with("contoso", "e2e")
            .steps([step])
            .json()
            .clone();
        let path = device.manifest(&format!("codes-{i}.json"), &manifest);
        let run = device.deploy_json(&path);
        assert_eq!(
            run.code(),
            Some(1),
            "{code}: {}\n{}",
            run.stdout(),
            run.stderr()
        );
        let failure = &run.last_json()["failure"];
        assert_eq!(failure["action"], "download", "{code}: {failure}");
        assert_eq!(failure["extendedResultCodeHex"], code, "{failure}");
    }
}

/// A deployment refused before anything ran does not use up its id: once the cause is
/// fixed it runs. One that ran returns its result, until ADU's `retryTimestamp` changes.
#[test]
fn a_refused_id_runs_once_fixed_and_a_new_retry_timestamp_runs_again() {
    let device = Device::new();
    let manifest = script_manifest(&device, &["retry-1"], &["install=0"]);
    // The payload is not there yet: refused, and recorded as such.
    fs::remove_file(device.payloads.join("device-step.sh")).unwrap();
    let envelope = |id: &str, retry: &str| {
        device.manifest(
            &format!("{id}-{retry}.json"),
            &serde_json::json!({
                "workflow": {"action": 3, "id": id, "retryTimestamp": retry},
                "updateManifest": manifest.to_string(),
            }),
        )
    };
    let first = envelope("wf-retry", "2026-12-01T00:00:00Z");
    let run = device.deploy_json(&first);
    assert_eq!(run.code(), Some(2), "{}\n{}", run.stdout(), run.stderr());
    assert!(device.log().is_empty());

    device.payload_fixture("device-step.sh");
    let run = device.deploy_json(&first);
    assert_eq!(run.code(), Some(1), "runs once fixed: {}", run.stderr());
    assert_eq!(device.log().len(), 4, "{:?}", device.log());

    // The same envelope again: the earlier result, nothing run.
    let run = device.deploy_json(&first);
    assert_eq!(run.last_json()["status"], "failed", "{}", run.stdout());
    assert_eq!(device.log().len(), 4, "{:?}", device.log());

    // A new retryTimestamp for the same workflow: it runs again.
    let run = device.deploy_json(&envelope("wf-retry", "2026-12-02T00:00:00Z"));
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert_eq!(device.log().len(), 8, "{:?}", device.log());
    let history = device.run(&["--json", "history"]).stdout();
    assert_eq!(history.matches("wf-retry").count(), 3, "{history}");
}

/// A handler that cannot load is found at admission, before any step changed the device,
/// and `handlers list` says so.
#[test]
fn a_handler_that_cannot_load_refuses_the_deployment_before_anything_runs() {
    use handrail_test_support::manifest::inline_step;
    let device = Device::new();
    let handlers = device.state.join("handlers");
    fs::create_dir_all(&handlers).unwrap();
    let artifact = device.tmp.path().join("broken.wasm");
    fs::write(&artifact, b"\0asm not really").unwrap();
    fs::write(
        handlers.join("broken.toml"),
        format!(
            "id = \"contoso/broken:1\"\nkind = \"wasm\"\nartifact = {:?}\nsha256 = \"{}\"\n",
            artifact,
            "0".repeat(64)
        ),
    )
    .unwrap();
    let mut manifest = script_manifest(&device, &["before-broken"], &[]);
    manifest["instructions"]["steps"]
        .as_array_mut()
        .unwrap()
        .push(inline_step("contoso/broken:1", &[], serde_json::json!({})));
    let path = device.manifest("broken.json", &manifest);
    let run = device.run(&["validate", path.to_str().unwrap()]);
    assert_eq!(run.code(), Some(2), "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stderr()
            .contains("instructions.steps[1]: handler `contoso/broken:1` cannot be loaded"),
        "{}",
        run.stderr()
    );
    let run = device.deploy(&path);
    assert_eq!(run.code(), Some(2), "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stderr()
            .contains("handler `contoso/broken:1` (first run by step 1) cannot be loaded"),
        "{}",
        run.stderr()
    );
    assert!(
        device.log().is_empty(),
        "step 0 never ran: {:?}",
        device.log()
    );
    let list = device.run(&["handlers", "list"]);
    assert!(
        list.stdout().contains("cannot load") && list.stdout().contains("sha256"),
        "{}",
        list.stdout()
    );
}

/// A manifest that names one member twice is refused with the place, not read as
/// whichever value came last.
#[test]
fn a_manifest_naming_a_member_twice_is_refused_with_its_place() {
    let device = Device::new();
    let manifest = script_manifest(&device, &["dup"], &[]).to_string();
    let doubled = manifest.replacen(
        "\"installedCriteria\":\"dup\"",
        "\"installedCriteria\":\"dup\",\"installedCriteria\":\"other\"",
        1,
    );
    assert_ne!(doubled, manifest);
    let path = device.tmp.path().join("doubled.json");
    fs::write(&path, doubled).unwrap();
    let run = device.run(&["validate", path.to_str().unwrap()]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("member `installedCriteria` appears twice in one object (line 1"),
        "{}",
        run.stderr()
    );
}

/// A journal deleted or emptied while its deployment waits for a reboot is noticed: the
/// deployment is recorded as failed (what it did cannot be known), not lost silently, and
/// the device takes the next update.
#[test]
fn a_lost_journal_is_named_and_recorded_not_taken_for_nothing_to_resume() {
    for (how, lose) in [
        (
            "deleted",
            (|p: &Path| fs::remove_file(p).unwrap()) as fn(&Path),
        ),
        ("emptied", |p: &Path| fs::write(p, b"").unwrap()),
    ] {
        let device = Device::new();
        let manifest = device.manifest(
            "suspends.json",
            &script_manifest(&device, &[&format!("lost-{how}")], &["apply=705"]),
        );
        let run = device.deploy(&manifest);
        assert_eq!(run.code(), Some(3), "{how}: {}", run.stderr());
        lose(&device.state.join("journal.log"));

        let run = device.run(&["resume"]);
        assert_eq!(run.code(), Some(10), "{how}: {}", run.stdout());
        assert!(
            run.stderr().contains("the journal of deployment")
                && run.stderr().contains("recorded in history as failed"),
            "{how}: {}",
            run.stderr()
        );
        let history = device.run(&["--json", "history"]).stdout();
        assert!(
            history.contains("\"status\":\"failed\"") && history.contains("is gone"),
            "{how}: {history}"
        );
        // Settled once: nothing left to resume, and the next update is taken.
        assert_eq!(device.run(&["resume"]).code(), Some(0), "{how}");
        let next = device.manifest(
            "next.json",
            &script_manifest(&device, &[&format!("next-{how}")], &[]),
        );
        assert_eq!(device.deploy(&next).code(), Some(0), "{how}");
    }
}

/// Damaged installed-criteria records are judged alike by every command: `status`,
/// `health` and `deploy` name the file, and nothing is appended after the damage.
#[test]
fn damaged_installed_records_are_named_by_every_command() {
    let device = Device::new();
    let first = device.manifest("first.json", &script_manifest(&device, &["rec-1"], &[]));
    assert_eq!(device.deploy(&first).code(), Some(0));
    let log = device.state.join("installed.log");
    let mut text = fs::read_to_string(&log).unwrap();
    text.insert_str(0, "{\"op\": \"add\", garbage}\n");
    fs::write(&log, &text).unwrap();
    let second = device.manifest("second.json", &script_manifest(&device, &["rec-2"], &[]));
    for args in [
        vec!["status"],
        vec!["health"],
        vec![
            "deploy",
            second.to_str().unwrap(),
            "--payloads",
            device.payloads.to_str().unwrap(),
        ],
    ] {
        let run = device.run(&args);
        assert_eq!(run.code(), Some(10), "{args:?}: {}", run.stdout());
        assert!(
            run.stderr().contains("installed.log") && run.stderr().contains("corrupt"),
            "{args:?}: {}",
            run.stderr()
        );
    }
    assert_eq!(fs::read_to_string(&log).unwrap(), text, "nothing appended");
    assert!(!device.log().iter().any(|l| l.starts_with("rec-2")));
}

#[test]
fn a_manifest_path_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let device = Device::new();
    let fifo = device.tmp.path().join("manifest.fifo");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let payloads = device.payloads.to_str().unwrap().to_owned();
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        for args in [
            vec!["validate", path],
            vec!["deploy", path, "--payloads", &payloads],
        ] {
            let run = device.run(&args);
            assert_eq!(run.code(), Some(2), "{args:?}: {}", run.stderr());
            assert!(
                run.stderr()
                    .contains(&format!("cannot read {path}: not a regular file")),
                "{}",
                run.stderr()
            );
        }
    }
}

#[test]
fn abandon_ends_a_suspended_deployment_rolled_back_and_recorded() {
    let device = Device::new();
    let nothing = device.run(&["abandon"]);
    assert_eq!(nothing.code(), Some(0), "{}", nothing.stderr());
    assert!(nothing.stdout().contains("nothing to abandon"));

    // Step 1 asks for a reboot after its apply: the deployment is suspended.
    let manifest = device.manifest(
        "update.json",
        &script_manifest(&device, &["one", "two"], &["", "apply=706"]),
    );
    let run = device.deploy(&manifest);
    assert_eq!(run.code(), Some(3), "{}\n{}", run.stdout(), run.stderr());
    let cancel = device.run(&["cancel"]);
    assert!(
        cancel.stdout().contains("is suspended, not running")
            && cancel.stdout().contains("`handrail abandon` ends it"),
        "{}",
        cancel.stdout()
    );

    let abandoned = device.run(&["abandon"]);
    assert_eq!(
        abandoned.code(),
        Some(5),
        "{}\n{}",
        abandoned.stdout(),
        abandoned.stderr()
    );
    assert!(
        abandoned.stdout().contains(": cancelled"),
        "{}",
        abandoned.stdout()
    );
    let status = device.run(&["status"]);
    assert!(
        status.stdout().contains("no deployment in progress"),
        "{}",
        status.stdout()
    );
    let history = device.run(&["--json", "history"]).last_json();
    assert_eq!(history[0]["report"]["status"], "cancelled", "{history}");
    // Nothing is left to resume, and the same update can be deployed again.
    let resumed = device.run(&["resume"]);
    assert!(
        resumed.stdout().contains("nothing to resume"),
        "{}",
        resumed.stdout()
    );
}

/// An error says each cause once; with `--json` it is an event like the others; and the
/// log carries no colour codes into a pipe (journald, a file).
#[test]
fn errors_are_said_once_json_errors_are_events_and_piped_logs_have_no_colour() {
    let device = Device::new();
    let missing = device.tmp.path().join("missing.wasm");
    let missing = missing.to_str().unwrap();
    let run = device.run(&["conform", missing]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert_eq!(
        run.stderr().matches("No such file or directory").count(),
        1,
        "{}",
        run.stderr()
    );
    // A profile that is not there is bad input too, named.
    let wasm = device.tmp.path().join("h.wasm");
    fs::write(&wasm, b"\0asm\x01\0\0\0").unwrap();
    let profile = device.tmp.path().join("missing.toml");
    let run = device.run(&[
        "conform",
        wasm.to_str().unwrap(),
        "--profile",
        profile.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("missing.toml"), "{}", run.stderr());
    let json = device.run(&["--json", "conform", missing]);
    assert_eq!(json.code(), Some(2));
    let line = json.last_json();
    assert_eq!(line["event"], "error", "{line}");
    assert!(line["error"].as_str().unwrap().contains(missing), "{line}");
    let manifest = device.manifest("m.json", &script_manifest(&device, &["piped-1"], &[]));
    let logged = device.run(&[
        "-v",
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    assert_eq!(logged.code(), Some(0), "{}", logged.stderr());
    assert!(logged.stderr().contains("INFO"), "{}", logged.stderr());
    assert!(!logged.stderr().contains('\x1b'), "{}", logged.stderr());
}

/// Every line `--json` prints while a deployment runs is one of the events the README
/// lists, with the fields it lists, every key in camelCase.
#[test]
fn json_output_follows_the_documented_schema() {
    let device = Device::new();
    let manifest = device.manifest(
        "m.json",
        &script_manifest(&device, &["schema-1", "schema-2"], &["", "install=0"]),
    );
    let run = device.deploy_json(&manifest);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let fields: &[(&str, &[&str])] = &[
        ("step-started", &["step", "total", "label", "phase"]),
        ("action-started", &["step", "action"]),
        ("progress", &["step", "done", "total"]),
        ("action-finished", &["step", "action", "result"]),
        ("step-finished", &["step", "outcome"]),
        ("suspended", &["interruption"]),
        ("download", &["file", "done", "total"]),
        ("message", &["message"]),
        ("error", &["error"]),
        (
            "report",
            &["deployment", "updateId", "status", "steps", "startedAt"],
        ),
    ];
    fn camel_keys(value: &serde_json::Value, at: &str) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    assert!(
                        !key.contains(['_', '-'])
                            && key.starts_with(|c: char| c.is_ascii_lowercase()),
                        "{at}.{key} is not camelCase"
                    );
                    camel_keys(inner, &format!("{at}.{key}"));
                }
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|i| camel_keys(i, &format!("{at}[]")));
            }
            _ => {}
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let lines: Vec<&str> = run
        .output
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let event = value["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event: {line}"));
        let (_, wanted) = fields
            .iter()
            .find(|(name, _)| *name == event)
            .unwrap_or_else(|| panic!("`{event}` is not a documented event: {line}"));
        for field in *wanted {
            assert!(
                value.get(*field).is_some(),
                "{event} without {field}: {line}"
            );
        }
        camel_keys(&value, event);
        seen.insert(event.to_owned());
    }
    assert_eq!(
        lines.last().map(|l| l.contains("\"event\":\"report\"")),
        Some(true)
    );
    for event in [
        "step-started",
        "action-started",
        "action-finished",
        "step-finished",
        "report",
    ] {
        assert!(seen.contains(event), "{event} never printed: {seen:?}");
    }
}
