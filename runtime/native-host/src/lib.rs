//! Runs native step handlers: shared libraries with the Handrail C ABI
//! (`sdk/c/handrail_handler.h`), each call in a sandboxed worker process of its own.
//!
//! [`NativeHost`] implements [`HandlerHost`] for [`HandlerKind::Native`]. The library is
//! never loaded into the runtime. Every call — `describe` at load, then every action —
//! starts the `handrail-native-worker` program through [`handrail_confine`], as every
//! program a handler runs is started: in a cgroup of its own (`limits.max_processes`,
//! `limits.process_memory_mib`; killed with everything in it when the call ends), with
//! every capability dropped but `capabilities.privileges`, `no_new_privs`, **Landlock**
//! (the step's payload files read-only, the action's work folder read-write,
//! `capabilities.read`, `capabilities.write`, `capabilities.run`, the library, the
//! system folders; no TCP unless granted; no signals outside) and seccomp (no kernel
//! interfaces, no namespaces, no socket of a family `capabilities.sockets` does not
//! grant), all in force before the worker's first instruction. The worker
//!
//! - sets **rlimits**: address space `limits.memory_mib`, CPU time
//!   `limits.timeout_secs`, no core dumps;
//! - re-hashes the library against the registration, loads it, checks the ABI handshake
//!   (same contract major, minor up to the runtime's), and makes the call.
//!
//! The host gives each action the registration's time limit and the deployment's cancel
//! token, and kills the worker's whole process group when either fires. How the worker
//! ends is how the action ends:
//!
//! | the worker… | [`InvocationEnd`] | extended code |
//! |---|---|---|
//! | reported that the action returned 0 | `Returned`: the engine reads the result file | the handler's |
//! | reported a non-zero status (a Rust handler that panicked) | `Trapped` | `0x34800010` |
//! | died by a signal (segfault, abort) or `exit()` | `WorkerDied` | `0x34800018` |
//! | ran past the time limit (or its CPU limit) | `TimedOut` | `0x34800011` |
//! | was cancelled | `Cancelled` | `0x34800013` |
//! | refused to load the library (hash, ABI), or could not be confined (no Landlock) | `HostFailure` | `0x34800017` |
//!
//! At load the same refusals are a [`LoadError`] (`0x34800014` for every action of the
//! handler's steps). Where the kernel has no Landlock the host says so and follows the
//! registration's [`LandlockPolicy`] (`config.landlock`: `"require"`, the default,
//! refuses; `"best-effort"` runs unconfined with a warning).
//!
//! Paths in the step context are the device's real paths: unlike a WebAssembly handler,
//! a native one sees no `/payload` or `/work`, only what Landlock lets it open.
//!
//! ```no_run
//! # async fn example(registration: handrail::registry::Registration) -> Result<(), Box<dyn std::error::Error>> {
//! use handrail::host::HandlerHost;
//! let host = handrail_native_host::NativeHost::beside_current_exe()?;
//! let handler = host.load(&registration).await?;
//! println!("{} supports {:?}", handler.description().id, handler.description().actions);
//! # Ok(()) }
//! ```

mod handler;
mod process;
mod protocol;
#[doc(hidden)]
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use handrail::host::{BoxFuture, HandlerHost, LoadError, LoadedHandler};
use handrail::registry::{HandlerKind, Registration};

pub use handrail::confinement::{CONFIG_KEY as LANDLOCK_CONFIG_KEY, LandlockPolicy};
pub use process::MAX_OUTPUT_BYTES;

use handler::NativeHandler;

/// The file name of the worker program.
pub const WORKER_PROGRAM: &str = "handrail-native-worker";

/// Error creating a [`NativeHost`].
#[derive(Debug, thiserror::Error)]
pub enum NativeHostError {
    /// The running executable's path is unknown, so the worker cannot be found beside it.
    #[error("cannot find the running executable to locate {WORKER_PROGRAM} beside it: {0}")]
    CurrentExe(std::io::Error),
}

/// Loads and runs native step handlers, each call in a confined worker process.
#[derive(Debug, Clone)]
pub struct NativeHost {
    worker: Arc<Path>,
}

impl NativeHost {
    /// A host that starts the worker program at `worker` (a build of this crate's
    /// `handrail-native-worker`).
    pub fn new(worker: impl Into<PathBuf>) -> NativeHost {
        // What a killed runtime's workers left running goes before anything runs again.
        handrail_confine::cgroup::sweep_left_behind();
        NativeHost {
            worker: Arc::from(worker.into()),
        }
    }

    /// A host whose worker program is [`WORKER_PROGRAM`] beside the running executable
    /// (or one folder up, where cargo puts test executables in `deps/`). Whether it is
    /// there is checked when a handler is loaded.
    pub fn beside_current_exe() -> Result<NativeHost, NativeHostError> {
        let exe = std::env::current_exe().map_err(NativeHostError::CurrentExe)?;
        let folder = exe.parent().unwrap_or(Path::new("/"));
        let beside = folder.join(WORKER_PROGRAM);
        let worker = match folder.parent() {
            Some(up) if !beside.exists() && folder.ends_with("deps") => up.join(WORKER_PROGRAM),
            _ => beside,
        };
        Ok(NativeHost::new(worker))
    }

    /// The worker program this host starts.
    pub fn worker(&self) -> &Path {
        &self.worker
    }
}

impl HandlerHost for NativeHost {
    fn kind(&self) -> HandlerKind {
        HandlerKind::Native
    }

    fn load<'a>(
        &'a self,
        registration: &'a Registration,
    ) -> BoxFuture<'a, Result<Arc<dyn LoadedHandler>, LoadError>> {
        Box::pin(async move {
            let loaded = if registration.kind == HandlerKind::Native {
                NativeHandler::load(self.worker.clone(), registration).await
            } else {
                Err(format!(
                    "it is a `{}` handler; this host loads `native` handlers",
                    registration.kind
                ))
            };
            match loaded {
                Ok(handler) => Ok(Arc::new(handler) as Arc<dyn LoadedHandler>),
                Err(reason) => Err(LoadError {
                    id: registration.id.clone(),
                    artifact: registration.artifact.display().to_string(),
                    reason,
                }),
            }
        })
    }
}
