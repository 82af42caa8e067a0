//! The conformance kit's test handlers, built for `wasm32-wasip2` by this crate's build
//! script: the deliberately broken handlers of `tests/conformance/broken/` (each named
//! after what it breaks) and the vendor template of `sdk/template/`.

/// `broken/out-of-phase:1`: answers apply with an install code.
pub const OUT_OF_PHASE: &str = env!("HANDRAIL_BROKEN_OUT_OF_PHASE_WASM");
/// `broken/traps-on-malformed:1`: panics on a property of the wrong type.
pub const TRAPS_ON_MALFORMED: &str = env!("HANDRAIL_BROKEN_TRAPS_ON_MALFORMED_WASM");
/// `broken/ignores-cancel:1`: does its work although cancelled, or runs on after the cancel
/// (`spin`), and its cancel action never returns.
pub const IGNORES_CANCEL: &str = env!("HANDRAIL_BROKEN_IGNORES_CANCEL_WASM");
/// `broken/lying-is-installed:1`: is-installed says 901 after a successful install.
pub const LYING_IS_INSTALLED: &str = env!("HANDRAIL_BROKEN_LYING_IS_INSTALLED_WASM");
/// `broken/non-deterministic:1`: download fails differently every time.
pub const NON_DETERMINISTIC: &str = env!("HANDRAIL_BROKEN_NON_DETERMINISTIC_WASM");
/// `bad-describe`: describes itself with an id that is not `vendor/name:major`.
pub const BAD_DESCRIBE: &str = env!("HANDRAIL_BROKEN_BAD_DESCRIBE_WASM");
/// `broken/leaves-process:1`: its install leaves a `sleep` running (needs `/bin/sh`).
pub const LEAVES_PROCESS: &str = env!("HANDRAIL_BROKEN_LEAVES_PROCESS_WASM");
/// `vendor/template:1`, the template `handrail new-handler` copies.
pub const TEMPLATE: &str = env!("HANDRAIL_HANDLER_TEMPLATE_WASM");
