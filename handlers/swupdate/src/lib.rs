//! `microsoft/swupdate:2` and `microsoft/swupdate:1`: install a `.swu` image into the
//! device's inactive A/B slot with the real `swupdate`, switch the boot slot, ask for a
//! reboot, and after it verify that the new version is what runs — or, when the
//! bootloader fell back to the old slot, report the update failed and roll the boot
//! environment back.
//!
//! This crate is the library; the components are built from `v2/` ([`SwupdateHandler`])
//! and `v1/` ([`SwupdateV1Handler`]), one export each. The two ids differ only in how a
//! step names its image (see [`Version`]); everything below holds for both.
//!
//! The slots, the boot environment file and the version file come from the
//! registration's `[config]` ([`config`]); the boot environment is a `key=value` file
//! ([`bootenv`]) with the slot to boot (`boot_slot=a`), an upgrade-available flag and
//! swupdate's `ustate`. The actions, in the engine's order:
//!
//! | action | what it does | success |
//! |---|---|---|
//! | is-installed | see below | 900, else 901 |
//! | download | the step's `swuFileName` must be one of its payload files; `swupdate -c` checks it (signature, hashes, hardware compatibility) for the inactive slot's selection without writing | 500 |
//! | backup | records the boot slot in `swupdate-backup.json` in the work folder | 1000 |
//! | install | `swupdate -v -i <swu> -e <inactive slot's selection> [-k key] [-H rev]` | 600 |
//! | apply | switches `boot_slot` to the slot just written and marks the update unconfirmed (`upgrade_available=1`, `ustate=1`, and which version and slots it concerns), replacing the file atomically | 705 (immediate reboot) |
//! | restore | boots the recorded slot again and clears the unconfirmed update | 1100; 1101 without a backup |
//! | cancel | the same as restore when apply had switched the slot | 800 |
//!
//! **Is-installed** is also the verification after the reboot. With no unconfirmed
//! update it compares the version file with `installedCriteria` (900 when equal). With
//! one (`upgrade_available=1` and this handler's record of it):
//! - the boot environment names the slot apply switched to and the version file says
//!   the new version: the update is confirmed (`upgrade_available=0`, `ustate=0`) → 900;
//! - the boot environment names the old slot (the bootloader fell back): the update is
//!   rolled back (`boot_slot` = the old slot, `upgrade_available=0`, `ustate=3`) and
//!   reported as [`FAILED_AFTER_REBOOT`], once — a later is-installed sees no unconfirmed
//!   update and answers from the version file, so nothing retries the update by itself;
//! - the new slot runs but with another version: rolled back the same way, reported as
//!   [`WRONG_VERSION_AFTER_REBOOT`];
//! - the version file still says what ran when apply switched the slot: the device has
//!   not rebooted yet, so nothing can be verified — 901, and nothing changes (the update
//!   stays switched in, waiting for the reboot). The engine never asks before the
//!   reboot; an operator who resumes without one gets the step failed as not running
//!   after its reboot, and its restore.
//!
//! The running slot is the one the boot environment names: a bootloader that falls
//! back rewrites it, as U-Boot's `altbootcmd` does with `bootcount`.
//!
//! **ADU's script-driven form.** ADU's `microsoft/swupdate:2` runs a script
//! (`scriptFileName`, with `arguments`) that calls swupdate. A `:2` step that names a
//! `scriptFileName` runs that way here too ([`script`]): the script, given ADU's command
//! line, does each action, and none of the above (slots, boot environment, verification)
//! applies. A step without `scriptFileName` gets the built-in flow above; like ADU's
//! `:1`, one without `swuFileName` uses its only `.swu` payload file.
//!
//! ADU's `microsoft/swupdate:1` takes the step's one payload file as the image and reads
//! no handler property but `installedCriteria`; so does [`SwupdateV1Handler`], which
//! refuses a step with another number of payload files ([`WRONG_FILE_COUNT`], as ADU's
//! download does). Where ADU's `:1` compares the version file only, this one also
//! verifies after the reboot as above, so a fallback to the old slot is reported as
//! failed instead of leaving the update switched in; and its backup records the boot
//! slot, which restore and cancel switch back to.
//!
//! The registration grants `run = ["/usr/bin/swupdate"]` (and, for `:2`'s scripts, the
//! interpreters `/bin/bash` and `/bin/sh`), `write` for the folder of
//! `boot_env` and `read` for the folder of `version_file` (for a built-in one, the
//! device configuration's `[handler_grants."microsoft/swupdate:2"]`, or `:1`, adds the
//! folders).
//!
//! Failures (`resultCode` 0) of the built-in flow and their extended codes (facility 3,
//! component 1 = swupdate), all Handrail's own (ADU's swupdate handlers have no such
//! flow); the script-driven form's, ADU's codes, are listed in [`script`]:
//!
//! | extended code | meaning |
//! |---|---|
//! | `0x30100010` [`MISSING_INSTALLED_CRITERIA`] | the step has no `installedCriteria` |
//! | `0x30100011` [`MISSING_SWU_FILE_NAME`] | no `swuFileName`, and not exactly one `.swu` payload file |
//! | `0x30100012` [`SWU_NOT_IN_PAYLOAD`] | `swuFileName` is not one of the step's payload files |
//! | `0x30100013` [`INVALID_CONFIG`] | the registration's `[config]` is missing a setting or has a wrong one |
//! | `0x30100014` [`PROGRAM_NOT_STARTED`] | the host could not start swupdate |
//! | `0x30100015` [`BOOT_ENV_UNREADABLE`] | the boot environment cannot be read, or names no known slot |
//! | `0x30100016` [`BOOT_ENV_NOT_WRITTEN`] | the boot environment cannot be replaced |
//! | `0x30100017` [`VERSION_FILE_UNREADABLE`] | the version file exists but cannot be read |
//! | `0x30100018` [`FAILED_AFTER_REBOOT`] | the device came back on the old slot; the update was rolled back |
//! | `0x30100019` [`WRONG_VERSION_AFTER_REBOOT`] | the new slot runs another version than `installedCriteria`; rolled back |
//! | `0x3010001b` [`BACKUP_NOT_WRITTEN`] | the backup could not be written to the work folder |
//! | `0x3010001c` [`BACKUP_UNREADABLE`] | the backup in the work folder cannot be read |
//! | `0x3010001d` [`WRONG_FILE_COUNT`] | (`:1`) the step does not have exactly one payload file |
//! | `0x30101000` + n | swupdate exited with code n (`+ 128 + s` when killed by signal s); details carry swupdate's own error lines |
//! | `0x34800019` | swupdate is not granted by the registration |

pub mod bootenv;
pub mod config;
pub mod run;
pub mod script;

use std::path::Path;

use handrail_sdk::codes::{self, COMPONENT_SWUPDATE};
use handrail_sdk::{Action, ExtendedCode, Handler, ResultFile, StepContext, extended, host};

use bootenv::BootEnv;
use config::SwupdateConfig;
use run::Mode;

/// The handler id of [`SwupdateHandler`].
pub const ID: &str = "microsoft/swupdate:2";

/// The handler id of [`SwupdateV1Handler`].
pub const ID_V1: &str = "microsoft/swupdate:1";

/// The step has no `installedCriteria`.
pub const MISSING_INSTALLED_CRITERIA: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x10);
/// The step has no `swuFileName`, and not exactly one `.swu` payload file.
pub const MISSING_SWU_FILE_NAME: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x11);
/// `swuFileName` is not one of the step's payload files.
pub const SWU_NOT_IN_PAYLOAD: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x12);
/// The registration's `[config]` lacks a setting or has a wrong one.
pub const INVALID_CONFIG: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x13);
/// The host could not start swupdate.
pub const PROGRAM_NOT_STARTED: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x14);
/// The boot environment cannot be read, or names no known slot.
pub const BOOT_ENV_UNREADABLE: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x15);
/// The boot environment cannot be replaced.
pub const BOOT_ENV_NOT_WRITTEN: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x16);
/// The version file exists but cannot be read.
pub const VERSION_FILE_UNREADABLE: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x17);
/// After the reboot the device came back on the old slot; the update was rolled back.
pub const FAILED_AFTER_REBOOT: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x18);
/// After the reboot the new slot runs another version; the update was rolled back.
pub const WRONG_VERSION_AFTER_REBOOT: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x19);
/// The backup could not be written to the work folder.
pub const BACKUP_NOT_WRITTEN: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x1b);
/// The backup in the work folder cannot be read.
pub const BACKUP_UNREADABLE: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x1c);
/// (`microsoft/swupdate:1`) The step does not have exactly one payload file.
pub const WRONG_FILE_COUNT: ExtendedCode = extended(COMPONENT_SWUPDATE, 0x1d);

/// The work-folder file holding the boot slot recorded by backup.
pub const BACKUP_FILE: &str = "swupdate-backup.json";

/// Boot environment variables this handler owns: the `installedCriteria` of the
/// unconfirmed update, and the slots it switched from and to.
pub const PENDING_VERSION: &str = "handrail_pending_version";
/// See [`PENDING_VERSION`].
pub const PREVIOUS_SLOT: &str = "handrail_previous_slot";
/// See [`PENDING_VERSION`].
pub const TARGET_SLOT: &str = "handrail_target_slot";
/// See [`PENDING_VERSION`]: the version that ran when apply switched the slot.
pub const PREVIOUS_VERSION: &str = "handrail_previous_version";

/// Every boot environment variable of an unconfirmed update this handler records.
const PENDING_UPDATE: [&str; 4] = [
    PENDING_VERSION,
    PREVIOUS_SLOT,
    TARGET_SLOT,
    PREVIOUS_VERSION,
];
/// swupdate's update state variable: 0 ok, 1 installed (testing), 3 failed.
pub const USTATE: &str = "ustate";

/// Which of the two handler ids an action runs as. They differ in how a step names its
/// image: `:2` by `swuFileName` (else its only `.swu`), `:1` as its one payload file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `microsoft/swupdate:1`.
    V1,
    /// `microsoft/swupdate:2`.
    V2,
}

impl Version {
    /// The handler id.
    pub const fn id(self) -> &'static str {
        match self {
            Version::V1 => ID_V1,
            Version::V2 => ID,
        }
    }
}

/// Implements [`Handler`] for `$handler` as `$version`: every action, each the same
/// function for both versions.
macro_rules! swupdate_handler {
    ($handler:ty, $version:expr) => {
        impl Handler for $handler {
            const ID: &'static str = $version.id();
            const ACTIONS: &'static [Action] = &Action::ALL;

            fn is_installed(step: &StepContext) -> ResultFile {
                act($version, step, Action::IsInstalled, is_installed)
            }

            fn download(step: &StepContext) -> ResultFile {
                act($version, step, Action::Download, download)
            }

            fn backup(step: &StepContext) -> ResultFile {
                act($version, step, Action::Backup, backup)
            }

            fn install(step: &StepContext) -> ResultFile {
                act($version, step, Action::Install, install)
            }

            fn apply(step: &StepContext) -> ResultFile {
                act($version, step, Action::Apply, apply)
            }

            fn restore(step: &StepContext) -> ResultFile {
                act($version, step, Action::Restore, restore)
            }

            fn cancel(step: &StepContext) -> ResultFile {
                act($version, step, Action::Cancel, cancel)
            }
        }
    };
}

/// The `microsoft/swupdate:2` handler.
pub struct SwupdateHandler;

swupdate_handler!(SwupdateHandler, Version::V2);

/// The `microsoft/swupdate:1` handler: ADU's first swupdate step shape (the step's one
/// payload file is the image), with the same slots, switch and verification as `:2`.
pub struct SwupdateV1Handler;

swupdate_handler!(SwupdateV1Handler, Version::V1);

/// One action of the built-in flow: its result, or the failure that stopped it.
type Flow = fn(Version, &StepContext) -> Result<ResultFile, ResultFile>;

/// Runs `action` in the form the step asks for: ADU's script-driven form (`:2` with a
/// `scriptFileName`), else the built-in flow's `flow`.
fn act(version: Version, step: &StepContext, action: Action, flow: Flow) -> ResultFile {
    if version == Version::V2 && script::is_script_driven(step) {
        script::perform(step, action)
    } else {
        flow(version, step).unwrap_or_else(|failure| failure)
    }
}

fn criteria(step: &StepContext) -> Result<&str, ResultFile> {
    let criteria = step
        .installed_criteria
        .as_deref()
        .or_else(|| step.property_str("installedCriteria"))
        .unwrap_or("")
        .trim();
    if criteria.is_empty() {
        return Err(ResultFile::failure(
            MISSING_INSTALLED_CRITERIA,
            "handlerProperties.installedCriteria is missing: a swupdate step must say which version it installs",
        ));
    }
    Ok(criteria)
}

fn config(version: Version, step: &StepContext) -> Result<SwupdateConfig, ResultFile> {
    SwupdateConfig::from_config(&step.handler_config).map_err(|why| {
        ResultFile::failure(
            INVALID_CONFIG,
            format!("registration of {}: {why}", version.id()),
        )
    })
}

/// The names of the step's payload files, for messages: `a.swu, b.sh`, or `none`.
fn payload_names(step: &StepContext) -> String {
    let names: Vec<&str> = step.files.iter().map(|f| f.name.as_str()).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// The sandbox path of the step's `.swu`.
fn swu_file(version: Version, step: &StepContext) -> Result<String, ResultFile> {
    let names = || payload_names(step);
    if version == Version::V1 {
        return match step.files.as_slice() {
            [only] => Ok(only.path.clone()),
            files => Err(ResultFile::failure(
                WRONG_FILE_COUNT,
                format!(
                    "{ID_V1} takes exactly one payload file, the image; the step has {} ({})",
                    files.len(),
                    names()
                ),
            )),
        };
    }
    match step.property_str("swuFileName") {
        Some(name) => step.file(name).map(|f| f.path.clone()).ok_or_else(|| {
            ResultFile::failure(
                SWU_NOT_IN_PAYLOAD,
                format!(
                    "handlerProperties.swuFileName `{name}` is not one of the step's payload files ({})",
                    names()
                ),
            )
        }),
        None => {
            let swus: Vec<_> = step
                .files
                .iter()
                .filter(|f| f.name.ends_with(".swu"))
                .collect();
            match swus.as_slice() {
                [only] => Ok(only.path.clone()),
                _ => Err(ResultFile::failure(
                    MISSING_SWU_FILE_NAME,
                    format!(
                        "handlerProperties.swuFileName is missing and the step does not have exactly one .swu payload file ({})",
                        names()
                    ),
                )),
            }
        }
    }
}

/// The boot environment and the slot it boots.
fn boot_env(config: &SwupdateConfig) -> Result<(BootEnv, &'static str), ResultFile> {
    let env = BootEnv::load(Path::new(&config.boot_env)).map_err(|e| {
        ResultFile::failure(
            BOOT_ENV_UNREADABLE,
            format!("cannot read the boot environment {}: {e}", config.boot_env),
        )
    })?;
    let slot = env.get(&config.slot_variable).unwrap_or("");
    let slot = config::slot(slot).ok_or_else(|| {
        ResultFile::failure(
            BOOT_ENV_UNREADABLE,
            format!(
                "the boot environment {} sets {}=`{slot}`, not a or b",
                config.boot_env, config.slot_variable
            ),
        )
    })?;
    Ok((env, slot))
}

fn store(env: &BootEnv, config: &SwupdateConfig) -> Result<(), ResultFile> {
    env.store(Path::new(&config.boot_env)).map_err(|e| {
        ResultFile::failure(
            BOOT_ENV_NOT_WRITTEN,
            format!(
                "cannot replace the boot environment {}: {e}; the registration must grant write access to its folder",
                config.boot_env
            ),
        )
    })
}

/// The running system's version; `None` when the version file does not exist.
fn running_version(config: &SwupdateConfig) -> Result<Option<String>, ResultFile> {
    match std::fs::read_to_string(&config.version_file) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ResultFile::failure(
            VERSION_FILE_UNREADABLE,
            format!("cannot read the version file {}: {e}", config.version_file),
        )),
    }
}

/// Clears the unconfirmed update and boots `slot`, marking the update failed.
fn roll_back(env: &mut BootEnv, config: &SwupdateConfig, slot: &str) {
    env.set(&config.slot_variable, slot);
    env.set(&config.upgrade_variable, "0");
    env.set(USTATE, "3");
    for key in PENDING_UPDATE {
        env.remove(key);
    }
}

fn is_installed(version: Version, step: &StepContext) -> Result<ResultFile, ResultFile> {
    let criteria = criteria(step)?;
    let config = config(version, step)?;
    let (mut env, running_slot) = boot_env(&config)?;
    let version = running_version(&config)?;
    let shown = version.as_deref().unwrap_or("none");
    let unconfirmed = env.get(&config.upgrade_variable) == Some("1");
    let pending = env.get(PENDING_VERSION).map(str::to_owned);
    if let (true, Some(pending)) = (unconfirmed, pending) {
        let target = env.get(TARGET_SLOT).unwrap_or("").to_owned();
        let previous = env.get(PREVIOUS_SLOT).unwrap_or("").to_owned();
        let before_the_reboot = running_slot == target
            && version.as_deref() != Some(pending.as_str())
            && env.get(PREVIOUS_VERSION) == Some(version.as_deref().unwrap_or(""));
        if before_the_reboot {
            let details = format!(
                "{pending} is in slot {target}, switched to for the next boot; the device has not rebooted into it yet and still runs {shown}"
            );
            let code = if version.as_deref() == Some(criteria) {
                codes::IS_INSTALLED_INSTALLED
            } else {
                codes::IS_INSTALLED_NOT_INSTALLED
            };
            return Ok(ResultFile::new(code, details));
        }
        let verdict = if running_slot != target {
            Some((
                FAILED_AFTER_REBOOT,
                format!(
                    "the device came back on slot {running_slot} (version {shown}), not on slot {target} with {pending}: the bootloader fell back"
                ),
            ))
        } else if version.as_deref() != Some(pending.as_str()) {
            Some((
                WRONG_VERSION_AFTER_REBOOT,
                format!("slot {target} runs version {shown}, not {pending}"),
            ))
        } else {
            None
        };
        match verdict {
            None => {
                env.set(&config.upgrade_variable, "0");
                env.set(USTATE, "0");
                for key in PENDING_UPDATE {
                    env.remove(key);
                }
                store(&env, &config)?;
                host::info(&format!("confirmed {pending} running from slot {target}"));
            }
            Some((code, why)) => {
                let back = config::slot(&previous).unwrap_or(running_slot);
                roll_back(&mut env, &config, back);
                store(&env, &config)?;
                let message = format!(
                    "update {pending} failed after the reboot: {why}; rolled back: {}={back}, {}=0, {USTATE}=3",
                    config.slot_variable, config.upgrade_variable
                );
                if pending == criteria {
                    return Err(ResultFile::failure(code, message));
                }
                host::warn(&message);
            }
        }
    }
    Ok(if version.as_deref() == Some(criteria) {
        ResultFile::new(
            codes::IS_INSTALLED_INSTALLED,
            format!("version {criteria} runs from slot {running_slot}"),
        )
    } else {
        ResultFile::new(
            codes::IS_INSTALLED_NOT_INSTALLED,
            format!("slot {running_slot} runs version {shown}, not {criteria}"),
        )
    })
}

/// The inactive slot and the selection that writes it.
fn inactive(config: &SwupdateConfig) -> Result<(&'static str, String), ResultFile> {
    let (_, running) = boot_env(config)?;
    let target = config.other_slot(running).unwrap_or("b");
    Ok((target, config.selection(target).to_owned()))
}

fn download(version: Version, step: &StepContext) -> Result<ResultFile, ResultFile> {
    criteria(step)?;
    let swu = swu_file(version, step)?;
    let config = config(version, step)?;
    let (target, selection) = inactive(&config)?;
    run::swupdate(
        version.id(),
        &step.work_folder,
        &config,
        &swu,
        &selection,
        Mode::Check,
    )?;
    Ok(ResultFile::new(
        codes::DOWNLOAD_SUCCESS,
        format!("swupdate checked {swu} for slot {target} ({selection})"),
    ))
}

fn backup(version: Version, step: &StepContext) -> Result<ResultFile, ResultFile> {
    let config = config(version, step)?;
    let (_, slot) = boot_env(&config)?;
    let work = Path::new(&step.work_folder);
    let path = work.join(BACKUP_FILE);
    let temporary = work.join(format!("{BACKUP_FILE}.new"));
    let body = serde_json::json!({ "bootSlot": slot }).to_string();
    std::fs::write(&temporary, body)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| {
            ResultFile::failure(
                BACKUP_NOT_WRITTEN,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
    Ok(ResultFile::new(
        codes::BACKUP_SUCCESS,
        format!("recorded the boot slot: {slot}"),
    ))
}

fn install(version: Version, step: &StepContext) -> Result<ResultFile, ResultFile> {
    criteria(step)?;
    let swu = swu_file(version, step)?;
    let config = config(version, step)?;
    let (target, selection) = inactive(&config)?;
    host::info(&format!(
        "installing {swu} into slot {target} ({}) with selection {selection}",
        config.device(target)
    ));
    host::progress(0, 1);
    run::swupdate(
        version.id(),
        &step.work_folder,
        &config,
        &swu,
        &selection,
        Mode::Install,
    )?;
    host::progress(1, 1);
    Ok(ResultFile::new(
        codes::INSTALL_SUCCESS,
        format!(
            "swupdate installed {swu} into slot {target} ({})",
            config.device(target)
        ),
    ))
}

fn apply(version: Version, step: &StepContext) -> Result<ResultFile, ResultFile> {
    let criteria = criteria(step)?;
    let config = config(version, step)?;
    let (mut env, running) = boot_env(&config)?;
    // Apply run again after a crash finds its own switch already made.
    let already = env.get(PENDING_VERSION) == Some(criteria)
        && env.get(TARGET_SLOT) == Some(running)
        && env.get(&config.upgrade_variable) == Some("1");
    let (from, to) = if already {
        (env.get(PREVIOUS_SLOT).unwrap_or("").to_owned(), running)
    } else {
        let to = config.other_slot(running).unwrap_or("b");
        env.set(&config.slot_variable, to);
        env.set(&config.upgrade_variable, "1");
        env.set(USTATE, "1");
        let version = running_version(&config)?;
        env.set(PENDING_VERSION, criteria);
        env.set(PREVIOUS_SLOT, running);
        env.set(TARGET_SLOT, to);
        env.set(PREVIOUS_VERSION, version.as_deref().unwrap_or(""));
        store(&env, &config)?;
        (running.to_owned(), to)
    };
    Ok(ResultFile::new(
        codes::APPLY_REQUIRED_IMMEDIATE_REBOOT,
        format!(
            "the boot slot is switched from {from} to {to} ({}); {criteria} waits to be verified after the reboot",
            config.device(to)
        ),
    ))
}

/// Boots `slot` again when apply had switched away from it; says what it did.
fn switch_back(config: &SwupdateConfig, slot: Option<String>) -> Result<String, ResultFile> {
    let (mut env, running) = boot_env(config)?;
    let pending = env.get(PENDING_VERSION).is_some();
    let slot = slot
        .or_else(|| env.get(PREVIOUS_SLOT).map(str::to_owned))
        .unwrap_or_else(|| running.to_owned());
    if slot == running && !pending {
        return Ok(format!("the boot slot was not switched; it is {slot}"));
    }
    roll_back(&mut env, config, &slot);
    store(&env, config)?;
    Ok(format!(
        "the boot slot is {slot} again and the update is marked failed ({USTATE}=3)"
    ))
}

fn restore(version: Version, step: &StepContext) -> Result<ResultFile, ResultFile> {
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
    let slot = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("bootSlot")?.as_str().map(str::to_owned))
        .filter(|s| config::SLOT_NAMES.contains(&s.as_str()))
        .ok_or_else(|| {
            ResultFile::failure(
                BACKUP_UNREADABLE,
                format!("{} holds no boot slot", path.display()),
            )
        })?;
    let config = config(version, step)?;
    Ok(ResultFile::new(
        codes::RESTORE_SUCCESS,
        switch_back(&config, Some(slot))?,
    ))
}

fn cancel(version: Version, step: &StepContext) -> Result<ResultFile, ResultFile> {
    let config = config(version, step)?;
    Ok(ResultFile::new(
        codes::CANCEL_SUCCESS,
        switch_back(&config, None)?,
    ))
}
