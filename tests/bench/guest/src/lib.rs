//! `bench/noop:1`: the smallest handler the SDK makes. `install` succeeds at once, so
//! running it measures what the runtime adds to an action and nothing else.

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes};

/// The no-op handler.
pub struct Noop;

impl Handler for Noop {
    const ID: &'static str = "bench/noop:1";
    const ACTIONS: &'static [Action] = &[Action::Install];

    fn install(_step: &StepContext) -> ResultFile {
        ResultFile::new(codes::INSTALL_SUCCESS, "")
    }
}

handrail_sdk::export!(Noop);
