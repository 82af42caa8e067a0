//! The engine over the example manifests, reboot codes, failures, restore and cancel,
//! driven through the in-process host with test handlers that keep their "device" in a
//! temporary folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use handrail::components::FileEnumerator;
use handrail::contract::codes::{self, Interruption, ext};
use handrail::contract::{Action, ResultFile, StepContext};
use handrail::host::Description;
use handrail::in_process::{InProcessHandler, InProcessHost};
use handrail::registry::Registry;
use handrail::{AdmitOptions, CancelToken, DeploymentStatus, Report, Runtime, StepOutcome};

const VALID: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/manifests/valid");

/// A handler that keeps installed criteria as files in a device folder and answers each
/// action with the code named in `handlerProperties.codes.<action>` when present.
struct DeviceHandler {
    id: &'static str,
    device: PathBuf,
    actions: Vec<Action>,
    calls: Arc<AtomicUsize>,
}

impl DeviceHandler {
    fn new(id: &'static str, device: &Path) -> Self {
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
        if ctx.handler_properties.get("hang") == Some(&action.as_str().into()) {
            while !cancel.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            return Some(ResultFile::new(codes::FAILURE_CANCELLED, "stopped"));
        }
        let code = match action {
            Action::IsInstalled => {
                if self.marker(ctx).exists() {
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
                fs::write(self.device.join("restored"), ctx.step_index.to_string()).unwrap();
                codes::RESTORE_SUCCESS
            }
            a => a.success_code(),
        };
        Some(ResultFile::new(scripted.map_or(code, |c| c as i32), ""))
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    state: PathBuf,
    device: PathBuf,
    payloads: PathBuf,
}

impl Fixture {
    fn new() -> Self {
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
        Fixture {
            _tmp: tmp,
            state,
            device,
            payloads,
        }
    }

    fn runtime_with(&self, handlers: Vec<DeviceHandler>) -> Runtime {
        let mut host = InProcessHost::new();
        for h in handlers {
            host = host.with(h);
        }
        let mut registry = Registry::new();
        for r in host.registrations() {
            registry.insert(r).unwrap();
        }
        Runtime::builder(&self.state)
            .registry(registry)
            .host(host)
            .enumerator(FileEnumerator::new(
                &self.state.parent().unwrap().join("components.json"),
            ))
            .open()
            .unwrap()
    }

    fn runtime(&self) -> Runtime {
        self.runtime_with(vec![
            DeviceHandler::new("microsoft/apt:1", &self.device),
            DeviceHandler::new("microsoft/script:1", &self.device),
        ])
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.device.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn example(name: &str) -> Vec<u8> {
    fs::read(Path::new(VALID).join(name)).unwrap()
}

async fn deploy(rt: &Runtime, manifest: &[u8], payloads: &Path) -> Report {
    rt.deploy(manifest, payloads, AdmitOptions::default())
        .await
        .unwrap()
        .finish()
        .await
        .unwrap()
}

async fn resume(rt: &Runtime) -> Report {
    rt.resume()
        .unwrap()
        .expect("something to resume")
        .finish()
        .await
        .unwrap()
}

/// A manifest of inline steps for one handler with per-step handler properties.
fn inline_manifest(handler: &str, props: &[serde_json::Value]) -> Vec<u8> {
    let steps: Vec<_> = props
        .iter()
        .map(|p| serde_json::json!({"handler": handler, "files": [], "handlerProperties": p}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "updateId": {"provider": "test", "name": "engine", "version": "1.0"},
        "isDeployable": true,
        "compatibility": [{"manufacturer": "du-device", "model": "e2e-test"}],
        "instructions": {"steps": steps},
        "manifestVersion": "5.0",
        "createdDateTime": "2026-11-22T00:00:00Z"
    }))
    .unwrap()
}

#[tokio::test]
async fn one_inline_step_installs_then_is_skipped_as_installed() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(&rt, &example("one-inline-step.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    assert_eq!(report.steps.len(), 1);
    let actions: Vec<Action> = report.steps[0].actions.iter().map(|a| a.action).collect();
    assert_eq!(
        actions,
        [
            Action::IsInstalled,
            Action::Download,
            Action::Backup,
            Action::Install,
            Action::Apply
        ]
    );
    let installed = rt.installed().unwrap();
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].installed_criteria, "apt-update-test-1.0");

    let again = deploy(&rt, &example("one-inline-step.json"), &fx.payloads).await;
    assert_eq!(again.status, DeploymentStatus::Succeeded);
    assert_eq!(again.steps[0].outcome, StepOutcome::AlreadyInstalled);
    assert_eq!(again.steps[0].actions.len(), 1);
    let history = rt.history().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].sequence < history[1].sequence);
    assert!(
        !rt.state().journal_path().exists(),
        "journal retired after finishing"
    );
}

#[tokio::test]
async fn two_inline_steps_run_in_order() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(&rt, &example("two-inline-steps.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded);
    let calls = fx.calls();
    let first_of_1 = calls.iter().position(|c| c.starts_with("1 ")).unwrap();
    assert!(calls[..first_of_1].iter().all(|c| c.starts_with("0 ")));
    assert_eq!(rt.installed().unwrap().len(), 2);
}

#[tokio::test]
async fn parent_runs_child_per_camera_and_stops_at_the_missing_script() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(&rt, &example("parent-reference-step.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Failed);
    // Two cameras match `group: cameras` (the microphone does not): 3 steps each.
    assert_eq!(report.steps.len(), 6);
    assert!(report.steps.iter().all(|s| s.level == 1));
    assert_eq!(report.steps[0].outcome, StepOutcome::Succeeded);
    assert_eq!(report.steps[1].outcome, StepOutcome::Failed);
    assert!(
        report.steps[2..]
            .iter()
            .all(|s| s.outcome == StepOutcome::Pending)
    );
    let failure = report.failure.expect("failure reported");
    assert_eq!(failure.step, 1);
    assert!(
        failure
            .label
            .contains("contoso/virtual-camera/1.2 step 1 [camera-0]"),
        "{}",
        failure.label
    );
    assert_eq!(failure.action, Action::IsInstalled);
    assert_eq!(failure.result_code, codes::FAILURE);
    assert_eq!(failure.extended_result_code_hex, "0x30500005");
    assert!(
        failure
            .result_details
            .contains("missing-contoso-camera-installscript.sh")
    );
    assert!(
        fx.calls().iter().all(|c| c.contains("camera-0")),
        "camera-1 never ran"
    );
}

#[tokio::test]
async fn child_with_no_matching_component_is_skipped() {
    let fx = Fixture::new();
    let child = String::from_utf8(example("child-three-script-steps.json"))
        .unwrap()
        .replace("\"group\": \"cameras\"", "\"group\": \"speakers\"");
    fs::write(
        fx.payloads
            .join("contoso.virtual-camera.1.2.importmanifest.json"),
        child,
    )
    .unwrap();
    let rt = fx.runtime();
    let report = deploy(&rt, &example("parent-reference-step.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded);
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.outcome == StepOutcome::NoMatchingComponents)
    );
    assert!(fx.calls().is_empty());
}

#[tokio::test]
async fn child_alone_is_refused_before_anything_runs() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let err = rt
        .deploy(
            &example("child-three-script-steps.json"),
            &fx.payloads,
            AdmitOptions::default(),
        )
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("isDeployable"), "{err}");
    assert!(fx.calls().is_empty());
    assert!(rt.current().unwrap().is_none());
}

/// Runs a two-step deployment whose first step answers `action` with `code` and checks
/// where the run stops and where `resume` continues.
async fn reboot_case(action: &str, code: i32, immediate: bool) {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[
            serde_json::json!({"installedCriteria": "first", "codes": {action: code}}),
            serde_json::json!({"installedCriteria": "second"}),
        ],
    );
    let report = deploy(&rt, &manifest, &fx.payloads).await;
    assert_eq!(
        report.status,
        DeploymentStatus::Suspended,
        "{action} {code}"
    );
    let interruption = Interruption::of(code).unwrap();
    assert_eq!(report.interruption, Some(interruption));
    let ran_apply = report.steps[0]
        .actions
        .iter()
        .any(|a| a.action == Action::Apply);
    let expect_apply_before_stop = !(immediate && action == "install");
    assert_eq!(ran_apply, expect_apply_before_stop, "{action} {code}");
    assert!(
        report.steps[1].actions.is_empty(),
        "step 1 must wait for the reboot"
    );
    let calls_before = fx.calls().len();

    // The "reboot": a new runtime over the same state directory.
    drop(rt);
    let rt = fx.runtime();
    assert_eq!(
        rt.current().unwrap().unwrap().status,
        DeploymentStatus::Suspended
    );
    let report = resume(&rt).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    let after: Vec<String> = fx.calls()[calls_before..].to_vec();
    if expect_apply_before_stop {
        assert!(
            after[0].starts_with("1 "),
            "resume continues at step 1, got {after:?}"
        );
    } else {
        assert_eq!(after[0], "0 - apply", "resume continues at the next action");
    }
    assert!(
        !after.iter().any(|c| c == "0 - is-installed"),
        "not from step 0: {after:?}"
    );
    assert!(rt.resume().unwrap().is_none());
}

#[tokio::test]
async fn reboot_and_restart_codes_suspend_and_resume_at_the_right_place() {
    for (action, code, immediate) in [
        ("install", codes::INSTALL_REQUIRED_IMMEDIATE_REBOOT, true),
        ("install", codes::INSTALL_REQUIRED_REBOOT, false),
        (
            "install",
            codes::INSTALL_REQUIRED_IMMEDIATE_AGENT_RESTART,
            true,
        ),
        ("install", codes::INSTALL_REQUIRED_AGENT_RESTART, false),
        ("apply", codes::APPLY_REQUIRED_IMMEDIATE_REBOOT, true),
        ("apply", codes::APPLY_REQUIRED_REBOOT, false),
        ("apply", codes::APPLY_REQUIRED_IMMEDIATE_AGENT_RESTART, true),
        ("apply", codes::APPLY_REQUIRED_AGENT_RESTART, false),
    ] {
        reboot_case(action, code, immediate).await;
    }
}

#[tokio::test]
async fn failed_install_restores_and_stops_the_workflow() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[
            serde_json::json!({"installedCriteria": "a", "codes": {"install": 0}}),
            serde_json::json!({"installedCriteria": "b"}),
        ],
    );
    let report = deploy(&rt, &manifest, &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Failed);
    let actions: Vec<Action> = report.steps[0].actions.iter().map(|a| a.action).collect();
    assert_eq!(actions.last(), Some(&Action::Restore));
    let failure = report.failure.unwrap();
    assert_eq!((failure.step, failure.action), (0, Action::Install));
    assert_eq!(
        failure.extended_result_code,
        ext::FAILURE_WITHOUT_CODE.value()
    );
    assert!(fx.device.join("restored").exists());
    assert_eq!(report.steps[1].outcome, StepOutcome::Pending);
    assert!(
        rt.installed().unwrap().is_empty(),
        "never record a failed step as installed"
    );
}

#[tokio::test]
async fn malformed_and_out_of_phase_results_fail_with_their_codes() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(
        &rt,
        &inline_manifest("microsoft/apt:1", &[serde_json::json!({"raw": "download"})]),
        &fx.payloads,
    )
    .await;
    assert_eq!(
        report.failure.unwrap().extended_result_code,
        ext::RESULT_FILE_MALFORMED.value()
    );
    let report = deploy(
        &rt,
        &inline_manifest(
            "microsoft/apt:1",
            &[serde_json::json!({"codes": {"install": codes::APPLY_SUCCESS}})],
        ),
        &fx.payloads,
    )
    .await;
    assert_eq!(
        report.failure.unwrap().extended_result_code,
        ext::RESULT_OUT_OF_PHASE.value()
    );
}

#[tokio::test]
async fn cancel_reaches_the_running_action() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[serde_json::json!({"installedCriteria": "slow", "hang": "install"})],
    );
    let mut deployment = rt
        .deploy(&manifest, &fx.payloads, AdmitOptions::default())
        .await
        .unwrap();
    while let Some(event) = deployment.next_event().await {
        if matches!(
            event,
            handrail::Event::ActionStarted {
                action: Action::Install,
                ..
            }
        ) {
            deployment.cancel();
        }
    }
    let report = deployment.finish().await.unwrap();
    assert_eq!(report.status, DeploymentStatus::Cancelled);
    let actions: Vec<Action> = report.steps[0].actions.iter().map(|a| a.action).collect();
    assert_eq!(
        actions,
        [
            Action::IsInstalled,
            Action::Download,
            Action::Backup,
            Action::Install,
            Action::Cancel,
            Action::Restore
        ]
    );
    assert_eq!(
        report.failure.unwrap().result_code,
        codes::FAILURE_CANCELLED
    );
}

#[tokio::test]
async fn unregistered_handler_and_busy_state_are_refused() {
    let fx = Fixture::new();
    let rt = fx.runtime_with(vec![DeviceHandler::new("microsoft/apt:1", &fx.device)]);
    let err = rt
        .deploy(
            &example("parent-reference-step.json"),
            &fx.payloads,
            AdmitOptions::default(),
        )
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("microsoft/script:1"), "{err}");

    let suspended = inline_manifest(
        "microsoft/apt:1",
        &[serde_json::json!({"installedCriteria": "x", "codes": {"apply": 706}})],
    );
    assert_eq!(
        deploy(&rt, &suspended, &fx.payloads).await.status,
        DeploymentStatus::Suspended
    );
    let err = rt
        .deploy(
            &example("one-inline-step.json"),
            &fx.payloads,
            AdmitOptions::default(),
        )
        .await
        .err()
        .unwrap();
    assert!(matches!(err, handrail::RuntimeError::Busy { .. }), "{err}");
    let second = Runtime::builder(&fx.state).open().err().unwrap();
    assert!(second.to_string().contains("in use"), "{second}");
}

#[tokio::test]
async fn a_handler_supporting_only_install_skips_the_rest() {
    let fx = Fixture::new();
    let mut h = DeviceHandler::new("microsoft/apt:1", &fx.device);
    h.actions = vec![Action::Install];
    let calls = h.calls.clone();
    let rt = fx.runtime_with(vec![h]);
    let report = deploy(&rt, &example("one-inline-step.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
