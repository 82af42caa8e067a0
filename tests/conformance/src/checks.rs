//! The catalogue of contract checks: each one's id, what it proves, and the clause of the
//! contract it holds a handler to.
//!
//! Ids are stable: a vendor's CI may skip or track a check by id, so a check that changes
//! meaning gets a new id rather than a new rationale.

use std::fmt;

/// One contract check of the kit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// `describe` is well-formed.
    Describe,
    /// Every declared action writes a valid result file.
    ResultFiles,
    /// `is-installed` answers 900 or 901.
    IsInstalledAnswers,
    /// After a successful install, `is-installed` answers 900.
    InstalledAfterInstall,
    /// Installing twice is harmless.
    IdempotentInstall,
    /// A declared action is implemented.
    DeclaredActionsImplemented,
    /// Cancel is honoured within a bound.
    Cancel,
    /// Missing payload files give failure results.
    MissingPayload,
    /// Malformed handler properties give failure results.
    MalformedProperties,
    /// Nothing is touched outside the sandbox.
    Sandbox,
    /// The registration's limits are enough.
    Limits,
    /// The same inputs give the same results.
    Deterministic,
}

impl Check {
    /// Every check, in the order the kit reports them.
    pub const ALL: [Check; 12] = [
        Check::Describe,
        Check::ResultFiles,
        Check::IsInstalledAnswers,
        Check::InstalledAfterInstall,
        Check::IdempotentInstall,
        Check::DeclaredActionsImplemented,
        Check::Cancel,
        Check::MissingPayload,
        Check::MalformedProperties,
        Check::Sandbox,
        Check::Limits,
        Check::Deterministic,
    ];

    /// The stable id, `HC-0nn`.
    pub const fn id(self) -> &'static str {
        match self {
            Check::Describe => "HC-001",
            Check::ResultFiles => "HC-002",
            Check::IsInstalledAnswers => "HC-003",
            Check::InstalledAfterInstall => "HC-004",
            Check::IdempotentInstall => "HC-005",
            Check::DeclaredActionsImplemented => "HC-006",
            Check::Cancel => "HC-007",
            Check::MissingPayload => "HC-008",
            Check::MalformedProperties => "HC-009",
            Check::Sandbox => "HC-010",
            Check::Limits => "HC-011",
            Check::Deterministic => "HC-012",
        }
    }

    /// A short name.
    pub const fn name(self) -> &'static str {
        match self {
            Check::Describe => "describe is well-formed",
            Check::ResultFiles => "valid result files",
            Check::IsInstalledAnswers => "is-installed answers 900/901",
            Check::InstalledAfterInstall => "installed after install",
            Check::IdempotentInstall => "install is idempotent",
            Check::DeclaredActionsImplemented => "declared actions are implemented",
            Check::Cancel => "cancel honoured within a bound",
            Check::MissingPayload => "missing payload fails cleanly",
            Check::MalformedProperties => "malformed properties fail cleanly",
            Check::Sandbox => "no access outside the sandbox",
            Check::Limits => "stays within its limits",
            Check::Deterministic => "deterministic",
        }
    }

    /// Why the check matters, in one line.
    pub const fn rationale(self) -> &'static str {
        match self {
            Check::Describe => {
                "the runtime loads, routes and version-checks a handler by what describe says: a `vendor/name:major` id, the runtime's contract major, a non-empty list of distinct actions"
            }
            Check::ResultFiles => {
                "every declared action (cancel aside, see HC-007) run on a realistic step returns and writes a result file the runtime accepts: present, a regular file, at most 64 KiB, UTF-8, a result object, a code valid for the action, failures with an extended code"
            }
            Check::IsInstalledAnswers => {
                "the engine skips a step on 900 and runs it on 901; a failing is-installed stops an update that could have run"
            }
            Check::InstalledAfterInstall => {
                "after install (and apply) succeed, is-installed must say 900, or every deployment re-runs the step forever"
            }
            Check::IdempotentInstall => {
                "a crash between install and the journal record re-runs install on resume: a second install must succeed or answer 603"
            }
            Check::DeclaredActionsImplemented => {
                "the runtime answers undeclared actions itself; a declared action answering 'unsupported' (0x34800016) hides a missing implementation"
            }
            Check::Cancel => {
                "a cancelled deployment must stop promptly and change nothing more: an action started after the cancel returns resultCode -1 within the bound instead of doing its work or running on (a native handler's worker is stopped by the runtime), and the handler's cancel action answers within the bound"
            }
            Check::MissingPayload => {
                "a step whose payload files are missing must end with a result (a failure for install), not a trap or a crash"
            }
            Check::MalformedProperties => {
                "handlerProperties come from the manifest, not from the handler's author: wrong types must end with a result, not a trap"
            }
            Check::Sandbox => {
                "a handler sees its payload read-only and its work folder read-write; its result file must be a regular file and nothing beside its work folder may change"
            }
            Check::Limits => {
                "a realistic step must finish under the registration's time and memory limits, or it fails on every device with those limits, and what it starts must end with it: no process left running once its programs have exited"
            }
            Check::Deterministic => {
                "the same step on the same device must give the same result codes, so a failure can be reproduced and a retry means something"
            }
        }
    }

    /// The clause of the contract the check enforces: file and section.
    pub const fn clause(self) -> &'static str {
        match self {
            Check::Describe => {
                "wit/handler.wit: record `description`; interface `handler`, `describe`"
            }
            Check::ResultFiles => {
                "wit/handler.wit: package doc, \"Result-file contract\" and \"Result codes\"; README.md \"The result-file contract\""
            }
            Check::IsInstalledAnswers => {
                "wit/handler.wit: interface `handler`, `is-installed` (900 / 901)"
            }
            Check::InstalledAfterInstall => {
                "wit/handler.wit: package doc (\"`is-installed` (900 = installed, the step is skipped)\"); README.md \"The two commands\""
            }
            Check::IdempotentInstall => {
                "wit/handler.wit: \"Result codes\", install 603; README.md \"Durability\""
            }
            Check::DeclaredActionsImplemented => {
                "wit/handler.wit: record `description`, field `actions`"
            }
            Check::Cancel => {
                "wit/handler.wit: interface `host`, `is-cancelled`; interface `handler`, `cancel` (800 / 801)"
            }
            Check::MissingPayload => {
                "wit/handler.wit: package doc (\"A trap is a failure\"); record `step-context`, field `files`"
            }
            Check::MalformedProperties => {
                "wit/handler.wit: record `step-context`, field `handler-properties-json`"
            }
            Check::Sandbox => "wit/handler.wit: package doc, \"Sandbox\"",
            Check::Limits => {
                "wit/handler.wit: package doc (time 0x34800011, memory 0x34800012); README.md \"Handlers and their registrations\", `[limits]`"
            }
            Check::Deterministic => {
                "wit/handler.wit: interface `handler` (each action writes its result file and returns)"
            }
        }
    }

    /// The check with this id.
    pub fn from_id(id: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.id() == id)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_round_trip() {
        let mut ids: Vec<_> = Check::ALL.iter().map(|c| c.id()).collect();
        ids.dedup();
        assert_eq!(ids.len(), Check::ALL.len());
        for check in Check::ALL {
            assert_eq!(Check::from_id(check.id()), Some(check));
        }
        assert_eq!(Check::from_id("HC-999"), None);
    }
}
