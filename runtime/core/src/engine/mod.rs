//! The workflow engine: executes a plan in ADU's two phases, journaling every transition
//! first.
//!
//! First every step runs its download phase (`is-installed`, `download`), then, once all
//! have downloaded, each step in turn its install phase (`is-installed`, `backup`,
//! `install`, `apply`); the journal marks where the install phase began. For each step
//! and phase the engine asks [`sequence::next_move`] what to do, appends
//! `action-started` to the journal, runs the action through the step's handler host,
//! reads and validates the result file, appends `action-finished`, and repeats until the
//! step has an outcome. A failed or cancelled step ends the deployment; a reboot or
//! agent-restart request suspends it (immediate ones before the step's next action,
//! deferred ones after the step). The engine starts from a [`Replay`], so a fresh
//! deployment, a `resume` after a reboot and a recovery after a crash share one path.

mod action;
mod around;
pub(crate) mod disk;
pub(crate) mod events;
pub mod sequence;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use handrail_contract::codes::{self, Interruption, ext};
use handrail_contract::{Action, ResultFile};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::cancel::CancelToken;
use crate::clock::now_rfc3339;
use crate::config::{FailurePolicy, HooksConfig};
use crate::durable;
use crate::hooks::HookKind;
use crate::host::{HandlerHost, LoadedHandler};
use crate::journal::{Journal, JournalError, Record, Replay, StepEvent};
use crate::plan::PlannedStep;
use crate::registry::Registry;
use crate::report::{DeploymentStatus, Report, StepOutcome};
use crate::state::{History, InstalledCriteria, InstalledRecords, StateError};
use action::{WorkFolder, run_action};
pub use sequence::Phase;
use sequence::{Move, next_move, pending_interruption};

/// Something that happened during a deployment, for progress displays. Serialised with
/// an `event` tag (`step-started`, `action-started`, `progress`, `action-finished`,
/// `step-finished`, `suspended`), as `handrail --json deploy` prints them.
///
/// ```
/// use handrail::Event;
/// use handrail::contract::Action;
///
/// let event = Event::ActionStarted { step: 0, action: Action::Install };
/// let line = serde_json::to_value(&event).unwrap();
/// assert_eq!(line["event"], "action-started");
/// assert_eq!(line["action"], "install");
///
/// fn describe(event: &Event) -> Option<String> {
///     match event {
///         Event::Progress { step, done, total } => Some(format!("step {step}: {done}/{total}")),
///         Event::StepFinished { step, outcome } => Some(format!("step {step}: {outcome}")),
///         _ => None,
///     }
/// }
/// assert_eq!(describe(&Event::Progress { step: 1, done: 5, total: 10 }).unwrap(), "step 1: 5/10");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A step is about to run the first (or next) action of a phase.
    StepStarted {
        /// Plan position.
        step: usize,
        /// Number of planned steps.
        total: usize,
        /// Step label.
        label: String,
        /// The phase.
        phase: Phase,
    },
    /// An action started.
    ActionStarted {
        /// Plan position.
        step: usize,
        /// Action.
        action: Action,
    },
    /// A handler reported progress.
    Progress {
        /// Plan position.
        step: usize,
        /// Units done.
        done: u64,
        /// Units in all.
        total: u64,
    },
    /// An action finished.
    ActionFinished {
        /// Plan position.
        step: usize,
        /// Action.
        action: Action,
        /// Its validated result.
        result: ResultFile,
    },
    /// A step reached its outcome.
    StepFinished {
        /// Plan position.
        step: usize,
        /// Outcome.
        outcome: StepOutcome,
    },
    /// The run stopped for a reboot or agent restart.
    Suspended {
        /// What is needed.
        interruption: Interruption,
    },
}

/// Errors that stop the engine itself (the state on disk could not be kept).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The journal could not be written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Other state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The journal and the engine disagree (a damaged journal).
    #[error("journal is inconsistent: {0}")]
    Inconsistent(String),
    /// The state directory's file system was filled by something other than the running
    /// action, which was stopped without a result: `resume` runs it again once there is
    /// room.
    #[error("{0}")]
    NoSpace(String),
}

/// Loads handlers on first use and keeps them for the deployment.
pub struct HandlerSet {
    registry: Registry,
    hosts: Vec<Arc<dyn HandlerHost>>,
    loaded: Mutex<HashMap<String, LoadOutcome>>,
}

/// A loaded handler, or the failure result every action of its steps reports.
type LoadOutcome = Result<Arc<dyn LoadedHandler>, ResultFile>;

impl HandlerSet {
    /// A set over a registry and the hosts able to load its handlers.
    pub fn new(registry: Registry, hosts: Vec<Arc<dyn HandlerHost>>) -> Self {
        HandlerSet {
            registry,
            hosts,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The loaded handler for an id, or the failure result that explains why there is none.
    pub async fn get(&self, id: &str) -> LoadOutcome {
        let mut loaded = self.loaded.lock().await;
        if let Some(h) = loaded.get(id) {
            return h.clone();
        }
        let outcome = self.load(id).await;
        loaded.insert(id.to_owned(), outcome.clone());
        outcome
    }

    /// The loaded handler for a step of `plan`, checked against what admission loaded:
    /// a registration changed since (its artifact, grants, limits or config) fails the
    /// action with [`ext::HANDLER_CHANGED`] naming what changed — but for a handler the
    /// program bundles, which changes with the program (a self-update in the middle of
    /// the deployment): that one is used, and the log says so.
    pub async fn get_for(&self, plan: &crate::plan::Plan, id: &str) -> LoadOutcome {
        if let (Some(pinned), Some(registration)) = (plan.handlers.get(id), self.registry.get(id))
            && let Some(change) = pinned.changed(&crate::plan::HandlerPin::of(registration))
        {
            let file = registration.source.as_deref().map_or_else(
                || "linked into the program".to_owned(),
                |p| p.display().to_string(),
            );
            if !crate::bundled::is_bundled(registration) {
                return Err(ResultFile::failure(
                    ext::HANDLER_CHANGED,
                    format!(
                        "handler `{id}` ({file}) changed since deployment {} was admitted: {change}; it is not run. Put the registration back, or abandon the deployment and deploy again",
                        plan.deployment
                    ),
                ));
            }
            tracing::warn!(
                handler = id,
                "the bundled handler `{id}` changed since deployment {} was admitted, with the program that bundles it: {change}; the program's own is used",
                plan.deployment
            );
        }
        self.get(id).await
    }

    async fn load(&self, id: &str) -> LoadOutcome {
        let Some(registration) = self.registry.get(id) else {
            return Err(ResultFile::failure(
                ext::HANDLER_NOT_REGISTERED,
                format!("no handler is registered for `{id}`"),
            ));
        };
        let Some(host) = self.hosts.iter().find(|h| h.kind() == registration.kind) else {
            return Err(ResultFile::failure(
                ext::LOAD_FAILED,
                format!(
                    "handler `{id}` is a {} handler and this runtime has no host for that kind",
                    registration.kind
                ),
            ));
        };
        if let Err(e) = registration.verify_artifact() {
            return Err(ResultFile::failure(ext::LOAD_FAILED, e.to_string()));
        }
        let handler = host
            .load(registration)
            .await
            .map_err(|e| ResultFile::failure(ext::LOAD_FAILED, e.to_string()))?;
        let description = handler.description();
        if description.id != id {
            return Err(ResultFile::failure(
                ext::LOAD_FAILED,
                format!(
                    "the artifact registered for `{id}` says it implements `{}`",
                    description.id
                ),
            ));
        }
        Ok(handler)
    }
}

/// What the engine needs around a plan.
pub(crate) struct Context {
    pub handlers: Arc<HandlerSet>,
    pub installed: InstalledRecords,
    pub history: History,
    pub events: Option<events::EventSender>,
    pub cancel: CancelToken,
    pub hooks: HooksConfig,
    /// Bytes the state directory's file system keeps free while an action runs.
    pub reserve_bytes: u64,
    /// The file whose blocks are kept for the journal (see `disk::RESERVE_FILE_BYTES`).
    pub reserve_file: std::path::PathBuf,
    /// `[deployment] max_interrupted_runs`.
    pub max_interrupted_runs: u32,
    /// Set when the deployment's time limit cancelled it.
    pub timed_out: Arc<AtomicBool>,
}

impl Context {
    fn emit(&self, event: Event) {
        if let Some(tx) = &self.events {
            tx.send(event);
        }
    }
}

/// Appends a record durably and applies it to the replayed state.
fn record(journal: &mut Journal, replay: &mut Replay, rec: Record) -> Result<(), EngineError> {
    journal.append(&rec)?;
    replay.apply(rec).map_err(EngineError::Inconsistent)
}

/// Appends a record deferred (durable with the next [`record`] or [`Journal::sync`]) and
/// applies it: for a result or outcome that nothing outside the journal acts on before
/// the engine's next synced record.
fn record_deferred(
    journal: &mut Journal,
    replay: &mut Replay,
    rec: Record,
) -> Result<(), EngineError> {
    journal.append_deferred(&rec)?;
    replay.apply(rec).map_err(EngineError::Inconsistent)
}

/// Runs (or continues) the deployment in `replay` until it finishes or suspends.
pub(crate) async fn execute(
    cx: &Context,
    journal_path: &Path,
    mut journal: Journal,
    mut replay: Replay,
) -> Result<Report, EngineError> {
    if replay.finished.is_none() {
        // A cancel journaled before a crash is finished, not forgotten.
        if let Some(timed_out) = replay.cancel_requested {
            if timed_out {
                cx.timed_out.store(true, Ordering::SeqCst);
            }
            cx.cancel.cancel();
        }
        if replay.suspended.is_some() {
            record(
                &mut journal,
                &mut replay,
                Record::Resumed { at: now_rfc3339() },
            )?;
        }
        if replay.pre_hook.is_none()
            && let Some(outcome) = around::pre_update_hook(cx, &mut journal, &mut replay).await?
        {
            let error = outcome.err();
            record(
                &mut journal,
                &mut replay,
                Record::Hook {
                    kind: HookKind::PreUpdate,
                    error,
                },
            )?;
        }
        let mut status = match &replay.pre_hook {
            Some(Err(_)) => DeploymentStatus::Failed,
            _ => run_steps(cx, &mut journal, &mut replay).await?,
        };
        if status == DeploymentStatus::Suspended {
            return Ok(replay.report());
        }
        if status == DeploymentStatus::Cancelled {
            note_cancel(cx, &mut journal, &mut replay)?;
        }
        let rolls_back = replay.plan.failure_policy == FailurePolicy::Rollback
            && replay.pre_hook.as_ref().is_none_or(|r| r.is_ok());
        if status == DeploymentStatus::Failed && rolls_back {
            status = around::roll_back(cx, &mut journal, &mut replay).await?;
        } else if status == DeploymentStatus::Cancelled && rolls_back {
            // A cancel stops the update, and what it had installed is undone as after a
            // failure; the deployment stays `cancelled`, each step saying how it ended.
            around::roll_back(cx, &mut journal, &mut replay).await?;
        }
        if status == DeploymentStatus::Cancelled && cx.timed_out.load(Ordering::SeqCst) {
            status = DeploymentStatus::TimedOut;
        }
        record(
            &mut journal,
            &mut replay,
            Record::Finished {
                status,
                at: now_rfc3339(),
            },
        )?;
    }
    if replay.post_hook.is_none()
        && let Some(status) = replay.finished.as_ref().map(|(s, _)| *s)
        && let Some(outcome) =
            around::post_update_hook(cx, &mut journal, &mut replay, status).await?
    {
        let error = outcome.err();
        record(
            &mut journal,
            &mut replay,
            Record::Hook {
                kind: HookKind::PostUpdate,
                error,
            },
        )?;
    }
    finalize(cx, journal_path, &replay)
}

/// Records a finished deployment in history and retires its journal and files.
fn finalize(cx: &Context, journal_path: &Path, replay: &Replay) -> Result<Report, EngineError> {
    let report = replay.report();
    // The deployment's folder goes first: the report comes from the journal alone, and a
    // file system its work folders filled has the space back for the history entry.
    let dir = &replay.plan.deployment_dir;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    cx.history.append(&report)?;
    durable::remove_file(journal_path).map_err(|source| StateError::Io {
        path: journal_path.to_owned(),
        source,
    })?;
    Ok(report)
}

/// Runs the download phase of every step, then the install phase step by step; returns
/// the end state reached (or `Suspended`).
async fn run_steps(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
) -> Result<DeploymentStatus, EngineError> {
    let total = replay.plan.steps.len();
    if !replay.install_phase {
        for i in 0..total {
            if replay.steps[i].outcome.is_none() {
                if replay.steps[i].events.is_empty() && cx.cancel.is_cancelled() {
                    return Ok(DeploymentStatus::Cancelled);
                }
                cx.emit(Event::StepStarted {
                    step: i,
                    total,
                    label: replay.plan.steps[i].label(),
                    phase: Phase::Download,
                });
                run_step(cx, journal, replay, i, Phase::Download).await?;
            }
            match replay.steps[i].outcome {
                Some(StepOutcome::Failed) => return Ok(DeploymentStatus::Failed),
                Some(StepOutcome::Cancelled) => return Ok(DeploymentStatus::Cancelled),
                _ => {}
            }
        }
        if cx.cancel.is_cancelled() {
            return Ok(DeploymentStatus::Cancelled);
        }
        record(journal, replay, Record::InstallPhase { at: now_rfc3339() })?;
    }
    for i in 0..total {
        if replay.steps[i].outcome.is_none() {
            if replay.steps[i].phase_events().is_empty() && cx.cancel.is_cancelled() {
                return Ok(DeploymentStatus::Cancelled);
            }
            cx.emit(Event::StepStarted {
                step: i,
                total,
                label: replay.plan.steps[i].label(),
                phase: Phase::Install,
            });
            if let Some(status) = run_step(cx, journal, replay, i, Phase::Install).await? {
                return Ok(status);
            }
        }
        let outcome = replay.steps[i].outcome.unwrap_or(StepOutcome::Pending);
        if let Some(interruption) = pending_interruption(replay.steps[i].phase_events()) {
            return suspend(cx, journal, replay, i, interruption);
        }
        match outcome {
            StepOutcome::Failed => return Ok(DeploymentStatus::Failed),
            StepOutcome::Cancelled => return Ok(DeploymentStatus::Cancelled),
            _ => {}
        }
    }
    Ok(DeploymentStatus::Succeeded)
}

/// Runs one step's `phase` until the step has an outcome or has downloaded, or until an
/// immediate interruption suspends the deployment (then returns `Some(Suspended)`).
async fn run_step(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
    i: usize,
    phase: Phase,
) -> Result<Option<DeploymentStatus>, EngineError> {
    let step = replay.plan.steps[i].clone();
    if step.no_matching_components {
        // ADU's skipped results, so the report says why nothing ran. A resumed journal
        // that already holds them keeps them once.
        if replay.steps[i].events.is_empty() {
            for (action, code) in [
                (
                    Action::Download,
                    codes::DOWNLOAD_SKIPPED_NO_MATCHING_COMPONENTS,
                ),
                (
                    Action::Install,
                    codes::INSTALL_SKIPPED_NO_MATCHING_COMPONENTS,
                ),
            ] {
                let result = ResultFile::new(
                    code,
                    format!(
                        "no device component matches the compatibility of {}",
                        step.update_id
                    ),
                );
                cx.emit(Event::ActionFinished {
                    step: i,
                    action,
                    result: result.clone(),
                });
                record(
                    journal,
                    replay,
                    Record::ActionFinished {
                        step: i,
                        action,
                        result,
                    },
                )?;
            }
        }
        record(
            journal,
            replay,
            Record::StepFinished {
                step: i,
                outcome: StepOutcome::NoMatchingComponents,
            },
        )?;
        cx.emit(Event::StepFinished {
            step: i,
            outcome: StepOutcome::NoMatchingComponents,
        });
        return Ok(None);
    }
    let handler = cx.handlers.get_for(&replay.plan, &step.handler).await;
    let supports = |a: Action| match &handler {
        // A step with installed criteria whose handler cannot tell is answered from the
        // runtime's records, as ADU's apt handler answers from its own.
        Ok(h) => {
            h.description().supports(a)
                || (a == Action::IsInstalled && step.installed_criteria.is_some())
        }
        // Unloadable: the first action reports why.
        Err(_) => true,
    };
    let mut work = WorkFolder::of(&replay.plan.deployment_dir, &step);
    // What the step's actions left in its work folder is read again after the reboot
    // or restart it waits for: the folder is made durable before the run stops.
    loop {
        let events = replay.steps[i].phase_events();
        match next_move(events, phase, &supports) {
            Move::Downloaded => {
                // The install phase reads what the download left in the work folder.
                work.make_durable()?;
                return Ok(None);
            }
            Move::Finish(outcome) => {
                if pending_interruption(events).is_some() {
                    work.make_durable()?;
                }
                if records_installed(replay, i, outcome) {
                    // The installed-criteria log is another file: the results it rests
                    // on are made durable first.
                    journal.sync()?;
                    record_installed(cx, &replay.plan.deployment, &step)?;
                }
                record_deferred(journal, replay, Record::StepFinished { step: i, outcome })?;
                cx.emit(Event::StepFinished { step: i, outcome });
                return Ok(None);
            }
            Move::AwaitRestart(interruption) => {
                work.make_durable()?;
                return suspend(cx, journal, replay, i, interruption).map(Some);
            }
            Move::Run(action) => {
                if let Some(interruption) = pending_interruption(events)
                    && interruption.is_immediate()
                {
                    work.make_durable()?;
                    return suspend(cx, journal, replay, i, interruption).map(Some);
                }
                let verifying = action == Action::IsInstalled && sequence::verifies(events);
                journaled_action(
                    cx, journal, replay, i, &handler, &mut work, action, verifying,
                )
                .await?;
            }
        }
    }
}

/// Stops the run for the reboot or restart step `i` asked for.
fn suspend(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
    i: usize,
    interruption: Interruption,
) -> Result<DeploymentStatus, EngineError> {
    record(
        journal,
        replay,
        Record::Suspended {
            step: i,
            interruption,
        },
    )?;
    cx.emit(Event::Suspended { interruption });
    Ok(DeploymentStatus::Suspended)
}

/// Journals the deployment's cancel (once), before anything undoes: a crash during the
/// rollback then resumes into the same cancel, not into the steps the cancel stopped.
fn note_cancel(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
) -> Result<(), EngineError> {
    if !cx.cancel.is_cancelled() || replay.cancel_requested.is_some() {
        return Ok(());
    }
    record(
        journal,
        replay,
        Record::CancelRequested {
            at: now_rfc3339(),
            timed_out: cx.timed_out.load(Ordering::SeqCst),
        },
    )
}

/// Runs one action of step `i` in its work folder, journaling its start and its
/// validated result.
#[allow(
    clippy::too_many_arguments,
    reason = "the one place an action is journaled; each argument is a different piece of the step's state"
)]
async fn journaled_action(
    cx: &Context,
    journal: &mut Journal,
    replay: &mut Replay,
    i: usize,
    handler: &LoadOutcome,
    work: &mut WorkFolder,
    action: Action,
    verifying: bool,
) -> Result<ResultFile, EngineError> {
    let cancelled_before =
        cx.cancel.is_cancelled() && !matches!(action, Action::Restore | Action::Cancel);
    // Each crash during the action left one `Interrupted` of it among the step's events.
    let interrupted = replay.steps[i]
        .events
        .iter()
        .filter(|e| matches!(e, StepEvent::Interrupted(a) if *a == action))
        .count();
    if matches!(action, Action::Restore | Action::Cancel) {
        note_cancel(cx, journal, replay)?;
    }
    record(journal, replay, Record::ActionStarted { step: i, action })?;
    cx.emit(Event::ActionStarted { step: i, action });
    let step = &replay.plan.steps[i];
    let result = if interrupted >= cx.max_interrupted_runs as usize {
        ResultFile::failure(
            ext::INTERRUPTED_TOO_OFTEN,
            format!(
                "`{action}` was interrupted by a crash {interrupted} times (the agent was killed or the power cut while it ran); it is not run again ([deployment] max_interrupted_runs = {})",
                cx.max_interrupted_runs
            ),
        )
    } else if cancelled_before {
        ResultFile {
            result_code: codes::FAILURE_CANCELLED,
            extended_result_code: ext::CANCELLED.value(),
            result_details: format!("deployment cancelled before `{action}` started"),
        }
    } else {
        match handler {
            Ok(h) if action == Action::IsInstalled && !h.description().supports(action) => {
                recorded_is_installed(cx, step, verifying)?
            }
            Ok(h) => run_action(cx, h.as_ref(), work, &replay.plan.workflow_id, step, action)
                .await
                .map_err(|action::NoSpace(why)| EngineError::NoSpace(why))?,
            Err(failure) => failure.clone(),
        }
    };
    warn_where_adu_goes_on(step, action, &result, verifying);
    // A verification after a reboot that finds the update not running is a failure,
    // named as such in the report.
    let result = if verifying && result.result_code == codes::IS_INSTALLED_NOT_INSTALLED {
        ResultFile::failure(
            ext::NOT_RUNNING_AFTER_RESTART,
            format!(
                "after the reboot or restart it asked for, the update is not running: {}",
                result.result_details
            ),
        )
    } else {
        result
    };
    cx.emit(Event::ActionFinished {
        step: i,
        action,
        result: result.clone(),
    });
    record_deferred(
        journal,
        replay,
        Record::ActionFinished {
            step: i,
            action,
            result: result.clone(),
        },
    )?;
    Ok(result)
}

/// True when step `i`, reaching `outcome`, records its installed criteria. Steps that
/// share criteria (same handler and component, as ADU's demo gives the steps of one child)
/// record them once, with the last of them: when it succeeds, or finds itself installed
/// after an earlier one succeeded. So a failed step never leaves a record that its
/// criteria are installed because a sibling's step got there first.
fn records_installed(replay: &Replay, i: usize, outcome: StepOutcome) -> bool {
    let step = &replay.plan.steps[i];
    let Some(criteria) = &step.installed_criteria else {
        return false;
    };
    let component = |s: &PlannedStep| s.component.as_ref().map(|c| c.id.clone());
    let shares = |s: &PlannedStep| {
        s.installed_criteria.as_ref() == Some(criteria)
            && s.handler == step.handler
            && component(s) == component(step)
    };
    if replay.plan.steps[i + 1..].iter().any(shares) {
        return false;
    }
    match outcome {
        StepOutcome::Succeeded => true,
        StepOutcome::AlreadyInstalled => replay.plan.steps[..i]
            .iter()
            .zip(&replay.steps)
            .any(|(s, state)| shares(s) && state.outcome == Some(StepOutcome::Succeeded)),
        _ => false,
    }
}

/// `is-installed` for a step whose handler cannot tell, answered from the runtime's
/// installed-criteria records (ADU's apt handler answers it from its own record of
/// installed criteria). After the reboot or restart the step asked for, it answers
/// "installed": the install and apply it verifies succeeded, and the handler has nothing
/// more to tell.
fn recorded_is_installed(
    cx: &Context,
    step: &PlannedStep,
    verifying: bool,
) -> Result<ResultFile, EngineError> {
    let criteria = step.installed_criteria.as_deref().unwrap_or_default();
    if verifying {
        return Ok(ResultFile::new(
            codes::IS_INSTALLED_INSTALLED,
            format!("`{criteria}`: installed and applied before the restart"),
        ));
    }
    let component = step.component.as_ref().map(|c| c.id.as_str());
    let record = cx.installed.load()?.into_iter().find(|r| {
        r.installed_criteria == criteria
            && r.handler == step.handler
            && r.component.as_deref() == component
    });
    Ok(match record {
        Some(r) => ResultFile::new(
            codes::IS_INSTALLED_INSTALLED,
            format!(
                "`{criteria}` is recorded as installed (by deployment {} at {})",
                r.deployment, r.at
            ),
        ),
        None => ResultFile::new(
            codes::IS_INSTALLED_NOT_INSTALLED,
            format!("`{criteria}` is not recorded as installed"),
        ),
    })
}

/// Logs the results ADU's agent goes on from and Handrail follows it in: a success code
/// of another action's band, and a failed `is-installed` (taken as "not installed").
fn warn_where_adu_goes_on(
    step: &PlannedStep,
    action: Action,
    result: &ResultFile,
    verifying: bool,
) {
    let label = step.label();
    if result.is_success() && !action.accepts(result.result_code) {
        tracing::warn!(
            step = %label,
            "`{action}` answered {}, a code of another action; counted as success, as ADU's agent does",
            result.result_code
        );
    }
    if action == Action::IsInstalled
        && !verifying
        && !result.is_success()
        && result.result_code != codes::FAILURE_CANCELLED
    {
        tracing::warn!(
            step = %label,
            "`is-installed` failed ({}: {}); taken as not installed, as ADU's agent does",
            result.extended(),
            result.result_details
        );
    }
}

fn record_installed(cx: &Context, deployment: &str, step: &PlannedStep) -> Result<(), EngineError> {
    let Some(criteria) = &step.installed_criteria else {
        return Ok(());
    };
    cx.installed.record(InstalledCriteria {
        installed_criteria: criteria.clone(),
        handler: step.handler.clone(),
        update_id: step.update_id.to_string(),
        component: step.component.as_ref().map(|c| c.id.clone()),
        deployment: deployment.to_owned(),
        at: now_rfc3339(),
    })?;
    Ok(())
}
