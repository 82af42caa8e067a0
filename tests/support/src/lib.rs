//! Test support shared by the tests of several Handrail crates, so that none of them
//! builds these by hand:
//!
//! - [`registration`]: a handler registration of an artifact on disk, hashed, granted
//!   nothing, with the default limits;
//! - [`manifest`]: update manifests (v5) in the form the runtime takes them, step by step;
//! - [`MachineLock`]: one holder at a time across every test process on the machine, for
//!   programs that misbehave (swupdate) or fail (apt, dpkg) when two runs overlap.

pub mod ddi;
pub mod goosebit;
pub mod manifest;
pub mod nginx;

use std::fs::File;
use std::path::{Path, PathBuf};

use handrail::registry::{Capabilities, HandlerKind, Limits, Registration, sha256_file};

/// A registration of the artifact at `artifact` as `id`, its sha256 computed now, granted
/// `capabilities`, with the default limits and no configuration.
///
/// # Panics
/// When the artifact cannot be read: a test's own set-up is broken.
pub fn registration(
    id: &str,
    kind: HandlerKind,
    artifact: &Path,
    capabilities: Capabilities,
) -> Registration {
    Registration {
        id: id.to_owned(),
        kind,
        artifact: artifact.to_owned(),
        sha256: sha256_file(artifact)
            .unwrap_or_else(|e| panic!("cannot hash {}: {e}", artifact.display())),
        capabilities,
        limits: Limits::default(),
        config: Default::default(),
        source: None,
    }
}

/// Capabilities that grant the programs in `run` and nothing else.
pub fn running(run: &[&str]) -> Capabilities {
    Capabilities {
        run: run.iter().map(PathBuf::from).collect(),
        ..Capabilities::default()
    }
}

/// An exclusive lock, held until dropped, shared by every process on the machine that
/// asks for the same name: the test binaries of one `cargo test` run side by side, and
/// an in-process mutex orders only the tests of one of them.
///
/// The lock is `flock(2)` on a file in the temporary folder; the kernel releases it when
/// its holder exits, so a test that dies leaves nothing to clean up.
#[derive(Debug)]
pub struct MachineLock {
    _file: File,
}

impl MachineLock {
    /// Waits until no other holder of `name` is left, then holds it.
    ///
    /// # Panics
    /// When the lock file cannot be opened or locked.
    pub fn acquire(name: &str) -> MachineLock {
        let path = std::env::temp_dir().join(format!("handrail-test-{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open the lock {}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        MachineLock { _file: file }
    }

    /// The lock every test that runs swupdate holds while it does.
    pub fn swupdate() -> MachineLock {
        MachineLock::acquire("swupdate")
    }

    /// The lock every test that runs apt-get or dpkg holds while it does: they take
    /// system-wide locks and fail rather than wait for them.
    pub fn apt() -> MachineLock {
        MachineLock::acquire("apt")
    }
}

/// Whether process `pid` still runs: it exists and is not a zombie waiting for its
/// reaper.
pub fn process_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_name) = stat.rsplit_once(')')?;
            after_name.split_whitespace().next().map(|s| s != "Z")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let name = format!("self-test-{}", std::process::id());
        let first = MachineLock::acquire(&name);
        let path = std::env::temp_dir().join(format!("handrail-test-{name}.lock"));
        let other = File::options().write(true).open(&path).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(first);
        other.try_lock().unwrap();
        drop(other);
        std::fs::remove_file(path).unwrap();
    }
}

/// The README's Rust examples, compiled (and run where they have a `main`) as this
/// crate's doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;
