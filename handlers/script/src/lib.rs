//! `microsoft/script:1`: runs an update's shell script with Azure Device Update's
//! arguments and reports the result the script wrote.
//!
//! Handler properties: `scriptFileName` (required; the script must be one of the step's
//! payload files), `arguments` (space-separated, with component placeholders),
//! `installedCriteria`, `apiVersion` ("1.0", the default, or "1.1"). The command line is
//! built by [`handrail_adu_script::script_arguments`]. The script is run as ADU's agent runs it, by
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

use handrail_adu_script::arguments::result_file_path;
use handrail_adu_script::launch::{self, LaunchError, StageError};
use handrail_adu_script::{ApiVersion, Dialect, Inputs, ResultProblem, ScriptArg};
use handrail_sdk::codes::{self, COMPONENT_SCRIPT, FACILITY_STEP_HANDLER, ext};
use handrail_sdk::host::{self, RunError, RunOutput};
use handrail_sdk::{
    Action, ExtendedCode, Handler, ResultFile, StepContext, StepContextExt, extended,
};

/// The handler id.
pub const ID: &str = "microsoft/script:1";

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
    if let Err(e) = launch::stage_payload(step) {
        return match e {
            StageError::Failed(why) => ResultFile::failure(
                PAYLOAD_NOT_STAGED,
                format!("cannot place the payload files in the work folder: {why}"),
            ),
            StageError::Run(e) => run_failure(e),
        };
    }
    match launch::run_script(&script, args) {
        Ok(output) => interpret(
            &output,
            std::fs::read(result_file_path(&step.work_folder, action))
                .ok()
                .as_deref(),
        ),
        Err(e @ LaunchError::Unreadable { .. }) => {
            ResultFile::failure(SCRIPT_NOT_STARTED, e.to_string())
        }
        Err(e @ LaunchError::NotGranted { .. }) => {
            ResultFile::failure(ext::CAPABILITY_DENIED, e.with_grant_hint(ID))
        }
        Err(LaunchError::Run(e)) => run_failure(e),
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
    let result_file = result_file_path(&step.work_folder, action);
    let args = handrail_adu_script::script_arguments(&Inputs {
        dialect: Dialect::Script,
        leading: Vec::new(),
        result_file: &result_file,
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
                format!(
                    "the script exited with code {code}{}",
                    denied_write_hint(&output.stderr)
                ),
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

/// When the script's error output says a path was denied (`cannot create /x/log:
/// Permission denied`), what to grant: its programs may write only the work folder and
/// what the handler is granted. Empty when nothing was denied.
fn denied_write_hint(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    let Some(path) = stderr.lines().rev().find_map(|line| {
        let (before, _) = line.split_once(": Permission denied")?;
        let path = before
            .rsplit([' ', '\''])
            .map(|t| t.trim_matches(|c| matches!(c, '\'' | '"' | '‘' | '’' | ':')))
            .find(|t| t.starts_with('/'))?;
        Some(path.to_owned())
    }) else {
        return String::new();
    };
    let folder = std::path::Path::new(&path)
        .parent()
        .map_or(path.clone(), |p| p.display().to_string());
    format!(
        "; it was denied {path}: the script's programs may write only the work folder and \
         what the handler is granted. To let them, grant the folder in the configuration: \
         [handler_grants.\"{ID}\"] write = [\"{folder}\"]"
    )
}

/// The script's own result: passed through, except that an unreadable file and an
/// anonymous failure get the script handler's codes.
pub fn read_script_result(bytes: Option<&[u8]>) -> ResultFile {
    match handrail_adu_script::parse_result(bytes) {
        Ok(result) if !result.is_success() && result.extended_result_code == 0 => ResultFile {
            extended_result_code: FAILURE_WITHOUT_CODE.value(),
            ..result
        },
        Ok(result) => result,
        Err(ResultProblem::Missing) => ResultFile::failure(
            RESULT_FILE_UNREADABLE,
            "the script exited 0 but wrote no result file (--result-file)",
        ),
        Err(problem) => ResultFile::failure(RESULT_FILE_UNREADABLE, problem.to_string()),
    }
}

fn run_failure(error: RunError) -> ResultFile {
    launch::run_failure(ID, SCRIPT_NOT_STARTED, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_denied_write_names_the_path_and_the_grant_to_add() {
        for stderr in [
            "/payload/x.sh: 3: cannot create /var/lib/device/log: Permission denied\n",
            "touch: cannot touch '/var/lib/device/log': Permission denied\n",
        ] {
            let hint = denied_write_hint(stderr.as_bytes());
            assert!(
                hint.contains("denied /var/lib/device/log:")
                    && hint.contains(r#"write = ["/var/lib/device"]"#)
                    && hint.contains(ID),
                "{hint}"
            );
        }
        assert_eq!(denied_write_hint(b"no such file\n"), "");
    }

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
