//! Starting a script: by the interpreter its `#!` line names, as the kernel and
//! `execvp` would (`<interpreter> [<its argument>] <script> …`; `/bin/sh` when it has
//! none), through the host's `run` import, so the handler's registration must grant
//! that interpreter. ADU's scripts are all `#!/bin/bash`.
//!
//! ADU keeps a step's payload files in the work folder and its scripts look for them
//! there (`$workfolder/$firmware_file`), so [`stage_payload`] hard-links (or copies)
//! them from `/payload` into the work folder first, with [`SHELL`].

use handrail_sdk::codes::{self, ext};
use handrail_sdk::host::{self, Arg, RunError, RunOutput};
use handrail_sdk::{ExtendedCode, ResultFile, StepContext};

use crate::arguments::ScriptArg;

/// The program a script without a `#!` line is run with, as `execvp` falls back to it,
/// and the one payload files are staged with; the registration must grant it.
pub const SHELL: &str = "/bin/sh";

/// `PATH` given to the script (the rest of its environment is empty), so scripts written
/// for ADU, which ran them from a login environment, find the usual tools.
pub const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How much of a script's start is read for its `#!` line (Linux reads as much).
const SHEBANG_BYTES: usize = 256;

/// Links each payload file (`$2…`) into the work folder (`$1`), copying where a link
/// cannot be made.
const STAGE_PAYLOAD: &str = r#"dest=$1; shift; for f in "$@"; do ln -f "$f" "$dest/" 2>/dev/null || cp -f "$f" "$dest/" || exit 1; done"#;

/// Largest script output kept in the log, per stream.
const MAX_LOGGED_OUTPUT: usize = 16 * 1024;

/// Why a script did not run to its end.
#[derive(Debug)]
pub enum LaunchError {
    /// The script cannot be read, so its `#!` line is unknown.
    Unreadable {
        /// The script (sandbox path).
        script: String,
        /// What reading it said.
        error: std::io::Error,
    },
    /// The interpreter its `#!` line names is not granted.
    NotGranted {
        /// The interpreter.
        interpreter: String,
        /// The script's `#!` line, quoted, or "no `#!` line".
        line: String,
        /// The host's refusal.
        why: String,
    },
    /// The host refused or stopped the run for another reason.
    Run(RunError),
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchError::Unreadable { script, error } => {
                write!(f, "cannot read the script {script}: {error}")
            }
            LaunchError::NotGranted {
                interpreter,
                line,
                why,
            } => write!(
                f,
                "the script's interpreter {interpreter} ({line}) is not granted: {why}"
            ),
            LaunchError::Run(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LaunchError {}

impl LaunchError {
    /// The error, and for an interpreter that is not granted, where the handler `id`'s
    /// grant goes.
    ///
    /// ```
    /// use handrail_adu_script::LaunchError;
    /// let e = LaunchError::NotGranted {
    ///     interpreter: "/bin/zsh".into(),
    ///     line: "`#!/bin/zsh`".into(),
    ///     why: "not among the granted programs".into(),
    /// };
    /// assert!(e.with_grant_hint("microsoft/script:1").ends_with(
    ///     r#"([handler_grants."microsoft/script:1"] run = ["/bin/zsh"])"#
    /// ));
    /// ```
    pub fn with_grant_hint(&self, id: &str) -> String {
        match self {
            LaunchError::NotGranted { interpreter, .. } => format!(
                "{self}; grant it in the registration of {id} (capabilities.run) or the configuration ([handler_grants.\"{id}\"] run = [\"{interpreter}\"])"
            ),
            _ => self.to_string(),
        }
    }
}

/// Why the payload files could not be placed in the work folder.
#[derive(Debug)]
pub enum StageError {
    /// The staging shell ran and failed; its standard error.
    Failed(String),
    /// The host refused or stopped the staging shell.
    Run(RunError),
}

/// Runs `script` (a sandbox path) with `args`, by the interpreter its `#!` line names,
/// with [`SCRIPT_PATH`] as its only environment, and logs what it printed.
pub fn run_script(script: &str, args: Vec<ScriptArg>) -> Result<RunOutput, LaunchError> {
    let head = read_head(script).map_err(|error| LaunchError::Unreadable {
        script: script.to_owned(),
        error,
    })?;
    let (interpreter, interpreter_arg) = shebang(&head).unwrap_or((SHELL.to_owned(), None));
    let mut argv: Vec<Arg> = interpreter_arg.into_iter().map(Arg::Literal).collect();
    argv.push(Arg::SandboxPath(script.to_owned()));
    argv.extend(args.into_iter().map(|a| match a {
        ScriptArg::Literal(s) => Arg::Literal(s),
        ScriptArg::Path(p) => Arg::SandboxPath(p),
    }));
    match host::run(&interpreter, &argv, &script_env(), None) {
        Ok(output) => {
            log_output(&output);
            Ok(output)
        }
        Err(RunError::NotGranted(why)) => Err(LaunchError::NotGranted {
            interpreter,
            line: first_line(&head),
            why,
        }),
        Err(e) => Err(LaunchError::Run(e)),
    }
}

/// Places the step's payload files in its work folder, where ADU's scripts expect them.
pub fn stage_payload(step: &StepContext) -> Result<(), StageError> {
    if step.files.is_empty() {
        return Ok(());
    }
    let mut args = vec![
        Arg::Literal("-c".into()),
        Arg::Literal(STAGE_PAYLOAD.into()),
        Arg::Literal("stage-payload".into()),
        Arg::SandboxPath(step.work_folder.clone()),
    ];
    args.extend(step.files.iter().map(|f| Arg::SandboxPath(f.path.clone())));
    match host::run(SHELL, &args, &script_env(), None) {
        Ok(out) if out.exit_code == Some(0) => Ok(()),
        Ok(out) => Err(StageError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )),
        Err(e) => Err(StageError::Run(e)),
    }
}

/// The failure of the handler `id` for a run of the script, or of the staging shell,
/// that the host refused or stopped; `not_started` is the handler's code for a script
/// the host could not start.
pub fn run_failure(id: &str, not_started: ExtendedCode, error: RunError) -> ResultFile {
    match error {
        RunError::NotGranted(why) => ResultFile::failure(
            ext::CAPABILITY_DENIED,
            format!(
                "{why}; the registration of {id} must grant run = [\"{SHELL}\"] to place the payload files"
            ),
        ),
        RunError::BadPath(why) => ResultFile::failure(not_started, why),
        RunError::SpawnFailed(why) => {
            ResultFile::failure(not_started, format!("cannot start the script: {why}"))
        }
        RunError::TimedOut => ResultFile::failure(
            ext::TIMED_OUT,
            "the script ran past the action's time limit and was killed",
        ),
        RunError::Cancelled => ResultFile {
            result_code: codes::FAILURE_CANCELLED,
            extended_result_code: ext::CANCELLED.value(),
            result_details: "the action was cancelled; the script was killed".into(),
        },
    }
}

/// The start of the script, where its `#!` line is.
fn read_head(script: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(SHEBANG_BYTES);
    std::fs::File::open(script)?
        .take(SHEBANG_BYTES as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// The script's first line, for messages.
fn first_line(head: &[u8]) -> String {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    match String::from_utf8_lossy(line).trim_end() {
        line if line.starts_with("#!") => format!("`{line}`"),
        _ => "no `#!` line".to_owned(),
    }
}

/// The interpreter a script's `#!` line names, and the one argument the line may give it
/// (the rest of the line, trimmed), read as Linux reads it; `None` when the script does
/// not start with `#!` or names no interpreter.
///
/// ```
/// use handrail_adu_script::shebang;
/// assert_eq!(shebang(b"#!/bin/bash\necho"), Some(("/bin/bash".into(), None)));
/// assert_eq!(
///     shebang(b"#! /usr/bin/env  bash -e \n"),
///     Some(("/usr/bin/env".into(), Some("bash -e".into())))
/// );
/// assert_eq!(shebang(b"echo hello\n"), None);
/// assert_eq!(shebang(b"#!\n"), None);
/// ```
pub fn shebang(head: &[u8]) -> Option<(String, Option<String>)> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line.trim_matches([' ', '\t', '\r']);
    let (interpreter, arg) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], Some(line[i..].trim_matches([' ', '\t']))),
        None => (line, None),
    };
    if interpreter.is_empty() {
        return None;
    }
    Some((
        interpreter.to_owned(),
        arg.filter(|a| !a.is_empty()).map(str::to_owned),
    ))
}

fn script_env() -> [(String, String); 1] {
    [("PATH".to_owned(), SCRIPT_PATH.to_owned())]
}

fn log_output(output: &RunOutput) {
    for (stream, bytes, level) in [
        ("stdout", &output.stdout, host::Level::Info),
        ("stderr", &output.stderr, host::Level::Warn),
    ] {
        if bytes.is_empty() {
            continue;
        }
        let shown = &bytes[..bytes.len().min(MAX_LOGGED_OUTPUT)];
        let cut = bytes.len() > shown.len() || output.truncated;
        host::log(
            level,
            &format!(
                "script {stream}:\n{}{}",
                String::from_utf8_lossy(shown).trim_end(),
                if cut { "\n[output truncated]" } else { "" }
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_are_quoted_or_said_missing() {
        assert_eq!(first_line(b"#!/bin/bash\nx"), "`#!/bin/bash`");
        assert_eq!(first_line(b"echo\n"), "no `#!` line");
        assert_eq!(first_line(b""), "no `#!` line");
    }
}
