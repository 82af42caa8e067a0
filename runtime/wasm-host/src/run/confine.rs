//! How a program started through `run` is confined: Landlock, `no_new_privs` and a
//! seccomp filter, prepared in the runtime before the fork and put in force in the child
//! between fork and exec, so the program and everything it starts live under them.
//!
//! **Files** (Landlock, at the best ABI the kernel has, up to 6):
//!
//! | what | rights |
//! |---|---|
//! | the step's payload folder | read, execute (a script step runs the update's own scripts) |
//! | the action's work folder, `capabilities.write` | read, write, execute |
//! | `capabilities.read` | read |
//! | `capabilities.run` and the system folders `/usr`, `/bin`, `/sbin`, `/lib*` | read, execute |
//! | `/etc`, but for its secrets ([`ETC_CLOSED`]: shadow passwords, SSH host keys, TLS private keys, sudoers) | read |
//! | `/dev/null`, `/dev/zero`, `/dev/full` | read, write |
//! | `/dev/random`, `/dev/urandom` | read |
//! | `/proc/<pid>` of the program itself (its `/proc/self`) | read |
//!
//! `/etc` is readable because programs need its configuration (the resolver, locales,
//! users, their own settings), but a shell must not read `/etc/shadow`; a registration
//! that needs a closed file grants it in `capabilities.read`. Write grants carry
//! execute: a program that may write a folder can make a script there and run it with
//! its interpreter anyway, so refusing `execve` there buys nothing.
//!
//! **Network and other processes**: TCP bind and connect are refused (Landlock ABI 4);
//! signals to processes outside the program's own Landlock domain (the runtime above
//! all) and abstract UNIX sockets outside it are refused (ABI 6).
//!
//! **Privileges and the kernel**: `no_new_privs` (no set-user-id gain) and a seccomp
//! filter ([`DENIED_SYSCALLS`]) that answers `EPERM` to what no update step needs:
//! rebooting, loading kernels and modules, mounting, namespaces, tracing other
//! processes, BPF, the kernel keyring, the clock, swap and accounting.
//!
//! Where the kernel has no Landlock, the registration's
//! [`LandlockPolicy`](handrail::confinement::LandlockPolicy) decides: `require` (the
//! default) refuses to start the program, `best-effort` starts it with only
//! `no_new_privs` and seccomp, and says so in the log.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use handrail::confinement::LandlockPolicy;
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, Scope, make_bitflags, path_beneath_rules,
};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// The Landlock ABI the rules are written for (Linux 6.12); older kernels enforce the
/// part they know.
const RULES_ABI: ABI = ABI::V6;

/// Folders of programs and libraries every program may read and execute.
const SYSTEM_FOLDERS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// What under `/etc` stays closed unless `capabilities.read` grants it.
pub(crate) const ETC_CLOSED: &[&str] = &[
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

/// System calls the seccomp filter answers with `EPERM`.
pub(crate) const DENIED_SYSCALLS: &[(&str, libc::c_long)] = &[
    ("reboot", libc::SYS_reboot),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    // The new mount interface reaches what `mount` does.
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
];

/// What one program may reach besides the system's folders.
pub(crate) struct Grants<'a> {
    /// The step's payload folder.
    pub(crate) payload: &'a Path,
    /// The action's work folder.
    pub(crate) work: &'a Path,
    /// `capabilities.read`.
    pub(crate) read: &'a [PathBuf],
    /// `capabilities.write`.
    pub(crate) write: &'a [PathBuf],
    /// `capabilities.run`.
    pub(crate) run: &'a [PathBuf],
}

/// The confinement of one program, ready for the child to put in force with
/// [`Confinement::apply`].
pub(crate) struct Confinement {
    /// The Landlock ruleset; `None` where the kernel has no Landlock.
    ruleset: Option<OwnedFd>,
    filter: &'static BpfProgram,
}

/// The right to read a file or list a folder.
fn read() -> BitFlags<AccessFs> {
    make_bitflags!(AccessFs::{ReadFile | ReadDir})
}

impl Confinement {
    /// Builds the confinement of a program with `grants`. Where the kernel has no
    /// Landlock, `policy` refuses (`Err`, saying why) or lets it go on with a warning.
    pub(crate) fn prepare(grants: &Grants, policy: LandlockPolicy) -> Result<Confinement, String> {
        let filter = seccomp_filter()?;
        let ruleset = ruleset(grants).map_err(|e| format!("cannot set up Landlock: {e}"))?;
        let ruleset: Option<OwnedFd> = ruleset.into();
        let landlock = landlock_status();
        if let Some(warning) = policy.judge(ruleset.is_some(), &landlock)? {
            tracing::warn!("{warning}");
        }
        Ok(Confinement { ruleset, filter })
    }

    /// Puts the confinement in force in the calling process: Landlock (with the
    /// process's own `/proc/<pid>` readable), `no_new_privs`, seccomp.
    ///
    /// Runs in the child between fork and exec: system calls only, no allocation.
    pub(crate) fn apply(&self) -> io::Result<()> {
        // SAFETY: prctl, open, close and the Landlock system calls with valid arguments:
        // a static path, a packed attribute on the stack, descriptors this process owns.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(ruleset) = &self.ruleset {
                let ruleset = ruleset.as_raw_fd();
                // Resolved here, in the child, `/proc/self` is the program's own folder
                // (in the runtime it would be the runtime's, whose environ must stay closed).
                let own = libc::open(c"/proc/self".as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if own < 0 {
                    return Err(io::Error::last_os_error());
                }
                let rule = PathBeneathAttr {
                    allowed_access: read().bits(),
                    parent_fd: own,
                };
                let added = libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset,
                    LANDLOCK_RULE_PATH_BENEATH,
                    &rule as *const PathBeneathAttr,
                    0,
                );
                libc::close(own);
                if added != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        seccompiler::apply_filter(self.filter).map_err(|e| match e {
            seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e,
            _ => io::Error::from_raw_os_error(libc::EINVAL),
        })
    }
}

/// `LANDLOCK_RULE_PATH_BENEATH`.
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;

/// `struct landlock_path_beneath_attr`.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: libc::c_int,
}

/// The Landlock ruleset of `grants` (its descriptor is `None` where Landlock is missing).
fn ruleset(grants: &Grants) -> Result<RulesetCreated, landlock::RulesetError> {
    let all = AccessFs::from_all(RULES_ABI);
    let execute: BitFlags<AccessFs> = make_bitflags!(AccessFs::{Execute});
    let read_execute = read() | execute;
    let write_device: BitFlags<AccessFs> =
        make_bitflags!(AccessFs::{ReadFile | WriteFile | Truncate | IoctlDev});
    let system = SYSTEM_FOLDERS.iter().map(PathBuf::from);
    let closed: Vec<PathBuf> = ETC_CLOSED.iter().map(PathBuf::from).collect();
    let (etc_folders, etc_open) = open_except(Path::new("/etc"), &closed);
    Ruleset::default()
        .handle_access(all)?
        .handle_access(AccessNet::from_all(RULES_ABI))?
        .scope(Scope::from_all(RULES_ABI))?
        .create()?
        .add_rules(path_beneath_rules(
            system.chain(grants.run.iter().cloned()),
            read_execute,
        ))?
        .add_rules(path_beneath_rules([grants.payload], read_execute))?
        .add_rules(path_beneath_rules(etc_open, read()))?
        .add_rules(path_beneath_rules(
            etc_folders,
            make_bitflags!(AccessFs::{ReadDir}),
        ))?
        .add_rules(path_beneath_rules(grants.read, read()))?
        .add_rules(path_beneath_rules(
            std::iter::once(grants.work).chain(grants.write.iter().map(PathBuf::as_path)),
            all,
        ))?
        .add_rules(path_beneath_rules(DEVICES_READ_WRITE, write_device))?
        .add_rules(path_beneath_rules(
            DEVICES_READ,
            make_bitflags!(AccessFs::{ReadFile}),
        ))
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
fn landlock_status() -> String {
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
    if abi > 0 {
        format!("Landlock ABI {abi}")
    } else {
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EOPNOTSUPP) => "Landlock is built in but not enabled at boot".into(),
            _ => "Landlock is not built into this kernel".into(),
        }
    }
}

/// The seccomp filter, compiled once.
fn seccomp_filter() -> Result<&'static BpfProgram, String> {
    static FILTER: OnceLock<Result<BpfProgram, String>> = OnceLock::new();
    FILTER
        .get_or_init(|| {
            let arch = TargetArch::try_from(std::env::consts::ARCH)
                .map_err(|e| format!("no seccomp filter for {}: {e}", std::env::consts::ARCH))?;
            let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = DENIED_SYSCALLS
                .iter()
                .map(|&(_, nr)| (nr, Vec::new()))
                .collect();
            SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(libc::EPERM as u32),
                arch,
            )
            .and_then(BpfProgram::try_from)
            .map_err(|e| format!("cannot build the seccomp filter: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
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

    #[test]
    fn the_seccomp_filter_builds() {
        assert!(!seccomp_filter().unwrap().is_empty());
    }
}
