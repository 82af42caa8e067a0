//! `broken/ignores-cancel:1`: does not stop when cancelled. Breaks HC-007 (cancel
//! honoured within a bound) three ways: its install does its work although the deployment
//! was cancelled, or, when the step's `handlerProperties.spin` is true, runs on after the
//! cancel in a loop that polls nothing until the host stops it (only once cancelled, so
//! the kit's other scenarios end); and its cancel action waits for an install that never
//! tells it to stop, and so never returns.

use std::time::Duration;

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes, host};

/// The handler.
pub struct IgnoresCancel;

impl Handler for IgnoresCancel {
    const ID: &'static str = "broken/ignores-cancel:1";
    const ACTIONS: &'static [Action] = &[Action::Install, Action::Cancel];

    fn install(step: &StepContext) -> ResultFile {
        let spin = step
            .handler_properties
            .get("spin")
            .and_then(|v| v.as_bool())
            == Some(true);
        if spin && host::is_cancelled() {
            let mut turns: u64 = 0;
            loop {
                turns = std::hint::black_box(turns.wrapping_add(1));
            }
        }
        ResultFile::new(codes::INSTALL_SUCCESS, "installed")
    }

    fn cancel(_step: &StepContext) -> ResultFile {
        std::thread::sleep(Duration::from_secs(3600));
        ResultFile::new(codes::CANCEL_SUCCESS, "cancelled, an hour late")
    }
}

handrail_sdk::export!(IgnoresCancel);
