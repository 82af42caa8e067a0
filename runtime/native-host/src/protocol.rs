//! What the host and its worker process say to each other.
//!
//! The host writes one [`Request`] as JSON to the worker's stdin and closes it. The worker
//! answers with [`Report`]s, one JSON object per line, on its original stdout (the
//! handler's own stdout is sent to stderr, so nothing the library prints can be mistaken
//! for a report), then exits. A worker that ends without a final report (`Described`,
//! `Returned` or `Refused`) died inside the library.

use std::path::PathBuf;

use handrail::host::Description;
use handrail_contract::{Action, StepContext};
use serde::{Deserialize, Serialize};

/// One call of a native handler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Request {
    /// The shared library.
    pub library: PathBuf,
    /// Its registered sha256; the worker re-hashes the library before loading it.
    pub sha256: String,
    /// What to call.
    pub call: Call,
    /// Resource limits of the worker.
    pub limits: WorkerLimits,
}

/// What the worker calls in the library.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Call {
    /// `describe`, checked against the contract.
    Describe,
    /// One action, with the step context (host paths).
    Action {
        /// The action.
        action: Action,
        /// Its step context.
        context: Box<StepContext>,
    },
}

/// Resource limits the worker sets on itself.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct WorkerLimits {
    /// Address space, in MiB.
    pub memory_mib: u64,
    /// CPU time, in seconds.
    pub cpu_secs: u64,
}

/// One line of the worker's report channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Report {
    /// The library reported progress of the action (the SDK's `host::progress`, written
    /// straight to the channel the worker names in `HANDRAIL_REPORT_FD`).
    Progress {
        /// Units done.
        done: u64,
        /// Units in all.
        total: u64,
    },
    /// The worker refused to go on: the reason names what is wrong.
    Refused {
        /// Why.
        reason: String,
    },
    /// `describe` returned this, and it passed the contract checks.
    Described {
        /// The handler's description.
        description: Description,
    },
    /// The action function returned this status.
    Returned {
        /// 0 when the handler wrote its result file.
        status: i32,
    },
}

impl Report {
    /// Parses the report channel's text; lines that are not reports are skipped.
    pub(crate) fn parse_all(text: &str) -> Vec<Report> {
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_one_per_line() {
        let reports = [
            Report::Refused {
                reason: "no".into(),
            },
            Report::Returned { status: 0 },
        ];
        let text: String = reports
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        assert_eq!(Report::parse_all(&format!("{text}garbage\n")), reports);
    }
}
