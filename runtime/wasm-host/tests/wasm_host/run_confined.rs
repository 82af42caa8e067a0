//! What a program started through `run` cannot do: be handed loader or interpreter
//! variables by the guest, or leave anything running once it has exited.

use handrail::CancelToken;
use handrail::host::InvocationEnd;
use handrail_contract::Action;
use handrail_test_support::process_running;
use serde_json::{Value, json};

use crate::support::{HOSTILE_ID, PLAIN, Scratch, Setup, invoke, load};

const WITH_SHELLS: Setup = Setup {
    grants: &["/bin/sh", "/bin/bash"],
    ..PLAIN
};

/// Runs the hostile guest's `run` behaviour once in `scratch`; returns its report.
async fn run(scratch: &Scratch, properties: Value) -> Value {
    let handler = load(&scratch.hostile(&WITH_SHELLS)).await;
    let context = scratch.context(HOSTILE_ID, properties, vec![], None);
    let (end, _) = invoke(&handler, Action::Install, context, CancelToken::new()).await;
    assert_eq!(end, InvocationEnd::Returned);
    let details = scratch.result(Action::Install).result_details;
    serde_json::from_str(&details).unwrap_or_else(|e| panic!("{e}: {details}"))
}

#[tokio::test]
async fn loader_and_shell_variables_from_the_guest_are_refused_and_nothing_runs() {
    let scratch = Scratch::new();
    let work = scratch.work();
    // Were they passed, bash would source `evil.sh` and the loader would try `evil.so`.
    std::fs::write(work.join("evil.sh"), "echo pwned > pwned\n").unwrap();
    std::fs::write(work.join("evil.so"), "not a library").unwrap();
    let report = run(
        &scratch,
        json!({
            "behaviour": "run",
            "program": "/bin/bash",
            "args": ["-c", "echo ran > ran"],
            "env": {
                "BASH_ENV": work.join("evil.sh").display().to_string(),
                "LD_PRELOAD": work.join("evil.so").display().to_string(),
                "LANG": "C",
            },
        }),
    )
    .await;
    let error = report["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        error.contains("NotGranted") && error.contains("BASH_ENV, LD_PRELOAD"),
        "{error}"
    );
    assert!(!error.contains("LANG"), "{error}");
    assert!(!work.join("ran").exists(), "the program ran");
    assert!(!work.join("pwned").exists(), "BASH_ENV was sourced");
}

#[tokio::test]
async fn ordinary_variables_reach_the_program() {
    let scratch = Scratch::new();
    let report = run(
        &scratch,
        json!({
            "behaviour": "run",
            "program": "/bin/sh",
            "args": ["-c", "echo \"$GREETING $TMPDIR\""],
            "env": {"TMPDIR": "tmp"},
        }),
    )
    .await;
    assert_eq!(report["exitCode"], 0, "{report}");
    assert_eq!(report["stdout"], "hello tmp\n");
}

#[tokio::test]
async fn nothing_a_program_starts_outlives_it() {
    let scratch = Scratch::new();
    // A background job, a daemon in a session of its own, and a double fork, each a
    // `sleep` that writes its pid first; the script waits until all have, then exits 0.
    let script = r#"
        sleep 1000 >/dev/null 2>&1 &
        echo $! > background.pid
        setsid sh -c 'echo $$ > session.pid; exec sleep 1000' >/dev/null 2>&1 &
        sh -c 'sh -c "echo \$\$ > double-fork.pid; exec sleep 1000" >/dev/null 2>&1 & exit 0'
        until [ -s session.pid ] && [ -s double-fork.pid ]; do :; done
        exit 0
    "#;
    let report = run(
        &scratch,
        json!({"behaviour": "run", "program": "/bin/sh", "args": ["-c", script], "timeoutMs": 20_000}),
    )
    .await;
    assert_eq!(report["exitCode"], 0, "{report}");
    let mut survivors = Vec::new();
    for name in ["background", "session", "double-fork"] {
        let text = std::fs::read_to_string(scratch.work().join(format!("{name}.pid")))
            .unwrap_or_else(|e| panic!("{name}.pid: {e}"));
        let pid: libc::pid_t = text.trim().parse().unwrap();
        if process_running(pid) {
            survivors.push(format!("{name} ({pid})"));
            // SAFETY: kill(2) on a process this test's script started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    assert!(survivors.is_empty(), "still running: {survivors:?}");
}

#[tokio::test]
async fn a_program_reaches_only_its_grants_and_no_kernel_interface_past_them() {
    let scratch = Scratch::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let escape = format!("/etc/handrail-escape-{}", std::process::id());
    // Each line: `<attempt>: reached` or `<attempt>: denied`. Signal 0 only asks whether
    // the runtime (here the test, the program's parent) could be signalled. The program
    // (bash, `$$`) may read its own /proc folder.
    let script = format!(
        r#"
        try() {{ name=$1; shift; if "$@" >/dev/null 2>&1; then echo "$name: reached"; else echo "$name: denied"; fi; }}
        try write-etc sh -c 'echo x > {escape}'
        try read-shadow cat /etc/shadow
        try read-parent-environ cat /proc/$PPID/environ
        try tcp-connect bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}'
        try signal-parent kill -0 $PPID
        try unshare unshare -n true
        try write-work sh -c 'echo x > in-work'
        try read-passwd cat /etc/passwd
        if read -r _ < /proc/$$/status; then echo "read-own-proc: reached"; else echo "read-own-proc: denied"; fi
        try dev-null sh -c 'echo x > /dev/null'
        "#
    );
    let report = run(
        &scratch,
        json!({"behaviour": "run", "program": "/bin/bash", "args": ["-c", script]}),
    )
    .await;
    assert_eq!(report["exitCode"], 0, "{report}");
    let stdout = report["stdout"].as_str().unwrap();
    let seen = |attempt: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{attempt}: ")))
            .unwrap_or_else(|| panic!("{attempt} not tried: {report}"))
            .to_owned()
    };
    let escaped: Vec<&str> = [
        "write-etc",
        "read-shadow",
        "read-parent-environ",
        "tcp-connect",
        "signal-parent",
        "unshare",
    ]
    .into_iter()
    .filter(|a| seen(a) != "denied")
    .collect();
    let _ = std::fs::remove_file(&escape);
    assert!(escaped.is_empty(), "escaped: {escaped:?}\n{stdout}");
    for granted in ["write-work", "read-passwd", "read-own-proc", "dev-null"] {
        assert_eq!(seen(granted), "reached", "{granted}\n{stdout}");
    }
    assert!(
        listener.accept().is_err(),
        "the program connected to the test's listener"
    );
}
