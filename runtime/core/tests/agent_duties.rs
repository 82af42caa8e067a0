//! The duties of an update agent around the steps: rollback policy, idempotent
//! deployment ids, compatibility and disk-space preflight, pre/post-update hooks, and
//! the deployment time limit.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use handrail::config::{Config, FailurePolicy};
use handrail::contract::Action;
use handrail::{AdmitOptions, DeploymentStatus, Runtime, StepOutcome};

/// Three steps; the third fails at install.
fn failing_third_step() -> Vec<u8> {
    inline_manifest(
        "microsoft/apt:1",
        &[
            serde_json::json!({"installedCriteria": "one"}),
            serde_json::json!({"installedCriteria": "two"}),
            serde_json::json!({"installedCriteria": "three", "codes": {"install": 0}}),
        ],
    )
}

fn restores(fx: &Fixture) -> Vec<String> {
    fx.calls()
        .into_iter()
        .filter(|c| c.ends_with("restore"))
        .collect()
}

#[tokio::test]
async fn a_failed_step_rolls_back_earlier_steps_in_reverse_order() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(&rt, &failing_third_step(), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::RolledBack, "{report:#?}");
    let outcomes: Vec<StepOutcome> = report.steps.iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [
            StepOutcome::RolledBack,
            StepOutcome::RolledBack,
            StepOutcome::Failed
        ]
    );
    // The failed step restores itself first, then step 1, then step 0.
    assert_eq!(restores(&fx), ["2 - restore", "1 - restore", "0 - restore"]);
    assert!(
        rt.installed().unwrap().is_empty(),
        "rolled-back steps are no longer recorded as installed"
    );
    let failure = report.failure.unwrap();
    assert_eq!((failure.step, failure.action), (2, Action::Install));
}

#[tokio::test]
async fn the_stop_policy_leaves_earlier_steps_installed() {
    let mut fx = Fixture::new();
    fx.config.deployment.failure_policy = FailurePolicy::Stop;
    let rt = fx.runtime();
    let report = deploy(&rt, &failing_third_step(), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Failed);
    assert_eq!(restores(&fx), ["2 - restore"]);
    assert_eq!(rt.installed().unwrap().len(), 2);

    // Per deployment, the policy can be overridden.
    let fx = Fixture::new();
    let rt = fx.runtime();
    let options = AdmitOptions {
        failure_policy: Some(FailurePolicy::Stop),
        ..AdmitOptions::default()
    };
    let report = rt
        .deploy(&failing_third_step(), &fx.payloads, options)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(report.status, DeploymentStatus::Failed);
}

#[tokio::test]
async fn resubmitting_a_deployment_id_returns_the_earlier_result() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let options = || AdmitOptions {
        deployment_id: Some("job-42".into()),
        ..AdmitOptions::default()
    };
    let manifest = example("one-inline-step.json");
    let first = rt.deploy(&manifest, &fx.payloads, options()).await.unwrap();
    assert!(!first.is_earlier_result());
    let first = first.finish().await.unwrap();
    let calls = fx.calls().len();
    let again = rt.deploy(&manifest, &fx.payloads, options()).await.unwrap();
    assert!(again.is_earlier_result());
    assert_eq!(again.finish().await.unwrap(), first);
    assert_eq!(fx.calls().len(), calls, "nothing ran twice");
    assert_eq!(rt.history().unwrap().len(), 1);
}

#[tokio::test]
async fn an_update_for_another_device_is_rejected_and_recorded() {
    let mut fx = Fixture::new();
    fx.config = Config::parse(
        Path::new("config.toml"),
        "[device]\nmanufacturer = \"contoso\"\nmodel = \"other\"\n[signing]\nrequired = false\n",
    )
    .unwrap();
    let rt = fx.runtime();
    let options = AdmitOptions {
        deployment_id: Some("job-7".into()),
        ..AdmitOptions::default()
    };
    let err = rt
        .deploy(&example("one-inline-step.json"), &fx.payloads, options)
        .await
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        message.contains("{manufacturer=du-device, model=e2e-test}")
            && message.contains("model=other"),
        "{message}"
    );
    assert!(fx.calls().is_empty());
    let history = rt.history().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].report.status, DeploymentStatus::Rejected);
    assert_eq!(history[0].report.error.as_deref(), Some(message.as_str()));

    // The matching device deploys it.
    let mut fx = Fixture::new();
    fx.config
        .device
        .insert("manufacturer".into(), "du-device".into());
    fx.config.device.insert("model".into(), "e2e-test".into());
    let rt = fx.runtime();
    assert_eq!(
        deploy(&rt, &example("one-inline-step.json"), &fx.payloads)
            .await
            .status,
        DeploymentStatus::Succeeded
    );
}

#[tokio::test]
async fn too_little_disk_space_is_refused_before_anything_runs() {
    let mut fx = Fixture::new();
    fx.config.deployment.disk_space_factor = 1e15;
    let rt = fx.runtime();
    let err = refusal(&rt, "one-inline-step.json", &fx.payloads).await;
    assert!(err.contains("not enough free space"), "{err}");
    assert!(fx.calls().is_empty());
    assert!(
        !fx.state
            .join("deployments")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

/// Writes an executable root-owned hook (the tests run as root; ownership is checked).
fn hook(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    path
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn hooks_run_around_the_deployment_and_a_failing_pre_hook_stops_it() {
    let mut fx = Fixture::new();
    let marks = fx.tmp.path().join("marks");
    fx.config.hooks.pre_update = Some(hook(
        fx.tmp.path(),
        "pre",
        &format!("#!/bin/sh\necho \"pre $1 $2\" >> {}\n", marks.display()),
    ));
    fx.config.hooks.post_update = Some(hook(
        fx.tmp.path(),
        "post",
        &format!("#!/bin/sh\necho \"post $3\" >> {}\n", marks.display()),
    ));
    let rt = fx.runtime();
    let report = deploy(&rt, &example("one-inline-step.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    let lines = fs::read_to_string(&marks).unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("pre ") && lines[0].ends_with("contoso/apt-update-test/1.0"));
    assert_eq!(lines[1], "post succeeded");
    drop(rt);

    // A pre hook that fails stops the deployment before any step runs.
    let mut fx = Fixture::new();
    fx.config.hooks.pre_update = Some(hook(
        fx.tmp.path(),
        "pre",
        "#!/bin/sh\necho 'daemon would not stop' >&2\nexit 4\n",
    ));
    let rt = fx.runtime();
    let report = deploy(&rt, &example("one-inline-step.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("pre-update hook") && error.contains("daemon would not stop"),
        "{error}"
    );
    assert!(fx.calls().is_empty(), "no step ran");
}

#[tokio::test]
async fn required_hooks_must_exist_and_be_root_owned() {
    let mut fx = Fixture::new();
    fx.config.hooks.pre_update = Some(fx.tmp.path().join("absent"));
    fx.config.hooks.required = true;
    let rt = fx.runtime();
    let report = deploy(&rt, &example("one-inline-step.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Failed);
    assert!(
        report
            .error
            .unwrap()
            .contains("required but does not exist")
    );
    drop(rt);

    if running_as_root() {
        let mut fx = Fixture::new();
        let path = hook(fx.tmp.path(), "pre", "#!/bin/sh\nexit 0\n");
        std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
        fx.config.hooks.pre_update = Some(path);
        let rt = fx.runtime();
        let report = deploy(&rt, &example("one-inline-step.json"), &fx.payloads).await;
        assert_eq!(report.status, DeploymentStatus::Failed);
        let error = report.error.unwrap();
        assert!(error.contains("owned by uid 1000, not root"), "{error}");
        assert!(fx.calls().is_empty());
    }
}

#[tokio::test]
async fn the_deployment_time_limit_stops_a_hanging_step() {
    let mut fx = Fixture::new();
    fx.config.deployment.timeout_secs = 1;
    let rt = fx.runtime();
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[serde_json::json!({"installedCriteria": "slow", "hang": "install"})],
    );
    let report = deploy(&rt, &manifest, &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::TimedOut, "{report:#?}");
}

#[tokio::test]
async fn without_a_configuration_the_builder_reads_the_state_directorys_config_toml() {
    let fx = Fixture::new();
    fs::create_dir_all(&fx.state).unwrap();
    fs::write(
        fx.state.join("config.toml"),
        "[device]\nmanufacturer = \"contoso\"\nmodel = \"other\"\n[signing]\nrequired = false\n",
    )
    .unwrap();
    let host = handrail::in_process::InProcessHost::new()
        .with(DeviceHandler::new("microsoft/apt:1", &fx.device));
    let rt = Runtime::builder(&fx.state).in_process(host).open().unwrap();
    // The configured device identity refuses it.
    let err = refusal(&rt, "one-inline-step.json", &fx.payloads).await;
    assert!(err.contains("model=other"), "{err}");

    // A broken one is an error naming the file, not silently the defaults.
    fs::write(fx.state.join("config.toml"), "[device\n").unwrap();
    drop(rt);
    let err = Runtime::builder(&fx.state)
        .open()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.toml"), "{err}");
}
