//! What happens around the steps: the pre/post-update hooks and the rollback of earlier
//! steps when one fails.
//!
//! Each is journaled like a step's actions, so a crash while a hook runs or halfway
//! through a rollback resumes without running a hook twice or restoring a step twice.

use std::time::Duration;

use handrail_contract::Action;

use super::sequence::backed_up;
use super::{Context, EngineError, Event, WorkFolder, journaled_action, record};
use crate::hooks::{self, HookKind};
use crate::journal::{Journal, Record, Replay, StepEvent};
use crate::report::{DeploymentStatus, StepOutcome};

/// Runs the configured hook of `kind` once, its start journaled first; `None` when there
/// is none to run. A hook the journal shows started and not ended was cut by a crash
/// while it ran: it is not run a second time, and counts as failed.
async fn run_hook(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
    kind: HookKind,
    status: Option<DeploymentStatus>,
) -> Result<Option<Result<(), String>>, EngineError> {
    if replay.hooks_started.contains(&kind) {
        return Ok(Some(Err(format!(
            "the {kind} hook was interrupted (the agent was killed or the power cut while it ran); it may have done part of its work, and is not run a second time"
        ))));
    }
    let path = match kind {
        HookKind::PreUpdate => cx.hooks.pre_update.as_ref(),
        HookKind::PostUpdate => cx.hooks.post_update.as_ref(),
    };
    let Some(path) = path else {
        return Ok(None);
    };
    match hooks::check(kind, path) {
        Ok(true) => {}
        Ok(false) if cx.hooks.required => {
            return Ok(Some(Err(format!(
                "{kind} hook {} is required but does not exist",
                path.display()
            ))));
        }
        Ok(false) => {
            tracing::info!(hook = %path.display(), "{kind} hook not present; skipped");
            return Ok(None);
        }
        Err(refused) => return Ok(Some(Err(refused))),
    }
    record(journal, replay, Record::HookStarted { kind })?;
    let plan = &replay.plan;
    let update = plan.update_id.to_string();
    let status = status.map(|s| s.to_string());
    let mut args = vec![plan.deployment.as_str(), update.as_str()];
    let mut env = vec![
        ("HANDRAIL_DEPLOYMENT", plan.deployment.as_str()),
        ("HANDRAIL_UPDATE_ID", update.as_str()),
    ];
    if let Some(s) = &status {
        args.push(s);
        env.push(("HANDRAIL_STATUS", s));
    }
    let timeout = Duration::from_secs(cx.hooks.timeout_secs.max(1));
    Ok(Some(hooks::run(kind, path, &args, &env, timeout).await))
}

/// The pre-update hook, before the first step.
pub(super) async fn pre_update_hook(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
) -> Result<Option<Result<(), String>>, EngineError> {
    run_hook(cx, journal, replay, HookKind::PreUpdate, None).await
}

/// The post-update hook, once the deployment has its end state.
pub(super) async fn post_update_hook(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
    status: DeploymentStatus,
) -> Result<Option<Result<(), String>>, EngineError> {
    run_hook(cx, journal, replay, HookKind::PostUpdate, Some(status)).await
}

/// After a step failed or was cancelled, or a cancel came between two steps: restores,
/// newest first, every earlier step that succeeded after a real backup. `RolledBack`
/// when at least one step was restored (the stopped one included) and every restore
/// succeeded, else `Failed`.
pub(super) async fn roll_back(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
) -> Result<DeploymentStatus, EngineError> {
    let Some(failed) = replay.steps.iter().position(|s| {
        matches!(
            s.outcome,
            Some(StepOutcome::Failed | StepOutcome::Cancelled) | None
        )
    }) else {
        return Ok(DeploymentStatus::Failed);
    };
    // The failed step may have restored itself already (after its install or apply).
    let own_restore = replay.steps[failed]
        .actions()
        .find(|r| r.action == Action::Restore);
    let mut restored = usize::from(own_restore.is_some());
    let mut complete = own_restore.is_none_or(|r| r.result.is_success());
    for i in (0..failed).rev() {
        let state = &replay.steps[i];
        let events: Vec<&StepEvent> = state.events.iter().collect();
        if state.outcome != Some(StepOutcome::Succeeded) || !backed_up(&events) {
            continue;
        }
        let handler = cx
            .handlers
            .get_for(&replay.plan, &replay.plan.steps[i].handler)
            .await;
        if handler
            .as_ref()
            .is_ok_and(|h| !h.description().supports(Action::Restore))
        {
            continue;
        }
        // A restore finished before a crash counts; an interrupted one runs again.
        let finished_restore = state.events.iter().rev().find_map(|e| match e {
            StepEvent::Finished(r) if r.action == Action::Restore => Some(r.result.clone()),
            _ => None,
        });
        let result = match finished_restore {
            Some(r) => r,
            None => {
                let mut work = WorkFolder::of(&replay.plan.deployment_dir, &replay.plan.steps[i]);
                journaled_action(
                    cx,
                    journal,
                    replay,
                    i,
                    &handler,
                    &mut work,
                    Action::Restore,
                    false,
                )
                .await?
            }
        };
        restored += 1;
        if result.is_success() {
            let step = &replay.plan.steps[i];
            if let Some(criteria) = &step.installed_criteria {
                // Another file: the restore's result is made durable first.
                journal.sync()?;
                cx.installed.forget(
                    criteria,
                    &step.handler,
                    step.component.as_ref().map(|c| c.id.as_str()),
                )?;
            }
            record(
                journal,
                replay,
                Record::StepFinished {
                    step: i,
                    outcome: StepOutcome::RolledBack,
                },
            )?;
            cx.emit(Event::StepFinished {
                step: i,
                outcome: StepOutcome::RolledBack,
            });
        } else {
            complete = false;
        }
    }
    // "Rolled back" only when something was restored and every restore succeeded.
    Ok(if complete && restored > 0 {
        DeploymentStatus::RolledBack
    } else {
        DeploymentStatus::Failed
    })
}
