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
        });
        let Value::Object(config) = config else {
            unreachable!()
        };
        let builtin = handrail_builtin_handlers::builtin_handlers()
            .into_iter()
            .find(|h| h.id == id)
            .expect("the built-in swupdate handler");
        assert_eq!(builtin.capabilities.run, [PathBuf::from(SWUPDATE)]);
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
                    Capabilities {
                        write: vec![device.dir.clone()],
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
        [
            (Action::IsInstalled, codes::IS_INSTALLED_NOT_INSTALLED),
            (Action::Download, codes::DOWNLOAD_SUCCESS),
            (Action::IsInstalled, codes::IS_INSTALLED_NOT_INSTALLED),
            (Action::Backup, codes::BACKUP_SUCCESS),
            (Action::Install, codes::INSTALL_SUCCESS),
            (Action::Apply, codes::APPLY_REQUIRED_IMMEDIATE_REBOOT),
        ]
    );
    let image = image();
    let b = fs::read(fx.device.slot("b")).unwrap();
    assert_eq!(
        &b[..image.len()],
        &image[..],
        "the image is in the inactive slot b"
    );
    assert!(b[image.len()..].iter().all(|x| *x == 0));
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
    let report = fx
        .deploy(
            "2.0",
            json!({"swuFileName": "other-board.swu", "scriptFileName": "install.sh"}),
            &["other-board.swu"],
        )
        .await;
    assert_eq!(report.failure.unwrap().extended_result_code, 0x3010_001a);
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
