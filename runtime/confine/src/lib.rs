//! The one launcher for every process a handler gets: the programs a WebAssembly handler
//! runs through `run` (every script step among them) and a native handler's worker.
//!
//! What confines a process is prepared in the runtime before the child starts
//! ([`Confinement::prepare`], [`ActionCgroup::create`]) and put in force in the child
//! before it executes the program ([`Launch::spawn`]), so the process and everything it
//! starts live under it from their first instruction:
//!
//! 1. **a cgroup of its own** ([`cgroup`]): `pids.max` and the memory limit where the
//!    controllers are available; the whole cgroup is killed when the action ends, so
//!    nothing the process starts outlives it (where no cgroup can be made, a reaper
//!    does the killing: see [`spawn`]);
//! 2. **capabilities**: all dropped but the registration's `capabilities.privileges`
//!    (none by default), from the bounding, ambient, inheritable, permitted and
//!    effective sets, so a root program keeps only those and nothing it executes
//!    gains more;
//! 3. **`no_new_privs`**: no set-user-id or file-capability gain;
//! 4. **Landlock** ([`rules`]): the files the grants name and the system's own folders;
//!    TCP refused unless `capabilities.sockets` grants `ip`; signals and abstract UNIX
//!    sockets outside the process's own domain refused;
//! 5. **seccomp** ([`DENIED_SYSCALLS`], sockets, namespaces): what no update step needs
//!    answers `EPERM`, and sockets of a family `capabilities.sockets` does not grant
//!    cannot be made.
//!
//! Where the kernel has no Landlock, the registration's
//! [`LandlockPolicy`] decides: `require` (the
//! default) refuses, `best-effort` starts the process with the rest in force and says
//! so in the log.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use handrail::confinement::{KernelFeature, LandlockPolicy, Privilege, SocketFamily};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

pub mod cgroup;
pub mod rules;
pub mod spawn;

pub use cgroup::{ActionCgroup, CgroupLimits};
pub use spawn::{Child, Launch};

/// System calls the seccomp filter answers with `EPERM`: rebooting, loading kernels and
/// modules, mounting, namespaces, tracing other processes, BPF, the kernel keyring, the
/// clock, swap, accounting, and `io_uring` (which would open sockets past the filter).
pub const DENIED_SYSCALLS: &[(&str, libc::c_long)] = &[
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
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
];

/// The `clone` flags that make namespaces: refused as `unshare` is.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// What one process may reach besides the system's folders.
#[derive(Debug, Clone, Copy)]
pub struct Grants<'a> {
    /// The step's payload: folders or files, read and execute (a script step runs the
    /// update's own scripts).
    pub payload: &'a [PathBuf],
    /// The action's work folder, read, write and execute; `None` for a call outside
    /// any step (a native handler's `describe`).
    pub work: Option<&'a Path>,
    /// `capabilities.read`, and what the runtime adds (a native handler's library).
    pub read: &'a [PathBuf],
    /// `capabilities.write`.
    pub write: &'a [PathBuf],
    /// `capabilities.run`, and what the runtime adds (the native worker): read and
    /// execute.
    pub run: &'a [PathBuf],
    /// `capabilities.sockets`.
    pub sockets: &'a [SocketFamily],
    /// `capabilities.privileges`.
    pub privileges: &'a [Privilege],
}

/// The confinement of one process, ready for the child to put in force (see
/// [`Launch::spawn`]).
pub struct Confinement {
    /// The Landlock ruleset; `None` where the kernel has no Landlock.
    ruleset: Option<OwnedFd>,
    /// The seccomp filters, in the order they are installed.
    filters: &'static [BpfProgram],
    /// The capabilities kept (a bit per capability number), within what the runtime
    /// holds.
    kept: u64,
    /// The highest capability number the kernel knows.
    last_capability: u8,
    /// Whether the bounding set can be lowered (the runtime holds `CAP_SETPCAP`).
    drop_bounding: bool,
    /// The Landlock status, for people.
    landlock: String,
}

impl Confinement {
    /// Builds the confinement of a process with `grants`. Where the kernel has no
    /// Landlock or installs no seccomp filter, `policy` refuses (`Err`, saying why) or
    /// lets it go on without, with a warning in the log.
    pub fn prepare(grants: &Grants, policy: LandlockPolicy) -> Result<Confinement, String> {
        let filters: &'static [BpfProgram] = match seccomp_status()
            .clone()
            .and_then(|()| seccomp_filters(grants.sockets))
        {
            Ok(filters) => filters,
            Err(status) => {
                if let Some(warning) = policy.judge(KernelFeature::Seccomp, false, &status)? {
                    tracing::warn!("{warning}");
                }
                &[]
            }
        };
        let ruleset = rules::ruleset(grants).map_err(|e| format!("cannot set up Landlock: {e}"))?;
        let landlock = rules::landlock_status();
        if let Some(warning) =
            policy.judge(KernelFeature::Landlock, ruleset.is_some(), &landlock)?
        {
            tracing::warn!("{warning}");
        }
        let held = held_capabilities();
        let wanted = grants
            .privileges
            .iter()
            .fold(0u64, |bits, p| bits | 1 << p.number());
        Ok(Confinement {
            ruleset,
            filters,
            kept: wanted & held.permitted,
            last_capability: last_capability(),
            drop_bounding: held.effective & (1 << CAP_SETPCAP) != 0,
            landlock,
        })
    }

    /// True when Landlock rules are in force (fully or in part).
    pub fn landlock_enforced(&self) -> bool {
        self.ruleset.is_some()
    }

    /// The kernel's Landlock status, for people.
    pub fn landlock_status(&self) -> &str {
        &self.landlock
    }

    /// Puts the confinement in force in the calling process: capabilities, then
    /// `no_new_privs`, Landlock (with the process's own `/proc/<pid>` readable) and the
    /// seccomp filters.
    ///
    /// Meant for a child before it executes a program: system calls only, no
    /// allocation.
    pub fn apply(&self) -> io::Result<()> {
        if let Some((kept, last)) = self.bounding() {
            drop_bounding(kept, last)?;
        }
        self.apply_but_inherited()?;
        apply_filters(self.filters)
    }

    /// [`Confinement::apply`] but the seccomp filters and the bounding set: for a child
    /// that has them from the launcher thread that started it (see [`spawn`]).
    pub(crate) fn apply_but_inherited(&self) -> io::Result<()> {
        self.drop_capabilities()?;
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if let Some(ruleset) = &self.ruleset {
            rules::restrict_self(ruleset.as_raw_fd())?;
        }
        Ok(())
    }

    /// The seccomp filters, compiled once per set of socket grants (so the same slice
    /// for the same grants).
    pub(crate) fn filters(&self) -> &'static [BpfProgram] {
        self.filters
    }

    /// The capabilities the bounding set keeps and the highest the kernel knows, where
    /// the bounding set can be lowered.
    pub(crate) fn bounding(&self) -> Option<(u64, u8)> {
        self.drop_bounding
            .then_some((self.kept, self.last_capability))
    }

    /// Lowers the ambient set, then the inheritable, permitted and effective sets to
    /// what is kept (the bounding set, which needs `CAP_SETPCAP`, was lowered before:
    /// see [`drop_bounding`]).
    fn drop_capabilities(&self) -> io::Result<()> {
        // SAFETY: prctl with integer arguments. Kernels before 4.3 have no ambient set
        // (EINVAL), which leaves nothing to clear.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            );
        }
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let low = (self.kept & 0xffff_ffff) as u32;
        let high = (self.kept >> 32) as u32;
        let data = [
            CapData {
                effective: low,
                permitted: low,
                inheritable: 0,
            },
            CapData {
                effective: high,
                permitted: high,
                inheritable: 0,
            },
        ];
        // SAFETY: capset(2) reads a valid header and two data structs.
        if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Lowers the calling thread's bounding set to `kept` (a bit per capability number up
/// to `last`); a process it starts has it from there. System calls only.
pub(crate) fn drop_bounding(kept: u64, last: u8) -> io::Result<()> {
    for cap in 0..=last {
        if kept & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments.
            let dropped =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            if dropped != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// `CAP_SETPCAP`: lowering the bounding set needs it.
const CAP_SETPCAP: u32 = 8;

/// How long what a program left in its cgroup when it exited may take to end by itself
/// before it counts as left behind (see [`ActionCgroup::kill_and_remove`]).
pub const LEFT_BEHIND_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Processes each handler left running once its program or worker had exited, which
/// the runtime then killed, by handler id (see [`left_behind`]).
static LEFT_BEHIND: std::sync::Mutex<BTreeMap<String, u64>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Counts `count` processes that `handler`'s program or worker left running when it
/// exited (the runtime killed them), and says so in the log.
pub fn note_left_behind(handler: &str, count: usize) {
    if count == 0 {
        return;
    }
    tracing::warn!(
        handler,
        "{count} processes were still running when the handler's program ended; they were killed with its cgroup"
    );
    let mut left = LEFT_BEHIND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *left.entry(handler.to_owned()).or_default() += count as u64;
}

/// How many processes `handler`'s programs and workers have left running in this
/// process's life (for the conformance kit, which fails a handler that leaves any).
pub fn left_behind(handler: &str) -> u64 {
    LEFT_BEHIND
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(handler)
        .copied()
        .unwrap_or(0)
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two structs.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The runtime's own capability sets.
struct Held {
    effective: u64,
    permitted: u64,
}

/// The capabilities the runtime holds (none when they cannot be read).
fn held_capabilities() -> Held {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget(2) writes two data structs into the array.
    if unsafe { libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()) } != 0 {
        return Held {
            effective: 0,
            permitted: 0,
        };
    }
    let join = |low: u32, high: u32| u64::from(low) | u64::from(high) << 32;
    Held {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
    }
}

/// The highest capability number the kernel knows (`/proc/sys/kernel/cap_last_cap`).
fn last_capability() -> u8 {
    static LAST: OnceLock<u8> = OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(63)
    })
}

/// Installs `filters` on the calling thread (with `no_new_privs`, which they need).
pub(crate) fn apply_filters(filters: &[BpfProgram]) -> io::Result<()> {
    for filter in filters {
        seccompiler::apply_filter(filter).map_err(|e| match e {
            seccompiler::Error::Prctl(e) | seccompiler::Error::Seccomp(e) => e,
            _ => io::Error::from_raw_os_error(libc::EINVAL),
        })?;
    }
    Ok(())
}

/// Whether this kernel installs seccomp filters, found once per process by installing
/// the filters of a process granted nothing on a thread made for it, which then ends:
/// `Err` says why not (the architecture has no filter, or the kernel, or an emulator
/// such as qemu-user, refuses them).
fn seccomp_status() -> &'static Result<(), String> {
    static STATUS: OnceLock<Result<(), String>> = OnceLock::new();
    STATUS.get_or_init(|| {
        let filters = seccomp_filters(&[])?;
        std::thread::Builder::new()
            .name("handrail-seccomp-probe".into())
            .spawn(move || apply_filters(filters))
            .and_then(|probe| {
                probe
                    .join()
                    .map_err(|_| io::Error::other("the probe thread panicked"))
            })
            .and_then(|installed| installed)
            .map_err(|e| format!("installing a filter: {e}"))
    })
}

/// The seccomp filters for processes granted `sockets`, compiled once per set: one
/// answering `EPERM` (the denied calls, namespace flags of `clone`, sockets of families
/// not granted), one answering `ENOSYS` to `clone3`, whose flags a filter cannot read,
/// so that the C library falls back to `clone`.
fn seccomp_filters(sockets: &[SocketFamily]) -> Result<&'static [BpfProgram], String> {
    type Compiled = Result<Vec<BpfProgram>, String>;
    static FILTERS: OnceLock<std::sync::Mutex<BTreeMap<u8, &'static Compiled>>> = OnceLock::new();
    let key = sockets.iter().fold(0u8, |k, f| k | 1 << (*f as u8));
    let mut cache = FILTERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let compiled: &'static Compiled = cache
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(compile_filters(sockets))));
    compiled.as_deref().map_err(Clone::clone)
}

/// A system call's number as seccompiler takes it: libc's are a `c_long`, 32 bits wide on
/// 32-bit targets.
#[allow(
    clippy::useless_conversion,
    reason = "a conversion on 32-bit targets, where c_long is i32"
)]
fn number(nr: libc::c_long) -> i64 {
    i64::from(nr)
}

fn compile_filters(sockets: &[SocketFamily]) -> Result<Vec<BpfProgram>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("no seccomp filter for {}: {e}", std::env::consts::ARCH))?;
    let bad = |e: seccompiler::BackendError| format!("cannot build the seccomp filter: {e}");
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED_SYSCALLS
        .iter()
        .map(|&(_, nr)| (number(nr), Vec::new()))
        .collect();
    let namespaces = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    denied.insert(number(libc::SYS_clone), namespaces);
    let families: Vec<u64> = sockets
        .iter()
        .flat_map(|family| match family {
            SocketFamily::Ip => vec![libc::AF_INET as u64, libc::AF_INET6 as u64],
            SocketFamily::Unix => vec![libc::AF_UNIX as u64],
            SocketFamily::Netlink => vec![libc::AF_NETLINK as u64],
        })
        .collect();
    // A socket of any other family is refused: one rule whose conditions all hold when
    // the domain is none of the granted ones (no condition at all: every socket).
    let socket_rules = if families.is_empty() {
        Vec::new()
    } else {
        let conditions = families
            .iter()
            .map(|&f| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        vec![SeccompRule::new(conditions).map_err(bad)?]
    };
    denied.insert(number(libc::SYS_socket), socket_rules);
    let eperm = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(bad)?;
    let enosys = SeccompFilter::new(
        BTreeMap::from([(number(libc::SYS_clone3), Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(bad)?;
    [eperm, enosys]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).map_err(bad))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_installs_the_filters_on_the_probe_thread() {
        // The suite runs on a real x86_64 kernel with seccomp: the probe must say so, or
        // every best-effort registration would run unfiltered.
        assert_eq!(seccomp_status(), &Ok(()));
    }

    #[test]
    fn the_seccomp_filters_build_for_every_socket_grant() {
        for sockets in [
            &[][..],
            &[SocketFamily::Ip],
            &[SocketFamily::Unix, SocketFamily::Netlink, SocketFamily::Ip],
        ] {
            let filters = seccomp_filters(sockets).unwrap();
            assert_eq!(filters.len(), 2);
            assert!(filters.iter().all(|f| !f.is_empty()));
        }
    }
}
