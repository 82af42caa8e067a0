//! `broken/non-deterministic:1`: download fails with an extended code drawn at random,
//! so the same step gives a different result every time. Breaks HC-012 (deterministic).

use std::hash::{BuildHasher, Hasher};

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes, extended};

/// The handler.
pub struct NonDeterministic;

impl Handler for NonDeterministic {
    const ID: &'static str = "broken/non-deterministic:1";
    const ACTIONS: &'static [Action] = &[Action::Download, Action::Install];

    fn download(_step: &StepContext) -> ResultFile {
        // `RandomState` is seeded from the WASI random source: a fresh draw per instance.
        let draw = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let code = 1 + (draw % 0xF_FFFE) as u32;
        ResultFile::failure(extended(codes::COMPONENT_CUSTOM, code), "a flaky mirror")
    }

    fn install(_step: &StepContext) -> ResultFile {
        // Honours a cancel (HC-007): it is broken in one way only.
        if let Some(cancelled) = handrail_sdk::host::cancelled() {
            return cancelled;
        }
        ResultFile::new(codes::INSTALL_SUCCESS, "installed")
    }
}

handrail_sdk::export!(NonDeterministic);
