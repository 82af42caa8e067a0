//! `broken/traps-on-malformed:1`: trusts `handlerProperties.version` to be a string and
//! panics when it is not. Breaks HC-009 (malformed properties fail cleanly) and nothing
//! else when its profile gives a string `version`.

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes};

/// The handler.
pub struct TrapsOnMalformed;

impl Handler for TrapsOnMalformed {
    const ID: &'static str = "broken/traps-on-malformed:1";
    const ACTIONS: &'static [Action] = &[Action::Install];

    fn install(step: &StepContext) -> ResultFile {
        // Honours a cancel (HC-007): it is broken in one way only.
        if let Some(cancelled) = handrail_sdk::host::cancelled() {
            return cancelled;
        }
        let version = step.handler_properties["version"]
            .as_str()
            .expect("handlerProperties.version is a string");
        ResultFile::new(codes::INSTALL_SUCCESS, format!("installed {version}"))
    }
}

handrail_sdk::export!(TrapsOnMalformed);
