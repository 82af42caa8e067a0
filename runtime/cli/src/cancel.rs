//! `handrail cancel`: cancels the deployment another `handrail` process is running on
//! the same state directory, as Ctrl-C in its terminal would.
//!
//! The process that owns the state directory holds its lock and wrote its pid into it.
//! A `deploy` or `resume` of this CLI maps SIGTERM to a cancel (the running action is
//! stopped, then the steps are rolled back as the failure policy says), so that is what
//! it is sent, and only when the journal shows a deployment in progress and the owner
//! is a `handrail` process: an agent that embeds the runtime is cancelled through its own
//! interface (`Deployment::cancel`), not signalled. Then the lock's release, bounded by
//! `--wait`, is the event that says the deployment ended, and its history entry says how.

use std::fs::{self, OpenOptions};
use std::io::Read as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use handrail::DeploymentStatus;
use handrail::state::StateView;

use crate::exit::{self, Failure};
use crate::output::Output;

/// Cancels the deployment running on `state_dir` and waits up to `wait` for it to end.
pub fn cancel(state_dir: &Path, wait: Duration, out: &Output) -> Result<u8, Failure> {
    let view = StateView::new(state_dir);
    let lock_path = state_dir.join("lock");
    let nothing = |why: &str| {
        out.message(&format!(
            "nothing to cancel in {}: {why}",
            state_dir.display()
        ));
        Ok(exit::SUCCESS)
    };
    let mut lock = match OpenOptions::new().read(true).open(&lock_path) {
        Ok(lock) => lock,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return nothing("no handrail has used this state directory");
        }
        Err(e) => {
            return Err(Failure::internal(anyhow::anyhow!(
                "cannot open {}: {e}",
                lock_path.display()
            )));
        }
    };
    let current = view
        .current()
        .map_err(|e| Failure::internal(anyhow::anyhow!(e)))?;
    match lock.try_lock() {
        Ok(()) => {
            return match current {
                Some(r) if r.status == DeploymentStatus::Suspended => nothing(&format!(
                    "deployment {} is suspended, not running (`handrail resume` carries it on, `handrail abandon` ends it)",
                    r.deployment
                )),
                Some(r) => nothing(&format!(
                    "deployment {} is not running (interrupted: `handrail resume` finishes it, `handrail abandon` ends it)",
                    r.deployment
                )),
                None => nothing("no deployment is running"),
            };
        }
        Err(fs::TryLockError::WouldBlock) => {}
        Err(fs::TryLockError::Error(e)) => {
            return Err(Failure::internal(anyhow::anyhow!(
                "cannot lock {}: {e}",
                lock_path.display()
            )));
        }
    }
    let mut pid = String::new();
    let _ = lock.read_to_string(&mut pid);
    let pid: libc::pid_t = pid.trim().parse().map_err(|_| {
        Failure::internal(anyhow::anyhow!(
            "{} is held but names no process ({pid:?})",
            lock_path.display()
        ))
    })?;
    let Some(deployment) = current.filter(|r| r.status == DeploymentStatus::InProgress) else {
        return Err(Failure::busy(anyhow::anyhow!(
            "pid {pid} holds {} but no deployment is in progress there (it is admitting one, or running another command); try again",
            state_dir.display()
        )));
    };
    let command = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if command.trim() != "handrail" {
        return Err(Failure::bad_input(anyhow::anyhow!(
            "deployment {} runs in pid {pid} ({}), not in a handrail command: cancel it through that agent (Deployment::cancel)",
            deployment.deployment,
            command.trim()
        )));
    }
    // SAFETY: kill(2) with a pid and a signal number.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(Failure::internal(anyhow::anyhow!(
            "cannot signal pid {pid}: {}",
            std::io::Error::last_os_error()
        )));
    }
    out.message(&format!(
        "cancelling deployment {} (pid {pid})",
        deployment.deployment
    ));
    // The owner releases the lock when it has finished: wait for that, bounded.
    let (released, on_release) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = released.send(lock.lock());
    });
    match on_release.recv_timeout(wait) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(Failure::internal(anyhow::anyhow!(
                "cannot wait for {}: {e}",
                lock_path.display()
            )));
        }
        Err(_) => {
            return Err(Failure::busy(anyhow::anyhow!(
                "deployment {} did not end within {} s of the cancel (its restores may still run); `handrail status` shows where it is",
                deployment.deployment,
                wait.as_secs()
            )));
        }
    }
    let history = view
        .history()
        .load()
        .map_err(|e| Failure::internal(anyhow::anyhow!(e)))?;
    match history
        .iter()
        .rev()
        .find(|e| e.report.deployment == deployment.deployment)
    {
        Some(entry) => out.message(&format!(
            "deployment {} of {}: {}",
            entry.report.deployment, entry.report.update_id, entry.report.status
        )),
        None => out.message(&format!(
            "deployment {} stopped before it ended (`handrail status` shows where it is)",
            deployment.deployment
        )),
    }
    Ok(exit::SUCCESS)
}
