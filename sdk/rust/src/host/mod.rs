//! What the runtime offers a handler: logging, progress, the cancel flag and running
//! granted programs.
//!
//! In a component these call the `handrail:handler/host` imports. In a native library
//! (`export_native!`), which runs in the runtime's worker process, they are done in
//! the process itself: a log line goes to stderr (which the runtime captures), progress
//! goes to the worker's report channel, `run` starts the program itself (its confinement
//! is the worker's), and `is_cancelled` is always false, because the runtime stops the
//! worker at once when the action is cancelled.

use std::time::Duration;

#[cfg(target_arch = "wasm32")]
use crate::bindings::handrail::handler::host as imports;
pub use crate::bindings::handrail::handler::types::{Arg, Level, RunError, RunOutput};

#[cfg(not(target_arch = "wasm32"))]
mod imports;

/// Writes a line to the deployment log (the host caps the size and rate of messages).
///
/// ```no_run
/// use handrail_sdk::host::{self, Level};
/// host::log(Level::Info, "unpacking firmware");
/// ```
pub fn log(level: Level, message: &str) {
    imports::log(level, message);
}

/// [`log`] at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// [`log`] at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// [`log`] at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// [`log`] at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Reports progress of the current action: `done` of `total` units.
///
/// ```no_run
/// handrail_sdk::host::progress(3, 10);
/// ```
pub fn progress(done: u64, total: u64) {
    imports::progress(done, total);
}

/// True once the current action has been cancelled. A long-running handler polls this
/// and returns early with [`codes::FAILURE_CANCELLED`](crate::codes::FAILURE_CANCELLED).
///
/// ```no_run
/// if handrail_sdk::host::is_cancelled() {
///     // stop and report resultCode -1
/// }
/// ```
pub fn is_cancelled() -> bool {
    imports::is_cancelled()
}

/// The result of an action stopped by a cancel, when the current action has been
/// cancelled: resultCode [`codes::FAILURE_CANCELLED`](crate::codes::FAILURE_CANCELLED)
/// with [`codes::ext::CANCELLED`](crate::codes::ext::CANCELLED). An action calls it
/// before it changes anything, and between the parts of long work; the conformance kit
/// (HC-007) starts an action with its deployment already cancelled and fails a handler
/// that does its work anyway.
///
/// ```no_run
/// use handrail_sdk::{ResultFile, codes, host};
/// fn install() -> ResultFile {
///     if let Some(cancelled) = host::cancelled() {
///         return cancelled;
///     }
///     // ... the work, polling `host::cancelled()` between its parts ...
///     ResultFile::new(codes::INSTALL_SUCCESS, "installed")
/// }
/// ```
pub fn cancelled() -> Option<crate::ResultFile> {
    is_cancelled().then(|| crate::ResultFile {
        result_code: crate::codes::FAILURE_CANCELLED,
        extended_result_code: crate::codes::ext::CANCELLED.value(),
        result_details: "cancelled; stopped before changing anything more".into(),
    })
}

/// Runs a program the handler's registration grants (`capabilities.run`), with `args`
/// passed as a list (never through a shell), an empty environment plus `env`, and the
/// work folder as working directory.
///
/// Paths inside the sandbox are passed as [`Arg::SandboxPath`] so the host hands the
/// program the real file. `timeout` is capped by the action's remaining time; `None`
/// means "as long as the action may run". The program is killed when the action is
/// cancelled.
///
/// ```no_run
/// use handrail_sdk::host::{self, Arg};
/// let out = host::run(
///     "/bin/sh",
///     &[Arg::SandboxPath("/payload/install.sh".into()), Arg::Literal("--fast".into())],
///     &[("LANG".into(), "C".into())],
///     None,
/// );
/// match out {
///     Ok(out) if out.exit_code == Some(0) => host::info("installed"),
///     Ok(out) => host::error(&String::from_utf8_lossy(&out.stderr)),
///     Err(e) => host::error(&e.to_string()),
/// }
/// ```
pub fn run(
    program: &str,
    args: &[Arg],
    env: &[(String, String)],
    timeout: Option<Duration>,
) -> Result<RunOutput, RunError> {
    let timeout_ms = timeout.map_or(u64::MAX, |t| {
        u64::try_from(t.as_millis()).unwrap_or(u64::MAX)
    });
    imports::run(program, args, env, timeout_ms)
}
