//! ADU's script-driven `microsoft/swupdate:2`: a step that names `scriptFileName` has its
//! script drive swupdate, as Azure Device Update's swupdate v2 handler does
//! (swupdate_handler_v2.cpp); a step without it gets the built-in A/B flow.
//!
//! The step's payload files are the script and the `.swu` (at least two files), named
//! by `scriptFileName` and `swuFileName`. The script is run by the interpreter its `#!`
//! line names (see [`handrail_adu_script::launch`]; the built-in registration grants
//! `/bin/bash` and `/bin/sh`), after the payload files are placed in the work folder, with
//! ADU's command line:
//!
//! 1. `--action-<action>` (`apiVersion` "1.0", the default), `--action <action>` ("1.1"),
//!    nothing for another `apiVersion`;
//! 2. `--swu-file <work folder>/<swuFileName>`;
//! 3. the key/value pairs of the registration's `[config] script_arguments` table, each
//!    as two arguments, sorted by key ([`script_arguments`]); ADU reads the same pairs
//!    from `swupdate-handler-config.json` (e.g. `{"--public-key-file": "…"}`) in no set
//!    order;
//! 4. the step's `arguments`, split on single spaces, with the component placeholders
//!    (`--component-name-val`, `${du_component_name}`, …);
//! 5. `--work-folder <work folder>`, `--result-file <file>`, and
//!    `--installed-criteria <criteria>` when the step has criteria that are not empty.
//!
//! The result file is the step context's result file for the action, one per action;
//! ADU names one file, `<work folder>/aduc_result.json`, for every action.
//!
//! ```toml
//! [config]
//! script_arguments = { "--public-key-file" = "/etc/swupdate/public.pem", "--log-file" = "/var/log/swupdate.log" }
//! ```
//!
//! | action | what runs | result |
//! |---|---|---|
//! | is-installed, download, install, apply | the script with that action | the script's result file |
//! | backup | nothing | 1000 |
//! | restore | the script with `cancel` | 1100 when it answers 800, else a failure with ADU's `0x20000003` |
//! | cancel | the script with `cancel` | the script's result file |
//!
//! How the script's end is reported: its result file, when it wrote one, whatever its
//! exit code (as ADU overrides the exit code with the file); with no result file, exit
//! code n ≠ 0 is a failure `0x30101000 + n` ([`crate::run::exit_code`]; ADU, which reads
//! the file last, reports `0x30100205` then), and exit 0 is [`RESULT_FILE_UNREADABLE`]
//! (`0x30100205`), as is a file that is not a result object.
//!
//! The step is checked in ADU's order, by every action that runs the script:
//! `scriptFileName` empty → [`MISSING_SCRIPT_FILE_NAME`] (`0x30100007`), fewer than two
//! payload files → [`WRONG_FILE_COUNT_FOR_SCRIPT`] (`0x30100103`), the script not among
//! them → [`SCRIPT_NOT_IN_PAYLOAD`] (`0x30100107`), `swuFileName` missing or empty →
//! [`MISSING_SWU_FILE_NAME_FOR_SCRIPT`] (`0x30100008`), and (Handrail's own check)
//! `swuFileName` not among them → [`crate::SWU_NOT_IN_PAYLOAD`] (`0x30100012`).

use std::collections::BTreeMap;

use handrail_adu_script::launch::{self, LaunchError, StageError};
use handrail_adu_script::{ApiVersion, Dialect, Inputs, ResultProblem, ScriptArg};
use handrail_sdk::codes::{self, COMPONENT_SWUPDATE, ext};
use handrail_sdk::host::{self, RunError, RunOutput};
use handrail_sdk::{Action, ExtendedCode, ResultFile, StepContext, StepContextExt, extended};
use serde_json::{Map, Value};

use crate::{ID, INVALID_CONFIG, PROGRAM_NOT_STARTED, SWU_NOT_IN_PAYLOAD};

/// `handlerProperties.scriptFileName` is empty (ADU's `MISSING_SCRIPT_FILE_NAME`).
pub const MISSING_SCRIPT_FILE_NAME: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x7);
/// A script-driven step has no `swuFileName` (ADU's `MISSING_SWU_FILE_NAME`).
pub const MISSING_SWU_FILE_NAME_FOR_SCRIPT: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x8);
/// A script-driven step has fewer than two payload files (ADU's
/// `DOWNLOAD_FAILURE_WRONG_FILECOUNT`).
pub const WRONG_FILE_COUNT_FOR_SCRIPT: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x103);
/// The script named by `scriptFileName` is not among the step's payload files (ADU's
/// `DOWNLOAD_FAILURE_GET_SCRIPT_FILE_ENTITY`).
pub const SCRIPT_NOT_IN_PAYLOAD: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x107);
/// The script wrote no result file (and exited 0), or one that is not a result object
/// (ADU's `INSTALL_FAILURE_PARSE_RESULT_FILE`).
pub const RESULT_FILE_UNREADABLE: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x205);
/// Restore ran the script's cancel and it did not answer 800 (ADU's
/// `ADUC_ERC_UPPERLEVEL_WORKFLOW_FAILED_RESTORE_FAILED`, facility 2).
pub const RESTORE_FAILED: ExtendedCode = ExtendedCode::new(2, 0, 0x3);
/// The payload files could not be placed in the work folder.
pub const PAYLOAD_NOT_STAGED: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x1e);

/// True when the step is ADU's script-driven form: it names a `scriptFileName`.
pub fn is_script_driven(step: &StepContext) -> bool {
    step.handler_properties.contains_key("scriptFileName")
}

/// The registration's `[config] script_arguments`, as the arguments they become: each
/// key then its value, sorted by key. Missing means none.
///
/// ```
/// use handrail_swupdate_handler::script::script_arguments;
/// let config = serde_json::json!({"script_arguments": {"--public-key-file": "/k.pem", "--log-file": "/l"}});
/// let args = script_arguments(config.as_object().unwrap()).unwrap();
/// assert_eq!(args, ["--log-file", "/l", "--public-key-file", "/k.pem"]);
/// let bad = serde_json::json!({"script_arguments": {"--x": 1}});
/// assert!(script_arguments(bad.as_object().unwrap()).unwrap_err().starts_with("config.script_arguments.\"--x\":"));
/// ```
pub fn script_arguments(config: &Map<String, Value>) -> Result<Vec<String>, String> {
    let table = match config.get("script_arguments") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(table)) => table,
        Some(_) => {
            return Err(
                "config.script_arguments: expected a table of argument = value strings".into(),
            );
        }
    };
    let mut sorted = BTreeMap::new();
    for (key, value) in table {
        if key.trim().is_empty() {
            return Err("config.script_arguments: an argument name is empty".into());
        }
        match value {
            Value::String(v) => {
                sorted.insert(key.clone(), v.clone());
            }
            _ => {
                return Err(format!(
                    "config.script_arguments.\"{key}\": expected a string value"
                ));
            }
        }
    }
    Ok(sorted.into_iter().flat_map(|(k, v)| [k, v]).collect())
}

/// Runs `action` of a script-driven step.
pub fn perform(step: &StepContext, action: Action) -> ResultFile {
    match action {
        Action::Backup => ResultFile::new(
            codes::BACKUP_SUCCESS,
            "the script-driven form keeps no backup; restore asks the script to cancel",
        ),
        Action::Restore => restore(step),
        _ => run(step, action).unwrap_or_else(|failure| failure),
    }
}

fn restore(step: &StepContext) -> ResultFile {
    let answer = match run(step, Action::Cancel) {
        Ok(answer) | Err(answer) => answer,
    };
    if answer.result_code == codes::CANCEL_SUCCESS {
        return ResultFile::new(
            codes::RESTORE_SUCCESS,
            format!("the script cancelled the update: {}", answer.result_details),
        );
    }
    ResultFile::failure(
        RESTORE_FAILED,
        format!(
            "restore runs the script's cancel, which answered {} (extended code {:#x}) instead of 800: {}",
            answer.result_code, answer.extended_result_code, answer.result_details
        ),
    )
}

/// The checked step: the script (sandbox path) and the swu file's name.
fn checked(step: &StepContext) -> Result<(&str, &str), ResultFile> {
    let names = || crate::payload_names(step);
    let script_name = step.required_str("scriptFileName").map_err(|e| {
        ResultFile::failure(
            MISSING_SCRIPT_FILE_NAME,
            format!("{e}: a script-driven {ID} step names its script"),
        )
    })?;
    if step.files.len() < 2 {
        return Err(ResultFile::failure(
            WRONG_FILE_COUNT_FOR_SCRIPT,
            format!(
                "a script-driven {ID} step has at least two payload files, the script and the .swu; this one has {} ({})",
                step.files.len(),
                names()
            ),
        ));
    }
    let script = step.payload_path(script_name).ok_or_else(|| {
        ResultFile::failure(
            SCRIPT_NOT_IN_PAYLOAD,
            format!(
                "script file `{script_name}` (handlerProperties.scriptFileName) is not a payload file of the step (its files: {})",
                names()
            ),
        )
    })?;
    let swu = step.required_str("swuFileName").map_err(|e| {
        ResultFile::failure(
            MISSING_SWU_FILE_NAME_FOR_SCRIPT,
            format!("{e}: a script-driven {ID} step names its .swu"),
        )
    })?;
    if step.file(swu).is_none() {
        return Err(ResultFile::failure(
            SWU_NOT_IN_PAYLOAD,
            format!(
                "handlerProperties.swuFileName `{swu}` is not one of the step's payload files ({})",
                names()
            ),
        ));
    }
    Ok((script, swu))
}

/// Runs the script for `action`; the result it wrote, or the failure that stopped it.
fn run(step: &StepContext, action: Action) -> Result<ResultFile, ResultFile> {
    let (script, swu) = checked(step)?;
    let configured = script_arguments(&step.handler_config).map_err(|why| {
        ResultFile::failure(INVALID_CONFIG, format!("registration of {ID}: {why}"))
    })?;
    let api_version = ApiVersion::parse(step.property_str("apiVersion"));
    if let ApiVersion::Other(other) = &api_version {
        host::warn(&format!(
            "handlerProperties.apiVersion is `{other}`, neither \"1.0\" nor \"1.1\": as ADU does, the script gets no action argument"
        ));
    }
    let work = step.work_folder.trim_end_matches('/');
    let mut leading = vec![
        ScriptArg::Literal("--swu-file".into()),
        ScriptArg::Path(format!("{work}/{swu}")),
    ];
    leading.extend(configured.into_iter().map(ScriptArg::Literal));
    let installed_criteria = step
        .installed_criteria
        .as_deref()
        .or_else(|| step.property_str("installedCriteria"));
    let args = handrail_adu_script::script_arguments(&Inputs {
        dialect: Dialect::SwupdateV2,
        leading,
        arguments: step.property_str("arguments"),
        component: step.component.as_ref(),
        action,
        api_version,
        work_folder: &step.work_folder,
        result_file: &step.result_file,
        installed_criteria,
    });
    launch::stage_payload(step).map_err(|e| match e {
        StageError::Failed(why) => ResultFile::failure(
            PAYLOAD_NOT_STAGED,
            format!("cannot place the payload files in the work folder: {why}"),
        ),
        StageError::Run(e) => run_failure(e),
    })?;
    // Only what this run writes is its result.
    match std::fs::remove_file(&step.result_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(ResultFile::failure(
                PROGRAM_NOT_STARTED,
                format!("cannot clear the result file {}: {e}", step.result_file),
            ));
        }
        _ => {}
    }
    let output = launch::run_script(script, args).map_err(|e| match e {
        e @ LaunchError::Unreadable { .. } => {
            ResultFile::failure(PROGRAM_NOT_STARTED, e.to_string())
        }
        e @ LaunchError::NotGranted { .. } => {
            ResultFile::failure(ext::CAPABILITY_DENIED, e.with_grant_hint(ID))
        }
        LaunchError::Run(e) => run_failure(e),
    })?;
    Ok(interpret(
        &output,
        std::fs::read(&step.result_file).ok().as_deref(),
    ))
}

/// The action's result from how the script ended and what it wrote to its result file
/// (`None` when it wrote none).
///
/// ```
/// use handrail_sdk::host::RunOutput;
/// use handrail_swupdate_handler::script::interpret;
/// let exited = |code| RunOutput { exit_code: Some(code), signal: None, stdout: vec![], stderr: vec![], truncated: false };
/// assert_eq!(interpret(&exited(7), None).extended_result_code, 0x3010_1007);
/// assert_eq!(interpret(&exited(0), None).extended_result_code, 0x3010_0205);
/// let written = br#"{"resultCode":0,"extendedResultCode":42,"resultDetails":"no space"}"#;
/// assert_eq!(interpret(&exited(3), Some(written)).extended_result_code, 42);
/// ```
pub fn interpret(output: &RunOutput, result_file: Option<&[u8]>) -> ResultFile {
    let ending = match (output.exit_code, output.signal) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("the script exited with code {code}")),
        (None, signal) => Some(format!(
            "the script was killed by signal {}",
            signal.unwrap_or(0)
        )),
    };
    match (handrail_adu_script::parse_result(result_file), ending) {
        (Ok(result), _) => result,
        (Err(ResultProblem::Missing), Some(ending)) => ResultFile::failure(
            crate::run::exit_code(output.exit_code, output.signal),
            format!("{ending} and wrote no result file (--result-file)"),
        ),
        (Err(ResultProblem::Missing), None) => ResultFile::failure(
            RESULT_FILE_UNREADABLE,
            "the script exited 0 but wrote no result file (--result-file)",
        ),
        (Err(problem), ending) => ResultFile::failure(
            RESULT_FILE_UNREADABLE,
            match ending {
                Some(ending) => format!("{problem} ({ending})"),
                None => problem.to_string(),
            },
        ),
    }
}

fn run_failure(error: RunError) -> ResultFile {
    launch::run_failure(ID, PROGRAM_NOT_STARTED, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_adu() {
        assert_eq!(MISSING_SCRIPT_FILE_NAME.value(), 0x3010_0007);
        assert_eq!(MISSING_SWU_FILE_NAME_FOR_SCRIPT.value(), 0x3010_0008);
        assert_eq!(WRONG_FILE_COUNT_FOR_SCRIPT.value(), 0x3010_0103);
        assert_eq!(SCRIPT_NOT_IN_PAYLOAD.value(), 0x3010_0107);
        assert_eq!(RESULT_FILE_UNREADABLE.value(), 0x3010_0205);
        assert_eq!(RESTORE_FAILED.value(), 0x2000_0003);
    }

    #[test]
    fn config_arguments_must_be_a_table_of_strings() {
        for (config, field) in [
            (
                r#"{"script_arguments": ["--x"]}"#,
                "config.script_arguments:",
            ),
            (
                r#"{"script_arguments": {"": "v"}}"#,
                "config.script_arguments:",
            ),
            (
                r#"{"script_arguments": {"--n": true}}"#,
                "config.script_arguments.\"--n\":",
            ),
        ] {
            let config: Map<String, Value> = serde_json::from_str(config).unwrap();
            let e = script_arguments(&config).unwrap_err();
            assert!(e.starts_with(field), "{e}");
        }
        assert!(script_arguments(&Map::new()).unwrap().is_empty());
    }
}
