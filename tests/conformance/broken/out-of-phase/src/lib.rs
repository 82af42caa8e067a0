//! `broken/out-of-phase:1`: answers apply with 600, a code of install's band.
//! Breaks HC-002 (valid result files) and nothing else.

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes};

/// The handler.
pub struct OutOfPhase;

impl Handler for OutOfPhase {
    const ID: &'static str = "broken/out-of-phase:1";
    const ACTIONS: &'static [Action] = &[Action::Install, Action::Apply];

    fn install(_step: &StepContext) -> ResultFile {
        // Honours a cancel (HC-007): it is broken in one way only.
        if let Some(cancelled) = handrail_sdk::host::cancelled() {
            return cancelled;
        }
        ResultFile::new(codes::INSTALL_SUCCESS, "installed")
    }

    fn apply(_step: &StepContext) -> ResultFile {
        ResultFile::new(codes::INSTALL_SUCCESS, "applied, with install's code")
    }
}

handrail_sdk::export!(OutOfPhase);
