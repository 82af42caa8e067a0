//! A script step that tries every way out of the confinement of the programs a handler
//! runs, through the real binary and the built-in `microsoft/script:1`: each attempt
//! fails, the deployment ends with what the script reports, the agent lives, and nothing
//! is left running or written.

mod common;

use std::fs;
use std::net::TcpListener;

use common::{Device, SmallFileSystem};
use handrail_test_support::manifest::{Update, inline_step};
use handrail_test_support::process_running;

/// What the hostile script tries (`tests/e2e/fixtures/hostile-step.sh`).
const ATTEMPTS: &[&str] = &[
    "write-etc",
    "read-shadow",
    "read-agent-environ",
    "plant-registration",
    "tcp-connect",
    "read-block-device",
    "write-kernel-log",
    "kill-agent",
    "kill-agent-by-proc",
];

#[test]
fn a_hostile_script_step_escapes_nowhere_and_its_deployment_ends_as_it_reported() {
    let device = Device::new();
    device.payload_fixture("device-step.sh");
    device.payload_fixture("hostile-step.sh");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let step = inline_step(
        "microsoft/script:1",
        &["hostile-step.sh", "device-step.sh"],
        serde_json::json!({
            "scriptFileName": "hostile-step.sh",
            "arguments": format!(
                "--device {} --state {} --port {port}",
                device.device.display(),
                device.state.display()
            ),
            "installedCriteria": "hostile",
        }),
    );
    let manifest = Update::new("contoso", "hostile", "1.0")
        .compatible_with("contoso", "e2e")
        .step(step)
        .json()
        .clone();
    let manifest = device.manifest("hostile.json", &manifest);
    let run = device.deploy(&manifest);

    let escape = std::path::Path::new("/etc/handrail-escape");
    let escaped_to_etc = escape.exists();
    let _ = fs::remove_file(escape);
    let daemon: libc::pid_t = fs::read_to_string(device.device.join("daemon.pid"))
        .unwrap_or_else(|e| {
            panic!(
                "the script never started its daemon ({e}): {}",
                run.stderr()
            )
        })
        .trim()
        .parse()
        .unwrap();
    let daemon_lives = process_running(daemon);
    if daemon_lives {
        // SAFETY: kill(2) on the process the test's script started.
        unsafe {
            libc::kill(daemon, libc::SIGKILL);
        }
    }

    // The agent lived to report what the script reported: installed (device-step.sh).
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stdout().contains("succeeded"), "{}", run.stdout());
    assert!(device.device.join("hostile").exists());
    let attempts = fs::read_to_string(device.device.join("attempts")).unwrap();
    let reached: Vec<&str> = ATTEMPTS
        .iter()
        .copied()
        .filter(|a| !attempts.lines().any(|l| l == format!("{a}: denied")))
        .collect();
    assert!(reached.is_empty(), "escaped: {reached:?}\n{attempts}");
    assert!(!escaped_to_etc, "the script wrote /etc/handrail-escape");
    assert!(!device.state.join("handlers/planted.toml").exists());
    assert!(
        listener.accept().is_err(),
        "the script reached the test's listener"
    );
    assert!(
        !daemon_lives,
        "the script's daemon {daemon} outlived the deployment"
    );
}

#[test]
fn a_script_that_writes_an_ungranted_folder_fails_naming_the_path_and_the_grant_to_add() {
    let device = Device::new();
    device.payload_fixture("device-step.sh");
    let ungranted = device.tmp.path().join("ungranted");
    fs::create_dir_all(&ungranted).unwrap();
    let step = inline_step(
        "microsoft/script:1",
        &["device-step.sh"],
        serde_json::json!({
            "scriptFileName": "device-step.sh",
            "arguments": format!("--device {}", ungranted.display()),
            "installedCriteria": "a",
        }),
    );
    let manifest = Update::new("contoso", "ungranted", "1.0")
        .compatible_with("contoso", "e2e")
        .step(step)
        .json()
        .clone();
    let run = device.deploy(&device.manifest("ungranted.json", &manifest));
    assert_ne!(run.code(), Some(0), "{}", run.stdout());
    let written: Vec<_> = fs::read_dir(&ungranted).unwrap().collect();
    assert!(written.is_empty(), "the script wrote {written:?}");
    let grant = format!(
        "[handler_grants.\"microsoft/script:1\"] write = [\"{}\"]",
        ungranted.display()
    );
    let said = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        said.contains(&format!("denied {}/", ungranted.display())) && said.contains(&grant),
        "{said}"
    );
}

/// A step of the built-in script handler that writes `installed` into the device folder.
fn device_step_manifest(device: &Device) -> std::path::PathBuf {
    device.payload_fixture("device-step.sh");
    let step = inline_step(
        "microsoft/script:1",
        &["device-step.sh"],
        serde_json::json!({
            "scriptFileName": "device-step.sh",
            "arguments": format!("--device {}", device.device.display()),
            "installedCriteria": "safe",
        }),
    );
    let manifest = Update::new("contoso", "safe", "1.0")
        .compatible_with("contoso", "e2e")
        .step(step)
        .json()
        .clone();
    device.manifest("safe.json", &manifest)
}

#[test]
fn registrations_others_could_change_are_refused_naming_the_file_and_nothing_runs() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let device = Device::new();
    let manifest = device_step_manifest(&device);
    // The first run installs the built-in registrations into <state>/handlers.
    assert_eq!(device.run(&["handlers", "list"]).code(), Some(0));
    let handlers = device.state.join("handlers");
    let registration = handlers.join("bundled-microsoft-script-1.toml");
    assert!(
        registration.exists(),
        "{:?}",
        fs::read_dir(&handlers).unwrap().collect::<Vec<_>>()
    );
    let mode = |path: &std::path::Path, mode: u32| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    };
    let refused = |why: &str, named: &std::path::Path| {
        for args in [
            &["handlers", "list"][..],
            &["validate", manifest.to_str().unwrap()],
        ] {
            let run = device.run(args);
            let said = format!("{}{}", run.stdout(), run.stderr());
            assert_ne!(run.code(), Some(0), "{args:?}: {said}");
            assert!(
                said.contains(&named.display().to_string()) && said.contains(why),
                "{args:?}: {said}"
            );
        }
        let run = device.deploy(&manifest);
        assert_ne!(run.code(), Some(0), "{}", run.stdout());
        assert!(
            fs::read_dir(&device.device).unwrap().next().is_none(),
            "a step ran: {}",
            run.stdout()
        );
    };

    mode(&registration, 0o666);
    refused("lets group or others write it", &registration);
    mode(&registration, 0o644);

    chown(&registration, Some(1000), None).unwrap();
    refused("owned by uid 1000, not root", &registration);
    chown(&registration, Some(0), None).unwrap();

    mode(&handlers, 0o777);
    refused("lets group or others write it", &handlers);
    mode(&handlers, 0o755);

    let artifact = handlers.join("bundled-microsoft-script-1.wasm");
    mode(&artifact, 0o646);
    refused("artifact: its artifact is refused: mode 646", &registration);
    mode(&artifact, 0o644);

    // Put right, the same files run.
    let run = device.deploy(&manifest);
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
}

#[test]
fn a_grant_that_covers_the_runtimes_own_files_is_refused_naming_the_grant() {
    let device = Device::new();
    let manifest = device_step_manifest(&device);
    let config = device.state.join("config.toml");
    for (grant, covers) in [
        // The folder that holds the state directory: the registrations with it.
        (device.tmp.path().to_owned(), "the state directory"),
        // A folder inside it.
        (device.state.join("handlers"), "the state directory"),
    ] {
        fs::write(
            &config,
            format!(
                "[handler_grants.\"microsoft/script:1\"]\nwrite = [\"{}\"]\n",
                grant.display()
            ),
        )
        .unwrap();
        let run = device.deploy(&manifest);
        let said = format!("{}{}", run.stdout(), run.stderr());
        assert_ne!(run.code(), Some(0), "{said}");
        assert!(
            said.contains(&format!("capabilities.write = `{}`", grant.display()))
                && said.contains(covers),
            "{said}"
        );
        assert!(
            fs::read_dir(&device.device).unwrap().next().is_none(),
            "{said}"
        );
    }
}

#[test]
fn a_handler_that_reports_progress_a_million_times_gets_one_line_per_percent() {
    // A device whose update's handler reports progress a million times.
    let flooded = || {
        let device = Device::new();
        register_hostile(&device, "");
        let manifest = hostile_manifest(
            &device,
            "flood",
            serde_json::json!({"behaviour": "progress-flood", "count": 1_000_000}),
        );
        (device, manifest)
    };
    let (device, manifest) = flooded();
    let run = device.deploy_json(&manifest);
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
    let progress: Vec<serde_json::Value> = run
        .stdout()
        .lines()
        .filter(|l| l.contains("\"event\":\"progress\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        (1..=101).contains(&progress.len()),
        "{} progress lines",
        progress.len()
    );
    // Never backwards, and the first report is among them.
    let done: Vec<u64> = progress
        .iter()
        .map(|p| p["done"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");

    // Without a terminal (the test's pipe, as under systemd), a plain line per tenth,
    // naming the step and action, in percent and the handler's units.
    let (device, manifest) = flooded();
    let run = device.deploy(&manifest);
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
    let lines: Vec<String> = run
        .stdout()
        .lines()
        .filter(|l| l.contains("% ("))
        .map(str::to_owned)
        .collect();
    assert!((1..=11).contains(&lines.len()), "{lines:?}");
    assert!(
        lines.iter().all(|l| l.contains("step 0: install ")),
        "{lines:?}"
    );
    assert!(
        lines.last().unwrap().contains("100% (1000000 of 1000000)")
            || lines.last().unwrap().contains("90% ("),
        "{lines:?}"
    );
}

#[test]
fn a_native_handler_runs_under_a_relative_state_directory() {
    use sha2::Digest;
    let device = Device::new();
    let handlers = device.state.join("handlers");
    fs::create_dir_all(&handlers).unwrap();
    let library = fs::read(handrail_test_native_guests::C_HOSTILE).unwrap();
    fs::write(handlers.join("hostile.so"), &library).unwrap();
    let sha256: String = sha2::Sha256::digest(&library)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The artifact relative to its registration, the state directory relative to the
    // working directory: neither is where the worker runs.
    fs::write(
        handlers.join("hostile.toml"),
        format!("id = \"test/hostile:1\"\nkind = \"native\"\nartifact = \"hostile.so\"\nsha256 = \"{sha256}\"\n"),
    )
    .unwrap();
    fs::write(device.payloads.join("a.txt"), "a").unwrap();
    let manifest = Update::new("contoso", "native", "1.0")
        .compatible_with("contoso", "e2e")
        .step(inline_step(
            "test/hostile:1",
            &["a.txt"],
            serde_json::json!({}),
        ))
        .json()
        .clone();
    device.manifest("native.json", &manifest);
    let out = std::process::Command::new(common::handrail_bin())
        .current_dir(device.tmp.path())
        .args([
            "--state-dir",
            "state",
            "--allow-unsigned",
            "deploy",
            "native.json",
            "--payloads",
            "payloads",
        ])
        .env(
            "HANDRAIL_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("handrail-cache"),
        )
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("succeeded"), "{said}");
}

#[test]
fn what_a_killed_agents_step_left_running_is_gone_before_resume_runs_the_step_again() {
    let device = Device::new();
    device.payload_fixture("device-step.sh");
    device.payload_fixture("lingering-step.sh");
    let step = inline_step(
        "microsoft/script:1",
        &["lingering-step.sh", "device-step.sh"],
        serde_json::json!({
            "scriptFileName": "lingering-step.sh",
            "arguments": format!("--device {}", device.device.display()),
            "installedCriteria": "lingering",
        }),
    );
    let manifest = Update::new("contoso", "lingering", "1.0")
        .compatible_with("contoso", "e2e")
        .step(step)
        .json()
        .clone();
    let manifest = device.manifest("lingering.json", &manifest);
    // The agent is killed once the install has started its program.
    let payloads = device.payloads.to_str().unwrap().to_owned();
    device.kill_when(
        &[
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            &payloads,
        ],
        &device.device.join("install-started"),
    );
    let lingering: libc::pid_t = fs::read_to_string(device.device.join("lingering.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        process_running(lingering),
        "the step's program went with the agent: nothing to prove"
    );

    let run = device.run(&["resume"]);
    let still = process_running(lingering);
    if still {
        // SAFETY: kill(2) on the process the test's script started.
        unsafe {
            libc::kill(lingering, libc::SIGKILL);
        }
    }
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
    assert!(
        !still,
        "the killed agent's program {lingering} outlived the resume"
    );
    let log = device.log();
    assert!(log.iter().any(|l| l == "old-gone"), "{log:?}");
    assert!(!log.iter().any(|l| l == "old-alive"), "{log:?}");
}

/// Registers the hostile guest in `device`'s state directory with `limits`.
fn register_hostile(device: &Device, limits: &str) {
    use sha2::Digest;
    let handlers = device.state.join("handlers");
    fs::create_dir_all(&handlers).unwrap();
    fs::write(
        handlers.join("hostile.wasm"),
        handrail_test_guest_artifacts::HOSTILE,
    )
    .unwrap();
    let sha256: String = sha2::Sha256::digest(handrail_test_guest_artifacts::HOSTILE)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    fs::write(
        handlers.join("hostile.toml"),
        format!(
            "id = \"test/hostile:1\"\nkind = \"wasm\"\nartifact = \"hostile.wasm\"\nsha256 = \"{sha256}\"\n[limits]\nmemory_mib = 64\n{limits}"
        ),
    )
    .unwrap();
}

/// A one-step manifest of the hostile guest doing `properties`, named `name`.
fn hostile_manifest(
    device: &Device,
    name: &str,
    properties: serde_json::Value,
) -> std::path::PathBuf {
    fs::write(device.payloads.join("a.txt"), "a").unwrap();
    let manifest = Update::new("contoso", name, "1.0")
        .compatible_with("contoso", "e2e")
        .step(inline_step("test/hostile:1", &["a.txt"], properties))
        .json()
        .clone();
    device.manifest(&format!("{name}.json"), &manifest)
}

/// Runs `run` and checks the deployment failed at step 0 with the disk budget's code,
/// naming `why`.
fn failed_on_its_disk_budget(run: &common::Run, why: &str) {
    assert_eq!(run.code(), Some(1), "{}{}", run.stdout(), run.stderr());
    let report = run.last_json();
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(
        report["failure"]["extendedResultCodeHex"], "0x34800023",
        "{report}"
    );
    let details = report["failure"]["resultDetails"].as_str().unwrap();
    assert!(details.contains(why), "{details}");
}

#[test]
fn a_handler_that_fills_its_work_folder_is_stopped_at_its_budget_and_the_next_update_runs() {
    let device = Device::new();
    register_hostile(&device, "disk_mib = 8\n");
    let fill = hostile_manifest(
        &device,
        "fill",
        serde_json::json!({"behaviour": "fill-work", "mib": 512}),
    );
    let run = device.deploy_json(&fill);
    failed_on_its_disk_budget(&run, "limits.disk_mib");
    // Its work folder went with the deployment, and the device takes the next update.
    assert!(
        !device.state.join("deployments").exists()
            || fs::read_dir(device.state.join("deployments"))
                .unwrap()
                .next()
                .is_none()
    );
    let next = hostile_manifest(&device, "next", serde_json::json!({"behaviour": "ok"}));
    let run = device.deploy_json(&next);
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
}

#[test]
fn a_handler_that_fills_the_state_file_system_is_stopped_and_the_device_takes_the_next_update() {
    let device = Device::new();
    // The state directory on a 48 MiB file system of its own, which the handler fills.
    let _small = SmallFileSystem::mount(&device.state, 48);
    device.write_config(&device.state.join("config.toml"), "");
    register_hostile(&device, "");
    let fill = hostile_manifest(
        &device,
        "fill",
        serde_json::json!({"behaviour": "fill-work"}),
    );
    let run = device.deploy_json(&fill);
    failed_on_its_disk_budget(&run, "reserve_mib");
    // The agent recorded the failure, freed the space, and is not stuck.
    let status = device.run(&["--json", "status"]);
    assert_eq!(status.code(), Some(0), "{}", status.stderr());
    assert!(
        status.last_json()["current"].is_null(),
        "{}",
        status.stdout()
    );
    let health = device.run(&["health"]);
    assert_eq!(
        health.code(),
        Some(0),
        "{}{}",
        health.stdout(),
        health.stderr()
    );
    let next = hostile_manifest(&device, "next", serde_json::json!({"behaviour": "ok"}));
    let run = device.deploy_json(&next);
    assert_eq!(run.code(), Some(0), "{}{}", run.stdout(), run.stderr());
}
