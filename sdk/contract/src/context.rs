//! The step context: everything a handler is told about the step it runs.

use serde::{Deserialize, Serialize};

/// An update's identity: `provider/name/version`.
///
/// ```
/// use handrail_contract::UpdateId;
/// let id = UpdateId { provider: "contoso".into(), name: "cam".into(), version: "1.2".into() };
/// assert_eq!(id.to_string(), "contoso/cam/1.2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UpdateId {
    /// Who publishes the update.
    pub provider: String,
    /// The update's name.
    pub name: String,
    /// The update's version.
    pub version: String,
}

impl std::fmt::Display for UpdateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.provider, self.name, self.version)
    }
}

/// A payload file as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadFile {
    /// The file's name in the manifest (`fileName`).
    pub name: String,
    /// Where the handler opens it: a path inside its sandbox (read-only).
    pub path: String,
    /// Size in bytes, as verified against the manifest.
    pub size: u64,
}

/// A device component selected for a component-aware step, in ADU's component shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Unique id of the component on the device.
    pub id: String,
    /// Component name.
    pub name: String,
    /// Component group (e.g. `cameras`).
    #[serde(default)]
    pub group: String,
    /// Manufacturer.
    #[serde(default)]
    pub manufacturer: String,
    /// Model.
    #[serde(default)]
    pub model: String,
    /// Installed version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Free-form properties (strings).
    #[serde(default)]
    pub properties: serde_json::Map<String, serde_json::Value>,
}

impl Component {
    /// The named property as a string, if present (non-string values are rendered as JSON).
    ///
    /// ```
    /// use handrail_contract::Component;
    /// let mut c = Component::default();
    /// c.properties.insert("path".into(), "/dev/cam0".into());
    /// assert_eq!(c.property("path").as_deref(), Some("/dev/cam0"));
    /// assert_eq!(c.property("missing"), None);
    /// ```
    pub fn property(&self, name: &str) -> Option<String> {
        self.properties.get(name).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// True when the component has every field of `selector` (one map of an update's
    /// `compatibility`): `id`, `name`, `group`, `manufacturer`, `model` and `version`
    /// name the component's own fields, any other key one of its properties. An empty
    /// selector matches nothing.
    ///
    /// ```
    /// use handrail_contract::Component;
    /// let cam = Component { id: "c0".into(), group: "cameras".into(), ..Default::default() };
    /// let sel = [("group".to_string(), "cameras".to_string())].into_iter().collect();
    /// assert!(cam.matches(&sel));
    /// ```
    pub fn matches(&self, selector: &std::collections::BTreeMap<String, String>) -> bool {
        !selector.is_empty()
            && selector.iter().all(|(k, v)| {
                let have = match k.as_str() {
                    "id" => Some(self.id.clone()),
                    "name" => Some(self.name.clone()),
                    "group" => Some(self.group.clone()),
                    "manufacturer" => Some(self.manufacturer.clone()),
                    "model" => Some(self.model.clone()),
                    "version" => self.version.clone(),
                    other => self.property(other),
                };
                have.as_deref() == Some(v.as_str())
            })
    }
}

/// Everything a handler is told about the step one of its actions belongs to.
///
/// The same context reaches WebAssembly handlers (as the WIT `step-context` record) and
/// native handlers (as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepContext {
    /// The deployment's workflow id.
    pub workflow_id: String,
    /// The update the step belongs to (the child's id for steps of a child update).
    pub update_id: UpdateId,
    /// The step's index in its own update's `instructions.steps`.
    pub step_index: u32,
    /// 0 for the top update's steps, 1 for steps of a referenced child update.
    pub level: u8,
    /// The handler id named by the step (`vendor/name:major`).
    pub handler_id: String,
    /// The step's `handlerProperties` object.
    pub handler_properties: serde_json::Map<String, serde_json::Value>,
    /// The device owner's settings for this handler: the `[config]` table of its
    /// registration (empty when there is none). Unlike `handler_properties`, which come
    /// with the update, these are local to the device.
    #[serde(default)]
    pub handler_config: serde_json::Map<String, serde_json::Value>,
    /// The step's payload files, in the order the step lists them.
    pub files: Vec<PayloadFile>,
    /// The action's private work folder (read-write), as the handler sees it.
    pub work_folder: String,
    /// Where the handler writes its result JSON, as the handler sees it.
    pub result_file: String,
    /// The step's installed criteria, when set.
    pub installed_criteria: Option<String>,
    /// The component this run of the step is for (component-aware child steps only).
    pub component: Option<Component>,
}

impl StepContext {
    /// The payload file with the given manifest name.
    pub fn file(&self, name: &str) -> Option<&PayloadFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// A string handler property, if present and a string.
    pub fn property_str(&self, name: &str) -> Option<&str> {
        self.handler_properties.get(name).and_then(|v| v.as_str())
    }
}
