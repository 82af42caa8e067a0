//! `contoso/virtual-camera:1`: an example component-aware step handler. Each call gets
//! one selected camera (`StepContext::component`, chosen by the component enumerator
//! from the child update's compatibility) and works on that camera's firmware folder,
//! the component property `path`.
//!
//! The firmware folder holds `firmware.bin` (the running firmware) and `version` (its
//! version). The step's payload is the new firmware: `handlerProperties.firmwareFileName`,
//! or the step's only payload file. `installedCriteria` (required) is the version the
//! step installs.
//!
//! | action | what it does |
//! |---|---|
//! | is-installed | 900 when the camera's `version` (else the component's `version`) equals `installedCriteria`, else 901 |
//! | download | 500: the runtime has already fetched and verified the payload |
//! | backup | keeps `firmware.bin` and `version` in `.backup/` of the folder (1000) |
//! | install | writes the payload as `firmware.new` (600) |
//! | apply | makes `firmware.new` the running `firmware.bin` and records `version` (700) |
//! | restore | puts the kept firmware and version back, or removes what the step installed when the camera had none (1100) |
//!
//! The handler sees only its sandbox and the folders its registration grants, so the
//! registration must grant the cameras' firmware folders (`capabilities.write`, e.g. the
//! folder that holds them all).

use std::fs;
use std::path::{Path, PathBuf};

use handrail_sdk::codes::{self, COMPONENT_CUSTOM};
use handrail_sdk::{Action, ExtendedCode, Handler, ResultFile, StepContext, extended, host};

/// The handler id.
pub const ID: &str = "contoso/virtual-camera:1";

/// The component property naming the camera's firmware folder.
pub const PATH_PROPERTY: &str = "path";
/// The running firmware, in the firmware folder.
pub const FIRMWARE_FILE: &str = "firmware.bin";
/// The installed firmware's version, in the firmware folder.
pub const VERSION_FILE: &str = "version";
/// Firmware installed but not yet applied.
pub const STAGED_FILE: &str = "firmware.new";
/// Where backup keeps the previous firmware and version, in the firmware folder.
pub const BACKUP_DIR: &str = ".backup";

/// The step was not given a component: the handler only runs in component-aware
/// child updates.
pub const NO_COMPONENT: ExtendedCode = extended(COMPONENT_CUSTOM, 0x10);
/// The component has no `path` property.
pub const NO_FIRMWARE_FOLDER: ExtendedCode = extended(COMPONENT_CUSTOM, 0x11);
/// The step has no firmware payload (or several and no `firmwareFileName`).
pub const NO_FIRMWARE_PAYLOAD: ExtendedCode = extended(COMPONENT_CUSTOM, 0x12);
/// The step has no `installedCriteria`.
pub const NO_INSTALLED_CRITERIA: ExtendedCode = extended(COMPONENT_CUSTOM, 0x13);
/// Reading or writing the firmware folder failed.
pub const FIRMWARE_IO: ExtendedCode = extended(COMPONENT_CUSTOM, 0x14);
/// Apply found no installed firmware to apply.
pub const NOTHING_STAGED: ExtendedCode = extended(COMPONENT_CUSTOM, 0x15);

/// The `contoso/virtual-camera:1` handler.
pub struct VirtualCamera;

impl Handler for VirtualCamera {
    const ID: &'static str = ID;
    const ACTIONS: &'static [Action] = &[
        Action::IsInstalled,
        Action::Download,
        Action::Backup,
        Action::Install,
        Action::Apply,
        Action::Restore,
    ];

    fn is_installed(step: &StepContext) -> ResultFile {
        outcome(is_installed(step))
    }

    fn download(_step: &StepContext) -> ResultFile {
        ResultFile::new(
            codes::DOWNLOAD_SUCCESS,
            "the step's payload was fetched and verified by the runtime",
        )
    }

    fn backup(step: &StepContext) -> ResultFile {
        outcome(backup(step))
    }

    fn install(step: &StepContext) -> ResultFile {
        host::cancelled().unwrap_or_else(|| outcome(install(step)))
    }

    fn apply(step: &StepContext) -> ResultFile {
        host::cancelled().unwrap_or_else(|| outcome(apply(step)))
    }

    fn restore(step: &StepContext) -> ResultFile {
        outcome(restore(step))
    }
}

handrail_sdk::export!(VirtualCamera);

/// An action's failure: its extended code and what went wrong.
type Failure = (ExtendedCode, String);

fn outcome(result: Result<ResultFile, Failure>) -> ResultFile {
    result.unwrap_or_else(|(code, details)| ResultFile::failure(code, details))
}

/// The selected camera's name and firmware folder.
fn camera(step: &StepContext) -> Result<(&str, PathBuf), Failure> {
    let component = step.component.as_ref().ok_or_else(|| {
        (
            NO_COMPONENT,
            format!("{ID} needs a selected component: use it in a component-aware child update"),
        )
    })?;
    let path = component.property(PATH_PROPERTY).ok_or_else(|| {
        (
            NO_FIRMWARE_FOLDER,
            format!(
                "component `{}` has no `{PATH_PROPERTY}` property naming its firmware folder",
                component.id
            ),
        )
    })?;
    Ok((&component.name, PathBuf::from(path)))
}

fn criteria(step: &StepContext) -> Result<&str, Failure> {
    step.installed_criteria.as_deref().ok_or_else(|| {
        (
            NO_INSTALLED_CRITERIA,
            "the step has no installedCriteria (the firmware version it installs)".into(),
        )
    })
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Failure {
    (
        FIRMWARE_IO,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// The camera's installed version: its `version` file, else the component's version.
fn installed_version(step: &StepContext, folder: &Path) -> Result<Option<String>, Failure> {
    let file = folder.join(VERSION_FILE);
    match fs::read_to_string(&file) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(step.component.as_ref().and_then(|c| c.version.clone()))
        }
        Err(e) => Err(io("read", &file, e)),
    }
}

fn is_installed(step: &StepContext) -> Result<ResultFile, Failure> {
    let (name, folder) = camera(step)?;
    let wanted = criteria(step)?;
    let have = installed_version(step, &folder)?;
    Ok(if have.as_deref() == Some(wanted) {
        ResultFile::new(
            codes::IS_INSTALLED_INSTALLED,
            format!("{name} runs firmware {wanted}"),
        )
    } else {
        ResultFile::new(
            codes::IS_INSTALLED_NOT_INSTALLED,
            format!(
                "{name} runs firmware {}, not {wanted}",
                have.as_deref().unwrap_or("(unknown)")
            ),
        )
    })
}

/// The step's firmware payload, as the handler opens it.
fn firmware_payload(step: &StepContext) -> Result<&str, Failure> {
    let named = step.property_str("firmwareFileName");
    let file = match named {
        Some(name) => step.file(name),
        None if step.files.len() == 1 => step.files.first(),
        None => None,
    };
    file.map(|f| f.path.as_str()).ok_or_else(|| {
        let why = match named {
            Some(name) => format!(
                "`firmwareFileName` names `{name}`, which is not a payload file of the step"
            ),
            None => format!(
                "the step has {} payload files; name the firmware with `firmwareFileName`",
                step.files.len()
            ),
        };
        (NO_FIRMWARE_PAYLOAD, why)
    })
}

fn backup(step: &StepContext) -> Result<ResultFile, Failure> {
    let (name, folder) = camera(step)?;
    let kept = folder.join(BACKUP_DIR);
    if kept.exists() {
        fs::remove_dir_all(&kept).map_err(|e| io("clear", &kept, e))?;
    }
    fs::create_dir_all(&kept).map_err(|e| io("create", &kept, e))?;
    let mut saved = Vec::new();
    for file in [FIRMWARE_FILE, VERSION_FILE] {
        let from = folder.join(file);
        if from.exists() {
            fs::copy(&from, kept.join(file)).map_err(|e| io("back up", &from, e))?;
            saved.push(file);
        }
    }
    Ok(ResultFile::new(
        codes::BACKUP_SUCCESS,
        format!("{name}: kept {saved:?}"),
    ))
}

fn install(step: &StepContext) -> Result<ResultFile, Failure> {
    let (name, folder) = camera(step)?;
    let version = criteria(step)?;
    let payload = firmware_payload(step)?;
    let staged = folder.join(STAGED_FILE);
    fs::copy(payload, &staged).map_err(|e| io("write", &staged, e))?;
    Ok(ResultFile::new(
        codes::INSTALL_SUCCESS,
        format!("{name}: firmware {version} installed"),
    ))
}

fn apply(step: &StepContext) -> Result<ResultFile, Failure> {
    let (name, folder) = camera(step)?;
    let version = criteria(step)?;
    let staged = folder.join(STAGED_FILE);
    if !staged.exists() {
        return Err((
            NOTHING_STAGED,
            format!(
                "{name}: no installed firmware ({}) to apply",
                staged.display()
            ),
        ));
    }
    let running = folder.join(FIRMWARE_FILE);
    fs::rename(&staged, &running).map_err(|e| io("activate", &running, e))?;
    let version_file = folder.join(VERSION_FILE);
    fs::write(&version_file, format!("{version}\n")).map_err(|e| io("write", &version_file, e))?;
    Ok(ResultFile::new(
        codes::APPLY_SUCCESS,
        format!("{name} runs firmware {version}"),
    ))
}

fn restore(step: &StepContext) -> Result<ResultFile, Failure> {
    let (name, folder) = camera(step)?;
    let kept = folder.join(BACKUP_DIR);
    let staged = folder.join(STAGED_FILE);
    if staged.exists() {
        fs::remove_file(&staged).map_err(|e| io("remove", &staged, e))?;
    }
    for file in [FIRMWARE_FILE, VERSION_FILE] {
        let (from, to) = (kept.join(file), folder.join(file));
        if from.exists() {
            fs::copy(&from, &to).map_err(|e| io("restore", &to, e))?;
        } else if to.exists() {
            // The camera had none before the step: remove what the step put there.
            fs::remove_file(&to).map_err(|e| io("remove", &to, e))?;
        }
    }
    Ok(ResultFile::new(
        codes::RESTORE_SUCCESS,
        format!("{name}: previous firmware restored"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use handrail_sdk::{Component, PayloadFile, UpdateId};

    fn step(dir: &Path, criteria: &str) -> StepContext {
        let firmware = dir.join("fw-2.0.bin");
        fs::write(&firmware, "firmware 2.0").unwrap();
        let mut component = Component {
            id: "cam-front".into(),
            name: "front-camera".into(),
            version: Some("1.0".into()),
            ..Default::default()
        };
        let folder = dir.join("front");
        fs::create_dir_all(&folder).unwrap();
        component
            .properties
            .insert(PATH_PROPERTY.into(), folder.display().to_string().into());
        StepContext {
            workflow_id: "w".into(),
            update_id: UpdateId {
                provider: "contoso".into(),
                name: "virtual-camera".into(),
                version: "2.0".into(),
            },
            step_index: 0,
            level: 1,
            handler_id: ID.into(),
            handler_properties: Default::default(),
            handler_config: Default::default(),
            files: vec![PayloadFile {
                name: "fw-2.0.bin".into(),
                path: firmware.display().to_string(),
                size: 12,
            }],
            work_folder: dir.display().to_string(),
            result_file: dir.join("result.json").display().to_string(),
            installed_criteria: Some(criteria.into()),
            component: Some(component),
        }
    }

    fn code(result: Result<ResultFile, Failure>) -> i32 {
        outcome(result).result_code
    }

    #[test]
    fn installs_applies_and_is_then_installed() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = step(dir.path(), "2.0");
        let folder = dir.path().join("front");
        assert_eq!(code(is_installed(&ctx)), codes::IS_INSTALLED_NOT_INSTALLED);
        assert_eq!(code(backup(&ctx)), codes::BACKUP_SUCCESS);
        assert_eq!(code(install(&ctx)), codes::INSTALL_SUCCESS);
        assert_eq!(code(apply(&ctx)), codes::APPLY_SUCCESS);
        assert_eq!(
            fs::read_to_string(folder.join(FIRMWARE_FILE)).unwrap(),
            "firmware 2.0"
        );
        assert_eq!(code(is_installed(&ctx)), codes::IS_INSTALLED_INSTALLED);
    }

    #[test]
    fn restore_brings_back_the_previous_firmware_or_removes_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = step(dir.path(), "2.0");
        let folder = dir.path().join("front");
        // No firmware before: restore leaves the camera as it was.
        backup(&ctx).unwrap();
        install(&ctx).unwrap();
        apply(&ctx).unwrap();
        assert_eq!(code(restore(&ctx)), codes::RESTORE_SUCCESS);
        assert!(!folder.join(FIRMWARE_FILE).exists());
        assert!(!folder.join(VERSION_FILE).exists());
        // Firmware 1.0 before: restore puts it back.
        fs::write(folder.join(FIRMWARE_FILE), "firmware 1.0").unwrap();
        fs::write(folder.join(VERSION_FILE), "1.0\n").unwrap();
        backup(&ctx).unwrap();
        install(&ctx).unwrap();
        apply(&ctx).unwrap();
        restore(&ctx).unwrap();
        assert_eq!(
            fs::read_to_string(folder.join(FIRMWARE_FILE)).unwrap(),
            "firmware 1.0"
        );
        assert_eq!(code(is_installed(&ctx)), codes::IS_INSTALLED_NOT_INSTALLED);
    }

    #[test]
    fn missing_component_path_or_criteria_fail_with_their_codes() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = step(dir.path(), "2.0");
        ctx.installed_criteria = None;
        assert_eq!(
            outcome(is_installed(&ctx)).extended(),
            NO_INSTALLED_CRITERIA
        );
        ctx.component.as_mut().unwrap().properties.clear();
        assert_eq!(outcome(install(&ctx)).extended(), NO_FIRMWARE_FOLDER);
        ctx.component = None;
        let result = outcome(install(&ctx));
        assert_eq!(result.extended(), NO_COMPONENT);
        assert!(result.result_details.contains("component-aware"));
    }
}
