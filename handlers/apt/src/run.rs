//! Running apt-get and dpkg-query through the host, and how their ends become results.

use handrail_sdk::codes::{self, COMPONENT_APT, FACILITY_STEP_HANDLER, ext};
use handrail_sdk::host::{self, Arg, RunError, RunOutput};
use handrail_sdk::{ExtendedCode, ResultFile};

use crate::apt::{self, APT_GET, DPKG_QUERY};
use crate::config::AptConfig;
use crate::dpkg::{self, PackageState};
use crate::{ID, PROGRAM_NOT_STARTED, UNEXPECTED_PACKAGE_STATUS};

/// Largest tail of a program's output written to the log, per stream.
const MAX_LOGGED_OUTPUT: usize = 6 * 1024;

/// The extended code of a program that exited with `exit_code` or was killed by `signal`
/// (`0x30201000 + exit`, or `+ 128 + signal`).
///
/// ```
/// use handrail_apt_handler::run::exit_code;
/// assert_eq!(exit_code(Some(100), None).value(), 0x3020_1064);
/// assert_eq!(exit_code(None, Some(9)).value(), 0x3020_1089);
/// ```
pub fn exit_code(exit_code: Option<i32>, signal: Option<i32>) -> ExtendedCode {
    let n = match (exit_code, signal) {
        (Some(code), _) => code,
        (None, signal) => 128 + signal.unwrap_or(0),
    };
    ExtendedCode::child_exit(FACILITY_STEP_HANDLER, COMPONENT_APT, n as u8)
}

/// The extended code an apt-get run that ended in failure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// One code whatever apt-get's exit code (ADU's: download 0x30200100, install
    /// 0x30200200); the details say how apt-get ended.
    Code(ExtendedCode),
    /// `0x30201000 +` apt-get's exit code ([`exit_code`]).
    ExitCode,
}

/// How a program's end reads in a failure's details.
fn ending(output: &RunOutput) -> String {
    match (output.exit_code, output.signal) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, signal) => format!("was killed by signal {}", signal.unwrap_or(0)),
    }
}

/// The failure for a run the host refused or stopped.
pub fn run_failure(program: &str, error: RunError) -> ResultFile {
    match error {
        RunError::NotGranted(why) => ResultFile::failure(
            ext::CAPABILITY_DENIED,
            format!(
                "{why}; the registration of {ID} must grant run = [\"{APT_GET}\", \"{DPKG_QUERY}\"]"
            ),
        ),
        RunError::BadPath(why) => ResultFile::failure(PROGRAM_NOT_STARTED, why),
        RunError::SpawnFailed(why) => ResultFile::failure(
            PROGRAM_NOT_STARTED,
            format!("cannot start {program}: {why}"),
        ),
        RunError::TimedOut => ResultFile::failure(
            ext::TIMED_OUT,
            format!("{program} ran past the action's time limit and was killed"),
        ),
        RunError::Cancelled => ResultFile {
            result_code: codes::FAILURE_CANCELLED,
            extended_result_code: ext::CANCELLED.value(),
            result_details: format!("the action was cancelled; {program} was killed"),
        },
    }
}

fn run(program: &str, args: Vec<String>, config: &AptConfig) -> Result<RunOutput, ResultFile> {
    let args: Vec<Arg> = args.into_iter().map(Arg::Literal).collect();
    host::run(program, &args, &config.env, None).map_err(|e| run_failure(program, e))
}

/// What an apt-get call is about, for the log and for failures: `apt-get install a=1`.
fn label(args: &[String], options: &[String]) -> String {
    let own = &args[options.len().min(args.len())..];
    let words: Vec<&str> = own
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-') && !a.starts_with("Dpkg::"))
        .collect();
    format!("apt-get {}", words.join(" "))
}

/// Runs `apt-get <args>` (which start with the configured options) and returns its
/// output when it exits 0; otherwise the failure, with the code `on_failure` says and
/// apt's own account of it.
pub fn apt_get(
    args: Vec<String>,
    config: &AptConfig,
    on_failure: OnFailure,
) -> Result<RunOutput, ResultFile> {
    let label = label(&args, &config.options);
    host::info(&format!("running {label}"));
    let output = run(APT_GET, args, config)?;
    log_output(&label, &output);
    if output.exit_code == Some(0) {
        return Ok(output);
    }
    let summary = apt::summary(&output.stdout, &output.stderr);
    let code = match on_failure {
        OnFailure::Code(code) => code,
        OnFailure::ExitCode => exit_code(output.exit_code, output.signal),
    };
    Err(ResultFile::failure(
        code,
        format!(
            "`{label}` {}{}{summary}",
            ending(&output),
            if summary.is_empty() { "" } else { ":\n" }
        ),
    ))
}

/// What dpkg has for a package: one state per architecture it knows it for, none when
/// it knows nothing of it.
pub fn package_states(name: &str, config: &AptConfig) -> Result<Vec<PackageState>, ResultFile> {
    let args = vec![
        "-W".to_owned(),
        format!("--showformat={}", dpkg::QUERY_FORMAT),
        name.to_owned(),
    ];
    let output = run(DPKG_QUERY, args, config)?;
    match output.exit_code {
        Some(0) => {
            dpkg::parse_query_output(&String::from_utf8_lossy(&output.stdout)).map_err(|why| {
                ResultFile::failure(
                    UNEXPECTED_PACKAGE_STATUS,
                    format!("dpkg-query about `{name}`: {why}"),
                )
            })
        }
        Some(dpkg::NOT_FOUND_EXIT) if output.stdout.is_empty() => Ok(Vec::new()),
        _ => Err(ResultFile::failure(
            exit_code(output.exit_code, output.signal),
            format!(
                "`dpkg-query -W {name}` {}: {}",
                ending(&output),
                apt::summary(b"", &output.stderr)
            ),
        )),
    }
}

fn log_output(label: &str, output: &RunOutput) {
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
                "{label} {stream}:\n{}{}",
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
    fn labels_leave_out_options() {
        let options = vec!["-o".to_owned(), "Dir::Cache=/c".to_owned()];
        let args = apt::install(&options, &["a=1".to_owned(), "b".to_owned()]);
        assert_eq!(label(&args, &options), "apt-get install a=1 b");
        assert_eq!(label(&apt::update(&options), &options), "apt-get update");
    }

    #[test]
    fn refusals_name_the_grants() {
        let r = run_failure(APT_GET, RunError::NotGranted("not granted".into()));
        assert_eq!(r.extended(), ext::CAPABILITY_DENIED);
        assert!(
            r.result_details.contains(DPKG_QUERY),
            "{}",
            r.result_details
        );
        let r = run_failure(APT_GET, RunError::Cancelled);
        assert_eq!(r.result_code, codes::FAILURE_CANCELLED);
    }
}
