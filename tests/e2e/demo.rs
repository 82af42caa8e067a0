//! The README's main job: the demo update deploys with the built-in handlers — a script
//! check, a real apt install, a real swupdate install into the inactive slot of an A/B
//! device, camera firmware once per camera — stops for the reboot the swupdate step asks
//! for, is verified and finished by `handrail resume` once the device has rebooted into
//! the new slot, and a second deployment finds everything installed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Device, Run, sha256_base64};
use handrail_test_support::MachineLock;

/// Purges the demo's apt package when created and when dropped.
struct DemoPackage;

impl DemoPackage {
    fn purged() -> DemoPackage {
        Self::purge();
        DemoPackage
    }

    fn purge() {
        let _ = Command::new("dpkg")
            .args(["--purge", "handrail-demo-hello"])
            .output();
    }
}

impl Drop for DemoPackage {
    fn drop(&mut self) {
        Self::purge();
    }
}

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo");

/// Where the demo works; the test works under its own folder instead.
const DEMO_ROOT: &str = "/var/tmp/handrail-demo";

/// The demo's update image, and its file id in the demo manifest.
const SWU: &str = "demo-device-rootfs-2.0.swu";
const SWU_FILE_ID: &str = "f-rootfs";

/// Runs one of the demo's set-up scripts.
fn script(name: &str, args: &[&Path]) {
    let status = Command::new(Path::new(DEMO).join(name))
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{name} {args:?}: {status}");
}

/// Builds the demo's update image for the slots in `slots`, into `out`.
fn build_swu(slots: &Path, out: &Path) -> Vec<u8> {
    script("ab/make-swu.sh", &[slots, out]);
    fs::read(out).unwrap()
}

/// The planned steps in order.
const STEPS: [&str; 6] = [
    "step 0",
    "step 1",
    "step 2",
    "step 3 > contoso/virtual-camera/2.0 step 0 [front-camera]",
    "step 3 > contoso/virtual-camera/2.0 step 0 [rear-camera]",
    "step 4",
];

/// Each step's label and outcome.
fn outcomes(report: &serde_json::Value) -> Vec<(&str, &str)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["label"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect()
}

/// The value of `key` in the A/B device's boot environment.
fn boot_env(ab: &Path, key: &str) -> Option<String> {
    fs::read_to_string(ab.join("boot/bootenv"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

fn show(run: &Run) -> String {
    format!("{}\n{}", run.stdout(), run.stderr())
}

#[test]
fn the_demo_image_builds_reproducibly_to_the_manifests_hash() {
    // The demo builds its update image when it runs; the manifest carries the hash of
    // that build, so the build must give the same bytes every time.
    let tmp = tempfile::tempdir().unwrap();
    let slots = PathBuf::from(DEMO_ROOT).join("ab/slots");
    let first = build_swu(&slots, &tmp.path().join("first.swu"));
    let second = build_swu(&slots, &tmp.path().join("second.swu"));
    assert_eq!(first, second, "the build is reproducible");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(Path::new(DEMO).join("update.json")).unwrap()).unwrap();
    let entry = &manifest["files"][SWU_FILE_ID];
    assert_eq!(entry["fileName"], SWU);
    assert_eq!(entry["sizeInBytes"], first.len());
    assert_eq!(
        entry["hashes"]["sha256"],
        sha256_base64(&first),
        "run scripts/refresh-demo-hashes.py"
    );
}

#[test]
fn the_demo_deploys_reboots_resumes_and_is_idempotent() {
    // The demo runs apt and swupdate, which other test binaries run too.
    let _apt = MachineLock::apt();
    let _swupdate = MachineLock::swupdate();
    let device = Device::new();
    for entry in fs::read_dir(Path::new(DEMO).join("payloads")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), device.payloads.join(entry.file_name())).unwrap();
    }
    // The demo works under /var/tmp/handrail-demo; this test works under its own folder.
    // None of these files is covered by a hash (the child manifest, which is, names no
    // path); the update image is, and names its slots: it is built for this test's
    // slots, and the manifest given its hash.
    let root = device.tmp.path().join("demo");
    let relocate = |name: &str| {
        let text = fs::read_to_string(Path::new(DEMO).join(name)).unwrap();
        let path = device.tmp.path().join(name);
        let text = text.replace(DEMO_ROOT, root.to_str().unwrap());
        fs::write(&path, text).unwrap();
        path
    };
    let ab = root.join("ab");
    script("make-apt-repo.sh", &[&root.join("apt")]);
    script("ab/make-device.sh", &[&ab]);
    // The folder the script steps install into, as scripts/demo.sh makes it.
    fs::create_dir_all(root.join("device")).unwrap();
    let swu = build_swu(&ab.join("slots"), &device.payloads.join(SWU));
    let manifest = relocate("update.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    doc["files"][SWU_FILE_ID]["sizeInBytes"] = swu.len().into();
    doc["files"][SWU_FILE_ID]["hashes"]["sha256"] = sha256_base64(&swu).into();
    fs::write(&manifest, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let components = relocate("components.json");
    let config = relocate("config.toml");
    // The demo installs a real package; it is removed before and after the test.
    let _package = DemoPackage::purged();
    let global = [
        "--json",
        "--components",
        components.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    let with = |args: &[&str]| -> Vec<String> {
        global.iter().chain(args).map(|s| s.to_string()).collect()
    };
    let run =
        |args: &[String]| device.run_strict(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let deploy = with(&[
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);

    // The deployment runs up to the swupdate step, which installs into slot b, switches
    // the boot slot and asks for an immediate reboot: exit code 3.
    let first = run(&deploy);
    assert_eq!(first.code(), Some(3), "{}", show(&first));
    let report = first.last_json();
    assert_eq!(report["status"], "suspended", "{report}");
    // The script and apt steps ran; nothing after the swupdate step has run yet.
    let seen = outcomes(&report);
    assert_eq!(seen.iter().map(|(l, _)| *l).collect::<Vec<_>>(), STEPS);
    assert_eq!(
        &seen[..2],
        [(STEPS[0], "succeeded"), (STEPS[1], "succeeded")]
    );
    assert!(seen[3..].iter().all(|(_, o)| *o == "pending"), "{report}");
    let slot_b = fs::read(ab.join("slots/slot-b.img")).unwrap();
    assert!(
        slot_b.starts_with(b"HANDRAIL-DEMO-ROOTFS version=2.0\n"),
        "swupdate wrote the image into the inactive slot b"
    );
    let slot_a = fs::read(ab.join("slots/slot-a.img")).unwrap();
    assert!(slot_a.starts_with(b"HANDRAIL-DEMO-ROOTFS version=1.0\n"));
    assert_eq!(boot_env(&ab, "boot_slot").as_deref(), Some("b"));
    assert_eq!(boot_env(&ab, "upgrade_available").as_deref(), Some("1"));
    assert_eq!(
        fs::read_to_string(ab.join("running/sw-version")).unwrap(),
        "1.0\n",
        "still running 1.0 until the reboot"
    );
    assert_eq!(
        fs::read_to_string("/usr/share/handrail-demo/hello.txt").unwrap(),
        "hello from the handrail demo\n",
        "the apt step installed the demo package for real"
    );
    assert!(
        !root.join("device/cameras/front").exists(),
        "nothing after the swupdate step ran before the reboot"
    );

    // The reboot: the demo's bootloader boots slot b, which runs 2.0; resume verifies it
    // and carries on with the steps after it.
    script("ab/reboot.sh", &[&ab]);
    assert_eq!(
        fs::read_to_string(ab.join("running/sw-version")).unwrap(),
        "2.0\n"
    );
    let resumed = run(&with(&["resume"]));
    assert_eq!(resumed.code(), Some(0), "{}", show(&resumed));
    let report = resumed.last_json();
    assert_eq!(report["status"], "succeeded", "{report}");
    let seen = outcomes(&report);
    assert_eq!(seen.iter().map(|(l, _)| *l).collect::<Vec<_>>(), STEPS);
    assert!(seen.iter().all(|(_, o)| *o == "succeeded"), "{report}");
    // The swupdate step succeeded only once is-installed, after the reboot, saw 2.0.
    let swupdate = &report["steps"][2];
    assert_eq!(swupdate["outcome"], "succeeded", "{swupdate}");
    let last = swupdate["actions"].as_array().unwrap().last().unwrap();
    assert_eq!(last["action"], "is-installed", "{swupdate}");
    assert_eq!(last["result"]["resultCode"], 900, "{swupdate}");
    assert_eq!(boot_env(&ab, "upgrade_available").as_deref(), Some("0"));
    assert_eq!(boot_env(&ab, "ustate").as_deref(), Some("0"));
    for camera in ["front", "rear"] {
        let slot = root.join("device/cameras").join(camera);
        assert!(slot.join("virtual-camera-2.0").exists(), "{camera} applied");
        assert_eq!(
            fs::read(slot.join("firmware.staged")).unwrap(),
            fs::read(Path::new(DEMO).join("payloads/camera-firmware-2.0.json")).unwrap()
        );
    }
    assert!(!root.join("device/cameras/microphone").exists());

    // The demo again, on a device set up by its set-up scripts again (which keep the
    // slots as they are): every step is installed, nothing runs, no reboot.
    script("ab/make-device.sh", &[&ab]);
    let again = run(&deploy);
    assert_eq!(again.code(), Some(0), "{}", show(&again));
    let report = again.last_json();
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "already-installed"),
        "{report}"
    );
    assert_eq!(boot_env(&ab, "boot_slot").as_deref(), Some("b"));
    assert_eq!(fs::read(ab.join("slots/slot-b.img")).unwrap(), slot_b);
}
