//! The library side of the C ABI (`sdk/c/handrail_handler.h`): the entry point, the
//! function table, the version handshake and `describe`.

use std::ffi::{CStr, CString, c_char};
use std::path::Path;

use handrail::host::Description;
use handrail_contract::{Action, CONTRACT_VERSION, StepContext};
use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};

/// The entry point every native handler exports.
pub(crate) const ENTRY_POINT: &str = "handrail_handler_v1";

/// One action: the step context as NUL-terminated JSON in, 0 out.
type ActionFn = unsafe extern "C" fn(context_json: *const c_char) -> i32;

/// `struct handrail_handler_table_v1`; field order and types are the ABI.
#[repr(C)]
struct TableV1 {
    abi_major: u16,
    abi_minor: u16,
    describe: Option<unsafe extern "C" fn() -> *const c_char>,
    is_installed: Option<ActionFn>,
    download: Option<ActionFn>,
    backup: Option<ActionFn>,
    install: Option<ActionFn>,
    apply: Option<ActionFn>,
    restore: Option<ActionFn>,
    cancel: Option<ActionFn>,
}

impl TableV1 {
    fn action(&self, action: Action) -> Option<ActionFn> {
        match action {
            Action::IsInstalled => self.is_installed,
            Action::Download => self.download,
            Action::Backup => self.backup,
            Action::Install => self.install,
            Action::Apply => self.apply,
            Action::Restore => self.restore,
            Action::Cancel => self.cancel,
        }
    }
}

/// A loaded handler library whose function table passed the ABI handshake.
pub(crate) struct Handler {
    table: &'static TableV1,
    // Kept loaded for the life of the worker, which ends with `_exit`, so the library's
    // destructors never run.
    _library: Library,
}

/// Refuses a version whose major differs from the runtime's or whose minor is newer.
///
/// ```text
/// runtime 1.0: handler 1.0 ok, 1.1 refused, 2.0 refused, 0.9 refused
/// ```
pub(crate) fn check_version(what: &str, (major, minor): (u16, u16)) -> Result<(), String> {
    let (ours, our_minor) = CONTRACT_VERSION;
    if major != ours || minor > our_minor {
        return Err(format!(
            "{what} is {major}.{minor}; this runtime implements handler contract {ours}.{our_minor} \
             (same major, minor up to {our_minor} accepted)"
        ));
    }
    Ok(())
}

impl Handler {
    /// Loads the library, finds its entry point and checks its function table's version.
    pub(crate) fn load(path: &Path) -> Result<Handler, String> {
        // SAFETY: loading runs the library's initialisers: that is the untrusted code this
        // process exists to contain, and it is already confined.
        let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
            .map_err(|e| format!("cannot load the library: {e}"))?;
        // SAFETY: the symbol's type is the ABI's entry point type.
        let entry = unsafe {
            library.get::<unsafe extern "C" fn() -> *const TableV1>(ENTRY_POINT.as_bytes())
        }
        .map_err(|_| {
            format!(
                "the library exports no `{ENTRY_POINT}` entry point: it is not a Handrail native handler, \
                 or it was built for another ABI major version"
            )
        })?;
        // SAFETY: calling the entry point is the ABI; it returns a pointer to a table that
        // lives as long as the library, which this process never unloads.
        let table = unsafe { entry().as_ref() }
            .ok_or_else(|| format!("`{ENTRY_POINT}` returned a NULL function table"))?;
        check_version(
            "the ABI version of its function table",
            (table.abi_major, table.abi_minor),
        )?;
        Ok(Handler {
            table,
            _library: library,
        })
    }

    /// Calls `describe` and checks what it says: valid JSON of a description, a contract
    /// version this runtime accepts, and a function for every action it lists.
    pub(crate) fn describe(&self) -> Result<Description, String> {
        let describe = self
            .table
            .describe
            .ok_or("the function table has no `describe`")?;
        // SAFETY: `describe` takes nothing and returns a NUL-terminated string or NULL.
        let text = unsafe { describe() };
        if text.is_null() {
            return Err("`describe` returned NULL".into());
        }
        // SAFETY: non-NULL and NUL-terminated per the ABI; owned by the library.
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let mut description: Description = serde_json::from_str(&text).map_err(|e| {
            format!(
                "`describe` did not return {{\"id\", \"actions\", \"contract\": [major, minor]}}: {e} (it returned {text:?})"
            )
        })?;
        check_version("the contract version it describes", description.contract)?;
        if let Some(missing) = description
            .actions
            .iter()
            .find(|a| self.table.action(**a).is_none())
        {
            return Err(format!(
                "it lists `{missing}` among its actions but its function table has no function for it"
            ));
        }
        description.actions.sort();
        description.actions.dedup();
        Ok(description)
    }

    /// Calls one action with the step context and returns the status it returned.
    pub(crate) fn run(&self, action: Action, context: &StepContext) -> Result<i32, String> {
        let function = self
            .table
            .action(action)
            .ok_or_else(|| format!("the function table has no function for `{action}`"))?;
        let json = serde_json::to_string(context)
            .map_err(|e| format!("cannot serialise the step context: {e}"))?;
        let json =
            CString::new(json).map_err(|_| "the step context holds a NUL character".to_owned())?;
        // SAFETY: the ABI: a NUL-terminated context that outlives the call.
        Ok(unsafe { function(json.as_ptr()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_accepts_same_major_and_older_minor_only() {
        let (major, minor) = CONTRACT_VERSION;
        assert!(check_version("v", (major, minor)).is_ok());
        for bad in [(major + 1, 0), (major, minor + 1)] {
            let err = check_version("the ABI version", bad).unwrap_err();
            assert!(err.contains("this runtime implements"), "{err}");
        }
        if major > 0 {
            assert!(check_version("v", (major - 1, minor)).is_err());
        }
    }
}
