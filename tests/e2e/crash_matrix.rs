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
        .filter(|n| n != "log" && n != "hung")
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

/// Two script steps whose first one hangs once in `window` (see `window-step.sh`), with
/// `codes` for its device-step answers.
fn window_manifest(device: &Device, window: &str, codes: &str) -> std::path::PathBuf {
    device.payload_fixture("device-step.sh");
    device.payload_fixture("window-step.sh");
    let step = |criteria: &str, script: &str, extra: &str| {
        let mut step = handrail_test_support::manifest::inline_step(
            "microsoft/script:1",
            &[script, "device-step.sh"][..if script == "device-step.sh" { 1 } else { 2 }],
            serde_json::json!({
                "scriptFileName": script,
                "arguments": format!("--device {}{extra}", device.device.display()),
                "installedCriteria": criteria,
            }),
        );
        step["description"] = criteria.into();
        step
    };
    let codes = if codes.is_empty() {
        String::new()
    } else {
        format!(" --codes {codes}")
    };
    let manifest = handrail_test_support::manifest::Update::new("contoso", "window", "1.0")
        .compatible_with("contoso", "e2e")
        .step(step(
            "first",
            "window-step.sh",
            &format!(" --hang-at {window}{codes}"),
        ))
        .step(step("second", "device-step.sh", ""))
        .json()
        .clone();
    device.manifest("window.json", &manifest)
}

/// Runs `handrail <args…>` until the step hangs in its window, then kills it.
fn kill_in_window(device: &Device, args: &[&str]) {
    device.kill_when(args, &device.device.join("hung"));
}

#[test]
fn a_kill_after_a_step_changed_the_device_ends_as_an_uninterrupted_run() {
    for window in ["install", "apply"] {
        let reference = Device::new();
        let manifest = window_manifest(&reference, "none", "");
        let payloads = reference.payloads.to_str().unwrap().to_owned();
        let run = reference.run(&[
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            &payloads,
        ]);
        assert_eq!(run.code(), Some(0), "{}", run.stderr());
        let expected = final_state(&reference);

        let device = Device::new();
        let manifest = window_manifest(&device, window, "");
        let payloads = device.payloads.to_str().unwrap().to_owned();
        kill_in_window(
            &device,
            &[
                "deploy",
                manifest.to_str().unwrap(),
                "--payloads",
                &payloads,
            ],
        );
        // Another process's `status` shows the action the journal has started and not
        // finished, not a bare "pending".
        let status = device.run(&["status"]);
        assert!(
            status
                .stdout()
                .contains(&format!("step 0: {window} started, not finished")),
            "{window}: {}",
            status.stdout()
        );
        let resumed = device.run(&["resume"]);
        assert_eq!(resumed.code(), Some(0), "{window}: {}", resumed.stderr());
        // Succeeded and recorded installed, as without the kill — not "already installed".
        assert_eq!(
            final_state(&device),
            expected,
            "{window}: {:?}",
            device.log()
        );
        if window == "apply" {
            // What ran is what an uninterrupted run runs: the killed apply had finished
            // its work, and is not run again.
            assert_eq!(
                installs(&device),
                installs(&reference),
                "{:?}",
                device.log()
            );
        }
    }
}

#[test]
fn a_kill_while_is_installed_verifies_the_reboot_ends_as_an_uninterrupted_run() {
    let reference = Device::new();
    let manifest = window_manifest(&reference, "none", "apply=706");
    let run = reference.deploy(&manifest);
    assert_eq!(
        run.code(),
        Some(3),
        "waits for the reboot: {}",
        run.stderr()
    );
    let run = reference.run(&["resume"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let expected = final_state(&reference);

    let device = Device::new();
    let manifest = window_manifest(&device, "verify", "apply=706");
    let run = device.deploy(&manifest);
    assert_eq!(
        run.code(),
        Some(3),
        "waits for the reboot: {}",
        run.stderr()
    );
    // After the reboot, the agent is killed while is-installed verifies the update.
    kill_in_window(&device, &["resume"]);
    let resumed = device.run(&["resume"]);
    assert_eq!(resumed.code(), Some(0), "{}", resumed.stderr());
    assert_eq!(final_state(&device), expected, "{:?}", device.log());
    assert_eq!(
        installs(&device),
        installs(&reference),
        "{:?}",
        device.log()
    );
}

#[test]
fn an_action_the_agent_crashes_in_every_time_fails_after_its_bound_instead_of_looping() {
    let device = Device::new();
    device.write_config(
        &device.state.join("config.toml"),
        "[deployment]\nmax_interrupted_runs = 2\n",
    );
    let manifest = window_manifest(&device, "install-always", "");
    let payloads = device.payloads.to_str().unwrap().to_owned();
    let hung = device.device.join("hung");
    // The deployment and the first resume are killed in the install; so would every
    // resume be, without the bound.
    kill_in_window(
        &device,
        &[
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            &payloads,
        ],
    );
    std::fs::remove_file(&hung).unwrap();
    kill_in_window(&device, &["resume"]);
    let resumed = device.run(&["--json", "resume"]);
    assert_eq!(
        resumed.code(),
        Some(1),
        "{}{}",
        resumed.stdout(),
        resumed.stderr()
    );
    let report = resumed.last_json();
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(
        report["failure"]["extendedResultCodeHex"], "0x34800024",
        "{report}"
    );
    assert!(
        report["failure"]["resultDetails"]
            .as_str()
            .unwrap()
            .contains("interrupted by a crash 2 times"),
        "{report}"
    );
    // The step's install did not start a third time, and the device takes updates.
    let installs = device
        .log()
        .iter()
        .filter(|l| l.as_str() == "first install")
        .count();
    assert_eq!(
        installs, 0,
        "the hanging install never reached device-step.sh"
    );
    assert!(
        !std::fs::read_dir(&device.device)
            .unwrap()
            .any(|e| e.unwrap().file_name() == "first")
    );
    let status = device.run(&["--json", "status"]).last_json();
    assert!(status["current"].is_null(), "{status}");
}

#[test]
fn handrail_cancel_from_another_shell_cancels_the_running_deployment() {
    let device = Device::new();
    let nothing = device.run(&["cancel"]);
    assert_eq!(nothing.code(), Some(0), "{}", nothing.stderr());
    assert!(
        nothing.stdout().contains("nothing to cancel"),
        "{}",
        nothing.stdout()
    );

    let manifest = window_manifest(&device, "install-always", "");
    let payloads = device.payloads.to_str().unwrap().to_owned();
    let agent = device.start_until(
        &[
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            &payloads,
        ],
        &device.device.join("hung"),
    );
    let cancel = device.run(&["cancel", "--wait", "120"]);
    let deployed = agent.wait_with_output().unwrap();
    let said = format!(
        "{}\n{}\n{}",
        cancel.stdout(),
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr)
    );
    assert_eq!(cancel.code(), Some(0), "{said}\n{}", cancel.stderr());
    assert!(
        cancel.stdout().contains("cancelling deployment")
            && cancel.stdout().contains(": cancelled"),
        "{said}"
    );
    // The agent ended as a cancelled deployment does, and nothing ran after the cancel.
    assert_eq!(deployed.status.code(), Some(5), "{said}");
    assert!(!device.device.join("second").exists(), "{said}");
    let history = device.run(&["--json", "history"]).last_json();
    assert_eq!(history[0]["report"]["status"], "cancelled", "{history}");
}
