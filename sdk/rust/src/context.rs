//! The step context as the handler sees it: built from the WIT record, with typed access
//! to the step's handler properties.

use handrail_contract::{Action, Component, PayloadFile, StepContext, UpdateId};
use serde::de::DeserializeOwned;

use crate::bindings::handrail::handler::types as wit;

/// A handler property that is missing or does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    /// The property's name; empty when the problem concerns the whole object.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for PropertyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.is_empty() {
            write!(f, "handlerProperties: {}", self.reason)
        } else {
            write!(f, "handlerProperties.{}: {}", self.name, self.reason)
        }
    }
}

impl std::error::Error for PropertyError {}

/// Typed access to a [`StepContext`]'s handler properties and payload files.
///
/// ```
/// use handrail_sdk::{StepContext, StepContextExt};
/// # fn step() -> StepContext {
/// #     serde_json::from_value(serde_json::json!({
/// #         "workflowId": "w", "updateId": {"provider": "p", "name": "n", "version": "1"},
/// #         "stepIndex": 0, "level": 0, "handlerId": "contoso/x:1",
/// #         "handlerProperties": {"scriptFileName": "a.sh", "retries": 3},
/// #         "files": [{"name": "a.sh", "path": "/payload/a.sh", "size": 10}],
/// #         "workFolder": "/work", "resultFile": "/work/result.json",
/// #         "installedCriteria": null, "component": null
/// #     })).unwrap()
/// # }
/// #[derive(serde::Deserialize)]
/// #[serde(rename_all = "camelCase")]
/// struct Props { script_file_name: String, retries: Option<u32> }
///
/// let step = step();
/// let props: Props = step.properties().unwrap();
/// assert_eq!((props.script_file_name.as_str(), props.retries), ("a.sh", Some(3)));
/// assert_eq!(step.required_str("scriptFileName").unwrap(), "a.sh");
/// assert!(step.required_str("arguments").is_err());
/// assert_eq!(step.payload_path("a.sh"), Some("/payload/a.sh"));
/// ```
pub trait StepContextExt {
    /// The handler properties deserialised into `T` (e.g. a `#[derive(Deserialize)]`
    /// struct with `#[serde(rename_all = "camelCase")]`).
    fn properties<T: DeserializeOwned>(&self) -> Result<T, PropertyError>;

    /// A string property that must be present and non-empty.
    fn required_str(&self, name: &str) -> Result<&str, PropertyError>;

    /// Where the payload file with this manifest name is, inside the sandbox.
    fn payload_path(&self, name: &str) -> Option<&str>;
}

impl StepContextExt for StepContext {
    fn properties<T: DeserializeOwned>(&self) -> Result<T, PropertyError> {
        serde_json::from_value(serde_json::Value::Object(self.handler_properties.clone())).map_err(
            |e| PropertyError {
                name: String::new(),
                reason: e.to_string(),
            },
        )
    }

    fn required_str(&self, name: &str) -> Result<&str, PropertyError> {
        let error = |reason: &str| PropertyError {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        match self.handler_properties.get(name) {
            None => Err(error("missing")),
            Some(serde_json::Value::String(s)) if s.is_empty() => Err(error("empty")),
            Some(serde_json::Value::String(s)) => Ok(s),
            Some(_) => Err(error("not a string")),
        }
    }

    fn payload_path(&self, name: &str) -> Option<&str> {
        self.file(name).map(|f| f.path.as_str())
    }
}

/// A JSON object from the WIT record's `*-json` fields; anything else is an empty object
/// (the runtime always sends an object).
fn json_object(text: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The typed step context of a WIT `step-context` record.
pub(crate) fn from_wit(ctx: wit::StepContext) -> StepContext {
    StepContext {
        workflow_id: ctx.workflow_id,
        update_id: UpdateId {
            provider: ctx.update_id.provider,
            name: ctx.update_id.name,
            version: ctx.update_id.version,
        },
        step_index: ctx.step_index,
        level: ctx.level,
        handler_id: ctx.handler_id,
        handler_properties: json_object(&ctx.handler_properties_json),
        handler_config: json_object(&ctx.handler_config_json),
        files: ctx
            .files
            .into_iter()
            .map(|f| PayloadFile {
                name: f.name,
                path: f.path,
                size: f.size,
            })
            .collect(),
        work_folder: ctx.work_folder,
        result_file: ctx.result_file,
        installed_criteria: ctx.installed_criteria,
        component: ctx.component.map(|c| Component {
            id: c.id,
            name: c.name,
            group: c.group,
            manufacturer: c.manufacturer,
            model: c.model,
            version: c.version,
            properties: json_object(&c.properties_json),
        }),
    }
}

/// The WIT enum value of an action.
pub(crate) fn action_to_wit(action: Action) -> wit::Action {
    match action {
        Action::IsInstalled => wit::Action::IsInstalled,
        Action::Download => wit::Action::Download,
        Action::Backup => wit::Action::Backup,
        Action::Install => wit::Action::Install,
        Action::Apply => wit::Action::Apply,
        Action::Restore => wit::Action::Restore,
        Action::Cancel => wit::Action::Cancel,
    }
}
