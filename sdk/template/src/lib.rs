//! `vendor/template:1`: a minimal Handrail step handler, the starting point of
//! `handrail new-handler`.
//!
//! It installs the step's first payload file into a device folder the registration
//! grants and names in its `[config]` as `stateDir`, under the step's installed criteria,
//! and answers is-installed by looking for that file. Replace the body of `install` with
//! what your update does; keep the shape: validate the step first and answer every
//! problem with a failure and an extended code of your own, never a panic.
//!
//! Registration (`vendor-template.toml`):
//!
//! ```toml
//! id = "vendor/template:1"
//! kind = "wasm"
//! artifact = "handrail_handler_template.wasm"
//! sha256 = "…"
//! [capabilities]
//! write = ["/var/lib/vendor/template"]
//! [config]
//! stateDir = "/var/lib/vendor/template"
//! ```

use std::path::PathBuf;

use handrail_sdk::{Action, ExtendedCode, Handler, ResultFile, StepContext, codes, extended, host};

/// The registration's `[config]` has no `stateDir`.
pub const NO_STATE_DIR: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x001);
/// The step has no installed criteria usable as a file name.
pub const BAD_CRITERIA: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x002);
/// The step has no payload file.
pub const NO_PAYLOAD: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x003);
/// The payload could not be read or the device folder written.
pub const IO_FAILED: ExtendedCode = extended(codes::COMPONENT_CUSTOM, 0x004);

/// The handler.
pub struct Template;

impl Handler for Template {
    const ID: &'static str = "vendor/template:1";
    const ACTIONS: &'static [Action] = &[Action::IsInstalled, Action::Install];

    fn is_installed(step: &StepContext) -> ResultFile {
        match installed_file(step) {
            Ok(file) if file.exists() => ResultFile::new(codes::IS_INSTALLED_INSTALLED, ""),
            Ok(_) => ResultFile::new(codes::IS_INSTALLED_NOT_INSTALLED, ""),
            Err(failure) => failure,
        }
    }

    fn install(step: &StepContext) -> ResultFile {
        // A cancelled deployment changes nothing more (HC-007).
        if let Some(cancelled) = host::cancelled() {
            return cancelled;
        }
        let target = match installed_file(step) {
            Ok(target) => target,
            Err(failure) => return failure,
        };
        let Some(payload) = step.files.first() else {
            return ResultFile::failure(NO_PAYLOAD, "the step has no payload file");
        };
        match std::fs::copy(&payload.path, &target) {
            Ok(_) => ResultFile::new(
                codes::INSTALL_SUCCESS,
                format!("installed {}", payload.name),
            ),
            Err(e) => ResultFile::failure(
                IO_FAILED,
                format!("cannot copy {} to {}: {e}", payload.name, target.display()),
            ),
        }
    }
}

handrail_sdk::export!(Template);

/// Where the step's installed file goes: `<stateDir>/<installedCriteria>`.
fn installed_file(step: &StepContext) -> Result<PathBuf, ResultFile> {
    let Some(dir) = step.handler_config.get("stateDir").and_then(|v| v.as_str()) else {
        return Err(ResultFile::failure(
            NO_STATE_DIR,
            "the registration's [config] has no stateDir",
        ));
    };
    match step.installed_criteria.as_deref() {
        Some(c) if !c.is_empty() && !c.contains('/') && !c.starts_with('.') => {
            Ok(PathBuf::from(dir).join(c))
        }
        _ => Err(ResultFile::failure(
            BAD_CRITERIA,
            "the step has no installedCriteria usable as a file name",
        )),
    }
}
