//! Component-aware deployment end to end: a parent update whose child update installs
//! camera firmware with `contoso/virtual-camera:1` (`handlers/virtual-camera`), on the
//! cameras the virtual-cameras enumerator plugin (`handlers/virtual-cameras-enumerator`)
//! lists from its inventory folder. Both plugins are registered the way a device owner
//! would: a registration file each, granting only the folders they need.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Device, sha256_base64};
use handrail::registry::sha256_hex;
use handrail_example_handlers::{VIRTUAL_CAMERA, VIRTUAL_CAMERAS_ENUMERATOR};
use serde_json::{Value, json};

/// The firmware the child update installs.
const FIRMWARE: &[u8] = b"virtual-camera firmware 2.0\n";

/// A device with three cameras in its inventory: two `contoso/virtual-camera` and one
/// `contoso/virtual-camera-pro`, each with its firmware folder holding firmware 1.0.
struct Cameras {
    device: Device,
    enumerator: PathBuf,
}

impl Cameras {
    fn new() -> Self {
        let device = Device::new();
        let plugins = device.tmp.path().join("plugins");
        let firmware_root = device.device.join("cameras");
        let inventory = device.device.join("inventory");
        for dir in [&plugins, &firmware_root, &inventory] {
            fs::create_dir_all(dir).unwrap();
        }
        for (id, name, model) in [
            ("cam-front", "front-camera", "virtual-camera"),
            ("cam-rear", "rear-camera", "virtual-camera"),
            ("cam-pro", "pro-camera", "virtual-camera-pro"),
        ] {
            let folder = firmware_root.join(name);
            fs::create_dir_all(&folder).unwrap();
            fs::write(folder.join("firmware.bin"), format!("{name} firmware 1.0")).unwrap();
            fs::write(folder.join("version"), "1.0\n").unwrap();
            let camera = json!({
                "id": id, "name": name, "manufacturer": "contoso", "model": model,
                "version": "1.0", "properties": {"path": folder},
            });
            fs::write(inventory.join(format!("{id}.json")), camera.to_string()).unwrap();
        }

        // The step handler may write the cameras' firmware folders, nothing else.
        let handlers = device.state.join("handlers");
        fs::create_dir_all(&handlers).unwrap();
        let camera_wasm = write_plugin(&plugins, "virtual-camera.wasm", VIRTUAL_CAMERA);
        fs::write(
            handlers.join("virtual-camera.toml"),
            format!(
                "id = \"contoso/virtual-camera:1\"\nkind = \"wasm\"\nartifact = {:?}\nsha256 = \"{}\"\n\n[capabilities]\nwrite = [{:?}]\n",
                camera_wasm,
                sha256_hex(VIRTUAL_CAMERA),
                firmware_root
            ),
        )
        .unwrap();
        // The enumerator may read its inventory, nothing else.
        let enumerator_wasm = write_plugin(
            &plugins,
            "virtual-cameras-enumerator.wasm",
            VIRTUAL_CAMERAS_ENUMERATOR,
        );
        let enumerator = plugins.join("virtual-cameras.toml");
        fs::write(
            &enumerator,
            format!(
                "id = \"contoso/virtual-cameras:1\"\nkind = \"wasm\"\nartifact = {:?}\nsha256 = \"{}\"\n\n[capabilities]\nread = [{:?}]\n\n[config]\ncameras_dir = {:?}\n",
                enumerator_wasm,
                sha256_hex(VIRTUAL_CAMERAS_ENUMERATOR),
                inventory,
                inventory
            ),
        )
        .unwrap();
        Cameras { device, enumerator }
    }

    fn folder(&self, camera: &str) -> PathBuf {
        self.device.device.join("cameras").join(camera)
    }

    /// `handrail --json deploy` of `manifest` with the enumerator plugin.
    fn deploy(&self, manifest: &Path) -> common::Run {
        self.device.run(&[
            "--json",
            "--enumerator",
            self.enumerator.to_str().unwrap(),
            "deploy",
            manifest.to_str().unwrap(),
            "--payloads",
            self.device.payloads.to_str().unwrap(),
        ])
    }

    /// Writes a payload file and returns its `files` entry.
    fn payload(&self, name: &str, bytes: &[u8]) -> Value {
        fs::write(self.device.payloads.join(name), bytes).unwrap();
        json!({
            "fileName": name,
            "sizeInBytes": bytes.len(),
            "hashes": {"sha256": sha256_base64(bytes)},
        })
    }

    /// A parent update with one reference step to a child update of `model` cameras
    /// installing firmware 2.0, and the child's payloads; returns the parent's path.
    fn parent_for(&self, model: &str) -> PathBuf {
        self.parent_with(model, ChildForm::Bare)
    }

    /// [`Cameras::parent_for`], the child manifest file in the form `child`.
    fn parent_with(&self, model: &str, child_form: ChildForm) -> PathBuf {
        let firmware = self.payload("camera-firmware-2.0.bin", FIRMWARE);
        let child = json!({
            "updateId": {"provider": "contoso", "name": model, "version": "2.0"},
            "isDeployable": false,
            "compatibility": [{"manufacturer": "contoso", "model": model}],
            "instructions": {"steps": [{
                "description": "Camera firmware 2.0",
                "handler": "contoso/virtual-camera:1",
                "files": ["f-fw"],
                "handlerProperties": {"installedCriteria": "2.0"},
            }]},
            "files": {"f-fw": firmware},
            "manifestVersion": "5.0",
            "createdDateTime": "2026-11-22T00:00:00Z",
        });
        let child_name = format!("contoso.{model}.2.0.json");
        let child_file = match child_form {
            ChildForm::Bare => serde_json::to_vec_pretty(&child).unwrap(),
            // As ADU's service delivers it: the manifest as a string, signed or not.
            ChildForm::Delivered => json!({"updateManifest": child.to_string()})
                .to_string()
                .into_bytes(),
        };
        let child_entry = self.payload(&child_name, &child_file);
        let parent = json!({
            "updateId": {"provider": "contoso", "name": "camera-rig", "version": "2.0"},
            "isDeployable": true,
            "compatibility": [{"manufacturer": "contoso", "model": "e2e"}],
            "instructions": {"steps": [{
                "type": "reference",
                "description": format!("firmware of every {model}"),
                "detachedManifestFileId": "f-child",
            }]},
            "files": {"f-child": child_entry},
            "manifestVersion": "5.0",
            "createdDateTime": "2026-11-22T00:00:00Z",
        });
        self.device.manifest(&format!("{model}-rig.json"), &parent)
    }
}

/// How a reference step's child manifest file is written.
#[derive(Clone, Copy)]
enum ChildForm {
    /// The manifest itself (an import manifest).
    Bare,
    /// `{"updateManifest": "<the manifest as a string>"}`, as ADU's service delivers it.
    Delivered,
}

fn write_plugin(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn steps(report: &Value) -> &Vec<Value> {
    report["steps"].as_array().unwrap()
}

#[test]
fn the_child_update_installs_firmware_on_each_matching_camera_and_only_there() {
    let cams = Cameras::new();
    let parent = cams.parent_for("virtual-camera");
    let run = cams.deploy(&parent);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    let report = run.last_json();
    let labels: Vec<&str> = steps(&report)
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "step 0 > contoso/virtual-camera/2.0 step 0 [front-camera]",
            "step 0 > contoso/virtual-camera/2.0 step 0 [rear-camera]",
        ]
    );
    for camera in ["front-camera", "rear-camera"] {
        let folder = cams.folder(camera);
        assert_eq!(fs::read(folder.join("firmware.bin")).unwrap(), FIRMWARE);
        assert_eq!(fs::read_to_string(folder.join("version")).unwrap(), "2.0\n");
        // Backup kept the firmware the camera ran before.
        assert_eq!(
            fs::read_to_string(folder.join(".backup/firmware.bin")).unwrap(),
            format!("{camera} firmware 1.0")
        );
    }
    let pro = cams.folder("pro-camera");
    assert_eq!(
        fs::read_to_string(pro.join("firmware.bin")).unwrap(),
        "pro-camera firmware 1.0"
    );
    assert_eq!(fs::read_to_string(pro.join("version")).unwrap(), "1.0\n");
    assert!(!pro.join(".backup").exists());

    // Each camera now reports firmware 2.0, so nothing runs again.
    let again = cams.deploy(&parent);
    assert_eq!(again.code(), Some(0), "{}", again.stderr());
    let report = again.last_json();
    assert!(
        steps(&report)
            .iter()
            .all(|s| s["outcome"] == "already-installed"),
        "{report}"
    );
}

#[test]
fn a_child_manifest_delivered_as_adus_service_writes_it_runs_like_the_bare_one() {
    let cams = Cameras::new();
    let parent = cams.parent_with("virtual-camera", ChildForm::Delivered);
    let run = cams.deploy(&parent);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    let report = run.last_json();
    assert_eq!(steps(&report).len(), 2, "{report}");
    for camera in ["front-camera", "rear-camera"] {
        let folder = cams.folder(camera);
        assert_eq!(fs::read(folder.join("firmware.bin")).unwrap(), FIRMWARE);
    }
}

#[test]
fn a_child_no_camera_matches_is_skipped_with_504_and_604() {
    let cams = Cameras::new();
    let run = cams.deploy(&cams.parent_for("virtual-speaker"));
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout(), run.stderr());
    let report = run.last_json();
    let steps = steps(&report);
    assert_eq!(steps.len(), 1, "{report}");
    assert_eq!(steps[0]["outcome"], "no-matching-components");
    let results: Vec<(&str, i64)> = steps[0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["result"]["resultCode"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(results, [("download", 504), ("install", 604)]);
    for camera in ["front-camera", "rear-camera", "pro-camera"] {
        assert_eq!(
            fs::read_to_string(cams.folder(camera).join("version")).unwrap(),
            "1.0\n"
        );
    }
}

#[test]
fn a_top_level_step_gets_no_component() {
    let cams = Cameras::new();
    let firmware = cams.payload("camera-firmware-2.0.bin", FIRMWARE);
    let manifest = cams.device.manifest(
        "inline.json",
        &json!({
            "updateId": {"provider": "contoso", "name": "camera-inline", "version": "2.0"},
            "isDeployable": true,
            "compatibility": [{"manufacturer": "contoso", "model": "e2e"}],
            "instructions": {"steps": [{
                "handler": "contoso/virtual-camera:1",
                "files": ["f-fw"],
                "handlerProperties": {"installedCriteria": "2.0"},
            }]},
            "files": {"f-fw": firmware},
            "manifestVersion": "5.0",
            "createdDateTime": "2026-11-22T00:00:00Z",
        }),
    );
    let run = cams.deploy(&manifest);
    assert_eq!(run.code(), Some(1), "{}\n{}", run.stdout(), run.stderr());
    let failure = &run.last_json()["failure"];
    // contoso/virtual-camera:1's NO_COMPONENT (facility 3, custom component 32, 0x10).
    assert_eq!(failure["extendedResultCodeHex"], "0x32000010", "{failure}");
    assert!(
        failure["resultDetails"]
            .as_str()
            .unwrap()
            .contains("component-aware"),
        "{failure}"
    );
}

#[test]
fn a_tampered_enumerator_is_refused_as_bad_input() {
    let cams = Cameras::new();
    let text = fs::read_to_string(&cams.enumerator).unwrap();
    // The artifact no longer matches its registration.
    let tampered = text.replace(&sha256_hex(VIRTUAL_CAMERAS_ENUMERATOR), &"0".repeat(64));
    fs::write(&cams.enumerator, tampered).unwrap();
    let run = cams.deploy(&cams.parent_for("virtual-camera"));
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    let said = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        said.contains("contoso/virtual-cameras:1") && said.contains("sha256"),
        "{said}"
    );
}
