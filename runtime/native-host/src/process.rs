//! Runs one worker process to its end: request in, reports and stderr out, killed with
//! everything it started at the time limit, on cancel, or once it has exited.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use handrail::CancelToken;
use handrail_confine::{CgroupLimits, Confinement, Launch};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::protocol::{Report, Request};

/// Most report bytes read from a worker; a worker sends a few short lines.
const MAX_REPORT_BYTES: usize = 1024 * 1024;

/// Most bytes of a handler's output (its stdout and stderr together) kept per call; the
/// rest is dropped and the log says so.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// How long the pipes may stay open once the worker's process group is gone (a program
/// the handler started may have left the group and kept them).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How a worker run ended.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The worker exited (or was killed by a signal it did not get from the host).
    Exited(ExitStatus),
    /// The time limit passed; the host killed it.
    TimedOut,
    /// The cancel token fired; the host killed it.
    Cancelled,
}

/// Everything a worker run produced.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How it ended.
    pub stop: Stop,
    /// The reports it sent, in order.
    pub reports: Vec<Report>,
    /// What the handler wrote to stdout and stderr (capped), lossily decoded.
    pub output: String,
    /// True when output went past [`MAX_OUTPUT_BYTES`] and was cut.
    pub output_truncated: bool,
}

impl Finished {
    /// The last report that ends a call (`Described`, `Returned` or `Refused`).
    pub(crate) fn final_report(&self) -> Option<&Report> {
        self.reports
            .iter()
            .rev()
            .find(|r| !matches!(r, Report::Progress { .. }))
    }

    /// The last lines of the handler's output, as a suffix for messages (empty when none).
    pub(crate) fn output_tail(&self) -> String {
        let text = self.output.trim_end();
        if text.is_empty() {
            return String::new();
        }
        let mut start = text.len().saturating_sub(2048);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("\nhandler output: {}", &text[start..])
    }
}

/// Runs the worker `program` on `request` in `cwd`, confined by `confinement` in a cgroup
/// of its own with `limits`, until it exits, `timeout` passes or `cancel` fires. Errors
/// are failures to start it. Whatever the worker started is killed with it.
#[allow(
    clippy::too_many_arguments,
    reason = "one call's whole set-up; a struct would only rename the arguments"
)]
pub(crate) async fn run(
    handler: &str,
    program: &Path,
    request: &Request,
    confinement: Confinement,
    limits: CgroupLimits,
    cwd: &Path,
    timeout: Duration,
    cancel: Option<&CancelToken>,
    progress: Option<handrail::host::ProgressFn>,
) -> Result<Finished, String> {
    let request = serde_json::to_vec(request)
        .map_err(|e| format!("cannot serialise the worker request: {e}"))?;
    let mut child = Launch::new(program)
        .current_dir(cwd)
        .stdin_piped()
        .spawn(&confinement, limits, "the native worker")
        .map_err(|e| format!("cannot start the native worker: {e}"))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("the native worker's pipes were not set up".into());
    };
    // The request may exceed a pipe's buffer: write it while the worker reads.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&request).await;
    });
    let reports = tokio::spawn(read_reports(stdout, progress));
    let output = tokio::spawn(read_capped(stderr, MAX_OUTPUT_BYTES));
    let never = CancelToken::new();
    let cancel = cancel.unwrap_or(&never);
    // A worker that has exited keeps its status even when its time ran out or the cancel
    // came at the same moment (`biased`: its exit is polled first).
    let stop = tokio::select! {
        biased;
        status = child.wait() => match status {
            Ok(status) => Stop::Exited(status),
            Err(e) => return Err(format!("cannot wait for the native worker: {e}")),
        },
        () = tokio::time::sleep(timeout) => Stop::TimedOut,
        () = cancel.cancelled() => Stop::Cancelled,
    };
    // Whatever the worker started goes with it; what outlived a worker that exited by
    // itself is the handler's doing.
    child.end(handler, matches!(stop, Stop::Exited(_))).await;
    writer.abort();
    let drained = |task: tokio::task::JoinHandle<(Vec<u8>, bool)>| async move {
        let abort = task.abort_handle();
        match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
            Ok(Ok(read)) => read,
            _ => {
                abort.abort();
                (Vec::new(), false)
            }
        }
    };
    let report_bytes = {
        let abort = reports.abort_handle();
        match tokio::time::timeout(DRAIN_TIMEOUT, reports).await {
            Ok(Ok(read)) => read,
            _ => {
                abort.abort();
                Vec::new()
            }
        }
    };
    let (output_bytes, output_truncated) = drained(output).await;
    Ok(Finished {
        stop,
        reports: Report::parse_all(&String::from_utf8_lossy(&report_bytes)),
        output: String::from_utf8_lossy(&output_bytes).into_owned(),
        output_truncated,
    })
}

/// Reads the report channel to its end as it comes: progress lines go to `progress` at
/// once, the others are kept (at most [`MAX_REPORT_BYTES`]) for after the call.
async fn read_reports(
    mut pipe: impl AsyncRead + Unpin,
    progress: Option<handrail::host::ProgressFn>,
) -> Vec<u8> {
    let (mut kept, mut line) = (Vec::new(), Vec::new());
    let mut buf = [0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            line.push(byte);
            if byte != b'\n' {
                continue;
            }
            match serde_json::from_slice::<Report>(&line) {
                Ok(Report::Progress { done, total }) => {
                    if let Some(progress) = &progress {
                        progress(done, total);
                    }
                }
                _ if kept.len() + line.len() <= MAX_REPORT_BYTES => kept.extend_from_slice(&line),
                _ => {}
            }
            line.clear();
        }
        // A line that never ends is not a report.
        if line.len() > MAX_REPORT_BYTES {
            line.clear();
        }
    }
    if kept.len() + line.len() <= MAX_REPORT_BYTES {
        kept.extend_from_slice(&line);
    }
    kept
}

/// Reads a pipe to its end, keeping at most `cap` bytes (the rest is read and dropped,
/// so the writer never blocks); returns the bytes and whether any were dropped.
async fn read_capped(mut pipe: impl AsyncRead + Unpin, cap: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, truncated),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
}

/// How a worker process ended, for people: `killed by signal 11 (SIGSEGV)`, `exited with
/// status 3`.
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGSEGV => " (SIGSEGV, a crash)",
            libc::SIGABRT => " (SIGABRT, abort)",
            libc::SIGBUS => " (SIGBUS)",
            libc::SIGILL => " (SIGILL)",
            libc::SIGFPE => " (SIGFPE)",
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGXCPU => " (SIGXCPU, CPU time limit)",
            _ => "",
        };
        let core = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        format!("killed by signal {signal}{name}{core}")
    } else {
        match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("ended ({status})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_past_the_cap_is_dropped_not_blocking() {
        let data = vec![b'x'; 100_000];
        let (kept, truncated) = read_capped(&data[..], 1000).await;
        assert_eq!(kept.len(), 1000);
        assert!(truncated);
        let (kept, truncated) = read_capped(&data[..10], 1000).await;
        assert_eq!((kept.len(), truncated), (10, false));
    }

    #[test]
    fn exits_are_described() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGSEGV)),
            "killed by signal 11 (SIGSEGV, a crash)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
    }
}
