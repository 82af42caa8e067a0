//! The state of one store (one action, or `describe` at load): the guest's WASI context,
//! its memory limiter, and the `host` imports (`log`, `progress`, `is-cancelled`, `run`).

use std::sync::Arc;

use handrail::host::ProgressFn;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::handrail::handler::host::Host;
use crate::bindings::handrail::handler::types::{self, Arg, Level, RunError, RunOutput};
use crate::run::{RunRequest, RunScope};

/// Most log messages one action may write; the rest are dropped (with one warning).
pub const MAX_LOG_MESSAGES: u32 = 1000;
/// Longest log message kept; longer ones are cut.
pub const MAX_LOG_MESSAGE_BYTES: usize = 8 * 1024;
/// Most WASI resources (open files, streams, pollables) a guest may hold at once. Open
/// files are host file descriptors, which the agent needs too.
pub const MAX_GUEST_RESOURCES: usize = 256;

/// The data of one store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    handler_id: Arc<str>,
    logged: u32,
    /// Present while an action runs; absent for `describe`.
    action: Option<ActionScope>,
}

/// What the imports of a running action use.
pub(crate) struct ActionScope {
    pub(crate) progress: ProgressFn,
    pub(crate) run: RunScope,
}

impl HostState {
    pub(crate) fn new(
        wasi: WasiCtx,
        memory_limit: usize,
        handler_id: Arc<str>,
        action: Option<ActionScope>,
    ) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_GUEST_RESOURCES);
        HostState {
            wasi,
            table,
            limiter: MemoryLimiter::new(memory_limit),
            handler_id,
            logged: 0,
            action,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps the guest's linear memories and tables. Going over the memory limit traps the
/// guest and is remembered, so the host reports the action as out of memory rather than
/// as an ordinary trap.
pub(crate) struct MemoryLimiter {
    limit: usize,
    /// Set when the guest asked for more than the limit.
    pub(crate) exceeded: Option<usize>,
}

/// Most table elements a guest may have (function tables of ordinary programs hold a
/// few thousand).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            exceeded: None,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = Some(desired);
            return Err(wasmtime::format_err!(
                "the handler asked for {desired} bytes of memory; its limit is {}",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

impl types::Host for HostState {}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        self.logged = self.logged.saturating_add(1);
        if self.logged > MAX_LOG_MESSAGES {
            if self.logged == MAX_LOG_MESSAGES + 1 {
                tracing::warn!(
                    target: "handrail::handler",
                    handler = %self.handler_id,
                    "the handler wrote more than {MAX_LOG_MESSAGES} log messages; dropping the rest of this action's"
                );
            }
            return;
        }
        let message = truncate(&message, MAX_LOG_MESSAGE_BYTES);
        let id = &*self.handler_id;
        match level {
            Level::Trace => tracing::trace!(target: "handrail::handler", handler = id, "{message}"),
            Level::Debug => tracing::debug!(target: "handrail::handler", handler = id, "{message}"),
            Level::Info => tracing::info!(target: "handrail::handler", handler = id, "{message}"),
            Level::Warn => tracing::warn!(target: "handrail::handler", handler = id, "{message}"),
            Level::Error => tracing::error!(target: "handrail::handler", handler = id, "{message}"),
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        if let Some(action) = &self.action {
            (action.progress)(done, total);
        }
    }

    fn is_cancelled(&mut self) -> bool {
        self.action
            .as_ref()
            .is_some_and(|a| a.run.cancel.is_cancelled())
    }

    async fn run(
        &mut self,
        program: String,
        args: Vec<Arg>,
        env: Vec<(String, String)>,
        timeout_ms: u64,
    ) -> Result<RunOutput, RunError> {
        let Some(action) = &self.action else {
            return Err(RunError::NotGranted(
                "no program may be run while the handler describes itself".into(),
            ));
        };
        tracing::info!(
            target: "handrail::handler",
            handler = %self.handler_id,
            program = %program,
            args = ?args,
            env = ?env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "running a program for the handler"
        );
        let ended = action
            .run
            .run(RunRequest {
                program: program.clone(),
                args,
                env,
                timeout_ms,
            })
            .await;
        match &ended {
            Ok(out) => tracing::info!(
                target: "handrail::handler",
                handler = %self.handler_id,
                program = %program,
                exit_code = ?out.exit_code,
                signal = ?out.signal,
                "the program ended"
            ),
            Err(e) => tracing::warn!(
                target: "handrail::handler",
                handler = %self.handler_id,
                program = %program,
                "the program did not run to its end: {e:?}"
            ),
        }
        ended
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
pub(crate) fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..end], text.len() - end).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("héllo", 2), "h… [5 bytes cut]");
    }

    #[test]
    fn memory_over_the_limit_is_refused_and_remembered() {
        let mut l = MemoryLimiter::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert!(l.exceeded.is_none());
        assert!(l.memory_growing(0, (1 << 20) + 1, None).is_err());
        assert_eq!(l.exceeded, Some((1 << 20) + 1));
    }
}
