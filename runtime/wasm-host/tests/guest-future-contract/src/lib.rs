//! A handler that says it was built for handler contract 2.0: the runtime implements
//! 1.x and must refuse to load it. It uses the raw bindings, since the SDK always
//! reports the contract version it implements.

use handrail_sdk::bindings::exports::handrail::handler::handler::Guest;
use handrail_sdk::bindings::handrail::handler::types::{Description, StepContext};

/// The handler.
pub struct FromTheFuture;

impl Guest for FromTheFuture {
    fn describe() -> Description {
        Description {
            id: "test/future:2".into(),
            actions: Vec::new(),
            contract_major: 2,
            contract_minor: 0,
        }
    }
    fn is_installed(_: StepContext) {}
    fn download(_: StepContext) {}
    fn backup(_: StepContext) {}
    fn install(_: StepContext) {}
    fn apply(_: StepContext) {}
    fn restore(_: StepContext) {}
    fn cancel(_: StepContext) {}
}

#[cfg(target_arch = "wasm32")]
handrail_sdk::bindings::export_world!(FromTheFuture with_types_in handrail_sdk::bindings);
