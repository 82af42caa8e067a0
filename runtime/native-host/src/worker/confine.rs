//! The limits the worker sets on itself before it loads a library (the rest of its
//! confinement is in force from its start).

use crate::protocol::WorkerLimits;

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
