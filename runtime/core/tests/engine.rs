//! The engine over the example manifests, reboot codes, failures, restore and cancel,
//! driven through the in-process host with test handlers that keep their "device" in a
//! temporary folder.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;

use common::*;
use handrail::contract::Action;
use handrail::contract::codes::{self, Interruption, ext};
use handrail::{AdmitOptions, DeploymentStatus, Runtime, StepOutcome};

#[tokio::test]
async fn one_inline_step_installs_then_is_skipped_as_installed() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(&rt, &example("one-inline-step.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    assert_eq!(report.steps.len(), 1);
    let actions: Vec<Action> = report.steps[0].actions.iter().map(|a| a.action).collect();
    // ADU's two phases: is-installed and download, then is-installed again and the rest.
    assert_eq!(
        actions,
        [
            Action::IsInstalled,
            Action::Download,
            Action::IsInstalled,
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
async fn two_inline_steps_download_first_then_install_in_order() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(&rt, &example("two-inline-steps.json"), &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded);
    let calls: Vec<String> = fx.calls().iter().map(|c| c.replace(" - ", " ")).collect();
    assert_eq!(
        calls,
        [
            "0 is-installed",
            "0 download",
            "1 is-installed",
            "1 download",
            "0 is-installed",
            "0 backup",
            "0 install",
            "0 apply",
            "1 is-installed",
            "1 backup",
            "1 install",
            "1 apply",
        ]
    );
    assert_eq!(rt.installed().unwrap().len(), 2);
}

#[tokio::test]
async fn parent_runs_child_per_camera_and_stops_at_the_missing_script() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(&rt, &example("parent-reference-step.json"), &fx.payloads).await;
    // Step 1 fails in the download phase, so nothing was installed or needs undoing.
    assert_eq!(report.status, DeploymentStatus::Failed);
    // Two cameras match `group: cameras` (the microphone does not): 3 steps each.
    assert_eq!(report.steps.len(), 6);
    assert!(report.steps.iter().all(|s| s.level == 1));
    assert_eq!(report.steps[1].outcome, StepOutcome::Failed);
    assert!(
        report
            .steps
            .iter()
            .enumerate()
            .all(|(i, s)| i == 1 || s.outcome == StepOutcome::Pending)
    );
    assert!(
        !fx.calls()
            .iter()
            .any(|c| c.ends_with("backup") || c.ends_with("install")),
        "nothing installs before every step has downloaded: {:?}",
        fx.calls()
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
    // Its failed is-installed counted as "not installed"; its download failed.
    assert_eq!(report.steps[1].actions[0].action, Action::IsInstalled);
    assert!(!report.steps[1].actions[0].result.is_success());
    assert_eq!(failure.action, Action::Download);
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
    // The report carries ADU's skipped codes as the step's download and install results.
    for step in &report.steps {
        let results: Vec<(Action, i32)> = step
            .actions
            .iter()
            .map(|a| (a.action, a.result.result_code))
            .collect();
        assert_eq!(
            results,
            [
                (
                    Action::Download,
                    codes::DOWNLOAD_SKIPPED_NO_MATCHING_COMPONENTS
                ),
                (
                    Action::Install,
                    codes::INSTALL_SKIPPED_NO_MATCHING_COMPONENTS
                )
            ],
            "{}",
            step.label
        );
    }
    assert!(fx.calls().is_empty());
}

#[tokio::test]
async fn child_alone_is_refused_before_anything_runs() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let err = refusal(&rt, "child-three-script-steps.json", &fx.payloads).await;
    assert!(err.contains("isDeployable"), "{err}");
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
    // Step 1 downloaded in the download phase; its install phase waits for the reboot.
    let step1: Vec<Action> = report.steps[1].actions.iter().map(|a| a.action).collect();
    assert_eq!(
        step1,
        [Action::IsInstalled, Action::Download],
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
    // Step 0 continues at its next action (never from the top), then verifies with
    // is-installed that the update runs after the reboot; only then does step 1 start.
    let step0: Vec<&str> = after
        .iter()
        .filter(|c| c.starts_with("0 "))
        .map(String::as_str)
        .collect();
    let expected: &[&str] = if expect_apply_before_stop {
        &["0 - is-installed"]
    } else {
        &["0 - apply", "0 - is-installed"]
    };
    assert_eq!(step0, expected, "{action} {code}: {after:?}");
    assert_eq!(after[step0.len()], "1 - is-installed", "{after:?}");
    let verified = report.steps[0].actions.last().unwrap();
    assert_eq!(
        (verified.action, verified.result.result_code),
        (Action::IsInstalled, codes::IS_INSTALLED_INSTALLED)
    );
    assert_eq!(report.steps[0].outcome, StepOutcome::Succeeded);
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
async fn an_update_not_running_after_the_reboot_fails_and_is_restored() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[serde_json::json!({"installedCriteria": "ab", "codes": {"apply": 705}})],
    );
    let report = deploy(&rt, &manifest, &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Suspended);
    assert!(
        rt.installed().unwrap().is_empty(),
        "not installed before it is seen running"
    );
    // The device came back on the old version (the bootloader fell back).
    fs::remove_file(fx.device.join("ab@host")).unwrap();
    drop(rt);
    let rt = fx.runtime();
    let report = resume(&rt).await;
    let failure = report.failure.clone().unwrap();
    assert_eq!(failure.action, Action::IsInstalled);
    assert_eq!(
        failure.extended_result_code,
        ext::NOT_RUNNING_AFTER_RESTART.value()
    );
    assert_eq!(
        report.steps[0].actions.last().unwrap().action,
        Action::Restore
    );
    assert_eq!(report.status, DeploymentStatus::RolledBack, "{report:#?}");
    assert!(rt.installed().unwrap().is_empty());
    assert!(
        rt.resume().unwrap().is_none(),
        "no loop: nothing left to resume"
    );
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
    // The failed step restored itself: the device is back where it was.
    assert_eq!(report.status, DeploymentStatus::RolledBack);
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
async fn malformed_results_fail_and_another_actions_success_code_succeeds() {
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
    // ADU's agent counts any code above 0 as success: so does Handrail (with a warning).
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    let install = report.steps[0]
        .actions
        .iter()
        .find(|a| a.action == Action::Install)
        .unwrap();
    assert_eq!(install.result.result_code, codes::APPLY_SUCCESS);
}

#[tokio::test]
async fn cancel_reaches_the_running_action_then_rolls_back_every_step() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[
            serde_json::json!({"installedCriteria": "first"}),
            serde_json::json!({"installedCriteria": "slow", "hang": "install"}),
        ],
    );
    let mut deployment = rt
        .deploy(&manifest, &fx.payloads, AdmitOptions::default())
        .await
        .unwrap();
    while let Some(event) = deployment.next_event().await {
        if matches!(
            event,
            handrail::Event::ActionStarted {
                step: 1,
                action: Action::Install,
            }
        ) {
            deployment.cancel();
        }
    }
    let report = deployment.finish().await.unwrap();
    assert_eq!(report.status, DeploymentStatus::Cancelled, "{report:#?}");
    // The cancelled step's restore ran to its end, not stopped by the same cancel; the
    // step installed before it was rolled back, as after a failure.
    let restore = |step: usize| {
        report.steps[step]
            .actions
            .iter()
            .rfind(|a| a.action == Action::Restore)
            .map(|a| a.result.result_code)
    };
    assert_eq!(restore(1), Some(codes::RESTORE_SUCCESS), "{report:#?}");
    assert_eq!(restore(0), Some(codes::RESTORE_SUCCESS), "{report:#?}");
    assert!(fx.device.join("restored-0").exists() && fx.device.join("restored-1").exists());
    assert_eq!(report.steps[0].outcome, StepOutcome::RolledBack);
    assert_eq!(report.steps[1].outcome, StepOutcome::Cancelled);
    assert!(
        rt.installed().unwrap().is_empty(),
        "a rolled-back step is no longer recorded installed"
    );
    let actions: Vec<Action> = report.steps[1].actions.iter().map(|a| a.action).collect();
    assert_eq!(
        actions,
        [
            Action::IsInstalled,
            Action::Download,
            Action::IsInstalled,
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

#[tokio::test]
async fn a_handler_without_is_installed_is_answered_from_the_records() {
    let fx = Fixture::new();
    let mut apt = DeviceHandler::new("microsoft/apt:1", &fx.device);
    apt.actions.retain(|a| *a != Action::IsInstalled);
    let rt = fx.runtime_with(vec![apt]);
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[
            serde_json::json!({"installedCriteria": "recorded-1"}),
            // No criteria: nothing to look up, so no is-installed at all.
            serde_json::json!({}),
        ],
    );
    let report = deploy(&rt, &manifest, &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    let first = &report.steps[0].actions[0];
    assert_eq!(
        (first.action, first.result.result_code),
        (Action::IsInstalled, codes::IS_INSTALLED_NOT_INSTALLED)
    );
    assert!(
        first.result.result_details.contains("not recorded"),
        "{first:?}"
    );
    assert!(
        report.steps[1]
            .actions
            .iter()
            .all(|a| a.action != Action::IsInstalled)
    );
    assert!(
        !fx.calls().iter().any(|c| c.ends_with("is-installed")),
        "the handler is never asked: {:?}",
        fx.calls()
    );

    // Recorded once it succeeded: the same criteria are now installed, step 1 runs again.
    let again = deploy(
        &rt,
        &inline_manifest(
            "microsoft/apt:1",
            &[serde_json::json!({"installedCriteria": "recorded-1"})],
        ),
        &fx.payloads,
    )
    .await;
    assert_eq!(again.steps[0].outcome, StepOutcome::AlreadyInstalled);
    assert!(
        again.steps[0].actions[0]
            .result
            .result_details
            .contains(&report.deployment),
        "{:?}",
        again.steps[0].actions[0]
    );
}

#[tokio::test]
async fn steps_sharing_criteria_record_them_only_when_the_last_of_them_succeeds() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    let shared = |codes: serde_json::Value| serde_json::json!({"installedCriteria": "shared-1.3", "codes": codes});
    let failing = inline_manifest(
        "microsoft/apt:1",
        &[
            shared(serde_json::json!({})),
            // A step whose change is not made yet when its turn comes.
            shared(serde_json::json!({"is-installed": 901, "install": 0})),
        ],
    );
    // Stop, not roll back: the first step stays installed, as its outcome says.
    let report = rt
        .deploy(
            &failing,
            &fx.payloads,
            AdmitOptions {
                failure_policy: Some(handrail::config::FailurePolicy::Stop),
                ..AdmitOptions::default()
            },
        )
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(report.status, DeploymentStatus::Failed, "{report:#?}");
    assert_eq!(report.steps[0].outcome, StepOutcome::Succeeded);
    assert!(
        rt.installed().unwrap().is_empty(),
        "a sibling's success does not say the failed step's criteria are installed"
    );
    let passing = inline_manifest(
        "microsoft/apt:1",
        &[
            shared(serde_json::json!({"apply": 700})),
            shared(serde_json::json!({})),
        ],
    );
    let fx = Fixture::new();
    let rt = fx.runtime();
    let report = deploy(&rt, &passing, &fx.payloads).await;
    // The first step's apply made the criteria true: the second finds them installed.
    assert_eq!(report.status, DeploymentStatus::Succeeded, "{report:#?}");
    assert_eq!(report.steps[1].outcome, StepOutcome::AlreadyInstalled);
    let installed = rt.installed().unwrap();
    assert_eq!(installed.len(), 1, "{installed:?}");
    assert_eq!(installed[0].installed_criteria, "shared-1.3");
}

#[tokio::test]
async fn abandoning_a_suspended_deployment_rolls_it_back_and_records_it_cancelled() {
    let fx = Fixture::new();
    let rt = fx.runtime();
    // Step 0 installs; step 1 asks for a reboot after its apply.
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[
            serde_json::json!({"installedCriteria": "first"}),
            serde_json::json!({"installedCriteria": "second", "codes": {"apply": 706}}),
        ],
    );
    let report = deploy(&rt, &manifest, &fx.payloads).await;
    assert_eq!(report.status, DeploymentStatus::Suspended, "{report:#?}");
    let calls_before = fx.calls().len();

    // The device owner gives up on the update instead of rebooting.
    drop(rt);
    let rt = fx.runtime();
    let report = rt.abandon().unwrap().unwrap().finish().await.unwrap();
    assert_eq!(report.status, DeploymentStatus::Cancelled, "{report:#?}");
    // Nothing carried on: no install, apply or verification ran; the stopped step undid
    // itself and the earlier one was rolled back.
    let after: Vec<String> = fx.calls()[calls_before..].to_vec();
    assert!(
        after
            .iter()
            .all(|c| c.ends_with("- cancel") || c.ends_with("- restore")),
        "{after:?}"
    );
    assert!(fx.device.join("restored-0").exists() && fx.device.join("restored-1").exists());
    assert_eq!(report.steps[0].outcome, StepOutcome::RolledBack);
    assert_eq!(report.steps[1].outcome, StepOutcome::Cancelled);
    assert!(rt.installed().unwrap().is_empty());
    assert_eq!(
        rt.history().unwrap().last().unwrap().report.status,
        DeploymentStatus::Cancelled
    );
    assert!(
        rt.abandon().unwrap().is_none(),
        "nothing is left to abandon"
    );
    assert!(rt.resume().unwrap().is_none());
}

/// A cancel is journaled before anything is undone: when the agent dies during the
/// rollback, the journal holds the cancel, and the resumed run finishes it (the
/// interrupted restore again, `cancelled`) instead of carrying on with the steps the
/// cancel stopped. (Here the cancel reaches step 0's running apply, so that the test
/// does not depend on timing; a cancel that comes between two steps, which no action's
/// result records, is why the record exists.)
#[test]
fn a_cancel_is_journaled_so_a_crash_during_its_rollback_still_ends_cancelled() {
    const CHILD: &str = "HANDRAIL_TEST_CHILD_FIXTURE";
    let manifest = inline_manifest(
        "microsoft/apt:1",
        &[
            serde_json::json!({"installedCriteria": "first", "cancelDeploymentAt": "apply", "abortAt": "restore"}),
            serde_json::json!({"installedCriteria": "second"}),
        ],
    );
    if let Some(root) = std::env::var_os(CHILD) {
        // The agent that dies: step 0's apply cancels the deployment, and the process
        // aborts in step 0's restore.
        let fx = Fixture::at(Path::new(&root));
        let apt = DeviceHandler::new("microsoft/apt:1", &fx.device);
        let agent = tokio::runtime::Runtime::new().unwrap();
        agent.block_on(async {
            let rt = fx.runtime_with(vec![apt.sharing()]);
            let deployment = rt
                .deploy(&manifest, &fx.payloads, AdmitOptions::default())
                .await
                .unwrap();
            apt.deployment.set(deployment.cancel_token()).unwrap();
            let _ = deployment.finish().await;
        });
        unreachable!("the restore aborts the process");
    }
    let fx = Fixture::new();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_cancel_is_journaled_so_a_crash_during_its_rollback_still_ends_cancelled",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, fx.tmp.path())
        .env(ABORT_ENV, "1")
        .output()
        .unwrap();
    assert!(
        !child.status.success() && fx.calls().iter().any(|c| c == "0 - restore"),
        "{child:?}"
    );
    let calls_before = fx.calls().len();
    let journal = fs::read_to_string(fx.state.join("journal.log")).unwrap();
    assert!(
        journal.contains("\"event\":\"cancel-requested\""),
        "the cancel is journaled before the rollback: {journal}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(async {
        let runtime = fx.runtime_with(vec![DeviceHandler::new("microsoft/apt:1", &fx.device)]);
        resume(&runtime).await
    });
    assert_eq!(report.status, DeploymentStatus::Cancelled, "{report:#?}");
    assert_eq!(
        report.steps[0].outcome,
        StepOutcome::Cancelled,
        "{report:#?}"
    );
    assert!(fx.device.join("restored-0").exists());
    let resumed = &fx.calls()[calls_before..];
    assert_eq!(resumed, ["0 - restore"], "the cancelled step 1 ran on");
}
