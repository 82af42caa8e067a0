//! Property tests: manifests survive the trip through JSON and an envelope unchanged, and a
//! plan expands every child update once per matching component, numbered in order.

mod common;

use std::fs;

use common::{Fixture, deploy};
use handrail::DeploymentStatus;
use handrail::manifest::{self, Step};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Names ADU allows in update ids: letters, digits, `.`, `-`.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.-]{0,15}"
}

/// A step's handler, criteria and (fileName) files.
fn step() -> impl Strategy<Value = (bool, String, Vec<String>)> {
    (
        any::<bool>(),
        "[ -~]{1,40}",
        prop::collection::vec("[a-z0-9][a-z0-9._-]{0,12}\\.bin", 0..3),
    )
}

fn manifest_json(
    provider: &str,
    update: &str,
    version: &str,
    steps: &[(bool, String, Vec<String>)],
) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|(apt, criteria, files)| {
            json!({
                "handler": if *apt { "microsoft/apt:1" } else { "microsoft/swupdate:1" },
                "files": files,
                "handlerProperties": {"installedCriteria": criteria},
            })
        })
        .collect();
    json!({
        "updateId": {"provider": provider, "name": update, "version": version},
        "compatibility": [{"manufacturer": "contoso", "model": "m"}],
        "instructions": {"steps": steps},
        "manifestVersion": "4.0",
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn manifests_round_trip_plain_and_in_an_envelope(
        provider in name(),
        update in name(),
        version in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}",
        steps in prop::collection::vec(step(), 1..6),
        pretty in any::<bool>(),
    ) {
        let value = manifest_json(&provider, &update, &version, &steps);
        let text = if pretty {
            serde_json::to_string_pretty(&value).unwrap()
        } else {
            value.to_string()
        };
        let m = manifest::parse_manifest(text.as_bytes()).unwrap();
        prop_assert_eq!(&m.update_id.provider, &provider);
        prop_assert_eq!(&m.update_id.name, &update);
        prop_assert_eq!(&m.update_id.version, &version);
        prop_assert_eq!(m.steps.len(), steps.len());
        for (parsed, (_, criteria, files)) in m.steps.iter().zip(&steps) {
            let Step::Inline(inline) = parsed else {
                return Err(TestCaseError::fail("inline step expected"));
            };
            prop_assert_eq!(inline.installed_criteria.as_deref(), Some(criteria.as_str()));
            prop_assert_eq!(&inline.files, files);
        }
        let envelope = json!({
            "workflow": {"action": 3, "id": "w"},
            "updateManifest": text,
        })
        .to_string();
        let document = manifest::parse_document(envelope.as_bytes()).unwrap();
        let carried = document.envelope().unwrap();
        prop_assert_eq!(&carried.manifest_json, &text);
        prop_assert_eq!(document.manifest(), &m);
    }
}

proptest! {
    // Each case is a whole deployment: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn child_updates_expand_once_per_matching_component_in_order(
        before in 0usize..3,
        child_steps in 1usize..4,
        cameras in 0usize..4,
        after in 0usize..2,
    ) {
        let fx = Fixture::new();
        let components: Vec<Value> = (0..cameras)
            .map(|i| json!({"id": format!("cam-{i}"), "name": format!("camera-{i}"),
                "group": "cameras", "manufacturer": "contoso", "model": "virtual-camera"}))
            .collect();
        fs::write(
            fx.state.parent().unwrap().join("components.json"),
            json!({"components": components}).to_string(),
        )
        .unwrap();
        let inline = |label: String| json!({
            "handler": "microsoft/apt:1", "files": [],
            "handlerProperties": {"installedCriteria": label},
        });
        let child = json!({
            "updateId": {"provider": "contoso", "name": "cam", "version": "1.0"},
            "isDeployable": false,
            "compatibility": [{"manufacturer": "contoso", "model": "virtual-camera"}],
            "instructions": {"steps": (0..child_steps).map(|i| inline(format!("child-{i}"))).collect::<Vec<_>>()},
            "manifestVersion": "4.0",
        });
        fs::write(fx.payloads.join("contoso.cam.1.0.importmanifest.json"), child.to_string()).unwrap();
        let mut steps: Vec<Value> = (0..before).map(|i| inline(format!("before-{i}"))).collect();
        steps.push(json!({"type": "reference",
            "updateId": {"provider": "contoso", "name": "cam", "version": "1.0"}}));
        steps.extend((0..after).map(|i| inline(format!("after-{i}"))));
        let parent = json!({
            "updateId": {"provider": "contoso", "name": "parent", "version": "1.0"},
            "isDeployable": true,
            "compatibility": [{"manufacturer": "contoso", "model": "e2e"}],
            "instructions": {"steps": steps},
            "manifestVersion": "4.0",
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let report = rt.block_on(async {
            deploy(&fx.runtime(), parent.to_string().as_bytes(), &fx.payloads).await
        });
        prop_assert_eq!(report.status, DeploymentStatus::Succeeded, "{:?}", report.error);
        let expected = before + child_steps * cameras.max(1) + after;
        prop_assert_eq!(report.steps.len(), expected);
        for (i, s) in report.steps.iter().enumerate() {
            prop_assert_eq!(s.number, i);
            let in_child = i >= before && i < before + child_steps * cameras.max(1);
            prop_assert_eq!(s.level, u8::from(in_child));
        }
    }
}
