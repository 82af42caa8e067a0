//! A host for handlers written in Rust and linked into the embedding program.
//!
//! Useful to agents that want a handler without an artifact, and to tests of the engine.
//! The handler returns a [`ResultFile`], which the host writes to the step's result file,
//! or `None` after writing the result file itself; either way the engine reads it back
//! through the same result-file contract as every other kind.
//! A panic becomes [`InvocationEnd::Trapped`]; cancellation is cooperative (the handler
//! sees the token).

use std::collections::HashMap;
use std::sync::Arc;

use handrail_contract::{Action, ResultFile, StepContext};

use crate::cancel::CancelToken;
use crate::host::{
    BoxFuture, Description, HandlerHost, Invocation, InvocationEnd, LoadError, LoadedHandler,
};
use crate::registry::{HandlerKind, Registration};

/// A handler implemented in Rust, run on a blocking thread.
pub trait InProcessHandler: Send + Sync + 'static {
    /// Who it is and what it supports.
    fn describe(&self) -> Description;

    /// Runs one action: `Some(result)` for the host to write, or `None` when the handler
    /// wrote `context.result_file` itself.
    fn run(
        &self,
        action: Action,
        context: &StepContext,
        cancel: &CancelToken,
    ) -> Option<ResultFile>;

    /// [`run`](Self::run) for a handler that reports progress: `progress(done, total)`
    /// as often as it likes (the runtime keeps only the latest report for its readers).
    /// The default ignores `progress` and calls `run`.
    fn run_with_progress(
        &self,
        action: Action,
        context: &StepContext,
        cancel: &CancelToken,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Option<ResultFile> {
        let _ = progress;
        self.run(action, context, cancel)
    }
}

/// Hosts [`InProcessHandler`]s registered with kind `in-process`.
#[derive(Default, Clone)]
pub struct InProcessHost {
    handlers: HashMap<String, Arc<dyn InProcessHandler>>,
}

impl InProcessHost {
    /// An empty host.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler under its described id.
    pub fn with(mut self, handler: impl InProcessHandler) -> Self {
        let id = handler.describe().id;
        self.handlers.insert(id, Arc::new(handler));
        self
    }

    /// The registration for each handler (kind `in-process`, nothing granted).
    pub fn registrations(&self) -> Vec<Registration> {
        self.handlers
            .keys()
            .map(|id| Registration {
                id: id.clone(),
                kind: HandlerKind::InProcess,
                artifact: Default::default(),
                sha256: String::new(),
                capabilities: Default::default(),
                limits: Default::default(),
                config: Default::default(),
                source: None,
            })
            .collect()
    }
}

struct Loaded {
    handler: Arc<dyn InProcessHandler>,
    description: Description,
}

impl LoadedHandler for Loaded {
    fn description(&self) -> &Description {
        &self.description
    }

    fn invoke(&self, invocation: Invocation) -> BoxFuture<'_, InvocationEnd> {
        let handler = self.handler.clone();
        Box::pin(async move {
            let Invocation {
                action,
                context,
                cancel,
                progress,
            } = invocation;
            let joined = tokio::task::spawn_blocking(move || {
                let result = handler.run_with_progress(action, &context, &cancel, &*progress);
                let cancelled = cancel.is_cancelled() && action != Action::Cancel;
                (result, context.result_file, cancelled)
            })
            .await;
            match joined {
                Ok((_, _, true)) => InvocationEnd::Cancelled,
                Ok((None, _, false)) => InvocationEnd::Returned,
                Ok((Some(result), path, false)) => match std::fs::write(&path, result.to_json()) {
                    Ok(()) => InvocationEnd::Returned,
                    Err(e) => InvocationEnd::HostFailure(format!("cannot write {path}: {e}")),
                },
                Err(e) if e.is_panic() => {
                    let payload = e.into_panic();
                    let msg = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    InvocationEnd::Trapped(format!("panicked: {msg}"))
                }
                Err(e) => InvocationEnd::HostFailure(e.to_string()),
            }
        })
    }
}

impl HandlerHost for InProcessHost {
    fn kind(&self) -> HandlerKind {
        HandlerKind::InProcess
    }

    fn load<'a>(
        &'a self,
        registration: &'a Registration,
    ) -> BoxFuture<'a, Result<Arc<dyn LoadedHandler>, LoadError>> {
        Box::pin(async move {
            let handler = self
                .handlers
                .get(&registration.id)
                .ok_or_else(|| LoadError {
                    id: registration.id.clone(),
                    artifact: "(in process)".into(),
                    reason: "no in-process handler with this id is linked in".into(),
                })?;
            Ok(Arc::new(Loaded {
                description: handler.describe(),
                handler: handler.clone(),
            }) as Arc<dyn LoadedHandler>)
        })
    }
}
