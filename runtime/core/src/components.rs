//! Component enumeration: which device components a child update's steps run for.
//!
//! A component-aware child update (a reference step's target) runs each of its steps once
//! per selected component. Selection matches the child's `compatibility` property maps
//! against each component's `manufacturer`, `model`, `group`, `name`, `id` and
//! properties; a component matches when every key of one map equals its value.

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
    !selector.is_empty()
        && selector.iter().all(|(k, v)| {
            let have = match k.as_str() {
                "id" => Some(component.id.clone()),
                "name" => Some(component.name.clone()),
                "group" => Some(component.group.clone()),
                "manufacturer" => Some(component.manufacturer.clone()),
                "model" => Some(component.model.clone()),
                "version" => component.version.clone(),
                other => component.property(other),
            };
            have.as_deref() == Some(v.as_str())
        })
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

#[derive(serde::Deserialize)]
struct ComponentsFile {
    components: Vec<Component>,
}

impl ComponentEnumerator for FileEnumerator {
    fn all_components(&self) -> Result<Vec<Component>, EnumeratorError> {
        let err = |message: String| EnumeratorError {
            source_name: self.path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(&self.path).map_err(|e| err(e.to_string()))?;
        let file: ComponentsFile = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("not a {{\"components\": [...]}} document: {e}")))?;
        Ok(file.components)
    }
}
