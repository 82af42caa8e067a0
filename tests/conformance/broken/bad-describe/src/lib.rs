//! `bad-describe`: describes itself with an id that is not `vendor/name:major`, which no
//! registration can name. Breaks HC-001 (describe is well-formed) and nothing else.

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes};

/// The handler.
pub struct BadDescribe;

impl Handler for BadDescribe {
    const ID: &'static str = "bad-describe";
    const ACTIONS: &'static [Action] = &[Action::Install];

    fn install(_step: &StepContext) -> ResultFile {
        // Honours a cancel (HC-007): it is broken in one way only.
        if let Some(cancelled) = handrail_sdk::host::cancelled() {
            return cancelled;
        }
        ResultFile::new(codes::INSTALL_SUCCESS, "installed")
    }
}

handrail_sdk::export!(BadDescribe);
