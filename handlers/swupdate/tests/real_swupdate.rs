//! `microsoft/swupdate:2` against the real swupdate, through the whole runtime: the
//! built-in component registered with the WebAssembly host, a signed `.swu` built by the
//! test, its image written by swupdate into the inactive one of two slot image files,
//! the boot slot switched in a boot environment file, and the reboot simulated by
//! rewriting the files a booted system (or a falling-back bootloader) would change.
//!
//! The `.swu` is a cpio archive (`newc` with checksums, written here) of
//! `sw-description`, its CMS signature (swupdate as Debian builds it only takes signed
//! images; the key pair is made with `openssl`) and the image. Its two selections,
//! `stable,copy1` and `stable,copy2`, write the image to slot a and slot b.
//!
//! ADU's script-driven form of `:2` is run with a `#!/bin/bash` wrapper script written
//! here in the style of ADU's example swupdate script ([`WRAPPER`]), which calls the same
//! swupdate on the same image.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use handrail::contract::Action;
use handrail::contract::codes;
use handrail::registry::{Capabilities, HandlerKind, Registration, Registry};
use handrail::{AdmitOptions, DeploymentStatus, Report, Runtime, StepOutcome};
use handrail_test_support::manifest::{Update, inline_step};
use handrail_test_support::{MachineLock, registration};
use handrail_wasm_host::WasmHost;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const ID: &str = "microsoft/swupdate:2";
const ID_V1: &str = "microsoft/swupdate:1";
const SWUPDATE: &str = "/usr/bin/swupdate";
const HWREVISION: &str = "handrail-test:1.0";
const SLOT_SIZE: usize = 64 * 1024;
/// What slot a holds before the update.
const OLD_BYTE: u8 = b'o';

fn can_run() -> bool {
    let ok =
        Path::new(SWUPDATE).exists() && Command::new("openssl").arg("version").output().is_ok();
    if !ok {
        let why = format!("needs {SWUPDATE} and openssl (scripts/setup.sh installs them)");
        // CI installs both: there, a missing tool is a failure, never a silent skip.
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipping: {why}");
    }
    ok
}

/// Appends one `newc`-with-checksum (`070702`) cpio entry.
fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, data: &[u8]) {
    let check = data
        .iter()
        .fold(0u32, |sum, b| sum.wrapping_add(u32::from(*b)));
    let fields = [
        ino,
        if data.is_empty() && name == "TRAILER!!!" {
            0
        } else {
            0o100644
        },
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        check,
    ];
    out.extend_from_slice(b"070702");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The device: two slot image files, the boot environment and the version file.
struct Device {
    dir: PathBuf,
}

impl Device {
    fn slot(&self, name: &str) -> PathBuf {
        self.dir.join(format!("slot-{name}.img"))
    }
    fn boot_env(&self) -> PathBuf {
        self.dir.join("bootenv")
    }
    fn version_file(&self) -> PathBuf {
        self.dir.join("sw-version")
    }
    fn env(&self, key: &str) -> Option<String> {
        let text = fs::read_to_string(self.boot_env()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
    }
    /// What the bootloader does when it boots `slot` (the test's stand-in for a reboot).
    fn boot(&self, slot: &str, version: &str) {
        let text = fs::read_to_string(self.boot_env()).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("boot_slot=") {
                    format!("boot_slot={slot}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(self.boot_env(), text).unwrap();
        fs::write(self.version_file(), format!("{version}\n")).unwrap();
    }
}

struct Fixture {
    /// One fixture at a time on the machine: swupdate, run by several test binaries at
    /// once, fails now and then in ways that have nothing to do with the handler.
    _swupdate: MachineLock,
    id: &'static str,
    dir: TempDir,
    runtime: Runtime,
    device: Device,
    deployed: usize,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(ID)
    }

    /// A device whose runtime runs the built-in handler `id`.
    fn with(id: &'static str) -> Fixture {
        let swupdate = MachineLock::swupdate();
        let dir = tempfile::tempdir().unwrap();
        let device = Device {
            dir: dir.path().join("device"),
        };
        fs::create_dir_all(&device.dir).unwrap();
        fs::write(device.slot("a"), vec![OLD_BYTE; SLOT_SIZE]).unwrap();
        fs::write(device.slot("b"), vec![0u8; SLOT_SIZE]).unwrap();
        fs::write(
            device.boot_env(),
            "boot_slot=a\nupgrade_available=0\nustate=0\n",
        )
        .unwrap();
        fs::write(device.version_file(), "1.0\n").unwrap();
        let keys = dir.path().join("keys");
        fs::create_dir_all(&keys).unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "30",
                "-subj",
                "/CN=handrail-test",
                "-addext",
                "extendedKeyUsage=emailProtection",
                "-addext",
                "keyUsage=digitalSignature",
            ],
            &keys,
        );
        let config = json!({
            "slots": {"a": device.slot("a"), "b": device.slot("b")},
            "boot_env": device.boot_env(),
            "version_file": device.version_file(),
            "public_key": keys.join("cert.pem"),
            "hwrevision": HWREVISION,
            // What the script-driven form passes its scripts (the built-in flow reads
            // none of it).
            "script_arguments": {
                "--public-key-file": keys.join("cert.pem"),
                "--hwrevision": HWREVISION,
            },
        });
        let Value::Object(config) = config else {
            unreachable!()
        };
        let builtin = handrail_builtin_handlers::builtin_handlers()
            .into_iter()
            .find(|h| h.id == id)
            .expect("the built-in swupdate handler");
        // :2 also runs the scripts of ADU's script-driven form, by their interpreter.
        let run: &[&str] = if id == ID {
            &[SWUPDATE, "/bin/sh", "/bin/bash"]
        } else {
            &[SWUPDATE]
        };
        assert_eq!(
            builtin.capabilities.run,
            run.iter().map(PathBuf::from).collect::<Vec<_>>()
        );
        let artifact = dir.path().join("swupdate.wasm");
        fs::write(&artifact, builtin.wasm).unwrap();
        let mut registry = Registry::new();
        registry
            .insert(Registration {
                config,
                ..registration(
                    id,
                    HandlerKind::Wasm,
                    &artifact,
                    // swupdate writes the device's slots and boot environment and
                    // reads the certificate the image is signed for.
                    Capabilities {
                        write: vec![device.dir.clone()],
                        read: vec![keys.clone()],
                        ..builtin.capabilities
                    },
                )
            })
            .unwrap();
        fs::create_dir_all(dir.path().join("payloads")).unwrap();
        let host = WasmHost::new(dir.path().join("wasm-cache")).unwrap();
        let runtime = Runtime::builder(dir.path().join("state"))
            // The test deploys manifests it writes itself, unsigned.
            .allow_unsigned()
            .registry(registry)
            .host(host)
            .open()
            .unwrap();
        Fixture {
            _swupdate: swupdate,
            id,
            dir,
            runtime,
            device,
            deployed: 0,
        }
    }

    /// Builds `name` (a signed `.swu` of `image`, version `version`, for `hwrevision`).
    fn swu(&self, name: &str, version: &str, image: &[u8], hwrevision: &str) {
        let keys = self.dir.path().join("keys");
        let sha = handrail::registry::hex(&Sha256::digest(image));
        let (_board, revision) = hwrevision.split_once(':').unwrap();
        let copy = |slot: &str| {
            format!(
                "{{ images: ( {{ filename = \"rootfs.img\"; type = \"raw\"; device = \"{}\"; sha256 = \"{sha}\"; }} ); }}",
                self.device.slot(slot).display()
            )
        };
        let description = format!(
            "software =\n{{\n  version = \"{version}\";\n  hardware-compatibility = [ \"{revision}\" ];\n  stable = {{\n    copy1 = {};\n    copy2 = {};\n  }};\n}}\n",
            copy("a"),
            copy("b")
        );
        fs::write(keys.join("sw-description"), &description).unwrap();
        openssl(
            &[
                "cms",
                "-sign",
                "-in",
                "sw-description",
                "-out",
                "sw-description.sig",
                "-signer",
                "cert.pem",
                "-inkey",
                "key.pem",
                "-outform",
                "DER",
                "-nosmimecap",
                "-binary",
            ],
            &keys,
        );
        let signature = fs::read(keys.join("sw-description.sig")).unwrap();
        let mut archive = Vec::new();
        cpio_entry(&mut archive, 1, "sw-description", description.as_bytes());
        cpio_entry(&mut archive, 2, "sw-description.sig", &signature);
        cpio_entry(&mut archive, 3, "rootfs.img", image);
        cpio_entry(&mut archive, 0, "TRAILER!!!", b"");
        // Like cpio(1), pad to whole 512-byte blocks: swupdate reads the padding after
        // the trailer.
        archive.resize(archive.len().next_multiple_of(512), 0);
        fs::write(self.dir.path().join("payloads").join(name), archive).unwrap();
    }

    async fn deploy(&mut self, criteria: &str, properties: Value, files: &[&str]) -> Report {
        self.deployed += 1;
        let mut properties = properties;
        properties["installedCriteria"] = json!(criteria);
        let manifest = Update::new("handrail-test", "swupdate", &format!("{}.0", self.deployed))
            .compatible_with("handrail", "test")
            .step(inline_step(self.id, files, properties));
        self.runtime
            .deploy(
                &manifest.to_vec(),
                &self.dir.path().join("payloads"),
                AdmitOptions::default(),
            )
            .await
            .unwrap()
            .finish()
            .await
            .unwrap()
    }

    async fn resume(&self) -> Option<Report> {
        match self.runtime.resume().unwrap() {
            Some(run) => Some(run.finish().await.unwrap()),
            None => None,
        }
    }
}

fn image() -> Vec<u8> {
    b"HANDRAIL-IMAGE-2.0 ".repeat(100)
}

fn ran(report: &Report) -> Vec<(Action, i32)> {
    report.steps[0]
        .actions
        .iter()
        .map(|a| (a.action, a.result.result_code))
        .collect()
}

/// What a step that is not installed runs, every action succeeding, apply answering
/// `apply`.
fn installed_through(apply: i32) -> [(Action, i32); 6] {
    [
        (Action::IsInstalled, codes::IS_INSTALLED_NOT_INSTALLED),
        (Action::Download, codes::DOWNLOAD_SUCCESS),
        (Action::IsInstalled, codes::IS_INSTALLED_NOT_INSTALLED),
        (Action::Backup, codes::BACKUP_SUCCESS),
        (Action::Install, codes::INSTALL_SUCCESS),
        (Action::Apply, apply),
    ]
}

/// Checks that swupdate wrote the image into slot b, and nothing past it.
fn assert_image_in_slot_b(fx: &Fixture) {
    let image = image();
    let b = fs::read(fx.device.slot("b")).unwrap();
    assert_eq!(
        &b[..image.len()],
        &image[..],
        "the image is in the inactive slot b"
    );
    assert!(b[image.len()..].iter().all(|x| *x == 0));
}

/// Installs 2.0 into slot b and stops for the reboot; checks where the bytes went.
async fn install_and_switch(fx: &mut Fixture) {
    install_and_switch_with(fx, json!({"swuFileName": "update-2.0.swu"})).await;
}

/// [`install_and_switch`] with the step's `properties`.
async fn install_and_switch_with(fx: &mut Fixture, properties: Value) {
    fx.swu("update-2.0.swu", "2.0", &image(), HWREVISION);
    let report = fx.deploy("2.0", properties, &["update-2.0.swu"]).await;
    assert_eq!(report.status, DeploymentStatus::Suspended, "{report:#?}");
    assert_eq!(
        ran(&report),
        installed_through(codes::APPLY_REQUIRED_IMMEDIATE_REBOOT)
    );
    assert_image_in_slot_b(fx);
    let a = fs::read(fx.device.slot("a")).unwrap();
    assert!(
        a.iter().all(|x| *x == OLD_BYTE),
        "the running slot a is untouched"
    );
    assert_eq!(fx.device.env("boot_slot").as_deref(), Some("b"));
    assert_eq!(fx.device.env("upgrade_available").as_deref(), Some("1"));
    assert_eq!(fx.device.env("ustate").as_deref(), Some("1"));
}

/// A fixture whose update is installed and switched to; `None` where swupdate cannot
/// run here.
async fn switched() -> Option<Fixture> {
    if !can_run() {
        return None;
    }
    let mut fx = Fixture::new();
    install_and_switch(&mut fx).await;
    Some(fx)
}

#[tokio::test]
async fn installs_into_the_inactive_slot_switches_and_verifies_after_the_reboot() {
    let Some(mut fx) = switched().await else {
        return;
    };

    // The device reboots into slot b, which runs 2.0.
    fx.device.boot("b", "2.0");
    let resumed = fx.resume().await.expect("the suspended deployment");
    assert_eq!(resumed.status, DeploymentStatus::Succeeded, "{resumed:#?}");
    // Success is reported only after the engine's is-installed saw 2.0 running on b.
    let verified = resumed.steps[0].actions.last().unwrap();
    assert_eq!(
        (verified.action, verified.result.result_code),
        (Action::IsInstalled, 900)
    );
    // Is-installed is the verification: it confirms the update and answers 900.
    let again = fx
        .deploy(
            "2.0",
            json!({"swuFileName": "update-2.0.swu"}),
            &["update-2.0.swu"],
        )
        .await;
    assert_eq!(again.status, DeploymentStatus::Succeeded, "{again:#?}");
    assert_eq!(again.steps[0].outcome, StepOutcome::AlreadyInstalled);
    assert_eq!(fx.device.env("boot_slot").as_deref(), Some("b"));
    assert_eq!(fx.device.env("upgrade_available").as_deref(), Some("0"));
    assert_eq!(fx.device.env("ustate").as_deref(), Some("0"));
    assert_eq!(fx.device.env("handrail_pending_version"), None);
}

#[tokio::test]
async fn a_fallback_to_the_old_slot_fails_after_the_reboot_and_rolls_back_once() {
    let Some(fx) = switched().await else {
        return;
    };

    // The new slot does not come up: the bootloader boots slot a again, still 1.0.
    fx.device.boot("a", "1.0");
    let resumed = fx.resume().await.expect("the suspended deployment");
    // The engine verifies on resume (is-installed after the reboot) and fails the step.
    let failed = resumed;
    assert_ne!(failed.status, DeploymentStatus::Succeeded, "{failed:#?}");
    let failure = failed.failure.clone().expect("the failure is reported");
    assert_eq!(failure.action, Action::IsInstalled, "{failed:#?}");
    assert_eq!(failure.extended_result_code, 0x3010_0018);
    assert!(
        failure.result_details.contains("came back on slot a"),
        "{}",
        failure.result_details
    );
    // Nothing is installed again after the failed verification (the engine's report
    // also holds the install from before the reboot).
    let actions = &failed.steps[0].actions;
    let verification = actions
        .iter()
        .rposition(|a| a.action == Action::IsInstalled && !a.result.is_success())
        .expect("the failed verification");
    assert!(
        !actions[verification..]
            .iter()
            .any(|a| a.action == Action::Install),
        "nothing is installed again: {failed:#?}"
    );
    assert_eq!(fx.device.env("boot_slot").as_deref(), Some("a"));
    assert_eq!(fx.device.env("upgrade_available").as_deref(), Some("0"));
    assert_eq!(fx.device.env("ustate").as_deref(), Some("3"));
    assert_eq!(fx.device.env("handrail_pending_version"), None);
    // No loop: nothing is left to resume, and the failure is not reported twice.
    assert!(fx.resume().await.is_none());
}

#[tokio::test]
async fn resumed_without_the_reboot_the_update_is_not_running_and_is_restored() {
    let Some(fx) = switched().await else {
        return;
    };

    // The agent resumes, but the device never rebooted: 1.0 still runs. Is-installed
    // cannot verify anything yet and says so (901) instead of judging the new slot; the
    // engine then fails the step as not running after its reboot, and restores it.
    let resumed = fx.resume().await.expect("the suspended deployment");
    assert_ne!(resumed.status, DeploymentStatus::Succeeded, "{resumed:#?}");
    let failure = resumed.failure.clone().expect("the failure is reported");
    assert_eq!(failure.extended_result_code, 0x3480_0022, "{resumed:#?}");
    let actions = &resumed.steps[0].actions;
    let verification = actions
        .iter()
        .rposition(|a| a.action == Action::IsInstalled)
        .expect("the verification");
    // The engine records the 901 as that failure, with the handler's account of why.
    let answer = &actions[verification].result;
    assert_eq!(answer.extended_result_code, 0x3480_0022);
    assert!(
        answer
            .result_details
            .contains("has not rebooted into it yet"),
        "{}",
        answer.result_details
    );
    assert_eq!(
        actions.last().map(|a| (a.action, a.result.result_code)),
        Some((Action::Restore, codes::RESTORE_SUCCESS))
    );
    // Restore put the boot slot back; the update is marked failed, not pending.
    assert_eq!(fx.device.env("boot_slot").as_deref(), Some("a"));
    assert_eq!(fx.device.env("upgrade_available").as_deref(), Some("0"));
    assert_eq!(fx.device.env("ustate").as_deref(), Some("3"));
    assert_eq!(fx.device.env("handrail_pending_version"), None);
    assert_eq!(fx.device.env("handrail_previous_version"), None);
    assert!(fx.resume().await.is_none());
}

#[tokio::test]
async fn swupdate_and_input_failures_have_their_own_codes() {
    if !can_run() {
        return;
    }
    let mut fx = Fixture::new();
    fx.swu("other-board.swu", "2.0", &image(), "handrail-test:9.9");
    let report = fx
        .deploy(
            "2.0",
            json!({"swuFileName": "other-board.swu"}),
            &["other-board.swu"],
        )
        .await;
    let failure = report.failure.expect("swupdate refuses the image");
    assert_eq!(failure.action, Action::Download);
    assert_eq!(failure.extended_result_code, 0x3010_1001, "swupdate exit 1");
    assert!(
        failure.result_details.contains("[ERROR]"),
        "{}",
        failure.result_details
    );
    assert!(
        fs::read(fx.device.slot("b"))
            .unwrap()
            .iter()
            .all(|x| *x == 0)
    );

    let report = fx
        .deploy(
            "2.0",
            json!({"swuFileName": "missing.swu"}),
            &["other-board.swu"],
        )
        .await;
    let failure = report.failure.expect("the missing file is reported");
    assert_eq!(failure.extended_result_code, 0x3010_0012);
    assert_eq!(fx.device.env("boot_slot").as_deref(), Some("a"));
}

#[tokio::test]
async fn v1_takes_the_steps_one_file_as_the_image_and_verifies_after_the_reboot() {
    if !can_run() {
        return;
    }
    let mut fx = Fixture::with(ID_V1);
    // ADU's :1 step: one payload file and no handler property but installedCriteria.
    install_and_switch_with(&mut fx, json!({})).await;
    fx.device.boot("b", "2.0");
    let resumed = fx.resume().await.expect("the suspended deployment");
    assert_eq!(resumed.status, DeploymentStatus::Succeeded, "{resumed:#?}");
    let verified = resumed.steps[0].actions.last().unwrap();
    assert_eq!(
        (verified.action, verified.result.result_code),
        (Action::IsInstalled, codes::IS_INSTALLED_INSTALLED)
    );
    assert_eq!(fx.device.env("upgrade_available").as_deref(), Some("0"));

    // Not exactly one payload file: refused before swupdate runs, with :1's own code
    // (a `swuFileName` naming one of them is not something :1 reads).
    fx.swu("other-2.1.swu", "2.1", &image(), HWREVISION);
    let report = fx
        .deploy(
            "2.1",
            json!({"swuFileName": "other-2.1.swu"}),
            &["update-2.0.swu", "other-2.1.swu"],
        )
        .await;
    let failure = report.failure.expect("two files are refused");
    assert_eq!(failure.action, Action::Download);
    assert_eq!(failure.extended_result_code, 0x3010_001d);
    assert!(
        failure.result_details.contains("exactly one payload file"),
        "{}",
        failure.result_details
    );
    assert_eq!(fx.device.env("boot_slot").as_deref(), Some("b"));
}

/// A swupdate wrapper script in the style of ADU's example swupdate script: it parses
/// the handler's arguments, does the action, writes the result file and exits 0. Each
/// run appends its arguments, joined by `|`, to `--argv-log`. `--fail-at <action>` with
/// `--fail-how` makes that action end without a result file (`exit-7-no-result`,
/// `exit-0-no-result`) or write a failure and exit 3 (`exit-3-with-result`);
/// `--cancel-answers` is what cancel answers (800 unless told).
const WRAPPER: &str = r#"#!/bin/bash
all_args=("$@")
action="" swu_file="" work_folder="" result_file="" installed_criteria=""
selection="" version_file="" argv_log="" fail_at="" fail_how="" cancel_answer=800
declare -a swupdate_opts=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --action) action="$2"; shift ;;
        --action-*) action="${1#--action-}" ;;
        --swu-file) swu_file="$2"; shift ;;
        --work-folder) work_folder="$2"; shift ;;
        --result-file) result_file="$2"; shift ;;
        --installed-criteria) installed_criteria="$2"; shift ;;
        --public-key-file) swupdate_opts+=(-k "$2"); shift ;;
        --hwrevision) swupdate_opts+=(-H "$2"); shift ;;
        --selection) selection="$2"; shift ;;
        --version-file) version_file="$2"; shift ;;
        --argv-log) argv_log="$2"; shift ;;
        --fail-at) fail_at="$2"; shift ;;
        --fail-how) fail_how="$2"; shift ;;
        --cancel-answers) cancel_answer="$2"; shift ;;
        --component) shift ;;
        *) echo "unknown argument: $1" >&2 ;;
    esac
    shift
done
if [[ -n $argv_log ]]; then
    (IFS='|'; echo "${all_args[*]}") >> "$argv_log"
fi

write_result() {
    local details=${3//\"/\'}
    printf '{"resultCode":%d,"extendedResultCode":%d,"resultDetails":"%s"}\n' "$1" "$2" "$details" > "$result_file"
}

if [[ $action == "$fail_at" ]]; then
    case "$fail_how" in
        exit-7-no-result) exit 7 ;;
        exit-0-no-result) exit 0 ;;
        exit-3-with-result) write_result 0 $((0x30100abc)) "the \"$action\" failed on purpose"; exit 3 ;;
    esac
fi

case "$action" in
    is-installed)
        running=$(<"$version_file")
        if [[ $running == "$installed_criteria" ]]; then
            write_result 900 0 "version $running is installed"
        else
            write_result 901 0 "version $running runs, not $installed_criteria"
        fi ;;
    download)
        if [[ -f $swu_file ]]; then
            write_result 500 0 "${swu_file##*/} is in the work folder"
        else
            write_result 0 $((0x30100abd)) "no $swu_file"
        fi ;;
    install)
        # swupdate keeps its sockets in TMPDIR; it now and then refuses a good image for
        # a fault of its own, or exits 1 after reporting success: as the handler does,
        # try again and take its own report.
        ok=0 rc=0
        for attempt in 1 2 3 4 5; do
            rm -rf "$work_folder/swupdate.tmp" && mkdir -p "$work_folder/swupdate.tmp"
            out=$(TMPDIR="$work_folder/swupdate.tmp" swupdate -v -i "$swu_file" -e "$selection" "${swupdate_opts[@]}" 2>&1)
            rc=$?
            if [[ $rc -eq 0 || ( $out == *"SWUpdate was successful"* && $out != *"[ERROR]"* ) ]]; then
                ok=1
                break
            fi
            echo "swupdate run $attempt exited $rc: $out" >&2
        done
        rm -rf "$work_folder/swupdate.tmp"
        if (( ok )); then
            write_result 600 0 "swupdate installed ${swu_file##*/}"
        else
            write_result 0 $((0x30100300 + rc)) "swupdate exited $rc"
        fi ;;
    apply)
        echo "$installed_criteria" > "$version_file"
        write_result 700 0 "now running $installed_criteria" ;;
    cancel)
        write_result "$cancel_answer" 0 "the update is cancelled" ;;
    *)
        write_result 0 $((0x30100abe)) "unknown action $action" ;;
esac
exit 0
"#;

impl Fixture {
    /// Writes [`WRAPPER`] as the payload file `install.sh`; returns the file its runs
    /// log their arguments to.
    fn wrapper(&self) -> PathBuf {
        fs::write(self.dir.path().join("payloads/install.sh"), WRAPPER).unwrap();
        // In the device's folder, which the registration lets its programs write.
        self.device.dir.join("argv.log")
    }

    /// The properties of a script-driven step of `install.sh` and `update-2.0.swu`,
    /// with `more` after the wrapper's own arguments.
    fn scripted(&self, log: &Path, more: &str) -> Value {
        json!({
            "scriptFileName": "install.sh",
            "swuFileName": "update-2.0.swu",
            "arguments": format!(
                "--version-file {} --argv-log {} --selection stable,copy2 --component ${{du_component_name}} {more}",
                self.device.version_file().display(),
                log.display()
            ),
        })
    }
}

/// Every run the wrapper logged: its arguments.
fn logged_runs(log: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

/// The action a logged run was given.
fn logged_action(run: &[String]) -> String {
    match run.first().map(String::as_str) {
        Some("--action") => run[1].clone(),
        Some(first) => first.trim_start_matches("--action-").to_owned(),
        None => String::new(),
    }
}

#[tokio::test]
async fn a_step_naming_a_script_has_the_script_drive_swupdate_as_adu_does() {
    if !can_run() {
        return;
    }
    let mut fx = Fixture::new();
    fx.swu("update-2.0.swu", "2.0", &image(), HWREVISION);
    let log = fx.wrapper();
    let properties = fx.scripted(&log, "");
    let report = fx
        .deploy("2.0", properties.clone(), &["install.sh", "update-2.0.swu"])
        .await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    assert_eq!(ran(&report), installed_through(codes::APPLY_SUCCESS));
    // swupdate, run by the script, wrote the image where the selection the step's
    // arguments gave says (slot b); the built-in flow's boot environment is untouched.
    assert_image_in_slot_b(&fx);
    assert_eq!(fx.device.env("boot_slot").as_deref(), Some("a"));
    assert_eq!(fx.device.env("upgrade_available").as_deref(), Some("0"));

    // The script ran for is-installed and download, then is-installed again, install
    // and apply (backup runs nothing), each with ADU's command line.
    let runs = logged_runs(&log);
    assert_eq!(
        runs.iter().map(|r| logged_action(r)).collect::<Vec<_>>(),
        [
            "is-installed",
            "download",
            "is-installed",
            "install",
            "apply"
        ]
    );
    let install = &runs[3];
    let at = |flag: &str| {
        let i = install.iter().position(|a| a == flag).expect(flag);
        install[i + 1].clone()
    };
    let work = at("--work-folder");
    let result = at("--result-file");
    assert!(
        result.starts_with(&format!("{work}/")),
        "{result} in {work}"
    );
    let keys = fx.dir.path().join("keys");
    let want = [
        "--action-install".to_owned(),
        "--swu-file".to_owned(),
        format!("{work}/update-2.0.swu"),
        // The registration's script_arguments, sorted by name.
        "--hwrevision".to_owned(),
        HWREVISION.to_owned(),
        "--public-key-file".to_owned(),
        keys.join("cert.pem").display().to_string(),
        // The step's arguments, with the component placeholder (no component: n/a).
        "--version-file".to_owned(),
        fx.device.version_file().display().to_string(),
        "--argv-log".to_owned(),
        log.display().to_string(),
        "--selection".to_owned(),
        "stable,copy2".to_owned(),
        "--component".to_owned(),
        "n/a".to_owned(),
        "--work-folder".to_owned(),
        work.clone(),
        "--result-file".to_owned(),
        result.clone(),
        "--installed-criteria".to_owned(),
        "2.0".to_owned(),
    ];
    assert_eq!(install, &want);
    // Each action has its own result file (ADU's swupdate:2 names one for all).
    let download = &runs[1];
    let download_result =
        &download[download.iter().position(|a| a == "--result-file").unwrap() + 1];
    assert_ne!(download_result, &result);

    // The script's is-installed now sees 2.0: nothing runs again.
    let again = fx
        .deploy("2.0", properties, &["install.sh", "update-2.0.swu"])
        .await;
    assert_eq!(
        again.steps[0].outcome,
        StepOutcome::AlreadyInstalled,
        "{again:#?}"
    );
}

#[tokio::test]
async fn a_script_driven_step_fails_with_adus_codes() {
    if !can_run() {
        return;
    }
    let mut fx = Fixture::new();
    fx.swu("update-2.0.swu", "2.0", &image(), HWREVISION);
    let log = fx.wrapper();
    let both = ["install.sh", "update-2.0.swu"];

    // The step is checked, in ADU's order, before the script runs (by is-installed, the
    // first action that runs it).
    let scripted = |changes: Value| {
        let mut properties = fx.scripted(&log, "");
        for (key, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => properties.as_object_mut().unwrap().remove(key),
                v => properties
                    .as_object_mut()
                    .unwrap()
                    .insert(key.clone(), v.clone()),
            };
        }
        properties
    };
    let cases = [
        (
            scripted(json!({"scriptFileName": ""})),
            &both[..],
            0x3010_0007,
            "scriptFileName: empty",
        ),
        (
            scripted(json!({})),
            &both[..1],
            0x3010_0103,
            "at least two payload files",
        ),
        (
            scripted(json!({"scriptFileName": "other.sh"})),
            &both[..],
            0x3010_0107,
            "script file `other.sh`",
        ),
        (
            scripted(json!({"swuFileName": null})),
            &both[..],
            0x3010_0008,
            "swuFileName: missing",
        ),
        (
            scripted(json!({"swuFileName": "missing.swu"})),
            &both[..],
            0x3010_0012,
            "`missing.swu` is not one of",
        ),
    ];
    for (properties, files, code, said) in cases {
        let report = fx.deploy("2.0", properties, files).await;
        let failure = report.failure.expect("the bad step is reported");
        // Its failed is-installed counts as "not installed"; the download fails.
        assert_eq!(failure.action, Action::Download, "{said}");
        assert_eq!(
            failure.extended_result_code, code,
            "{said}: {}",
            failure.result_details
        );
        assert!(
            failure.result_details.contains(said),
            "{said}: {}",
            failure.result_details
        );
    }
    assert!(logged_runs(&log).is_empty(), "the script never ran");

    // How the script ends. apiVersion 1.1 passes the action as a value.
    let mut properties = fx.scripted(&log, "--fail-at download --fail-how exit-7-no-result");
    properties["apiVersion"] = json!("1.1");
    let failure = fx
        .deploy("2.0", properties, &both)
        .await
        .failure
        .expect("exit 7");
    assert_eq!(failure.action, Action::Download);
    assert_eq!(
        failure.extended_result_code, 0x3010_1007,
        "{}",
        failure.result_details
    );
    let runs = logged_runs(&log);
    assert_eq!(runs.last().unwrap()[..2], ["--action", "download"]);

    let properties = fx.scripted(&log, "--fail-at download --fail-how exit-0-no-result");
    let failure = fx
        .deploy("2.0", properties, &both)
        .await
        .failure
        .expect("exit 0");
    assert_eq!(failure.action, Action::Download);
    assert_eq!(
        failure.extended_result_code, 0x3010_0205,
        "{}",
        failure.result_details
    );

    // A result file overrides the exit code; the failed install is restored by the
    // script's cancel, which answers 800.
    let properties = fx.scripted(&log, "--fail-at install --fail-how exit-3-with-result");
    let report = fx.deploy("2.0", properties, &both).await;
    let failure = report.failure.clone().expect("the install fails");
    assert_eq!(failure.action, Action::Install);
    assert_eq!(
        failure.extended_result_code, 0x3010_0abc,
        "{}",
        failure.result_details
    );
    assert!(
        failure.result_details.contains("failed on purpose"),
        "{}",
        failure.result_details
    );
    let restore = report.steps[0].actions.last().unwrap();
    assert_eq!(
        (restore.action, restore.result.result_code),
        (Action::Restore, codes::RESTORE_SUCCESS),
        "{report:#?}"
    );
    assert_eq!(logged_action(logged_runs(&log).last().unwrap()), "cancel");

    // A cancel that does not answer 800 fails the restore with ADU's code.
    let properties = fx.scripted(
        &log,
        "--fail-at install --fail-how exit-3-with-result --cancel-answers 801",
    );
    let report = fx.deploy("2.0", properties, &both).await;
    let restore = report.steps[0].actions.last().unwrap();
    assert_eq!(restore.action, Action::Restore, "{report:#?}");
    assert_eq!(
        (
            restore.result.result_code,
            restore.result.extended_result_code
        ),
        (codes::FAILURE, 0x2000_0003),
        "{}",
        restore.result.result_details
    );
    assert!(
        restore.result.result_details.contains("answered 801"),
        "{}",
        restore.result.result_details
    );
    // Nothing here ran swupdate: slot b is as it was.
    assert!(
        fs::read(fx.device.slot("b"))
            .unwrap()
            .iter()
            .all(|x| *x == 0)
    );
}
