//! The hostile guest through the whole pipeline: the real engine, journal and report over
//! the WASM host. Each misbehaviour is one deployment of a one-step update, refused with
//! a report that names the step and the action and carries its own result and extended
//! code; the same runtime then deploys a well-behaved step, so the agent is intact.

use std::fs;

use handrail::registry::Registry;
use handrail::report::FailureReport;
use handrail::{AdmitOptions, DeploymentStatus, Report, Runtime, StepOutcome};
use handrail_contract::codes::{self, ext};
use handrail_contract::{Action, ExtendedCode, MAX_RESULT_FILE_BYTES};
use handrail_test_guests::{
    DOT_DOT_REFUSED, READ_OUTSIDE_REFUSED, SYMLINK_REFUSED, WRITE_OUTSIDE_REFUSED,
};
use handrail_test_support::manifest::{Update, inline_step};
use serde_json::{Value, json};

use crate::support::{HOSTILE_ID, PLAIN, Scratch, Setup, shared_host};

/// The payload file of every step.
const PAYLOAD: (&str, &str) = ("a.txt", "payload a");

/// A device running the hostile guest as `setup` says: state directory, payload folder
/// (the scratch downloads folder) and a runtime over the shared WASM host.
struct Agent {
    scratch: Scratch,
    runtime: Runtime,
}

impl Agent {
    fn new(setup: &Setup) -> Agent {
        let scratch = Scratch::new();
        scratch.payload(PAYLOAD.0, PAYLOAD.1);
        let mut registry = Registry::new();
        registry
            .insert(scratch.hostile(setup))
            .expect("one registration");
        let runtime = Runtime::builder(scratch.path("state"))
            .allow_unsigned()
            .registry(registry)
            .host(shared_host().clone())
            .open()
            .expect("runtime");
        Agent { scratch, runtime }
    }

    /// Deploys one hostile step with `properties` and waits for its report.
    async fn deploy(&self, properties: Value) -> Report {
        let manifest = Update::new("test", "hostile", "1.0")
            .step(inline_step(HOSTILE_ID, &[PAYLOAD.0], properties))
            .to_vec();
        self.runtime
            .deploy(
                &manifest,
                &self.scratch.path("downloads"),
                AdmitOptions::default(),
            )
            .await
            .expect("admitted")
            .finish()
            .await
            .expect("the engine kept its state")
    }

    /// Deploys `properties`, checks that the report's failure is step 0's `install` with
    /// resultCode 0 and `code`, then that a well-behaved step still deploys. Returns the
    /// failure.
    async fn refused(&self, properties: Value, code: ExtendedCode) -> FailureReport {
        let report = self.deploy(properties).await;
        assert_eq!(report.status, DeploymentStatus::Failed, "{report:#?}");
        assert_eq!(report.steps[0].outcome, StepOutcome::Failed);
        let failure = report.failure.expect("the report names the failure");
        assert_eq!(failure.step, 0);
        assert_eq!(failure.label, "step 0");
        assert_eq!(failure.action, Action::Install);
        assert_eq!(failure.result_code, codes::FAILURE, "{failure:#?}");
        assert_eq!(
            ExtendedCode::from_raw(failure.extended_result_code),
            code,
            "{failure:#?}"
        );
        assert_eq!(failure.extended_result_code_hex, code.to_string());

        let after = self.deploy(json!({"behaviour": "ok"})).await;
        assert_eq!(after.status, DeploymentStatus::Succeeded, "{after:#?}");
        assert_eq!(after.steps[0].actions[0].result.result_details, "behaved");
        failure
    }

    /// [`refused`](Agent::refused) for an escape the guest reports on: nothing seen, and
    /// `attempts` refused. Returns what was refused, with the errors the guest was given.
    async fn contained(
        &self,
        properties: Value,
        code: ExtendedCode,
        attempts: usize,
    ) -> Vec<String> {
        let failure = self.refused(properties, code).await;
        // The guest's report, then what the runtime adds (a grant it lacks).
        let report: Value = serde_json::Deserializer::from_str(&failure.result_details)
            .into_iter()
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("no report in {}", failure.result_details));
        assert_eq!(report["seen"], json!([]), "the sandbox leaked: {report}");
        let refused: Vec<String> = serde_json::from_value(report["refused"].clone()).unwrap();
        assert_eq!(refused.len(), attempts, "{refused:#?}");
        refused
    }
}

#[tokio::test]
async fn reading_etc_passwd_is_contained() {
    let agent = Agent::new(&PLAIN);
    let refused = agent
        .contained(
            json!({"behaviour": "read-outside"}),
            READ_OUTSIDE_REFUSED,
            4,
        )
        .await;
    assert!(refused[0].starts_with("read /etc/passwd: "), "{refused:?}");
}

/// A path outside the sandbox looks missing to the handler; the report says it is a
/// grant that is missing, and which.
#[tokio::test]
async fn an_ungranted_path_the_handler_names_is_said_to_want_a_grant() {
    let agent = Agent::new(&PLAIN);
    let failure = agent
        .refused(json!({"behaviour": "read-outside"}), READ_OUTSIDE_REFUSED)
        .await;
    let details = &failure.result_details;
    assert!(details.contains("`/etc/passwd`"), "{details}");
    assert!(
        details.contains("exists on the device but is not granted to test/hostile:1"),
        "{details}"
    );
    assert!(
        details.contains("[handler_grants.\"test/hostile:1\"] read = [\"/etc\"]"),
        "{details}"
    );
}

#[tokio::test]
async fn dot_dot_escapes_are_contained() {
    let agent = Agent::new(&PLAIN);
    let refused = agent
        .contained(json!({"behaviour": "dot-dot-escape"}), DOT_DOT_REFUSED, 6)
        .await;
    assert!(
        refused[0].starts_with("read /payload/../etc/passwd: "),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_symbolic_link_planted_in_the_work_folder_leads_nowhere() {
    let ln_and_cat = Setup {
        grants: &["/bin/ln", "/bin/cat"],
        ..PLAIN
    };
    let agent = Agent::new(&ln_and_cat);
    let refused = agent
        .contained(json!({"behaviour": "symlink-escape"}), SYMLINK_REFUSED, 3)
        .await;
    assert!(
        refused[2].starts_with("run cat /work/etc/passwd: RunError::BadPath(")
            && refused[2].contains("resolves outside the sandbox"),
        "{refused:?}"
    );

    // A link where the result file goes is not followed by the engine either; like a
    // folder there, it is the handler's fault, not the host's.
    for (behaviour, what) in [
        ("symlink-result", "is a symbolic link, not a regular file"),
        ("folder-result", "is a folder, not a regular file"),
    ] {
        let failure = agent
            .refused(json!({"behaviour": behaviour}), ext::RESULT_FILE_MALFORMED)
            .await;
        assert!(failure.result_details.contains(what), "{failure:#?}");
    }
}

#[tokio::test]
async fn writing_outside_the_work_folder_is_contained() {
    let agent = Agent::new(&PLAIN);
    let outside = agent.scratch.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let target = outside.join("planted");
    let properties = json!({"behaviour": "write-outside", "target": target.display().to_string()});
    let refused = agent.contained(properties, WRITE_OUTSIDE_REFUSED, 6).await;
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("write /payload/a.txt: ")),
        "{refused:?}"
    );
    assert!(!target.exists());
    assert!(!std::path::Path::new("/tmp/handrail-hostile-planted").exists());
    assert_eq!(
        fs::read_to_string(agent.scratch.path("downloads/a.txt")).unwrap(),
        PAYLOAD.1
    );
}

/// A fresh agent deploys `behaviour` as `setup` says: refused with `code`, and the
/// details say `says`.
async fn refused_saying(setup: &Setup, behaviour: &str, code: ExtendedCode, says: &str) {
    let failure = Agent::new(setup)
        .refused(json!({ "behaviour": behaviour }), code)
        .await;
    assert!(failure.result_details.contains(says), "{failure:#?}");
}

#[tokio::test]
async fn an_infinite_loop_times_out() {
    let one_second = Setup {
        timeout_secs: 1,
        ..PLAIN
    };
    refused_saying(&one_second, "spin", ext::TIMED_OUT, "time limit").await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit() {
    let small = Setup {
        memory_mib: 32,
        ..PLAIN
    };
    let says = "limit is 33554432 bytes";
    refused_saying(&small, "memory-bomb", ext::MEMORY_LIMIT, says).await;
}

#[tokio::test]
async fn deep_recursion_is_a_trap() {
    let says = "call stack exhausted";
    refused_saying(&PLAIN, "deep-recursion", ext::HANDLER_TRAPPED, says).await;
}

#[tokio::test]
async fn a_100_mib_result_file_is_too_large() {
    let says = format!("larger than the limit of {MAX_RESULT_FILE_BYTES} bytes");
    refused_saying(&PLAIN, "huge-result", ext::RESULT_FILE_TOO_LARGE, &says).await;
}

#[tokio::test]
async fn a_result_file_that_is_not_utf8_is_refused() {
    let says = "not valid UTF-8";
    refused_saying(&PLAIN, "not-utf8-result", ext::RESULT_FILE_NOT_UTF8, says).await;
}

#[tokio::test]
async fn running_a_program_not_granted_is_denied() {
    let with_shell = Setup {
        grants: &["/bin/sh"],
        ..PLAIN
    };
    let says = "`/bin/cat` is not among the programs";
    refused_saying(&with_shell, "run-ungranted", ext::CAPABILITY_DENIED, says).await;
}

#[tokio::test]
async fn a_panic_is_a_trap_with_its_message() {
    let says = "panics on purpose";
    refused_saying(&PLAIN, "panic", ext::HANDLER_TRAPPED, says).await;
}
