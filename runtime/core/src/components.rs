//! Component enumeration: which device components a child update's steps run for.
//!
//! A component-aware child update (a reference step's target) runs each of its steps once
//! per selected component. Selection matches the child's `compatibility` property maps
//! against each component's `manufacturer`, `model`, `group`, `name`, `id` and
//! properties; a component matches when every key of one map equals its value.
//!
//! [`FileEnumerator`] reads a components file; component-enumerator plugins
//! (`wit/enumerator.wit`, loaded by the WASM host) implement the same trait. Both
//! answer with ADU's component JSON, checked by [`parse_components`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use handrail_contract::Component;

/// Lists the device's components.
pub trait ComponentEnumerator: Send + Sync {
    /// Every component the device has.
    fn all_components(&self) -> Result<Vec<Component>, EnumeratorError>;

    /// The components matching any of the compatibility maps, in enumeration order.
    fn select(
        &self,
        compatibility: &[BTreeMap<String, String>],
    ) -> Result<Vec<Component>, EnumeratorError> {
        Ok(self
            .all_components()?
            .into_iter()
            .filter(|c| compatibility.iter().any(|m| matches(c, m)))
            .collect())
    }
}

/// Error enumerating components.
#[derive(Debug, thiserror::Error)]
#[error("component enumerator ({source_name}): {message}")]
pub struct EnumeratorError {
    /// Where the components come from.
    pub source_name: String,
    /// What went wrong.
    pub message: String,
}

/// True when `component` has every property of `selector`.
///
/// ```
/// use handrail::components::matches;
/// use handrail_contract::Component;
/// let cam = Component { id: "c0".into(), name: "cam0".into(), group: "cameras".into(), ..Default::default() };
/// let sel = [("group".to_string(), "cameras".to_string())].into_iter().collect();
/// assert!(matches(&cam, &sel));
/// ```
pub fn matches(component: &Component, selector: &BTreeMap<String, String>) -> bool {
    component.matches(selector)
}

/// Reads components from a JSON file in ADU's shape: `{"components": [ … ]}`.
#[derive(Debug, Clone)]
pub struct FileEnumerator {
    path: PathBuf,
}

impl FileEnumerator {
    /// Enumerates the components listed in `path`.
    pub fn new(path: &Path) -> Self {
        FileEnumerator {
            path: path.to_owned(),
        }
    }
}

impl ComponentEnumerator for FileEnumerator {
    fn all_components(&self) -> Result<Vec<Component>, EnumeratorError> {
        let source = self.path.display().to_string();
        let bytes = std::fs::read(&self.path).map_err(|e| EnumeratorError {
            source_name: source.clone(),
            message: e.to_string(),
        })?;
        parse_components(&source, &bytes)
    }
}

/// Most bytes of component JSON accepted from an enumerator.
pub const MAX_COMPONENTS_JSON_BYTES: usize = 1024 * 1024;

/// Parses and validates ADU's component JSON, `{"components": [ … ]}`; `source_name`
/// names where it came from in errors.
///
/// Each component must be an object with non-empty string `id` and `name`, string
/// `group`, `manufacturer` and `model` when present, an optional string `version` and
/// an optional object `properties`; ids must be unique. The error names the component
/// (by index and id) and the field at fault.
///
/// ```
/// use handrail::components::parse_components;
/// let ok = parse_components("test", br#"{"components": [{"id": "c0", "name": "cam0"}]}"#).unwrap();
/// assert_eq!(ok[0].name, "cam0");
/// let err = parse_components("test", br#"{"components": [{"id": "c0"}]}"#).unwrap_err();
/// assert!(err.message.contains("components[0] (`c0`): `name`"), "{err}");
/// ```
pub fn parse_components(
    source_name: &str,
    bytes: &[u8],
) -> Result<Vec<Component>, EnumeratorError> {
    let err = |message: String| EnumeratorError {
        source_name: source_name.to_owned(),
        message,
    };
    if bytes.len() > MAX_COMPONENTS_JSON_BYTES {
        return Err(err(format!(
            "the component JSON is {} bytes; at most {MAX_COMPONENTS_JSON_BYTES} are accepted",
            bytes.len()
        )));
    }
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| err(format!("not JSON: {e}")))?;
    let Some(list) = document.get("components") else {
        return Err(err(
            "not a {\"components\": [...]} document: `components` is missing".into(),
        ));
    };
    let Some(list) = list.as_array() else {
        return Err(err("`components` is not an array".into()));
    };
    let mut components = Vec::with_capacity(list.len());
    let mut ids = std::collections::BTreeSet::new();
    for (i, value) in list.iter().enumerate() {
        let component = component_of(i, value).map_err(&err)?;
        if !ids.insert(component.id.clone()) {
            return Err(err(format!(
                "components[{i}]: id `{}` is used by an earlier component too",
                component.id
            )));
        }
        components.push(component);
    }
    Ok(components)
}

/// One validated entry of a `components` array.
fn component_of(i: usize, value: &serde_json::Value) -> Result<Component, String> {
    let Some(object) = value.as_object() else {
        return Err(format!("components[{i}] is not an object"));
    };
    let at = match object.get("id").and_then(|v| v.as_str()) {
        Some(id) => format!("components[{i}] (`{id}`)"),
        None => format!("components[{i}]"),
    };
    let text = |field: &str, required: bool| -> Result<Option<String>, String> {
        match object.get(field) {
            None | Some(serde_json::Value::Null) if !required => Ok(None),
            None | Some(serde_json::Value::Null) => Err(format!("{at}: `{field}` is missing")),
            Some(serde_json::Value::String(s)) if required && s.is_empty() => {
                Err(format!("{at}: `{field}` is empty"))
            }
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("{at}: `{field}` is not a string but {other}")),
        }
    };
    let properties = match object.get("properties") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map.clone(),
        Some(other) => return Err(format!("{at}: `properties` is not an object but {other}")),
    };
    Ok(Component {
        id: text("id", true)?.unwrap_or_default(),
        name: text("name", true)?.unwrap_or_default(),
        group: text("group", false)?.unwrap_or_default(),
        manufacturer: text("manufacturer", false)?.unwrap_or_default(),
        model: text("model", false)?.unwrap_or_default(),
        version: text("version", false)?,
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(json: &str) -> String {
        parse_components("test", json.as_bytes())
            .unwrap_err()
            .message
    }

    #[test]
    fn malformed_component_json_names_what_is_wrong() {
        assert!(error_of("[]").contains("`components` is missing"));
        assert!(error_of(r#"{"components": {}}"#).contains("not an array"));
        assert!(error_of(r#"{"components": [1]}"#).contains("components[0] is not an object"));
        assert!(
            error_of(r#"{"components": [{"name": "a"}]}"#)
                .contains("components[0]: `id` is missing")
        );
        assert!(error_of(r#"{"components": [{"id": "", "name": "a"}]}"#).contains("`id` is empty"));
        assert!(
            error_of(r#"{"components": [{"id": "c", "name": "a", "model": 3}]}"#)
                .contains("components[0] (`c`): `model` is not a string but 3")
        );
        assert!(
            error_of(r#"{"components": [{"id": "c", "name": "a", "properties": []}]}"#)
                .contains("`properties` is not an object")
        );
        assert!(
            error_of(r#"{"components": [{"id": "c", "name": "a"}, {"id": "c", "name": "b"}]}"#)
                .contains("components[1]: id `c` is used by an earlier component too")
        );
        assert!(error_of("{").starts_with("not JSON"));
    }

    #[test]
    fn selection_keeps_enumeration_order_and_any_map_matches() {
        let json = br#"{"components": [
            {"id": "a", "name": "cam-a", "group": "cameras", "properties": {"bay": "1"}},
            {"id": "m", "name": "mic", "group": "audio"},
            {"id": "b", "name": "cam-b", "group": "cameras", "version": "2"}
        ]}"#;
        let all = parse_components("test", json).unwrap();
        let selector = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let ids = |maps: &[BTreeMap<String, String>]| -> Vec<String> {
            all.iter()
                .filter(|c| maps.iter().any(|m| matches(c, m)))
                .map(|c| c.id.clone())
                .collect()
        };
        assert_eq!(ids(&[selector(&[("group", "cameras")])]), ["a", "b"]);
        assert_eq!(
            ids(&[selector(&[("bay", "1")]), selector(&[("version", "2")])]),
            ["a", "b"]
        );
        assert!(ids(&[selector(&[])]).is_empty());
        assert!(ids(&[selector(&[("group", "cameras"), ("name", "mic")])]).is_empty());
    }
}
