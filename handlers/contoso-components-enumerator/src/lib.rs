//! An example component-enumerator plugin (`wit/enumerator.wit`) that behaves as Azure
//! Device Update's contoso component enumerator (the agent's
//! `contoso_component_enumerator` example): the device's components are listed in an
//! ADU-style `components-inventory.json`, and each one's current data (its firmware
//! version, say) is read from a data file in the component's own folder.
//!
//! ADU's enumerator reads a fixed file, [`ADU_INVENTORY_FILE`]; here the registration's
//! `[config]` names it (`inventory_file`, defaulting to ADU's location), and the plugin
//! must be granted the folders it reads:
//!
//! ```toml
//! id = "contoso/components:1"
//! kind = "wasm"
//! artifact = "contoso-components-enumerator.wasm"
//! sha256 = "…"
//!
//! [capabilities]
//! read = ["/usr/local/contoso-devices"]
//!
//! [config]
//! inventory_file = "/usr/local/contoso-devices/components-inventory.json"
//! ```
//!
//! The inventory is `{"components": [...]}` in ADU's component shape, as ADU writes it
//! (parson escapes `/` as `\/`; a leading UTF-8 BOM is skipped, as parson does):
//!
//! ```json
//! {"components": [
//!   {"id": "contoso-motor-serial-00000", "name": "left-motor", "group": "motors",
//!    "manufacturer": "contoso", "model": "virtual-motor",
//!    "properties": {"path": "\/usr\/local\/contoso-devices\/vacuum-1\/motors\/contoso-motor-serial-00000",
//!                   "firmwareDataFile": "firmware.json"}}
//! ]}
//! ```
//!
//! What each function answers, as ADU's enumerator does:
//!
//! - **All components**: every component of the inventory. One whose `properties` has
//!   the strings `path` and `firmwareDataFile` gets its data file `<path>/<firmwareDataFile>`
//!   read: when it cannot be read or is not JSON (the component is unplugged, say),
//!   `properties.status` is `"unknown"`; otherwise `properties.status` is `"ok"` and every
//!   top-level key of the file except `properties` (`version`, `description`, …) is copied
//!   onto the component, replacing a field of the same name.
//! - **Selection**: the components that have, for every key of the selector, a top-level
//!   string field exactly equal to the selector's value (case-sensitive; keys inside
//!   `properties` are not looked at; a selector value that is not a non-empty string
//!   never matches; an empty selector keeps every component).
//!
//! One difference: ADU's `SelectComponents` removes a component from its list once per
//! selector key the component fails, so with a selector of several keys it also drops
//! components that match (or reads a freed one). Here a component is kept or dropped
//! once, by all of the selector's keys.
//!
//! Errors name the file and field at fault: an unreadable or malformed inventory, a
//! `components` that is not an array, an entry that is not an object, an
//! `inventory_file` that is not a string. (A component's unreadable data file is not an
//! error: it is the `"unknown"` status.)

use std::path::Path;

use handrail_contract::json::kind;
use serde_json::{Map, Value};

/// The `[config]` key naming the components inventory.
pub const INVENTORY_FILE_KEY: &str = "inventory_file";

/// Where ADU's contoso enumerator reads its inventory (a fixed path there): the default
/// of [`INVENTORY_FILE_KEY`].
pub const ADU_INVENTORY_FILE: &str = "/usr/local/contoso-devices/components-inventory.json";

/// `properties.status` of a component whose data file was read.
pub const STATUS_OK: &str = "ok";

/// `properties.status` of a component whose data file cannot be read.
pub const STATUS_UNKNOWN: &str = "unknown";

/// The inventory file `config` (the registration's `[config]`) names, else ADU's.
///
/// ```
/// use handrail_contoso_components_enumerator::{ADU_INVENTORY_FILE, inventory_file};
/// let config = serde_json::Map::new();
/// assert_eq!(inventory_file(&config).unwrap(), ADU_INVENTORY_FILE);
/// ```
pub fn inventory_file(config: &Map<String, Value>) -> Result<&str, String> {
    match config.get(INVENTORY_FILE_KEY) {
        None => Ok(ADU_INVENTORY_FILE),
        Some(Value::String(path)) if !path.is_empty() => Ok(path),
        Some(other) => Err(format!(
            "the registration's [config] {INVENTORY_FILE_KEY}: expected the inventory file's path (a non-empty string), found {other}"
        )),
    }
}

/// Every component of the inventory at `inventory`, each with its data file's content
/// and `properties.status`, in inventory order.
pub fn all_components(inventory: &Path) -> Result<Vec<Value>, String> {
    let at = inventory.display();
    let text = std::fs::read(inventory)
        .map_err(|e| format!("cannot read the components inventory {at}: {e}"))?;
    let document =
        parse_json(&text).map_err(|e| format!("the components inventory {at} is not JSON: {e}"))?;
    let Value::Object(mut root) = document else {
        return Err(format!(
            "the components inventory {at} is not a {{\"components\": [...]}} object"
        ));
    };
    let components = match root.remove("components") {
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(format!(
                "the components inventory {at}: `components` is not an array (found {})",
                kind(&other)
            ));
        }
        None => {
            return Err(format!(
                "the components inventory {at}: `components` is missing"
            ));
        }
    };
    components
        .into_iter()
        .enumerate()
        .map(|(i, component)| match component {
            Value::Object(mut component) => {
                add_data_file(&mut component);
                Ok(Value::Object(component))
            }
            other => Err(format!(
                "the components inventory {at}: components[{i}] is not an object (found {})",
                kind(&other)
            )),
        })
        .collect()
}

/// Reads the component's data file, if its properties name one, into the component.
fn add_data_file(component: &mut Map<String, Value>) {
    let Some(Value::Object(properties)) = component.get("properties") else {
        return;
    };
    let (Some(Value::String(folder)), Some(Value::String(file))) =
        (properties.get("path"), properties.get("firmwareDataFile"))
    else {
        return;
    };
    // ADU joins the two with a `/`, whatever they hold.
    let data_file = format!("{folder}/{file}");
    let data = std::fs::read(&data_file)
        .ok()
        .and_then(|bytes| parse_json(&bytes).ok());
    let status = if data.is_some() {
        STATUS_OK
    } else {
        STATUS_UNKNOWN
    };
    if let Some(Value::Object(properties)) = component.get_mut("properties") {
        properties.insert("status".into(), status.into());
    }
    if let Some(Value::Object(data)) = data {
        for (key, value) in data {
            if key != "properties" {
                component.insert(key, value);
            }
        }
    }
}

/// True when `component` has, for every key of `selector`, a top-level string field
/// equal to the key's value (itself a non-empty string).
///
/// ```
/// use handrail_contoso_components_enumerator::matches;
/// let motor = serde_json::json!({"id": "m0", "name": "left-motor", "group": "motors"});
/// let selector = |s: serde_json::Value| s.as_object().unwrap().clone();
/// assert!(matches(&motor, &selector(serde_json::json!({"group": "motors"}))));
/// assert!(!matches(&motor, &selector(serde_json::json!({"group": "Motors"}))));
/// ```
pub fn matches(component: &Value, selector: &Map<String, Value>) -> bool {
    selector.iter().all(|(key, wanted)| match wanted {
        Value::String(wanted) if !key.is_empty() && !wanted.is_empty() => {
            component.get(key).and_then(Value::as_str) == Some(wanted.as_str())
        }
        _ => false,
    })
}

/// `{"components": [...]}` of `components`.
fn components_json(components: Vec<Value>) -> Result<String, String> {
    serde_json::to_string_pretty(&serde_json::json!({ "components": components }))
        .map_err(|e| format!("cannot encode the components: {e}"))
}

fn config_of(config_json: &str) -> Result<Map<String, Value>, String> {
    serde_json::from_str(config_json)
        .map_err(|e| format!("the registration's [config] is not a JSON object: {e}"))
}

/// `get-all-components`: every component of the inventory `config_json` names.
pub fn get_all(config_json: &str) -> Result<String, String> {
    let config = config_of(config_json)?;
    components_json(all_components(Path::new(inventory_file(&config)?))?)
}

/// `select-components`: the components of the inventory matching `selector_json` (see
/// [`matches`]).
pub fn select(config_json: &str, selector_json: &str) -> Result<String, String> {
    let config = config_of(config_json)?;
    let selector: Map<String, Value> = serde_json::from_str(selector_json)
        .map_err(|e| format!("the selector is not a JSON object: {e}"))?;
    let selected = all_components(Path::new(inventory_file(&config)?))?
        .into_iter()
        .filter(|c| matches(c, &selector))
        .collect();
    components_json(selected)
}

/// Parses JSON as ADU's parser does: one leading UTF-8 BOM is skipped.
fn parse_json(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
}

#[cfg(target_arch = "wasm32")]
mod plugin {
    //! The component's export.
    wit_bindgen::generate!({
        path: "../../wit",
        world: "component-enumerator",
    });

    struct ContosoComponents;

    impl exports::handrail::handler::enumerator::Guest for ContosoComponents {
        fn get_all_components(config_json: String) -> Result<String, String> {
            super::get_all(&config_json)
        }

        fn select_components(config_json: String, selector_json: String) -> Result<String, String> {
            super::select(&config_json, &selector_json)
        }
    }

    export!(ContosoComponents);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// An inventory in ADU's style (`\/` escapes) of five components: a motor with a
    /// readable data file, a camera whose data file is missing, a camera whose data file
    /// is not JSON, a firmware component with no `firmwareDataFile`, and a sensor with no
    /// properties at all. Returns the config naming it.
    fn device(dir: &Path) -> String {
        let folder = |name: &str| {
            let f = dir.join(name);
            fs::create_dir_all(&f).unwrap();
            f
        };
        fs::write(
            folder("motor-0").join("firmware.json"),
            "\u{feff}{\"version\": \"1.0\", \"description\": \"left motor\", \"properties\": {\"x\": 1}, \"name\": \"left-motor-fw\"}",
        )
        .unwrap();
        folder("camera-0");
        fs::write(folder("camera-1").join("firmware.json"), "{\"version\": ").unwrap();
        let escaped = |name: &str| dir.join(name).display().to_string().replace('/', "\\/");
        let inventory = format!(
            r#"{{
    "components": [
        {{"id": "motor-0", "name": "left-motor", "group": "motors", "manufacturer": "contoso", "model": "virtual-motor",
          "properties": {{"path": "{}", "firmwareDataFile": "firmware.json"}}}},
        {{"id": "camera-0", "name": "front-camera", "group": "cameras", "manufacturer": "contoso", "model": "virtual-camera",
          "properties": {{"path": "{}", "firmwareDataFile": "firmware.json"}}}},
        {{"id": "camera-1", "name": "rear-camera", "group": "cameras", "manufacturer": "contoso", "model": "virtual-camera",
          "properties": {{"path": "{}", "firmwareDataFile": "firmware.json"}}}},
        {{"id": "hostfw", "name": "hostfw", "group": "firmware", "properties": {{"path": "{}"}}}},
        {{"id": "sensor-0", "name": "dust-sensor", "group": "sensors"}}
    ]
}}"#,
            escaped("motor-0"),
            escaped("camera-0"),
            escaped("camera-1"),
            escaped("hostfw"),
        );
        let file = dir.join("components-inventory.json");
        fs::write(&file, inventory).unwrap();
        serde_json::json!({ INVENTORY_FILE_KEY: file }).to_string()
    }

    fn components(answer: &str) -> Vec<Value> {
        let answer: Value = serde_json::from_str(answer).unwrap();
        answer["components"].as_array().unwrap().clone()
    }

    fn ids(components: &[Value]) -> Vec<&str> {
        components
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect()
    }

    fn selected(config: &str, selector: Value) -> Vec<String> {
        let answer = select(config, &selector.to_string()).unwrap();
        ids(&components(&answer))
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn data_files_give_the_status_and_their_top_level_keys_but_properties() {
        let dir = tempfile::tempdir().unwrap();
        let config = device(dir.path());
        let all = components(&get_all(&config).unwrap());
        assert_eq!(
            ids(&all),
            ["motor-0", "camera-0", "camera-1", "hostfw", "sensor-0"]
        );

        // The `\/` escapes are read as `/`: the data file was found through the path.
        let motor = &all[0];
        assert_eq!(
            motor["properties"]["path"],
            dir.path().join("motor-0").display().to_string()
        );
        assert_eq!(motor["properties"]["status"], STATUS_OK);
        assert_eq!(motor["version"], "1.0");
        assert_eq!(motor["description"], "left motor");
        // A key of the data file replaces the inventory's; its `properties` is not copied.
        assert_eq!(motor["name"], "left-motor-fw");
        assert_eq!(motor["properties"].get("x"), None);
        assert_eq!(motor["properties"]["firmwareDataFile"], "firmware.json");

        // Missing, or not JSON: the component is there, its status unknown, no version.
        for camera in &all[1..3] {
            assert_eq!(camera["properties"]["status"], STATUS_UNKNOWN, "{camera}");
            assert_eq!(camera.get("version"), None, "{camera}");
        }
        // No data file named, or no properties: left as the inventory has them.
        assert_eq!(all[3]["properties"].get("status"), None);
        assert_eq!(all[4].get("properties"), None);
    }

    #[test]
    fn selection_keeps_components_whose_top_level_strings_equal_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let config = device(dir.path());
        assert_eq!(
            selected(&config, serde_json::json!({"group": "cameras"})),
            ["camera-0", "camera-1"]
        );
        // Case-sensitive.
        assert!(selected(&config, serde_json::json!({"group": "Cameras"})).is_empty());
        // A field read from the data file selects like the inventory's own.
        assert_eq!(
            selected(&config, serde_json::json!({"version": "1.0"})),
            ["motor-0"]
        );
        // Keys inside `properties` are not searched.
        assert!(selected(&config, serde_json::json!({"status": "ok"})).is_empty());
        assert!(
            selected(
                &config,
                serde_json::json!({"firmwareDataFile": "firmware.json"})
            )
            .is_empty()
        );
        // Values that are not non-empty strings never match.
        assert!(selected(&config, serde_json::json!({"group": ["motors"]})).is_empty());
        assert!(selected(&config, serde_json::json!({"model": ""})).is_empty());
        // An empty selector keeps every component, as ADU's does.
        assert_eq!(selected(&config, serde_json::json!({})).len(), 5);
    }

    #[test]
    fn a_component_failing_several_keys_is_dropped_once() {
        // ADU's SelectComponents removes the element at a failing component's index
        // once per key it fails: the firmware component and the sensor fail both keys
        // here, so ADU would also remove a neighbour (or read the freed component).
        let dir = tempfile::tempdir().unwrap();
        let config = device(dir.path());
        let selector = serde_json::json!({"group": "cameras", "manufacturer": "contoso"});
        assert_eq!(selected(&config, selector), ["camera-0", "camera-1"]);
        let selector = serde_json::json!({"group": "cameras", "name": "rear-camera"});
        assert_eq!(selected(&config, selector), ["camera-1"]);
    }

    #[test]
    fn bad_inventories_and_configs_are_errors_naming_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("components-inventory.json");
        let config = serde_json::json!({ INVENTORY_FILE_KEY: file }).to_string();
        let at = file.display().to_string();
        let error_for = |text: &str| {
            fs::write(&file, text).unwrap();
            get_all(&config).unwrap_err()
        };

        let missing = get_all(&config).unwrap_err();
        assert!(
            missing.starts_with(&format!("cannot read the components inventory {at}")),
            "{missing}"
        );
        for (text, expected) in [
            ("{\"components\": [", format!("{at} is not JSON")),
            (
                "[]",
                format!("{at} is not a {{\"components\": [...]}} object"),
            ),
            ("{}", format!("{at}: `components` is missing")),
            (
                "{\"components\": {}}",
                format!("{at}: `components` is not an array (found an object)"),
            ),
            (
                "{\"components\": [{\"id\": \"a\"}, 7]}",
                format!("{at}: components[1] is not an object (found a number)"),
            ),
        ] {
            let error = error_for(text);
            assert!(error.contains(&expected), "{text}: {error}");
        }

        let error = get_all(&serde_json::json!({ INVENTORY_FILE_KEY: 7 }).to_string()).unwrap_err();
        assert!(error.contains("[config] inventory_file"), "{error}");
        let error = get_all("[]").unwrap_err();
        assert!(error.contains("[config] is not a JSON object"), "{error}");
        fs::write(&file, "{\"components\": []}").unwrap();
        let error = select(&config, "[\"group\"]").unwrap_err();
        assert!(
            error.contains("the selector is not a JSON object"),
            "{error}"
        );
    }
}
