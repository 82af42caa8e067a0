//! An example component-enumerator plugin (`wit/enumerator.wit`): the device's virtual
//! cameras, one JSON file per camera in a folder.
//!
//! The folder is named by the registration's `[config]` table, `cameras_dir`, and must
//! be granted to the plugin (`capabilities.read`):
//!
//! ```toml
//! id = "contoso/virtual-cameras:1"
//! kind = "wasm"
//! artifact = "virtual-cameras-enumerator.wasm"
//! sha256 = "…"
//!
//! [capabilities]
//! read = ["/var/lib/cameras/inventory"]
//!
//! [config]
//! cameras_dir = "/var/lib/cameras/inventory"
//! ```
//!
//! Each `*.json` file of the folder describes one camera in ADU's component shape
//! (`{"id", "name", "group", "manufacturer", "model", "version", "properties"}`); `id`
//! defaults to the file's name without `.json` and `group` to `cameras`. Files are read
//! in name order; a file that is not such an object makes the enumeration fail with the
//! file's name, so a broken inventory never silently drops a camera.

use std::path::Path;

use handrail_contract::Component;
use serde_json::{Map, Value};

/// The `[config]` key naming the cameras' folder.
pub const CAMERAS_DIR_KEY: &str = "cameras_dir";

/// Every camera described in the folder `config` names, in file-name order.
pub fn cameras(config: &Map<String, Value>) -> Result<Vec<Component>, String> {
    let dir = config
        .get(CAMERAS_DIR_KEY)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the registration's [config] has no `{CAMERAS_DIR_KEY}` string"))?;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list the cameras' folder {dir}: {e}"))?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.iter().map(|path| camera(path)).collect()
}

/// The camera one file describes.
fn camera(path: &Path) -> Result<Component, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut value: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let Some(object) = value.as_object_mut() else {
        return Err(format!("{} is not a JSON object", path.display()));
    };
    if !object.contains_key("id")
        && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
    {
        object.insert("id".into(), stem.into());
    }
    object
        .entry("group")
        .or_insert_with(|| Value::from("cameras"));
    serde_json::from_value(value)
        .map_err(|e| format!("{} is not a camera description: {e}", path.display()))
}

/// `{"components": [...]}` of `components`.
pub fn components_json(components: &[Component]) -> Result<String, String> {
    serde_json::to_string(&serde_json::json!({ "components": components }))
        .map_err(|e| format!("cannot encode the components: {e}"))
}

fn config_of(config_json: &str) -> Result<Map<String, Value>, String> {
    serde_json::from_str(config_json).map_err(|e| format!("config is not a JSON object: {e}"))
}

/// `get-all-components`.
pub fn get_all(config_json: &str) -> Result<String, String> {
    components_json(&cameras(&config_of(config_json)?)?)
}

/// `select-components`: the cameras matching every field of the selector.
pub fn select(config_json: &str, selector_json: &str) -> Result<String, String> {
    let selector: std::collections::BTreeMap<String, String> = serde_json::from_str(selector_json)
        .map_err(|e| format!("the selector is not an object of strings: {e}"))?;
    let selected: Vec<Component> = cameras(&config_of(config_json)?)?
        .into_iter()
        .filter(|c| c.matches(&selector))
        .collect();
    components_json(&selected)
}

#[cfg(target_arch = "wasm32")]
mod plugin {
    //! The component's export.
    wit_bindgen::generate!({
        path: "../../wit",
        world: "component-enumerator",
    });

    struct VirtualCameras;

    impl exports::handrail::handler::enumerator::Guest for VirtualCameras {
        fn get_all_components(config_json: String) -> Result<String, String> {
            super::get_all(&config_json)
        }

        fn select_components(config_json: String, selector_json: String) -> Result<String, String> {
            super::select(&config_json, &selector_json)
        }
    }

    export!(VirtualCameras);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cameras_come_from_the_folder_with_defaults_and_selection() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("front.json"),
            r#"{"name": "front-camera", "manufacturer": "contoso", "model": "virtual-camera", "properties": {"path": "/x"}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("mic.json"),
            r#"{"id": "mic-0", "name": "microphone", "group": "audio"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a camera").unwrap();
        let config = serde_json::json!({ CAMERAS_DIR_KEY: dir.path() }).to_string();
        let all: Value = serde_json::from_str(&get_all(&config).unwrap()).unwrap();
        let all = all["components"].as_array().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0]["id"], "front");
        assert_eq!(all[0]["group"], "cameras");
        let selected: Value =
            serde_json::from_str(&select(&config, r#"{"group": "cameras"}"#).unwrap()).unwrap();
        assert_eq!(selected["components"].as_array().unwrap().len(), 1);

        std::fs::write(dir.path().join("broken.json"), "[1]").unwrap();
        let err = get_all(&config).unwrap_err();
        assert!(err.contains("broken.json"), "{err}");
        assert!(get_all("{}").unwrap_err().contains(CAMERAS_DIR_KEY));
    }
}
