//! The Landlock rules of a confined process, at the best ABI the kernel has (up to 6).
//!
//! | what | rights |
//! |---|---|
//! | the step's payload | read, execute (a script step runs the update's own scripts) |
//! | the action's work folder, `capabilities.write` | read, write, execute |
//! | `capabilities.read` | read |
//! | `capabilities.run` and the system folders `/usr`, `/bin`, `/sbin`, `/lib*` | read, execute |
//! | `/etc`, but for its secrets ([`ETC_CLOSED`]: shadow passwords, SSH host keys, TLS private keys, sudoers) | read |
//! | `/dev/null`, `/dev/zero`, `/dev/full` | read, write |
//! | `/dev/random`, `/dev/urandom` | read |
//! | `/proc/<pid>` of the process itself (its `/proc/self`) | read |
//!
//! `/etc` is readable because programs need its configuration (the resolver, locales,
//! users, their own settings), but a shell must not read `/etc/shadow`; a registration
//! that needs a closed file grants it in `capabilities.read`. Write grants carry
//! execute: a program that may write a folder can make a script there and run it with
//! its interpreter anyway, so refusing `execve` there buys nothing.
//!
//! TCP bind and connect are refused (ABI 4) unless `capabilities.sockets` grants `ip`;
//! signals to processes outside the process's own Landlock domain (the runtime above
//! all) and abstract UNIX sockets outside it are refused (ABI 6).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use handrail::confinement::SocketFamily;
use std::sync::OnceLock;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathFd, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, Scope, make_bitflags, path_beneath_rules,
};

use crate::Grants;

/// The Landlock ABI the rules are written for (Linux 6.12); older kernels enforce the
/// part they know.
const RULES_ABI: ABI = ABI::V6;

/// Folders of programs and libraries every program may read and execute.
const SYSTEM_FOLDERS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What under `/etc` stays closed unless `capabilities.read` grants it.
pub const ETC_CLOSED: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/sudoers",
    "/etc/sudoers.d",
];

/// Devices every program may read and write.
const DEVICES_READ_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

/// Devices every program may read.
const DEVICES_READ: &[&str] = &["/dev/random", "/dev/urandom"];

/// The right to read a file or list a folder.
fn read() -> BitFlags<AccessFs> {
    make_bitflags!(AccessFs::{ReadFile | ReadDir})
}

/// Puts the Landlock `ruleset` in force in the calling process, with the process's
/// own `/proc/<pid>` readable. Meant for the child between fork and exec (system calls
/// only), after `no_new_privs`.
pub(crate) fn restrict_self(ruleset: libc::c_int) -> io::Result<()> {
    // SAFETY: open, close and the Landlock system calls with valid arguments: a static
    // path, a packed attribute on the stack, descriptors this process owns.
    unsafe {
        // Resolved here, in the child, `/proc/self` is the process's own folder (in the
        // runtime it would be the runtime's, whose environ must stay closed).
        let own = libc::open(c"/proc/self".as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        if own < 0 {
            return Err(io::Error::last_os_error());
        }
        let added = add_rule(ruleset, own, read().bits());
        libc::close(own);
        added?;
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Adds to `ruleset` the rule that `access` is allowed beneath the open `path` (system
/// calls only: it serves the child between fork and exec too).
fn add_rule(ruleset: libc::c_int, path: libc::c_int, access: u64) -> io::Result<()> {
    let rule = PathBeneathAttr {
        allowed_access: access,
        parent_fd: path,
    };
    // SAFETY: landlock_add_rule(2) with a packed attribute on the stack and descriptors
    // the caller holds open.
    let added = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            &raw const rule,
            0,
        )
    };
    if added != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `LANDLOCK_RULE_PATH_BENEATH`.
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

/// `struct landlock_path_beneath_attr`.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: libc::c_int,
}

/// The rules every confined process gets (the system's folders, `/etc` but for its
/// secrets, the harmless devices): opened once per runtime, as a few hundred opens per
/// process start would cost more than the start itself. What appears in `/etc` after
/// the first start is not readable until the runtime restarts. Each comes with its
/// rights already narrowed to a file's where it is one, so that adding it to a ruleset
/// is one system call.
fn base_rules() -> &'static [(PathFd, BitFlags<AccessFs>)] {
    static BASE: OnceLock<Vec<(PathFd, BitFlags<AccessFs>)>> = OnceLock::new();
    BASE.get_or_init(|| {
        let execute: BitFlags<AccessFs> = make_bitflags!(AccessFs::{Execute});
        let write_device: BitFlags<AccessFs> =
            make_bitflags!(AccessFs::{ReadFile | WriteFile | Truncate | IoctlDev});
        let closed: Vec<PathBuf> = ETC_CLOSED.iter().map(PathBuf::from).collect();
        let (etc_folders, etc_open) = open_except(Path::new("/etc"), &closed);
        let system = SYSTEM_FOLDERS
            .iter()
            .map(|p| (PathBuf::from(p), read() | execute));
        let etc_open = etc_open.into_iter().map(|p| (p, read()));
        let etc_folders = etc_folders
            .into_iter()
            .map(|p| (p, make_bitflags!(AccessFs::{ReadDir})));
        let devices = DEVICES_READ_WRITE
            .iter()
            .map(|p| (PathBuf::from(p), write_device))
            .chain(
                DEVICES_READ
                    .iter()
                    .map(|p| (PathBuf::from(p), make_bitflags!(AccessFs::{ReadFile}))),
            );
        system
            .chain(etc_open)
            .chain(etc_folders)
            .chain(devices)
            .filter_map(|(path, access)| {
                let fd = PathFd::new(&path).ok()?;
                let is_dir = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(true);
                Some((
                    fd,
                    if is_dir {
                        access
                    } else {
                        access & file_rights()
                    },
                ))
            })
            .collect()
    })
}

/// The rights that apply to a file (not a folder).
fn file_rights() -> BitFlags<AccessFs> {
    AccessFs::from_file(RULES_ABI)
}

/// The Landlock ruleset of `grants` (`None` where the kernel has no Landlock).
///
/// The grants' rules go through the `landlock` crate, which narrows each to what its
/// path is; the base rules ([`base_rules`], about a hundred and fifty) are added by
/// `landlock_add_rule` directly, their rights narrowed once when they were opened and
/// here to what the kernel's ABI handles.
pub(crate) fn ruleset(grants: &Grants) -> Result<Option<OwnedFd>, String> {
    let ruleset: Option<OwnedFd> = grants_ruleset(grants).map_err(|e| e.to_string())?.into();
    if let Some(ruleset) = &ruleset {
        let handled =
            (AccessFs::from_all(RULES_ABI) & AccessFs::from_all(ABI::from(kernel_abi()))).bits();
        for (path, access) in base_rules() {
            let access = access.bits() & handled;
            if access != 0 {
                add_rule(ruleset.as_raw_fd(), path.as_fd().as_raw_fd(), access)
                    .map_err(|e| format!("cannot add the rule of a system folder: {e}"))?;
            }
        }
    }
    Ok(ruleset)
}

/// The ruleset with what it handles and the grants' own rules, made by the `landlock`
/// crate (at the ABI the kernel has).
fn grants_ruleset(grants: &Grants) -> Result<RulesetCreated, landlock::RulesetError> {
    let all = AccessFs::from_all(RULES_ABI);
    let execute: BitFlags<AccessFs> = make_bitflags!(AccessFs::{Execute});
    let read_execute = read() | execute;
    let mut ruleset = Ruleset::default().handle_access(all)?;
    if !grants.sockets.contains(&SocketFamily::Ip) {
        ruleset = ruleset.handle_access(AccessNet::from_all(RULES_ABI))?;
    }
    ruleset
        .scope(Scope::from_all(RULES_ABI))?
        .create()?
        .add_rules(path_beneath_rules(grants.run, read_execute))?
        .add_rules(path_beneath_rules(grants.payload, read_execute))?
        .add_rules(path_beneath_rules(grants.read, read()))?
        .add_rules(path_beneath_rules(
            grants
                .work
                .into_iter()
                .chain(grants.write.iter().map(PathBuf::as_path)),
            all,
        ))
}

/// The kernel's Landlock ABI version (0 or less: none), asked once.
fn kernel_abi() -> i32 {
    static ABI_VERSION: OnceLock<i32> = OnceLock::new();
    *ABI_VERSION.get_or_init(|| {
        // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only
        // answers the ABI version.
        let abi = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<u8>(),
                0usize,
                1u32,
            )
        };
        i32::try_from(abi).unwrap_or(0)
    })
}

/// Splits `root` into what may be opened whole and the folders on the way to a `closed`
/// path, which may only be listed: `/etc` opens entry by entry around `/etc/shadow`.
/// Symbolic links into `/proc` are left out: opened here they would name the runtime's
/// own process.
fn open_except(root: &Path, closed: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    if closed.iter().any(|c| c == root) {
        return (Vec::new(), Vec::new());
    }
    if let Ok(target) = fs::read_link(root)
        && root
            .parent()
            .map(|p| p.join(&target))
            .is_some_and(|t| t.starts_with("/proc"))
    {
        return (Vec::new(), Vec::new());
    }
    if !closed.iter().any(|c| c.starts_with(root)) {
        return (Vec::new(), vec![root.to_owned()]);
    }
    let (mut folders, mut open) = (vec![root.to_owned()], Vec::new());
    for entry in fs::read_dir(root).into_iter().flatten().flatten() {
        let (f, o) = open_except(&entry.path(), closed);
        folders.extend(f);
        open.extend(o);
    }
    (folders, open)
}

/// The kernel's Landlock version, for people.
pub(crate) fn landlock_status() -> String {
    let abi = kernel_abi();
    if abi > 0 {
        format!("Landlock ABI {abi}")
    } else {
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EOPNOTSUPP) => "Landlock is built in but not enabled at boot".into(),
            _ => "Landlock is not built into this kernel".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_opens_around_its_secrets() {
        let closed: Vec<PathBuf> = ETC_CLOSED.iter().map(PathBuf::from).collect();
        let (folders, open) = open_except(Path::new("/etc"), &closed);
        assert!(folders.contains(&PathBuf::from("/etc")));
        assert!(open.contains(&PathBuf::from("/etc/passwd")), "{open:?}");
        for secret in &closed {
            assert!(
                !open.iter().any(|p| p.starts_with(secret)),
                "{secret:?} is open"
            );
        }
    }
}
