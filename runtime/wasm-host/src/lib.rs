//! Runs WebAssembly step handlers: components of the `handrail:handler/step-handler`
//! world (`wit/handler.wit`), under wasmtime.
//!
//! [`WasmHost`] implements [`HandlerHost`] for [`HandlerKind::Wasm`]. Loading a handler
//! compiles its component once (or takes it from the compiled-artifact cache, see
//! [`CacheStats`]), pre-links it, and asks it to `describe` itself; the contract's major
//! version must match. Every action then runs in a fresh store with:
//!
//! - a WASI view of exactly the step's payload files (read-only, `/payload`), the
//!   action's work folder (read-write, `/work`) and the host folders the registration
//!   grants, at their own paths (`capabilities.read` read-only, `capabilities.write`
//!   read-write): no network, no environment, no arguments; the step context is
//!   rewritten to those paths;
//! - the registration's memory limit (over it → [`OutOfMemory`]) and time limit (epoch
//!   interruption; over it → [`TimedOut`]), and the deployment's cancel token
//!   (→ [`Cancelled`]); a trap is [`Trapped`];
//! - the `host` imports: `log` (to `tracing`, capped), `progress`, `is-cancelled`, and
//!   `run` for the programs the registration grants (`capabilities.run`).
//!
//! Guest stdout and stderr are captured (capped) and written to the log at the end of
//! the action.
//!
//! A registration may name a `.wasm` component or one precompiled by [`Precompiler`]
//! (`handrail precompile`, a `.cwasm`); the host tells them apart by their header. With
//! the default `compiler` feature it runs both. Without it (the lean build for devices:
//! no Cranelift in the binary) it runs only precompiled components and refuses a `.wasm`
//! one with a load error saying so; see the `precompiled` module for the trust a
//! precompiled artifact gets and when it is refused.
//!
//! The same host loads component-enumerator plugins
//! (`handrail:handler/component-enumerator`, `wit/enumerator.wit`) with
//! [`WasmHost::load_enumerator`], sandboxed the same way; see [`WasmEnumerator`].
//!
//! [`OutOfMemory`]: handrail::host::InvocationEnd::OutOfMemory
//! [`TimedOut`]: handrail::host::InvocationEnd::TimedOut
//! [`Cancelled`]: handrail::host::InvocationEnd::Cancelled
//! [`Trapped`]: handrail::host::InvocationEnd::Trapped
//!
//! ```no_run
//! # async fn example(registration: handrail::registry::Registration) -> Result<(), Box<dyn std::error::Error>> {
//! use handrail::host::HandlerHost;
//! let host = handrail_wasm_host::WasmHost::new("/var/lib/handrail/cache/handlers".into())?;
//! let handler = host.load(&registration).await?;
//! println!("{} supports {:?}", handler.description().id, handler.description().actions);
//! # Ok(()) }
//! ```

mod cache;
mod enumerator;
mod handler;
mod precompiled;
mod run;
mod sandbox;
mod state;
mod stdio;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use handrail::host::{BoxFuture, HandlerHost, LoadError, LoadedHandler};
use handrail::registry::{HandlerKind, Registration};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

pub use cache::CacheStats;
pub use enumerator::WasmEnumerator;
pub use precompiled::check_artifact;
#[cfg(feature = "compiler")]
pub use precompiled::{PrecompileError, Precompiler, Target};
pub use run::MAX_OUTPUT as MAX_RUN_OUTPUT;
pub use sandbox::{PAYLOAD_DIR, WORK_DIR};
pub use state::{MAX_GUEST_RESOURCES, MAX_LOG_MESSAGE_BYTES, MAX_LOG_MESSAGES};

use cache::ComponentCache;
use handler::WasmHandler;
use sandbox::EmptyFolder;
use state::HostState;

mod bindings {
    //! Host-side bindings of the `handrail:handler/step-handler` world.
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "step-handler",
        imports: { "handrail:handler/host.run": async },
        exports: { default: async },
    });
}

/// How often the engine's epoch advances: the granularity of time limits, and how often
/// a running guest yields to the async runtime.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine configuration of every build, with or without the compiler: precompiled
/// components are only accepted by an engine configured exactly like the one that made
/// them, so this is the one place its settings live.
pub(crate) fn engine_config() -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config
}

/// How many handler instances (actions, load-time `describe` calls, enumerator calls)
/// one host's instance pool holds at once. The engine runs one action at a time, so
/// this is far more than a deployment needs; an instantiation past it fails the action
/// with wasmtime's "pool exhausted" error rather than waiting.
pub const POOLED_INSTANCES: u32 = 32;

/// How much of each pooled memory and table stays mapped between actions, reset with
/// `memset` (only the pages the last action touched, where the kernel can say which)
/// instead of being handed back to the kernel and faulted in again page by page.
const KEEP_RESIDENT: usize = 1 << 20;

/// The engine that runs handlers: [`engine_config`] with an instance pool, so the
/// memories, tables and async stacks of past actions are reused instead of mapped and
/// unmapped for each one (every action instantiates its handler afresh). Memory limits
/// are unchanged: a registration's `memory_mib` is enforced per store by the resource
/// limiter, whatever allocator backs the memory. The pool only reserves address space
/// (some hundreds of GiB on a 64-bit host, committed as used); on 32-bit hosts, or
/// where the reservation is refused (a `ulimit -v`), instances are allocated on demand.
/// The allocation strategy does not change compiled code, so precompiled and cached
/// artifacts load in either.
fn running_engine() -> Result<Engine, WasmHostError> {
    if cfg!(target_pointer_width = "64") {
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 8)
            .total_memories(POOLED_INSTANCES * 2)
            .total_tables(POOLED_INSTANCES * 8)
            .total_stacks(POOLED_INSTANCES)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = engine_config();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&config) {
            Ok(engine) => return Ok(engine),
            Err(e) => tracing::warn!(
                "cannot reserve the WebAssembly instance pool ({e:#}); allocating each instance on demand"
            ),
        }
    }
    Engine::new(&engine_config()).map_err(|e| WasmHostError::Engine(format!("{e:#}")))
}

/// Error creating a [`WasmHost`].
#[derive(Debug, thiserror::Error)]
pub enum WasmHostError {
    /// wasmtime refused the engine configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The empty folder that file-less steps see as `/payload` cannot be created in the
    /// temporary folder.
    #[error("cannot create an empty folder in the temporary folder: {0}")]
    Scratch(std::io::Error),
    /// The compiled-handler cache folder cannot be created.
    #[error("cannot create the compiled-handler cache folder {path}: {source}")]
    CacheDir {
        /// The folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Loads and runs WebAssembly step handlers. One engine, one compiled-artifact cache,
/// one epoch ticker thread; handlers loaded from it share them.
#[derive(Clone)]
pub struct WasmHost {
    shared: Arc<Shared>,
}

/// What the host and the handlers it loaded share.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    cache: ComponentCache,
    /// What a step without files sees as `/payload`.
    pub(crate) empty_payload: EmptyFolder,
    _ticker: Ticker,
}

impl WasmHost {
    /// A host whose compiled handlers are cached in `cache_dir` (created when missing;
    /// it must be writable only by the runtime, since cached machine code is trusted).
    /// Without the `compiler` feature nothing is compiled, so nothing is cached and the
    /// folder is neither created nor used.
    pub fn new(cache_dir: PathBuf) -> Result<WasmHost, WasmHostError> {
        // What a killed runtime's programs left running goes before anything runs again.
        handrail_confine::cgroup::sweep_left_behind();
        let engine = running_engine()?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| {
                bindings::StepHandler::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            })
            .map_err(|e| WasmHostError::Engine(format!("{e:#}")))?;
        let cache = ComponentCache::new(&engine, cache_dir.clone()).map_err(|source| {
            WasmHostError::CacheDir {
                path: cache_dir,
                source,
            }
        })?;
        let empty_payload = EmptyFolder::new().map_err(WasmHostError::Scratch)?;
        let ticker = Ticker::start(engine.clone());
        Ok(WasmHost {
            shared: Arc::new(Shared {
                engine,
                linker,
                cache,
                empty_payload,
                _ticker: ticker,
            }),
        })
    }

    /// Builds, then drops, the file-system sandbox and WASI context an action of a
    /// handler with no granted folders gets for `context`: the sandbox's share of a
    /// call, which the benchmark measures on its own.
    #[doc(hidden)]
    pub fn sandbox_setup(&self, context: &handrail_contract::StepContext) -> Result<(), String> {
        handler::sandbox_setup(&self.shared, context)
    }

    /// Cache hits and misses since the host was created.
    pub fn cache_stats(&self) -> CacheStats {
        self.shared.cache.stats()
    }

    /// The cache file a handler with this artifact sha256 is (or would be) stored in.
    #[cfg(feature = "compiler")]
    pub fn cache_entry(&self, sha256: &str) -> PathBuf {
        self.shared.cache.entry_path(sha256)
    }

    async fn load_handler(&self, registration: &Registration) -> Result<WasmHandler, String> {
        if registration.kind != HandlerKind::Wasm {
            return Err(format!(
                "it is a `{}` handler; this host loads `wasm` handlers",
                registration.kind
            ));
        }
        let shared = self.shared.clone();
        let artifact = registration.artifact.clone();
        let sha256 = registration.sha256.clone();
        // Compiling (or deserialising) is CPU-bound for a while; keep it off the async
        // workers.
        let component = tokio::task::spawn_blocking(move || {
            shared.cache.load(&shared.engine, &artifact, &sha256)
        })
        .await
        .map_err(|e| format!("the load task failed: {e}"))??;
        WasmHandler::new(self.shared.clone(), registration, &component).await
    }
}

impl HandlerHost for WasmHost {
    fn kind(&self) -> HandlerKind {
        HandlerKind::Wasm
    }

    fn load<'a>(
        &'a self,
        registration: &'a Registration,
    ) -> BoxFuture<'a, Result<Arc<dyn LoadedHandler>, LoadError>> {
        Box::pin(async move {
            match self.load_handler(registration).await {
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

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    fn start(engine: Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = thread::Builder::new()
            .name("handrail-wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            });
        if let Err(e) = spawned {
            // Without a ticker, time limits still hold (the action's timer drops the
            // guest), but a busy guest no longer yields to the async runtime.
            tracing::error!("cannot start the epoch ticker thread: {e}");
        }
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
