//! Test handlers for the native host.
//!
//! - `test/rust-marker:1`, this crate's `cdylib`: a Rust handler exported with
//!   [`handrail_sdk::export_native!`]. Its install copies the step's first payload file to
//!   a marker file named after the installed criteria in the folder the registration's
//!   `[config]` names (`markerDir`); is-installed looks for that marker; apply succeeds.
//!   `handlerProperties.panic = true` makes install panic; `handlerProperties.host = true`
//!   makes install use the SDK's host functions first (a log line, progress 1/2 and 2/2,
//!   the cancel flag, `/bin/echo` through `host::run`) and report what they gave.
//! - The C handlers built by `build.rs`, whose paths are the constants below.

use std::path::PathBuf;

use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes, extended};

/// `contoso/marker:1`, the SDK's C example (`sdk/c/examples/marker.c`).
pub const C_MARKER: &str = env!("HANDRAIL_C_MARKER");
/// `test/hostile:1` (`hostile.c`): misbehaves as `handlerProperties.misbehave` says.
pub const C_HOSTILE: &str = env!("HANDRAIL_C_HOSTILE");
/// `test/hostile:1` with a function table for ABI major 2.
pub const C_FUTURE_ABI: &str = env!("HANDRAIL_C_FUTURE_ABI");
/// `hostile.c` without the `handrail_handler_v1` entry point.
pub const C_NO_ENTRY: &str = env!("HANDRAIL_C_NO_ENTRY");

/// The shared library of `test/rust-marker:1`: cargo builds this crate's `cdylib` into
/// the `deps/` folder that also holds the test executables depending on it.
pub fn rust_marker_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let deps = exe
        .ancestors()
        .find(|p| p.ends_with("deps"))
        .map(PathBuf::from)
        .unwrap_or_else(|| exe.parent().map(PathBuf::from).unwrap_or_default());
    deps.join(format!(
        "{}handrail_test_native_guests{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// The marker handler's extended codes (component 32: custom).
const BAD_STEP: u32 = 0x101;
const IO_FAILED: u32 = 0x102;

struct RustMarker;

impl RustMarker {
    fn marker(step: &StepContext) -> Result<PathBuf, ResultFile> {
        let dir = step
            .handler_config
            .get("markerDir")
            .and_then(|v| v.as_str());
        let criteria = step
            .installed_criteria
            .as_deref()
            .filter(|c| !c.contains('/'));
        match (dir, criteria) {
            (Some(dir), Some(criteria)) if !criteria.is_empty() => {
                Ok(PathBuf::from(dir).join(format!("{criteria}.rust-installed")))
            }
            _ => Err(ResultFile::failure(
                extended(codes::COMPONENT_CUSTOM, BAD_STEP),
                "needs config.markerDir and installedCriteria",
            )),
        }
    }
}

impl Handler for RustMarker {
    const ID: &'static str = "test/rust-marker:1";
    const ACTIONS: &'static [Action] = &[Action::IsInstalled, Action::Install, Action::Apply];

    fn is_installed(step: &StepContext) -> ResultFile {
        match Self::marker(step) {
            Ok(marker) if marker.exists() => ResultFile::new(codes::IS_INSTALLED_INSTALLED, ""),
            Ok(_) => ResultFile::new(codes::IS_INSTALLED_NOT_INSTALLED, ""),
            Err(failure) => failure,
        }
    }

    fn install(step: &StepContext) -> ResultFile {
        if step.handler_properties.get("panic") == Some(&true.into()) {
            panic!("asked to panic in install");
        }
        if step.handler_properties.get("host") == Some(&true.into()) {
            use handrail_sdk::host::{self, Arg};
            host::info("the native handler logs");
            host::progress(1, 2);
            host::progress(2, 2);
            let ran = host::run(
                "/bin/echo",
                &[Arg::Literal("echoed".into())],
                &[],
                Some(std::time::Duration::from_secs(10)),
            );
            let echoed = match ran {
                Ok(out) => format!(
                    "{:?} {}",
                    out.exit_code,
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
                Err(e) => format!("{e:?}"),
            };
            return ResultFile::new(
                codes::INSTALL_SUCCESS,
                format!("cancelled={} run={echoed}", host::is_cancelled()),
            );
        }
        let marker = match Self::marker(step) {
            Ok(m) => m,
            Err(failure) => return failure,
        };
        let copied = step
            .files
            .first()
            .ok_or_else(|| "the step has no payload file".to_owned())
            .and_then(|f| std::fs::read(&f.path).map_err(|e| format!("{}: {e}", f.path)))
            .and_then(|bytes| {
                std::fs::write(&marker, &bytes)
                    .map(|()| bytes.len())
                    .map_err(|e| format!("{}: {e}", marker.display()))
            });
        match copied {
            Ok(n) => ResultFile::new(codes::INSTALL_SUCCESS, format!("copied {n} bytes")),
            Err(e) => ResultFile::failure(extended(codes::COMPONENT_CUSTOM, IO_FAILED), e),
        }
    }

    fn apply(_step: &StepContext) -> ResultFile {
        ResultFile::new(codes::APPLY_SUCCESS, "applied")
    }
}

handrail_sdk::export_native!(RustMarker);
