//! The ADU-style demo (`examples/adu-demo`) end to end: `examples/adu-demo/run-demo.sh`,
//! the steps `scripts/adu-demo.sh` runs after building, with this build's `handrail`
//! and contoso components enumerator, on a device root of the test's own. The demo's
//! bash install script logs every call it gets (`call <component> <action> (bash
//! <version>): <command line>`) to `<root>/logs/calls.log`, where the demo marks each update
//! (`== update <version> ==`); the assertions read that log, the firmware data files the
//! script installed, the demo's `handrail status` output and the history.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Run, handrail_bin};
use handrail_example_handlers::CONTOSO_COMPONENTS_ENUMERATOR;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/adu-demo");

/// The demo's install script.
const SCRIPT: &str = "update-files/contoso-component-installscript.sh";

/// The components of the demo's vacuum: name, group and folder under `vacuum-1`.
const MOTORS: [(&str, &str); 3] = [
    ("left-motor", "motors/contoso-motor-serial-00000"),
    ("right-motor", "motors/contoso-motor-serial-00001"),
    ("vacuum-motor", "motors/contoso-motor-serial-00002"),
];
const CAMERAS: [(&str, &str); 2] = [
    ("front-camera", "cameras/contoso-camera-serial-00000"),
    ("rear-camera", "cameras/contoso-camera-serial-00001"),
];

/// One run of the install script, as it logged it.
#[derive(Debug, Clone)]
struct Call {
    component: String,
    action: String,
    /// What `$BASH_VERSION` said (empty under another shell).
    bash: String,
    args: String,
}

impl Call {
    /// The value of option `name` on the command line.
    fn option(&self, name: &str) -> Option<&str> {
        let mut words = self.args.split(' ');
        words.find(|w| *w == name)?;
        words.next()
    }

    /// Which step of its update the call is for: the firmware file it installs, or
    /// `pre-install` for the simulated pre-install step.
    fn step(&self) -> &str {
        self.option("--firmware-file").unwrap_or("pre-install")
    }
}

/// What the demo left: its device root, standard output and the calls of each update.
struct Demo {
    root: PathBuf,
    stdout: String,
    updates: Vec<(String, Vec<Call>)>,
}

impl Demo {
    fn calls(&self, version: &str) -> &[Call] {
        self.updates
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, calls)| calls.as_slice())
            .unwrap_or_else(|| panic!("no update {version} in the calls log"))
    }

    fn vacuum(&self, folder: &str) -> PathBuf {
        self.root.join("contoso-devices/vacuum-1").join(folder)
    }

    /// `handrail --json <args>` on the demo's state directory.
    fn handrail_json(&self, args: &[&str]) -> serde_json::Value {
        let output = Command::new(handrail_bin())
            .arg("--state-dir")
            .arg(self.root.join("state"))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        Run { output }.last_json()
    }
}

/// The demo, run once for all the tests of this file.
fn demo() -> &'static Demo {
    static DEMO_RUN: OnceLock<Demo> = OnceLock::new();
    DEMO_RUN.get_or_init(|| {
        // run-demo.sh resets its root at every run, so one folder serves every run. Not
        // under the target folder: a host folder granted to a sandbox must not lie
        // inside the sandbox's own /work (nor /payload), and targets may be under /work.
        let root = std::env::temp_dir().join("handrail-adu-demo-e2e");
        fs::create_dir_all(&root).unwrap();
        let wasm = root.join("contoso-components-enumerator.wasm");
        fs::write(&wasm, CONTOSO_COMPONENTS_ENUMERATOR).unwrap();
        let output = Command::new(Path::new(DEMO).join("run-demo.sh"))
            .arg(handrail_bin())
            .arg(&wasm)
            .arg(&root)
            .env(
                "HANDRAIL_CACHE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("handrail-cache"),
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "run-demo.sh: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let log = fs::read_to_string(root.join("logs/calls.log")).unwrap();
        Demo {
            root,
            stdout,
            updates: parse_calls(&log),
        }
    })
}

/// The calls of each update marked in the log.
fn parse_calls(log: &str) -> Vec<(String, Vec<Call>)> {
    let mut updates: Vec<(String, Vec<Call>)> = Vec::new();
    for line in log.lines() {
        if let Some(version) = line
            .strip_prefix("== update ")
            .and_then(|l| l.strip_suffix(" =="))
        {
            updates.push((version.to_owned(), Vec::new()));
            continue;
        }
        let Some((_, call)) = line.split_once("] [I] call ") else {
            continue;
        };
        let (head, args) = call.split_once("): ").unwrap();
        let mut words = head.splitn(3, ' ');
        let component = words.next().unwrap().to_owned();
        let action = words.next().unwrap().to_owned();
        let bash = words.next().unwrap().trim_start_matches("(bash").trim();
        let (_, calls) = updates
            .last_mut()
            .expect("a call before the first update mark");
        calls.push(Call {
            component,
            action,
            bash: bash.to_owned(),
            args: args.to_owned(),
        });
    }
    updates
}

/// The (component, action, step) of each call.
fn sequence(calls: &[Call]) -> Vec<(&str, &str, &str)> {
    calls
        .iter()
        .map(|c| (c.component.as_str(), c.action.as_str(), c.step()))
        .collect()
}

/// The version a firmware data file says, `None` when it is missing.
fn version(file: &Path) -> Option<String> {
    let text = fs::read_to_string(file.join("firmware.json")).ok()?;
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    Some(data["version"].as_str().unwrap().to_owned())
}

#[test]
fn update_1_runs_the_host_step_and_each_groups_child_once_per_component_with_adus_command_line() {
    let demo = demo();
    let calls = demo.calls("1.0");
    let root = demo.root.display();
    for (name, group, folder, firmware) in std::iter::once(("hostfw", "firmware", "hostfw", "host"))
        .chain(MOTORS.iter().map(|(n, f)| (*n, "motors", *f, "motor")))
        .chain(CAMERAS.iter().map(|(n, f)| (*n, "cameras", *f, "camera")))
    {
        let mine: Vec<&Call> = calls.iter().filter(|c| c.component == name).collect();
        let actions: Vec<&str> = mine.iter().map(|c| c.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "is-installed",
                "download",
                "is-installed",
                "install",
                "apply"
            ],
            "{name}"
        );
        // The action first, the step's arguments with the component's values in place of
        // --component-*-val, then the work folder, the result file and the criteria.
        for call in &mine {
            let work = call.option("--work-folder").unwrap();
            assert!(
                work.starts_with(&format!("{root}/state/deployments/")),
                "{work}"
            );
            assert_eq!(
                call.args,
                format!(
                    "--action-{action} --firmware-file {firmware}-firmware-1.1.json --component-name {name} --component-group {group} --component-prop path {root}/contoso-devices/vacuum-1/{folder} --log-file {root}/logs/calls.log --work-folder {work} --result-file {work}/action_{action}_aduc_result.json --installed-criteria 1.1",
                    action = call.action
                )
            );
        }
    }
    assert_eq!(calls.len(), 6 * 5);
    // The host kept 1.1 from update 1; the motors have 1.2 from update 2.
    assert_eq!(version(&demo.vacuum("hostfw")).as_deref(), Some("1.1"));
    for (_, folder) in MOTORS {
        assert_eq!(version(&demo.vacuum(folder)).as_deref(), Some("1.2"));
    }
}

#[test]
fn every_steps_download_comes_before_the_first_install_as_in_adus_two_phases() {
    let demo = demo();
    for (update, calls) in &demo.updates {
        let last_download = calls.iter().rposition(|c| c.action == "download");
        let first_install = calls.iter().position(|c| c.action == "install");
        assert!(
            last_download < first_install,
            "update {update}: {:#?}",
            sequence(calls)
        );
        // Each step downloaded for a component is the one then installed on it, once.
        let steps = |action: &str| {
            let mut s: Vec<(&str, &str)> = calls
                .iter()
                .filter(|c| c.action == action)
                .map(|c| (c.component.as_str(), c.step()))
                .collect();
            s.sort();
            s
        };
        assert_eq!(steps("download"), steps("install"), "update {update}");
    }
    // Update 2: the host firmware 1.1 is found installed and not run again.
    let host: Vec<&str> = demo
        .calls("2.0")
        .iter()
        .filter(|c| c.component == "hostfw")
        .map(|c| c.action.as_str())
        .collect();
    assert_eq!(host, ["is-installed"]);
    assert_eq!(demo.calls("2.0").len(), 1 + 5 * 5);
}

#[test]
fn after_update_2_status_lists_only_the_current_versions() {
    let demo = demo();
    let status = demo
        .stdout
        .split("== handrail status after update 2.0 ==\n")
        .nth(1)
        .and_then(|rest| rest.split("\n==").next())
        .unwrap_or_else(|| panic!("no status after update 2.0 in {}", demo.stdout));
    let mut records: Vec<String> = status
        .lines()
        .filter_map(|l| {
            l.trim()
                .split(") at ")
                .next()
                .filter(|r| r.contains(" for "))
        })
        .map(|r| format!("{r})"))
        .collect();
    records.sort();
    let mut expected = vec!["1.1 (microsoft/script:1 for contoso/virtual-vacuum/1.0)".to_owned()];
    for (group, folder) in MOTORS
        .iter()
        .map(|(_, f)| ("motors", f))
        .chain(CAMERAS.iter().map(|(_, f)| ("cameras", f)))
    {
        let id = folder.rsplit('/').next().unwrap();
        expected.push(format!(
            "1.2 (microsoft/script:1 for contoso/virtual-vacuum-{group}/1.2, component {id})"
        ));
    }
    expected.sort();
    assert_eq!(records, expected, "{status}");
    assert!(status.contains("installed criteria: 6"), "{status}");
}

#[test]
fn update_3_downloads_every_step_then_fails_at_the_rear_cameras_firmware_step() {
    let demo = demo();
    // ADU's order: every step's is-installed and download for each camera, then camera by
    // camera and step by step is-installed, install, apply; the rear camera (unplugged)
    // fails its firmware install.
    let firmware = "camera-firmware-1.3.json";
    let mut expected = Vec::new();
    for camera in ["front-camera", "rear-camera"] {
        for step in ["pre-install", firmware] {
            expected.push((camera, "is-installed", step));
            expected.push((camera, "download", step));
        }
    }
    for camera in ["front-camera", "rear-camera"] {
        for step in ["pre-install", firmware] {
            for action in ["is-installed", "install", "apply"] {
                expected.push((camera, action, step));
            }
        }
    }
    expected.pop();
    assert_eq!(sequence(demo.calls("3.0")), expected);

    let history = demo.handrail_json(&["history"]);
    let reports: Vec<&serde_json::Value> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["report"])
        .collect();
    let statuses: Vec<&str> = reports
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "succeeded", "failed"]);
    let third = reports[2];
    assert_eq!(third["updateId"], "contoso/virtual-vacuum/3.0");
    let failure = &third["failure"];
    assert_eq!(
        failure["label"], "step 0 > contoso/virtual-vacuum-cameras/1.3 step 1 [rear-camera]",
        "{failure}"
    );
    assert_eq!(failure["step"], 3);
    assert_eq!(failure["action"], "install");
    assert_eq!(failure["resultCode"], 0);
    // ADUC_ERC_SCRIPT_HANDLER_CHILD_PROCESS_FAILURE_EXITCODE(1): the script's cp failed.
    assert_eq!(failure["extendedResultCodeHex"], "0x30501001");
    assert_eq!(
        failure["resultDetails"],
        "Firmware installation failed. Component: rear-camera"
    );
    let outcomes: Vec<&str> = third["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["succeeded", "succeeded", "succeeded", "failed"]);
    // The front camera installed 1.3; the rear one is unplugged.
    assert_eq!(version(&demo.vacuum(CAMERAS[0].1)).as_deref(), Some("1.3"));
    assert_eq!(version(&demo.vacuum(CAMERAS[1].1)), None);
    // The camera steps share the criteria 1.3: recorded once the last of them succeeded,
    // so for the front camera only; the rear camera's record is still 1.2.
    let status = demo
        .stdout
        .split("== handrail status after update 3.0 ==\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no status after update 3.0 in {}", demo.stdout));
    let record = |camera: &str| {
        let id = camera.rsplit('/').next().unwrap().to_owned();
        status
            .lines()
            .take_while(|l| !l.starts_with("=="))
            .filter(|l| l.contains(&format!("component {id})")))
            .map(|l| l.trim().split(' ').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(record(CAMERAS[0].1), ["1.3"], "{status}");
    assert_eq!(record(CAMERAS[1].1), ["1.2"], "{status}");
}

#[test]
fn the_bash_scripts_ran_under_bash_by_their_shebang_and_would_not_run_under_sh() {
    let demo = demo();
    let script = Path::new(DEMO).join(SCRIPT);
    let text = fs::read_to_string(&script).unwrap();
    assert!(text.starts_with("#!/bin/bash\n"));
    for construct in [
        "declare -A component_props",
        "[[ ",
        "${BASH_SOURCE[0]}",
        "$((0x",
    ] {
        assert!(text.contains(construct), "{construct}");
    }
    let calls: Vec<&Call> = demo.updates.iter().flat_map(|(_, c)| c).collect();
    assert!(calls.len() > 60);
    for call in calls {
        assert!(
            call.bash.starts_with("5.") || call.bash.starts_with("4."),
            "{call:?}"
        );
    }

    // Under a POSIX sh that is not bash, the same call does not get to write a result.
    let sh_is_bash = Command::new("/bin/sh")
        .args(["-c", "test -n \"$BASH_VERSION\""])
        .status()
        .unwrap()
        .success();
    if sh_is_bash {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let result = tmp.path().join("result.json");
    let folder = demo.vacuum(MOTORS[0].1);
    let is_installed = |shell: &str| {
        Command::new(shell)
            .arg(&script)
            .args(["--action-is-installed", "--component-name", "left-motor"])
            .args(["--component-prop", "path"])
            .arg(&folder)
            .arg("--result-file")
            .arg(&result)
            .args(["--installed-criteria", "1.2"])
            .output()
            .unwrap()
    };
    let run = is_installed("/bin/sh");
    assert!(!run.status.success(), "{run:?}");
    assert!(!result.exists(), "sh wrote a result");
    // The same call under bash answers "installed".
    let run = is_installed("/bin/bash");
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        fs::read_to_string(&result).unwrap(),
        "{\"resultCode\":900, \"extendedResultCode\":0,\"resultDetails\":\"\"}\n"
    );
}
