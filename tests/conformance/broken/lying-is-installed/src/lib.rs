//! `broken/lying-is-installed:1`: install succeeds, but is-installed always says 901, so
//! every deployment would run the step again. Breaks HC-004 (installed after install).

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes};

/// The handler.
pub struct LyingIsInstalled;

impl Handler for LyingIsInstalled {
    const ID: &'static str = "broken/lying-is-installed:1";
    const ACTIONS: &'static [Action] = &[Action::IsInstalled, Action::Install];

    fn is_installed(_step: &StepContext) -> ResultFile {
        ResultFile::new(
            codes::IS_INSTALLED_NOT_INSTALLED,
            "never installed, whatever happened",
        )
    }

    fn install(_step: &StepContext) -> ResultFile {
        // Honours a cancel (HC-007): it is broken in one way only.
        if let Some(cancelled) = handrail_sdk::host::cancelled() {
            return cancelled;
        }
        ResultFile::new(codes::INSTALL_SUCCESS, "installed")
    }
}

handrail_sdk::export!(LyingIsInstalled);
