//! `microsoft/apt:1`: installs the Debian packages an ADU apt manifest lists, with
//! apt-get, failing as Azure Device Update's apt handler fails: in the same action, with
//! the same extended result code.
//!
//! The step has exactly one payload file, the apt manifest ([`manifest`]), and an
//! `installedCriteria`. The actions, in the engine's order:
//!
//! | action | what it does | success |
//! |---|---|---|
//! | is-installed | not implemented here: see below | — |
//! | download | checks the step (one payload file, `installedCriteria`, a well-formed apt manifest that lists packages), then `apt-get update` (a failure only warns), then `apt-get -y --allow-downgrades --download-only install name=version…` | 500 |
//! | backup | records each listed package's installed version (from `dpkg-query`), or that it is absent, in `apt-backup.json` in the work folder ([`backup`]) | 1000 |
//! | install | `apt-get -y --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install name=version…` | 600 |
//! | apply | nothing more to do; asks for an agent restart when the manifest says `agentRestartRequired` | 700, or 707 |
//! | restore | `apt-get -y remove` the packages that were absent, then installs the recorded versions again (`--allow-downgrades`) | 1100; 1101 without a backup |
//! | cancel | apt and dpkg cannot be stopped half-way safely | 801 |
//!
//! **Is-installed** is answered by the runtime, not by this handler: the handler does not
//! implement it, and for a step with `installedCriteria` whose handler does not, the
//! runtime answers from its own records of the criteria it has seen installed, as ADU's
//! apt handler answers from the installedcriteria file its apply appends to
//! (`/var/lib/adu/installedcriteria`). So, as under ADU, a package removed or replaced
//! behind the agent's back does not make its step "not installed"; dpkg is read only for
//! backup and restore.
//!
//! ADU's handler has no backup or restore; this one undoes a failed install.
//!
//! The registration grants `run = ["/usr/bin/apt-get", "/usr/bin/dpkg-query"]`; its
//! `[config]` may add apt options and environment variables ([`config`]).
//!
//! Failures (`resultCode` 0) and their extended codes. ADU's codes, for the same failure
//! in the same action as ADU's apt handler (the first action that checks the step is
//! download, as in ADU):
//!
//! | extended code | meaning |
//! |---|---|
//! | `0x30200004` [`WRONG_FILE_COUNT`] | the step does not have exactly one payload file |
//! | `0x30200005` [`APT_MANIFEST_UNREADABLE`] | the payload file cannot be read |
//! | `0x30200007` [`MISSING_INSTALLED_CRITERIA`] | `handlerProperties.installedCriteria` is missing or empty |
//! | `0x30000068` [`BAD_APT_MANIFEST`] | the apt manifest is not JSON, or a field is missing, empty (`packages: []` included) or of the wrong type (details name it); ADU's content handlers' "bad format", which ADU also reports for every manifest its parser refuses |
//! | `0x30200100` [`PACKAGE_DOWNLOAD_FAILURE`] | apt-get could not download the packages (a package or version apt cannot find, an unreachable repository), or the manifest lists no packages; details carry apt's own error lines |
//! | `0x30200200` [`PACKAGE_INSTALL_FAILURE`] | apt-get could not install the packages (a failing maintainer script, a conflict); details carry apt-get's exit code and error lines |
//!
//! (Where ADU's parser throws past its own handler, for a manifest that is not a JSON
//! object or a package without `name`, ADU reports its steps handler's
//! `0x30400102`; here those are [`BAD_APT_MANIFEST`] too.)
//!
//! Handrail's own, where ADU has no equivalent:
//!
//! | extended code | meaning |
//! |---|---|
//! | `0x30200011` [`UNSAFE_PACKAGE_NAME`] | a package name apt would read as an option, pattern or release |
//! | `0x30200012` [`UNSAFE_PACKAGE_VERSION`] | a package version apt would read as a pattern or option |
//! | `0x30200013` [`INVALID_CONFIG`] | the registration's `config.apt_options` or `config.env` has the wrong shape |
//! | `0x30200014` [`PROGRAM_NOT_STARTED`] | the host could not start apt-get or dpkg-query |
//! | `0x30200015` [`UNEXPECTED_PACKAGE_STATUS`] | dpkg-query answered something unreadable |
//! | `0x30200016` [`BACKUP_NOT_WRITTEN`] | the backup could not be written to the work folder |
//! | `0x30200017` [`BACKUP_UNREADABLE`] | the backup in the work folder cannot be read |
//! | `0x30201000` + n | in backup and restore, apt-get or dpkg-query exited with code n (`+ 128 + s` when killed by signal s); details carry apt's own last error lines |
//! | `0x34800019` | apt-get or dpkg-query is not granted by the registration |
//! | `0x34800011`, `0x34800013` | apt ran past the time limit, or the action was cancelled (`resultCode` -1) |

pub mod apt;
pub mod backup;
pub mod config;
pub mod dpkg;
pub mod manifest;
pub mod run;

use std::collections::HashMap;
use std::path::Path;

use handrail_sdk::codes::{self, COMPONENT_APT, COMPONENT_COMMON, FACILITY_STEP_HANDLER};
use handrail_sdk::{Action, ExtendedCode, Handler, ResultFile, StepContext, extended, host};

use backup::{BACKUP_FILE, Backup, Before, Prior, RestorePlan};
use config::AptConfig;
use manifest::{AptManifest, ProblemKind};
use run::OnFailure;

/// The handler id.
pub const ID: &str = "microsoft/apt:1";

/// The apt manifest is not JSON, or a field is missing, empty or of the wrong type
/// (ADU's `ADUC_ERC_UPDATE_CONTENT_HANDLER_PARSE_BAD_FORMAT`, facility 3, component 0).
pub const BAD_APT_MANIFEST: ExtendedCode =
    ExtendedCode::new(FACILITY_STEP_HANDLER, COMPONENT_COMMON, 0x68);
/// The step does not have exactly one payload file (ADU's
/// `PACKAGE_PREPARE_FAILURE_WRONG_FILECOUNT`).
pub const WRONG_FILE_COUNT: ExtendedCode = extended(COMPONENT_APT, 0x4);
/// The apt manifest file cannot be read (ADU's `GET_FILEENTITY_FAILURE`).
pub const APT_MANIFEST_UNREADABLE: ExtendedCode = extended(COMPONENT_APT, 0x5);
/// `handlerProperties.installedCriteria` is missing or empty (ADU's
/// `MISSING_INSTALLED_CRITERIA`).
pub const MISSING_INSTALLED_CRITERIA: ExtendedCode = extended(COMPONENT_APT, 0x7);
/// apt-get could not download the packages, or the manifest lists none (ADU's
/// `PACKAGE_DOWNLOAD_FAILURE`).
pub const PACKAGE_DOWNLOAD_FAILURE: ExtendedCode = extended(COMPONENT_APT, 0x100);
/// apt-get could not install the packages (ADU's `PACKAGE_INSTALL_FAILURE`).
pub const PACKAGE_INSTALL_FAILURE: ExtendedCode = extended(COMPONENT_APT, 0x200);
/// A package name apt would read as something else than a package name.
pub const UNSAFE_PACKAGE_NAME: ExtendedCode = extended(COMPONENT_APT, 0x11);
/// A package version apt would read as something else than a version.
pub const UNSAFE_PACKAGE_VERSION: ExtendedCode = extended(COMPONENT_APT, 0x12);
/// The registration's `config.apt_options` or `config.env` has the wrong shape.
pub const INVALID_CONFIG: ExtendedCode = extended(COMPONENT_APT, 0x13);
/// The host could not start apt-get or dpkg-query.
pub const PROGRAM_NOT_STARTED: ExtendedCode = extended(COMPONENT_APT, 0x14);
/// dpkg-query's answer could not be read.
pub const UNEXPECTED_PACKAGE_STATUS: ExtendedCode = extended(COMPONENT_APT, 0x15);
/// The backup could not be written to the work folder.
pub const BACKUP_NOT_WRITTEN: ExtendedCode = extended(COMPONENT_APT, 0x16);
/// The backup in the work folder cannot be read.
pub const BACKUP_UNREADABLE: ExtendedCode = extended(COMPONENT_APT, 0x17);

/// The `microsoft/apt:1` handler.
pub struct AptHandler;

impl Handler for AptHandler {
    const ID: &'static str = ID;
    // No is-installed: the runtime answers it from its records of installed criteria,
    // as ADU's apt handler answers it from its installedcriteria file.
    const ACTIONS: &'static [Action] = &[
        Action::Download,
        Action::Backup,
        Action::Install,
        Action::Apply,
        Action::Restore,
        Action::Cancel,
    ];

    fn download(step: &StepContext) -> ResultFile {
        host::cancelled().unwrap_or_else(|| settle(download(step)))
    }

    fn backup(step: &StepContext) -> ResultFile {
        host::cancelled().unwrap_or_else(|| settle(backup(step)))
    }

    fn install(step: &StepContext) -> ResultFile {
        host::cancelled().unwrap_or_else(|| settle(install(step)))
    }

    fn apply(step: &StepContext) -> ResultFile {
        host::cancelled().unwrap_or_else(|| settle(apply(step)))
    }

    fn restore(step: &StepContext) -> ResultFile {
        settle(restore(step))
    }

    fn cancel(_step: &StepContext) -> ResultFile {
        ResultFile::new(
            codes::CANCEL_UNABLE_TO_CANCEL,
            "apt cannot be interrupted safely: stopping apt-get or dpkg half-way can leave packages unpacked but not configured",
        )
    }
}

handrail_sdk::export!(AptHandler);

/// An action's result, whether it ran to its end or stopped at a failure.
fn settle(result: Result<ResultFile, ResultFile>) -> ResultFile {
    result.unwrap_or_else(|failure| failure)
}

/// The checked inputs of a step: its apt manifest and the registration's apt settings.
struct Inputs {
    manifest: AptManifest,
    config: AptConfig,
}

/// Checks the step in ADU's order (file count, installed criteria, then the manifest)
/// and reads its apt manifest.
fn inputs(step: &StepContext) -> Result<Inputs, ResultFile> {
    let [file] = step.files.as_slice() else {
        let names: Vec<&str> = step.files.iter().map(|f| f.name.as_str()).collect();
        return Err(ResultFile::failure(
            WRONG_FILE_COUNT,
            format!(
                "an apt step has exactly one payload file, its apt manifest; this one has {} ({})",
                names.len(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        ));
    };
    let criteria = step
        .installed_criteria
        .as_deref()
        .or_else(|| step.property_str("installedCriteria"))
        .unwrap_or("");
    if criteria.trim().is_empty() {
        return Err(ResultFile::failure(
            MISSING_INSTALLED_CRITERIA,
            "the step's installedCriteria (handlerProperties.installedCriteria) is missing or empty: an apt step must say what it installs",
        ));
    }
    let bytes = std::fs::read(&file.path).map_err(|e| {
        ResultFile::failure(
            APT_MANIFEST_UNREADABLE,
            format!("cannot read the apt manifest `{}`: {e}", file.name),
        )
    })?;
    let manifest = AptManifest::parse(&bytes).map_err(|problem| {
        let code = match problem.kind {
            ProblemKind::Malformed => BAD_APT_MANIFEST,
            ProblemKind::UnsafeName => UNSAFE_PACKAGE_NAME,
            ProblemKind::UnsafeVersion => UNSAFE_PACKAGE_VERSION,
        };
        ResultFile::failure(code, format!("apt manifest `{}`: {problem}", file.name))
    })?;
    Ok(Inputs {
        manifest,
        config: config(step)?,
    })
}

fn config(step: &StepContext) -> Result<AptConfig, ResultFile> {
    AptConfig::from_config(&step.handler_config)
        .map_err(|why| ResultFile::failure(INVALID_CONFIG, format!("registration of {ID}: {why}")))
}

/// The manifest's packages as apt-get arguments; `code` when it lists none (ADU's
/// adu-shell refuses to run apt-get without packages).
fn specs(
    manifest: &AptManifest,
    file: &str,
    code: ExtendedCode,
) -> Result<Vec<String>, ResultFile> {
    let specs = manifest.specs();
    if specs.is_empty() {
        return Err(ResultFile::failure(
            code,
            format!(
                "apt manifest `{file}` ({} {}) has no `packages`: there is nothing to give apt-get",
                manifest.name, manifest.version
            ),
        ));
    }
    Ok(specs)
}

/// The name of the step's apt manifest, for messages (inputs() has checked there is one).
fn manifest_name(step: &StepContext) -> &str {
    step.files.first().map_or("", |f| f.name.as_str())
}

fn download(step: &StepContext) -> Result<ResultFile, ResultFile> {
    let Inputs { manifest, config } = inputs(step)?;
    let specs = specs(&manifest, manifest_name(step), PACKAGE_DOWNLOAD_FAILURE)?;
    host::progress(0, 2);
    if let Err(failure) = run::apt_get(apt::update(&config.options), &config, OnFailure::ExitCode) {
        if failure.result_code == codes::FAILURE_CANCELLED {
            return Err(failure);
        }
        host::warn(&format!(
            "the package lists could not be refreshed; downloading with the lists the device has: {}",
            failure.result_details
        ));
    }
    host::progress(1, 2);
    run::apt_get(
        apt::download(&config.options, &specs),
        &config,
        OnFailure::Code(PACKAGE_DOWNLOAD_FAILURE),
    )?;
    host::progress(2, 2);
    Ok(ResultFile::new(
        codes::DOWNLOAD_SUCCESS,
        format!("downloaded {}", specs.join(" ")),
    ))
}

fn backup(step: &StepContext) -> Result<ResultFile, ResultFile> {
    let Inputs { manifest, config } = inputs(step)?;
    let mut packages = Vec::with_capacity(manifest.packages.len());
    for package in &manifest.packages {
        let states = run::package_states(&package.name, &config)?;
        let before = match dpkg::installed_version(&states) {
            Some(version) => Before::Installed {
                version: version.to_owned(),
            },
            None => Before::Absent,
        };
        packages.push(Prior {
            name: package.name.clone(),
            before,
        });
    }
    let backup = Backup { packages };
    write_backup(Path::new(&step.work_folder), &backup)?;
    let summary: Vec<String> = backup
        .packages
        .iter()
        .map(|p| match &p.before {
            Before::Installed { version } => format!("{} {version}", p.name),
            Before::Absent => format!("{} absent", p.name),
        })
        .collect();
    Ok(ResultFile::new(
        codes::BACKUP_SUCCESS,
        format!("recorded what was installed before: {}", summary.join(", ")),
    ))
}

/// Writes the backup beside a temporary name first, so a crash never leaves half a file.
fn write_backup(work: &Path, backup: &Backup) -> Result<(), ResultFile> {
    let path = work.join(BACKUP_FILE);
    let temporary = work.join(format!("{BACKUP_FILE}.new"));
    std::fs::write(&temporary, backup.to_json())
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| {
            ResultFile::failure(
                BACKUP_NOT_WRITTEN,
                format!("cannot write {}: {e}", path.display()),
            )
        })
}

fn install(step: &StepContext) -> Result<ResultFile, ResultFile> {
    let Inputs { manifest, config } = inputs(step)?;
    let specs = specs(&manifest, manifest_name(step), PACKAGE_INSTALL_FAILURE)?;
    host::progress(0, 1);
    run::apt_get(
        apt::install(&config.options, &specs),
        &config,
        OnFailure::Code(PACKAGE_INSTALL_FAILURE),
    )?;
    host::progress(1, 1);
    Ok(ResultFile::new(
        codes::INSTALL_SUCCESS,
        format!("installed {}", specs.join(" ")),
    ))
}

fn apply(step: &StepContext) -> Result<ResultFile, ResultFile> {
    let Inputs { manifest, .. } = inputs(step)?;
    Ok(if manifest.agent_restart_required {
        ResultFile::new(
            codes::APPLY_REQUIRED_IMMEDIATE_AGENT_RESTART,
            format!(
                "the packages of {} {} are installed; the apt manifest asks for an agent restart",
                manifest.name, manifest.version
            ),
        )
    } else {
        ResultFile::new(
            codes::APPLY_SUCCESS,
            format!(
                "the packages of {} {} are installed",
                manifest.name, manifest.version
            ),
        )
    })
}

fn restore(step: &StepContext) -> Result<ResultFile, ResultFile> {
    let path = Path::new(&step.work_folder).join(BACKUP_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ResultFile::new(
                codes::RESTORE_SUCCESS_UNSUPPORTED,
                "no backup was taken for this step; nothing to restore",
            ));
        }
        Err(e) => {
            return Err(ResultFile::failure(
                BACKUP_UNREADABLE,
                format!("cannot read {}: {e}", path.display()),
            ));
        }
    };
    let backup = Backup::parse(&bytes).map_err(|why| {
        ResultFile::failure(
            BACKUP_UNREADABLE,
            format!("{} is not an apt backup: {why}", path.display()),
        )
    })?;
    let config = config(step)?;
    let mut now = HashMap::new();
    for prior in &backup.packages {
        let states = run::package_states(&prior.name, &config)?;
        let installed = dpkg::installed_version(&states).map(str::to_owned);
        let present = states.iter().any(dpkg::PackageState::is_present);
        now.insert(prior.name.as_str(), (installed, present));
    }
    let plan = RestorePlan::new(&backup, |name| {
        now.get(name).cloned().unwrap_or((None, false))
    });
    if plan.is_empty() {
        return Ok(ResultFile::new(
            codes::RESTORE_SUCCESS,
            "every package is already as it was before the step",
        ));
    }
    // Remove first: a package left half-configured by the failed install would make any
    // other install try (and fail) to configure it again.
    let mut done = Vec::new();
    if !plan.remove.is_empty() {
        run::apt_get(
            apt::remove(&config.options, &plan.remove),
            &config,
            OnFailure::ExitCode,
        )?;
        done.push(format!("removed {}", plan.remove.join(" ")));
    }
    if !plan.reinstall.is_empty() {
        run::apt_get(
            apt::install(&config.options, &plan.reinstall),
            &config,
            OnFailure::ExitCode,
        )?;
        done.push(format!("reinstalled {}", plan.reinstall.join(" ")));
    }
    Ok(ResultFile::new(codes::RESTORE_SUCCESS, done.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_adu() {
        assert_eq!(WRONG_FILE_COUNT.value(), 0x3020_0004);
        assert_eq!(APT_MANIFEST_UNREADABLE.value(), 0x3020_0005);
        assert_eq!(MISSING_INSTALLED_CRITERIA.value(), 0x3020_0007);
        assert_eq!(PACKAGE_DOWNLOAD_FAILURE.value(), 0x3020_0100);
        assert_eq!(PACKAGE_INSTALL_FAILURE.value(), 0x3020_0200);
        assert_eq!(BAD_APT_MANIFEST.value(), 0x3000_0068);
    }

    #[test]
    fn is_installed_is_left_to_the_runtime() {
        assert!(!AptHandler::ACTIONS.contains(&Action::IsInstalled));
        assert_eq!(AptHandler::ACTIONS.len(), Action::ALL.len() - 1);
    }
}
