//! A handler that misbehaves on request, to test the WASM host's sandbox and limits.
//!
//! `handlerProperties.behaviour` picks what `install` does:
//!
//! | behaviour | what it does |
//! |---|---|
//! | `look-around` | tries to read files outside its sandbox, its environment and arguments; reports what it saw |
//! | `echo-context` | reports the step context it was given and the payload files' contents |
//! | `spin` | loops forever |
//! | `sleep` | sleeps in a host call for an hour |
//! | `memory-bomb` | allocates until something gives |
//! | `panic` | panics |
//! | `run-ungranted` | asks the host to run `/bin/cat /etc/passwd` |
//! | `run` | runs `handlerProperties.program` with `handlerProperties.args` (sandbox paths where they start with `/`) |
//! | `wait-for-cancel` | polls `is-cancelled` until it is set, then reports -1 |
//! | `progress` | reports progress 1/2 and 2/2 and logs a line |
//! | `log-flood` | logs 5000 lines and writes 1 MiB to stdout |
//! | `symlink-escape` | has `/bin/ln` link `/work/etc` to `/etc`, reads through it, and asks the host to run `cat` on it |
//! | `fd-hog` | opens its payload file again and again, keeping every handle |

use std::time::Duration;

use handrail_sdk::host::{self, Arg};
use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes, extended};

/// The hostile handler.
pub struct Hostile;

impl Handler for Hostile {
    const ID: &'static str = "test/hostile:1";
    const ACTIONS: &'static [Action] = &[Action::Install, Action::Cancel];

    fn install(step: &StepContext) -> ResultFile {
        let behaviour = step.property_str("behaviour").unwrap_or("");
        match behaviour {
            "look-around" => look_around(),
            "echo-context" => echo_context(step),
            "spin" => spin(),
            "sleep" => {
                std::thread::sleep(Duration::from_secs(3600));
                ok("woke up")
            }
            "memory-bomb" => memory_bomb(),
            "panic" => panic!("the hostile handler panics on purpose"),
            "run-ungranted" => {
                let out = host::run("/bin/cat", &[Arg::Literal("/etc/passwd".into())], &[], None);
                ok(&format!("{out:?}"))
            }
            "run" => run(step),
            "wait-for-cancel" => {
                while !host::is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                ResultFile::new(codes::FAILURE_CANCELLED, "noticed the cancel")
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
            "symlink-escape" => symlink_escape(),
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
            other => ResultFile::failure(
                extended(codes::COMPONENT_CUSTOM, 1),
                format!("unknown behaviour `{other}`"),
            ),
        }
    }

    fn cancel(_step: &StepContext) -> ResultFile {
        ResultFile::new(codes::CANCEL_SUCCESS, "cancelled")
    }
}

handrail_sdk::export!(Hostile);

fn ok(details: &str) -> ResultFile {
    ResultFile::new(codes::INSTALL_SUCCESS, details)
}

fn look_around() -> ResultFile {
    let mut seen = Vec::new();
    for path in [
        "/etc/passwd",
        "/payload/../etc/passwd",
        "/work/../etc/passwd",
        "/work/../../etc/passwd",
        "../etc/passwd",
        "/proc/self/environ",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            seen.push(format!("read {path} ({} bytes)", text.len()));
        }
    }
    for dir in ["/", "/etc", "/payload/..", "/work/.."] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !names.is_empty() {
                seen.push(format!("listed {dir}: {names:?}"));
            }
        }
    }
    if std::fs::write("/payload/planted", "x").is_ok() {
        seen.push("wrote into /payload".into());
    }
    if std::net::TcpStream::connect("127.0.0.1:9").is_ok() {
        seen.push("opened a socket".into());
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
    let env = [("GREETING".to_owned(), "hello".to_owned())];
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
    let mut seen = Vec::new();
    // Guests cannot make symbolic links with stable std; a granted program can.
    let made = host::run(
        "/bin/ln",
        &[
            Arg::Literal("-s".into()),
            Arg::Literal("/etc".into()),
            Arg::SandboxPath("/work/etc".into()),
        ],
        &[],
        None,
    )
    .is_ok_and(|out| out.exit_code == Some(0));
    if let Ok(text) = std::fs::read_to_string("/work/etc/passwd") {
        seen.push(format!("read /work/etc/passwd ({} bytes)", text.len()));
    }
    let ran = host::run(
        "/bin/cat",
        &[Arg::SandboxPath("/work/etc/passwd".into())],
        &[],
        None,
    );
    let report = serde_json::json!({
        "madeLink": made,
        "seen": seen,
        "run": format!("{ran:?}"),
    });
    ok(&report.to_string())
}
