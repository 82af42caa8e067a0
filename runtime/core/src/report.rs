//! What a deployment reports: per-step outcomes, the failure if any, the overall status.
//!
//! A [`Report`] is derived from the journal alone, so the report after a crash and
//! `resume` is built the same way as the report of an uninterrupted run.

use handrail_contract::codes::Interruption;
use handrail_contract::{Action, ResultFile};
use serde::{Deserialize, Serialize};

/// Overall status of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentStatus {
    /// Admitted and running (or interrupted by a crash: `resume` continues it).
    InProgress,
    /// Stopped for a reboot or agent restart; `resume` continues it.
    Suspended,
    /// Every step succeeded or was already installed.
    Succeeded,
    /// A step failed; the report's `failure` says which.
    Failed,
    /// Cancelled by the operator or the embedding agent.
    Cancelled,
    /// A step failed and every earlier step that backed up was restored.
    RolledBack,
    /// Ran past the deployment's time limit and was stopped.
    TimedOut,
    /// Refused at admission (invalid, incompatible, no room, pre-update hook); nothing ran.
    Rejected,
}

impl DeploymentStatus {
    /// True for the end states (succeeded, failed, cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Succeeded
                | DeploymentStatus::Failed
                | DeploymentStatus::Cancelled
                | DeploymentStatus::RolledBack
                | DeploymentStatus::TimedOut
                | DeploymentStatus::Rejected
        )
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeploymentStatus::InProgress => "in progress",
            DeploymentStatus::Suspended => "suspended",
            DeploymentStatus::Succeeded => "succeeded",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Cancelled => "cancelled",
            DeploymentStatus::RolledBack => "rolled back",
            DeploymentStatus::TimedOut => "timed out",
            DeploymentStatus::Rejected => "rejected",
        })
    }
}

/// How one planned step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// Not run yet.
    Pending,
    /// All of its actions succeeded.
    Succeeded,
    /// `is-installed` answered 900; nothing else ran.
    AlreadyInstalled,
    /// No device component matched the child update (ADU 504/604).
    NoMatchingComponents,
    /// An action failed (after restore, when the handler backed up).
    Failed,
    /// Cancelled while it ran.
    Cancelled,
    /// Succeeded, then restored because a later step failed.
    RolledBack,
}

impl std::fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepOutcome::Pending => "pending",
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::AlreadyInstalled => "already installed",
            StepOutcome::NoMatchingComponents => "no matching components",
            StepOutcome::Failed => "failed",
            StepOutcome::Cancelled => "cancelled",
            StepOutcome::RolledBack => "rolled back",
        })
    }
}

/// One action's recorded result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The action.
    pub action: Action,
    /// Its validated result.
    pub result: ResultFile,
}

/// One planned step in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// Position in the plan (0-based).
    pub number: usize,
    /// Human label, e.g. `step 0` or `step 0 > child step 1 [camera-0]`.
    pub label: String,
    /// 0 for the top update, 1 for a child update.
    pub level: u8,
    /// Handler id.
    pub handler: String,
    /// The step's description, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How it ended.
    pub outcome: StepOutcome,
    /// The actions that ran, in order.
    pub actions: Vec<ActionRecord>,
    /// The action the journal shows started and not finished: the one running now, as
    /// another process (`handrail status`) sees the deployment, or the one a crash or a
    /// power cut interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Action>,
}

/// The step and action that stopped a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureReport {
    /// Plan position of the failed step.
    pub step: usize,
    /// Its label.
    pub label: String,
    /// The action that failed.
    pub action: Action,
    /// ADU result code.
    pub result_code: i32,
    /// Extended result code.
    pub extended_result_code: i32,
    /// The extended code in hex, for people.
    pub extended_result_code_hex: String,
    /// Details from the handler or the runtime.
    pub result_details: String,
}

/// The report of one deployment: what `finish` returns, what history keeps and what
/// `handrail --json` prints (camelCase members).
///
/// ```
/// use handrail::{DeploymentStatus, Report};
///
/// let report = Report::rejected("d-1", "contoso/cam/1.0", "the payload is missing".into(), None);
/// assert_eq!(report.status, DeploymentStatus::Rejected);
/// let json = serde_json::to_value(&report).unwrap();
/// assert_eq!(json["updateId"], "contoso/cam/1.0");
/// // What a fleet server wants: the status and, on failure, ADU's codes.
/// let summary = match &report.failure {
///     Some(f) => format!("{}: {} {}", report.status, f.result_code, f.extended_result_code_hex),
///     None => format!("{}: {}", report.status, report.error.as_deref().unwrap_or("")),
/// };
/// assert_eq!(summary, "rejected: the payload is missing");
/// let back: Report = serde_json::from_value(json).unwrap();
/// assert_eq!(back, report);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Deployment id.
    pub deployment: String,
    /// The update deployed, `provider/name/version`.
    pub update_id: String,
    /// Overall status.
    pub status: DeploymentStatus,
    /// The reboot or restart the deployment waits for, when suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption: Option<Interruption>,
    /// When it was admitted (RFC 3339).
    pub started_at: String,
    /// When it reached an end state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Every planned step.
    pub steps: Vec<StepReport>,
    /// The failure that stopped it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReport>,
    /// A failure outside the steps (refused admission, pre-update hook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The post-update hook's failure, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_hook_error: Option<String>,
    /// The envelope's `workflow.retryTimestamp` this run was for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_timestamp: Option<String>,
}

impl Report {
    /// The report of a deployment refused before anything ran.
    pub fn rejected(
        deployment: &str,
        update_id: &str,
        error: String,
        retry_timestamp: Option<String>,
    ) -> Report {
        let now = crate::clock::now_rfc3339();
        Report {
            deployment: deployment.to_owned(),
            update_id: update_id.to_owned(),
            status: DeploymentStatus::Rejected,
            interruption: None,
            started_at: now.clone(),
            finished_at: Some(now),
            steps: Vec::new(),
            failure: None,
            error: Some(error),
            post_hook_error: None,
            retry_timestamp,
        }
    }
}
