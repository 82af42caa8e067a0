//! One cgroup per confined process, so that nothing it starts outlives it and its
//! processes and memory are bounded.
//!
//! Where the runtime may make cgroups (root, a cgroup2 file system mounted and writable),
//! every process gets `handrail/<runtime pid>-<n>` under the runtime's own cgroup v2.
//! The child joins it between fork and exec, before it can start anything, so every
//! process it starts — in the background, in a new session, double-forked — is born
//! inside. When the action is over (the process exited, timed out or was cancelled),
//! the cgroup is killed as a whole (`cgroup.kill`), the runtime waits until it is empty,
//! and removes it.
//!
//! **Limits.** `pids.max` caps the tasks (processes and their threads) alive in it (a
//! fork past it fails with `EAGAIN`); `memory.max` caps their memory (past it the
//! kernel's OOM killer ends one of them). Each is set in the cgroup v2 where its
//! controller is available there. On a hybrid system, whose `pids` and `memory`
//! controllers are mounted as cgroup v1 hierarchies, the process also joins a cgroup of
//! its own in each of those (`pids.max`, `memory.limit_in_bytes`); where the cgroup v2
//! has neither controller, the v1 `pids` cgroup stands in for the v2 one (it is the one
//! killed and watched, by its process list), so a launch makes, joins and removes two
//! cgroups rather than three. Where neither has a controller, that limit does not hold
//! and the log says so once.
//!
//! **Left behind.** A runtime killed outright cannot remove its cgroups, and what its
//! action started may still run. [`sweep_left_behind`] (called when a host starts, so
//! before a resumed deployment runs anything, and again by the first cgroup a runtime
//! makes) kills whatever still runs in the cgroups of runtimes that are gone and removes
//! them: a resumed step never runs beside the previous run's program.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

/// The folder under the runtime's own cgroup that holds the processes' cgroups.
const PARENT: &str = "handrail";

/// How long a killed cgroup may take to empty before the runtime gives up removing it.
const EMPTY_WITHIN: Duration = Duration::from_secs(5);

/// How often an emptying cgroup is looked at.
const POLL: Duration = Duration::from_millis(2);

/// Numbers the cgroups this runtime makes.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The limits of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLimits {
    /// `pids.max`: the most tasks alive at once.
    pub max_processes: u64,
    /// `memory.max`: the most memory, in bytes.
    pub memory_bytes: u64,
}

/// A cgroup v1 hierarchy's cgroup for one process, for a controller cgroup v2 lacks.
struct V1Group {
    dir: PathBuf,
    procs: File,
}

/// The cgroup of one confined process. Dropping it kills what is still inside.
pub struct ActionCgroup {
    dir: PathBuf,
    /// The file the child writes `0` (itself) to, to join: see [`open_join`].
    procs: File,
    /// True when `dir` is a cgroup v1 (which has no `cgroup.kill` nor `cgroup.events`).
    is_v1: bool,
    v1: Vec<V1Group>,
    /// True when the process count is limited.
    pub processes_limited: bool,
    /// True when memory is limited.
    pub memory_limited: bool,
    removed: bool,
}

/// The descriptors a child writes itself into to join its cgroups: the v2 one first.
#[derive(Debug, Clone, Copy)]
pub struct JoinFds {
    fds: [RawFd; 3],
    len: usize,
}

impl ActionCgroup {
    /// Makes a cgroup for one process, with `limits` where the controllers are available.
    /// `Err` says why there is none.
    pub fn create(limits: CgroupLimits) -> Result<ActionCgroup, String> {
        let base = own_cgroup()?;
        let parent = base.join(PARENT);
        sweep_left_behind();
        // A controller can only be handed down where the cgroup above has no processes
        // of its own (or is the root). Once handed down, it stays.
        static ENABLED: OnceLock<Result<(bool, bool), String>> = OnceLock::new();
        let &(v2_pids, v2_memory) = ENABLED
            .get_or_init(|| {
                ensure_dir(&parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                Ok((
                    enable(&base, "pids") && enable(&parent, "pids"),
                    enable(&base, "memory") && enable(&parent, "memory"),
                ))
            })
            .as_ref()
            .map_err(Clone::clone)?;
        let name = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let max_processes = limits.max_processes.to_string();
        let memory = limits.memory_bytes.to_string();
        // On a hybrid system whose cgroup v2 has neither controller, a v2 cgroup would
        // only be a third cgroup to make, join and remove: the v1 `pids` cgroup holds the
        // process instead, and is what is killed and watched.
        let v1_pids = (!v2_pids && !v2_memory)
            .then(|| own_v1_cgroup("pids"))
            .flatten();
        let mut cgroup = match v1_pids {
            Some(own) => {
                let mut cgroup = ActionCgroup::make(&own.join(PARENT), &name, true)?;
                write(&cgroup.dir, "pids.max", &max_processes)?;
                cgroup.processes_limited = true;
                cgroup
            }
            None => {
                let mut cgroup = ActionCgroup::make(&parent, &name, false)?;
                if v2_pids {
                    write(&cgroup.dir, "pids.max", &max_processes)?;
                    cgroup.processes_limited = true;
                } else {
                    cgroup.processes_limited =
                        cgroup.add_v1("pids", "pids.max", &max_processes, &name);
                }
                cgroup
            }
        };
        if v2_memory {
            write(&cgroup.dir, "memory.max", &memory)?;
            cgroup.memory_limited = true;
        } else {
            cgroup.memory_limited =
                cgroup.add_v1("memory", "memory.limit_in_bytes", &memory, &name);
        }
        static SAID: Once = Once::new();
        if !(cgroup.processes_limited && cgroup.memory_limited) {
            SAID.call_once(|| {
                tracing::warn!(
                    "no cgroup controller for {}: a handler's processes are not limited there",
                    match (cgroup.processes_limited, cgroup.memory_limited) {
                        (false, false) => "the process count or memory",
                        (false, true) => "the process count",
                        _ => "memory",
                    }
                );
            });
        }
        Ok(cgroup)
    }

    /// Makes the cgroup `name` under `parent` (made too when missing), with the file
    /// its process joins by open: `tasks` in a cgroup v1 (`v1`), else `cgroup.procs`.
    fn make(parent: &Path, name: &str, v1: bool) -> Result<ActionCgroup, String> {
        let dir = make_dir(parent, name)?;
        let procs = match open_join(&dir, v1) {
            Ok(file) => file,
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                return Err(e);
            }
        };
        Ok(ActionCgroup {
            dir,
            procs,
            is_v1: v1,
            v1: Vec::new(),
            processes_limited: false,
            memory_limited: false,
            removed: false,
        })
    }

    /// Adds a cgroup v1 of `controller` with `file` set to `value`; false when there is
    /// none (no such hierarchy, or it cannot be written).
    fn add_v1(&mut self, controller: &str, file: &str, value: &str, name: &str) -> bool {
        let Some(own) = own_v1_cgroup(controller) else {
            return false;
        };
        let Ok(dir) = make_dir(&own.join(PARENT), name) else {
            return false;
        };
        match (write(&dir, file, value), open_join(&dir, true)) {
            (Ok(()), Ok(procs)) => {
                self.v1.push(V1Group { dir, procs });
                true
            }
            _ => {
                let _ = fs::remove_dir(&dir);
                false
            }
        }
    }

    /// The descriptors the child writes `0` to, to join the cgroups (see [`join`]).
    pub fn join_fds(&self) -> JoinFds {
        let mut fds = [self.procs.as_raw_fd(); 3];
        for (slot, group) in fds[1..].iter_mut().zip(&self.v1) {
            *slot = group.procs.as_raw_fd();
        }
        JoinFds {
            fds,
            len: 1 + self.v1.len().min(2),
        }
    }

    /// The cgroup's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process ids in the cgroup now.
    pub fn pids(&self) -> Vec<libc::pid_t> {
        pids(&self.dir)
    }

    /// Ends the cgroup of `handler`'s process once that process has stopped: when it
    /// `exited` by itself, what stays past [`LEFT_BEHIND_GRACE`](crate::LEFT_BEHIND_GRACE)
    /// counts as left behind ([`note_left_behind`](crate::note_left_behind)); what a time
    /// limit or a cancel stopped does not. Everything in it is then killed, and it is
    /// removed (a failure to is logged).
    pub async fn end(&mut self, handler: &str, exited: bool) {
        let settle = if exited {
            crate::LEFT_BEHIND_GRACE
        } else {
            Duration::ZERO
        };
        match self.kill_and_remove(settle).await {
            Ok(left) if exited => crate::note_left_behind(handler, left),
            Ok(_) => {}
            Err(e) => tracing::warn!(handler, "{e}"),
        }
    }

    /// Kills everything in the cgroup, waits until it is empty (up to a bound) and
    /// removes it. First, for up to `settle`, what is still in it may end by itself (the
    /// helpers a program that exited told to stop); returns how many processes were
    /// still in it after that — what the process left behind. `Err` says what is left.
    pub async fn kill_and_remove(&mut self, settle: Duration) -> Result<usize, String> {
        let settled = Instant::now() + settle;
        let mut occupied = self.occupied();
        while occupied && Instant::now() < settled {
            tokio::time::sleep(POLL).await;
            occupied = self.occupied();
        }
        let mut alive = 0;
        if occupied {
            alive = self.pids().len();
            self.kill();
            let until = Instant::now() + EMPTY_WITHIN;
            while self.occupied() {
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
        }
        self.removed = true;
        for group in &self.v1 {
            let _ = fs::remove_dir(&group.dir);
        }
        fs::remove_dir(&self.dir)
            .map_err(|e| format!("cannot remove {}: {e}", self.dir.display()))?;
        Ok(alive)
    }

    /// True while a process is in the cgroup: one read of `cgroup.events`, or of the
    /// process list in a cgroup v1 (which has no `cgroup.events`).
    fn occupied(&self) -> bool {
        if self.is_v1 {
            !self.pids().is_empty()
        } else {
            populated(&self.dir)
        }
    }

    /// Sends SIGKILL to everything in the cgroup (see [`kill`]; a cgroup v1 has no
    /// `cgroup.kill`, so its processes are killed by their pids at once).
    fn kill(&self) {
        if self.is_v1 {
            kill_listed(&self.dir);
        } else {
            kill(&self.dir);
        }
    }
}

impl Drop for ActionCgroup {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // An action that was given up on (its caller stopped waiting): kill now, and
        // leave the removal to a thread, as the dying processes take a moment to go.
        self.kill();
        let dirs: Vec<PathBuf> = self
            .v1
            .iter()
            .map(|g| g.dir.clone())
            .chain([std::mem::take(&mut self.dir)])
            .collect();
        std::thread::spawn(move || remove_when_empty(&dirs));
    }
}

/// Moves the calling process into the cgroups `fds` holds.
///
/// Runs in the child between fork and exec: only the `write` system call, no allocation.
pub fn join(fds: &JoinFds) -> io::Result<()> {
    for &fd in &fds.fds[..fds.len] {
        // SAFETY: write(2) from a static buffer to a descriptor the parent opened.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes the folder `name` under `parent`, and `parent` first only where it is missing
/// (the common case makes one folder).
fn make_dir(parent: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = parent.join(name);
    let made = match fs::create_dir(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ensure_dir(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            fs::create_dir(&dir)
        }
        made => made,
    };
    made.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Makes the folder `dir` unless it is there already.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        made => made,
    }
}

/// Opens the file a process joins the cgroup at `dir` by. In a cgroup v1 that is
/// `tasks`, which moves the one thread that writes `0`: the child is single-threaded
/// until it executes the program, so that is the whole process, and the kernel moves
/// it without taking the lock that holds every thread group of the system still (the
/// one `cgroup.procs` takes, and waits for in a busy multi-threaded runtime).
fn open_join(dir: &Path, v1: bool) -> Result<File, String> {
    let file = if v1 { "tasks" } else { "cgroup.procs" };
    OpenOptions::new()
        .write(true)
        .open(dir.join(file))
        .map_err(|e| format!("cannot open {}/{file}: {e}", dir.display()))
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    fs::write(dir.join(file), value)
        .map_err(|e| format!("cannot set {}/{file}: {e}", dir.display()))
}

/// Sends SIGKILL to every process in the cgroup at `dir`: `cgroup.kill` (Linux 5.14), or
/// each pid `cgroup.procs` lists.
fn kill(dir: &Path) {
    if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    kill_listed(dir);
}

/// Sends SIGKILL to each pid `cgroup.procs` at `dir` lists.
fn kill_listed(dir: &Path) {
    for pid in pids(dir) {
        // SAFETY: kill(2) has no memory-safety preconditions; a pid that is gone answers
        // ESRCH.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

fn pids(dir: &Path) -> Vec<libc::pid_t> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn populated(dir: &Path) -> bool {
    match fs::read_to_string(dir.join("cgroup.events")) {
        Ok(events) => events.lines().any(|l| l == "populated 1"),
        Err(_) => !pids(dir).is_empty(),
    }
}

/// Removes `dirs` (cgroups that were killed) once they are empty, within a bound.
fn remove_when_empty(dirs: &[PathBuf]) {
    let until = Instant::now() + EMPTY_WITHIN;
    for dir in dirs {
        while fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    }
}

/// Kills what runs in the cgroups that runtimes which are gone left behind, and removes
/// them (with their cgroup v1 twins). Runs once per process; does nothing where the
/// runtime makes no cgroups.
pub fn sweep_left_behind() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        if let Ok(base) = own_cgroup() {
            sweep(&base.join(PARENT));
            for own in ["pids", "memory"].into_iter().filter_map(own_v1_cgroup) {
                sweep(&own.join(PARENT));
            }
        }
    });
}

fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(runtime) = name
            .to_str()
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only asks whether the process exists.
        let alive = unsafe { libc::kill(runtime, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if alive {
            continue;
        }
        let dir = entry.path();
        let left = pids(&dir);
        if !left.is_empty() {
            tracing::warn!(
                cgroup = %dir.display(),
                "killing processes {left:?} that a handler of a runtime which is gone (pid {runtime}) left running"
            );
        }
        kill(&dir);
        remove_when_empty(&[dir]);
    }
}

/// Hands `controller` down from `cgroup` to its children; true when it is.
fn enable(cgroup: &Path, controller: &str) -> bool {
    let controllers = fs::read_to_string(cgroup.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == controller) {
        return false;
    }
    let subtree = cgroup.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&subtree).unwrap_or_default();
    enabled.split_whitespace().any(|c| c == controller)
        || OpenOptions::new()
            .write(true)
            .open(&subtree)
            .and_then(|mut f| f.write_all(format!("+{controller}").as_bytes()))
            .is_ok()
}

/// The folder of the runtime's own cgroup on the cgroup2 file system (found once: a
/// runtime stays in the cgroup it was started in).
fn own_cgroup() -> Result<PathBuf, String> {
    static OWN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    OWN.get_or_init(find_own_cgroup).clone()
}

fn find_own_cgroup() -> Result<PathBuf, String> {
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

/// The folder of the runtime's own cgroup in the cgroup v1 hierarchy of `controller`
/// (`pids` or `memory`; found once).
fn own_v1_cgroup(controller: &str) -> Option<PathBuf> {
    static OWN: OnceLock<[Option<PathBuf>; 2]> = OnceLock::new();
    let [pids, memory] =
        OWN.get_or_init(|| [find_own_v1_cgroup("pids"), find_own_v1_cgroup("memory")]);
    match controller {
        "pids" => pids.clone(),
        "memory" => memory.clone(),
        _ => find_own_v1_cgroup(controller),
    }
}

fn find_own_v1_cgroup(controller: &str) -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = cgroup1_mount(&mountinfo, controller)?;
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|l| {
        let mut fields = l.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some(path)
    })?;
    Some(mount.join(own.trim_start_matches('/')))
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

/// The mount point of the cgroup v1 hierarchy of `controller` in a mountinfo text.
fn cgroup1_mount(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        let mut rest = rest.split(' ');
        let (kind, options) = (rest.next()?, rest.nth(1)?);
        (kind == "cgroup" && options.split(',').any(|o| o == controller))
            .then(|| fields.split(' ').nth(4).map(PathBuf::from))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 30 0:28 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn the_cgroup2_mount_is_found_among_v1_mounts() {
        assert_eq!(
            cgroup2_mount(MOUNTINFO),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("31 30 0:27 / /x rw - cgroup cgroup rw"), None);
    }

    #[test]
    fn a_v1_hierarchy_is_found_by_its_controller() {
        assert_eq!(
            cgroup1_mount(MOUNTINFO, "memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(cgroup1_mount(MOUNTINFO, "cpu"), None);
    }
}
