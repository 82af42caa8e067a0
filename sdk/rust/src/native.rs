//! Export a [`Handler`] as a native handler: a shared library with the Handrail C ABI.
//!
//! The same handler type that [`export!`](crate::export) turns into a WebAssembly
//! component becomes a native handler with [`export_native!`](crate::export_native): build
//! the crate as a `cdylib` for the device's target and register the `.so` with
//! `kind = "native"`. The runtime loads it in a sandboxed worker process of its own (see
//! `sdk/c/handrail_handler.h` for the ABI and the sandbox), so a panic, crash or hang in
//! the handler fails the action, never the runtime.
//!
//! ```no_run
//! use handrail_sdk::{Action, Handler, ResultFile, StepContext, codes};
//!
//! struct Marker;
//!
//! impl Handler for Marker {
//!     const ID: &'static str = "contoso/marker:1";
//!     const ACTIONS: &'static [Action] = &[Action::Install];
//!
//!     fn install(step: &StepContext) -> ResultFile {
//!         // Paths in `step` are the device's real paths; the sandbox lets the handler
//!         // read its payload files and write its work folder, and nothing else that its
//!         // registration does not grant.
//!         ResultFile::new(codes::INSTALL_SUCCESS, "installed")
//!     }
//! }
//!
//! handrail_sdk::export_native!(Marker);
//! ```
//!
//! Inside a native handler the [`host`](crate::host) imports are not available: log to
//! stderr (the runtime captures it), and run granted programs with
//! [`std::process::Command`].

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use handrail_contract::{Action, CONTRACT_VERSION, StepContext};

use crate::handler::Handler;

/// The name of the entry point every native handler exports.
pub const ENTRY_POINT: &str = "handrail_handler_v1";

/// One action of the C ABI: the step context as NUL-terminated JSON in, 0 out once the
/// result file is written.
pub type ActionFn = unsafe extern "C" fn(context_json: *const c_char) -> i32;

/// The function table of ABI version 1 (`struct handrail_handler_table_v1` in
/// `sdk/c/handrail_handler.h`); field order and types are the ABI.
#[repr(C)]
#[derive(Debug)]
pub struct HandlerTableV1 {
    /// Contract major version; must equal the runtime's.
    pub abi_major: u16,
    /// Contract minor version; may be older than the runtime's.
    pub abi_minor: u16,
    /// `{"id", "actions", "contract": [major, minor]}` as NUL-terminated JSON, owned by
    /// the library.
    pub describe: Option<unsafe extern "C" fn() -> *const c_char>,
    /// is-installed (900 / 901).
    pub is_installed: Option<ActionFn>,
    /// download (500s).
    pub download: Option<ActionFn>,
    /// backup (1000s).
    pub backup: Option<ActionFn>,
    /// install (600s).
    pub install: Option<ActionFn>,
    /// apply (700s).
    pub apply: Option<ActionFn>,
    /// restore (1100s).
    pub restore: Option<ActionFn>,
    /// cancel (800s).
    pub cancel: Option<ActionFn>,
}

/// What `describe` returns for `H`, as the JSON the C ABI specifies.
///
/// ```
/// use handrail_sdk::{Action, Handler, native};
/// struct H;
/// impl Handler for H {
///     const ID: &'static str = "contoso/h:1";
///     const ACTIONS: &'static [Action] = &[Action::IsInstalled, Action::Install];
/// }
/// let json = native::describe_json::<H>();
/// assert_eq!(
///     json.to_str().unwrap(),
///     r#"{"id":"contoso/h:1","actions":["is-installed","install"],"contract":[1,0]}"#
/// );
/// ```
pub fn describe_json<H: Handler>() -> CString {
    #[derive(serde::Serialize)]
    struct Described {
        id: &'static str,
        actions: &'static [Action],
        contract: (u16, u16),
    }
    let described = Described {
        id: H::ID,
        actions: H::ACTIONS,
        contract: CONTRACT_VERSION,
    };
    // Serialised JSON escapes control characters, so it holds no NUL byte.
    CString::new(serde_json::to_string(&described).unwrap_or_default()).unwrap_or_default()
}

/// Status an action returns when the context it was given is not a step context.
pub const STATUS_BAD_CONTEXT: i32 = 1;
/// Status an action returns when the handler panicked.
pub const STATUS_PANICKED: i32 = 2;

/// Runs `action` of `H` on the context JSON and writes its result file: the body of
/// every function in the table [`export_native!`](crate::export_native) builds.
///
/// Returns 0 once the handler has returned (the runtime reports a result file that
/// could not be written as missing), [`STATUS_BAD_CONTEXT`] when the context is not
/// valid JSON of a step context, and [`STATUS_PANICKED`] when the handler panicked (the
/// panic message goes to stderr, which the runtime captures): a panic must not unwind
/// into the C caller.
///
/// # Safety
///
/// `context_json` must be NULL or point to a NUL-terminated string.
pub unsafe fn run_action<H: Handler>(action: Action, context_json: *const c_char) -> i32 {
    if context_json.is_null() {
        eprintln!("handrail: `{action}` was called without a step context");
        return STATUS_BAD_CONTEXT;
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    let bytes = unsafe { CStr::from_ptr(context_json) }.to_bytes();
    let step: StepContext = match serde_json::from_slice(bytes) {
        Ok(step) => step,
        Err(e) => {
            eprintln!("handrail: the step context of `{action}` is not valid: {e}");
            return STATUS_BAD_CONTEXT;
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| match action {
        Action::IsInstalled => H::is_installed(&step),
        Action::Download => H::download(&step),
        Action::Backup => H::backup(&step),
        Action::Install => H::install(&step),
        Action::Apply => H::apply(&step),
        Action::Restore => H::restore(&step),
        Action::Cancel => H::cancel(&step),
    }));
    let Ok(result) = outcome else {
        return STATUS_PANICKED;
    };
    if let Err(e) = std::fs::write(&step.result_file, result.to_json()) {
        eprintln!(
            "handrail: cannot write the result file {}: {e}",
            step.result_file
        );
    }
    0
}

/// Exports a [`Handler`] from a `cdylib` as a native handler: the
/// `handrail_handler_v1` entry point and its function table (see [`native`](crate::native)).
///
/// Use it once, at the top level of the handler crate. It expands to nothing when the
/// crate is compiled for WebAssembly, so one crate can call both
/// [`export!`](crate::export) and `export_native!` and build either kind.
///
/// ```no_run
/// # use handrail_sdk::{Action, Handler};
/// struct Noop;
/// impl Handler for Noop {
///     const ID: &'static str = "contoso/noop:1";
///     const ACTIONS: &'static [Action] = &[];
/// }
/// handrail_sdk::export_native!(Noop);
/// ```
#[macro_export]
macro_rules! export_native {
    ($handler:ty) => {
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            use ::std::ffi::{CString, c_char};
            use ::std::sync::OnceLock;

            static DESCRIPTION: OnceLock<CString> = OnceLock::new();

            extern "C" fn describe() -> *const c_char {
                DESCRIPTION
                    .get_or_init($crate::native::describe_json::<$handler>)
                    .as_ptr()
            }

            // One action of the table; `N` indexes `Action::ALL`.
            unsafe extern "C" fn action<const N: usize>(context_json: *const c_char) -> i32 {
                // SAFETY: the runtime passes a NUL-terminated string.
                unsafe {
                    $crate::native::run_action::<$handler>($crate::Action::ALL[N], context_json)
                }
            }

            static TABLE: $crate::native::HandlerTableV1 = $crate::native::HandlerTableV1 {
                abi_major: $crate::CONTRACT_VERSION.0,
                abi_minor: $crate::CONTRACT_VERSION.1,
                describe: Some(describe),
                is_installed: Some(action::<0>),
                download: Some(action::<1>),
                backup: Some(action::<2>),
                install: Some(action::<3>),
                apply: Some(action::<4>),
                restore: Some(action::<5>),
                cancel: Some(action::<6>),
            };

            #[unsafe(no_mangle)]
            pub extern "C" fn handrail_handler_v1() -> *const $crate::native::HandlerTableV1 {
                &TABLE
            }
        };
    };
}
