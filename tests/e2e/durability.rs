//! Lose nothing: state that outlives the binary that wrote it (every journal and
//! installed-criteria record carries its format version; a deployment the previous
//! release suspended resumes under this one; the plan pins the handlers admission
//! loaded), state the disk damaged (a checksum per record), a state file system filled
//! by something else than the action, and hooks cut by a crash.

mod common;

use std::fs;

use common::{Device, script_manifest};

/// A two-step deployment suspended by its first step's reboot request; the journal's
/// bytes.
fn suspended(device: &Device, criteria: &str) -> Vec<u8> {
    let manifest = device.manifest(
        "suspends.json",
        &script_manifest(
            device,
            &[&format!("{criteria}-0"), &format!("{criteria}-1")],
            &["apply=705"],
        ),
    );
    let run = device.deploy(&manifest);
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    fs::read(device.state.join("journal.log")).unwrap()
}

/// The byte ranges of a log's lines, newline excluded.
fn lines(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut at = 0;
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(|l| {
            let range = at..at + l.len() - 1;
            at += l.len();
            range
        })
        .collect()
}

/// A log's records as the release before versions wrote them: the JSON alone.
fn without_frames(bytes: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let (body, frame) = line.rsplit_once('\t').expect("a framed record");
        assert!(frame.starts_with("v1 "), "{line}");
        out.push_str(body);
        out.push('\n');
    }
    out.into_bytes()
}

/// Makes the FIFO `path`.
fn fifo(path: &std::path::Path) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
}

/// Lets a script blocked on the FIFO `gate` go after two minutes unless the sender is
/// used first: should the runtime not stop the action as the test expects, the test
/// fails on its assertions instead of waiting for ever.
fn release_after_bound(
    gate: &std::path::Path,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (done, waiting) = std::sync::mpsc::channel::<()>();
    let gate = gate.to_owned();
    let guard = std::thread::spawn(move || {
        if waiting
            .recv_timeout(std::time::Duration::from_secs(120))
            .is_err()
        {
            let _ = fs::write(&gate, "timed out\n");
        }
    });
    (done, guard)
}

/// `body` framed as version `version` with a valid checksum.
fn framed(body: &str, version: u32) -> String {
    use sha2::Digest as _;
    let head = format!("{body}\tv{version}");
    let sum = sha2::Sha256::digest(head.as_bytes());
    let hex: String = sum[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{head} {hex}")
}

/// One flipped byte inside any journal record but the last is named, with its record,
/// by `status`, `health` and `resume` alike, and nothing runs or is appended; in the last
/// record it is what a power cut during the write leaves, recovered with a warning.
#[test]
fn a_flipped_byte_in_any_journal_record_is_named_by_every_command_and_nothing_runs() {
    let device = Device::new();
    let journal = device.state.join("journal.log");
    let good = suspended(&device, "flip");
    let records = lines(&good);
    assert!(records.len() >= 6, "{}", String::from_utf8_lossy(&good));
    let log_before = device.log();
    for (index, range) in records.iter().enumerate() {
        // A byte in the middle of the record's JSON: inside a string or a name.
        let body_end = good[range.clone()]
            .iter()
            .rposition(|b| *b == b'\t')
            .unwrap();
        let at = range.start + body_end / 2;
        let mut damaged = good.clone();
        damaged[at] ^= 0x01;
        fs::write(&journal, &damaged).unwrap();
        if index == records.len() - 1 {
            let status = device.run(&["status"]);
            assert_eq!(status.code(), Some(0), "{}", status.stderr());
            assert!(
                status.stderr().contains("journal.log")
                    && status.stderr().contains("is torn")
                    && status.stderr().contains("checksum does not match"),
                "{}",
                status.stderr()
            );
            continue;
        }
        for args in [&["status"][..], &["health"], &["resume"]] {
            let run = device.run(args);
            assert_eq!(
                run.code(),
                Some(10),
                "record {index}, {args:?}: {}",
                run.stdout()
            );
            let stderr = run.stderr();
            assert!(
                stderr.contains("journal.log")
                    && stderr.contains(&format!("record {index} "))
                    && stderr.contains("checksum does not match"),
                "record {index}, {args:?}: {stderr}"
            );
        }
        assert_eq!(fs::read(&journal).unwrap(), damaged, "nothing appended");
        assert_eq!(device.log(), log_before, "nothing ran");
    }
    fs::write(&journal, &good).unwrap();
    let run = device.run(&["resume"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
}

/// A journal record of a newer format, as a newer binary writes it before a self-update
/// is switched back, is refused naming both versions; the journal is left for the newer
/// binary.
#[test]
fn a_journal_record_of_a_newer_format_is_refused_naming_both_versions() {
    let device = Device::new();
    let journal = device.state.join("journal.log");
    let good = suspended(&device, "newer");
    let text = String::from_utf8(good).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines.pop().unwrap().rsplit_once('\t').unwrap().0.to_owned();
    let newer = framed(&last, 2);
    lines.push(&newer);
    let written = format!("{}\n", lines.join("\n"));
    fs::write(&journal, &written).unwrap();
    for args in [&["status"][..], &["resume"]] {
        let run = device.run(args);
        assert_eq!(run.code(), Some(10), "{args:?}: {}", run.stdout());
        assert!(
            run.stderr().contains(&format!(
                "record {} is not valid: it is in journal format version 2, written by a newer handrail; this one reads versions up to 1",
                lines.len() - 1
            )),
            "{args:?}: {}",
            run.stderr()
        );
    }
    assert_eq!(fs::read_to_string(&journal).unwrap(), written);
}

/// A deployment suspended by the release before record versions — its journal, plan,
/// installed-criteria log and history entries as that release wrote them — resumes under
/// this binary and finishes, and the logs it appends to read back whole.
#[test]
fn a_deployment_the_previous_release_suspended_resumes_and_finishes() {
    let device = Device::new();
    // An earlier deployment, for an installed-criteria record and a history entry.
    let first = device.manifest("first.json", &script_manifest(&device, &["old-0"], &[]));
    assert_eq!(device.deploy(&first).code(), Some(0));
    suspended(&device, "prev");

    // As the previous release wrote them: no frames, no handler pins in the plan, no
    // format in history entries.
    let journal = device.state.join("journal.log");
    let old = String::from_utf8(without_frames(&fs::read(&journal).unwrap())).unwrap();
    let mut lines: Vec<serde_json::Value> = old
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event"], "admitted");
    assert!(lines[0]["plan"]["handlers"].is_object());
    lines[0]["plan"].as_object_mut().unwrap().remove("handlers");
    let old: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(&journal, &old).unwrap();
    let installed = device.state.join("installed.log");
    fs::write(&installed, without_frames(&fs::read(&installed).unwrap())).unwrap();
    for entry in fs::read_dir(device.state.join("history")).unwrap() {
        let path = entry.unwrap().path();
        let mut value: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(value["format"], 1);
        value.as_object_mut().unwrap().remove("format");
        fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    }

    let status = device.run(&["--json", "status"]);
    assert_eq!(status.code(), Some(0), "{}", status.stderr());
    assert!(status.stdout().contains("suspended"), "{}", status.stdout());
    let run = device.run(&["resume"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        !journal.exists(),
        "the finished deployment's journal is retired"
    );

    // The old records and the new ones read back together.
    let status = device.run(&["--json", "status"]);
    assert_eq!(status.code(), Some(0), "{}", status.stderr());
    for criteria in ["old-0", "prev-0", "prev-1"] {
        assert!(status.stdout().contains(criteria), "{}", status.stdout());
    }
    let history = device.run(&["--json", "history"]);
    assert_eq!(history.code(), Some(0), "{}", history.stderr());
    assert_eq!(
        history.stdout().matches("\"status\":\"succeeded\"").count(),
        2,
        "{}",
        history.stdout()
    );
    let log = fs::read_to_string(&installed).unwrap();
    assert!(log.lines().next().is_some_and(|l| !l.contains('\t')));
    assert!(log.lines().last().is_some_and(|l| l.contains("\tv1 ")));
}

/// Copies the bundled script handler to a registration of the device owner's, which the
/// runtime then uses instead of the bundled one; returns its path.
fn own_script_registration(device: &Device) -> std::path::PathBuf {
    assert_eq!(device.run(&["handlers", "list"]).code(), Some(0));
    let handlers = device.state.join("handlers");
    fs::copy(
        handlers.join("bundled-microsoft-script-1.wasm"),
        handlers.join("owner-script.wasm"),
    )
    .unwrap();
    let text = fs::read_to_string(handlers.join("bundled-microsoft-script-1.toml"))
        .unwrap()
        .replace("bundled-microsoft-script-1.wasm", "owner-script.wasm");
    let path = handlers.join("owner-script.toml");
    fs::write(&path, text).unwrap();
    path
}

/// A registration changed while its deployment waits for a reboot is named and not run:
/// the step fails with `0x34800025`, naming the file and what changed. A bundled handler
/// that changed with the program that bundles it is used, and the log says so.
#[test]
fn a_registration_changed_while_its_deployment_waits_is_named_and_not_run() {
    let device = Device::new();
    let registration = own_script_registration(&device);
    suspended(&device, "pinned");
    let text = fs::read_to_string(&registration).unwrap();
    let changed: String = text
        .lines()
        .map(|l| {
            if l.starts_with("timeout_secs = ") {
                "timeout_secs = 77\n".to_owned()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(changed, text, "{text}");
    fs::write(&registration, changed).unwrap();
    let before = device.log();
    let run = device.run(&["--json", "resume"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let report = run.last_json();
    let text = report.to_string();
    assert!(
        text.contains("0x34800025")
            && text.contains("owner-script.toml")
            && text.contains("grants, limits or config are not those admission loaded"),
        "{text}"
    );
    assert_eq!(device.log(), before, "the changed handler ran");

    // The bundled handler: the owner's registration gone, a deployment suspended, then
    // its grants changed (as a new program's registration would change them).
    fs::remove_file(&registration).unwrap();
    fs::remove_file(registration.with_extension("wasm")).unwrap();
    suspended(&device, "bundled");
    let extra = device.tmp.path().join("extra");
    fs::create_dir_all(&extra).unwrap();
    fs::write(
        device.state.join("config.toml"),
        format!(
            "[handler_grants.\"microsoft/script:1\"]\nwrite = [\"{}\", \"{}\"]\n",
            device.device.display(),
            extra.display()
        ),
    )
    .unwrap();
    let run = device.run(&["resume"]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("the bundled handler `microsoft/script:1` changed since deployment"),
        "{}",
        run.stderr()
    );
}

/// The state file system filled by something other than the running action is a
/// condition of the host, not the handler's result: the action is stopped with nothing
/// recorded as its result, the run says there is no space left, `resume` changes nothing
/// while the space is still gone, and once it is back runs the action again and finishes.
#[test]
fn a_state_file_system_filled_during_an_action_stops_it_and_resume_finishes_once_freed() {
    let device = Device::new();
    let _small = common::SmallFileSystem::mount(&device.state, 64);
    device.write_config(&device.state.join("config.toml"), "");
    device.payload_fixture("waits-in-install.sh");
    let gate = device.device.join("gate");
    fifo(&gate);
    let manifest = handrail_test_support::manifest::Update::new("contoso", "fills", "1.0")
        .compatible_with("contoso", "e2e")
        .steps([handrail_test_support::manifest::inline_step(
            "microsoft/script:1",
            &["waits-in-install.sh"],
            serde_json::json!({
                "scriptFileName": "waits-in-install.sh",
                "arguments": format!("--device {}", device.device.display()),
                "installedCriteria": "fills-1.0",
            }),
        )])
        .json()
        .clone();
    let manifest = device.manifest("fills.json", &manifest);
    let payloads = device.payloads.to_str().unwrap().to_owned();
    let deploy = [
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        &payloads,
    ];
    let installing = device.device.join("installing");

    let agent = device.start_until(&deploy, &installing);
    // Something else takes the space: the file system left with 8 MiB, under the 16 MiB
    // reserve.
    let (file, filler) = common::fill_leaving(&device.state, 8 * 1024 * 1024);
    let (done, guard) = release_after_bound(&gate);
    let out = agent.wait_with_output().unwrap();
    let _ = done.send(());
    guard.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{stderr}");
    assert!(
        stderr.contains("no space left on the file system of")
            && stderr.contains("the action did not take it")
            && stderr.contains("`install`"),
        "{stderr}"
    );
    let journal = device.state.join("journal.log");
    let recorded = fs::read_to_string(&journal).unwrap();
    assert!(
        !recorded.contains("\"action-finished\",\"step\":0,\"action\":\"install\""),
        "the stopped install has no result: {recorded}"
    );

    // Still full: nothing is changed, nothing runs.
    let log = device.log();
    let run = device.run(&["resume"]);
    assert_eq!(run.code(), Some(10), "{}", run.stderr());
    assert!(
        run.stderr().contains("no space left on the file system of")
            && run.stderr().contains("is kept as it is"),
        "{}",
        run.stderr()
    );
    assert_eq!(fs::read_to_string(&journal).unwrap(), recorded);
    assert_eq!(device.log(), log);

    // The space back: the install runs again, and the deployment finishes.
    drop(file);
    fs::remove_file(&filler).unwrap();
    fs::remove_file(&installing).unwrap();
    let agent = device.start_until(&["--json", "resume"], &installing);
    fs::write(&gate, "go\n").unwrap();
    let out = agent.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"status\":\"succeeded\""), "{stdout}");
    assert!(device.device.join("installed").exists());
    assert_eq!(
        device.log().iter().filter(|l| *l == "install").count(),
        2,
        "{:?}",
        device.log()
    );
}

/// A hook runs at most once per deployment: killed while a hook runs, the agent's resume
/// does not run it again. An interrupted pre-update hook fails the deployment before any
/// step (what it did is not known); an interrupted post-update hook is noted on the
/// report, whose status stays the deployment's.
#[test]
fn a_hook_the_agent_was_killed_in_is_not_run_a_second_time() {
    use std::os::unix::fs::PermissionsExt as _;
    for kind in ["pre", "post"] {
        let device = Device::new();
        let gate = device.device.join("gate");
        fifo(&gate);
        let hook = device.tmp.path().join(format!("{kind}-update"));
        let marker = device.device.join(format!("{kind}-running"));
        fs::write(
            &hook,
            format!(
                "#!/bin/sh\necho {kind} >> {log}\n: > {marker}\nread -r _ < {gate}\n",
                log = device.device.join("hooks.log").display(),
                marker = marker.display(),
                gate = gate.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
        device.write_config(
            &device.state.join("config.toml"),
            &format!("[hooks]\n{kind}_update = \"{}\"\n", hook.display()),
        );
        let manifest = device.manifest(
            "hooked.json",
            &script_manifest(&device, &[&format!("hooked-{kind}")], &[]),
        );
        let payloads = device.payloads.to_str().unwrap().to_owned();
        device.kill_when(
            &[
                "deploy",
                manifest.to_str().unwrap(),
                "--payloads",
                &payloads,
            ],
            &marker,
        );
        // The killed agent's hook, if it still waits, ends.
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            if let Ok(mut w) = fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&gate)
            {
                let _ = w.write_all(b"go\n");
            }
        }

        let run = device.run(&["--json", "resume"]);
        let report = run.last_json();
        let hooks = fs::read_to_string(device.device.join("hooks.log")).unwrap();
        assert_eq!(hooks, format!("{kind}\n"), "the hook ran once");
        let text = report.to_string();
        assert!(
            text.contains(&format!("the {kind}-update hook was interrupted")),
            "{kind}: {text}"
        );
        if kind == "pre" {
            assert_eq!(run.code(), Some(1), "{}", run.stderr());
            assert_eq!(report["status"], "failed", "{text}");
            assert!(device.log().is_empty(), "no step ran: {:?}", device.log());
        } else {
            assert_eq!(run.code(), Some(0), "{}", run.stderr());
            assert_eq!(report["status"], "succeeded", "{text}");
        }
    }
}

/// SIGTERM while admission stages local payload files ends the deployment as a cancel
/// (exit 5, history `cancelled`) before any step's install, rather than the signal being
/// lost and the deployment run whole.
#[test]
fn sigterm_while_admission_stages_local_files_cancels_the_deployment() {
    let device = Device::new();
    device.payload_fixture("waits-in-install.sh");
    let gate = device.device.join("gate");
    fifo(&gate);
    // A payload large enough that staging it is under way when the signal comes.
    let big = fs::File::create(device.payloads.join("big.bin")).unwrap();
    big.set_len(256 << 20).unwrap();
    drop(big);
    let manifest = handrail_test_support::manifest::Update::new("contoso", "staged", "1.0")
        .compatible_with("contoso", "e2e")
        .steps([handrail_test_support::manifest::inline_step(
            "microsoft/script:1",
            &["big.bin", "waits-in-install.sh"],
            serde_json::json!({
                "scriptFileName": "waits-in-install.sh",
                "arguments": format!("--device {}", device.device.display()),
                "installedCriteria": "staged-1.0",
            }),
        )])
        .json()
        .clone();
    let manifest = device.manifest("staged.json", &manifest);
    let payloads = device.payloads.to_str().unwrap().to_owned();
    let staged = device.state.join("deployments/sigterm-1/payload/big.bin");
    let agent = device.start_until(
        &[
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            &payloads,
            "--id",
            "sigterm-1",
        ],
        &staged,
    );
    // SAFETY: kill(2) of the child this test started.
    unsafe {
        libc::kill(agent.id() as i32, libc::SIGTERM);
    }
    // Should the signal be lost, the install waits on the gate.
    let (done, guard) = release_after_bound(&gate);
    let out = agent.wait_with_output().unwrap();
    let _ = done.send(());
    guard.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !device.log().iter().any(|l| l == "apply"),
        "{:?}",
        device.log()
    );
    let history = device.run(&["--json", "history"]).stdout();
    assert!(history.contains("\"status\":\"cancelled\""), "{history}");
}

/// The installed-criteria log stays small through the binary: a log grown by many
/// versions of one update, each from its own deployment, compacts to the live record and
/// what it replaced when the next version is recorded.
#[test]
fn the_installed_criteria_log_keeps_no_chain_of_old_versions() {
    let device = Device::new();
    // 2000 earlier versions of the update, in the previous release's form.
    let mut log = String::new();
    for v in 0..2000 {
        log.push_str(
            &serde_json::json!({
                "op": "add",
                "installedCriteria": format!("c-{v}"),
                "handler": "microsoft/script:1",
                "updateId": format!("contoso/device-steps/0.{v}"),
                "deployment": format!("d-{v}"),
                "at": "2026-11-01T00:00:00Z",
            })
            .to_string(),
        );
        log.push('\n');
    }
    assert!(log.len() > 256 * 1024);
    let path = device.state.join("installed.log");
    fs::write(&path, &log).unwrap();
    let manifest = device.manifest("grow.json", &script_manifest(&device, &["grow-1"], &[]));
    let run = device.deploy(&manifest);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());
    let compacted = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = compacted.lines().collect();
    assert_eq!(lines.len(), 2, "{compacted}");
    assert!(lines[0].contains("\"c-1999\"") && lines[1].contains("\"grow-1\""));
    assert!(lines.iter().all(|l| l.contains("\tv1 ")), "{compacted}");
    let status = device.run(&["--json", "status"]).stdout();
    assert!(
        status.contains("grow-1") && !status.contains("c-1999"),
        "{status}"
    );
}

/// A flipped byte anywhere in a compiled-handler cache entry — its checksum, its code,
/// its last byte — is found before the code is mapped: the binary says so, compiles the
/// handler again, deploys, and the entry is whole again. No run crashes on it.
#[test]
fn a_flipped_byte_in_any_cache_entry_is_compiled_again_never_executed() {
    let device = Device::new();
    let cache = device.tmp.path().join("cache");
    let cache_arg = cache.to_str().unwrap().to_owned();
    let payloads = device.payloads.to_str().unwrap().to_owned();
    let deploy = |n: usize| {
        let manifest = device.manifest(
            &format!("cache-{n}.json"),
            &script_manifest(&device, &[&format!("cache-{n}")], &[]),
        );
        device.run(&[
            "--cache-dir",
            &cache_arg,
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            &payloads,
        ])
    };
    let first = deploy(0);
    assert_eq!(first.code(), Some(0), "{}", first.stderr());
    let entries: Vec<_> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert!(!entries.is_empty(), "the deployment left no cache entry");
    let mut n = 1;
    for entry in &entries {
        let good = fs::read(entry).unwrap();
        let name = entry.file_name().unwrap().to_str().unwrap().to_owned();
        for offset in [0, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[offset] ^= 0x01;
            fs::write(entry, &bad).unwrap();
            let run = deploy(n);
            n += 1;
            assert_eq!(run.code(), Some(0), "offset {offset}: {}", run.stderr());
            assert!(
                run.stderr()
                    .contains("ignoring a damaged compiled-handler cache entry")
                    && run.stderr().contains(&name),
                "offset {offset}: {}",
                run.stderr()
            );
            assert_ne!(fs::read(entry).unwrap(), bad, "offset {offset}: rewritten");
        }
    }
}
