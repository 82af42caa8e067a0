//! One cgroup v2 per program started through `run`, so that nothing it starts outlives it.
//!
//! Where the runtime may make cgroups (root, a cgroup2 file system mounted and writable),
//! every program gets `handrail/run-<pid>-<n>` under the runtime's own cgroup. The child
//! joins it between fork and exec, before it can start anything, so every process it
//! starts — in the background, in a new session, double-forked — is born inside. When
//! the program has exited (or was stopped), the cgroup is killed as a whole
//! (`cgroup.kill`), the runtime waits until it is empty, and removes it.
//!
//! Where the `pids` controller is available to the cgroup, `pids.max` caps the tasks
//! (processes and their threads) alive in it at `limits.max_processes`; a fork past it
//! fails with `EAGAIN`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The folder under the runtime's own cgroup that holds the programs' cgroups.
const PARENT: &str = "handrail";

/// How long a killed cgroup may take to empty before the runtime gives up removing it.
const EMPTY_WITHIN: Duration = Duration::from_secs(5);

/// How often an emptying cgroup is looked at.
const POLL: Duration = Duration::from_millis(2);

/// Numbers the cgroups this runtime makes.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The cgroup of one program. Dropping it kills what is still inside.
pub(crate) struct RunCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened for the child to write `0` (itself) to.
    procs: File,
    /// True when `pids.max` holds.
    pub(crate) limited: bool,
    removed: bool,
}

impl RunCgroup {
    /// Makes a cgroup for one program, with `max_processes` as its `pids.max` where the
    /// `pids` controller is available. `Err` says why there is none.
    pub(crate) fn create(max_processes: u64) -> Result<RunCgroup, String> {
        let base = own_cgroup()?;
        let parent = base.join(PARENT);
        match fs::create_dir(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", parent.display())),
        }
        // The controller can only be handed down where the cgroup above has no processes
        // of its own (or is the root): otherwise there is simply no limit.
        let pids = enable_pids(&base) && enable_pids(&parent);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("run-{}-{n}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let procs = match OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
        {
            Ok(file) => file,
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                return Err(format!("cannot open {}/cgroup.procs: {e}", dir.display()));
            }
        };
        let mut cgroup = RunCgroup {
            dir,
            procs,
            limited: false,
            removed: false,
        };
        if pids {
            fs::write(cgroup.dir.join("pids.max"), max_processes.to_string())
                .map_err(|e| format!("cannot set {}/pids.max: {e}", cgroup.dir.display()))?;
            cgroup.limited = true;
        }
        Ok(cgroup)
    }

    /// The descriptor the child writes `0` to, to join the cgroup (see [`join`]).
    pub(crate) fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// The cgroup's folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills everything in the cgroup, waits until it is empty (up to a bound) and
    /// removes it. `Err` says what is left.
    pub(crate) async fn kill_and_remove(&mut self) -> Result<(), String> {
        self.kill();
        let until = Instant::now() + EMPTY_WITHIN;
        while self.populated() {
            if Instant::now() >= until {
                return Err(format!(
                    "{} still holds processes {} s after it was killed",
                    self.dir.display(),
                    EMPTY_WITHIN.as_secs()
                ));
            }
            // Processes that were alive when the kill was written may have forked
            // since (where cgroup.kill is missing): kill again.
            self.kill();
            tokio::time::sleep(POLL).await;
        }
        self.removed = true;
        fs::remove_dir(&self.dir).map_err(|e| format!("cannot remove {}: {e}", self.dir.display()))
    }

    /// Sends SIGKILL to every process in the cgroup: `cgroup.kill` (Linux 5.14), or each
    /// pid `cgroup.procs` lists.
    fn kill(&self) {
        if fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for pid in self.pids() {
            // SAFETY: kill(2) has no memory-safety preconditions; a pid that is gone
            // answers ESRCH.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    fn pids(&self) -> Vec<libc::pid_t> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn populated(&self) -> bool {
        match fs::read_to_string(self.dir.join("cgroup.events")) {
            Ok(events) => events.lines().any(|l| l == "populated 1"),
            Err(_) => !self.pids().is_empty(),
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // A run that was given up on (its caller stopped waiting): kill now, and leave
        // the removal to a thread, as the dying processes take a moment to go.
        self.kill();
        let dir = std::mem::take(&mut self.dir);
        std::thread::spawn(move || {
            let until = Instant::now() + EMPTY_WITHIN;
            while fs::remove_dir(&dir).is_err() && Instant::now() < until {
                std::thread::sleep(POLL);
            }
        });
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open as `procs`.
///
/// Runs in the child between fork and exec: only the `write` system call, no allocation.
pub(crate) fn join(procs: RawFd) -> std::io::Result<()> {
    // SAFETY: write(2) from a static buffer to a descriptor the parent opened.
    if unsafe { libc::write(procs, b"0".as_ptr().cast(), 1) } != 1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The folder of the runtime's own cgroup on the cgroup2 file system.
fn own_cgroup() -> Result<PathBuf, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mount = cgroup2_mount(&mountinfo).ok_or("no cgroup2 file system is mounted")?;
    let cgroups = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("the runtime is in no cgroup v2")?;
    Ok(mount.join(own.trim_start_matches('/')))
}

/// The mount point of the first cgroup2 file system in a `/proc/self/mountinfo` text.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        (rest.split(' ').next() == Some("cgroup2"))
            .then(|| fields.split(' ').nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// Hands the `pids` controller down from `cgroup` to its children; true when it is.
fn enable_pids(cgroup: &Path) -> bool {
    let controllers = fs::read_to_string(cgroup.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "pids") {
        return false;
    }
    let subtree = cgroup.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&subtree).unwrap_or_default();
    enabled.split_whitespace().any(|c| c == "pids")
        || OpenOptions::new()
            .write(true)
            .open(&subtree)
            .and_then(|mut f| f.write_all(b"+pids"))
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_among_v1_mounts() {
        let mountinfo = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
32 30 0:28 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("31 30 0:27 / /x rw - cgroup cgroup rw"), None);
    }
}
