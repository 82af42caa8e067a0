//! A handler that misbehaves on request, to test the WASM host's sandbox and limits.
//!
//! `handlerProperties.behaviour` picks what `install` does:
//!
//! | behaviour | what it does |
//! |---|---|
//! | `ok` | nothing; succeeds |
//! | `look-around` | tries every escape below, the network, its environment and arguments; reports what it saw |
//! | `read-outside` | reads `/etc/passwd` and `/proc/self/environ`, lists `/` and `/etc` ([`READ_OUTSIDE_REFUSED`]) |
//! | `dot-dot-escape` | reads and lists through `..` out of `/payload` and `/work` ([`DOT_DOT_REFUSED`]) |
//! | `write-outside` | writes `handlerProperties.target`, `/tmp`, `/payload` (new and existing files) and above `/work` ([`WRITE_OUTSIDE_REFUSED`]) |
//! | `symlink-escape` | has `/bin/ln` link `/work/etc` to `/etc`, reads through it, and asks the host to run `cat` on it ([`SYMLINK_REFUSED`]) |
//! | `symlink-result` | has `/bin/ln` put a link to `/etc/passwd` where its result file goes, and writes no result |
//! | `folder-result` | makes a folder where its result file goes, and writes no result |
//! | `huge-result` | writes a result file of [`HUGE_RESULT_BYTES`] itself |
//! | `not-utf8-result` | writes a result file that is not UTF-8 itself |
//! | `echo-context` | reports the step context it was given and the payload files' contents |
//! | `probe` | reads the paths in `handlerProperties.read`, writes those in `handlerProperties.write`; reports what worked |
//! | `spin` | reports progress 0/1, then loops forever |
//! | `sleep` | sleeps in a host call for an hour |
//! | `memory-bomb` | allocates until something gives |
//! | `deep-recursion` | recurses until something gives |
//! | `panic` | panics |
//! | `run-ungranted` | asks the host to run `/bin/cat /etc/passwd` ([`codes::ext::CAPABILITY_DENIED`] when refused) |
//! | `run` | runs `handlerProperties.program` with `handlerProperties.args` (sandbox paths where they start with `/`) and `GREETING=hello` plus the pairs of `handlerProperties.env` |
//! | `wait-for-cancel` | reports progress 0/1, polls `is-cancelled` until it is set, then reports -1 |
//! | `progress` | reports progress 1/2 and 2/2 and logs a line |
//! | `fill-work` | writes 1 MiB blocks into `/work/fill` until `mib` (default 4096) or an error |
//! | `progress-flood` | reports progress `count` times (default 5 000 000) as fast as it can |
//! | `log-flood` | logs 5000 lines and writes 1 MiB to stdout |
//! | `fd-hog` | opens its payload file again and again, keeping every handle |
//!
//! The escapes (`read-outside`, `dot-dot-escape`, `write-outside`, `symlink-escape`) are
//! contained silently: every attempt just fails inside the guest. So that a run says
//! whether the sandbox held, each reports `{"seen": [...], "refused": [...]}`: what got
//! through and what was refused, with the error the guest was given. Nothing got through
//! is a failure with the behaviour's own extended code; anything that got through is a
//! success, which a test treats as a broken sandbox.

use std::io::Write;
use std::time::Duration;

use handrail_sdk::host::{self, Arg, RunError};
use handrail_sdk::{Action, ExtendedCode, Handler, ResultFile, StepContext, codes, extended};

/// `read-outside` read nothing outside its sandbox.
pub const READ_OUTSIDE_REFUSED: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x101);
/// `dot-dot-escape` got nowhere through `..`.
pub const DOT_DOT_REFUSED: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x102);
/// `write-outside` wrote nothing outside its work folder.
pub const WRITE_OUTSIDE_REFUSED: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x103);
/// `symlink-escape` read nothing through the link it planted.
pub const SYMLINK_REFUSED: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x104);
/// `symlink-escape` could not plant its link (the test proves nothing then).
pub const SYMLINK_NOT_PLANTED: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x105);
/// The behaviour is not one this guest knows.
pub const UNKNOWN_BEHAVIOUR: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x1);

/// Size of the result file `huge-result` writes: 100 MiB.
pub const HUGE_RESULT_BYTES: usize = 100 * 1024 * 1024;

/// The hostile handler.
pub struct Hostile;

impl Handler for Hostile {
    const ID: &'static str = "test/hostile:1";
    const ACTIONS: &'static [Action] = &[Action::Install, Action::Cancel];

    fn install(step: &StepContext) -> ResultFile {
        let behaviour = step.property_str("behaviour").unwrap_or("");
        match behaviour {
            "ok" => ok("behaved"),
            "look-around" => look_around(step),
            "read-outside" => read_outside(&mut Probe::default()).verdict(READ_OUTSIDE_REFUSED),
            "dot-dot-escape" => dot_dot_escape(&mut Probe::default()).verdict(DOT_DOT_REFUSED),
            "write-outside" => {
                write_outside(&mut Probe::default(), step).verdict(WRITE_OUTSIDE_REFUSED)
            }
            "symlink-escape" => symlink_escape(),
            "echo-context" => echo_context(step),
            "probe" => probe(step),
            "spin" => spin(),
            "sleep" => {
                std::thread::sleep(Duration::from_secs(3600));
                ok("woke up")
            }
            "memory-bomb" => memory_bomb(),
            "deep-recursion" => ok(&recurse(0).to_string()),
            "panic" => panic!("the hostile handler panics on purpose"),
            "run-ungranted" => run_ungranted(),
            "run" => run(step),
            "wait-for-cancel" => {
                // Tells the test it is waiting, so the test cancels only now.
                host::progress(0, 1);
                while !host::is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                ResultFile::new(codes::FAILURE_CANCELLED, "noticed the cancel")
            }
            "fill-work" => {
                use std::io::Write;
                let mib = step
                    .handler_properties
                    .get("mib")
                    .and_then(|c| c.as_u64())
                    .unwrap_or(4096);
                let block = vec![0x5au8; 1024 * 1024];
                let mut written = 0;
                let outcome = std::fs::File::create("/work/fill").and_then(|mut file| {
                    while written < mib {
                        file.write_all(&block)?;
                        written += 1;
                    }
                    Ok(())
                });
                ok(&format!("wrote {written} MiB: {outcome:?}"))
            }
            "progress-flood" => {
                let count = step
                    .handler_properties
                    .get("count")
                    .and_then(|c| c.as_u64())
                    .unwrap_or(5_000_000);
                for done in 0..count {
                    host::progress(done, count);
                }
                ok("flooded")
            }
            "progress" => {
                host::progress(1, 2);
                host::info("half way");
                host::progress(2, 2);
                ok("done")
            }
            "log-flood" => {
                for i in 0..5000 {
                    host::info(&format!("line {i}"));
                }
                let line = "x".repeat(1023);
                for _ in 0..1024 {
                    println!("{line}");
                }
                ok("flooded")
            }
            "fd-hog" => {
                let mut held = Vec::new();
                while held.len() < 100_000 {
                    match std::fs::File::open("/payload/a.txt") {
                        Ok(f) => held.push(f),
                        Err(_) => break,
                    }
                }
                ok(&held.len().to_string())
            }
            other => ResultFile::failure(UNKNOWN_BEHAVIOUR, format!("unknown behaviour `{other}`")),
        }
    }

    fn cancel(_step: &StepContext) -> ResultFile {
        ResultFile::new(codes::CANCEL_SUCCESS, "cancelled")
    }
}

/// The SDK writes the result file from what an action returns. The behaviours that
/// attack the result file itself write it (or plant a link in its place) and return,
/// so this guest exports the handler interface itself rather than with `export!`.
#[cfg(target_arch = "wasm32")]
mod export {
    use handrail_sdk::__private::{describe_wit, dispatch};
    use handrail_sdk::Action;
    use handrail_sdk::bindings::exports::handrail::handler::handler::Guest;
    use handrail_sdk::bindings::handrail::handler::types::{Description, StepContext};

    use super::Hostile;

    struct Export;

    impl Guest for Export {
        fn describe() -> Description {
            describe_wit::<Hostile>()
        }
        fn is_installed(ctx: StepContext) {
            dispatch::<Hostile>(Action::IsInstalled, ctx)
        }
        fn download(ctx: StepContext) {
            dispatch::<Hostile>(Action::Download, ctx)
        }
        fn backup(ctx: StepContext) {
            dispatch::<Hostile>(Action::Backup, ctx)
        }
        fn install(ctx: StepContext) {
            if !super::attack_result_file(&ctx.handler_properties_json, &ctx.result_file) {
                dispatch::<Hostile>(Action::Install, ctx)
            }
        }
        fn apply(ctx: StepContext) {
            dispatch::<Hostile>(Action::Apply, ctx)
        }
        fn restore(ctx: StepContext) {
            dispatch::<Hostile>(Action::Restore, ctx)
        }
        fn cancel(ctx: StepContext) {
            dispatch::<Hostile>(Action::Cancel, ctx)
        }
    }

    handrail_sdk::bindings::export_world!(Export with_types_in handrail_sdk::bindings);
}

/// Does what a result-file behaviour says and returns true, or returns false for the
/// other behaviours (the SDK then runs `install` and writes its result).
pub fn attack_result_file(properties_json: &str, result_file: &str) -> bool {
    let properties: serde_json::Value = serde_json::from_str(properties_json).unwrap_or_default();
    match properties["behaviour"].as_str() {
        Some("huge-result") => {
            // A well-formed result, only far too large: the size alone must refuse it.
            let head = br#"{"resultCode":600,"extendedResultCode":0,"resultDetails":""#;
            let tail = br#""}"#;
            let written = std::fs::File::create(result_file).and_then(|mut f| {
                f.write_all(head)?;
                let chunk = vec![b'x'; 1024 * 1024];
                let mut left = HUGE_RESULT_BYTES - head.len() - tail.len();
                while left > 0 {
                    let n = left.min(chunk.len());
                    f.write_all(&chunk[..n])?;
                    left -= n;
                }
                f.write_all(tail)
            });
            if let Err(e) = written {
                host::error(&format!("cannot write the huge result file: {e}"));
            }
            true
        }
        Some("not-utf8-result") => {
            let bytes = b"{\"resultCode\":600,\"resultDetails\":\"\xff\xfe\"}";
            if let Err(e) = std::fs::write(result_file, bytes) {
                host::error(&format!("cannot write the result file: {e}"));
            }
            true
        }
        Some("symlink-result") => {
            let planted = host::run(
                "/bin/ln",
                &[
                    Arg::Literal("-s".into()),
                    Arg::Literal("/etc/passwd".into()),
                    Arg::SandboxPath(result_file.to_owned()),
                ],
                &[],
                None,
            );
            host::info(&format!("planted the result file link: {planted:?}"));
            true
        }
        Some("folder-result") => {
            if let Err(e) = std::fs::create_dir(result_file) {
                host::error(&format!("cannot make the folder: {e}"));
            }
            true
        }
        _ => false,
    }
}

fn ok(details: &str) -> ResultFile {
    ResultFile::new(codes::INSTALL_SUCCESS, details)
}

/// What a series of attempts got through (`seen`) and what was refused, with the error
/// the guest was given.
#[derive(Debug, Default)]
struct Probe {
    seen: Vec<String>,
    refused: Vec<String>,
}

impl Probe {
    fn read(&mut self, path: &str) -> &mut Self {
        match std::fs::read(path) {
            Ok(bytes) => self
                .seen
                .push(format!("read {path} ({} bytes)", bytes.len())),
            Err(e) => self.refused.push(format!("read {path}: {e}")),
        }
        self
    }

    fn list(&mut self, dir: &str) -> &mut Self {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                if names.is_empty() {
                    self.refused.push(format!("list {dir}: empty"));
                } else {
                    self.seen.push(format!("listed {dir}: {names:?}"));
                }
            }
            Err(e) => self.refused.push(format!("list {dir}: {e}")),
        }
        self
    }

    /// Appends to `path`, creating it when missing.
    fn write(&mut self, path: &str) -> &mut Self {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"planted by the hostile handler\n"));
        match written {
            Ok(()) => self.seen.push(format!("wrote {path}")),
            Err(e) => self.refused.push(format!("write {path}: {e}")),
        }
        self
    }

    fn report(&self) -> String {
        serde_json::json!({ "seen": self.seen, "refused": self.refused }).to_string()
    }

    /// A failure with `contained` when nothing got through, else a success.
    fn verdict(&self, contained: ExtendedCode) -> ResultFile {
        if self.seen.is_empty() {
            ResultFile::failure(contained, self.report())
        } else {
            ok(&self.report())
        }
    }
}

fn read_outside(probe: &mut Probe) -> &mut Probe {
    probe
        .read("/etc/passwd")
        .read("/proc/self/environ")
        .list("/")
        .list("/etc")
}

fn dot_dot_escape(probe: &mut Probe) -> &mut Probe {
    probe
        .read("/payload/../etc/passwd")
        .read("/work/../etc/passwd")
        .read("/work/../../etc/passwd")
        .read("../etc/passwd")
        .list("/payload/..")
        .list("/work/..")
}

fn write_outside<'p>(probe: &'p mut Probe, step: &StepContext) -> &'p mut Probe {
    if let Some(target) = step.property_str("target") {
        probe.write(target);
    }
    probe
        .write("/tmp/handrail-hostile-planted")
        .write("/payload/planted")
        .write("/work/../planted")
        .write("/planted");
    for file in &step.files {
        probe.write(&file.path);
    }
    probe
}

fn look_around(step: &StepContext) -> ResultFile {
    let mut probe = Probe::default();
    read_outside(&mut probe);
    dot_dot_escape(&mut probe);
    write_outside(&mut probe, step);
    let mut seen = probe.seen;
    // `port` names a TCP and a UDP socket of the test's, on 127.0.0.1.
    let port = step
        .handler_properties
        .get("port")
        .and_then(|p| p.as_u64())
        .unwrap_or(9);
    if std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_ok() {
        seen.push("connected over TCP".into());
    }
    if let Ok(udp) = std::net::UdpSocket::bind("127.0.0.1:0") {
        seen.push("bound a UDP socket".into());
        if udp.send_to(b"escaped", ("127.0.0.1", port as u16)).is_ok() {
            seen.push("sent over UDP".into());
        }
    }
    for device in ["/dev/vda", "/dev/sda", "/dev/mem", "/dev/kmsg"] {
        if std::fs::File::open(device).is_ok() {
            seen.push(format!("opened {device}"));
        }
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    if !env.is_empty() {
        seen.push(format!("environment: {env:?}"));
    }
    let args: Vec<String> = std::env::args().collect();
    if !args.is_empty() {
        seen.push(format!("arguments: {args:?}"));
    }
    ok(&serde_json::to_string(&seen).unwrap_or_default())
}

fn probe(step: &StepContext) -> ResultFile {
    let list = |name: &str| -> Vec<String> {
        step.handler_properties
            .get(name)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut probe = Probe::default();
    for path in list("read") {
        probe.read(&path);
    }
    for path in list("write") {
        probe.write(&path);
    }
    ok(&probe.report())
}

fn run_ungranted() -> ResultFile {
    match host::run("/bin/cat", &[Arg::Literal("/etc/passwd".into())], &[], None) {
        Err(RunError::NotGranted(why)) => ResultFile::failure(codes::ext::CAPABILITY_DENIED, why),
        other => ok(&format!("{other:?}")),
    }
}

/// Recurses until the stack gives out; each frame keeps a value live across the call so
/// the recursion cannot be turned into a loop.
fn recurse(depth: u64) -> u64 {
    let here = std::hint::black_box(depth);
    if here == u64::MAX {
        return here;
    }
    recurse(here + 1).wrapping_add(here)
}

fn echo_context(step: &StepContext) -> ResultFile {
    let contents: Vec<(String, String)> = step
        .files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f.path).unwrap_or_else(|e| format!("error: {e}"));
            (f.path.clone(), text)
        })
        .collect();
    let listing: Vec<String> = std::fs::read_dir("/payload")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let report = serde_json::json!({ "context": step, "contents": contents, "payload": listing });
    ok(&report.to_string())
}

fn spin() -> ResultFile {
    // Tells the test it is running, so a test that cancels it cancels only now.
    host::progress(0, 1);
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
        if n == u64::MAX {
            return ok("wrapped");
        }
    }
}

fn memory_bomb() -> ResultFile {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 16 * 1024 * 1024];
        block[0] = 1;
        hoard.push(std::hint::black_box(block));
        if hoard.len() > 4096 {
            return ok("64 GiB allocated?");
        }
    }
}

fn run(step: &StepContext) -> ResultFile {
    let program = step.property_str("program").unwrap_or("");
    let args: Vec<Arg> = step
        .handler_properties
        .get("args")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(|s| {
                    if s.starts_with('/') {
                        Arg::SandboxPath(s.to_owned())
                    } else {
                        Arg::Literal(s.to_owned())
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let timeout = step
        .handler_properties
        .get("timeoutMs")
        .and_then(|t| t.as_u64())
        .map(Duration::from_millis);
    // GREETING, plus the step's `env` pairs.
    let mut env = vec![("GREETING".to_owned(), "hello".to_owned())];
    if let Some(pairs) = step
        .handler_properties
        .get("env")
        .and_then(|e| e.as_object())
    {
        env.extend(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())),
        );
    }
    let report = match host::run(program, &args, &env, timeout) {
        // Kept short: the report must fit in a result file.
        Ok(out) => serde_json::json!({
            "exitCode": out.exit_code,
            "signal": out.signal,
            "stdout": String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4096)]),
            "stderr": String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(4096)]),
            "stdoutLen": out.stdout.len(),
            "truncated": out.truncated,
        }),
        Err(e) => serde_json::json!({ "error": format!("{e:?}") }),
    };
    ok(&report.to_string())
}

fn symlink_escape() -> ResultFile {
    // Guests cannot make symbolic links with stable std; a granted program can.
    let planted = host::run(
        "/bin/ln",
        &[
            Arg::Literal("-s".into()),
            Arg::Literal("/etc".into()),
            Arg::SandboxPath("/work/etc".into()),
        ],
        &[],
        None,
    );
    if !planted.as_ref().is_ok_and(|out| out.exit_code == Some(0)) {
        return ResultFile::failure(
            SYMLINK_NOT_PLANTED,
            format!("`ln -s /etc /work/etc` did not work: {planted:?}"),
        );
    }
    let mut probe = Probe::default();
    probe.read("/work/etc/passwd").list("/work/etc");
    match host::run(
        "/bin/cat",
        &[Arg::SandboxPath("/work/etc/passwd".into())],
        &[],
        None,
    ) {
        Ok(out) => probe.seen.push(format!(
            "ran cat /work/etc/passwd: {} bytes",
            out.stdout.len()
        )),
        Err(e) => probe
            .refused
            .push(format!("run cat /work/etc/passwd: {e:?}")),
    }
    probe.verdict(SYMLINK_REFUSED)
}
