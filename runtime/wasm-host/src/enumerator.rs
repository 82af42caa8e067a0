//! Component-enumerator plugins: WebAssembly components of the
//! `handrail:handler/component-enumerator` world (`wit/enumerator.wit`), loaded as a
//! [`ComponentEnumerator`].
//!
//! [`WasmHost::load_enumerator`] verifies the registration's artifact, compiles the
//! component (through the host's compiled-artifact cache) and pre-links it. Each
//! enumeration then runs in a fresh store, sandboxed like a handler action: the folders
//! the registration grants at their own paths and nothing else (no payload or work
//! folder, no network, no environment, no programs), the registration's memory limit and
//! time limit. The answer is validated with [`parse_components`]; a malformed answer, an
//! error the plugin returns, a trap, running out of memory or of time all become an
//! [`EnumeratorError`] naming the plugin and what went wrong.
//!
//! The runtime calls enumerators from admission, a blocking context, so the calls are
//! synchronous.
//!
//! ```no_run
//! # fn example(registration: handrail::registry::Registration) -> Result<(), Box<dyn std::error::Error>> {
//! use handrail::components::ComponentEnumerator;
//! let host = handrail_wasm_host::WasmHost::new("/var/lib/handrail/cache".into())?;
//! let enumerator = host.load_enumerator(&registration)?;
//! for component in enumerator.all_components()? {
//!     println!("{} ({})", component.name, component.id);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use handrail::components::{ComponentEnumerator, EnumeratorError, parse_components};
use handrail::registry::{HandlerKind, Registration};
use handrail_contract::Component;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::handler::sandboxed_wasi;
use crate::sandbox::GrantedFolder;
use crate::state::{MAX_GUEST_RESOURCES, MemoryLimiter, truncate};
use crate::stdio::CappedOutput;
use crate::{EPOCH_TICK, Shared, WasmHost};

mod bindings {
    //! Host-side bindings of the `handrail:handler/component-enumerator` world.
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "component-enumerator",
    });
}

use bindings::ComponentEnumeratorPre;

/// Most guest stderr kept per call, for error messages.
const STDERR_CAP: usize = 16 * 1024;

/// The data of one enumerator store.
struct EnumeratorState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for EnumeratorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A loaded component-enumerator plugin.
pub struct WasmEnumerator {
    /// Keeps the engine and its epoch ticker (the time limit) alive.
    shared: Arc<Shared>,
    pre: ComponentEnumeratorPre<EnumeratorState>,
    /// `<id> (<artifact>)`, for errors.
    name: String,
    folders: Vec<GrantedFolder>,
    config_json: String,
    memory_limit: usize,
    timeout: Duration,
}

impl std::fmt::Debug for WasmEnumerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEnumerator")
            .field("name", &self.name)
            .field("folders", &self.folders)
            .field("memory_limit", &self.memory_limit)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Which export a call runs.
enum Call<'a> {
    All,
    Select(&'a str),
}

impl WasmHost {
    /// Loads the component-enumerator plugin `registration` names (kind `wasm`; its
    /// `capabilities.read`/`write` folders, `limits` and `[config]` apply; `run` grants
    /// nothing, since enumerators cannot run programs).
    pub fn load_enumerator(
        &self,
        registration: &Registration,
    ) -> Result<WasmEnumerator, EnumeratorError> {
        let name = format!("{} ({})", registration.id, registration.artifact.display());
        let err = |message: String| EnumeratorError {
            source_name: name.clone(),
            message,
        };
        if registration.kind != HandlerKind::Wasm {
            return Err(err(format!(
                "it is registered as a `{}` artifact; enumerator plugins are `wasm` components",
                registration.kind
            )));
        }
        registration
            .verify_artifact()
            .map_err(|e| err(e.to_string()))?;
        let folders = GrantedFolder::of(registration).map_err(&err)?;
        let component = self.shared.cache.load(
            &self.shared.engine,
            &registration.artifact,
            &registration.sha256,
        );
        let component = component.map_err(&err)?;
        let mut linker = Linker::new(&self.shared.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| err(format!("cannot link WASI: {e:#}")))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(ComponentEnumeratorPre::new)
            .map_err(|e| {
                err(format!(
                    "the component does not target the handrail:handler/component-enumerator world: {e:#}"
                ))
            })?;
        let memory_limit = usize::try_from(registration.limits.memory_mib)
            .ok()
            .and_then(|mib| mib.checked_mul(1024 * 1024))
            .unwrap_or(usize::MAX);
        Ok(WasmEnumerator {
            shared: self.shared.clone(),
            pre,
            name,
            folders,
            config_json: serde_json::Value::Object(registration.config.clone()).to_string(),
            memory_limit,
            timeout: Duration::from_secs(registration.limits.timeout_secs),
        })
    }
}

impl WasmEnumerator {
    fn error(&self, message: String) -> EnumeratorError {
        EnumeratorError {
            source_name: self.name.clone(),
            message,
        }
    }

    /// Runs one export in a fresh sandboxed instance and validates its answer.
    fn call(&self, call: Call<'_>) -> Result<Vec<Component>, EnumeratorError> {
        let stderr = CappedOutput::new(STDERR_CAP);
        let mut wasi = sandboxed_wasi(&CappedOutput::new(STDERR_CAP), &stderr);
        for folder in &self.folders {
            if !Path::new(&folder.path).exists() {
                tracing::warn!(enumerator = %self.name, folder = %folder.path, "a granted folder does not exist; the enumerator will not see it");
                continue;
            }
            wasi.preopened_dir(&folder.path, &folder.path, folder.perms)
                .map(|_| ())
                .map_err(|e| {
                    self.error(format!(
                        "cannot open the granted folder {}: {e:#}",
                        folder.path
                    ))
                })?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_GUEST_RESOURCES);
        let mut store = Store::new(
            &self.shared.engine,
            EnumeratorState {
                wasi: wasi.build(),
                table,
                limiter: MemoryLimiter::new(self.memory_limit),
            },
        );
        store.limiter(|s| &mut s.limiter);
        let ticks = self.timeout.as_millis() / EPOCH_TICK.as_millis().max(1) + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();

        let answer = self.pre.instantiate(&mut store).and_then(|instance| {
            let exports = instance.handrail_handler_enumerator();
            match call {
                Call::All => exports.call_get_all_components(&mut store, &self.config_json),
                Call::Select(selector) => {
                    exports.call_select_components(&mut store, &self.config_json, selector)
                }
            }
        });
        match answer {
            Ok(Ok(json)) => parse_components(&self.name, json.as_bytes()),
            Ok(Err(message)) => Err(self.error(format!(
                "it reported an error: {}",
                truncate(&message, 4096)
            ))),
            Err(e) => Err(self.error(self.failure(e, &store, &stderr))),
        }
    }

    /// What a failed call means: out of memory, out of time, or a trap (with the end
    /// of the guest's stderr, a Rust panic message, say).
    fn failure(
        &self,
        error: wasmtime::Error,
        store: &Store<EnumeratorState>,
        stderr: &CappedOutput,
    ) -> String {
        if let Some(asked) = store.data().limiter.exceeded {
            return format!(
                "out of memory: it asked for {asked} bytes; its limit is {} bytes",
                self.memory_limit
            );
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return format!("it ran past its time limit of {} s", self.timeout.as_secs());
        }
        let mut message = format!("it trapped: {}", truncate(&format!("{error:#}"), 4096));
        let (bytes, _) = stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_end();
        if !text.is_empty() {
            message.push_str("\nenumerator stderr: ");
            message.push_str(&truncate(text, 2048));
        }
        message
    }
}

impl ComponentEnumerator for WasmEnumerator {
    fn all_components(&self) -> Result<Vec<Component>, EnumeratorError> {
        self.call(Call::All)
    }

    /// Asks the plugin once per compatibility map (`select-components`) and merges the
    /// answers, each component once, in the order first selected.
    fn select(
        &self,
        compatibility: &[BTreeMap<String, String>],
    ) -> Result<Vec<Component>, EnumeratorError> {
        let mut selected: Vec<Component> = Vec::new();
        for selector in compatibility {
            let json = serde_json::to_string(selector)
                .map_err(|e| self.error(format!("cannot encode the selector: {e}")))?;
            for component in self.call(Call::Select(&json))? {
                if !selected.iter().any(|c| c.id == component.id) {
                    selected.push(component);
                }
            }
        }
        Ok(selected)
    }
}
