//! `microsoft/script:1`: runs an update's shell script with Azure Device Update's
//! arguments and reports the result the script wrote.
//!
//! Handler properties: `scriptFileName` (required; the script must be one of the step's
//! payload files), `arguments` (space-separated, with component placeholders),
//! `installedCriteria`, `apiVersion` ("1.0", the default, or "1.1"). The command line is
//! built by [`arguments::script_arguments`]. The script is run as ADU's agent runs it, by
//! the interpreter its `#!` line names (`#!/bin/bash` in every ADU script), `/bin/sh`
//! when it has none, as the kernel and `execvp` would: `<interpreter> [<its argument>]
//! <script> …`, through the host's `run` import, so the handler's registration must grant
//! that interpreter (the built-in registration grants `/bin/sh` and `/bin/bash`).
//!
//! The script writes `{resultCode, extendedResultCode, resultDetails}` to the file named
//! by `--result-file` and exits 0. How its end is reported:
//!
//! | what happened | result |
//! |---|---|
//! | `scriptFileName` missing | failure, [`MISSING_SCRIPT_FILE_NAME`] (0x30500005) |
//! | the script is not a payload file of the step | failure, [`SCRIPT_NOT_IN_PAYLOAD`] (0x30500103), details name the file |
//! | exit code n ≠ 0 | failure, `0x30501000 + n` |
//! | result file missing or unparsable | failure, [`RESULT_FILE_UNREADABLE`] (0x30500205) |
//! | failure with extended code 0 | [`FAILURE_WITHOUT_CODE`] (0x30500206) |
//! | anything else | the script's result, as written (reboot and restart requests included) |
//!
//! ADU keeps a step's payload files in the work folder and its scripts look for them
//! there (`$workfolder/$firmware_file`), so before the script runs the payload files are
//! hard-linked (or copied) from `/payload` into the work folder, with the same granted
//! shell.
//!
//! As in ADU, the script runs for `is-installed`, `download` (after the runtime has
//! fetched and verified the step's payload), `install` and `apply`, never for `cancel`
//! (which answers 800); backup and restore are not supported (1001 / 1101).

pub mod arguments;

use handrail_sdk::codes::{self, COMPONENT_SCRIPT, FACILITY_STEP_HANDLER, ext};
use handrail_sdk::host::{self, Arg, RunError, RunOutput};
use handrail_sdk::{
    Action, ExtendedCode, Handler, ResultFile, StepContext, StepContextExt, extended,
};

use arguments::{ApiVersion, Inputs, ScriptArg, result_file_path, script_arguments};

/// The handler id.
pub const ID: &str = "microsoft/script:1";

/// The program a script without a `#!` line is run with, as `execvp` falls back to it,
/// and the one the handler stages payload files with; the registration must grant it.
pub const SHELL: &str = "/bin/sh";

/// How much of a script's start is read for its `#!` line (Linux reads as much).
const SHEBANG_BYTES: usize = 256;

/// `PATH` given to the script (the rest of its environment is empty), so scripts written
/// for ADU, which ran them from a login environment, find the usual tools.
pub const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `handlerProperties.scriptFileName` is missing (ADU's code).
pub const MISSING_SCRIPT_FILE_NAME: ExtendedCode = extended(COMPONENT_SCRIPT, 0x5);
/// The script named by `scriptFileName` is not among the step's payload files (ADU's
/// code for it, `DOWNLOAD_FAILURE_GET_PRIMARY_FILE_ENTITY`).
pub const SCRIPT_NOT_IN_PAYLOAD: ExtendedCode = extended(COMPONENT_SCRIPT, 0x103);
/// The script wrote no result file, or one that is not a result object (ADU's code).
pub const RESULT_FILE_UNREADABLE: ExtendedCode = extended(COMPONENT_SCRIPT, 0x205);
/// The script reported a failure with extended code 0 (ADU's code).
pub const FAILURE_WITHOUT_CODE: ExtendedCode = extended(COMPONENT_SCRIPT, 0x206);
/// The host could not start the script.
pub const SCRIPT_NOT_STARTED: ExtendedCode = extended(COMPONENT_SCRIPT, 0x207);
/// The payload files could not be placed in the work folder.
pub const PAYLOAD_NOT_STAGED: ExtendedCode = extended(COMPONENT_SCRIPT, 0x208);

/// Links each payload file (`$2…`) into the work folder (`$1`), copying where a link
/// cannot be made.
const STAGE_PAYLOAD: &str = r#"dest=$1; shift; for f in "$@"; do ln -f "$f" "$dest/" 2>/dev/null || cp -f "$f" "$dest/" || exit 1; done"#;

/// Largest script output kept in the log, per stream.
const MAX_LOGGED_OUTPUT: usize = 16 * 1024;

/// The `microsoft/script:1` handler.
pub struct ScriptHandler;

impl Handler for ScriptHandler {
    const ID: &'static str = ID;
    const ACTIONS: &'static [Action] = &[
        Action::IsInstalled,
        Action::Download,
        Action::Install,
        Action::Apply,
        Action::Cancel,
    ];

    fn is_installed(step: &StepContext) -> ResultFile {
        perform(step, Action::IsInstalled)
    }

    fn download(step: &StepContext) -> ResultFile {
        perform(step, Action::Download)
    }

    fn install(step: &StepContext) -> ResultFile {
        perform(step, Action::Install)
    }

    fn apply(step: &StepContext) -> ResultFile {
        perform(step, Action::Apply)
    }

    fn cancel(_step: &StepContext) -> ResultFile {
        // ADU's script handler never runs the script to cancel; the runtime stops what runs.
        ResultFile::new(codes::CANCEL_SUCCESS, "the script is not run to cancel")
    }
}

handrail_sdk::export!(ScriptHandler);

/// Runs the step's script for `action` and turns its end into a result.
fn perform(step: &StepContext, action: Action) -> ResultFile {
    let (script, args) = match command_line(step, action) {
        Ok(c) => c,
        Err(failure) => return failure,
    };
    let head = match read_head(&script) {
        Ok(head) => head,
        Err(e) => {
            return ResultFile::failure(
                SCRIPT_NOT_STARTED,
                format!("cannot read the script {script}: {e}"),
            );
        }
    };
    let (interpreter, interpreter_arg) = shebang(&head).unwrap_or((SHELL.to_owned(), None));
    let mut argv: Vec<Arg> = interpreter_arg.into_iter().map(Arg::Literal).collect();
    argv.push(Arg::SandboxPath(script));
    argv.extend(args.into_iter().map(|a| match a {
        ScriptArg::Literal(s) => Arg::Literal(s),
        ScriptArg::Path(p) => Arg::SandboxPath(p),
    }));
    if let Err(failure) = stage_payload(step) {
        return failure;
    }
    let output = host::run(&interpreter, &argv, &script_env(), None);
    let result_file = result_file_path(&step.work_folder, action);
    match output {
        Ok(output) => {
            log_output(&output);
            interpret(&output, std::fs::read(&result_file).ok().as_deref())
        }
        Err(RunError::NotGranted(why)) => ResultFile::failure(
            ext::CAPABILITY_DENIED,
            format!(
                "the script's interpreter {interpreter} ({}) is not granted: {why}; grant it in the registration of {ID} (capabilities.run) or the configuration ([handler_grants.\"{ID}\"] run = [\"{interpreter}\"])",
                first_line(&head)
            ),
        ),
        Err(e) => run_failure(e),
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
        "" => "no `#!` line".to_owned(),
        line if line.starts_with("#!") => format!("`{line}`"),
        _ => "no `#!` line".to_owned(),
    }
}

/// The interpreter a script's `#!` line names, and the one argument the line may give it
/// (the rest of the line, trimmed), read as Linux reads it; `None` when the script does
/// not start with `#!` or names no interpreter.
///
/// ```
/// use handrail_script_handler::shebang;
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

/// Places the step's payload files in the work folder, where ADU's scripts expect them.
fn stage_payload(step: &StepContext) -> Result<(), ResultFile> {
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
        Ok(out) => Err(ResultFile::failure(
            PAYLOAD_NOT_STAGED,
            format!(
                "cannot place the payload files in the work folder: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
        Err(e) => Err(run_failure(e)),
    }
}

/// The script's sandbox path and its arguments, or the failure that stops the action.
fn command_line(
    step: &StepContext,
    action: Action,
) -> Result<(String, Vec<ScriptArg>), ResultFile> {
    let script_name = step.required_str("scriptFileName").map_err(|e| {
        ResultFile::failure(
            MISSING_SCRIPT_FILE_NAME,
            format!("{e}: the step must name its script"),
        )
    })?;
    let Some(script) = step.payload_path(script_name) else {
        let files: Vec<&str> = step.files.iter().map(|f| f.name.as_str()).collect();
        return Err(ResultFile::failure(
            SCRIPT_NOT_IN_PAYLOAD,
            format!(
                "script file `{script_name}` (handlerProperties.scriptFileName) is not a payload file of the step (its files: {})",
                files.join(", ")
            ),
        ));
    };
    let api_version = ApiVersion::parse(step.property_str("apiVersion"));
    if let ApiVersion::Other(other) = &api_version {
        host::log(
            host::Level::Warn,
            &format!(
                "handlerProperties.apiVersion is `{other}`, neither \"1.0\" nor \"1.1\": as ADU does, the script gets no action argument"
            ),
        );
    }
    let installed_criteria = step
        .installed_criteria
        .as_deref()
        .or_else(|| step.property_str("installedCriteria"));
    let args = script_arguments(&Inputs {
        arguments: step.property_str("arguments"),
        component: step.component.as_ref(),
        action,
        api_version,
        work_folder: &step.work_folder,
        installed_criteria,
    });
    Ok((script.to_owned(), args))
}

/// The action's result from how the script ended and what it wrote to its result file
/// (`None` when it wrote none).
pub fn interpret(output: &RunOutput, result_file: Option<&[u8]>) -> ResultFile {
    match (output.exit_code, output.signal) {
        (Some(0), _) => {}
        (Some(code), _) => {
            return ResultFile::failure(
                ExtendedCode::child_exit(FACILITY_STEP_HANDLER, COMPONENT_SCRIPT, code as u8),
                format!("the script exited with code {code}"),
            );
        }
        (None, signal) => {
            let signal = signal.unwrap_or(0);
            return ResultFile::failure(
                ExtendedCode::child_exit(
                    FACILITY_STEP_HANDLER,
                    COMPONENT_SCRIPT,
                    (128 + signal) as u8,
                ),
                format!("the script was killed by signal {signal}"),
            );
        }
    }
    read_script_result(result_file)
}

/// The script's own result: passed through, except that an unreadable file and an
/// anonymous failure get the script handler's codes.
pub fn read_script_result(bytes: Option<&[u8]>) -> ResultFile {
    let Some(bytes) = bytes else {
        return ResultFile::failure(
            RESULT_FILE_UNREADABLE,
            "the script exited 0 but wrote no result file (--result-file)",
        );
    };
    let parsed = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v @ serde_json::Value::Object(_)) => serde_json::from_value::<ResultFile>(v),
        Ok(_) => {
            return ResultFile::failure(
                RESULT_FILE_UNREADABLE,
                "the script's result file is not a JSON object",
            );
        }
        Err(e) => Err(e),
    };
    match parsed {
        Ok(result) if !result.is_success() && result.extended_result_code == 0 => ResultFile {
            extended_result_code: FAILURE_WITHOUT_CODE.value(),
            ..result
        },
        Ok(result) => result,
        Err(e) => ResultFile::failure(
            RESULT_FILE_UNREADABLE,
            format!(
                "the script's result file is not a {{resultCode, extendedResultCode, resultDetails}} object: {e}"
            ),
        ),
    }
}

fn run_failure(error: RunError) -> ResultFile {
    match error {
        RunError::NotGranted(why) => ResultFile::failure(
            ext::CAPABILITY_DENIED,
            format!(
                "{why}; the registration of {ID} must grant run = [\"{SHELL}\"] to place the payload files"
            ),
        ),
        RunError::BadPath(why) => ResultFile::failure(SCRIPT_NOT_STARTED, why),
        RunError::SpawnFailed(why) => ResultFile::failure(
            SCRIPT_NOT_STARTED,
            format!("cannot start the script: {why}"),
        ),
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

    fn exited(code: i32) -> RunOutput {
        RunOutput {
            exit_code: Some(code),
            signal: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
        }
    }

    #[test]
    fn exit_codes_map_to_child_exit_codes() {
        let r = interpret(&exited(3), Some(br#"{"resultCode":600}"#));
        assert_eq!(r.result_code, codes::FAILURE);
        assert_eq!(r.extended_result_code, 0x3050_1003);
        let killed = RunOutput {
            exit_code: None,
            signal: Some(9),
            ..exited(0)
        };
        assert_eq!(interpret(&killed, None).extended_result_code, 0x3050_1089);
    }

    #[test]
    fn result_file_is_passed_through_or_named_when_bad() {
        let r = interpret(
            &exited(0),
            Some(br#"{"resultCode":706,"extendedResultCode":0,"resultDetails":"reboot"}"#),
        );
        assert_eq!((r.result_code, r.result_details.as_str()), (706, "reboot"));
        for bad in [None, Some(&b"not json"[..]), Some(b"[1]"), Some(b"{}")] {
            let r = interpret(&exited(0), bad);
            assert_eq!(r.extended(), RESULT_FILE_UNREADABLE, "{bad:?}");
        }
        let r = interpret(
            &exited(0),
            Some(br#"{"resultCode":0,"resultDetails":"no disk"}"#),
        );
        assert_eq!(r.extended_result_code, 0x3050_0206);
        assert_eq!(r.result_details, "no disk");
        let r = interpret(
            &exited(0),
            Some(br#"{"resultCode":-1,"extendedResultCode":7}"#),
        );
        assert_eq!((r.result_code, r.extended_result_code), (-1, 7));
    }

    #[test]
    fn codes_match_adu() {
        assert_eq!(MISSING_SCRIPT_FILE_NAME.value(), 0x3050_0005);
        assert_eq!(RESULT_FILE_UNREADABLE.value(), 0x3050_0205);
        assert_eq!(FAILURE_WITHOUT_CODE.value(), 0x3050_0206);
    }
}
