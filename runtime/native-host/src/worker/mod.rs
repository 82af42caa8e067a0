//! The worker process: one call of a native handler, confined.
//!
//! The host starts `handrail-native-worker` confined (by [`handrail_confine`]: its own
//! cgroup, capabilities dropped, `no_new_privs`, Landlock, seccomp, all in force before
//! its first instruction), in a process group of its own, with an empty environment,
//! the action's work folder as working directory and three pipes. The worker:
//!
//! 1. keeps its stdout as the report channel and points fd 1 at stderr, so whatever the
//!    library prints lands in the captured log, not among the reports;
//! 2. reads the [`Request`] from stdin and asks to be killed if the runtime dies;
//! 3. sets its rlimits;
//! 4. re-hashes the library, loads it, checks the ABI handshake, and makes the call;
//! 5. reports the outcome and leaves with `_exit(0)`, so no library destructor runs.
//!
//! A crash, abort or `exit()` in the library ends the process before step 5; the host
//! sees the process end without a final report.

mod confine;
mod library;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::protocol::{Call, Report, Request};

/// The worker's `main`: never returns.
pub fn main() -> ! {
    let mut reports = match take_report_channel() {
        Ok(file) => file,
        Err(e) => {
            eprintln!("handrail-native-worker: cannot set up the report channel: {e}");
            exit(3);
        }
    };
    // The library reports progress on the same channel (see `handrail_sdk::host`). The
    // worker has no other thread yet, so changing its environment is sound.
    // SAFETY: single-threaded, as said.
    unsafe {
        std::env::set_var("HANDRAIL_REPORT_FD", reports.as_raw_fd().to_string());
    }
    let report = match read_request() {
        Ok(request) => run(request),
        Err(reason) => Report::Refused { reason },
    };
    send(&mut reports, &report);
    exit(0)
}

/// Duplicates stdout (close-on-exec, so programs the handler runs do not inherit it) as
/// the report channel and points fd 1 at stderr.
fn take_report_channel() -> std::io::Result<File> {
    // SAFETY: plain fd calls on the process's own standard streams.
    unsafe {
        let fd = libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let channel = OwnedFd::from_raw_fd(fd);
        if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(File::from(channel))
    }
}

fn read_request() -> Result<Request, String> {
    let mut text = Vec::new();
    std::io::stdin()
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read the request: {e}"))?;
    serde_json::from_slice(&text).map_err(|e| format!("the request is not valid: {e}"))
}

/// Sets the limits, loads the library and makes the call; returns the final report.
fn run(request: Request) -> Report {
    // The worker must not outlive the runtime that supervises it.
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() == 1 {
            exit(4);
        }
    }
    if let Err(reason) = confine::set_rlimits(&request.limits) {
        return Report::Refused { reason };
    }
    match handrail::registry::sha256_file(&request.library) {
        Ok(actual) if actual == request.sha256 => {}
        Ok(actual) => {
            return Report::Refused {
                reason: format!(
                    "the library's sha256 is now {actual}, not the registered {}; refusing to load it",
                    request.sha256
                ),
            };
        }
        Err(e) => {
            return Report::Refused {
                reason: format!("cannot read the library: {e}"),
            };
        }
    }
    let handler = match library::Handler::load(&request.library) {
        Ok(h) => h,
        Err(reason) => return Report::Refused { reason },
    };
    let outcome = match &request.call {
        Call::Describe => handler
            .describe()
            .map(|description| Report::Described { description }),
        Call::Action { action, context } => handler
            .run(*action, context)
            .map(|status| Report::Returned { status }),
    };
    outcome.unwrap_or_else(|reason| Report::Refused { reason })
}

fn send(reports: &mut File, report: &Report) {
    if let Ok(mut line) = serde_json::to_vec(report) {
        line.push(b'\n');
        // Nothing to do when the host stopped listening: it judges by the exit anyway.
        let _ = reports.write_all(&line);
    }
}

/// Leaves at once: no atexit handlers or destructors of the library run. What the
/// library wrote through C stdio is flushed first, so it reaches the log.
fn exit(code: i32) -> ! {
    let _ = std::io::stderr().flush();
    // SAFETY: fflush(NULL) flushes every C stdio stream; `_exit` ends the process.
    unsafe {
        libc::fflush(std::ptr::null_mut());
        libc::_exit(code)
    }
}
