//! Running swupdate through the host, and how its end becomes a result.
//!
//! swupdate keeps its control sockets and what it unpacks from an image (`sw-description`,
//! its signature, scripts) in `TMPDIR`, `/tmp` unless set: one set of fixed names for
//! every run on the machine, so two runs at once (two agents, two test suites) take each
//! other's sockets and files. Each run here gets a folder of its own in the action's work
//! folder ([`RunFolder`]), named to swupdate as `TMPDIR` relative to its working
//! directory, which the host makes the work folder.
//!
//! swupdate (2022.12 as Debian ships it) also, a few times in a hundred runs under load,
//! reads the signature it is still unpacking, or fails to set up its digest, and refuses
//! the image before installing anything ([`unpacked_signature_unread`]), or crashes
//! (SIGSEGV, SIGABRT; seen in the same unpacking); such a run is repeated, up to
//! [`ATTEMPTS`] runs. Repeating a crashed run is safe: swupdate writes only the inactive
//! slot, and writing the same image there again is what a second install does anyway.

use std::path::PathBuf;

use handrail_sdk::codes::{self, COMPONENT_SWUPDATE, FACILITY_STEP_HANDLER, ext};
use handrail_sdk::host::{self, Arg, RunError, RunOutput};
use handrail_sdk::{ExtendedCode, ResultFile};

use crate::PROGRAM_NOT_STARTED;
use crate::config::SwupdateConfig;

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

/// The failure for a run the host refused or stopped; `id` is the handler's.
pub fn run_failure(id: &str, error: RunError) -> ResultFile {
    match error {
        RunError::NotGranted(why) => ResultFile::failure(
            ext::CAPABILITY_DENIED,
            format!("{why}; the registration of {id} must grant run = [\"{SWUPDATE}\"]"),
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

/// A run's own temporary folder in the action's work folder, removed when dropped.
#[derive(Debug)]
pub struct RunFolder {
    /// Its path as the handler sees it.
    path: PathBuf,
    /// Its name in the work folder: the program's `TMPDIR`, relative to its working
    /// directory.
    name: String,
}

impl RunFolder {
    /// An empty folder `swupdate-<mode>.tmp` in `work_folder` (the handler's view of it).
    pub fn create(work_folder: &str, mode: Mode) -> Result<RunFolder, ResultFile> {
        let name = match mode {
            Mode::Check => "swupdate-check.tmp",
            Mode::Install => "swupdate-install.tmp",
        };
        let folder = RunFolder {
            path: PathBuf::from(work_folder).join(name),
            name: name.to_owned(),
        };
        // Left by a run that was killed: its files are not this run's.
        folder.empty()?;
        Ok(folder)
    }

    /// Removes what a run left in the folder.
    fn empty(&self) -> Result<(), ResultFile> {
        let _ = std::fs::remove_dir_all(&self.path);
        std::fs::create_dir(&self.path).map_err(|e| {
            ResultFile::failure(
                PROGRAM_NOT_STARTED,
                format!(
                    "cannot create {}, swupdate's temporary folder: {e}",
                    self.path.display()
                ),
            )
        })
    }
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// How many times one action runs swupdate when it refused a good image for a fault of
/// its own ([`unpacked_signature_unread`]).
pub const ATTEMPTS: usize = 5;

/// True when swupdate refused the image, installing nothing, for a fault of its own that
/// a second run does not repeat: it read the signature it was still unpacking (the
/// signature "cannot be opened" or "cannot be parsed"), or its digest set-up failed
/// (`EVP_DigestInit_ex failed`), both seen under load with a good image.
///
/// A signature that is really unreadable is refused the same way every time, so running
/// swupdate again costs only time; a race inside swupdate is not refused again.
///
/// ```
/// use handrail_swupdate_handler::run::unpacked_signature_unread;
/// let out = b"[ERROR] : SWUPDATE failed [0] ERROR : t/sw-description.sig cannot be opened\n\
///             [ERROR] : SWUPDATE failed [1] Image invalid or corrupted. Not installing ...\n";
/// assert!(unpacked_signature_unread(out, b""));
/// let out = b"[ERROR] : SWUPDATE failed [0] ERROR : EVP_DigestInit_ex failed: error:00000000\n\
///             [ERROR] : SWUPDATE failed [1] Image invalid or corrupted. Not installing ...\n";
/// assert!(unpacked_signature_unread(out, b""));
/// assert!(!unpacked_signature_unread(b"[ERROR] : HW compatibility not found\n", b""));
/// ```
pub fn unpacked_signature_unread(stdout: &[u8], stderr: &[u8]) -> bool {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
    text.contains("Not installing")
        && text.lines().any(|l| {
            l.contains("[ERROR]")
                && ((l.contains("sw-description.sig cannot be")
                    && (l.contains("opened") || l.contains("parsed")))
                    || l.contains("EVP_DigestInit_ex failed"))
        })
}

/// Runs swupdate in `mode` on the image `swu` with `selection` for the handler `id`,
/// with a [`RunFolder`] of its own in `work_folder` as its `TMPDIR`; its output when it
/// exits 0, otherwise the failure with the tail of what swupdate said (its `[ERROR]`
/// lines first).
pub fn swupdate(
    id: &str,
    work_folder: &str,
    config: &SwupdateConfig,
    swu: &str,
    selection: &str,
    mode: Mode,
) -> Result<RunOutput, ResultFile> {
    let folder = RunFolder::create(work_folder, mode)?;
    let args = arguments(config, swu, selection, mode);
    let env = vec![
        ("PATH".to_owned(), SYSTEM_PATH.to_owned()),
        ("TMPDIR".to_owned(), folder.name.clone()),
    ];
    let mut attempt = 1;
    let output = loop {
        let output = host::run(SWUPDATE, &args, &env, None).map_err(|e| run_failure(id, e))?;
        log_output(&output);
        let crashed = matches!(output.signal, Some(11 | 6));
        if output.exit_code == Some(0)
            || attempt == ATTEMPTS
            || !(crashed || unpacked_signature_unread(&output.stdout, &output.stderr))
        {
            break output;
        }
        host::warn(&format!(
            "swupdate {} (run {attempt} of {ATTEMPTS}); running it again",
            if crashed {
                "crashed"
            } else {
                "refused the image for a fault of its own, installing nothing"
            }
        ));
        folder.empty()?;
        attempt += 1;
    };
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
