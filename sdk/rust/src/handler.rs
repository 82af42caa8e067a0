//! The [`Handler`] trait and the glue that turns a WIT call into a written result file.

use handrail_contract::codes::{self, ext};
use handrail_contract::{Action, CONTRACT_VERSION, ExtendedCode, ResultFile, StepContext};

use crate::bindings::handrail::handler::types as wit;
use crate::{context, host};

/// A step handler: implement the actions you support, declare them in
/// [`ACTIONS`](Handler::ACTIONS), and export the type with [`export!`](crate::export).
///
/// Every action receives the step's [`StepContext`] (paths as the handler sees them in
/// its sandbox) and returns the [`ResultFile`] to report; the SDK writes it to
/// [`StepContext::result_file`]. The default method of every action answers with the
/// contract's "unsupported" result ([`unsupported`]).
///
/// ```no_run
/// use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes};
///
/// struct Marker;
///
/// impl Handler for Marker {
///     const ID: &'static str = "contoso/marker:1";
///     const ACTIONS: &'static [Action] = &[Action::IsInstalled, Action::Install];
///
///     fn is_installed(step: &StepContext) -> ResultFile {
///         // A real handler asks the device (through `host::run`) what is installed.
///         let installed = step.installed_criteria.as_deref() == Some("marker-1.0");
///         let code = if installed {
///             codes::IS_INSTALLED_INSTALLED
///         } else {
///             codes::IS_INSTALLED_NOT_INSTALLED
///         };
///         ResultFile::new(code, "")
///     }
///
///     fn install(_step: &StepContext) -> ResultFile {
///         ResultFile::new(codes::INSTALL_SUCCESS, "installed")
///     }
/// }
/// # handrail_sdk::export!(Marker);
/// ```
pub trait Handler {
    /// The handler id, `vendor/name:major` (e.g. `microsoft/script:1`).
    const ID: &'static str;

    /// The actions the handler implements; `describe` reports exactly these, and the
    /// runtime answers the others itself.
    const ACTIONS: &'static [Action];

    /// Are the step's installed criteria met? 900 when they are, else 901.
    fn is_installed(step: &StepContext) -> ResultFile {
        let _ = step;
        unsupported(Action::IsInstalled)
    }

    /// Fetch or stage what the step needs (500s).
    fn download(step: &StepContext) -> ResultFile {
        let _ = step;
        unsupported(Action::Download)
    }

    /// Save what a restore would need (1000s).
    fn backup(step: &StepContext) -> ResultFile {
        let _ = step;
        unsupported(Action::Backup)
    }

    /// Install the update (600s).
    fn install(step: &StepContext) -> ResultFile {
        let _ = step;
        unsupported(Action::Install)
    }

    /// Make the installed update take effect (700s).
    fn apply(step: &StepContext) -> ResultFile {
        let _ = step;
        unsupported(Action::Apply)
    }

    /// Undo a failed install or apply (1100s).
    fn restore(step: &StepContext) -> ResultFile {
        let _ = step;
        unsupported(Action::Restore)
    }

    /// Stop the action in progress for the same step (800s).
    fn cancel(step: &StepContext) -> ResultFile {
        let _ = step;
        unsupported(Action::Cancel)
    }
}

/// The result of an action the handler does not implement: the contract's "unsupported"
/// code for the action (backup 1001, restore 1101, download 502, is-installed 901,
/// cancel 801), and for install and apply a failure with
/// [`ext::ACTION_UNSUPPORTED`](handrail_contract::codes::ext::ACTION_UNSUPPORTED).
///
/// ```
/// use handrail_sdk::{Action, codes, unsupported};
/// assert_eq!(unsupported(Action::Backup).result_code, codes::BACKUP_SUCCESS_UNSUPPORTED);
/// assert_eq!(unsupported(Action::Install).result_code, codes::FAILURE);
/// ```
pub fn unsupported(action: Action) -> ResultFile {
    let code = action.unsupported_code();
    let details = format!("this handler does not implement `{action}`");
    if codes::is_success(code) {
        ResultFile::new(code, details)
    } else {
        ResultFile::failure(ext::ACTION_UNSUPPORTED, details)
    }
}

/// An extended result code of a step handler (facility 3) for `component` and `code`.
///
/// ```
/// use handrail_sdk::{codes, extended};
/// assert_eq!(extended(codes::COMPONENT_SCRIPT, 0x205).value(), 0x3050_0205);
/// ```
pub const fn extended(component: u8, code: u32) -> ExtendedCode {
    ExtendedCode::new(codes::FACILITY_STEP_HANDLER, component, code)
}

/// What a handler's `describe` reports: its id, its actions and the contract version
/// the SDK implements.
///
/// ```
/// use handrail_sdk::{Action, Handler, describe};
/// struct H;
/// impl Handler for H {
///     const ID: &'static str = "contoso/h:1";
///     const ACTIONS: &'static [Action] = &[Action::Install, Action::Apply];
/// }
/// let (id, actions, contract) = describe::<H>();
/// assert_eq!((id, actions, contract), ("contoso/h:1", &[Action::Install, Action::Apply][..], (1, 0)));
/// ```
pub fn describe<H: Handler>() -> (&'static str, &'static [Action], (u16, u16)) {
    (H::ID, H::ACTIONS, CONTRACT_VERSION)
}

/// `describe` as the WIT record.
pub fn describe_wit<H: Handler>() -> wit::Description {
    let (id, actions, (major, minor)) = describe::<H>();
    wit::Description {
        id: id.to_owned(),
        actions: actions.iter().map(|a| context::action_to_wit(*a)).collect(),
        contract_major: major,
        contract_minor: minor,
    }
}

/// Runs one action of `H` and writes its result file.
pub fn dispatch<H: Handler>(action: Action, ctx: wit::StepContext) {
    let step = context::from_wit(ctx);
    let result = match action {
        Action::IsInstalled => H::is_installed(&step),
        Action::Download => H::download(&step),
        Action::Backup => H::backup(&step),
        Action::Install => H::install(&step),
        Action::Apply => H::apply(&step),
        Action::Restore => H::restore(&step),
        Action::Cancel => H::cancel(&step),
    };
    if let Err(e) = write_result_file(&step.result_file, result.to_json().as_bytes()) {
        // The runtime reports the missing file as a failure; say why in the log.
        host::error(&format!(
            "cannot write the result file {}: {e}",
            step.result_file
        ));
    }
}

/// Writes the result file: created (or truncated) and filled with positional writes, so
/// the host serves each write directly instead of through a stream.
fn write_result_file(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    write_all_at(&file, bytes)
}

#[cfg(target_os = "wasi")]
fn write_all_at(file: &std::fs::File, mut bytes: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut offset: libc::off_t = 0;
    while !bytes.is_empty() {
        // SAFETY: pwrite(2) reads `bytes.len()` bytes from a live slice into an open file
        // descriptor owned by `file`, which outlives the call.
        let n =
            unsafe { libc::pwrite(file.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), offset) };
        match n {
            n if n > 0 => {
                let n = n as usize;
                bytes = &bytes[n..];
                offset += n as libc::off_t;
            }
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

#[cfg(not(target_os = "wasi"))]
fn write_all_at(mut file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    std::io::Write::write_all(&mut file, bytes)
}
