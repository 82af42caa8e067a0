//! Test fixtures shared by the engine tests: an in-process handler that keeps its
//! "device" in a temporary folder, and a runtime over a temporary state directory.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the shared helpers"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use handrail::components::FileEnumerator;
use handrail::config::Config;
use handrail::contract::codes;
use handrail::contract::{Action, ResultFile, StepContext};
use handrail::host::Description;
use handrail::in_process::{InProcessHandler, InProcessHost};
use handrail::registry::Registry;
use handrail::{AdmitOptions, CancelToken, Report, Runtime};
use handrail_test_support::manifest::{Update, inline_step};

pub const VALID: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests/valid");

/// A handler that keeps installed criteria as files in a device folder and answers each
/// action with the code named in `handlerProperties.codes.<action>` when present.
pub struct DeviceHandler {
    pub id: &'static str,
    pub device: PathBuf,
    pub actions: Vec<Action>,
    pub calls: Arc<AtomicUsize>,
    /// The deployment's cancel, for `handlerProperties.cancelDeploymentAt: <action>`:
    /// that action waits for the test to put it here, cancels it, and waits until the
    /// runtime has passed the cancel on to the action.
    pub deployment: Arc<OnceLock<CancelToken>>,
}

/// Set in a test's own child process: `handlerProperties.abortAt: <action>` then kills
/// that process in the action, as a crash or power cut does.
pub const ABORT_ENV: &str = "HANDRAIL_TEST_ABORT_IN_ACTION";

impl DeviceHandler {
    pub fn new(id: &'static str, device: &Path) -> Self {
        DeviceHandler {
            id,
            device: device.to_owned(),
            actions: vec![
                Action::IsInstalled,
                Action::Download,
                Action::Backup,
                Action::Install,
                Action::Apply,
                Action::Restore,
                Action::Cancel,
            ],
            calls: Arc::default(),
            deployment: Arc::default(),
        }
    }

    /// The same handler state (device, calls, cancel slot), for a runtime the test keeps
    /// a handle on.
    pub fn sharing(&self) -> Self {
        DeviceHandler {
            id: self.id,
            device: self.device.clone(),
            actions: self.actions.clone(),
            calls: self.calls.clone(),
            deployment: self.deployment.clone(),
        }
    }

    fn marker(&self, ctx: &StepContext) -> PathBuf {
        let component = ctx
            .component
            .as_ref()
            .map(|c| c.id.as_str())
            .unwrap_or("host");
        self.device.join(format!(
            "{}@{component}",
            ctx.installed_criteria.as_deref().unwrap_or("none")
        ))
    }
}

impl InProcessHandler for DeviceHandler {
    fn describe(&self) -> Description {
        Description {
            id: self.id.into(),
            actions: self.actions.clone(),
            contract: (1, 0),
        }
    }

    fn run(&self, action: Action, ctx: &StepContext, cancel: &CancelToken) -> Option<ResultFile> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.device.join("calls.log"))
            .and_then(|mut f| {
                use std::io::Write;
                writeln!(
                    f,
                    "{} {} {action}",
                    ctx.step_index,
                    ctx.component
                        .as_ref()
                        .map(|c| c.name.as_str())
                        .unwrap_or("-")
                )
            })
            .unwrap();
        // Every file the step names must be readable where the context says.
        for f in &ctx.files {
            assert_eq!(fs::metadata(&f.path).unwrap().len(), f.size, "{}", f.name);
        }
        if let Some(script) = ctx.property_str("scriptFileName")
            && ctx.file(script).is_none()
        {
            return Some(ResultFile::failure(
                handrail::contract::ExtendedCode::new(3, 5, 5),
                format!("script file `{script}` is not among the step's payload files"),
            ));
        }
        let scripted = ctx
            .handler_properties
            .get("codes")
            .and_then(|c| c.get(action.as_str()))
            .and_then(|c| c.as_i64());
        if ctx.handler_properties.get("raw") == Some(&action.as_str().into()) {
            fs::write(&ctx.result_file, b"{not json").unwrap();
            return None;
        }
        if ctx.handler_properties.get("abortAt") == Some(&action.as_str().into())
            && std::env::var_os(ABORT_ENV).is_some()
        {
            std::process::abort();
        }
        if ctx.handler_properties.get("cancelDeploymentAt") == Some(&action.as_str().into()) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let token = loop {
                if let Some(token) = self.deployment.get() {
                    break token;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no deployment to cancel"
                );
                std::thread::park_timeout(std::time::Duration::from_millis(1));
            };
            token.cancel();
            // The runtime passes the deployment's cancel on to this action: waited for,
            // so that the action always ends cancelled, never by a race.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !cancel.is_cancelled() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the cancel never came"
                );
                std::thread::park_timeout(std::time::Duration::from_millis(1));
            }
        }
        if ctx.handler_properties.get("hang") == Some(&action.as_str().into()) {
            while !cancel.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            return Some(ResultFile::new(codes::FAILURE_CANCELLED, "stopped"));
        }
        let code = match action {
            Action::IsInstalled => {
                if let Some(code) = scripted {
                    code as i32
                } else if self.marker(ctx).exists() {
                    codes::IS_INSTALLED_INSTALLED
                } else {
                    codes::IS_INSTALLED_NOT_INSTALLED
                }
            }
            Action::Apply => {
                let code = scripted.map_or(codes::APPLY_SUCCESS, |c| c as i32);
                if codes::is_success(code) {
                    fs::write(self.marker(ctx), b"").unwrap();
                }
                return Some(ResultFile::new(code, ""));
            }
            Action::Restore => {
                // As a real handler would: a restore told it is cancelled stops.
                if cancel.is_cancelled() {
                    return Some(ResultFile::new(codes::FAILURE_CANCELLED, "restore stopped"));
                }
                fs::write(self.device.join("restored"), ctx.step_index.to_string()).unwrap();
                fs::write(self.device.join(format!("restored-{}", ctx.step_index)), "").unwrap();
                codes::RESTORE_SUCCESS
            }
            a => a.success_code(),
        };
        Some(ResultFile::new(scripted.map_or(code, |c| c as i32), ""))
    }
}

pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
    pub device: PathBuf,
    pub payloads: PathBuf,
    pub config: Config,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let device = tmp.path().join("device");
        let payloads = tmp.path().join("payloads");
        fs::create_dir_all(&device).unwrap();
        fs::create_dir_all(&payloads).unwrap();
        for f in [
            "apt-manifest-1.0.json",
            "apt-manifest-tree-1.0.json",
            "contoso-camera-installscript.sh",
            "camera-firmware-1.1.json",
        ] {
            fs::write(payloads.join(f), format!("payload {f}")).unwrap();
        }
        fs::copy(
            Path::new(VALID).join("child-three-script-steps.json"),
            payloads.join("contoso.virtual-camera.1.2.importmanifest.json"),
        )
        .unwrap();
        fs::write(
            tmp.path().join("components.json"),
            r#"{"components":[
                {"id":"cam-0","name":"camera-0","group":"cameras","manufacturer":"contoso","model":"virtual-camera","properties":{"path":"/dev/cam0"}},
                {"id":"cam-1","name":"camera-1","group":"cameras","manufacturer":"contoso","model":"virtual-camera","properties":{"path":"/dev/cam1"}},
                {"id":"mic-0","name":"mic","group":"audio","manufacturer":"contoso","model":"mic"}
            ]}"#,
        )
        .unwrap();
        // The example manifests are unsigned; signing is tested on its own.
        let mut config = Config::default();
        config.signing.required = false;
        Fixture {
            tmp,
            config,
            state,
            device,
            payloads,
        }
    }

    /// The fixture whose folders are under `root`, made by [`Fixture::new`] in another
    /// process (a test's child).
    pub fn at(root: &Path) -> Self {
        let mut config = Config::default();
        config.signing.required = false;
        Fixture {
            tmp: tempfile::tempdir().unwrap(),
            config,
            state: root.join("state"),
            device: root.join("device"),
            payloads: root.join("payloads"),
        }
    }

    pub fn runtime_with(&self, handlers: Vec<DeviceHandler>) -> Runtime {
        let mut host = InProcessHost::new();
        for h in handlers {
            host = host.with(h);
        }
        let mut registry = Registry::new();
        for r in host.registrations() {
            registry.insert(r).unwrap();
        }
        Runtime::builder(&self.state)
            .config(self.config.clone())
            .registry(registry)
            .host(host)
            .enumerator(FileEnumerator::new(
                &self.state.parent().unwrap().join("components.json"),
            ))
            .open()
            .unwrap()
    }

    pub fn runtime(&self) -> Runtime {
        self.runtime_with(vec![
            DeviceHandler::new("microsoft/apt:1", &self.device),
            DeviceHandler::new("microsoft/script:1", &self.device),
        ])
    }

    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.device.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

pub fn example(name: &str) -> Vec<u8> {
    fs::read(Path::new(VALID).join(name)).unwrap()
}

pub async fn deploy(rt: &Runtime, manifest: &[u8], payloads: &Path) -> Report {
    rt.deploy(manifest, payloads, AdmitOptions::default())
        .await
        .unwrap()
        .finish()
        .await
        .unwrap()
}

/// Why `rt` refuses to deploy the example manifest `name` (it must refuse).
pub async fn refusal(rt: &Runtime, name: &str, payloads: &Path) -> String {
    rt.deploy(&example(name), payloads, AdmitOptions::default())
        .await
        .err()
        .expect("refused")
        .to_string()
}

pub async fn resume(rt: &Runtime) -> Report {
    rt.resume()
        .unwrap()
        .expect("something to resume")
        .finish()
        .await
        .unwrap()
}

/// A manifest of inline steps for one handler with per-step handler properties.
pub fn inline_manifest(handler: &str, props: &[serde_json::Value]) -> Vec<u8> {
    let steps = props.iter().map(|p| inline_step(handler, &[], p.clone()));
    Update::new("test", "engine", "1.0").steps(steps).to_vec()
}
