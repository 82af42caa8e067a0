//! Shared set-up: a scratch folder with payload, work and cache folders, registrations
//! of real components (the hostile guest as a [`Setup`] says), step contexts with host
//! paths, and running one action.

use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use handrail::CancelToken;
use handrail::host::{HandlerHost, Invocation, InvocationEnd, LoadedHandler};
use handrail::registry::{HandlerKind, Limits, Registration};
use handrail_contract::{Action, Component, PayloadFile, ResultFile, StepContext, UpdateId};
use handrail_test_guest_artifacts::HOSTILE;
use handrail_test_support::{registration, running};
use handrail_wasm_host::WasmHost;
use tempfile::TempDir;

/// One host for the whole test binary, so each component is compiled once.
pub fn shared_host() -> &'static WasmHost {
    static HOST: OnceLock<(WasmHost, TempDir)> = OnceLock::new();
    &HOST
        .get_or_init(|| {
            let cache = tempfile::tempdir().expect("cache dir");
            let host = WasmHost::new(cache.path().to_owned()).expect("wasm host");
            (host, cache)
        })
        .0
}

/// A scratch folder for one test.
pub struct Scratch {
    pub dir: TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("scratch dir");
        for sub in ["downloads", "work", "artifacts"] {
            fs::create_dir_all(dir.path().join(sub)).expect("scratch sub-folder");
        }
        Scratch { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The action's work folder, as the host resolves it.
    pub fn work(&self) -> PathBuf {
        fs::canonicalize(self.path("work")).expect("work folder")
    }

    /// Writes a component and returns its registration.
    pub fn registration(
        &self,
        id: &str,
        wasm: &[u8],
        run: &[&str],
        limits: Limits,
    ) -> Registration {
        let artifact = self.path(&format!("artifacts/{}.wasm", id.replace(['/', ':'], "_")));
        fs::write(&artifact, wasm).expect("artifact");
        Registration {
            limits,
            ..registration(id, HandlerKind::Wasm, &artifact, running(run))
        }
    }

    /// Writes a payload file into the downloads folder (shared by every step).
    pub fn payload(&self, name: &str, body: &str) -> PayloadFile {
        let path = self.path(&format!("downloads/{name}"));
        fs::write(&path, body).expect("payload file");
        PayloadFile {
            name: name.to_owned(),
            path: path.display().to_string(),
            size: body.len() as u64,
        }
    }

    /// A step context with host paths, as the engine hands it to a host.
    pub fn context(
        &self,
        handler_id: &str,
        properties: serde_json::Value,
        files: Vec<PayloadFile>,
        component: Option<Component>,
    ) -> StepContext {
        let serde_json::Value::Object(handler_properties) = properties else {
            panic!("handler properties must be an object");
        };
        StepContext {
            workflow_id: "workflow-1".into(),
            update_id: UpdateId {
                provider: "contoso".into(),
                name: "virtual-camera".into(),
                version: "1.2".into(),
            },
            step_index: 0,
            level: 1,
            handler_id: handler_id.to_owned(),
            installed_criteria: handler_properties
                .get("installedCriteria")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            handler_properties,
            handler_config: Default::default(),
            files,
            work_folder: self.path("work").display().to_string(),
            result_file: self.path("work/result.json").display().to_string(),
            component,
        }
    }

    /// The handler's result file, read and validated as the engine does.
    pub fn result(&self, action: Action) -> ResultFile {
        let bytes = fs::read(self.path("work/result.json")).ok();
        ResultFile::interpret(action, bytes.as_deref())
    }
}

/// Progress reports of one action.
pub type Progress = Arc<Mutex<Vec<(u64, u64)>>>;

/// Runs one action and returns how it ended and the progress it reported.
pub async fn invoke(
    handler: &Arc<dyn LoadedHandler>,
    action: Action,
    context: StepContext,
    cancel: CancelToken,
) -> (InvocationEnd, Vec<(u64, u64)>) {
    invoke_observed(handler, action, context, cancel, |_, _| {}).await
}

/// [`invoke`], calling `observe` with each progress report as it comes.
pub async fn invoke_observed(
    handler: &Arc<dyn LoadedHandler>,
    action: Action,
    context: StepContext,
    cancel: CancelToken,
    observe: impl Fn(u64, u64) + Send + Sync + 'static,
) -> (InvocationEnd, Vec<(u64, u64)>) {
    let progress: Progress = Arc::default();
    let sink = progress.clone();
    let end = handler
        .invoke(Invocation {
            action,
            context,
            cancel,
            progress: Arc::new(move |done, total| {
                observe(done, total);
                if let Ok(mut p) = sink.lock() {
                    p.push((done, total));
                }
            }),
        })
        .await;
    let reported = progress.lock().map(|p| p.clone()).unwrap_or_default();
    (end, reported)
}

/// Loads a registration with the shared host.
pub async fn load(registration: &Registration) -> Arc<dyn LoadedHandler> {
    shared_host()
        .load(registration)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The hostile guest's handler id.
pub const HOSTILE_ID: &str = "test/hostile:1";

/// What the hostile guest is granted and allowed.
pub struct Setup {
    pub grants: &'static [&'static str],
    pub memory_mib: u64,
    pub timeout_secs: u64,
    pub cancel_grace_secs: u64,
}

/// Nothing granted, 64 MiB, 10 s, stopped at once when cancelled.
pub const PLAIN: Setup = Setup {
    grants: &[],
    memory_mib: 64,
    timeout_secs: 10,
    cancel_grace_secs: 0,
};

impl Scratch {
    /// The hostile guest's registration, as `setup` says.
    pub fn hostile(&self, setup: &Setup) -> Registration {
        let limits = Limits {
            cancel_grace_secs: setup.cancel_grace_secs,
            ..limits(setup.memory_mib, setup.timeout_secs)
        };
        self.registration(HOSTILE_ID, HOSTILE, setup.grants, limits)
    }
}

/// Limits for tests: small memory, short time, no grace after a cancel.
pub fn limits(memory_mib: u64, timeout_secs: u64) -> Limits {
    Limits {
        memory_mib,
        timeout_secs,
        cancel_grace_secs: 0,
        ..Limits::default()
    }
}
