//! Writing what the runtime reads with the real binary: `handrail manifest new`,
//! `add-file` and `add-step` build a manifest that validates and deploys, without a size
//! or a hash computed by hand; `handrail handlers add` registers a handler (its sha256
//! computed, root's 0644) that `handlers list` shows and a deployment runs.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use common::Device;
use serde_json::Value;

/// `handrail manifest new <m> --update <update> --compatibility <compatibility>`.
fn new_manifest(device: &Device, m: &str, update: &str, compatibility: &str) -> common::Run {
    device.run(&[
        "manifest",
        "new",
        m,
        "--update",
        update,
        "--compatibility",
        compatibility,
    ])
}

#[test]
fn a_manifest_written_with_the_cli_validates_and_deploys() {
    let device = Device::new();
    let manifest = device.tmp.path().join("update.json");
    let m = manifest.to_str().unwrap();
    let run = new_manifest(
        &device,
        m,
        "contoso/toaster/1.0",
        "manufacturer=contoso,model=e2e",
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    device.payload_fixture("device-step.sh");
    let script = device.payloads.join("device-step.sh");
    let run = device.run(&["manifest", "add-file", m, script.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let args = format!("--device {}", device.device.display());
    let run = device.run(&[
        "manifest",
        "add-step",
        m,
        "--handler",
        "microsoft/script:1",
        "--file",
        "device-step.sh",
        "--property",
        "scriptFileName=device-step.sh",
        "--property",
        &format!("arguments={args}"),
        "--installed-criteria",
        "toaster-1.0",
        "--description",
        "the toaster",
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let written: Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    let entry = &written["files"]["f1"];
    assert_eq!(entry["fileName"], "device-step.sh");
    assert_eq!(entry["sizeInBytes"], fs::metadata(&script).unwrap().len());
    assert_eq!(
        entry["hashes"]["sha256"],
        common::sha256_base64(&fs::read(&script).unwrap())
    );
    assert_eq!(
        written["instructions"]["steps"][0]["handlerProperties"]["installedCriteria"],
        "toaster-1.0"
    );
    let valid = device.run(&[
        "validate",
        m,
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    assert_eq!(valid.code(), Some(0), "{}", valid.stderr());
    let deployed = device.deploy(&manifest);
    assert_eq!(deployed.code(), Some(0), "{}", deployed.stderr());
    assert!(device.device.join("toaster-1.0").exists());

    // The file changed: added again, its entry is brought up to date under its id.
    fs::write(
        &script,
        [fs::read(&script).unwrap(), b"\n# 1.1\n".to_vec()].concat(),
    )
    .unwrap();
    let run = device.run(&["manifest", "add-file", m, script.to_str().unwrap()]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let again: Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(again["files"].as_object().unwrap().len(), 1);
    assert_eq!(
        again["files"]["f1"]["sizeInBytes"],
        fs::metadata(&script).unwrap().len()
    );
}

#[test]
fn manifest_mistakes_are_refused_naming_what_is_wrong_and_change_nothing() {
    let device = Device::new();
    let manifest = device.tmp.path().join("update.json");
    let m = manifest.to_str().unwrap();
    let bad_id = new_manifest(&device, m, "contoso-toaster", "model=x");
    assert_eq!(bad_id.code(), Some(2));
    assert!(
        bad_id.stderr().contains("provider/name/version"),
        "{}",
        bad_id.stderr()
    );
    assert!(!manifest.exists());
    let run = new_manifest(&device, m, "contoso/toaster/1.0", "model=x");
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let before = fs::read(&manifest).unwrap();
    let unknown = device.run(&[
        "manifest",
        "add-step",
        m,
        "--handler",
        "microsoft/script:1",
        "--file",
        "missing.sh",
    ]);
    assert_eq!(unknown.code(), Some(2));
    assert!(
        unknown
            .stderr()
            .contains("`missing.sh` is not in the manifest's files"),
        "{}",
        unknown.stderr()
    );
    let handler = device.run(&["manifest", "add-step", m, "--handler", "script"]);
    assert_eq!(handler.code(), Some(2));
    assert!(
        handler.stderr().contains("vendor/name:major"),
        "{}",
        handler.stderr()
    );
    let again = new_manifest(&device, m, "contoso/toaster/2.0", "model=x");
    assert_eq!(again.code(), Some(2));
    assert!(again.stderr().contains("--force"), "{}", again.stderr());
    assert_eq!(fs::read(&manifest).unwrap(), before, "nothing changed");
}

#[test]
fn a_handler_registered_with_the_cli_is_listed_and_refused_twice() {
    let device = Device::new();
    let wasm = device.tmp.path().join("virtual-camera.wasm");
    fs::write(&wasm, handrail_example_handlers::VIRTUAL_CAMERA).unwrap();
    let cameras = device.tmp.path().join("cameras");
    fs::create_dir_all(&cameras).unwrap();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "handlers",
            "add",
            wasm.to_str().unwrap(),
            "--id",
            "contoso/virtual-camera:1",
            "--write",
            cameras.to_str().unwrap(),
            "--memory-mib",
            "96",
        ];
        args.extend_from_slice(extra);
        device.run(&args)
    };
    let run = add(&[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let file = device.state.join("handlers/contoso-virtual-camera-1.toml");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let list = device.run(&["--json", "handlers", "list"]);
    assert_eq!(list.code(), Some(0), "{}", list.stderr());
    let list = list.last_json();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "contoso/virtual-camera:1")
        .unwrap_or_else(|| panic!("{list}"));
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(handrail_example_handlers::VIRTUAL_CAMERA)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(entry["sha256"], sha);
    assert_eq!(entry["capabilities"]["write"][0], cameras.to_str().unwrap());
    assert_eq!(entry["limits"]["memory_mib"], 96);
    let twice = add(&[]);
    assert_eq!(twice.code(), Some(2));
    assert!(twice.stderr().contains("--replace"), "{}", twice.stderr());
    assert_eq!(add(&["--replace"]).code(), Some(0));
    let relative = device.run(&[
        "handlers",
        "add",
        wasm.to_str().unwrap(),
        "--id",
        "contoso/other:1",
        "--run",
        "bin/sh",
    ]);
    assert_eq!(relative.code(), Some(2));
    assert!(
        relative.stderr().contains("capabilities.run"),
        "{}",
        relative.stderr()
    );
    assert!(!device.state.join("handlers/contoso-other-1.toml").exists());
}
