//! The state directory: everything that outlives one deployment, owned by one process.
//!
//! ```text
//! <state>/lock             held (flock) by the one process that owns the directory
//! <state>/journal.log      append-only journal of the deployment in progress
//! <state>/installed.log    installed-criteria records of steps that succeeded
//! <state>/history/         one report per finished deployment (bounded)
//! <state>/deployments/<id> staged payload files and work folders of a deployment
//! <state>/handlers/        handler registrations and artifacts
//! <state>/cache/           compiled-handler cache
//! ```
//!
//! [`StateDir::open`] takes an exclusive lock before it touches anything else; a second
//! process gets [`StateError::Locked`] naming the owner's pid and changes nothing.

mod history;
mod installed;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

pub use history::{History, HistoryEntry};
pub use installed::{InstalledCriteria, InstalledRecords};

/// Errors about the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process owns the directory.
    #[error(
        "state directory {dir} is in use by another handrail process{owner} (lock file {dir}/lock); nothing was changed"
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// " (pid N)" when known.
        owner: String,
    },
    /// A file of the state directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A state file exists but is not valid.
    #[error("{path}: corrupt state file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An open, locked state directory. Dereferences to a [`StateView`] for its paths.
#[derive(Debug)]
pub struct StateDir {
    view: StateView,
    _lock: File,
}

impl std::ops::Deref for StateDir {
    type Target = StateView;

    fn deref(&self) -> &StateView {
        &self.view
    }
}

/// The paths of a state directory, and read-only access to it without the lock (for
/// `status` and `history` while another process runs a deployment).
#[derive(Debug, Clone)]
pub struct StateView {
    root: PathBuf,
}

impl StateDir {
    /// Creates the directory if needed and takes its lock.
    pub fn open(root: &Path) -> Result<StateDir, StateError> {
        crate::durable::create_dir_all(root).map_err(io_err(root))?;
        let lock_path = root.join("lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(StateError::Locked {
                    dir: root.to_owned(),
                    owner: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        // Record the owner for the error message of a second process; not durable state.
        lock.set_len(0).map_err(io_err(&lock_path))?;
        lock.rewind().map_err(io_err(&lock_path))?;
        write!(lock, "{}", std::process::id()).map_err(io_err(&lock_path))?;
        Ok(StateDir {
            view: StateView::new(root),
            _lock: lock,
        })
    }
}

impl StateView {
    /// A view of the state directory at `root` (nothing is created or locked).
    pub fn new(root: &Path) -> Self {
        StateView {
            root: root.to_owned(),
        }
    }

    /// The deployment in progress or suspended, read without modifying the journal.
    pub fn current(&self) -> Result<Option<crate::report::Report>, crate::journal::JournalError> {
        let path = self.journal_path();
        if !path.exists() {
            return Ok(None);
        }
        Ok(crate::journal::Journal::read(&path)?.map(|r| r.report()))
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The journal of the deployment in progress.
    pub fn journal_path(&self) -> PathBuf {
        self.root.join("journal.log")
    }

    /// Installed-criteria records.
    pub fn installed(&self) -> InstalledRecords {
        InstalledRecords::new(self.root.join("installed.log"))
    }

    /// Deployment history.
    pub fn history(&self) -> History {
        History::new(self.root.join("history"))
    }

    /// Folder of one deployment's staged payloads and work folders.
    pub fn deployment_dir(&self, id: &str) -> PathBuf {
        self.root.join("deployments").join(id)
    }

    /// Handler registrations.
    pub fn handlers_dir(&self) -> PathBuf {
        self.root.join("handlers")
    }

    /// Compiled-handler cache.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_owner_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::open(dir.path()).unwrap();
        let before: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let err = StateDir::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("in use") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        let after: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(before, after);
        drop(first);
        StateDir::open(dir.path()).unwrap();
    }
}
