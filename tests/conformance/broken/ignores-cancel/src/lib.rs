//! `broken/ignores-cancel:1`: its cancel action waits for an install that never tells it
//! to stop, and so never returns. Breaks HC-007 (cancel honoured within a bound).

use std::time::Duration;

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes};

/// The handler.
pub struct IgnoresCancel;

impl Handler for IgnoresCancel {
    const ID: &'static str = "broken/ignores-cancel:1";
    const ACTIONS: &'static [Action] = &[Action::Install, Action::Cancel];

    fn install(_step: &StepContext) -> ResultFile {
        ResultFile::new(codes::INSTALL_SUCCESS, "installed")
    }

    fn cancel(_step: &StepContext) -> ResultFile {
        std::thread::sleep(Duration::from_secs(3600));
        ResultFile::new(codes::CANCEL_SUCCESS, "cancelled, an hour late")
    }
}

handrail_sdk::export!(IgnoresCancel);
