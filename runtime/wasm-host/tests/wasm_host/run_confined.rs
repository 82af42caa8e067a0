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

/// Runs `program` with `args` through the hostile guest, its registration changed by
/// `change`; returns the guest's report.
async fn run_granted(
    scratch: &Scratch,
    properties: Value,
    change: impl FnOnce(&mut handrail::registry::Registration),
) -> Value {
    let mut registration = scratch.hostile(&WITH_SHELLS);
    change(&mut registration);
    let handler = load(&registration).await;
    let context = scratch.context(HOSTILE_ID, properties, vec![], None);
    let (end, _) = invoke(&handler, Action::Install, context, CancelToken::new()).await;
    assert_eq!(end, InvocationEnd::Returned);
    let details = scratch.result(Action::Install).result_details;
    serde_json::from_str(&details).unwrap_or_else(|e| panic!("{e}: {details}"))
}

/// A Python program that tries the ways out past files: sockets of every family, the
/// capabilities a root program would hold, a user namespace through `clone`, the
/// kernel's reboot and io_uring interfaces, tracing its parent. Each line:
/// `<attempt>: reached` or `<attempt>: denied (<why>)`. The environment names the test's
/// UDP port and UNIX socket.
const ATTACKER: &str = r#"
import ctypes, errno, os, socket, sys
port, unix_path = int(os.environ["UDP_PORT"]), os.environ["UNIX_PATH"]
libc = ctypes.CDLL(None, use_errno=True)
machine = os.uname().machine
SYS = {"x86_64": {"clone": 56, "reboot": 169, "ptrace": 101},
       "aarch64": {"clone": 220, "reboot": 142, "ptrace": 117}}[machine]
def attempt(name, how):
    try:
        how()
        print(f"{name}: reached")
    except OSError as e:
        print(f"{name}: denied ({errno.errorcode.get(e.errno, e.errno)})")
def syscall(name, *args):
    r = libc.syscall(ctypes.c_long(SYS[name]), *[ctypes.c_long(a) for a in args])
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r
def udp():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"escaped", ("127.0.0.1", port))
def unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(unix_path)
    s.send(b"escaped")
def netlink():
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
def packet():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
def capability(field):
    def check():
        for line in open("/proc/self/status"):
            if line.startswith(field + ":") and int(line.split()[1], 16) != 0:
                return
        raise OSError(errno.EPERM, "none held")
    return check
def user_namespace():
    pid = syscall("clone", 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
def reboot():
    # A magic the kernel rejects (EINVAL) once it has let the caller through (EPERM).
    syscall("reboot", 0, 0, 0, 0)
def io_uring():
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(ctypes.c_long(425), ctypes.c_long(1), params)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
def trace_parent():
    syscall("ptrace", 16, os.getppid(), 0, 0)  # PTRACE_ATTACH
attempt("udp", udp)
attempt("unix-connect", unix)
attempt("netlink", netlink)
attempt("packet", packet)
attempt("effective-capabilities", capability("CapEff"))
attempt("bounding-capabilities", capability("CapBnd"))
attempt("user-namespace", user_namespace)
attempt("reboot", reboot)
attempt("io-uring", io_uring)
attempt("trace-parent", trace_parent)
for line in open("/proc/self/status"):
    if line.startswith("CapEff:"):
        print("effective:", line.split()[1])
"#;

/// What the attacker printed for `attempt`: `reached` or `denied (…)`.
fn outcome<'a>(stdout: &'a str, attempt: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{attempt}: ")))
        .unwrap_or_else(|| panic!("{attempt} not tried:\n{stdout}"))
}

/// Runs the attacker with `change` made to the registration; returns its stdout, whether
/// the test's UDP socket and UNIX listener heard from it.
async fn attack(
    change: impl FnOnce(&mut handrail::registry::Registration),
) -> (String, bool, bool) {
    let scratch = Scratch::new();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let port = udp.local_addr().unwrap().port();
    let unix_path = scratch.path("agent.sock");
    let unix = std::os::unix::net::UnixListener::bind(&unix_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3 is installed");
    let report = run_granted(
        &scratch,
        json!({
            "behaviour": "run",
            "program": python.display().to_string(),
            "args": ["-c", ATTACKER],
            "env": {"UDP_PORT": port.to_string(), "UNIX_PATH": unix_path.display().to_string()},
            "timeoutMs": 20_000,
        }),
        |r| {
            r.capabilities.run.push(python.clone());
            change(r);
        },
    )
    .await;
    assert_eq!(report["exitCode"], 0, "{report}");
    let stdout = report["stdout"].as_str().unwrap().to_owned();
    let mut buf = [0u8; 64];
    let heard_udp = udp.recv(&mut buf).is_ok();
    let heard_unix = unix.accept().is_ok();
    (stdout, heard_udp, heard_unix)
}

#[tokio::test]
async fn a_program_opens_no_socket_and_keeps_no_capability_it_is_not_granted() {
    let (stdout, heard_udp, heard_unix) = attack(|_| ()).await;
    let escaped: Vec<&str> = [
        "udp",
        "unix-connect",
        "netlink",
        "packet",
        "effective-capabilities",
        "bounding-capabilities",
        "user-namespace",
        "reboot",
        "io-uring",
        "trace-parent",
    ]
    .into_iter()
    .filter(|a| !outcome(&stdout, a).starts_with("denied"))
    .collect();
    assert!(escaped.is_empty(), "escaped: {escaped:?}\n{stdout}");
    assert!(!heard_udp, "the program reached the test's UDP socket");
    assert!(!heard_unix, "the program reached the test's UNIX socket");
    // Not the kernel's rejection of the bad magic: reboot(2) was not let through at all.
    assert_eq!(outcome(&stdout, "reboot"), "denied (EPERM)", "{stdout}");
}

#[tokio::test]
async fn the_sockets_and_capabilities_a_registration_grants_are_what_its_programs_keep() {
    let (stdout, heard_udp, heard_unix) = attack(|r| {
        r.capabilities.sockets = vec![
            handrail::confinement::SocketFamily::Ip,
            handrail::confinement::SocketFamily::Unix,
        ];
        r.capabilities.privileges = vec!["CAP_CHOWN".parse().unwrap()];
    })
    .await;
    for granted in ["udp", "unix-connect", "effective-capabilities"] {
        assert_eq!(outcome(&stdout, granted), "reached", "{granted}\n{stdout}");
    }
    assert!(heard_udp && heard_unix, "{stdout}");
    // CAP_CHOWN alone, and still no netlink, namespace or reboot.
    assert!(stdout.contains("effective: 0000000000000001"), "{stdout}");
    for denied in ["netlink", "user-namespace", "reboot"] {
        assert!(
            outcome(&stdout, denied).starts_with("denied"),
            "{denied}\n{stdout}"
        );
    }
}

#[tokio::test]
async fn a_program_forks_no_more_processes_and_uses_no_more_memory_than_its_limits() {
    let scratch = Scratch::new();
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3 is installed");
    let forks = r#"
import os, time
started, refused = 0, 0
for _ in range(40):
    try:
        if os.fork() == 0:
            time.sleep(1000)
            os._exit(0)
        started += 1
    except BlockingIOError:
        refused += 1
print(started, refused)
"#;
    let report = run_granted(
        &scratch,
        json!({"behaviour": "run", "program": python.display().to_string(), "args": ["-c", forks]}),
        |r| {
            r.capabilities.run.push(python.clone());
            r.limits.max_processes = 8;
        },
    )
    .await;
    assert_eq!(report["exitCode"], 0, "{report}");
    let counts: Vec<u32> = report["stdout"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    // The program itself is one of the 8.
    assert_eq!(counts, [7, 33], "{report}");

    let scratch = Scratch::new();
    let hog = "b = bytearray(256 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('allocated')";
    let report = run_granted(
        &scratch,
        json!({"behaviour": "run", "program": python.display().to_string(), "args": ["-c", hog]}),
        |r| {
            r.capabilities.run.push(python.clone());
            r.limits.process_memory_mib = 64;
        },
    )
    .await;
    assert_eq!(report["signal"], libc::SIGKILL, "{report}");
    assert!(
        !report["stdout"].as_str().unwrap().contains("allocated"),
        "{report}"
    );
}
