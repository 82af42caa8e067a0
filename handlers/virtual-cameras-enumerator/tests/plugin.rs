//! The enumerator as the runtime runs it: the built component, loaded by the WASM host
//! with only the inventory folder granted.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use handrail::components::ComponentEnumerator;
use handrail::registry::{Capabilities, HandlerKind, Registration};
use handrail_example_handlers::VIRTUAL_CAMERAS_ENUMERATOR;
use handrail_test_support::registration;
use handrail_wasm_host::WasmHost;

fn enumerator(dir: &Path, read: &[&Path], cameras_dir: &Path) -> Registration {
    let artifact = dir.join("virtual-cameras-enumerator.wasm");
    fs::write(&artifact, VIRTUAL_CAMERAS_ENUMERATOR).unwrap();
    let mut config = serde_json::Map::new();
    config.insert(
        "cameras_dir".into(),
        cameras_dir.display().to_string().into(),
    );
    let capabilities = Capabilities {
        read: read.iter().map(|p| p.to_path_buf()).collect(),
        ..Capabilities::default()
    };
    Registration {
        config,
        ..registration(
            "contoso/virtual-cameras:1",
            HandlerKind::Wasm,
            &artifact,
            capabilities,
        )
    }
}

fn inventory(dir: &Path) -> std::path::PathBuf {
    let cameras = dir.join("inventory");
    fs::create_dir_all(&cameras).unwrap();
    for (file, json) in [
        (
            "front.json",
            r#"{"name": "front-camera", "manufacturer": "contoso", "model": "virtual-camera", "version": "1.0", "properties": {"path": "/cams/front"}}"#,
        ),
        (
            "rear.json",
            r#"{"name": "rear-camera", "manufacturer": "contoso", "model": "virtual-camera", "properties": {"path": "/cams/rear"}}"#,
        ),
        (
            "mic.json",
            r#"{"id": "mic-0", "name": "microphone", "group": "audio", "manufacturer": "contoso", "model": "virtual-mic"}"#,
        ),
    ] {
        fs::write(cameras.join(file), json).unwrap();
    }
    cameras
}

fn selector(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn lists_and_selects_the_cameras_of_the_granted_folder() {
    let dir = tempfile::tempdir().unwrap();
    let cameras = inventory(dir.path());
    let host = WasmHost::new(dir.path().join("cache")).unwrap();
    let enumerator = host
        .load_enumerator(&enumerator(dir.path(), &[&cameras], &cameras))
        .unwrap();

    let all = enumerator.all_components().unwrap();
    let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["front", "mic-0", "rear"]);
    assert_eq!(all[0].version.as_deref(), Some("1.0"));
    assert_eq!(all[0].property("path").as_deref(), Some("/cams/front"));

    let selected = enumerator
        .select(&[selector(&[("group", "cameras")])])
        .unwrap();
    let names: Vec<&str> = selected.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["front-camera", "rear-camera"]);
    // Two maps selecting the same camera give it once.
    let selected = enumerator
        .select(&[
            selector(&[("name", "rear-camera")]),
            selector(&[("model", "virtual-camera")]),
        ])
        .unwrap();
    let ids: Vec<&str> = selected.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["rear", "front"]);
    assert!(
        enumerator
            .select(&[selector(&[("group", "speakers")])])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn without_the_read_grant_the_folder_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let cameras = inventory(dir.path());
    let host = WasmHost::new(dir.path().join("cache")).unwrap();
    let enumerator = host
        .load_enumerator(&enumerator(dir.path(), &[], &cameras))
        .unwrap();
    let err = enumerator.all_components().unwrap_err();
    assert!(
        err.source_name.starts_with("contoso/virtual-cameras:1"),
        "{err}"
    );
    assert!(
        err.message
            .contains("it reported an error: cannot list the cameras' folder"),
        "{err}"
    );
}

#[test]
fn a_malformed_answer_is_refused_naming_the_component_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cameras = inventory(dir.path());
    // The plugin does not check that ids are unique; the host's validation does.
    fs::write(
        cameras.join("zoom.json"),
        r#"{"id": "front", "name": "zoom-camera"}"#,
    )
    .unwrap();
    let host = WasmHost::new(dir.path().join("cache")).unwrap();
    let enumerator = host
        .load_enumerator(&enumerator(dir.path(), &[&cameras], &cameras))
        .unwrap();
    let err = enumerator.all_components().unwrap_err().to_string();
    assert!(
        err.contains("components[3]: id `front` is used by an earlier component too"),
        "{err}"
    );
}

#[test]
fn a_step_handler_is_not_an_enumerator() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = dir.path().join("camera.wasm");
    fs::write(&artifact, handrail_example_handlers::VIRTUAL_CAMERA).unwrap();
    let mut reg = enumerator(dir.path(), &[], dir.path());
    reg.sha256 = handrail::registry::sha256_file(&artifact).unwrap();
    reg.artifact = artifact;
    let host = WasmHost::new(dir.path().join("cache")).unwrap();
    let err = host.load_enumerator(&reg).unwrap_err().to_string();
    assert!(err.contains("component-enumerator world"), "{err}");
}
