//! The one trait every handler host implements.
//!
//! A *host* knows how to load one kind of handler artifact (a WebAssembly component, a
//! native library in a worker process, or an in-process Rust handler for tests and
//! embedding) and how to run one action of it. The engine only ever sees
//! [`HandlerHost`] and [`LoadedHandler`]; it never knows which kind it drives.
//!
//! Contract between engine and host for one action:
//! - the engine creates the action's private work folder and hands over a
//!   [`StepContext`] whose paths are **host paths** (payload files, work folder, result
//!   file); a sandboxing host rewrites them into the paths its handler sees;
//! - the host runs the action under the registration's limits and the cancel token, and
//!   says how it ended ([`InvocationEnd`]);
//! - when the action returned normally, the engine reads the result file itself and
//!   validates it ([`ResultFile::interpret`](handrail_contract::ResultFile::interpret)),
//!   so every host is held to the same result-file contract.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use handrail_contract::{Action, StepContext};

use crate::cancel::CancelToken;
use crate::registry::{HandlerKind, Registration};

/// A boxed future, as returned by [`LoadedHandler::invoke`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a handler says about itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Description {
    /// The handler id it implements (`vendor/name:major`).
    pub id: String,
    /// The actions it implements.
    pub actions: Vec<Action>,
    /// Contract version it was built against (major, minor).
    pub contract: (u16, u16),
}

impl Description {
    /// True when the handler implements `action`.
    pub fn supports(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }
}

/// Progress reported by a running action: `done` of `total`.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// One action to run.
pub struct Invocation {
    /// The action.
    pub action: Action,
    /// The step context with host paths (see the module docs).
    pub context: StepContext,
    /// Cancelled when the deployment is cancelled; the host must stop the action.
    pub cancel: CancelToken,
    /// Where the handler's progress reports go.
    pub progress: ProgressFn,
}

/// How an action ended, as far as the host can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationEnd {
    /// The handler returned; its result file says how the action went.
    Returned,
    /// The handler trapped or panicked.
    Trapped(String),
    /// The action ran past its time limit and was stopped.
    TimedOut,
    /// The handler went over its memory limit.
    OutOfMemory(String),
    /// The action was stopped because the deployment was cancelled.
    Cancelled,
    /// The worker process running a native handler died (signal, abort, `exit()`).
    WorkerDied(String),
    /// The host itself failed around the action (I/O, set-up).
    HostFailure(String),
}

/// A handler ready to run actions.
pub trait LoadedHandler: Send + Sync {
    /// What the handler said about itself when it was loaded.
    fn description(&self) -> &Description;

    /// Runs one action to its end.
    fn invoke(&self, invocation: Invocation) -> BoxFuture<'_, InvocationEnd>;
}

/// Error loading a handler.
#[derive(Debug, thiserror::Error)]
#[error("cannot load handler `{id}` from {artifact}: {reason}")]
pub struct LoadError {
    /// The handler id.
    pub id: String,
    /// The artifact path.
    pub artifact: String,
    /// What went wrong.
    pub reason: String,
}

/// Loads one kind of handler.
pub trait HandlerHost: Send + Sync {
    /// The kind of artifact this host loads.
    fn kind(&self) -> HandlerKind;

    /// Loads (or fetches from cache) the handler a registration names. The registration's
    /// artifact hash has already been checked by the registry.
    fn load<'a>(
        &'a self,
        registration: &'a Registration,
    ) -> BoxFuture<'a, Result<Arc<dyn LoadedHandler>, LoadError>>;
}
