//! Crash matrix: kill `handrail deploy` with SIGKILL right after each of its durable
//! writes (`HANDRAIL_CRASH_AFTER_WRITE=N`), then `handrail resume`, and prove every run
//! ends in the same final state as an uninterrupted one, with no step's install run again
//! once its installed criteria were met.

mod common;

use common::{Device, script_manifest};
use serde_json::Value;

const CRITERIA: [&str; 3] = ["crash-a", "crash-b", "crash-c"];

/// What must be the same after any crash + resume: status, per-step outcomes, installed
/// criteria and what landed on the device.
fn final_state(device: &Device) -> (Value, Vec<String>, Vec<String>) {
    let history = device.run(&["--json", "history"]);
    assert_eq!(history.code(), Some(0), "{}", history.stderr());
    let entries = history.last_json();
    let last = entries
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("a history entry");
    let report = &last["report"];
    let summary = serde_json::json!({
        "status": report["status"],
        "outcomes": report["steps"].as_array().unwrap().iter().map(|s| s["outcome"].clone()).collect::<Vec<_>>(),
        "failure": report["failure"],
    });
    let status = device.run(&["--json", "status"]);
    let status = status.last_json();
    assert!(
        status["current"].is_null(),
        "nothing left in progress: {status}"
    );
    let mut installed: Vec<String> = status["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["installedCriteria"].as_str().unwrap().to_owned())
        .collect();
    installed.sort();
    let mut landed: Vec<String> = std::fs::read_dir(&device.device)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "log")
        .collect();
    landed.sort();
    (summary, installed, landed)
}

fn installs(device: &Device) -> Vec<String> {
    device
        .log()
        .into_iter()
        .filter(|l| l.ends_with(" install") || l.ends_with(" apply"))
        .collect()
}

#[test]
fn resume_after_sigkill_at_every_journal_point_matches_an_uninterrupted_run() {
    let reference = Device::new();
    let manifest = reference.manifest("update.json", &script_manifest(&reference, &CRITERIA, &[]));
    let run = reference.run(&[
        "--json",
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        reference.payloads.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    let expected = final_state(&reference);
    assert_eq!(expected.1, CRITERIA);
    let expected_installs = installs(&reference);

    let mut point = 1;
    let mut before_admission = 0;
    loop {
        let device = Device::new();
        let manifest = device.manifest("update.json", &script_manifest(&device, &CRITERIA, &[]));
        let crashed = device.run_env(
            &[
                "--json",
                "deploy",
                manifest.to_str().unwrap(),
                "--payloads",
                device.payloads.to_str().unwrap(),
            ],
            &[("HANDRAIL_CRASH_AFTER_WRITE", &point.to_string())],
        );
        if !crashed.killed() {
            assert_eq!(crashed.code(), Some(0), "{}", crashed.stderr());
            // Most points fall inside the deployment (3 steps × several actions, two
            // records each); only the bundled handlers' installation precedes it.
            assert!(
                point - before_admission > 20,
                "only {} of {point} points were inside the deployment",
                point - before_admission
            );
            break;
        }
        let resumed = device.run(&["--json", "resume"]);
        assert_eq!(
            resumed.code(),
            Some(0),
            "point {point}: {}\n{}",
            resumed.stdout(),
            resumed.stderr()
        );
        let history = device.run(&["--json", "history"]).last_json();
        if resumed.last_json()["message"] == "nothing to resume" && history == serde_json::json!([])
        {
            // Killed before the deployment was admitted (while installing the bundled
            // handlers): nothing ran, and the agent deploys again.
            assert!(device.log().is_empty(), "point {point}: {:?}", device.log());
            let again = device.run(&[
                "--json",
                "deploy",
                manifest.to_str().unwrap(),
                "--payloads",
                device.payloads.to_str().unwrap(),
            ]);
            assert_eq!(again.code(), Some(0), "point {point}: {}", again.stderr());
            before_admission += 1;
        }
        assert_eq!(final_state(&device), expected, "point {point}");
        // Each step's install and apply ran exactly once: a crash never makes a step whose
        // criteria were met run again, and never loses one.
        assert_eq!(
            installs(&device),
            expected_installs,
            "point {point}: {:?}",
            device.log()
        );
        point += 1;
    }
}
