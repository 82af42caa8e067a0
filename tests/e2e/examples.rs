//! The reference examples end to end: `handrail deploy` of the parent update
//! `parent-reference-step.json`, whose child update `child-three-script-steps.json` runs
//! through the built-in WebAssembly script handler once per selected camera, with an
//! ADU-style script and firmware payload of our own.

mod common;

use std::fs;
use std::path::Path;

use common::Device;
use handrail_script_handler::SCRIPT_NOT_IN_PAYLOAD;
use serde_json::json;

const VALID: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../core/tests/manifests/valid");

/// The child manifest's name in the payload folder, as ADU delivers it.
const CHILD: &str = "contoso.virtual-camera.1.2.importmanifest.json";

/// The label of a child step run for a camera.
fn label(step: usize, camera: &str) -> String {
    format!("step 0 > contoso/virtual-camera/1.2 step {step} [{camera}]")
}

#[test]
fn the_parent_example_runs_the_child_per_camera_and_stops_at_the_missing_script_before_installing()
{
    let device = Device::new();
    fs::copy(
        Path::new(VALID).join("child-three-script-steps.json"),
        device.payloads.join(CHILD),
    )
    .unwrap();
    device.payload_fixture("contoso-camera-installscript.sh");
    device.payload_fixture("camera-firmware-1.1.json");
    // Each component's `path` property names the folder the script records its calls in.
    let folder = |name: &str| device.device.join(name);
    let components = device.manifest(
        "components.json",
        &json!({"components": [
            {"id": "cam-front", "name": "front-camera", "group": "cameras",
             "manufacturer": "contoso", "model": "virtual-camera",
             "properties": {"path": folder("front-camera")}},
            {"id": "cam-rear", "name": "rear-camera", "group": "cameras",
             "manufacturer": "contoso", "model": "virtual-camera",
             "properties": {"path": folder("rear-camera")}},
            {"id": "mic-0", "name": "microphone", "group": "audio",
             "manufacturer": "contoso", "model": "virtual-mic",
             "properties": {"path": folder("microphone")}},
        ]}),
    );
    let parent = Path::new(VALID).join("parent-reference-step.json");
    let run = device.run(&[
        "--json",
        "deploy",
        parent.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
        "--components",
        components.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), Some(1), "{}\n{}", run.stdout(), run.stderr());
    let report = run.last_json();
    assert_eq!(report["status"], "failed", "{report}");

    // Three child steps per camera, the microphone not among them.
    let steps = report["steps"].as_array().unwrap();
    let labels: Vec<&str> = steps.iter().map(|s| s["label"].as_str().unwrap()).collect();
    let planned: Vec<String> = ["front-camera", "rear-camera"]
        .iter()
        .flat_map(|camera| (0..3).map(move |step| label(step, camera)))
        .collect();
    assert_eq!(labels, planned);
    let outcomes: Vec<&str> = steps
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "pending", "failed", "pending", "pending", "pending", "pending"
        ]
    );

    // Step 1 names a script that is not in its payload: the first camera's run fails
    // there, in the download phase (its failed is-installed counts as "not installed",
    // as ADU's agent takes it), so nothing was installed.
    let failure = &report["failure"];
    assert_eq!(failure["step"], 1, "{failure}");
    assert_eq!(failure["label"], label(1, "front-camera"));
    assert_eq!(failure["action"], "download");
    assert_eq!(failure["resultCode"], 0);
    assert_eq!(
        failure["extendedResultCodeHex"],
        SCRIPT_NOT_IN_PAYLOAD.to_string()
    );
    let details = failure["resultDetails"].as_str().unwrap();
    assert!(
        details.contains("missing-contoso-camera-installscript.sh"),
        "{details}"
    );

    // Step 0 downloaded for the first camera, with its name, group and `path` substituted.
    let front = folder("front-camera");
    let calls = fs::read_to_string(front.join("calls.log")).unwrap();
    let calls: Vec<(&str, &str)> = calls.lines().map(|l| l.split_once('|').unwrap()).collect();
    let actions: Vec<&str> = calls.iter().map(|(action, _)| *action).collect();
    // As ADU's agent runs it: for download too, the action first, then the arguments.
    assert_eq!(actions, ["is-installed", "download"]);
    let substituted = format!(
        "--pre-install-sim-success --component-name front-camera --component-group cameras --component-prop path {} --work-folder ",
        front.display()
    );
    for (action, args) in &calls {
        let expected = format!("--action-{action} {substituted}");
        assert!(args.starts_with(&expected), "{action}: {args}");
        assert!(
            args.ends_with("--installed-criteria contoso-virtual-camera-1.2-step-0"),
            "{action}: {args}"
        );
    }
    assert!(!front.join("contoso-virtual-camera-1.2-step-0").exists());

    // The workflow stopped at the first failure: the second camera never ran, and the
    // microphone was never selected.
    assert!(!folder("rear-camera").exists());
    assert!(!folder("microphone").exists());
}
