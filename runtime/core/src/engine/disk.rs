//! The disk budget of one action: what its work folder may hold, and the free space the
//! state directory's file system keeps for the runtime's own records.
//!
//! A handler granted nothing can still write its work folder, and the work folder lives
//! on the state directory's file system: filled, the journal could not record the
//! action's end, and the device would take no further update. So while an action runs,
//! a watchdog looks at the file system's free space (every [`FREE_EVERY`]) and at what
//! the work folder holds (every [`USED_EVERY`]). When the work folder holds more than the
//! registration's `limits.disk_mib`, or the free space falls under
//! `[deployment] reserve_mib`, the action is stopped as a cancel stops it, and fails with
//! [`ext::DISK_BUDGET`](handrail_contract::codes::ext::DISK_BUDGET) naming which. The
//! deployment then ends as any failure does — `restore` and `cancel`, which undo, may add
//! the budget to what the folder holds and are not held to the reserve — and its folder
//! (the work folder with it) is removed before its history entry is written, so the
//! space is back for the next deployment.
//!
//! Who took the space decides whose fault it is. When the free space falls under the
//! reserve and the action's work folder grew by less than half of what the file system
//! lost since the action started (or the file system was under the reserve before it
//! started), something else filled it: that is a condition of the host, not the
//! handler's result ([`Exceeded::Host`]). The action is stopped and nothing is recorded
//! as its result; the run ends with an error saying there is no space left, and
//! `handrail resume`, once there is room again, runs the action again.
//!
//! The watchdog samples: a handler that writes faster than the sampling interval
//! allows goes past the limit by what it writes in one interval (some MiB at disk speed),
//! which the reserve absorbs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The size of the file the runtime keeps allocated in the state directory
/// (`<state>/reserve`) and gives up when an action took the free space under the
/// reserve, so that the journal can still record how the action ended however full the
/// file system got.
pub(crate) const RESERVE_FILE_BYTES: i64 = 1024 * 1024;

/// Makes sure `path`, the reserve file, is allocated: made with its blocks when it is
/// missing or short. A file system without the room is said in the log.
pub(crate) fn keep_reserve_file(path: &Path) {
    use std::os::fd::AsRawFd;
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= RESERVE_FILE_BYTES as u64) {
        return;
    }
    let made = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .and_then(|file| {
            // SAFETY: posix_fallocate(3) on a descriptor this process owns (its 64-bit
            // form, so the length is an `off64_t` on 32-bit targets too).
            match unsafe { libc::posix_fallocate64(file.as_raw_fd(), 0, RESERVE_FILE_BYTES) } {
                0 => file.sync_all(),
                e => Err(std::io::Error::from_raw_os_error(e)),
            }
        });
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        tracing::warn!(reserve = %path.display(), "cannot keep space for the runtime's records: {e}");
    }
}

/// How often the free space is looked at (one `statvfs`).
pub(super) const FREE_EVERY: Duration = Duration::from_millis(10);

/// How often the work folder's size is counted (a walk of the folder).
pub(super) const USED_EVERY: Duration = Duration::from_millis(100);

/// Most entries counted in a work folder; one with more is over any budget.
const MAX_ENTRIES: usize = 200_000;

/// The budget of one action.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    /// The action's work folder.
    pub work: PathBuf,
    /// Most bytes the work folder may hold (`limits.disk_mib`).
    pub work_bytes: u64,
    /// Free bytes the file system keeps (`[deployment] reserve_mib`).
    pub reserve_bytes: u64,
    /// The file system's free bytes when the action started.
    pub free_at_start: u64,
    /// What the work folder held when the action started, in bytes.
    pub work_at_start: u64,
}

impl Budget {
    /// The budget of an action about to start in `work`, which holds `held` bytes
    /// ([`used_bytes`], measured by the caller), its free space measured now.
    pub(super) fn starting(work: &Path, held: u64, work_bytes: u64, reserve_bytes: u64) -> Budget {
        Budget {
            work: work.to_owned(),
            work_bytes,
            reserve_bytes,
            free_at_start: free_bytes(work).unwrap_or(u64::MAX),
            work_at_start: held,
        }
    }
}

/// How an action went over its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Exceeded {
    /// The work folder holds more than its limit.
    Work {
        /// The folder.
        folder: PathBuf,
        /// What it holds (at least), in bytes.
        used: u64,
        /// Its limit, in bytes.
        limit: u64,
    },
    /// The file system's free space fell under the reserve, and something other than
    /// the action took it: a condition of the host, after which the action runs again.
    Host {
        /// The folder whose file system it is.
        folder: PathBuf,
        /// Free bytes.
        free: u64,
        /// The reserve, in bytes.
        reserve: u64,
        /// What the action's work folder grew by, in bytes.
        grew: u64,
    },
    /// The file system's free space fell under the reserve, taken by the action.
    Reserve {
        /// The folder whose file system it is.
        folder: PathBuf,
        /// Free bytes.
        free: u64,
        /// The reserve, in bytes.
        reserve: u64,
    },
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: &u64| b / (1024 * 1024);
        match self {
            Exceeded::Work {
                folder,
                used,
                limit,
            } => write!(
                f,
                "its work folder {} holds more than its disk budget: at least {} MiB, the limit is {} MiB (the registration's limits.disk_mib)",
                folder.display(),
                mib(used),
                mib(limit)
            ),
            Exceeded::Host {
                folder,
                free,
                reserve,
                grew,
            } => write!(
                f,
                "no space left on the file system of {}: {} MiB free, under the {} MiB the runtime keeps for its records ([deployment] reserve_mib), and the action did not take it (its work folder grew by {} MiB); the action was stopped, nothing is recorded as its result, and `handrail resume` runs it again once there is room",
                folder.display(),
                mib(free),
                mib(reserve),
                mib(grew)
            ),
            Exceeded::Reserve {
                folder,
                free,
                reserve,
            } => write!(
                f,
                "the file system of {} has {} MiB free, under the {} MiB the runtime keeps for its records ([deployment] reserve_mib): no space left for the action",
                folder.display(),
                mib(free),
                mib(reserve)
            ),
        }
    }
}

/// Free bytes for an unprivileged writer on the file system of `path`.
pub(crate) fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs(3) fills the struct it is given from a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(name.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(
        clippy::useless_conversion,
        reason = "the fields are 32 bits wide on some 32-bit targets"
    )]
    let free = u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize));
    Ok(free)
}

/// The bytes the files under `folder` occupy on disk, counted up to `stop` (and to
/// [`MAX_ENTRIES`] entries, past which the count is `u64::MAX`). Entries that vanish
/// while it counts are passed over.
pub(super) fn used_bytes(folder: &Path, stop: u64) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut used = 0u64;
    let mut entries = 0usize;
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            entries += 1;
            if entries > MAX_ENTRIES {
                return u64::MAX;
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            // Allocated blocks, so a sparse file counts what it really takes.
            used = used.saturating_add(meta.blocks().saturating_mul(512));
            if used > stop {
                return used;
            }
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    used
}

/// Checks the budget once: `Some` when it is exceeded.
pub(super) fn check(budget: &Budget, count_used: bool) -> Option<Exceeded> {
    if let Ok(free) = free_bytes(&budget.work)
        && free < budget.reserve_bytes
    {
        let lost = budget.free_at_start.saturating_sub(free);
        let grew = used_bytes(&budget.work, u64::MAX).saturating_sub(budget.work_at_start);
        if lost == 0 || grew < lost / 2 {
            return Some(Exceeded::Host {
                folder: budget.work.clone(),
                free,
                reserve: budget.reserve_bytes,
                grew,
            });
        }
        return Some(Exceeded::Reserve {
            folder: budget.work.clone(),
            free,
            reserve: budget.reserve_bytes,
        });
    }
    if count_used {
        let used = used_bytes(&budget.work, budget.work_bytes);
        if used > budget.work_bytes {
            return Some(Exceeded::Work {
                folder: budget.work.clone(),
                used,
                limit: budget.work_bytes,
            });
        }
    }
    None
}

/// Watches `budget` until it is exceeded; returns how.
pub(super) async fn watch(budget: Budget) -> Exceeded {
    let per_count = (USED_EVERY.as_millis() / FREE_EVERY.as_millis()).max(1) as u64;
    let mut tick = 0u64;
    loop {
        tokio::time::sleep(FREE_EVERY).await;
        tick += 1;
        if let Some(exceeded) = check(&budget, tick.is_multiple_of(per_count)) {
            return exceeded;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_folder_over_its_budget_or_a_file_system_under_its_reserve_is_exceeded() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("deep/er")).unwrap();
        std::fs::write(work.join("deep/er/data"), vec![1u8; 3 * 1024 * 1024]).unwrap();
        let budget = |work_mib: u64, reserve_bytes: u64| Budget {
            work: work.clone(),
            work_bytes: work_mib * 1024 * 1024,
            reserve_bytes,
            // As if the action had written what the folder holds, from a file system
            // that had as much more free.
            free_at_start: free_bytes(&work).unwrap() + 3 * 1024 * 1024,
            work_at_start: 0,
        };
        assert_eq!(check(&budget(4, 0), true), None);
        assert!(
            matches!(check(&budget(2, 0), true), Some(Exceeded::Work { used, .. }) if used > 2 * 1024 * 1024)
        );
        // Not counted this time: only the free space is looked at.
        assert_eq!(check(&budget(2, 0), false), None);
        let exceeded = check(&budget(4, u64::MAX), false).unwrap();
        assert!(
            matches!(exceeded, Exceeded::Reserve { .. })
                && exceeded.to_string().contains("reserve_mib"),
            "{exceeded}"
        );
        // The same free space, taken by something else than the action: the host's.
        let host = Budget {
            work_at_start: used_bytes(&work, u64::MAX),
            ..budget(4, u64::MAX)
        };
        let exceeded = check(&host, false).unwrap();
        assert!(
            matches!(exceeded, Exceeded::Host { grew: 0, .. })
                && exceeded
                    .to_string()
                    .starts_with("no space left on the file system of"),
            "{exceeded}"
        );
        // Under the reserve before the action started: the host's too.
        let before = Budget {
            free_at_start: 0,
            ..budget(4, u64::MAX)
        };
        assert!(matches!(check(&before, false), Some(Exceeded::Host { .. })));
    }
}
