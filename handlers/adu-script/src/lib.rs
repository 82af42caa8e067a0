//! Running an update's script as Azure Device Update's agent runs it, for the handlers
//! that do: `microsoft/script:1` and the script-driven form of `microsoft/swupdate:2`.
//!
//! - [`arguments`]: ADU's command line (action, the handler's own arguments, the step's
//!   `arguments` with component placeholders, work folder, result file, criteria);
//! - [`launch`]: the script is run by the interpreter its `#!` line names, after the
//!   step's payload files are placed in the work folder where ADU's scripts look for
//!   them;
//! - [`result`]: the `{resultCode, extendedResultCode, resultDetails}` file it writes.
//!
//! What a handler reports for each of these (its extended codes) stays the handler's:
//! the two ADU handlers use different codes for the same events.

pub mod arguments;
pub mod launch;
pub mod result;

pub use arguments::{ApiVersion, Dialect, Inputs, ScriptArg, script_arguments};
pub use launch::{LaunchError, SCRIPT_PATH, SHELL, StageError, run_script, shebang};
pub use result::{ResultProblem, parse_result};
