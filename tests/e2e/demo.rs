//! The README's main job: the demo update deploys with the built-in handlers, runs the
//! child update once per camera, and a second deployment finds everything installed.

mod common;

use std::fs;
use std::path::Path;

use common::Device;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/demo");

#[test]
fn the_demo_deploys_per_camera_and_is_idempotent() {
    let device = Device::new();
    let root = device.device.display().to_string();
    for entry in fs::read_dir(Path::new(DEMO).join("payloads")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), device.payloads.join(entry.file_name())).unwrap();
    }
    // The demo writes under /var/tmp/handrail-demo; this test writes under its own folder.
    // Neither file is covered by a hash (the child manifest, which is, names no path).
    let relocate = |name: &str| {
        let text = fs::read_to_string(Path::new(DEMO).join(name)).unwrap();
        let path = device.tmp.path().join(name);
        fs::write(&path, text.replace("/var/tmp/handrail-demo/device", &root)).unwrap();
        path
    };
    let manifest = relocate("update.json");
    let components = relocate("components.json");
    let config = Path::new(DEMO).join("config.toml");
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
            "step 1 > contoso/virtual-camera/2.0 step 0 [front-camera]",
            "step 1 > contoso/virtual-camera/2.0 step 0 [rear-camera]",
            "step 2"
        ]
    );
    for camera in ["front", "rear"] {
        let slot = device.device.join("cameras").join(camera);
        assert!(slot.join("virtual-camera-2.0").exists(), "{camera} applied");
        assert_eq!(
            fs::read(slot.join("firmware.staged")).unwrap(),
            fs::read(Path::new(DEMO).join("payloads/camera-firmware-2.0.json")).unwrap()
        );
    }
    assert!(!device.device.join("cameras/microphone").exists());

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
