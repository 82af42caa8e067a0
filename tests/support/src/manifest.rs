//! Update manifests (v5) as the runtime takes them, built step by step.
//!
//! ```
//! use handrail_test_support::manifest::{Update, inline_step};
//! let update = Update::new("contoso", "camera", "1.0")
//!     .compatible_with("contoso", "camera-device")
//!     .step(inline_step("microsoft/script:1", &["install.sh"], serde_json::json!({
//!         "scriptFileName": "install.sh",
//!         "installedCriteria": "camera-1.0",
//!     })));
//! assert_eq!(update.json()["instructions"]["steps"][0]["handler"], "microsoft/script:1");
//! assert!(!update.to_vec().is_empty());
//! ```

use serde_json::{Value, json};

/// An update manifest being built: `updateId`, `compatibility`, inline or reference
/// steps, payload files.
#[derive(Debug, Clone)]
pub struct Update {
    value: Value,
}

impl Update {
    /// A deployable v5 manifest of the update `provider/name/version` with no steps,
    /// compatible with the `du-device`/`e2e-test` device until told otherwise.
    pub fn new(provider: &str, name: &str, version: &str) -> Update {
        Update {
            value: json!({
                "updateId": {"provider": provider, "name": name, "version": version},
                "isDeployable": true,
                "compatibility": [{"manufacturer": "du-device", "model": "e2e-test"}],
                "instructions": {"steps": []},
                "manifestVersion": "5.0",
                "createdDateTime": "2026-11-22T00:00:00Z",
            }),
        }
    }

    /// Compatible with the device that says `manufacturer` and `model` (and only it).
    pub fn compatible_with(mut self, manufacturer: &str, model: &str) -> Update {
        self.value["compatibility"] = json!([{"manufacturer": manufacturer, "model": model}]);
        self
    }

    /// With `step` (see [`inline_step`]) after the steps it has.
    pub fn step(mut self, step: Value) -> Update {
        if let Some(steps) = self.value["instructions"]["steps"].as_array_mut() {
            steps.push(step);
        }
        self
    }

    /// With each of `steps` after the steps it has.
    pub fn steps(self, steps: impl IntoIterator<Item = Value>) -> Update {
        steps.into_iter().fold(self, Update::step)
    }

    /// With the payload file `id` named `file_name`, its size and sha256 (base64) given.
    pub fn file(mut self, id: &str, file_name: &str, size: u64, sha256_base64: &str) -> Update {
        if !self.value["files"].is_object() {
            self.value["files"] = json!({});
        }
        self.value["files"][id] = json!({
            "fileName": file_name,
            "sizeInBytes": size,
            "hashes": {"sha256": sha256_base64},
        });
        self
    }

    /// The manifest as JSON, to change what the builder does not cover.
    pub fn json(&self) -> &Value {
        &self.value
    }

    /// The manifest as JSON, to change in place.
    pub fn json_mut(&mut self) -> &mut Value {
        &mut self.value
    }

    /// The manifest's bytes, as a payload folder or the CLI takes them.
    pub fn to_vec(&self) -> Vec<u8> {
        self.value.to_string().into_bytes()
    }
}

/// An inline step of `handler` over the payload files `files` with `properties` as its
/// `handlerProperties`.
pub fn inline_step(handler: &str, files: &[&str], properties: Value) -> Value {
    json!({"handler": handler, "files": files, "handlerProperties": properties})
}
