//! The sandbox and the limits, against a guest that misbehaves on request.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use handrail::CancelToken;
use handrail::host::{InvocationEnd, LoadedHandler};
use handrail_contract::{Action, ResultFile, codes};
use serde_json::{Value, json};

use crate::support::{HOSTILE_ID, PLAIN, Scratch, Setup, invoke, invoke_observed, load};

const WITH_SHELL: Setup = Setup {
    grants: &["/bin/sh"],
    ..PLAIN
};

/// One `install` of the hostile guest, in a scratch folder of its own.
struct Run {
    scratch: Scratch,
    end: InvocationEnd,
    result: ResultFile,
    progress: Vec<(u64, u64)>,
}

impl Run {
    /// The result details, which the guest writes as JSON.
    fn details(&self) -> Value {
        serde_json::from_str(&self.result.result_details)
            .unwrap_or_else(|e| panic!("{e}: {}", self.result.result_details))
    }
}

async fn hostile(scratch: &Scratch, setup: &Setup) -> Arc<dyn LoadedHandler> {
    load(&scratch.hostile(setup)).await
}

/// Runs `install` with `properties` and the payload file `a.txt`.
async fn install(
    scratch: &Scratch,
    handler: &Arc<dyn LoadedHandler>,
    properties: Value,
    cancel: CancelToken,
) -> (InvocationEnd, Vec<(u64, u64)>) {
    install_observed(scratch, handler, properties, cancel, |_, _| {}).await
}

/// [`install`], calling `observe` with each progress report as it comes.
async fn install_observed(
    scratch: &Scratch,
    handler: &Arc<dyn LoadedHandler>,
    properties: Value,
    cancel: CancelToken,
    observe: impl Fn(u64, u64) + Send + Sync + 'static,
) -> (InvocationEnd, Vec<(u64, u64)>) {
    let files = vec![scratch.payload("a.txt", "payload a")];
    let context = scratch.context(HOSTILE_ID, properties, files, None);
    invoke_observed(handler, Action::Install, context, cancel, observe).await
}

impl Run {
    /// The run of `install` in `scratch` that ended as `end` said.
    fn of(scratch: Scratch, (end, progress): (InvocationEnd, Vec<(u64, u64)>)) -> Run {
        let result = scratch.result(Action::Install);
        Run {
            scratch,
            end,
            result,
            progress,
        }
    }
}

/// Loads the guest as `setup` says and runs `install` once.
async fn run(setup: &Setup, properties: Value, cancel: CancelToken) -> Run {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, setup).await;
    let ended = install(&scratch, &handler, properties, cancel).await;
    Run::of(scratch, ended)
}

#[tokio::test]
async fn describe_is_read_at_load() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &PLAIN).await;
    let d = handler.description();
    assert_eq!(d.id, HOSTILE_ID);
    assert_eq!(d.actions, [Action::Install, Action::Cancel]);
    assert_eq!(d.contract, (1, 0));
}

#[tokio::test]
async fn the_guest_sees_nothing_outside_its_sandbox() {
    // A TCP listener and a UDP socket on one port, for the guest to try.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    udp.set_nonblocking(true).unwrap();
    let run = run(
        &PLAIN,
        json!({"behaviour": "look-around", "port": port}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(run.end, InvocationEnd::Returned);
    assert_eq!(run.result.result_code, codes::INSTALL_SUCCESS);
    assert_eq!(run.details(), json!([]), "the guest saw something");
    assert!(tcp.accept().is_err(), "the guest reached the TCP listener");
    assert!(
        udp.recv(&mut [0u8; 16]).is_err(),
        "the guest reached the UDP socket"
    );
}

#[tokio::test]
async fn granted_folders_are_seen_at_their_own_path_and_nothing_beside_them() {
    let scratch = Scratch::new();
    for folder in ["granted", "sibling", "writable"] {
        std::fs::create_dir_all(scratch.path(folder)).unwrap();
        std::fs::write(scratch.path(&format!("{folder}/old.txt")), folder).unwrap();
    }
    let mut registration = scratch.hostile(&PLAIN);
    registration.capabilities.read = vec![scratch.path("granted")];
    registration.capabilities.write = vec![scratch.path("writable")];
    let handler = load(&registration).await;
    let at = |rel: &str| scratch.path(rel).display().to_string();
    let properties = json!({
        "behaviour": "probe",
        "read": [
            at("granted/old.txt"),
            at("writable/old.txt"),
            at("sibling/old.txt"),
            at("granted/../sibling/old.txt"),
        ],
        "write": [at("writable/new.txt"), at("granted/new.txt"), at("sibling/new.txt")],
    });
    let (end, _) = install(&scratch, &handler, properties, CancelToken::new()).await;
    assert_eq!(end, InvocationEnd::Returned);
    let result = scratch.result(Action::Install);
    let report: Value = serde_json::from_str(&result.result_details).unwrap();
    assert_eq!(
        report["seen"],
        json!([
            format!("read {} (7 bytes)", at("granted/old.txt")),
            format!("read {} (8 bytes)", at("writable/old.txt")),
            format!("wrote {}", at("writable/new.txt")),
        ]),
        "{report}"
    );
    let refused: Vec<&str> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(refused.len(), 4, "{report}");
    for (attempt, path) in [
        ("read", "sibling/old.txt"),
        ("read", "granted/../sibling/old.txt"),
        ("write", "granted/new.txt"),
        ("write", "sibling/new.txt"),
    ] {
        let prefix = format!("{attempt} {}: ", at(path));
        assert!(
            refused.iter().any(|r| r.starts_with(&prefix)),
            "{prefix} in {report}"
        );
    }
    assert!(scratch.path("writable/new.txt").is_file());
    assert!(!scratch.path("granted/new.txt").exists());
    assert!(!scratch.path("sibling/new.txt").exists());
}

#[tokio::test]
async fn the_guest_gets_sandbox_paths_and_only_its_steps_files() {
    let scratch = Scratch::new();
    scratch.payload("another-steps-file.bin", "not for this step");
    let handler = hostile(&scratch, &PLAIN).await;
    let properties = json!({"behaviour": "echo-context"});
    let (end, _) = install(&scratch, &handler, properties, CancelToken::new()).await;
    assert_eq!(end, InvocationEnd::Returned);
    let result = scratch.result(Action::Install);
    let report: Value = serde_json::from_str(&result.result_details).unwrap();
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

#[tokio::test]
async fn an_infinite_loop_times_out() {
    let one_second = Setup {
        timeout_secs: 1,
        ..PLAIN
    };
    let run = run(
        &one_second,
        json!({"behaviour": "spin"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(run.end, InvocationEnd::TimedOut);
}

#[tokio::test(flavor = "current_thread")]
async fn a_busy_guest_leaves_the_runtime_responsive() {
    let scratch = Scratch::new();
    let handler = hostile(
        &scratch,
        &Setup {
            timeout_secs: NEVER,
            ..PLAIN
        },
    )
    .await;
    let spinning = Arc::new(tokio::sync::Notify::new());
    let cancel = CancelToken::new();
    // Another task on the test's only thread cancels the guest once it spins: it can run
    // only if the spinning guest gives the thread back.
    let other_task = {
        let (spinning, cancel) = (spinning.clone(), cancel.clone());
        tokio::spawn(async move {
            spinning.notified().await;
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            cancel.cancel();
        })
    };
    let context = scratch.context(HOSTILE_ID, json!({"behaviour": "spin"}), vec![], None);
    let (end, _) = invoke_observed(&handler, Action::Install, context, cancel, move |_, _| {
        spinning.notify_one()
    })
    .await;
    assert_eq!(end, InvocationEnd::Cancelled);
    other_task.await.unwrap();
}

#[tokio::test]
async fn a_guest_blocked_in_a_host_call_times_out() {
    let one_second = Setup {
        timeout_secs: 1,
        ..PLAIN
    };
    let run = run(
        &one_second,
        json!({"behaviour": "sleep"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(run.end, InvocationEnd::TimedOut);
}

#[tokio::test]
async fn a_memory_bomb_is_out_of_memory() {
    let small = Setup {
        memory_mib: 32,
        ..PLAIN
    };
    let run = run(
        &small,
        json!({"behaviour": "memory-bomb"}),
        CancelToken::new(),
    )
    .await;
    match run.end {
        InvocationEnd::OutOfMemory(why) => assert!(why.contains("33554432"), "{why}"),
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panic_is_a_trap_with_the_panic_message() {
    let run = run(&PLAIN, json!({"behaviour": "panic"}), CancelToken::new()).await;
    match run.end {
        InvocationEnd::Trapped(why) => {
            // One line, the panic first; the backtrace goes to the log.
            assert!(why.starts_with("panicked at "), "{why}");
            assert!(why.contains("panics on purpose"), "{why}");
            assert!(
                !why.contains('\n') && !why.contains("wasm backtrace"),
                "{why}"
            );
            assert!(why.ends_with(')'), "the trap last: {why}");
        }
        other => panic!("expected Trapped, got {other:?}"),
    }
}

#[tokio::test]
async fn a_guest_cannot_hoard_host_file_descriptors() {
    let run = run(&PLAIN, json!({"behaviour": "fd-hog"}), CancelToken::new()).await;
    // Past MAX_GUEST_RESOURCES the guest is stopped, before the agent runs out.
    match run.end {
        InvocationEnd::Trapped(why) => {
            assert!(why.contains("resource table"), "{why}");
            assert!(why.len() < 16 * 1024, "{} bytes", why.len());
        }
        other => panic!("expected Trapped, got {other:?}"),
    }
}

/// Long enough never to be what ends a test: a test that ends by it has failed.
const NEVER: u64 = 600;

/// Runs `install` as `setup` says, cancelling it when the guest first reports progress
/// (the cancel tests' guests report 0/1 once they are waiting or busy).
async fn cancelled_once_running(setup: &Setup, properties: Value) -> Run {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, setup).await;
    let cancel = CancelToken::new();
    let on_progress = cancel.clone();
    let ended = install_observed(&scratch, &handler, properties, cancel, move |_, _| {
        on_progress.cancel()
    })
    .await;
    Run::of(scratch, ended)
}

#[tokio::test]
async fn cancel_stops_a_busy_guest() {
    let setup = Setup {
        timeout_secs: NEVER,
        ..PLAIN
    };
    let run = cancelled_once_running(&setup, json!({"behaviour": "spin"})).await;
    assert_eq!(run.end, InvocationEnd::Cancelled);
    assert_eq!(run.progress, [(0, 1)]);
}

#[tokio::test]
async fn a_guest_that_ignores_the_cancel_is_stopped_once_its_grace_is_over() {
    let setup = Setup {
        timeout_secs: NEVER,
        cancel_grace_secs: 1,
        ..PLAIN
    };
    let run = cancelled_once_running(&setup, json!({"behaviour": "spin"})).await;
    assert_eq!(run.end, InvocationEnd::Cancelled);
}

#[tokio::test]
async fn is_cancelled_tells_the_guest() {
    let setup = Setup {
        timeout_secs: NEVER,
        cancel_grace_secs: NEVER,
        ..PLAIN
    };
    let run = cancelled_once_running(&setup, json!({"behaviour": "wait-for-cancel"})).await;
    // The guest noticed the cancel itself and returned its own result within the grace;
    // were `is-cancelled` never true, it would have been stopped (`Cancelled`).
    assert_eq!(run.end, InvocationEnd::Returned);
    assert_eq!(run.result.result_code, codes::FAILURE_CANCELLED);
    assert_eq!(run.result.result_details, "noticed the cancel");
}

#[tokio::test]
async fn cancel_kills_a_running_program_and_waits_for_it() {
    let scratch = Scratch::new();
    let setup = Setup {
        timeout_secs: NEVER,
        cancel_grace_secs: NEVER,
        ..WITH_SHELL
    };
    let handler = hostile(&scratch, &setup).await;
    let properties = json!({
        "behaviour": "run",
        "program": "/bin/sh",
        "args": ["-c", "echo $$ > pid.tmp; echo > started; sleep 3600; touch still-running"],
    });
    let context = scratch.context(HOSTILE_ID, properties, vec![], None);
    let cancel = CancelToken::new();
    // The program tells it runs by making `started` (after its pid is written).
    let started = scratch.path("work/started");
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            for _ in 0..NEVER * 100 {
                if started.exists() {
                    cancel.cancel();
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        })
    };
    let (end, _) = invoke(&handler, Action::Install, context, cancel).await;
    assert!(canceller.await.unwrap(), "the program never started");
    // The guest heard that its program was cancelled and returned.
    assert_eq!(end, InvocationEnd::Returned);
    let details = scratch.result(Action::Install).result_details;
    assert!(details.contains("Cancelled"), "{details}");
    // The program was killed and reaped before the guest heard of it.
    let pid: libc::pid_t = fs::read_to_string(scratch.path("work/pid.tmp"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "the program {pid} still exists");
    assert!(!scratch.path("work/still-running").exists());
}

#[tokio::test]
async fn the_cancel_action_runs_although_the_deployment_is_cancelled() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &PLAIN).await;
    let cancel = CancelToken::new();
    cancel.cancel();
    let context = scratch.context(HOSTILE_ID, json!({}), vec![], None);
    let (end, _) = invoke(&handler, Action::Cancel, context, cancel).await;
    assert_eq!(end, InvocationEnd::Returned);
    assert_eq!(
        scratch.result(Action::Cancel).result_code,
        codes::CANCEL_SUCCESS
    );
}

#[tokio::test]
async fn a_granted_program_runs_in_the_work_folder_with_mapped_paths_and_only_the_given_env() {
    let script =
        "echo \"$GREETING\"; pwd; cat \"$0\"; echo; env | grep -c . ; echo oops >&2; exit 7";
    let properties = json!({
        "behaviour": "run",
        "program": "/bin/sh",
        "args": ["-c", script, "/payload/a.txt"],
    });
    let run = run(&WITH_SHELL, properties, CancelToken::new()).await;
    assert_eq!(run.end, InvocationEnd::Returned);
    let report = run.details();
    assert_eq!(report["exitCode"], 7);
    let stdout = report["stdout"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "hello");
    assert_eq!(lines[1], run.scratch.work().display().to_string());
    assert_eq!(lines[2], "payload a");
    // GREETING, and the PWD (and maybe SHLVL) the shell sets itself.
    assert!(lines[3].parse::<u32>().unwrap() <= 3, "{stdout}");
    assert_eq!(report["stderr"], "oops\n");
    assert_eq!(report["truncated"], false);
}

#[tokio::test]
async fn run_refuses_paths_outside_the_sandbox_and_honours_its_timeout() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &WITH_SHELL).await;
    for (args, want) in [
        (json!(["/etc/passwd"]), "BadPath"),
        (json!(["/work/../../etc/passwd"]), "BadPath"),
        (json!(["-c", "sleep 5"]), "TimedOut"),
    ] {
        let properties =
            json!({"behaviour": "run", "program": "/bin/sh", "args": args, "timeoutMs": 200});
        let (end, _) = install(&scratch, &handler, properties, CancelToken::new()).await;
        assert_eq!(end, InvocationEnd::Returned);
        let details = scratch.result(Action::Install).result_details;
        assert!(details.contains(want), "{args}: {details}");
    }
}

#[tokio::test]
async fn program_output_is_capped() {
    let properties = json!({
        "behaviour": "run",
        "program": "/bin/sh",
        "args": ["-c", "head -c 3000000 /dev/zero | tr '\\0' x"],
    });
    let run = run(&WITH_SHELL, properties, CancelToken::new()).await;
    assert_eq!(run.end, InvocationEnd::Returned);
    let report = run.details();
    assert_eq!(report["stdoutLen"], handrail_wasm_host::MAX_RUN_OUTPUT);
    assert_eq!(report["truncated"], true);
}

#[tokio::test]
async fn progress_reaches_the_engine() {
    let run = run(&PLAIN, json!({"behaviour": "progress"}), CancelToken::new()).await;
    assert_eq!(run.end, InvocationEnd::Returned);
    assert_eq!(run.result.result_code, codes::INSTALL_SUCCESS);
    assert_eq!(run.progress, [(1, 2), (2, 2)]);
}

#[tokio::test]
async fn log_and_output_floods_are_absorbed() {
    let run = run(
        &PLAIN,
        json!({"behaviour": "log-flood"}),
        CancelToken::new(),
    )
    .await;
    assert_eq!(run.end, InvocationEnd::Returned);
    assert_eq!(run.result.result_details, "flooded");
}

#[tokio::test]
async fn a_missing_work_folder_is_a_host_failure() {
    let scratch = Scratch::new();
    let handler = hostile(&scratch, &PLAIN).await;
    let mut context = scratch.context(HOSTILE_ID, json!({}), vec![], None);
    context.work_folder = scratch.path("no-such-folder").display().to_string();
    let (end, _) = invoke(&handler, Action::Install, context, CancelToken::new()).await;
    assert!(matches!(end, InvocationEnd::HostFailure(_)), "{end:?}");
}

/// A guest that may meet a file that never answers — a FIFO in a granted folder, or one a
/// granted program made in its work folder — still ends at its time limit.
#[tokio::test]
async fn a_guest_waiting_on_a_fifo_it_could_reach_times_out() {
    for case in ["granted folder", "work folder, with a program granted"] {
        let scratch = Scratch::new();
        let one_second = Setup {
            timeout_secs: 1,
            ..if case == "granted folder" {
                PLAIN
            } else {
                WITH_SHELL
            }
        };
        let mut registration = scratch.hostile(&one_second);
        let (fifo, guest_path) = if case == "granted folder" {
            std::fs::create_dir_all(scratch.path("granted")).unwrap();
            registration.capabilities.read = vec![scratch.path("granted")];
            let fifo = scratch.path("granted/pipe");
            (fifo.clone(), fifo.display().to_string())
        } else {
            (scratch.path("work/pipe"), "/work/pipe".to_owned())
        };
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "{case}: mkfifo {}", fifo.display());
        let handler = load(&registration).await;
        // Should the guest's wait hold the test's only thread, a writer comes after
        // `NEVER` s, the guest reads an empty file and returns: the test fails instead of
        // hanging.
        let watched = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(NEVER));
            let _ = open_writer(&watched);
        });
        let properties = json!({"behaviour": "probe", "read": [guest_path]});
        let (end, _) = install(&scratch, &handler, properties, CancelToken::new()).await;
        assert_eq!(end, InvocationEnd::TimedOut, "{case}");
        // Let the thread still waiting to open the FIFO go: a writer comes and leaves.
        assert!(
            open_writer(&fifo).is_ok(),
            "{case}: nobody was reading the FIFO"
        );
    }
}

/// Opens a FIFO for writing without waiting: fails when nobody has it open to read.
fn open_writer(fifo: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
}
