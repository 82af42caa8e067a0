//! One action of one step: its work folder, its step context, the host call, and the
//! translation of however the call ended into a validated result.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use handrail_contract::codes::{self, ext};
use handrail_contract::{Action, MAX_RESULT_FILE_BYTES, ResultFile, StepContext};

use super::{Context, Event};
use crate::cancel::CancelToken;
use crate::durable;
use crate::host::{Invocation, InvocationEnd, LoadedHandler};
use crate::plan::PlannedStep;

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

/// Runs one action and turns however it ended into a validated result.
pub(super) async fn run_action(
    cx: &Context,
    handler: &dyn LoadedHandler,
    deployment_dir: &Path,
    workflow_id: &str,
    step: &PlannedStep,
    action: Action,
) -> ResultFile {
    let work: PathBuf = deployment_dir.join("work").join(step.work_folder_name());
    if let Err(e) = durable::create_dir_all(&work) {
        return ResultFile::failure(
            ext::HOST_FAILURE,
            format!("cannot create work folder {}: {e}", work.display()),
        );
    }
    let result_path = work.join(format!("result-{action}.json"));
    if let Err(e) = std::fs::remove_file(&result_path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return ResultFile::failure(
            ext::HOST_FAILURE,
            format!(
                "cannot clear stale result file {}: {e}",
                result_path.display()
            ),
        );
    }
    let events = cx.events.clone();
    let number = step.number;
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
            &work,
            &result_path,
        ),
        // The handler's own cancel action must not be cancelled by the same token.
        cancel: if action == Action::Cancel {
            CancelToken::new()
        } else {
            cx.cancel.clone()
        },
        progress: Arc::new(move |done, total| {
            if let Some(tx) = &events {
                let _ = tx.send(Event::Progress {
                    step: number,
                    done,
                    total,
                });
            }
        }),
    };
    match handler.invoke(invocation).await {
        InvocationEnd::Returned => {
            let bytes = read_capped(&result_path);
            match bytes {
                Ok(b) => ResultFile::interpret(action, b.as_deref()),
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
    }
}

/// Reads a result file, at most one byte past the limit (so size is judged, not trusted).
/// A symlink is not followed: a handler must not point the runtime at another file.
fn read_capped(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::other(
                "the result file is a symbolic link; refused",
            ));
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "the result file is not a regular file",
        ));
    }
    let mut buf = Vec::new();
    file.take(MAX_RESULT_FILE_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(Some(buf))
}
