//! The embedding API: a [`Runtime`] owns a state directory and runs deployments.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use handrail::{Runtime, AdmitOptions};
//! let runtime = Runtime::builder("/var/lib/handrail").open()?;
//! // After a restart, finish what was in progress first.
//! if let Some(d) = runtime.resume()? {
//!     let report = d.finish().await?;
//!     println!("resumed: {}", report.status);
//! }
//! let manifest = std::fs::read("update.json")?;
//! let mut deployment = runtime
//!     .deploy(&manifest, "payloads".as_ref(), AdmitOptions::default())
//!     .await?;
//! while let Some(event) = deployment.next_event().await {
//!     println!("{event:?}");
//! }
//! let report = deployment.finish().await?;
//! println!("{}", report.status);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

use crate::admit::{Admission, AdmitError, AdmitOptions};
use crate::bundled::BundledHandler;
use crate::cancel::CancelToken;
use crate::clock::now_rfc3339;
use crate::components::ComponentEnumerator;
use crate::config::Config;
use crate::engine::{self, EngineError, Event, HandlerSet};
use crate::host::HandlerHost;
use crate::in_process::InProcessHost;
use crate::journal::{Journal, JournalError, Record, Replay};
use crate::manifest::Document;
use crate::registry::{Registry, RegistryError};
use crate::report::{DeploymentStatus, Report};
use crate::state::{HistoryEntry, InstalledCriteria, StateDir, StateError, StateView};
use crate::trust::{Trust, TrustConfigError};

/// The file in an admitted deployment's folder that marks it admitted (it holds the
/// update id).
const ADMITTED: &str = "admitted";

/// Errors of the runtime outside a deployment's steps.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// State directory problem (including: owned by another process).
    #[error(transparent)]
    State(#[from] StateError),
    /// Registrations could not be loaded.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The deployment was refused.
    #[error(transparent)]
    Admit(#[from] AdmitError),
    /// The configuration file cannot be read or is not valid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The `[signing]` configuration's root keys cannot be used.
    #[error("signing.{0}")]
    Trust(#[from] TrustConfigError),
    /// The engine stopped.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A handler host could not be started.
    #[error("handler host: {0}")]
    Host(String),
    /// The configuration grants capabilities to a handler id nothing is registered under.
    #[error(
        "handler_grants.\"{id}\": no handler `{id}` is registered, so there is nothing to grant to (registered: {registered})"
    )]
    GrantsForUnknownHandler {
        /// The id the configuration names.
        id: String,
        /// The ids that are registered.
        registered: String,
    },
    /// A grant would let a handler reach the runtime's own files: its state directory,
    /// configuration, hooks, trust anchors or executables.
    #[error(
        "handler `{id}`: the grant {field} = `{grant}` covers {what} {protected}; a handler that could reach it could change what the runtime trusts and runs. Grant a folder that does not contain it (or lies inside it)"
    )]
    GrantCoversRuntime {
        /// The handler.
        id: String,
        /// `capabilities.write`, `capabilities.read` or `capabilities.run`.
        field: &'static str,
        /// The granted path.
        grant: PathBuf,
        /// What it covers, for people ("the state directory").
        what: &'static str,
        /// The covered path.
        protected: PathBuf,
    },
    /// The journal of an admitted deployment is gone (deleted or emptied): what it did
    /// cannot be known. It is recorded in history as failed.
    #[error(
        "the journal of deployment `{deployment}` ({update_id}) is gone ({journal} was deleted or emptied while it ran or waited); what its steps did to the device cannot be known: check the device. It is recorded in history as failed"
    )]
    JournalLost {
        /// Its id.
        deployment: String,
        /// The update it was for.
        update_id: String,
        /// The journal file.
        journal: PathBuf,
    },
    /// The state directory's file system has less free space than the runtime keeps
    /// for its records: the deployment is not resumed (nothing is changed) until there
    /// is room.
    #[error(
        "no space left on the file system of {dir}: {free_mib} MiB free, under the {reserve_mib} MiB the runtime keeps for its records ([deployment] reserve_mib); deployment `{deployment}` is kept as it is: free some space and run `handrail resume` again"
    )]
    NoSpace {
        /// The state directory.
        dir: PathBuf,
        /// Free MiB.
        free_mib: u64,
        /// The reserve, in MiB.
        reserve_mib: u64,
        /// The deployment waiting.
        deployment: String,
    },
    /// A deployment is already in progress or suspended.
    #[error(
        "deployment `{deployment}` is {status}; run `handrail resume` to finish it before starting another"
    )]
    Busy {
        /// Its id.
        deployment: String,
        /// Its status.
        status: String,
    },
}

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    state_dir: PathBuf,
    registry: Option<Registry>,
    hosts: Vec<Arc<dyn HandlerHost>>,
    enumerator: Option<Arc<dyn ComponentEnumerator>>,
    bundled: Vec<BundledHandler>,
    deferred_hosts: Vec<HostFactory>,
    config: Option<Config>,
    allow_unsigned: bool,
    linked: Vec<crate::registry::Registration>,
    protected: Vec<(&'static str, PathBuf)>,
    transport: Option<Arc<dyn crate::download::Transport>>,
}

/// Builds a host once the state directory is locked.
type HostFactory = Box<dyn FnOnce(&StateView) -> Result<Arc<dyn HandlerHost>, String>>;

impl RuntimeBuilder {
    /// Names another of the runtime's own files or folders (`what`, for people: "the
    /// compiled-handler cache") that no handler may be granted, beside the state
    /// directory, the configuration, the hooks, the root key package and the
    /// executables the runtime knows itself.
    pub fn protect(mut self, what: &'static str, path: impl Into<PathBuf>) -> Self {
        self.protected.push((what, path.into()));
        self
    }

    /// Installs these bundled handlers into `<state>/handlers/` when the runtime opens
    /// (see [`bundled`](crate::bundled)).
    pub fn bundled(mut self, handlers: Vec<BundledHandler>) -> Self {
        self.bundled = handlers;
        self
    }

    /// Uses this registry instead of reading `<state>/handlers/`.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Adds a handler host (one per kind).
    pub fn host(mut self, host: impl HandlerHost + 'static) -> Self {
        self.hosts.push(Arc::new(host));
        self
    }

    /// Adds a handler host built once the state directory is locked (for hosts that keep
    /// files in it, such as a compiled-artifact cache): nothing is created in the state
    /// directory before the lock is held.
    pub fn host_with<H, E>(
        mut self,
        make: impl FnOnce(&StateView) -> Result<H, E> + 'static,
    ) -> Self
    where
        H: HandlerHost + 'static,
        E: std::fmt::Display,
    {
        self.deferred_hosts.push(Box::new(move |view| {
            make(view)
                .map(|h| Arc::new(h) as Arc<dyn HandlerHost>)
                .map_err(|e| e.to_string())
        }));
        self
    }

    /// Adds an in-process host and registers every handler it holds (kind `in-process`,
    /// no artifact): handlers linked into the embedding program.
    pub fn in_process(mut self, host: InProcessHost) -> Self {
        self.linked.extend(host.registrations());
        self.hosts.push(Arc::new(host));
        self
    }

    /// Sets the configuration (device identity, policies, hooks). Without it, the
    /// runtime reads `<state>/config.toml` when that file exists, as the `handrail`
    /// command does, and uses the defaults otherwise.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Accepts unsigned update manifests whatever the configuration says (signatures
    /// present are still checked): for tests, benchmarks and demos.
    pub fn allow_unsigned(mut self) -> Self {
        self.allow_unsigned = true;
        self
    }

    /// Downloads payload files the payload folder lacks from the envelope's `fileUrls`
    /// through `transport` (`handrail-http` gives HTTP and HTTPS), resumably, into
    /// `<state>/downloads/`, as `[download]` in the configuration says. Without one, such
    /// a file refuses the deployment.
    ///
    /// An agent that brings its own transport (a vendor's CDN client, a peer-to-peer
    /// cache) answers GETs; resuming, hashing, retrying and verifying stay the runtime's:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use handrail::download::{ContentRange, Request, Response, Transport, TransportError};
    ///
    /// /// Serves files of a local mirror for `mirror://<name>` URLs, resuming as asked.
    /// struct Mirror(std::path::PathBuf);
    ///
    /// impl Transport for Mirror {
    ///     fn get(&self, request: &Request<'_>) -> Result<Response, TransportError> {
    ///         let name = request.url.strip_prefix("mirror://").ok_or_else(|| {
    ///             TransportError::Fatal(format!("{}: not a mirror URL", request.url))
    ///         })?;
    ///         let bytes = std::fs::read(self.0.join(name))
    ///             .map_err(|e| TransportError::Transient(e.to_string()))?;
    ///         let total = bytes.len() as u64;
    ///         let from = request.from.min(total);
    ///         Ok(Response {
    ///             status: if from > 0 { 206 } else { 200 },
    ///             url: request.url.to_owned(),
    ///             content_length: Some(total - from),
    ///             content_range: (from > 0).then(|| ContentRange {
    ///                 start: from,
    ///                 end: total - 1,
    ///                 total: Some(total),
    ///             }),
    ///             validator: Some(format!("\"{total}\"")),
    ///             retry_after: None,
    ///             body: Box::new(std::io::Cursor::new(bytes[from as usize..].to_vec())),
    ///         })
    ///     }
    /// }
    ///
    /// # let state = tempfile::tempdir().unwrap();
    /// let runtime = handrail::Runtime::builder(state.path())
    ///     .transport(Arc::new(Mirror("/srv/mirror".into())))
    ///     .allow_unsigned()
    ///     .open()
    ///     .unwrap();
    /// # drop(runtime);
    /// ```
    pub fn transport(mut self, transport: Arc<dyn crate::download::Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Sets the component enumerator used for child updates.
    pub fn enumerator(mut self, enumerator: impl ComponentEnumerator + 'static) -> Self {
        self.enumerator = Some(Arc::new(enumerator));
        self
    }

    /// Locks the state directory, loads the registrations and the signing root keys.
    pub fn open(mut self) -> Result<Runtime, RuntimeError> {
        let mut config = match self.config.take() {
            Some(config) => config,
            None => {
                let path = self.state_dir.join("config.toml");
                if path.exists() {
                    Config::load(&path)?
                } else {
                    Config::default()
                }
            }
        };
        if self.allow_unsigned {
            config.signing.required = false;
        }
        let trust = Trust::from_config(&config.signing)?;
        let state = StateDir::open(&self.state_dir)?;
        if !self.bundled.is_empty() {
            let dir = state.handlers_dir();
            crate::bundled::install(&dir, &self.bundled)
                .map_err(|source| StateError::Io { path: dir, source })?;
        }
        let mut hosts = self.hosts;
        for make in self.deferred_hosts {
            hosts.push(make(&state).map_err(RuntimeError::Host)?);
        }
        let mut registry = match self.registry {
            Some(r) => r,
            None => Registry::load_dir(&state.handlers_dir())?,
        };
        for registration in self.linked {
            registry.insert(registration)?;
        }
        for (id, handler_config) in &config.handler_config {
            if !registry.merge_config(id, handler_config) {
                tracing::warn!("configuration for handler `{id}`: no such handler is registered");
            }
        }
        for (id, grants) in &config.handler_grants {
            if !registry.grant(id, grants) {
                let registered: Vec<&str> = registry.iter().map(|r| r.id.as_str()).collect();
                return Err(RuntimeError::GrantsForUnknownHandler {
                    id: id.clone(),
                    registered: if registered.is_empty() {
                        "none".to_owned()
                    } else {
                        registered.join(", ")
                    },
                });
            }
        }
        let mut protected = protected_paths(state.root(), &config);
        protected.extend(
            self.protected
                .into_iter()
                .map(|(what, path)| (what, path, false)),
        );
        check_grants(&registry, &protected)?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                handlers: Arc::new(HandlerSet::new(registry, hosts)),
                downloader: self.transport.map(|t| {
                    crate::download::Downloader::new(
                        t,
                        state.root().join("downloads"),
                        config.download.clone(),
                    )
                }),
                enumerator: self.enumerator,
                config,
                trust,
                state,
            }),
        })
    }
}

/// The runtime's own files, which no grant may reach: what each is, for people, and
/// whether reading it is harmless (then only write grants are refused).
fn protected_paths(state: &Path, config: &Config) -> Vec<(&'static str, PathBuf, bool)> {
    let mut protected = vec![("the state directory", state.to_owned(), false)];
    if let Some(source) = &config.source {
        protected.push(("the configuration", source.clone(), false));
    }
    for hook in [&config.hooks.pre_update, &config.hooks.post_update]
        .into_iter()
        .flatten()
    {
        protected.push(("the hook", hook.clone(), true));
    }
    if let Some(package) = &config.signing.root_key_package {
        protected.push(("the root key package", package.clone(), true));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let worker = dir.join("handrail-native-worker");
            if worker.exists() {
                protected.push(("the native worker", worker, true));
            }
        }
        protected.push(("the runtime's executable", exe, true));
    }
    protected
}

/// Refuses a grant that covers one of the runtime's own files or lies inside one of its
/// folders. Writing `/`, the whole system, is the exception: a package manager's handler
/// needs it, and it is granted by name, not by accident.
fn check_grants(
    registry: &Registry,
    protected: &[(&'static str, PathBuf, bool)],
) -> Result<(), RuntimeError> {
    let resolved = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let protected: Vec<(&'static str, PathBuf, PathBuf, bool)> = protected
        .iter()
        .map(|(what, path, readable)| (*what, path.clone(), resolved(path), *readable))
        .collect();
    for registration in registry.iter() {
        let caps = &registration.capabilities;
        for (field, grants, write) in [
            ("capabilities.write", &caps.write, true),
            ("capabilities.read", &caps.read, false),
            ("capabilities.run", &caps.run, false),
        ] {
            for grant in grants {
                if write && grant == Path::new("/") {
                    tracing::debug!(handler = %registration.id, "granted writing the whole file system");
                    continue;
                }
                let granted = resolved(grant);
                for (what, path, real, readable) in &protected {
                    if !write && *readable {
                        continue;
                    }
                    if real.starts_with(&granted) || granted.starts_with(real) {
                        return Err(RuntimeError::GrantCoversRuntime {
                            id: registration.id.clone(),
                            field,
                            grant: grant.clone(),
                            what,
                            protected: path.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

struct Inner {
    state: StateDir,
    handlers: Arc<HandlerSet>,
    downloader: Option<crate::download::Downloader>,
    enumerator: Option<Arc<dyn ComponentEnumerator>>,
    config: Config,
    trust: Trust,
}

/// A running (or resumed) deployment: its events as they happen, a cancel, and its
/// report once it has finished or suspended.
///
/// ```no_run
/// use handrail::{Deployment, Event};
///
/// # async fn example(mut deployment: Deployment) -> Result<(), handrail::EngineError> {
/// // Ctrl-C cancels the running action; the steps are then rolled back as the failure
/// // policy says, and the report says `cancelled`.
/// let cancel = deployment.cancel_token();
/// tokio::spawn(async move {
///     if tokio::signal::ctrl_c().await.is_ok() {
///         cancel.cancel();
///     }
/// });
/// while let Some(event) = deployment.next_event().await {
///     if let Event::Progress { step, done, total } = event {
///         println!("step {step}: {done} of {total}");
///     }
/// }
/// let report = deployment.finish().await?;
/// println!("{}: {}", report.deployment, report.status);
/// # Ok(()) }
/// ```
pub struct Deployment {
    id: String,
    events: engine::events::EventReceiver,
    cancel: CancelToken,
    earlier: bool,
    task: JoinHandle<Result<Report, EngineError>>,
}

impl Deployment {
    /// The deployment id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A deployment that already ran under the same id: its earlier report.
    fn earlier(report: Report) -> Deployment {
        let events = engine::events::EventReceiver::closed();
        Deployment {
            id: report.deployment.clone(),
            events,
            cancel: CancelToken::new(),
            earlier: true,
            task: tokio::spawn(async move { Ok(report) }),
        }
    }

    /// True when this deployment id had already run: nothing ran now, and
    /// [`finish`](Self::finish) returns the earlier report.
    pub fn is_earlier_result(&self) -> bool {
        self.earlier
    }

    /// The next progress event; `None` once the deployment has stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// A token that cancels the deployment (the running action included).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Cancels the deployment.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits for the deployment to finish or suspend and returns its report.
    pub async fn finish(self) -> Result<Report, EngineError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(EngineError::Inconsistent(format!(
                "engine task failed: {e}"
            ))),
        }
    }
}

/// The Handrail runtime: one per state directory.
///
/// Opening it takes the state directory's lock (one runtime per device); then finish
/// what a reboot interrupted, and deploy. The hosts that run handlers are added to the
/// builder: `handrail_wasm_host::WasmHost` for components, `handrail_native_host` for
/// native libraries, an [`InProcessHost`](crate::in_process::InProcessHost) for handlers
/// compiled into the agent, and a custom [`ComponentEnumerator`](crate::components::ComponentEnumerator)
/// for the device's components:
///
/// ```no_run
/// use handrail::components::{ComponentEnumerator, EnumeratorError};
/// use handrail::contract::Component;
/// use handrail::{AdmitOptions, Runtime};
///
/// /// The device's cameras, as its own inventory knows them.
/// struct Cameras;
///
/// impl ComponentEnumerator for Cameras {
///     fn all_components(&self) -> Result<Vec<Component>, EnumeratorError> {
///         Ok(vec![Component {
///             id: "camera-0".into(),
///             name: "front".into(),
///             group: "cameras".into(),
///             manufacturer: "contoso".into(),
///             model: "virtual-camera".into(),
///             version: Some("1.0".into()),
///             properties: serde_json::Map::new(),
///         }])
///     }
/// }
///
/// # async fn example(manifest: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = Runtime::builder("/var/lib/handrail")
///     // .host_with(|state| WasmHost::new(state.cache_dir())) and the others
///     .enumerator(Cameras)
///     .open()?;
/// if let Some(interrupted) = runtime.resume()? {
///     interrupted.finish().await?;
/// }
/// let deployment = runtime
///     .deploy(manifest, "/var/lib/payloads".as_ref(), AdmitOptions::default())
///     .await?;
/// let report = deployment.finish().await?;
/// println!("{}", serde_json::to_string_pretty(&report)?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// Starts building a runtime over a state directory.
    pub fn builder(state_dir: impl AsRef<Path>) -> RuntimeBuilder {
        RuntimeBuilder {
            state_dir: state_dir.as_ref().to_owned(),
            registry: None,
            hosts: Vec::new(),
            enumerator: None,
            bundled: Vec::new(),
            deferred_hosts: Vec::new(),
            config: None,
            allow_unsigned: false,
            linked: Vec::new(),
            protected: Vec::new(),
            transport: None,
        }
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.inner.state
    }

    /// The handler registrations.
    pub fn registry(&self) -> &Registry {
        self.inner.handlers.registry()
    }

    /// The trust policy manifests are checked against, made from `[signing]` when the
    /// runtime opened.
    pub fn trust(&self) -> &Trust {
        &self.inner.trust
    }

    /// Parses a manifest (or envelope), checks its signature and validates it against the
    /// registered handlers.
    pub fn validate(&self, bytes: &[u8]) -> Result<Document, AdmitError> {
        crate::admit::validate(
            bytes,
            self.registry(),
            &self.inner.trust,
            "update manifest",
            None,
        )
        .map(|(document, _)| document)
    }

    /// The deployment in progress or suspended, as a report.
    pub fn current(&self) -> Result<Option<Report>, RuntimeError> {
        Ok(self.inner.state.current()?)
    }

    /// Finished deployments, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, RuntimeError> {
        Ok(self.inner.state.history().load()?)
    }

    /// Installed-criteria records.
    pub fn installed(&self) -> Result<Vec<InstalledCriteria>, RuntimeError> {
        Ok(self.inner.state.installed().load()?)
    }

    /// Admits a deployment and starts running it.
    ///
    /// Refused (with nothing changed) when the manifest or payloads are not acceptable, or
    /// when another deployment is in progress or suspended.
    pub async fn deploy(
        &self,
        manifest: &[u8],
        payload_dir: &Path,
        options: AdmitOptions,
    ) -> Result<Deployment, RuntimeError> {
        let unrequired;
        let trust = match &options.unsigned_because {
            Some(reason) => {
                tracing::warn!("admitting an unsigned update manifest: {reason}");
                unrequired = crate::trust::Trust::allow_unsigned();
                &unrequired
            }
            None => &self.inner.trust,
        };
        let (document, verdict) = crate::admit::validate(
            manifest,
            self.registry(),
            trust,
            "update manifest",
            Some(payload_dir),
        )?;
        if let crate::trust::Verdict::Signed(by) = &verdict {
            tracing::info!(
                "update manifest signed by key {} ({}), vouched for by root key {}",
                by.signing_key,
                by.algorithm,
                by.root_kid
            );
        }
        let signed = verdict.is_signed() || self.inner.trust.is_required();
        let id = crate::admit::deployment_id(&options, &document)?;
        // Idempotency: a deployment id that already ran returns its result, never a rerun,
        // unless it was refused before anything ran (the cause may be fixed now), or the
        // envelope asks for a retry with a new `retryTimestamp`, as ADU's service does.
        let retry = crate::admit::retry_timestamp(&document);
        if let Some(earlier) = self.inner.state.history().find(&id)? {
            // Refused, or cancelled before anything ran (a cancel during admission).
            let refused = earlier.report.status == DeploymentStatus::Rejected
                || (earlier.report.status == DeploymentStatus::Cancelled
                    && earlier.report.steps.is_empty());
            let retried = retry.is_some() && retry != earlier.report.retry_timestamp;
            if !refused && !retried {
                return Ok(Deployment::earlier(earlier.report));
            }
            tracing::info!(
                "deployment {id} ran before ({}); running it again: {}",
                earlier.report.status,
                if refused {
                    "it was refused before anything ran"
                } else {
                    "the envelope gives a new retryTimestamp"
                }
            );
        }
        if let Some(report) = self.current()? {
            return Err(RuntimeError::Busy {
                deployment: report.deployment,
                status: report.status.to_string(),
            });
        }
        // The installed-criteria records are read before anything is admitted: damaged,
        // they would answer is-installed wrongly and take appends after the damage.
        self.inner.state.installed().load()?;
        // A deployment whose journal was lost is recorded before its folder goes.
        if let Some(lost) = self.settle_lost_journal()? {
            tracing::warn!("{lost}");
        }
        // No deployment is live, so anything staged is left over from a crash during an
        // earlier admission.
        let deployments = self.inner.state.root().join("deployments");
        if deployments.exists() {
            std::fs::remove_dir_all(&deployments).map_err(|source| StateError::Io {
                path: deployments.clone(),
                source,
            })?;
        }
        let admission_cancel = options.cancel.clone();
        let inner = self.inner.clone();
        let payload_dir = payload_dir.to_owned();
        let update_id = document.manifest().update_id.to_string();
        let deployment = id.clone();
        let admitted = tokio::task::spawn_blocking(move || {
            Admission {
                registry: inner.handlers.registry(),
                enumerator: inner.enumerator.as_deref(),
                deployments_dir: &inner.state.root().join("deployments"),
                options: &options,
                config: &inner.config,
                signed,
                downloader: inner.downloader.as_ref(),
            }
            .admit(&document, &deployment, &payload_dir)
        })
        .await
        .map_err(|e| EngineError::Inconsistent(format!("admission task failed: {e}")))?;
        // Every handler the plan names is loaded and described before anything runs: one
        // that cannot load refuses the deployment, rather than failing its step after
        // earlier steps changed the device.
        let admitted = match admitted {
            Ok(plan) => match self.load_handlers(&plan).await {
                Ok(()) => Ok(plan),
                Err(refused) => {
                    let _ = std::fs::remove_dir_all(&plan.deployment_dir);
                    Err(refused)
                }
            },
            Err(refused) => Err(refused),
        };
        let options_cancelled = admission_cancel.is_some_and(|c| c.is_cancelled());
        let plan = match admitted {
            Ok(plan) => plan,
            Err(refused) => {
                // Recorded so `status`/`history` can say why the deployment never ran:
                // refused, or cancelled while it was being admitted.
                let mut report = Report::rejected(&id, &update_id, refused.to_string(), retry);
                if options_cancelled {
                    report.status = DeploymentStatus::Cancelled;
                }
                self.inner.state.history().append(&report)?;
                return Err(refused.into());
            }
        };
        let path = self.inner.state.journal_path();
        let (mut journal, existing) = Journal::open(&path)?;
        if existing.is_some() {
            return Err(EngineError::Inconsistent(
                "a journal appeared while admitting; refusing to overwrite it".into(),
            )
            .into());
        }
        let admitted = Record::Admitted {
            plan: Box::new(plan.clone()),
            at: now_rfc3339(),
        };
        journal.append(&admitted)?;
        // The deployment's files are in its folder now.
        if let Some(downloader) = &self.inner.downloader {
            downloader.forget_complete();
        }
        // Marks the deployment admitted, beside the journal: a journal lost later is
        // noticed, not taken for "nothing to resume".
        let mark = plan.deployment_dir.join(ADMITTED);
        crate::durable::create_dir_all(&plan.deployment_dir)
            .and_then(|()| {
                crate::durable::write_atomic(&mark, plan.update_id.to_string().as_bytes())
            })
            .map_err(|source| StateError::Io { path: mark, source })?;
        let (_, replay) = Journal::open(&path)?;
        let replay = replay.ok_or_else(|| {
            EngineError::Inconsistent("the admitted record did not reach the journal".into())
        })?;
        Ok(self.spawn(journal, replay))
    }

    /// Loads every handler `plan` runs (once each); the first that cannot load is the
    /// refusal, naming the handler and its first step.
    async fn load_handlers(&self, plan: &crate::plan::Plan) -> Result<(), AdmitError> {
        let mut seen = std::collections::BTreeSet::new();
        for step in plan.steps.iter().filter(|s| !s.no_matching_components) {
            if !seen.insert(step.handler.as_str()) {
                continue;
            }
            if let Err(failure) = self.inner.handlers.get(&step.handler).await {
                return Err(AdmitError::HandlerUnloadable {
                    handler: step.handler.clone(),
                    step: step.label(),
                    message: format!("{} ({})", failure.result_details, failure.extended()),
                });
            }
        }
        Ok(())
    }

    /// Continues the deployment left in progress (crash) or suspended (reboot, restart).
    /// `None` when there is nothing to resume.
    pub fn resume(&self) -> Result<Option<Deployment>, RuntimeError> {
        self.take_over(false)
    }

    /// Ends the deployment left suspended or interrupted without carrying it on: it is
    /// resumed already cancelled, so no step runs on; the stopped step runs its
    /// handler's `cancel` and `restore`, earlier steps are rolled back as the failure
    /// policy says, and history records it `cancelled`. `None` when there is nothing to
    /// end.
    ///
    /// ```no_run
    /// # async fn example(runtime: &handrail::Runtime) -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(abandoned) = runtime.abandon()? {
    ///     let report = abandoned.finish().await?;
    ///     assert_eq!(report.status, handrail::DeploymentStatus::Cancelled);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn abandon(&self) -> Result<Option<Deployment>, RuntimeError> {
        self.take_over(true)
    }

    /// [`resume`](Self::resume), or with `cancelled` [`abandon`](Self::abandon).
    fn take_over(&self, cancelled: bool) -> Result<Option<Deployment>, RuntimeError> {
        let path = self.inner.state.journal_path();
        if path.exists() {
            let (journal, replay) = Journal::open(&path)?;
            if let Some(replay) = replay {
                // Carrying on needs room for the actions' records; ending (abandon)
                // undoes, and is not held to the reserve.
                let root = self.inner.state.root();
                let reserve_mib = self.inner.config.deployment.reserve_mib;
                if !cancelled
                    && let Ok(free) = engine::disk::free_bytes(root)
                    && free < reserve_mib.saturating_mul(1024 * 1024)
                {
                    return Err(RuntimeError::NoSpace {
                        dir: root.to_owned(),
                        free_mib: free / (1024 * 1024),
                        reserve_mib,
                        deployment: replay.plan.deployment.clone(),
                    });
                }
                let deployment = self.spawn_with(journal, replay, cancelled);
                return Ok(Some(deployment));
            }
        }
        match self.settle_lost_journal()? {
            Some(lost) => Err(lost),
            None => Ok(None),
        }
    }

    /// When no journal holds a deployment but one was admitted (its folder has the
    /// [`ADMITTED`] mark), its journal was lost: records it in history as failed, clears
    /// its folder and an empty journal, and returns the error that says so. An empty
    /// journal without the mark is a crash between creating it and admitting: removed.
    fn settle_lost_journal(&self) -> Result<Option<RuntimeError>, RuntimeError> {
        let path = self.inner.state.journal_path();
        if path.exists() && Journal::read(&path)?.is_some() {
            return Ok(None);
        }
        let deployments = self.inner.state.root().join("deployments");
        let admitted = std::fs::read_dir(&deployments)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .find_map(|e| {
                let update = std::fs::read_to_string(e.path().join(ADMITTED)).ok()?;
                Some((e.file_name().to_string_lossy().into_owned(), update))
            });
        let lost = match admitted {
            Some((deployment, update_id)) => {
                let error = RuntimeError::JournalLost {
                    deployment: deployment.clone(),
                    update_id: update_id.clone(),
                    journal: path.clone(),
                };
                let mut report = Report::rejected(&deployment, &update_id, error.to_string(), None);
                report.status = DeploymentStatus::Failed;
                self.inner.state.history().append(&report)?;
                std::fs::remove_dir_all(&deployments).map_err(|source| StateError::Io {
                    path: deployments.clone(),
                    source,
                })?;
                Some(error)
            }
            None => None,
        };
        crate::durable::remove_file(&path).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(lost)
    }

    fn spawn(&self, journal: Journal, replay: Replay) -> Deployment {
        self.spawn_with(journal, replay, false)
    }

    /// Runs the deployment of `replay`; with `cancelled`, cancelled before anything runs.
    fn spawn_with(&self, journal: Journal, replay: Replay, cancelled: bool) -> Deployment {
        let reserve_file = self.inner.state.root().join("reserve");
        engine::disk::keep_reserve_file(&reserve_file);
        let (tx, rx) = engine::events::channel();
        let cancel = CancelToken::new();
        if cancelled {
            cancel.cancel();
        }
        let id = replay.plan.deployment.clone();
        let timed_out = Arc::new(AtomicBool::new(false));
        let cx = engine::Context {
            handlers: self.inner.handlers.clone(),
            installed: self.inner.state.installed(),
            history: self.inner.state.history(),
            events: Some(tx),
            cancel: cancel.clone(),
            hooks: self.inner.config.hooks.clone(),
            reserve_bytes: self
                .inner
                .config
                .deployment
                .reserve_mib
                .saturating_mul(1024 * 1024),
            reserve_file,
            max_interrupted_runs: self.inner.config.deployment.max_interrupted_runs,
            timed_out: timed_out.clone(),
        };
        let limit = self.inner.config.deployment.timeout_secs;
        let path = self.inner.state.journal_path();
        let deadline_cancel = cancel.clone();
        let task = tokio::spawn(async move {
            // The deployment's time limit (counted from this run's start) cancels it and
            // marks it timed out.
            let timer = (limit > 0).then(|| {
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(limit)).await;
                    timed_out.store(true, Ordering::SeqCst);
                    deadline_cancel.cancel();
                })
            });
            let result = engine::execute(&cx, &path, journal, replay).await;
            if let Some(t) = timer {
                t.abort();
            }
            result
        });
        Deployment {
            id,
            events: rx,
            cancel,
            earlier: false,
            task,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Capabilities, HandlerKind, Limits};
    use std::path::Path;

    fn bundled_swupdate() -> BundledHandler {
        BundledHandler {
            id: "microsoft/swupdate:2".into(),
            kind: HandlerKind::Wasm,
            artifact: b"\0asm component bytes",
            capabilities: Capabilities {
                run: vec!["/usr/bin/swupdate".into()],
                ..Capabilities::default()
            },
            limits: Limits::default(),
        }
    }

    /// Reports progress a million times at install, then succeeds.
    struct Flood;

    impl crate::in_process::InProcessHandler for Flood {
        fn describe(&self) -> crate::host::Description {
            crate::host::Description {
                id: "test/flood:1".into(),
                actions: vec![handrail_contract::Action::Install],
                contract: handrail_contract::CONTRACT_VERSION,
            }
        }

        fn run(
            &self,
            _: handrail_contract::Action,
            _: &handrail_contract::StepContext,
            _: &CancelToken,
        ) -> Option<handrail_contract::ResultFile> {
            unreachable!("run_with_progress is called")
        }

        fn run_with_progress(
            &self,
            _: handrail_contract::Action,
            _: &handrail_contract::StepContext,
            _: &CancelToken,
            progress: &(dyn Fn(u64, u64) + Send + Sync),
        ) -> Option<handrail_contract::ResultFile> {
            for done in 0..1_000_000 {
                progress(done, 1_000_000);
            }
            Some(handrail_contract::ResultFile::new(
                handrail_contract::codes::INSTALL_SUCCESS,
                "flooded",
            ))
        }
    }

    #[tokio::test]
    async fn a_handler_reporting_progress_a_million_times_to_nobody_leaves_a_few_events_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let payloads = dir.path().join("payloads");
        std::fs::create_dir_all(&payloads).unwrap();
        std::fs::write(payloads.join("a.txt"), "a").unwrap();
        let rt = Runtime::builder(dir.path().join("state"))
            .allow_unsigned()
            .in_process(crate::in_process::InProcessHost::new().with(Flood))
            .open()
            .unwrap();
        let manifest = handrail_test_support::manifest::Update::new("test", "flood", "1.0")
            .step(handrail_test_support::manifest::inline_step(
                "test/flood:1",
                &["a.txt"],
                serde_json::json!({}),
            ))
            .to_vec();
        let mut deployment = rt
            .deploy(&manifest, &payloads, AdmitOptions::default())
            .await
            .unwrap();
        // Nobody reads the events until the deployment is over.
        let report = (&mut deployment.task).await.unwrap().unwrap();
        assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
        let mut events = Vec::new();
        while let Some(event) = deployment.next_event().await {
            events.push(event);
        }
        let progress: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::Progress { .. }))
            .collect();
        assert_eq!(
            progress,
            [&Event::Progress {
                step: 0,
                done: 999_999,
                total: 1_000_000
            }],
            "{events:#?}"
        );
        assert!(events.len() < 20, "{events:#?}");
    }

    fn open_with(state: &Path, config: &str) -> Result<Runtime, RuntimeError> {
        Runtime::builder(state)
            .bundled(vec![bundled_swupdate()])
            .config(Config::parse(Path::new("config.toml"), config).unwrap())
            .open()
    }

    #[test]
    fn configured_grants_are_added_to_the_bundled_registration() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = open_with(
            dir.path(),
            "[handler_grants.\"microsoft/swupdate:2\"]\nwrite = [\"/var/lib/boot\"]\nread = [\"/etc/version.d\"]\nrun = [\"/usr/bin/swupdate\"]\n",
        )
        .unwrap();
        let caps = &runtime
            .registry()
            .get("microsoft/swupdate:2")
            .unwrap()
            .capabilities;
        assert_eq!(caps.run, [PathBuf::from("/usr/bin/swupdate")], "once");
        assert_eq!(caps.write, [PathBuf::from("/var/lib/boot")]);
        assert_eq!(caps.read, [PathBuf::from("/etc/version.d")]);
        drop(runtime);
        // The registration file on disk is the bundled one, unchanged: the grants live
        // in the configuration and apply while it says so.
        let on_disk = std::fs::read_to_string(
            dir.path()
                .join("handlers")
                .join("bundled-microsoft-swupdate-2.toml"),
        )
        .unwrap();
        assert!(!on_disk.contains("/var/lib/boot"), "{on_disk}");
    }

    #[test]
    fn grants_for_a_handler_that_is_not_registered_are_refused_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_with(
            dir.path(),
            "[handler_grants.\"microsoft/swupdate:1\"]\nwrite = [\"/var/lib/boot\"]\n",
        )
        .err()
        .expect("refused");
        assert!(matches!(e, RuntimeError::GrantsForUnknownHandler { .. }));
        let message = e.to_string();
        assert!(
            message.starts_with("handler_grants.\"microsoft/swupdate:1\": no handler")
                && message.contains("registered: microsoft/swupdate:2"),
            "{message}"
        );
    }
}
