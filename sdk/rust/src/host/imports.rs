//! The host functions of a native library, done in the worker process itself (see the
//! module docs of [`host`](super)).

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Arg, Level, RunError, RunOutput};

/// The environment variable in which the worker names its report channel's descriptor.
pub const REPORT_FD_VARIABLE: &str = "HANDRAIL_REPORT_FD";

/// Most output kept per stream of a program, as the WebAssembly host keeps.
const MAX_OUTPUT: usize = 1024 * 1024;

/// How often a running program is looked at for its end or its time limit.
const POLL: Duration = Duration::from_millis(5);

pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    eprintln!("{level}: {message}");
}

pub fn progress(done: u64, total: u64) {
    use std::os::fd::FromRawFd;
    let Some(fd) = std::env::var(REPORT_FD_VARIABLE)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // One line in one write, far under PIPE_BUF: it never interleaves with the
    // worker's own reports.
    let line = format!("{{\"progress\":{{\"done\":{done},\"total\":{total}}}}}\n");
    // SAFETY: the worker keeps the descriptor open while the library runs; the
    // `ManuallyDrop` leaves it open after this write.
    let mut channel = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    let _ = channel.write_all(line.as_bytes());
}

pub fn is_cancelled() -> bool {
    false
}

pub fn run(
    program: &str,
    args: &[Arg],
    env: &[(String, String)],
    timeout_ms: u64,
) -> Result<RunOutput, RunError> {
    let mut command = Command::new(program);
    for arg in args {
        match arg {
            Arg::Literal(s) | Arg::SandboxPath(s) => command.arg(s),
        };
    }
    let mut child = command
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::SpawnFailed(format!("{program}: {e}")))?;
    let drain = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let (mut kept, mut truncated) = (Vec::new(), false);
            if let Some(mut stream) = stream {
                let mut chunk = [0u8; 16 * 1024];
                while let Ok(n) = stream.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let room = MAX_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                    truncated |= n > room;
                }
            }
            (kept, truncated)
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now().checked_add(Duration::from_millis(timeout_ms));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(RunError::SpawnFailed(format!("{program}: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::TimedOut);
        }
        std::thread::sleep(POLL);
    };
    let (stdout, out_cut) = stdout.join().unwrap_or_default();
    let (stderr, err_cut) = stderr.join().unwrap_or_default();
    Ok(RunOutput {
        exit_code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        truncated: out_cut || err_cut,
    })
}
