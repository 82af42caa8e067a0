//! The built-in step handlers, as WebAssembly components built from `handlers/` by this
//! crate's build script and embedded in it, each with the capabilities it needs.
//!
//! The CLI writes each one's artifact and registration into a fresh state directory:
//!
//! ```
//! let handlers = handrail_builtin_handlers::builtin_handlers();
//! let script = handlers.iter().find(|h| h.id == "microsoft/script:1").unwrap();
//! assert!(script.wasm.starts_with(b"\0asm"));
//! assert_eq!(script.capabilities.run, ["/bin/sh", "/bin/bash"].map(std::path::PathBuf::from));
//! let apt = handlers.iter().find(|h| h.id == "microsoft/apt:1").unwrap();
//! assert_eq!(apt.capabilities.run.len(), 2);
//! ```

use std::path::PathBuf;

use handrail::confinement::SocketFamily;
use handrail::registry::Capabilities;

/// One built-in handler.
#[derive(Debug, Clone)]
pub struct BuiltinHandler {
    /// The handler id, `vendor/name:major`.
    pub id: &'static str,
    /// The WebAssembly component.
    pub wasm: &'static [u8],
    /// What its registration must grant for it to work.
    pub capabilities: Capabilities,
}

/// The `microsoft/script:1` component.
pub const SCRIPT_HANDLER_WASM: &[u8] = include_bytes!(env!("HANDRAIL_SCRIPT_HANDLER_WASM"));

/// The `microsoft/apt:1` component.
pub const APT_HANDLER_WASM: &[u8] = include_bytes!(env!("HANDRAIL_APT_HANDLER_WASM"));

/// The `microsoft/swupdate:2` component.
pub const SWUPDATE_HANDLER_WASM: &[u8] = include_bytes!(env!("HANDRAIL_SWUPDATE_HANDLER_WASM"));

/// The `microsoft/swupdate:1` component.
pub const SWUPDATE_V1_HANDLER_WASM: &[u8] =
    include_bytes!(env!("HANDRAIL_SWUPDATE_V1_HANDLER_WASM"));

/// Every built-in handler as the runtime takes it, to register in one call:
/// `Runtime::builder(state).bundled(handrail_builtin_handlers::bundled())` (run by the
/// WebAssembly host, each granted what it needs, with the default limits).
pub fn bundled() -> Vec<handrail::bundled::BundledHandler> {
    builtin_handlers()
        .into_iter()
        .map(|h| handrail::bundled::BundledHandler {
            id: h.id.to_owned(),
            kind: handrail::registry::HandlerKind::Wasm,
            artifact: h.wasm,
            capabilities: h.capabilities,
            limits: handrail::registry::Limits::default(),
        })
        .collect()
}

/// Every built-in handler.
pub fn builtin_handlers() -> Vec<BuiltinHandler> {
    vec![
        BuiltinHandler {
            id: "microsoft/script:1",
            wasm: SCRIPT_HANDLER_WASM,
            // Scripts are run by the interpreter their `#!` line names: ADU's are all
            // `#!/bin/bash`; `/bin/sh` runs those without one (and places payload files).
            capabilities: Capabilities {
                run: vec![PathBuf::from("/bin/sh"), PathBuf::from("/bin/bash")],
                ..Capabilities::default()
            },
        },
        BuiltinHandler {
            id: "microsoft/apt:1",
            wasm: APT_HANDLER_WASM,
            // apt-get downloads, installs and removes; dpkg-query says what is installed.
            // A package may put files anywhere and its maintainer scripts may change
            // anything, so apt-get and dpkg are granted writing the whole file system,
            // and the capabilities unpacking needs: files of any owner and mode
            // (`CAP_CHOWN`, `CAP_FOWNER`, `CAP_FSETID`, `CAP_DAC_*`), file capabilities
            // (`CAP_SETFCAP`), device nodes (`CAP_MKNOD`), and apt's own drop to its
            // `_apt` user (`CAP_SETUID`, `CAP_SETGID`). Their confinement is no network,
            // no signals outside, no kernel interfaces.
            capabilities: Capabilities {
                run: vec![
                    PathBuf::from("/usr/bin/apt-get"),
                    PathBuf::from("/usr/bin/dpkg-query"),
                ],
                write: vec![PathBuf::from("/")],
                privileges: [
                    "CAP_CHOWN",
                    "CAP_DAC_OVERRIDE",
                    "CAP_DAC_READ_SEARCH",
                    "CAP_FOWNER",
                    "CAP_FSETID",
                    "CAP_SETFCAP",
                    "CAP_MKNOD",
                    "CAP_SETUID",
                    "CAP_SETGID",
                ]
                .map(|name| name.parse().expect("a Linux capability"))
                .to_vec(),
                ..Capabilities::default()
            },
        },
        BuiltinHandler {
            id: "microsoft/swupdate:2",
            wasm: SWUPDATE_HANDLER_WASM,
            // swupdate writes the inactive slot. The folders of the boot environment
            // (write) and the version file (read) are the device's own: the device owner
            // grants them in the configuration (`[handler_grants."microsoft/swupdate:2"]`)
            // beside the `[handler_config]` that names them. A step naming a script (ADU's
            // form) runs it by its `#!` interpreter, as the script handler does: ADU's are
            // `#!/bin/bash`; `/bin/sh` places payload files. swupdate's threads talk over
            // UNIX sockets of its own (its notifier, its progress and control sockets).
            capabilities: Capabilities {
                run: vec![
                    PathBuf::from("/usr/bin/swupdate"),
                    PathBuf::from("/bin/sh"),
                    PathBuf::from("/bin/bash"),
                ],
                sockets: vec![SocketFamily::Unix],
                ..Capabilities::default()
            },
        },
        BuiltinHandler {
            id: "microsoft/swupdate:1",
            wasm: SWUPDATE_V1_HANDLER_WASM,
            // As :2, whose library it shares; its own id takes its own configuration
            // and grants.
            capabilities: Capabilities {
                run: vec![PathBuf::from("/usr/bin/swupdate")],
                sockets: vec![SocketFamily::Unix],
                ..Capabilities::default()
            },
        },
    ]
}
