//! The handler conformance kit: proves a step handler honours the Handrail contract
//! (`wit/handler.wit`) before it reaches a device.
//!
//! The kit loads the handler exactly as the runtime does — a WebAssembly component in the
//! WASM host, a native library in the native host's confined worker — and runs its
//! actions on a scratch device: a temporary folder with payload files it writes, a work
//! folder per action, a canary it watches, and the step its [`Profile`] describes. Every
//! check of the catalogue ([`Check`]) gets a verdict; the [`Report`] renders as a summary,
//! JSON or JUnit XML.
//!
//! From a vendor's own `cargo test`:
//!
//! ```no_run
//! use handrail_conformance::{Kit, Profile};
//!
//! let kit = Kit::from_path("target/wasm32-wasip2/release/contoso_camera.wasm".as_ref())
//!     .unwrap()
//!     .profile(Profile::load("conform.toml".as_ref()).unwrap());
//! let report = kit.run().unwrap();
//! assert!(report.passed(), "{}", report.to_human());
//! ```
//!
//! The same runs from the command line as `handrail conform <artifact or registration>`.

mod bench;
pub mod checks;
pub mod profile;
pub mod report;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use handrail::host::{HandlerHost, LoadedHandler};
use handrail::registry::{HandlerKind, Limits, Registration, RegistryError, sha256_file};
use handrail_native_host::NativeHost;
use handrail_wasm_host::WasmHost;

pub use checks::Check;
pub use profile::{DEVICE_PLACEHOLDER, Profile, ProfileError};
pub use report::{CheckResult, Report, Verdict};

/// The id given to a bare artifact until it says its own.
const PROVISIONAL_ID: &str = "handrail-conformance/unregistered:0";

/// Errors that stop the kit before any check runs.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// The registration cannot be read or is invalid.
    #[error(transparent)]
    Registration(#[from] RegistryError),
    /// The profile cannot be read or is invalid.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The path is neither a registration (`.toml`) nor an artifact (`.wasm`, `.cwasm`,
    /// `.so`).
    #[error(
        "{0}: not a registration (.toml), a component (.wasm, or .cwasm precompiled) or a native library (.so)"
    )]
    UnknownInput(PathBuf),
    /// The scratch device or a host could not be set up.
    #[error("cannot set up the conformance run: {0}")]
    Setup(String),
}

/// A conformance run over one handler; configure it, then [`run`](Kit::run) it.
pub struct Kit {
    registration: Registration,
    profile: Profile,
    native_worker: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
}

impl Kit {
    /// A run over the handler `registration` names, with the default [`Profile`].
    pub fn new(registration: Registration) -> Kit {
        Kit {
            registration,
            profile: Profile::default(),
            native_worker: None,
            cache_dir: None,
        }
    }

    /// A run over a registration file (`.toml`) or a bare artifact (`.wasm` component,
    /// `.cwasm` precompiled component, `.so` native library; the handler's id is taken
    /// from its `describe`, and it gets no capabilities and default limits), with the
    /// profile beside it ([`Profile::beside`]) when there is one.
    pub fn from_path(path: &Path) -> Result<Kit, KitError> {
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let kind = match extension {
            "toml" => None,
            "wasm" | "cwasm" => Some(HandlerKind::Wasm),
            "so" => Some(HandlerKind::Native),
            _ => return Err(KitError::UnknownInput(path.to_owned())),
        };
        let registration = match kind {
            None => {
                let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                Registration::parse(path, &text)?
            }
            Some(kind) => {
                let artifact = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
                let sha256 = sha256_file(&artifact).map_err(|source| RegistryError::Io {
                    path: artifact.clone(),
                    source,
                })?;
                Registration {
                    id: PROVISIONAL_ID.into(),
                    kind,
                    artifact,
                    sha256,
                    capabilities: Default::default(),
                    limits: Limits::default(),
                    config: Default::default(),
                    source: None,
                }
            }
        };
        let mut kit = Kit::new(registration);
        if let Some(profile) = Profile::beside(path) {
            kit.profile = Profile::load(&profile)?;
        }
        Ok(kit)
    }

    /// Runs the handler with this profile's step.
    pub fn profile(mut self, profile: Profile) -> Kit {
        self.profile = profile;
        self
    }

    /// Where the native host's worker program is (default: `handrail-native-worker`
    /// beside the running executable).
    pub fn native_worker(mut self, worker: impl Into<PathBuf>) -> Kit {
        self.native_worker = Some(worker.into());
        self
    }

    /// Where compiled WebAssembly handlers are cached (default: a folder of the run that
    /// is removed with it). The folder must be writable only by trusted users.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Kit {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The registration the kit checks.
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// Runs every check on a runtime of its own; see [`run_async`](Kit::run_async).
    pub fn run(self) -> Result<Report, KitError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| KitError::Setup(format!("cannot start an async runtime: {e}")))?;
        runtime.block_on(self.run_async())
    }

    /// Runs every check. A handler that cannot be loaded fails [`Check::Describe`] with
    /// the reason; the other checks are then skipped.
    pub async fn run_async(self) -> Result<Report, KitError> {
        let started = Instant::now();
        let root = tempfile::Builder::new()
            .prefix("handrail-conformance-")
            .tempdir()
            .map_err(|e| KitError::Setup(format!("cannot create a scratch folder: {e}")))?;
        let bench_root = root.path().join("bench");
        std::fs::create_dir_all(&bench_root)
            .map_err(|e| KitError::Setup(format!("cannot create the scratch device: {e}")))?;
        let (payload, mut registration) =
            bench::Bench::prepare(&bench_root, &self.registration, &self.profile)
                .map_err(|e| KitError::Setup(format!("cannot lay out the scratch device: {e}")))?;
        let host: Box<dyn HandlerHost> = match registration.kind {
            HandlerKind::Wasm => {
                let cache = self
                    .cache_dir
                    .clone()
                    .unwrap_or_else(|| root.path().join("cache"));
                Box::new(WasmHost::new(cache).map_err(|e| KitError::Setup(e.to_string()))?)
            }
            HandlerKind::Native => Box::new(match &self.native_worker {
                Some(worker) => NativeHost::new(worker.clone()),
                None => {
                    NativeHost::beside_current_exe().map_err(|e| KitError::Setup(e.to_string()))?
                }
            }),
            HandlerKind::InProcess => {
                return Err(KitError::Setup(
                    "in-process handlers have no sandbox to check; register the artifact".into(),
                ));
            }
        };
        let loaded = match load(host.as_ref(), &mut registration).await {
            Ok(handler) => handler,
            Err(reason) => return Ok(self.unloadable(reason, started)),
        };
        let description = loaded.description().clone();
        let bench = bench::Bench::new(
            &bench_root,
            loaded,
            registration.clone(),
            self.profile.clone(),
            payload,
        );
        let results = run::check(&bench, &self.profile).await;
        Ok(Report {
            handler: registration.id,
            artifact: registration.artifact,
            description: Some(description),
            results,
            duration: started.elapsed(),
        })
    }

    fn unloadable(&self, reason: String, started: Instant) -> Report {
        let results = Check::ALL
            .into_iter()
            .map(|check| CheckResult {
                check,
                verdict: if check == Check::Describe {
                    Verdict::Failed(reason.clone())
                } else {
                    Verdict::Skipped("the handler could not be loaded".into())
                },
                observations: Vec::new(),
            })
            .collect();
        Report {
            handler: self.registration.id.clone(),
            artifact: self.registration.artifact.clone(),
            description: None,
            results,
            duration: started.elapsed(),
        }
    }
}

/// Loads the handler; a bare artifact (provisional id) is loaded again under the id its
/// `describe` gave, which the hosts name when they refuse the provisional one.
async fn load(
    host: &dyn HandlerHost,
    registration: &mut Registration,
) -> Result<Arc<dyn LoadedHandler>, String> {
    match host.load(registration).await {
        Ok(handler) => Ok(handler),
        Err(e) if registration.id == PROVISIONAL_ID => {
            let described = e
                .reason
                .strip_prefix("it describes itself as `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(id, _)| id.to_owned());
            let Some(id) = described else {
                return Err(e.to_string());
            };
            registration.id = id;
            host.load(registration).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}
