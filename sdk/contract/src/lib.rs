//! The step-handler contract shared by the Handrail runtime and by handler authors.
//!
//! Everything a handler and the runtime must agree on, apart from the calling convention
//! itself (the WIT world in `wit/` for WebAssembly components, the C ABI for native
//! libraries), lives here: the [`Action`]s a handler performs, the ADU-compatible
//! [`codes`] it answers with, the [`StepContext`] it receives and the [`ResultFile`] it
//! writes. The crate has no platform dependencies so it builds for the host and for
//! `wasm32-wasip2` guests alike.

pub mod codes;
mod context;
pub mod json;
mod result_file;

pub use codes::{Action, ExtendedCode};
pub use context::{Component, PayloadFile, StepContext, UpdateId};
pub use result_file::{MAX_RESULT_FILE_BYTES, ResultFile};

/// Version of the handler contract (the WIT package `handrail:handler` and the C ABI).
///
/// A handler built for the same major version and an older or equal minor version is
/// accepted; anything else is refused at load time.
pub const CONTRACT_VERSION: (u16, u16) = (1, 0);
