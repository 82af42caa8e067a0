//! Handler registrations: which handlers a device runs, from which artifact, with which
//! capabilities and limits.
//!
//! One TOML file per handler in the registrations folder:
//!
//! ```toml
//! id = "microsoft/script:1"          # vendor/name:major
//! kind = "wasm"                      # wasm | native
//! artifact = "script.wasm"           # relative to this file's folder, or absolute
//! sha256 = "9f86d08…"                # hex; the artifact is re-hashed before loading
//!
//! [capabilities]                     # nothing is granted by default
//! run = ["/bin/sh"]                  # programs the handler may ask the host to run
//! read = []                          # host folders it may read (seen at the same path)
//! write = []                         # host folders it may read and write
//! sockets = []                       # "ip", "unix", "netlink": sockets it may open
//! privileges = []                    # Linux capabilities it keeps ("CAP_CHOWN", …)
//!
//! [limits]
//! memory_mib = 128
//! timeout_secs = 600
//!
//! [config]                           # handed to the handler with every action
//! apt_options = ["-o", "Acquire::Retries=3"]
//! ```
//!
//! A malformed file, a duplicate id or a missing artifact is refused with an error naming
//! the file and field; an artifact whose hash differs from `sha256` is refused at load.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The kinds of handler artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HandlerKind {
    /// A WebAssembly component targeting the `handrail:handler/step-handler` world.
    Wasm,
    /// A native dynamic library exporting the Handrail C ABI, run in a worker process.
    Native,
    /// A Rust handler linked into the embedding program (no artifact).
    InProcess,
}

impl std::fmt::Display for HandlerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HandlerKind::Wasm => "wasm",
            HandlerKind::Native => "native",
            HandlerKind::InProcess => "in-process",
        })
    }
}

/// What the device owner grants a handler beyond its sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Programs (absolute paths) the handler may ask the host to run.
    #[serde(default)]
    pub run: Vec<PathBuf>,
    /// Host folders the handler may read; a sandboxing host shows each at its own path,
    /// read-only.
    #[serde(default)]
    pub read: Vec<PathBuf>,
    /// Host folders the handler may read and write, shown at their own paths.
    #[serde(default)]
    pub write: Vec<PathBuf>,
    /// Sockets the handler's processes (programs it runs, a native handler's worker) may
    /// open; none by default.
    #[serde(default)]
    pub sockets: Vec<crate::confinement::SocketFamily>,
    /// Linux capabilities the handler's processes keep; none by default.
    #[serde(default)]
    pub privileges: Vec<crate::confinement::Privilege>,
}

/// Resource limits for one action of the handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory limit in MiB.
    #[serde(default = "Limits::default_memory_mib")]
    pub memory_mib: u64,
    /// Time limit of one action in seconds.
    #[serde(default = "Limits::default_timeout_secs")]
    pub timeout_secs: u64,
    /// How long an action that is cancelled while it runs may go on to stop by itself
    /// (it sees `is-cancelled` answer true, and programs it runs are killed) before the
    /// host stops it, in seconds.
    #[serde(default = "Limits::default_cancel_grace_secs")]
    pub cancel_grace_secs: u64,
    /// Most processes a program the handler runs may have alive at once, itself and
    /// everything it starts, where the host can count them (a cgroup's `pids.max`).
    #[serde(default = "Limits::default_max_processes")]
    pub max_processes: u64,
    /// Most memory, in MiB, the processes of one action may use together where the host
    /// can count it (a cgroup's memory limit): a program the handler runs with
    /// everything it starts, or a native handler's worker with its programs.
    #[serde(default = "Limits::default_process_memory_mib")]
    pub process_memory_mib: u64,
    /// Most MiB one action's work folder may hold; past it the runtime stops the action
    /// (`0x34800023`).
    #[serde(default = "Limits::default_disk_mib")]
    pub disk_mib: u64,
}

impl Limits {
    fn default_memory_mib() -> u64 {
        128
    }
    fn default_timeout_secs() -> u64 {
        600
    }
    fn default_cancel_grace_secs() -> u64 {
        5
    }
    fn default_max_processes() -> u64 {
        256
    }
    fn default_process_memory_mib() -> u64 {
        1024
    }
    fn default_disk_mib() -> u64 {
        1024
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: Self::default_memory_mib(),
            timeout_secs: Self::default_timeout_secs(),
            cancel_grace_secs: Self::default_cancel_grace_secs(),
            max_processes: Self::default_max_processes(),
            process_memory_mib: Self::default_process_memory_mib(),
            disk_mib: Self::default_disk_mib(),
        }
    }
}

/// One handler registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Handler id, `vendor/name:major`.
    pub id: String,
    /// Artifact kind.
    pub kind: HandlerKind,
    /// Artifact path (resolved against the registration file's folder when relative).
    #[serde(default)]
    pub artifact: PathBuf,
    /// Expected sha256 of the artifact, lowercase hex.
    #[serde(default)]
    pub sha256: String,
    /// Granted capabilities.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// The device owner's settings for the handler, handed to it with every action
    /// (`StepContext::handler_config`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Where the registration came from (not part of the file).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Errors about registrations.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registrations folder or a file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A registration file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The registration file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// Two registrations claim the same id.
    #[error("handler `{id}` is registered twice: {first} and {second}")]
    Duplicate {
        /// The id.
        id: String,
        /// First file.
        first: String,
        /// Second file.
        second: String,
    },
    /// The artifact's hash is not the registered one.
    #[error(
        "handler `{id}`: artifact {artifact} has sha256 {actual}, but the registration says {expected}; refusing to load it"
    )]
    HashMismatch {
        /// The id.
        id: String,
        /// The artifact.
        artifact: PathBuf,
        /// Registered hash.
        expected: String,
        /// Actual hash.
        actual: String,
    },
}

/// True when `id` has the `vendor/name:major` shape.
///
/// ```
/// assert!(handrail::registry::is_valid_handler_id("microsoft/script:1"));
/// assert!(!handrail::registry::is_valid_handler_id("script"));
/// assert!(!handrail::registry::is_valid_handler_id("microsoft/script:x"));
/// ```
pub fn is_valid_handler_id(id: &str) -> bool {
    let Some((vendor, rest)) = id.split_once('/') else {
        return false;
    };
    let Some((name, major)) = rest.rsplit_once(':') else {
        return false;
    };
    let part = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    part(vendor) && part(name) && !major.is_empty() && major.chars().all(|c| c.is_ascii_digit())
}

/// Streams a file through sha256 and returns the lowercase hex digest.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The lowercase hex sha256 of bytes held in memory, as [`sha256_file`] gives it for a
/// file.
///
/// ```
/// assert!(handrail::registry::sha256_hex(b"").starts_with("e3b0c442"));
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The `N` bytes `text` spells in hex (either case); `None` unless it is exactly that.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Refuses `path` unless it is owned by root or by the user the runtime runs as, and
/// neither group nor others may write it (a missing file is left to whoever reads it).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// assert!(handrail::registry::check_owned(dir.path(), "the folder").is_ok());
/// use std::os::unix::fs::PermissionsExt;
/// std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
/// let refused = handrail::registry::check_owned(dir.path(), "the folder").unwrap_err();
/// assert!(refused.to_string().contains("lets group or others write it"), "{refused}");
/// ```
pub fn check_owned(path: &Path, what: &str) -> Result<(), RegistryError> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RegistryError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    // SAFETY: geteuid(2) has no preconditions.
    let runtime = unsafe { libc::geteuid() };
    let refuse = |why: String| {
        Err(RegistryError::Invalid {
            path: path.to_owned(),
            message: format!(
                "{what} is refused: {why}. A registration grants programs and folders, so it, its artifact and its folder must be owned by root and writable by nobody else (as hooks are)"
            ),
        })
    };
    if meta.uid() != 0 && meta.uid() != runtime {
        return refuse(format!(
            "owned by uid {}, not root or the runtime's user (uid {runtime})",
            meta.uid()
        ));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 {
        return refuse(format!(
            "mode {:o} lets group or others write it",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Largest registration file read, in bytes.
pub const MAX_REGISTRATION_BYTES: u64 = 64 * 1024;

impl Registration {
    /// Parses one registration file's text; `path` is used in errors and to resolve a
    /// relative artifact.
    pub fn parse(path: &Path, text: &str) -> Result<Registration, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut reg: Registration = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    let line_no = text[..span.start].matches('\n').count() + 1;
                    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
                    format!("line {line_no} (`{line}`): ")
                })
                .unwrap_or_default();
            invalid(format!("{at}{}", e.message()))
        })?;
        if !is_valid_handler_id(&reg.id) {
            return Err(invalid(format!(
                "id: `{}` is not a handler id of the form vendor/name:major",
                reg.id
            )));
        }
        if reg.kind != HandlerKind::InProcess {
            if reg.artifact.as_os_str().is_empty() {
                return Err(invalid("artifact: missing".into()));
            }
            if reg.sha256.len() != 64 || !reg.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "sha256: `{}` is not 64 hex digits",
                    reg.sha256
                )));
            }
            reg.sha256 = reg.sha256.to_ascii_lowercase();
            if reg.artifact.is_relative() {
                let base = path.parent().unwrap_or(Path::new("."));
                reg.artifact = base.join(&reg.artifact);
            }
        }
        for (field, list) in [
            ("capabilities.run", &reg.capabilities.run),
            ("capabilities.read", &reg.capabilities.read),
            ("capabilities.write", &reg.capabilities.write),
        ] {
            if let Some(p) = list.iter().find(|p| !p.is_absolute()) {
                return Err(invalid(format!(
                    "{field}: `{}` is not an absolute path",
                    p.display()
                )));
            }
        }
        if reg.limits.memory_mib == 0 || reg.limits.timeout_secs == 0 {
            return Err(invalid(
                "limits: memory_mib and timeout_secs must be above 0".into(),
            ));
        }
        reg.source = Some(path.to_owned());
        Ok(reg)
    }

    /// Re-hashes the artifact and refuses it when the hash differs from the registration.
    pub fn verify_artifact(&self) -> Result<(), RegistryError> {
        if self.kind == HandlerKind::InProcess {
            return Ok(());
        }
        let actual = sha256_file(&self.artifact).map_err(|source| RegistryError::Io {
            path: self.artifact.clone(),
            source,
        })?;
        if actual != self.sha256 {
            return Err(RegistryError::HashMismatch {
                id: self.id.clone(),
                artifact: self.artifact.clone(),
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    fn origin(&self) -> String {
        self.source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(registered in code)".into())
    }
}

/// The set of registered handlers, keyed by id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_id: BTreeMap<String, Registration>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every `*.toml` file of a folder (a missing folder is an empty registry).
    ///
    /// A registration grants programs and folders, so the folder, each registration and
    /// each artifact must be as safe as a hook: owned by root (or by the user the
    /// runtime runs as) and not writable by group or others ([`check_owned`]).
    pub fn load_dir(dir: &Path) -> Result<Registry, RegistryError> {
        let mut registry = Registry::new();
        match fs::metadata(dir) {
            Ok(_) => check_owned(dir, "the registrations folder")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(registry),
            Err(_) => {}
        }
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(registry),
            Err(source) => {
                return Err(RegistryError::Io {
                    path: dir.to_owned(),
                    source,
                });
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text =
                crate::limits::read_to_string(&path, MAX_REGISTRATION_BYTES).map_err(|source| {
                    RegistryError::Io {
                        path: path.clone(),
                        source,
                    }
                })?;
            check_owned(&path, "the registration")?;
            let registration = Registration::parse(&path, &text)?;
            if registration.kind != HandlerKind::InProcess {
                check_owned(&registration.artifact, "its artifact").map_err(|e| match e {
                    RegistryError::Invalid { message, .. } => RegistryError::Invalid {
                        path: path.clone(),
                        message: format!("artifact: {message}"),
                    },
                    other => other,
                })?;
            }
            registry.insert(registration)?;
        }
        Ok(registry)
    }

    /// Adds a registration; a second one for the same id is refused.
    pub fn insert(&mut self, registration: Registration) -> Result<(), RegistryError> {
        if let Some(existing) = self.by_id.get(&registration.id) {
            return Err(RegistryError::Duplicate {
                id: registration.id.clone(),
                first: existing.origin(),
                second: registration.origin(),
            });
        }
        self.by_id.insert(registration.id.clone(), registration);
        Ok(())
    }

    /// The registration for a handler id.
    pub fn get(&self, id: &str) -> Option<&Registration> {
        self.by_id.get(id)
    }

    /// True when a handler id is registered.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Merges device-local settings over a registered handler's `[config]`; `false` when
    /// no handler has that id.
    pub fn merge_config(
        &mut self,
        id: &str,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let Some(registration) = self.by_id.get_mut(id) else {
            return false;
        };
        for (key, value) in config {
            registration.config.insert(key.clone(), value.clone());
        }
        true
    }

    /// Adds capabilities to a registered handler's (each path once); `false` when no
    /// handler has that id.
    ///
    /// ```
    /// use handrail::registry::{Capabilities, Registration, Registry};
    /// let mut registry = Registry::new();
    /// registry.insert(Registration::parse(
    ///     "swupdate.toml".as_ref(),
    ///     "id = \"microsoft/swupdate:2\"\nkind = \"in-process\"\n[capabilities]\nrun = [\"/usr/bin/swupdate\"]\n",
    /// ).unwrap()).unwrap();
    /// let grants = Capabilities { write: vec!["/var/lib/boot".into()], ..Capabilities::default() };
    /// assert!(registry.grant("microsoft/swupdate:2", &grants));
    /// let caps = &registry.get("microsoft/swupdate:2").unwrap().capabilities;
    /// assert_eq!((caps.run.len(), caps.write.len()), (1, 1));
    /// assert!(!registry.grant("contoso/none:1", &grants));
    /// ```
    pub fn grant(&mut self, id: &str, grants: &Capabilities) -> bool {
        let Some(registration) = self.by_id.get_mut(id) else {
            return false;
        };
        let held = &mut registration.capabilities;
        for (held, granted) in [
            (&mut held.run, &grants.run),
            (&mut held.read, &grants.read),
            (&mut held.write, &grants.write),
        ] {
            for path in granted {
                if !held.contains(path) {
                    held.push(path.clone());
                }
            }
        }
        for family in &grants.sockets {
            if !held.sockets.contains(family) {
                held.sockets.push(*family);
            }
        }
        for privilege in &grants.privileges {
            if !held.privileges.contains(privilege) {
                held.privileges.push(*privilege);
            }
        }
        true
    }

    /// All registrations, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.by_id.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn an_oversized_registration_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let big = format!("# {}\n", "x".repeat(MAX_REGISTRATION_BYTES as usize));
        write(dir.path(), "big.toml", &big);
        let err = Registry::load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("big.toml") && err.contains("the limit is"),
            "{err}"
        );
    }

    #[test]
    fn loads_verifies_and_refuses_a_tampered_artifact() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "h.wasm", "artifact bytes");
        let sum = sha256_file(&dir.path().join("h.wasm")).unwrap();
        write(
            dir.path(),
            "h.toml",
            &format!(
                "id = \"contoso/cam:1\"\nkind = \"wasm\"\nartifact = \"h.wasm\"\nsha256 = \"{sum}\"\n[capabilities]\nrun = [\"/bin/sh\"]\n[config]\nmirror = \"file:/srv\"\n"
            ),
        );
        let reg = Registry::load_dir(dir.path()).unwrap();
        let r = reg.get("contoso/cam:1").unwrap();
        assert_eq!(r.capabilities.run, vec![PathBuf::from("/bin/sh")]);
        assert_eq!(r.limits, Limits::default());
        assert_eq!(r.config["mirror"], "file:/srv");
        r.verify_artifact().unwrap();
        write(dir.path(), "h.wasm", "tampered bytes");
        let err = r.verify_artifact().unwrap_err().to_string();
        assert!(
            err.contains("contoso/cam:1") && err.contains("refusing"),
            "{err}"
        );
    }

    #[test]
    fn bad_files_name_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "id = \"nope\"\nkind = \"wasm\"\nartifact = \"a\"\nsha256 = \"00\"",
                "id:",
            ),
            (
                "id = \"a/b:1\"\nkind = \"wasm\"\nsha256 = \"00\"",
                "artifact: missing",
            ),
            (
                "id = \"a/b:1\"\nkind = \"wasm\"\nartifact = \"a\"\nsha256 = \"zz\"",
                "sha256:",
            ),
            ("id = \"a/b:1\"\nkind = \"elf\"\nartifact = \"a\"", "kind"),
            (
                "id = \"a/b:1\"\nkind = \"in-process\"\ncolour = 1",
                "colour",
            ),
            (
                "id = \"a/b:1\"\nkind = \"in-process\"\n[capabilities]\nrun = [\"sh\"]",
                "capabilities.run",
            ),
            (
                "id = \"a/b:1\"\nkind = \"in-process\"\n[limits]\nmemory_mib = 0",
                "limits",
            ),
        ];
        for (text, want) in cases {
            let p = write(dir.path(), "x.toml", text);
            let err = Registration::parse(&p, text).unwrap_err().to_string();
            assert!(
                err.contains("x.toml") && err.contains(want),
                "{err} lacks {want}"
            );
        }
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.toml",
            "id = \"a/b:1\"\nkind = \"in-process\"",
        );
        write(
            dir.path(),
            "b.toml",
            "id = \"a/b:1\"\nkind = \"in-process\"",
        );
        let err = Registry::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("registered twice"), "{err}");
    }
}
