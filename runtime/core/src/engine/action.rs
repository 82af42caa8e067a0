//! One action of one step: its work folder, its step context, the host call, and the
//! translation of however the call ended into a validated result.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use handrail_contract::codes::{self, ext};
use handrail_contract::{Action, MAX_RESULT_FILE_BYTES, ResultFile, StepContext};

use super::Context;
use crate::cancel::CancelToken;
use crate::durable;
use crate::host::{Invocation, InvocationEnd, LoadedHandler};
use crate::plan::PlannedStep;
use crate::state::{StateError, io_err};

/// The host-path step context of one action.
fn step_context(
    workflow_id: &str,
    step: &PlannedStep,
    config: &serde_json::Map<String, serde_json::Value>,
    work: &Path,
    result_file: &Path,
) -> StepContext {
    StepContext {
        workflow_id: workflow_id.to_owned(),
        update_id: step.update_id.clone(),
        step_index: step.step_index,
        level: step.level,
        handler_id: step.handler.clone(),
        handler_properties: step.handler_properties.clone(),
        handler_config: config.clone(),
        files: step.files.clone(),
        work_folder: work.display().to_string(),
        result_file: result_file.display().to_string(),
        installed_criteria: step.installed_criteria.clone(),
        component: step.component.clone(),
    }
}

/// A step's work folder, made when an action first needs it.
///
/// Making it durable (its entry, and those of parents made with it) waits until
/// something depends on it: another action of the step, which may read what this one
/// left there, or a reboot or restart the step waits for. Until then a power cut can
/// lose the folder only together with the result of the action that made it, and a
/// resumed deployment runs that action again in a new one. A step of one action that
/// nothing waits on so costs no folder fsync.
pub(super) struct WorkFolder {
    path: PathBuf,
    /// Folders whose new entries are not durable yet.
    unsynced: Vec<PathBuf>,
}

impl WorkFolder {
    /// The work folder of `step` in the deployment's folder (not made yet).
    pub(super) fn of(deployment_dir: &Path, step: &PlannedStep) -> WorkFolder {
        WorkFolder {
            path: deployment_dir.join("work").join(step.work_folder_name()),
            unsynced: Vec::new(),
        }
    }

    /// Makes the folder as it is durable, when it was made since the last call.
    pub(super) fn make_durable(&mut self) -> Result<(), StateError> {
        for dir in &self.unsynced {
            durable::sync_dir(dir).map_err(io_err(dir))?;
        }
        self.unsynced.clear();
        Ok(())
    }

    /// Makes the folder exist for an action: what earlier actions made durable first
    /// (this one may read what they left), what it makes now left to [`Self::make_durable`].
    fn prepare(&mut self) -> Result<&Path, String> {
        self.make_durable().map_err(|e| {
            format!(
                "cannot make work folder {} durable: {e}",
                self.path.display()
            )
        })?;
        let made = durable::create_dir_all_deferred(&self.path)
            .map_err(|e| format!("cannot create work folder {}: {e}", self.path.display()))?;
        self.unsynced = made;
        Ok(&self.path)
    }
}

/// The file system of the state directory was filled by something other than the
/// action: the action was stopped, and has no result (it runs again on resume).
#[derive(Debug)]
pub(super) struct NoSpace(pub String);

/// Runs one action in `work` and turns however it ended into a validated result; `Err`
/// when the host ran out of space under it ([`NoSpace`]).
pub(super) async fn run_action(
    cx: &Context,
    handler: &dyn LoadedHandler,
    work: &mut WorkFolder,
    workflow_id: &str,
    step: &PlannedStep,
    action: Action,
) -> Result<ResultFile, NoSpace> {
    let work = match work.prepare() {
        Ok(path) => path,
        Err(e) => return Ok(ResultFile::failure(ext::HOST_FAILURE, e)),
    };
    let result_path = work.join(format!("result-{action}.json"));
    if let Err(e) = std::fs::remove_file(&result_path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Ok(ResultFile::failure(
            ext::HOST_FAILURE,
            format!(
                "cannot clear stale result file {}: {e}",
                result_path.display()
            ),
        ));
    }
    let events = cx.events.clone();
    let number = step.number;
    let registration = cx.handlers.registry().get(&step.handler);
    // The action's own token: the deployment's cancel reaches it (but for the actions
    // that undo, the handler's own cancel and restore, which run *because* of a cancel
    // and which the same cancel must not stop: each has its own time limit), and so does
    // its disk budget's watchdog.
    let action_cancel = CancelToken::new();
    let forward = (!matches!(action, Action::Cancel | Action::Restore)).then(|| {
        let (deployment, action) = (cx.cancel.clone(), action_cancel.clone());
        tokio::spawn(async move {
            deployment.cancelled().await;
            action.cancel();
        })
    });
    let limit = registration
        .map_or(crate::registry::Limits::default().disk_mib, |r| {
            r.limits.disk_mib
        })
        .saturating_mul(1024 * 1024);
    // The actions that undo (restore, cancel) run after a failure, perhaps one of this
    // very budget: they may add the budget to what the folder holds, and are not held to
    // the reserve, so that the rollback can still run.
    let recovering = matches!(action, Action::Restore | Action::Cancel);
    let held = super::disk::used_bytes(work, u64::MAX);
    let budget = super::disk::Budget::starting(
        work,
        held,
        if recovering {
            limit.saturating_add(held)
        } else {
            limit
        },
        if recovering { 0 } else { cx.reserve_bytes },
    );
    let budget_again = budget.clone();
    let exceeded = Arc::new(std::sync::Mutex::new(None));
    let watchdog = {
        let (exceeded, action) = (exceeded.clone(), action_cancel.clone());
        tokio::spawn(async move {
            let how = super::disk::watch(budget).await;
            *exceeded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(how);
            action.cancel();
        })
    };
    let invocation = Invocation {
        action,
        context: step_context(
            workflow_id,
            step,
            &cx.handlers
                .registry()
                .get(&step.handler)
                .map(|r| r.config.clone())
                .unwrap_or_default(),
            work,
            &result_path,
        ),
        cancel: action_cancel.clone(),
        progress: Arc::new(move |done, total| {
            if let Some(tx) = &events {
                tx.progress(number, done, total);
            }
        }),
    };
    let budget = budget_again;
    let end = handler.invoke(invocation).await;
    watchdog.abort();
    if let Some(forward) = forward {
        forward.abort();
    }
    let over = exceeded
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        // What the handler did in its last moments, faster than the watchdog looks.
        .or_else(|| super::disk::check(&budget, true));
    if let Some(how) = over {
        tracing::warn!(step = number, %action, "stopped: {how}");
        if matches!(how, super::disk::Exceeded::Host { .. }) {
            return Err(NoSpace(format!("step {number}: `{action}`: {how}")));
        }
        if matches!(how, super::disk::Exceeded::Reserve { .. }) {
            // The journal must record this end: give it the space kept for it.
            let _ = std::fs::remove_file(&cx.reserve_file);
        }
        return Ok(ResultFile::failure(
            ext::DISK_BUDGET,
            format!("`{action}` was stopped: {how}"),
        ));
    }
    let result = match end {
        InvocationEnd::Returned => {
            let bytes = read_capped(&result_path);
            match bytes {
                Ok(Ok(b)) => ResultFile::interpret(action, b.as_deref()),
                // What the handler made in place of a result file is its own fault.
                Ok(Err(what)) => ResultFile::failure(
                    ext::RESULT_FILE_MALFORMED,
                    format!(
                        "the result file for `{action}` is {what}, not a regular file: a handler writes its result as a file"
                    ),
                ),
                Err(e) => ResultFile::failure(
                    ext::HOST_FAILURE,
                    format!("cannot read result file {}: {e}", result_path.display()),
                ),
            }
        }
        InvocationEnd::Trapped(m) => ResultFile::failure(
            ext::HANDLER_TRAPPED,
            format!("handler trapped during `{action}`: {m}"),
        ),
        InvocationEnd::TimedOut => ResultFile::failure(
            ext::TIMED_OUT,
            format!("`{action}` ran past the handler's time limit and was stopped"),
        ),
        InvocationEnd::OutOfMemory(m) => ResultFile::failure(
            ext::MEMORY_LIMIT,
            format!("handler exceeded its memory limit during `{action}`: {m}"),
        ),
        InvocationEnd::Cancelled => ResultFile {
            result_code: codes::FAILURE_CANCELLED,
            extended_result_code: ext::CANCELLED.value(),
            result_details: format!("`{action}` was cancelled while it ran"),
        },
        InvocationEnd::WorkerDied(m) => ResultFile::failure(
            ext::WORKER_DIED,
            format!("the handler's worker process died during `{action}`: {m}"),
        ),
        InvocationEnd::HostFailure(m) => ResultFile::failure(ext::HOST_FAILURE, m),
    };
    match registration {
        Some(r) if !result.is_success() => {
            // The step's own files are the handler's, wherever they sit on the host.
            let own: Vec<&Path> = std::iter::once(work)
                .chain(
                    step.files
                        .iter()
                        .filter_map(|f| Path::new(&f.path).parent()),
                )
                .collect();
            Ok(with_grant_hint(result, r, &own))
        }
        _ => Ok(result),
    }
}

/// A failure whose details name a path that exists on the device but that the handler
/// was not granted gets that said: inside its sandbox such a path does not exist, so the
/// handler's own error ("No such file or directory") would send its author looking for
/// a missing file rather than a missing grant.
fn with_grant_hint(
    mut result: ResultFile,
    registration: &crate::registry::Registration,
    own: &[&Path],
) -> ResultFile {
    let caps = &registration.capabilities;
    let granted = |p: &Path| {
        caps.read
            .iter()
            .chain(&caps.write)
            .chain(&caps.run)
            .any(|g| p.starts_with(g))
            || own.iter().any(|o| p.starts_with(o))
    };
    let mut ungranted: Vec<String> = Vec::new();
    for word in result
        .result_details
        .split(|c: char| c.is_whitespace() || c == '"')
    {
        let path = word
            .trim_matches(|c: char| matches!(c, '`' | '\'' | ',' | ';' | ')' | '(' | ':' | '.'));
        if !path.starts_with('/') || path.len() < 2 || ungranted.iter().any(|u| u == path) {
            continue;
        }
        let p = Path::new(path);
        // What the sandbox shows at its own paths (/payload, /work) is not the host's.
        if p.exists() && !granted(p) && !p.starts_with("/payload") && !p.starts_with("/work") {
            ungranted.push(path.to_owned());
        }
    }
    if let Some(first) = ungranted.first() {
        let folder = Path::new(first)
            .parent()
            .filter(|_| Path::new(first).is_file())
            .unwrap_or(Path::new(first));
        result.result_details.push_str(&format!(
            " [`{}` exists on the device but is not granted to {}: in its sandbox it does not exist. To let it, grant it in the configuration: [handler_grants.\"{}\"] read = [\"{}\"] (or write)]",
            ungranted.join("`, `"),
            registration.id,
            registration.id,
            folder.display()
        ));
    }
    result
}

/// Reads a result file, at most one byte past the limit (so size is judged, not trusted).
/// A symlink is not followed: a handler must not point the runtime at another file.
/// Reads a result file up to one byte past the limit: `Ok(Ok(None))` when there is
/// none, `Ok(Err(what))` when the handler made something else in its place (a symbolic
/// link, which is not followed, a folder, a FIFO), `Err` when the host cannot read it.
fn read_capped(path: &Path) -> std::io::Result<Result<Option<Vec<u8>>, &'static str>> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(None)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(Err("a symbolic link")),
        Err(e) => return Err(e),
    };
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Ok(Err(if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        }));
    }
    let mut buf = Vec::new();
    file.take(MAX_RESULT_FILE_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(Ok(Some(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_folder_is_made_durable_before_a_later_action_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut work = WorkFolder {
            path: dir.path().join("work/step-0001"),
            unsynced: Vec::new(),
        };
        // The first action makes it, both levels, and leaves them to sync.
        let path = work.prepare().unwrap().to_owned();
        assert!(path.is_dir());
        assert_eq!(
            work.unsynced,
            [dir.path().to_owned(), dir.path().join("work")]
        );
        // The next action finds it made, syncs it first and has nothing left to sync.
        work.prepare().unwrap();
        assert!(work.unsynced.is_empty());
        // A folder lost (a power cut before it was durable) is made again for the action.
        std::fs::remove_dir(&path).unwrap();
        work.prepare().unwrap();
        assert_eq!(work.unsynced, [dir.path().join("work")]);
        work.make_durable().unwrap();
        assert!(work.unsynced.is_empty());
    }

    #[test]
    fn a_work_folder_that_cannot_be_made_fails_the_action_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("work"), "not a folder").unwrap();
        let mut work = WorkFolder {
            path: dir.path().join("work/step-0001"),
            unsynced: Vec::new(),
        };
        let err = work.prepare().unwrap_err();
        assert!(
            err.starts_with("cannot create work folder") && err.contains("step-0001"),
            "{err}"
        );
    }
}
