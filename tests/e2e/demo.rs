//! The README's main job: the demo update deploys with the built-in handlers, runs the
//! child update once per camera, and a second deployment finds everything installed.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::Device;

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

#[test]
fn the_demo_deploys_per_camera_and_is_idempotent() {
    let device = Device::new();
    for entry in fs::read_dir(Path::new(DEMO).join("payloads")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), device.payloads.join(entry.file_name())).unwrap();
    }
    // The demo works under /var/tmp/handrail-demo; this test works under its own folder.
    // None of these files is covered by a hash (the child manifest, which is, names no
    // path).
    let root = device.tmp.path().join("demo");
    let relocate = |name: &str| {
        let text = fs::read_to_string(Path::new(DEMO).join(name)).unwrap();
        let path = device.tmp.path().join(name);
        let text = text.replace("/var/tmp/handrail-demo", root.to_str().unwrap());
        fs::write(&path, text).unwrap();
        path
    };
    let manifest = relocate("update.json");
    let components = relocate("components.json");
    let config = relocate("config.toml");
    let repo = Command::new(Path::new(DEMO).join("make-apt-repo.sh"))
        .arg(root.join("apt"))
        .status()
        .unwrap();
    assert!(repo.success());
    // The demo installs a real package; it is removed before and after the test.
    let _package = DemoPackage::purged();
    let args = [
        "--json",
        "deploy",
        manifest.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
        "--components",
        components.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    let run = device.run_strict(&args);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    let report = run.last_json();
    let labels: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "step 0",
            "step 1",
            "step 2 > contoso/virtual-camera/2.0 step 0 [front-camera]",
            "step 2 > contoso/virtual-camera/2.0 step 0 [rear-camera]",
            "step 3"
        ]
    );
    for camera in ["front", "rear"] {
        let slot = root.join("device/cameras").join(camera);
        assert!(slot.join("virtual-camera-2.0").exists(), "{camera} applied");
        assert_eq!(
            fs::read(slot.join("firmware.staged")).unwrap(),
            fs::read(Path::new(DEMO).join("payloads/camera-firmware-2.0.json")).unwrap()
        );
    }
    assert!(!root.join("device/cameras/microphone").exists());
    assert_eq!(
        fs::read_to_string("/usr/share/handrail-demo/hello.txt").unwrap(),
        "hello from the handrail demo\n",
        "the apt step installed the demo package for real"
    );

    let again = device.run_strict(&args);
    assert_eq!(again.code(), Some(0), "{}", again.stderr());
    let report = again.last_json();
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "already-installed"),
        "{report}"
    );
}
