//! Self-update: `handrail/self-update:1` replaces the running binary, health-checks the
//! new one, and switches back by itself when the new one does not come up; the journal
//! and history survive either way.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Device, handrail_bin, script_manifest};

/// A copy of the binary under test, run from its own folder (the one it will replace).
fn installed_binary(device: &Device) -> PathBuf {
    let dir = device.tmp.path().join("bin");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("handrail");
    fs::copy(handrail_bin(), &path).unwrap();
    path
}

fn run(binary: &Path, device: &Device, args: &[&str]) -> std::process::Output {
    Command::new(binary)
        .arg("--state-dir")
        .arg(&device.state)
        .arg("--allow-unsigned")
        .args(args)
        .env(
            "HANDRAIL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("handrail-cache"),
        )
        .output()
        .unwrap()
}

fn self_update_manifest(device: &Device, new_binary: &[u8]) -> PathBuf {
    fs::write(device.payloads.join("handrail-new"), new_binary).unwrap();
    device.manifest(
        "self-update.json",
        &serde_json::json!({
            "updateId": {"provider": "handrail", "name": "runtime", "version": "2.0"},
            "compatibility": [{"os": "any"}],
            "instructions": {"steps": [{
                "description": "Update the runtime",
                "handler": "handrail/self-update:1",
                "files": ["handrail-new"],
                "handlerProperties": {"installedCriteria": "handrail-2.0"}
            }]},
            "manifestVersion": "5.0"
        }),
    )
}

/// `deploy --json <manifest>` with the given binary.
fn deploy(binary: &Path, device: &Device, manifest: &Path) -> std::process::Output {
    run(
        binary,
        device,
        &[
            "--json",
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            device.payloads.to_str().unwrap(),
        ],
    )
}

/// Deploys an earlier, ordinary update so there is history that must survive.
fn earlier_history(binary: &Path, device: &Device) {
    let manifest = device.manifest("first.json", &script_manifest(device, &["before"], &[]));
    let out = run(
        binary,
        device,
        &[
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            device.payloads.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn history_len(binary: &Path, device: &Device) -> usize {
    let out = run(binary, device, &["--json", "history"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().unwrap().len()
}

#[test]
fn a_broken_new_binary_is_switched_back_automatically() {
    let device = Device::new();
    let binary = installed_binary(&device);
    let original = fs::read(&binary).unwrap();
    earlier_history(&binary, &device);
    // Starts (answers --version) but cannot serve the state directory.
    let broken = b"#!/bin/sh\ncase \"$1\" in --version) echo handrail 2.0 ;; *) exit 1 ;; esac\n";
    let manifest = self_update_manifest(&device, broken);
    let out = deploy(&binary, &device, &manifest);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["failure"]["action"], "apply");
    assert_eq!(report["failure"]["extendedResultCodeHex"], "0x34900006");
    assert!(
        report["failure"]["resultDetails"]
            .as_str()
            .unwrap()
            .contains("previous version was restored"),
        "{report}"
    );
    assert_eq!(
        fs::read(&binary).unwrap(),
        original,
        "the working binary is back"
    );
    assert!(fs::metadata(&binary).unwrap().permissions().mode() & 0o111 != 0);
    assert!(!binary.with_file_name("handrail.new").exists());
    // The restored binary serves the same state: journal retired, history kept.
    assert_eq!(history_len(&binary, &device), 2);
    let health = run(&binary, &device, &["health"]);
    assert!(health.status.success());
}

#[test]
fn a_good_new_binary_takes_over_and_the_history_survives() {
    let device = Device::new();
    let binary = installed_binary(&device);
    earlier_history(&binary, &device);
    // The same program with a few bytes appended: a different file that runs the same.
    let mut newer = fs::read(&binary).unwrap();
    newer.extend_from_slice(b"\0handrail 2.0");
    let manifest = self_update_manifest(&device, &newer);
    let out = deploy(&binary, &device, &manifest);
    assert_eq!(
        out.status.code(),
        Some(4),
        "agent restart required: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read(&binary).unwrap(),
        newer,
        "switched to the new binary"
    );
    assert!(
        binary.with_file_name("handrail.prev").exists(),
        "previous version kept"
    );

    // The "restart": the new binary resumes and finishes the deployment.
    let out = run(&binary, &device, &["resume"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(history_len(&binary, &device), 2);
    // Deploying the same version again finds it installed.
    let again = deploy(&binary, &device, &manifest);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("already-installed"));
}
