//! How the worker confines itself before it loads a library: rlimits, then Landlock.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, LandlockStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, make_bitflags, path_beneath_rules,
};

use crate::protocol::{Confinement, WorkerLimits};

/// The Landlock ABI the rules are written for (Linux 6.12): file-system access with
/// truncate and device ioctls, TCP bind and connect, and the signal and abstract UNIX
/// socket scopes. Older kernels enforce the part they know (best effort); the policy
/// decides what happens where Landlock is missing altogether.
const RULES_ABI: ABI = ABI::V6;

/// Sets the worker's resource limits: address space, CPU time, no core dumps.
pub(crate) fn set_rlimits(limits: &WorkerLimits) -> Result<(), String> {
    let bytes = limits.memory_mib.saturating_mul(1024 * 1024);
    // The soft CPU limit sends SIGXCPU, the hard one SIGKILL a second later.
    let cpu = limits.cpu_secs.max(1);
    for (resource, name, soft, hard) in [
        (libc::RLIMIT_AS, "address space", bytes, bytes),
        (libc::RLIMIT_CORE, "core dump size", 0, 0),
        (libc::RLIMIT_CPU, "CPU time", cpu, cpu.saturating_add(1)),
    ] {
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(format!(
                "cannot set the {name} limit: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// How confinement went.
pub(crate) struct Confined {
    /// True when Landlock enforces the rules, fully or partially.
    pub enforced: bool,
    /// The kernel's Landlock status, for people.
    pub landlock: String,
}

/// Restricts the worker (and everything it starts) to `confinement`'s view: read-only
/// files, read-write trees, executable programs; no TCP; no signals to or abstract
/// sockets of processes outside the sandbox. Paths that do not exist get no rule (a rule
/// needs an open file); a regular file gets only the rights that apply to files.
pub(crate) fn landlock(confinement: &Confinement) -> Result<Confined, String> {
    let all = AccessFs::from_all(RULES_ABI);
    let execute: BitFlags<AccessFs> = make_bitflags!(AccessFs::{Execute});
    let read: BitFlags<AccessFs> = make_bitflags!(AccessFs::{ReadFile | ReadDir});
    let read_execute: BitFlags<AccessFs> = read | execute;
    let read_write = all & !execute;
    let status = Ruleset::default()
        .handle_access(all)
        .and_then(|r| r.handle_access(AccessNet::from_all(RULES_ABI)))
        .and_then(|r| r.scope(Scope::from_all(RULES_ABI)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&confinement.read, read)))
        .and_then(|r| r.add_rules(path_beneath_rules(&confinement.write, read_write)))
        .and_then(|r| r.add_rules(path_beneath_rules(&confinement.execute, read_execute)))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("cannot set up Landlock: {e}"))?;
    let enforced = status.ruleset != RulesetStatus::NotEnforced;
    let landlock = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => {
            let rules = match status.ruleset {
                RulesetStatus::FullyEnforced => "fully enforced",
                RulesetStatus::PartiallyEnforced => "partially enforced",
                RulesetStatus::NotEnforced => "not enforced",
            };
            format!("Landlock ABI {effective_abi}, rules {rules}")
        }
        LandlockStatus::NotEnabled => "Landlock is built in but not enabled at boot".into(),
        LandlockStatus::NotImplemented => "Landlock is not built into this kernel".into(),
    };
    Ok(Confined { enforced, landlock })
}
