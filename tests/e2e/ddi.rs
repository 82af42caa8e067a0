//! `handrail ddi` against update servers the tests start: goosebit, a real hawkBit DDI
//! server from PyPI (uploads, assignments and the device states it records), and beside
//! it a small DDI server written here for what goosebit lacks (cancelAction, maintenance
//! windows, tokens, sha256, several artifacts, a server that is down, a count of every
//! feedback).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Device, handrail_bin, script_manifest, sha256_base64};
use handrail_test_support::ddi::{DdiServer, OfferedArtifact};
use handrail_test_support::goosebit::Goosebit;
use handrail_test_support::manifest::{Update, inline_step};
use serde_json::{Value, json};

const BOUND: Duration = Duration::from_secs(120);

/// The configuration of a device that takes updates from `server` as `controller`.
fn configure(device: &Device, server: &str, controller: &str, auth: &str) {
    configure_with(device, server, controller, auth, "", "");
}

/// [`configure`], with more `[device]` properties and further sections.
fn configure_with(
    device: &Device,
    server: &str,
    controller: &str,
    auth: &str,
    properties: &str,
    sections: &str,
) {
    device.write_config(
        &device.state.join("config.toml"),
        &format!(
            "[device]\nmanufacturer = \"contoso\"\nmodel = \"e2e\"\n{properties}\n[ddi]\nserver = \"{server}\"\ncontroller_id = \"{controller}\"\n{auth}\n\n[download]\nbackoff_initial_ms = 50\nbackoff_max_secs = 1\n\n{sections}"
        ),
    );
}

/// A small DDI server and a device configured to take updates from it as `controller`.
fn ddi_device(controller: &str, auth: &str) -> (DdiServer, Device) {
    let server = DdiServer::start();
    let device = Device::new();
    configure(&device, &server.url(), controller, auth);
    (server, device)
}

/// `handrail ddi --once` (the test manifests are unsigned).
fn once(device: &Device, env: &[(&str, &str)]) -> common::Run {
    device.run_env(&["ddi", "--once"], env)
}

/// `handrail ddi`, running until stopped; its log goes to `<tmp>/ddi.log`.
fn spawn(device: &Device) -> Child {
    let log = fs::File::create(device.tmp.path().join("ddi.log")).unwrap();
    Command::new(handrail_bin())
        .arg("--state-dir")
        .arg(&device.state)
        .args(["--allow-unsigned", "ddi"])
        .env(
            "HANDRAIL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("handrail-cache"),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Stops a running `handrail ddi` with SIGTERM and waits for it.
fn stop(mut agent: Child) {
    unsafe {
        libc::kill(agent.id() as i32, libc::SIGTERM);
    }
    agent.wait().unwrap();
}

fn ddi_log(device: &Device) -> String {
    fs::read_to_string(device.tmp.path().join("ddi.log")).unwrap_or_default()
}

/// A manifest of two script steps (`a-1`, `b-1`) with `codes` (see `device-step.sh`).
fn two_steps(device: &Device, codes: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let mut manifest = script_manifest(device, &["a-1", "b-1"], codes);
    let script = fs::read(device.payloads.join("device-step.sh")).unwrap();
    manifest["files"] = json!({"f1": {
        "fileName": "device-step.sh",
        "sizeInBytes": script.len(),
        "hashes": {"sha256": sha256_base64(&script)},
    }});
    (serde_json::to_vec(&manifest).unwrap(), script)
}

/// Makes `server` offer action `id` (chunk version 1.0) with `artifacts`.
fn offer(server: &DdiServer, id: &str, artifacts: Vec<OfferedArtifact>) {
    server.with(|s| s.action = Some((id.into(), "1.0".into(), artifacts)));
}

/// Makes `server` offer action `id`: `manifest` and the script it runs, as artifacts.
fn offer_manifest(server: &DdiServer, id: &str, manifest: &[u8], script: &[u8]) {
    offer(
        server,
        id,
        vec![
            artifact("update.importmanifest.json", manifest),
            artifact("device-step.sh", script),
        ],
    );
}

/// A `.swu` artifact offered with its sha1 only, as goosebit offers one.
fn swu(bytes: Vec<u8>) -> OfferedArtifact {
    OfferedArtifact {
        filename: "update.swu".into(),
        bytes,
        sha256: false,
        sha1: true,
    }
}

fn artifact(name: &str, bytes: &[u8]) -> OfferedArtifact {
    OfferedArtifact {
        filename: name.into(),
        bytes: bytes.to_vec(),
        sha256: true,
        sha1: true,
    }
}

#[test]
fn an_adu_manifest_with_its_payload_artifacts_deploys_and_the_server_hears_success_once() {
    let (server, device) = ddi_device("dev-1", "auth = \"target-token\"\ntoken = \"t0k\"");
    let (manifest, script) = two_steps(&device, &[]);
    server.with(|s| {
        s.authorization = Some("TargetToken t0k".into());
    });
    offer_manifest(&server, "7", &manifest, &script);
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(device.device.join("a-1").exists() && device.device.join("b-1").exists());
    assert_eq!(server.closed_results("7"), ["success"]);
    server.with(|s| {
        // The attributes went first, as the server asked.
        assert_eq!(s.config_data[0]["mode"], "merge");
        assert_eq!(s.config_data[0]["data"]["model"], "e2e");
        // Each step's start, as progress.
        let progress: Vec<&Value> = s
            .feedback
            .iter()
            .map(|(_, f)| &f["status"]["result"]["progress"])
            .filter(|p| p.is_object())
            .collect();
        assert!(
            progress.contains(&&json!({"cnt": 1, "of": 2})),
            "{progress:?}"
        );
        // Every request carried the token; the payload came from its artifact.
        assert!(
            s.requests.iter().all(|r| r.2 == "TargetToken t0k"),
            "{:?}",
            s.requests
        );
        assert!(s.requests.iter().any(|r| r.1 == "/files/device-step.sh"));
    });
    // The payload came straight into the deployment: nothing kept beside it.
    let downloads = device.state.join("downloads");
    assert!(
        fs::read_dir(&downloads).map_or(true, |d| d.count() == 0),
        "{downloads:?}"
    );
    // Polled again: the action is closed; nothing runs, nothing more is sent.
    let again = once(&device, &[]);
    assert_eq!(again.code(), Some(0), "{}", again.stderr());
    assert_eq!(server.closed_results("7"), ["success"]);
    assert_eq!(
        device.log().iter().filter(|l| *l == "a-1 install").count(),
        1
    );
}

#[test]
fn a_failed_step_is_reported_as_failure_with_its_result_codes_through_a_gateway_token() {
    let (server, device) = ddi_device("dev-2", "auth = \"gateway-token\"\ntoken = \"gw\"");
    let (manifest, script) = two_steps(&device, &["", "install=0"]);
    server.with(|s| {
        s.authorization = Some("GatewayToken gw".into());
    });
    offer_manifest(&server, "9", &manifest, &script);
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(server.closed_results("9"), ["failure"]);
    let details = server.with(|s| s.feedback.last().unwrap().1["status"]["details"].clone());
    let text = details.to_string();
    assert!(
        text.contains("rolled back") || text.contains("failed"),
        "{text}"
    );
    assert!(text.contains("extendedResultCode"), "{text}");
    // The failed step's change never committed.
    assert!(!device.device.join("b-1").exists());
}

/// A manifest of one script step running `script` (as `file`, criteria `criteria`) of
/// update `contoso/<name>/1.0`, and the script's bytes.
fn one_script_step(name: &str, file: &str, criteria: &str, script: String) -> (Vec<u8>, Vec<u8>) {
    let manifest = Update::new("contoso", name, "1.0")
        .compatible_with("contoso", "e2e")
        .step(inline_step(
            "microsoft/script:1",
            &[file],
            json!({"scriptFileName": file, "installedCriteria": criteria}),
        ))
        .file(
            "f1",
            file,
            script.len() as u64,
            &sha256_base64(script.as_bytes()),
        )
        .to_vec();
    (manifest, script.into_bytes())
}

/// A step that says it started, then waits for a file that never comes.
fn blocking_step(device: &Device) -> (Vec<u8>, Vec<u8>) {
    let script = format!(
        "#!/bin/bash\nfor arg in \"$@\"; do [[ $prev == --result-file ]] && result=$arg; [[ $arg == --action-* ]] && action=${{arg#--action-}}; prev=$arg; done\ncase $action in\n  install) : > {dir}/started; while [[ ! -e {dir}/never ]]; do sleep 0.05; done; code=600 ;;\n  is-installed) code=901 ;;\n  download) code=500 ;;\n  cancel) code=800 ;;\n  *) code=0 ;;\nesac\necho \"{{\\\"resultCode\\\": $code, \\\"extendedResultCode\\\": 0, \\\"resultDetails\\\": \\\"\\\"}}\" > \"$result\"\n",
        dir = device.device.display()
    );
    one_script_step("blocking", "block.sh", "blocked-1", script)
}

#[test]
fn a_cancel_from_the_server_stops_the_running_step_and_is_acknowledged_as_hawkbit_expects() {
    let (server, device) = ddi_device("dev-3", "");
    let (manifest, script) = blocking_step(&device);
    offer(
        &server,
        "11",
        vec![
            artifact("update.importmanifest.json", &manifest),
            artifact("block.sh", &script),
        ],
    );
    let agent = spawn(&device);
    let started = device.device.join("started");
    server.wait("the step to start", BOUND, |_| started.exists());
    server.with(|s| s.cancel = Some(("12".into(), "11".into())));
    server.wait("the cancel's confirmation", BOUND, |s| {
        !s.cancel_feedback.is_empty()
    });
    let (id, body) = server.with(|s| s.cancel_feedback[0].clone());
    assert_eq!(id, "12");
    assert_eq!(body["status"]["execution"], "closed", "{body}");
    assert_eq!(body["status"]["result"]["finished"], "success", "{body}");
    assert!(
        body["status"]["details"][0]
            .as_str()
            .unwrap()
            .contains("cancellation acknowledged"),
        "{body}"
    );
    assert!(body.to_string().contains("cancelled"), "{body}");
    stop(agent);
    // No closed result for the action itself: the cancel answered for it.
    assert!(server.closed_results("11").is_empty());
    let status = device.run(&["--json", "history"]);
    assert!(
        status.stdout().contains("\"cancelled\""),
        "{}",
        status.stdout()
    );
    assert!(!ddi_log(&device).contains("panicked"));
}

#[test]
fn a_closed_maintenance_window_installs_nothing_until_the_server_allows_the_update() {
    let (server, device) = ddi_device("dev-4", "");
    let (manifest, script) = two_steps(&device, &[]);
    server.with(|s| {
        s.update = "skip".into();
        s.window = Some("unavailable".into());
    });
    offer_manifest(&server, "21", &manifest, &script);
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(device.log().is_empty(), "nothing ran: {:?}", device.log());
    assert!(server.closed_results("21").is_empty());
    server.with(|s| {
        s.update = "attempt".into();
        s.window = Some("available".into());
    });
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(server.closed_results("21"), ["success"]);
}

#[test]
fn a_server_that_is_down_is_polled_again_with_backoff_until_it_is_back() {
    let (server, device) = ddi_device("dev-5", "");
    let (manifest, script) = two_steps(&device, &[]);
    server.with(|s| s.down = true);
    let agent = spawn(&device);
    server.wait("three polls while down", BOUND, |s| s.polls >= 3);
    server.with(|s| {
        s.down = false;
    });
    offer_manifest(&server, "31", &manifest, &script);
    server.wait("the result", BOUND, |s| s.closed.contains(&"31".to_owned()));
    stop(agent);
    assert_eq!(server.closed_results("31"), ["success"]);
    let log = ddi_log(&device);
    assert!(log.contains("HTTP 503"), "{log}");
    assert!(log.contains("polling again in"), "{log}");
}

/// A bundle `handrail bundle` made of [`two_steps`], served as the deployment's one
/// `.swu` artifact.
fn make_bundle(device: &Device, codes: &[&str], version: &str) -> PathBuf {
    let (manifest, _) = two_steps(device, codes);
    bundle_of(device, &manifest, version, &format!("update-{version}.swu"))
}

/// `handrail bundle` of `manifest` and the device's payload folder, as `name`.
fn bundle_of(device: &Device, manifest: &[u8], version: &str, name: &str) -> PathBuf {
    let manifest_path = device.tmp.path().join("manifest.json");
    fs::write(&manifest_path, manifest).unwrap();
    let out = device.tmp.path().join(name);
    let run = device.run(&[
        "bundle",
        manifest_path.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--version",
        version,
    ]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    out
}

#[test]
fn a_bundle_is_verified_before_anything_runs_and_a_tampered_one_is_reported_failed() {
    let (server, device) = ddi_device("dev-6", "");
    let bundle = fs::read(make_bundle(&device, &[], "1.0")).unwrap();
    // The script inside changed after the manifest named its sha256 (the archive's own
    // checksum made to match, as an attacker would).
    let at = bundle
        .windows(6)
        .rposition(|w| w == b"device")
        .expect("the script in the bundle");
    let mut tampered = bundle.clone();
    tampered[at] = b'D';
    let header = tampered[..at]
        .windows(6)
        .rposition(|w| w == b"070702")
        .unwrap();
    let sum: u32 = {
        let name_len = usize::from_str_radix(
            std::str::from_utf8(&tampered[header + 94..header + 102]).unwrap(),
            16,
        )
        .unwrap();
        let size = usize::from_str_radix(
            std::str::from_utf8(&tampered[header + 54..header + 62]).unwrap(),
            16,
        )
        .unwrap();
        let data = (header + 110 + name_len).div_ceil(4) * 4;
        tampered[data..data + size]
            .iter()
            .map(|b| u32::from(*b))
            .sum()
    };
    tampered[header + 102..header + 110].copy_from_slice(format!("{sum:08x}").as_bytes());
    offer(&server, "41", vec![swu(tampered)]);
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(server.closed_results("41"), ["failure"]);
    assert!(device.log().is_empty(), "nothing ran: {:?}", device.log());
    let details = server.with(|s| s.feedback.last().unwrap().1["status"]["details"].to_string());
    assert!(details.contains("device-step.sh"), "{details}");
    // The genuine bundle, as a new action, deploys.
    offer(&server, "42", vec![swu(bundle)]);
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(server.closed_results("42"), ["success"]);
    assert!(device.device.join("b-1").exists());
}

/// Kills `handrail ddi --once` after each of its durable writes while a deployment with
/// a 10 MiB artifact downloads, runs and reports; then runs it again. Each ends with
/// the update deployed and the server told the result exactly once; a download cut by
/// the crash resumes from what was kept.
#[test]
fn a_crash_at_every_write_of_an_action_ends_deployed_and_reported_once() {
    let blob: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(7) % 251) as u8)
        .collect();
    let mut resumed = 0;
    for n in 1.. {
        let server = DdiServer::start();
        let device = Device::new();
        configure(&device, &server.url(), "dev-7", "");
        let (_, script) = two_steps(&device, &[]);
        let mut manifest = script_manifest(&device, &["a-1", "b-1"], &[]);
        manifest["instructions"]["steps"][1]["files"] = json!(["device-step.sh", "blob.bin"]);
        manifest["files"] = json!({
            "f1": {"fileName": "device-step.sh", "sizeInBytes": script.len(),
                   "hashes": {"sha256": sha256_base64(&script)}},
            "f2": {"fileName": "blob.bin", "sizeInBytes": blob.len(),
                   "hashes": {"sha256": sha256_base64(&blob)}},
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        // Served, not local: the payload folder is empty.
        fs::remove_file(device.payloads.join("device-step.sh")).unwrap();
        offer(
            &server,
            "51",
            vec![
                artifact("update.importmanifest.json", &manifest),
                artifact("device-step.sh", &script),
                artifact("blob.bin", &blob),
            ],
        );
        let crash = n.to_string();
        let first = once(&device, &[("HANDRAIL_CRASH_AFTER_WRITE", crash.as_str())]);
        if !first.killed() {
            assert_eq!(first.code(), Some(0), "{}", first.stderr());
            assert_eq!(server.closed_results("51"), ["success"]);
            assert!(n > 8, "an action has more durable writes than {n}");
            break;
        }
        let before = server.with(|s| s.requests.len());
        let mut again = once(&device, &[]);
        // A crash before the result was recorded leaves the action to be polled and
        // reported by a second round.
        if server.closed_results("51").is_empty() {
            again = once(&device, &[]);
        }
        assert_eq!(
            again.code(),
            Some(0),
            "crash at write {n}: {}",
            again.stderr()
        );
        assert_eq!(
            server.closed_results("51"),
            ["success"],
            "crash at write {n}: told once: {:?}\n{}",
            server.with(|s| s.feedback.last().cloned()),
            again.stderr()
        );
        assert!(device.device.join("b-1").exists(), "crash at write {n}");
        let ranges: Vec<String> = server.with(|s| {
            s.requests[before..]
                .iter()
                .filter(|r| r.1 == "/files/blob.bin" && !r.3.is_empty())
                .map(|r| r.3.clone())
                .collect()
        });
        if !ranges.is_empty() {
            resumed += 1;
        }
    }
    assert!(
        resumed >= 1,
        "a crash met a download checkpoint and resumed it"
    );
}

// goosebit, the real server.

/// Starts `handrail ddi` against goosebit and waits until goosebit knows the device.
fn goosebit_device(server: &Goosebit, device: &Device, id: &str) -> Child {
    configure(device, &server.url(), id, "");
    let agent = spawn(device);
    server.wait_device(id, "registered", BOUND, |d| !d.is_null());
    agent
}

#[test]
fn goosebit_rolls_out_a_bundle_and_records_success_then_a_failing_one_as_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Goosebit::start(dir.path());
    let device = Device::new();
    let agent = goosebit_device(&server, &device, "gb-1");
    let good = server.upload(&make_bundle(&device, &[], "2.0.0"));
    server.assign("gb-1", good);
    let entry = server.wait_device("gb-1", "Finished at 2.0.0", BOUND, |d| {
        d["last_state"] == "Finished" && d["sw_version"] == "2.0.0"
    });
    assert_eq!(entry["progress"], 100, "{entry}");
    assert!(device.device.join("a-1").exists() && device.device.join("b-1").exists());
    // A failing update: goosebit records the error, and the device rolled back.
    fs::remove_file(device.device.join("b-1")).unwrap();
    let bad = server.upload(&make_bundle(&device, &["", "install=0"], "3.0.0"));
    server.assign("gb-1", bad);
    server.wait_device("gb-1", "Error", BOUND, |d| d["last_state"] == "Error");
    stop(agent);
    let log = server.device_log("gb-1").unwrap_or_default();
    assert!(log.contains("extendedResultCode"), "{log}");
}

#[test]
fn goosebit_a_download_killed_midway_resumes_without_fetching_again_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let server = Goosebit::start(dir.path());
    let device = Device::new();
    // A bundle with a 12 MiB payload: three checkpoints.
    let blob: Vec<u8> = (0..12u32 << 20)
        .map(|i| (i.wrapping_mul(13) % 253) as u8)
        .collect();
    fs::write(device.payloads.join("blob.bin"), &blob).unwrap();
    let mut manifest = script_manifest(&device, &["a-1"], &[]);
    let script = fs::read(device.payloads.join("device-step.sh")).unwrap();
    manifest["instructions"]["steps"][0]["files"] = json!(["device-step.sh", "blob.bin"]);
    manifest["files"] = json!({
        "f1": {"fileName": "device-step.sh", "sizeInBytes": script.len(),
               "hashes": {"sha256": sha256_base64(&script)}},
        "f2": {"fileName": "blob.bin", "sizeInBytes": blob.len(),
               "hashes": {"sha256": sha256_base64(&blob)}},
    });
    let bundle = bundle_of(
        &device,
        &serde_json::to_vec(&manifest).unwrap(),
        "4.0.0",
        "big.swu",
    );
    configure(&device, &server.url(), "gb-2", "");
    // Registered by one round that finds nothing yet.
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    server.wait_device("gb-2", "registered", BOUND, |d| !d.is_null());
    let sw = server.upload(&bundle);
    server.assign("gb-2", sw);
    // Killed right after the download's first checkpoint (4 MiB made durable).
    let record = device.state.join("downloads");
    let mut killed = None;
    for n in 1..40 {
        let crash = n.to_string();
        let run = once(&device, &[("HANDRAIL_CRASH_AFTER_WRITE", crash.as_str())]);
        assert!(run.killed(), "write {n}: {}", run.stderr());
        let kept = fs::read_dir(&record)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .find_map(|v| v["durable"].as_u64().filter(|d| *d > 0));
        if let Some(kept) = kept {
            killed = Some(kept);
            break;
        }
    }
    let kept = killed.expect("a checkpoint within 40 writes");
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains(&format!("resuming its download at byte {kept}")),
        "{}",
        run.stderr()
    );
    server.wait_device("gb-2", "Finished at 4.0.0", BOUND, |d| {
        d["last_state"] == "Finished" && d["sw_version"] == "4.0.0"
    });
    assert!(device.device.join("a-1").exists());
}

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo");

/// Runs one of the demo's A/B device scripts.
fn demo_script(name: &str, args: &[&Path]) {
    let status = Command::new(Path::new(DEMO).join(name))
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{name} {args:?}: {status}");
}

/// A plain SWUpdate image, signed for the demo's A/B device, assigned in goosebit: the
/// device installs it with the real swupdate as one `microsoft/swupdate:2` step, stops
/// for the reboot it asks for (goosebit still shows it running), and only once the
/// rebooted device runs the new version is success reported.
#[test]
fn goosebit_a_plain_swu_installs_with_swupdate_and_succeeds_only_once_the_reboot_verified_it() {
    let _swupdate = handrail_test_support::MachineLock::swupdate();
    let dir = tempfile::tempdir().unwrap();
    let server = Goosebit::start(dir.path());
    let device = Device::new();
    let ab = device.tmp.path().join("ab");
    demo_script("ab/make-device.sh", &[&ab]);
    let swu = device.tmp.path().join("rootfs-2.0.swu");
    demo_script("ab/make-swu.sh", &[&ab.join("slots"), &swu]);
    let ab_path = |p: &str| ab.join(p).display().to_string();
    let swupdate = format!(
        "[handler_config.\"microsoft/swupdate:2\"]\nslots = {{ a = \"{}\", b = \"{}\" }}\nboot_env = \"{}\"\nversion_file = \"{}\"\npublic_key = \"{}\"\nhwrevision = \"demo-device:1.0\"\n\n[handler_grants.\"microsoft/swupdate:2\"]\nwrite = [\"{}\", \"{}\"]\nread = [\"{}\", \"{}\"]\n",
        ab_path("slots/slot-a.img"),
        ab_path("slots/slot-b.img"),
        ab_path("boot/bootenv"),
        ab_path("running/sw-version"),
        ab_path("keys/signer.pem"),
        ab_path("boot"),
        ab_path("slots"),
        ab_path("running"),
        ab_path("keys"),
    );
    // goosebit matches the image's hardware-compatibility against hw_revision.
    configure_with(
        &device,
        &server.url(),
        "gb-3",
        "",
        "hw_revision = \"1.0\"\n",
        &swupdate,
    );
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let sw = server.upload(&swu);
    server.assign("gb-3", sw);
    let run = once(&device, &[]);
    assert_eq!(
        run.code(),
        Some(3),
        "a reboot is asked for: {}",
        run.stderr()
    );
    assert_eq!(
        fs::read_to_string(ab.join("boot/bootenv"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("boot_slot="))
            .unwrap(),
        "boot_slot=b"
    );
    let entry = server.device("gb-3").unwrap();
    assert_ne!(
        entry["last_state"], "Finished",
        "not before the reboot: {entry}"
    );
    demo_script("ab/reboot.sh", &[&ab]);
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    server.wait_device("gb-3", "Finished at 2.0", BOUND, |d| {
        d["last_state"] == "Finished" && d["sw_version"] == "2.0"
    });
    let history = device.run(&["--json", "history"]);
    assert!(
        history.stdout().contains("microsoft/swupdate:2"),
        "{}",
        history.stdout()
    );
}

/// Waits (at most `bound`) until `handrail ddi`'s log holds `text` `times` times.
fn wait_log(device: &Device, text: &str, times: usize, bound: Duration) {
    let end = std::time::Instant::now() + bound;
    while ddi_log(device).matches(text).count() < times {
        assert!(
            std::time::Instant::now() < end,
            "`{text}` not logged {times} times within {bound:?}:\n{}",
            ddi_log(device)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn goosebit_down_then_up_the_device_backs_off_and_takes_the_rollout_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Goosebit::start(dir.path());
    let device = Device::new();
    let agent = goosebit_device(&server, &device, "gb-4");
    server.stop();
    wait_log(&device, "polling again in", 2, BOUND);
    server.restart();
    let sw = server.upload(&make_bundle(&device, &[], "5.0.0"));
    server.assign("gb-4", sw);
    server.wait_device("gb-4", "Finished at 5.0.0", BOUND, |d| {
        d["last_state"] == "Finished" && d["sw_version"] == "5.0.0"
    });
    stop(agent);
    assert!(device.device.join("b-1").exists());
}

/// The state file system filled by something else while an action's step runs is not a
/// result: the server hears nothing, the client stops (exit 10), and once there is room
/// the next start resumes the deployment and the server hears success once.
#[test]
fn a_full_state_file_system_is_not_reported_as_a_result_and_the_resumed_action_is() {
    let server = DdiServer::start();
    let device = Device::new();
    let _small = common::SmallFileSystem::mount(&device.state, 64);
    configure(&device, &server.url(), "dev-full", "");
    // The install says it started, then waits for <device>/go.
    let script = format!(
        "#!/bin/bash\nfor arg in \"$@\"; do [[ $prev == --result-file ]] && result=$arg; [[ $arg == --action-* ]] && action=${{arg#--action-}}; prev=$arg; done\ncase $action in\n  install) : > {dir}/started; while [[ ! -e {dir}/go ]]; do sleep 0.05; done; code=600 ;;\n  is-installed) [[ -e {dir}/done ]] && code=900 || code=901 ;;\n  download) code=500 ;;\n  apply) : > {dir}/done; code=700 ;;\n  *) code=0 ;;\nesac\necho \"{{\\\"resultCode\\\": $code, \\\"extendedResultCode\\\": 0, \\\"resultDetails\\\": \\\"\\\"}}\" > \"$result\"\n",
        dir = device.device.display()
    );
    let (manifest, script) = one_script_step("fills", "wait.sh", "fills-1", script);
    offer(
        &server,
        "31",
        vec![
            artifact("update.importmanifest.json", &manifest),
            artifact("wait.sh", &script),
        ],
    );
    let mut agent = spawn(&device);
    let started = device.device.join("started");
    server.wait("the step to start", BOUND, |_| started.exists());
    let (file, filler) = common::fill_leaving(&device.state, 8 * 1024 * 1024);
    // Should the client not stop, it is stopped after the bound and the test fails on
    // its assertions.
    let go = device.device.join("go");
    let (done, waiting) = std::sync::mpsc::channel::<()>();
    let guard = {
        let pid = agent.id() as i32;
        std::thread::spawn(move || {
            if waiting.recv_timeout(BOUND).is_err() {
                // SAFETY: kill(2) of the agent this test started (not yet reaped).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        })
    };
    let status = agent.wait().unwrap();
    let _ = done.send(());
    guard.join().unwrap();
    assert_eq!(status.code(), Some(10), "{}", ddi_log(&device));
    assert!(
        ddi_log(&device).contains("no space left on the file system of"),
        "{}",
        ddi_log(&device)
    );
    assert!(server.closed_results("31").is_empty(), "nothing reported");

    drop(file);
    fs::remove_file(&filler).unwrap();
    fs::write(&go, "").unwrap();
    let run = once(&device, &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert_eq!(server.closed_results("31"), ["success"]);
    assert!(device.device.join("done").exists());
}
