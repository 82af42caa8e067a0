//! Running swupdate through the host, and how its end becomes a result.

use handrail_sdk::codes::{self, COMPONENT_SWUPDATE, FACILITY_STEP_HANDLER, ext};
use handrail_sdk::host::{self, Arg, RunError, RunOutput};
use handrail_sdk::{ExtendedCode, ResultFile};

use crate::config::SwupdateConfig;
use crate::{ID, PROGRAM_NOT_STARTED};

/// The swupdate program the registration must grant.
pub const SWUPDATE: &str = "/usr/bin/swupdate";

/// `PATH` for swupdate: its handlers run helpers by name.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Lines of swupdate's output kept in a failure's details.
const TAIL_LINES: usize = 12;

/// Largest tail of swupdate's output written to the log, per stream.
const MAX_LOGGED_OUTPUT: usize = 6 * 1024;

/// The extended code of swupdate exiting with `exit_code` or killed by `signal`
/// (`0x30101000 + exit`, or `+ 128 + signal`).
///
/// ```
/// use handrail_swupdate_handler::run::exit_code;
/// assert_eq!(exit_code(Some(1), None).value(), 0x3010_1001);
/// assert_eq!(exit_code(None, Some(9)).value(), 0x3010_1089);
/// ```
pub fn exit_code(exit_code: Option<i32>, signal: Option<i32>) -> ExtendedCode {
    let n = match (exit_code, signal) {
        (Some(code), _) => code,
        (None, signal) => 128 + signal.unwrap_or(0),
    };
    ExtendedCode::child_exit(FACILITY_STEP_HANDLER, COMPONENT_SWUPDATE, n as u8)
}

/// What swupdate is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-c`: check the image (signature, hashes, compatibility) and write nothing.
    Check,
    /// Install the selection's images.
    Install,
}

/// swupdate's arguments: the configured options, `-v`, `-i <swu>`, `-e <selection>`,
/// `-k`/`-H` when configured, and `-c` for a check.
pub fn arguments(config: &SwupdateConfig, swu: &str, selection: &str, mode: Mode) -> Vec<Arg> {
    let mut args: Vec<Arg> = config.options.iter().cloned().map(Arg::Literal).collect();
    args.push(Arg::Literal("-v".into()));
    if mode == Mode::Check {
        args.push(Arg::Literal("-c".into()));
    }
    args.push(Arg::Literal("-i".into()));
    args.push(Arg::SandboxPath(swu.to_owned()));
    args.push(Arg::Literal("-e".into()));
    args.push(Arg::Literal(selection.to_owned()));
    if let Some(key) = &config.public_key {
        args.push(Arg::Literal("-k".into()));
        args.push(Arg::Literal(key.clone()));
    }
    if let Some(revision) = &config.hwrevision {
        args.push(Arg::Literal("-H".into()));
        args.push(Arg::Literal(revision.clone()));
    }
    args
}

/// The failure for a run the host refused or stopped.
pub fn run_failure(error: RunError) -> ResultFile {
    match error {
        RunError::NotGranted(why) => ResultFile::failure(
            ext::CAPABILITY_DENIED,
            format!("{why}; the registration of {ID} must grant run = [\"{SWUPDATE}\"]"),
        ),
        RunError::BadPath(why) => ResultFile::failure(PROGRAM_NOT_STARTED, why),
        RunError::SpawnFailed(why) => ResultFile::failure(
            PROGRAM_NOT_STARTED,
            format!("cannot start {SWUPDATE}: {why}"),
        ),
        RunError::TimedOut => ResultFile::failure(
            ext::TIMED_OUT,
            format!("{SWUPDATE} ran past the action's time limit and was killed"),
        ),
        RunError::Cancelled => ResultFile {
            result_code: codes::FAILURE_CANCELLED,
            extended_result_code: ext::CANCELLED.value(),
            result_details: format!("the action was cancelled; {SWUPDATE} was killed"),
        },
    }
}

/// Runs swupdate with `args`; its output when it exits 0, otherwise the failure with
/// the tail of what swupdate said (its `[ERROR]` lines first).
pub fn swupdate(args: Vec<Arg>) -> Result<RunOutput, ResultFile> {
    let env = vec![("PATH".to_owned(), SYSTEM_PATH.to_owned())];
    let output = host::run(SWUPDATE, &args, &env, None).map_err(run_failure)?;
    log_output(&output);
    if output.exit_code == Some(0) {
        return Ok(output);
    }
    if output.exit_code == Some(1) && reported_success(&output.stdout, &output.stderr) {
        host::warn(
            "swupdate exited with code 1 after reporting the update successful and no error; taking its report",
        );
        return Ok(output);
    }
    let ending = match (output.exit_code, output.signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, signal) => format!("was killed by signal {}", signal.unwrap_or(0)),
    };
    Err(ResultFile::failure(
        exit_code(output.exit_code, output.signal),
        format!(
            "swupdate {ending}:\n{}",
            summary(&output.stdout, &output.stderr)
        ),
    ))
}

/// swupdate's closing line of a successful run.
const SUCCESS_LINE: &str = "SWUpdate was successful";

/// True when swupdate reported the update successful and logged no error.
///
/// swupdate (2022.12 as Debian ships it) run with `-i` waits for the installer's end
/// over its control socket and, now and then, misses the end message and exits 1 after
/// the installer reported success; its own report is the truth then.
///
/// ```
/// use handrail_swupdate_handler::run::reported_success;
/// assert!(reported_success(b"[INFO ] : SWUPDATE running :  [endupdate] : SWUpdate was successful !\n", b""));
/// assert!(!reported_success(b"SWUpdate was successful !\n", b"[ERROR] : SWUPDATE failed [0] ERROR : x\n"));
/// ```
pub fn reported_success(stdout: &[u8], stderr: &[u8]) -> bool {
    let said = |bytes: &[u8], what: &str| String::from_utf8_lossy(bytes).contains(what);
    (said(stdout, SUCCESS_LINE) || said(stderr, SUCCESS_LINE))
        && !said(stdout, "[ERROR]")
        && !said(stderr, "[ERROR]")
}

/// swupdate's own account of a failure: its `[ERROR]` lines when it printed any, else
/// the last lines of its output.
///
/// ```
/// use handrail_swupdate_handler::run::summary;
/// let out = b"[INFO ] : started\n[ERROR] : SWUPDATE failed [0] ERROR : HW compatibility not found\n";
/// assert_eq!(summary(b"", out), "[ERROR] : SWUPDATE failed [0] ERROR : HW compatibility not found");
/// ```
pub fn summary(stdout: &[u8], stderr: &[u8]) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("[ERROR]") || l.starts_with("Error"))
        .collect();
    let chosen = if errors.is_empty() { lines } else { errors };
    chosen[chosen.len().saturating_sub(TAIL_LINES)..].join("\n")
}

fn log_output(output: &RunOutput) {
    for (stream, bytes, level) in [
        ("stdout", &output.stdout, host::Level::Debug),
        ("stderr", &output.stderr, host::Level::Warn),
    ] {
        if bytes.is_empty() {
            continue;
        }
        let tail = &bytes[bytes.len().saturating_sub(MAX_LOGGED_OUTPUT)..];
        let cut = tail.len() < bytes.len() || output.truncated;
        host::log(
            level,
            &format!(
                "swupdate {stream}:\n{}{}",
                if cut { "[…]\n" } else { "" },
                String::from_utf8_lossy(tail).trim_end()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_falls_back_to_the_last_lines() {
        let many: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let s = summary(many.as_bytes(), b"");
        assert!(s.starts_with("line 18\n") && s.ends_with("line 29"), "{s}");
    }
}
