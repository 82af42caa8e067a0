//! State that outlives the binary that wrote it, and state the disk damaged: every
//! journal and installed-criteria record carries its format version and a checksum, the
//! plan pins the handlers admission loaded, and a deployment the previous release
//! suspended resumes under this one.

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
            assert_eq!(run.code(), Some(10), "record {index}, {args:?}: {}", run.stdout());
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
    assert!(!journal.exists(), "the finished deployment's journal is retired");

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
