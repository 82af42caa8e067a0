//! The sandbox and the limits, against a guest that misbehaves on request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use handrail::CancelToken;
use handrail::host::{InvocationEnd, LoadedHandler};
use handrail_contract::{Action, ResultFile, codes};
use handrail_test_guest_artifacts::HOSTILE;
use serde_json::{Value, json};

use crate::support::{Scratch, invoke, limits, load};

const ID: &str = "test/hostile:1";

async fn hostile(
    scratch: &Scratch,
    grants: &[&str],
    memory_mib: u64,
    timeout_secs: u64,
) -> Arc<dyn LoadedHandler> {
    load(&scratch.registration(ID, HOSTILE, grants, limits(memory_mib, timeout_secs))).await
}

/// Runs `install` with the given properties; returns how it ended, the result and the
/// progress reported.
async fn install(
    scratch: &Scratch,
    handler: &Arc<dyn LoadedHandler>,
    properties: Value,
    cancel: CancelToken,
) -> (InvocationEnd, ResultFile, Vec<(u64, u64)>) {
    let files = vec![scratch.payload("a.txt", "payload a")];
    let context = scratch.context(ID, properties, files, None);
    let (end, progress) = invoke(handler, Action::Install, context, cancel).await;
    (end, scratch.result(Action::Install), progress)
}

fn details(result: &ResultFile) -> Value {
    serde_json::from_str(&result.result_details)
        .unwrap_or_else(|e| panic!("{e}: {}", result.result_details))
}

#[tokio::test]
async fn describe_is_read_at_load() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 10).await;
    let d = handler.description();
    assert_eq!(d.id, ID);
    assert_eq!(d.actions, [Action::Install, Action::Cancel]);
    assert_eq!(d.contract, (1, 0));
}

#[tokio::test]
async fn the_guest_sees_nothing_outside_its_sandbox() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 10).await;
    let (end, result, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "look-around"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    assert_eq!(result.result_code, codes::INSTALL_SUCCESS);
    assert_eq!(details(&result), json!([]), "the guest saw something");
}

#[tokio::test]
async fn the_guest_gets_sandbox_paths_and_only_its_steps_files() {
    let scratch = Scratch::new();
    scratch.payload("another-steps-file.bin", "not for this step");
    let handler = hostile(&scratch, &[], 64, 10).await;
    let (end, result, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "echo-context"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    let report = details(&result);
    assert_eq!(report["context"]["files"][0]["path"], "/payload/a.txt");
    assert_eq!(report["context"]["workFolder"], "/work");
    assert_eq!(report["context"]["resultFile"], "/work/result.json");
    assert_eq!(report["contents"][0][1], "payload a");
    assert_eq!(report["payload"], json!(["a.txt"]));
    let leftovers: Vec<_> = std::fs::read_dir(scratch.path("downloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the payload folder is removed: {leftovers:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_infinite_loop_times_out_and_the_runtime_stays_responsive() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 1).await;
    let ticks = Arc::new(AtomicU64::new(0));
    let counter = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let started = Instant::now();
    let (end, _, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "spin"}),
        CancelToken::new(),
    )
    .await;
    ticker.abort();
    assert_eq!(end, InvocationEnd::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // One worker thread, and a spinning guest on it: the other task still ran.
    assert!(
        ticks.load(Ordering::Relaxed) >= 10,
        "{} ticks",
        ticks.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_call_times_out() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 1).await;
    let started = Instant::now();
    let (end, _, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "sleep"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(end, InvocationEnd::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_memory_bomb_is_out_of_memory() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 32, 30).await;
    let (end, _, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "memory-bomb"}),
        CancelToken::new(),
    )
    .await;
    match end {
        InvocationEnd::OutOfMemory(why) => assert!(why.contains("33554432"), "{why}"),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panic_is_a_trap_with_the_panic_message() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 10).await;
    let (end, _, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "panic"}),
        CancelToken::new(),
    )
    .await;
    match end {
        InvocationEnd::Trapped(why) => assert!(why.contains("panics on purpose"), "{why}"),
        other => panic!("expected Trapped, got {other:?}"),
    }
}

#[tokio::test]
async fn an_ungranted_program_is_not_run() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &["/bin/sh"], 64, 10).await;
    let (end, result, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "run-ungranted"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    assert!(
        result
            .result_details
            .starts_with("Err(RunError::NotGranted("),
        "{}",
        result.result_details
    );
}

#[tokio::test]
async fn cancel_stops_a_busy_guest() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 30).await;
    let cancel = CancelToken::new();
    let later = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        later.cancel();
    });
    let started = Instant::now();
    let (end, _, _) = install(&scratch, &handler, json!({"behaviour": "spin"}), cancel).await;
    assert_eq!(end, InvocationEnd::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn cancel_kills_a_running_program() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &["/bin/sh"], 64, 30).await;
    let cancel = CancelToken::new();
    let later = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        later.cancel();
    });
    let started = Instant::now();
    let marker = scratch.path("work/still-running");
    let properties = json!({
        "behaviour": "run",
        "program": "/bin/sh",
        "args": ["-c", "sleep 3; touch still-running"],
    });
    let (end, _, _) = install(&scratch, &handler, properties, cancel).await;
    assert_eq!(end, InvocationEnd::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(3));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!marker.exists(), "the program was killed");
}

#[tokio::test]
async fn is_cancelled_tells_the_guest() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 30).await;
    let cancel = CancelToken::new();
    let later = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        later.cancel();
    });
    let (end, _, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "wait-for-cancel"}),
        cancel,
    )
    .await;
    assert_eq!(end, InvocationEnd::Cancelled);
}

#[tokio::test]
async fn the_cancel_action_runs_although_the_deployment_is_cancelled() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 10).await;
    let cancel = CancelToken::new();
    cancel.cancel();
    let context = scratch.context(ID, json!({}), vec![], None);
    let (end, _) = invoke(&handler, Action::Cancel, context, cancel).await;
    assert_eq!(end, InvocationEnd::Returned);
    assert_eq!(
        scratch.result(Action::Cancel).result_code,
        codes::CANCEL_SUCCESS
    );
}

#[tokio::test]
async fn a_granted_program_runs_in_the_work_folder_with_mapped_paths_and_only_the_given_env() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &["/bin/sh"], 64, 10).await;
    let properties = json!({
        "behaviour": "run",
        "program": "/bin/sh",
        "args": ["-c", "echo \"$GREETING\"; pwd; cat \"$0\"; echo; env | grep -c . ; echo oops >&2; exit 7", "/payload/a.txt"],
    });
    let (end, result, _) = install(&scratch, &handler, properties, CancelToken::new()).await;
    assert_eq!(end, InvocationEnd::Returned);
    let report = details(&result);
    assert_eq!(report["exitCode"], 7);
    let work = scratch.work().display().to_string();
    let stdout = report["stdout"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "hello");
    assert_eq!(lines[1], work);
    assert_eq!(lines[2], "payload a");
    // GREETING, and the PWD (and maybe SHLVL) the shell sets itself.
    assert!(lines[3].parse::<u32>().unwrap() <= 3, "{stdout}");
    assert_eq!(report["stderr"], "oops\n");
    assert_eq!(report["truncated"], false);
}

#[tokio::test]
async fn run_refuses_paths_outside_the_sandbox_and_honours_its_timeout() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &["/bin/sh"], 64, 10).await;
    for (args, want) in [
        (json!(["/etc/passwd"]), "BadPath"),
        (json!(["/work/../../etc/passwd"]), "BadPath"),
        (json!(["-c", "sleep 5"]), "TimedOut"),
    ] {
        let properties =
            json!({"behaviour": "run", "program": "/bin/sh", "args": args, "timeoutMs": 200});
        let started = Instant::now();
        let (end, result, _) = install(&scratch, &handler, properties, CancelToken::new()).await;
        assert_eq!(end, InvocationEnd::Returned);
        assert!(
            details(&result)["error"]
                .as_str()
                .unwrap_or("")
                .contains(want),
            "{args}: {}",
            result.result_details
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

#[tokio::test]
async fn program_output_is_capped() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &["/bin/sh"], 64, 10).await;
    let properties = json!({
        "behaviour": "run",
        "program": "/bin/sh",
        "args": ["-c", "head -c 3000000 /dev/zero | tr '\\0' x"],
    });
    let (end, result, _) = install(&scratch, &handler, properties, CancelToken::new()).await;
    assert_eq!(end, InvocationEnd::Returned);
    let report = details(&result);
    assert_eq!(report["stdoutLen"], handrail_wasm_host::MAX_RUN_OUTPUT);
    assert_eq!(report["truncated"], true);
}

#[tokio::test]
async fn progress_reaches_the_engine_and_floods_are_absorbed() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 30).await;
    let (end, result, progress) = install(
        &scratch,
        &handler,
        json!({"behaviour": "progress"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    assert_eq!(result.result_code, codes::INSTALL_SUCCESS);
    assert_eq!(progress, [(1, 2), (2, 2)]);
    let (end, result, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "log-flood"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    assert_eq!(result.result_details, "flooded");
}

#[tokio::test]
async fn a_missing_work_folder_is_a_host_failure() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 10).await;
    let mut context = scratch.context(ID, json!({}), vec![], None);
    context.work_folder = scratch.path("no-such-folder").display().to_string();
    let (end, _) = invoke(&handler, Action::Install, context, CancelToken::new()).await;
    assert!(matches!(end, InvocationEnd::HostFailure(_)), "{end:?}");
}

#[tokio::test]
async fn a_symbolic_link_out_of_the_work_folder_leads_nowhere() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &["/bin/ln", "/bin/cat"], 64, 10).await;
    let (end, result, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "symlink-escape"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(end, InvocationEnd::Returned);
    let report = details(&result);
    assert_eq!(report["madeLink"], true, "{report}");
    assert_eq!(report["seen"], json!([]), "{report}");
    let ran = report["run"].as_str().unwrap();
    assert!(ran.starts_with("Err(RunError::BadPath("), "{ran}");
}

#[tokio::test]
async fn a_guest_cannot_hoard_host_file_descriptors() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &[], 64, 10).await;
    let (end, _, _) = install(
        &scratch,
        &handler,
        json!({"behaviour": "fd-hog"}),
        CancelToken::new(),
    )
    .await;
    // Past MAX_GUEST_RESOURCES the guest is stopped, before the agent runs out.
    match end {
        InvocationEnd::Trapped(why) => {
            assert!(why.contains("resource table"), "{why}");
            assert!(why.len() < 16 * 1024, "{} bytes", why.len());
        }
        other => panic!("expected Trapped, got {other:?}"),
    }
}
