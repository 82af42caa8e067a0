//! The plan: the flat, numbered list of step runs a deployment executes.
//!
//! Admission turns a manifest (and its child manifests) into a [`Plan`]: inline steps of
//! the top update at level 0, each reference step expanded into the child update's steps
//! at level 1, once per selected component, in ADU's order (per component, per step).
//! The plan is written to the journal before anything runs and is all that `resume`
//! needs: it names every payload file by its staged host path.

use std::collections::BTreeMap;
use std::path::PathBuf;

use handrail_contract::{Component, PayloadFile, UpdateId};

use crate::config::FailurePolicy;
use serde::{Deserialize, Serialize};

/// One run of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    /// Position in the plan.
    pub number: usize,
    /// 0 for the top update's steps, 1 for a child update's.
    pub level: u8,
    /// For level 1: the index of the reference step in the top update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_step: Option<u32>,
    /// The update the step belongs to.
    pub update_id: UpdateId,
    /// Index in its update's `instructions.steps`.
    pub step_index: u32,
    /// Handler id.
    pub handler: String,
    /// The step's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Payload files with their staged host paths.
    pub files: Vec<PayloadFile>,
    /// `handlerProperties`.
    pub handler_properties: serde_json::Map<String, serde_json::Value>,
    /// Installed criteria.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_criteria: Option<String>,
    /// The component this run is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<Component>,
    /// Set when the step is planned but must not run (no matching component).
    #[serde(default)]
    pub no_matching_components: bool,
}

impl PlannedStep {
    /// A label for people: `step 1`, or `step 0 > contoso/cam/1.2 step 2 [cam-0]`.
    pub fn label(&self) -> String {
        let mut s = match self.parent_step {
            Some(p) => format!("step {p} > {} step {}", self.update_id, self.step_index),
            None => format!("step {}", self.step_index),
        };
        if let Some(c) = &self.component {
            s.push_str(&format!(" [{}]", c.name));
        }
        s
    }

    /// Folder name of the step's work folder inside the deployment folder.
    pub fn work_folder_name(&self) -> String {
        format!("step-{:04}", self.number)
    }
}

/// Everything a deployment will run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Deployment id.
    pub deployment: String,
    /// Workflow id handed to handlers.
    pub workflow_id: String,
    /// The top update.
    pub update_id: UpdateId,
    /// Where staged payloads and work folders live.
    pub deployment_dir: PathBuf,
    /// The step runs, in order.
    pub steps: Vec<PlannedStep>,
    /// What a failed step does to earlier ones.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// The envelope's `workflow.retryTimestamp`: a later envelope of the same workflow
    /// with another one asks for the deployment to run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_timestamp: Option<String>,
    /// What admission loaded for each handler the plan runs: a registration that is not
    /// the same when an action runs is named and not used (a plan journaled before pins
    /// has none, and is run as before).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handlers: BTreeMap<String, HandlerPin>,
}

/// A handler as admission loaded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerPin {
    /// The artifact's sha256, lowercase hex (empty for a handler linked into the
    /// program).
    pub sha256: String,
    /// The sha256 of the rest of the registration: kind, grants, limits and config.
    pub registration: String,
}

impl HandlerPin {
    /// The pin of a registration.
    pub fn of(registration: &crate::registry::Registration) -> HandlerPin {
        // The registration's own content, not where it was read from: a moved file
        // with the same content is the same handler.
        let rest = serde_json::json!({
            "kind": registration.kind,
            "capabilities": registration.capabilities,
            "limits": registration.limits,
            "config": registration.config,
        });
        HandlerPin {
            sha256: registration.sha256.clone(),
            registration: crate::registry::sha256_hex(rest.to_string().as_bytes()),
        }
    }

    /// What changed from this pin (admission's) to `now`, for people; `None` when
    /// nothing did.
    pub fn changed(&self, now: &HandlerPin) -> Option<String> {
        if self.sha256 != now.sha256 {
            Some(format!(
                "its artifact is not the one admission loaded (sha256 {} then, {} now)",
                self.sha256, now.sha256
            ))
        } else if self.registration != now.registration {
            Some("its grants, limits or config are not those admission loaded".to_owned())
        } else {
            None
        }
    }
}
