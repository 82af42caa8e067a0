//! The journal: an append-only, fsync'ed log of one deployment's transitions.
//!
//! Every transition is appended *before* it takes effect: the plan before the first
//! action, `action-started` before a handler is called, `action-finished` with the
//! validated result before the engine acts on it, and so on. [`Journal::open`] replays
//! the log into a [`Replay`], from which the engine decides what to do next, so a crash
//! at any instant resumes correctly.
//!
//! Each record is durable before anything outside the journal depends on it: records
//! that lead to a handler call, a hook, a reboot or the end of the deployment are
//! fsync'ed as they are appended ([`Journal::append`]); the ones in between
//! (`action-finished`, `step-finished`) are appended deferred
//! ([`Journal::append_deferred`]) and become durable with the next synced record, or
//! with [`Journal::sync`] before the engine writes another state file. A power cut
//! between the two loses them together with what followed, which replays as a cut
//! during the action: the same state the journal already recovers from.

use std::path::Path;

use handrail_contract::codes::Interruption;
use handrail_contract::{Action, ResultFile};
use serde::{Deserialize, Serialize};

use crate::durable::{AppendLog, LogError, LogFormat};
use crate::hooks::HookKind;
use crate::plan::Plan;
use crate::report::{
    ActionRecord, DeploymentStatus, FailureReport, Report, StepOutcome, StepReport,
};

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Record {
    /// The deployment was admitted with this plan.
    Admitted {
        /// The plan.
        plan: Box<Plan>,
        /// When (RFC 3339).
        at: String,
    },
    /// An action is about to be called.
    ActionStarted {
        /// Plan position.
        step: usize,
        /// Action.
        action: Action,
    },
    /// An action ended with this validated result.
    ActionFinished {
        /// Plan position.
        step: usize,
        /// Action.
        action: Action,
        /// Result.
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
        /// Plan position of the step that asked.
        step: usize,
        /// What it asked for.
        interruption: Interruption,
    },
    /// Every step has run its download phase (`is-installed`, `download`); the install
    /// phase (`is-installed`, `backup`, `install`, `apply`) starts.
    InstallPhase {
        /// When (RFC 3339).
        at: String,
    },
    /// The run was resumed after a suspension.
    Resumed {
        /// When (RFC 3339).
        at: String,
    },
    /// The deployment was cancelled (by a caller, a signal or its time limit): no step
    /// runs on, and a resume after a crash finishes the cancel rather than the update.
    CancelRequested {
        /// When (RFC 3339).
        at: String,
        /// The cancel came from the deployment's time limit.
        #[serde(default)]
        timed_out: bool,
    },
    /// A pre- or post-update hook is about to run. A journal that has this record and
    /// not the hook's [`Record::Hook`] was cut while the hook ran: it is not run again.
    HookStarted {
        /// Which.
        kind: HookKind,
    },
    /// A pre- or post-update hook ran.
    Hook {
        /// Which.
        kind: HookKind,
        /// Why it failed, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The deployment reached an end state.
    Finished {
        /// End state.
        status: DeploymentStatus,
        /// When (RFC 3339).
        at: String,
    },
}

/// What happened to one step, as far as the journal knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEvent {
    /// An action finished with this result.
    Finished(ActionRecord),
    /// An action was started and never finished (the process died during it).
    Interrupted(Action),
    /// The run was resumed after this step suspended it.
    Resumed,
}

/// The replayed state of one step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepState {
    /// Events in order.
    pub events: Vec<StepEvent>,
    /// The action started and not (yet) finished.
    pub running: Option<Action>,
    /// The step's outcome, once reached.
    pub outcome: Option<StepOutcome>,
    /// Where its install-phase events start in `events`, once the install phase began.
    pub install_from: Option<usize>,
}

impl StepState {
    /// The finished actions, in order.
    pub fn actions(&self) -> impl Iterator<Item = &ActionRecord> {
        self.events.iter().filter_map(|e| match e {
            StepEvent::Finished(r) => Some(r),
            _ => None,
        })
    }

    /// The events of the phase the step is in: all of them in the download phase, those
    /// since the install phase began in it.
    pub fn phase_events(&self) -> &[StepEvent] {
        &self.events[self.install_from.unwrap_or(0).min(self.events.len())..]
    }
}

/// A deployment's state rebuilt from its journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The plan.
    pub plan: Plan,
    /// When it was admitted.
    pub started_at: String,
    /// Per planned step.
    pub steps: Vec<StepState>,
    /// True once the install phase began (every step has run its download phase).
    pub install_phase: bool,
    /// Set while suspended (cleared by `resumed`).
    pub suspended: Option<(usize, Interruption)>,
    /// Set once finished.
    pub finished: Option<(DeploymentStatus, String)>,
    /// The pre-update hook's outcome, once it ran.
    pub pre_hook: Option<Result<(), String>>,
    /// The post-update hook's outcome, once it ran.
    pub post_hook: Option<Result<(), String>>,
    /// The hooks that were started (their outcome may be missing: cut while they ran).
    pub hooks_started: Vec<HookKind>,
    /// Set once the deployment was cancelled: whether by its time limit.
    pub cancel_requested: Option<bool>,
}

/// Errors reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// I/O on the journal file.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A complete record that cannot be understood: the journal was damaged.
    #[error("journal {path}: record {index} is not valid: {message}")]
    Corrupt {
        /// The journal file.
        path: String,
        /// 0-based record number.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// The journal's record format (the plan rides in its first record). Version 1 added
/// the version and checksum of every record; a journal of version 0 records, as the
/// release before wrote it, is read and appended to (a deployment suspended by the old
/// binary resumes under the new one).
pub const FORMAT: LogFormat = LogFormat {
    name: "journal",
    version: 1,
};

impl JournalError {
    fn of_log(path: &Path, e: LogError) -> JournalError {
        let path = path.display().to_string();
        match e {
            LogError::Io(source) => JournalError::Io { path, source },
            LogError::Damaged { index, .. } | LogError::TooNew { index, .. } => {
                JournalError::Corrupt {
                    path,
                    index,
                    message: e.reason(),
                }
            }
        }
    }
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    log: AppendLog,
}

impl Journal {
    /// Opens the journal for appending, replaying whatever it holds (`None` when empty).
    pub fn open(path: &Path) -> Result<(Journal, Option<Replay>), JournalError> {
        let (log, lines) =
            AppendLog::open(path, FORMAT).map_err(|e| JournalError::of_log(path, e))?;
        Ok((Journal { log }, replay(path, &lines)?))
    }

    /// Replays the journal without changing it.
    pub fn read(path: &Path) -> Result<Option<Replay>, JournalError> {
        let lines = AppendLog::read(path, FORMAT).map_err(|e| JournalError::of_log(path, e))?;
        replay(path, &lines)
    }

    /// Appends a record durably (with every deferred one before it).
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let line = self.line(record)?;
        let result = self.log.append(&line);
        result.map_err(|source| self.io_error(source))
    }

    /// Appends a record that is durable once the next [`Journal::append`] or
    /// [`Journal::sync`] returns.
    pub fn append_deferred(&mut self, record: &Record) -> Result<(), JournalError> {
        let line = self.line(record)?;
        let result = self.log.append_deferred(&line);
        result.map_err(|source| self.io_error(source))
    }

    /// Makes every deferred record durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        let result = self.log.sync();
        result.map_err(|source| self.io_error(source))
    }

    fn line(&self, record: &Record) -> Result<String, JournalError> {
        serde_json::to_string(record).map_err(|e| JournalError::Corrupt {
            path: self.log.path().display().to_string(),
            index: 0,
            message: e.to_string(),
        })
    }

    fn io_error(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.log.path().display().to_string(),
            source,
        }
    }
}

/// Rebuilds a deployment's state from its journal records; a trailing action that was
/// started and never finished becomes [`StepEvent::Interrupted`].
fn replay(path: &Path, lines: &[String]) -> Result<Option<Replay>, JournalError> {
    let corrupt = |index: usize, message: String| JournalError::Corrupt {
        path: path.display().to_string(),
        index,
        message,
    };
    let mut replay: Option<Replay> = None;
    for (index, line) in lines.iter().enumerate() {
        let record: Record =
            serde_json::from_str(line).map_err(|e| corrupt(index, e.to_string()))?;
        match replay.as_mut() {
            None => match record {
                Record::Admitted { plan, at } => {
                    replay = Some(Replay {
                        steps: vec![StepState::default(); plan.steps.len()],
                        plan: *plan,
                        started_at: at,
                        install_phase: false,
                        suspended: None,
                        finished: None,
                        pre_hook: None,
                        post_hook: None,
                        hooks_started: Vec::new(),
                        cancel_requested: None,
                    })
                }
                _ => return Err(corrupt(index, "the first record is not `admitted`".into())),
            },
            Some(r) => r.apply(record).map_err(|m| corrupt(index, m))?,
        }
    }
    if let Some(r) = replay.as_mut() {
        for s in &mut r.steps {
            if let Some(a) = s.running.take() {
                s.events.push(StepEvent::Interrupted(a));
            }
        }
        r.adopt_single_phase_journal();
    }
    Ok(replay)
}

impl Replay {
    /// A journal written before deployments ran in two phases has no `install-phase`
    /// record, yet its steps may be past their downloads: it continues in the install
    /// phase, every step's events counting as that phase's, so no action runs again.
    fn adopt_single_phase_journal(&mut self) {
        let past_download = |e: &StepEvent| match e {
            StepEvent::Finished(r) => !matches!(r.action, Action::IsInstalled | Action::Download),
            StepEvent::Interrupted(a) => !matches!(a, Action::IsInstalled | Action::Download),
            StepEvent::Resumed => true,
        };
        if !self.install_phase
            && self.steps.iter().any(|s| {
                s.events.iter().any(past_download) || s.outcome == Some(StepOutcome::Succeeded)
            })
        {
            self.install_phase = true;
            for s in &mut self.steps {
                s.install_from = Some(0);
            }
        }
    }

    /// Applies one record to the replayed state (also used live, after each append).
    pub fn apply(&mut self, record: Record) -> Result<(), String> {
        let n = self.steps.len();
        let in_plan = |i: usize| {
            if i < n {
                Ok(())
            } else {
                Err(format!("step {i} is not in the plan of {n} steps"))
            }
        };
        match record {
            Record::Admitted { .. } => return Err("a second `admitted` record".into()),
            Record::ActionStarted { step, action } => {
                in_plan(step)?;
                let s = &mut self.steps[step];
                if let Some(prev) = s.running.replace(action) {
                    s.events.push(StepEvent::Interrupted(prev));
                }
            }
            Record::ActionFinished {
                step,
                action,
                result,
            } => {
                in_plan(step)?;
                let s = &mut self.steps[step];
                s.running = None;
                s.events
                    .push(StepEvent::Finished(ActionRecord { action, result }));
            }
            Record::StepFinished { step, outcome } => {
                in_plan(step)?;
                self.steps[step].outcome = Some(outcome);
            }
            Record::Suspended { step, interruption } => {
                in_plan(step)?;
                self.suspended = Some((step, interruption));
            }
            Record::InstallPhase { .. } => {
                if self.install_phase {
                    return Err("a second `install-phase` record".into());
                }
                self.install_phase = true;
                for s in &mut self.steps {
                    s.install_from = Some(s.events.len());
                }
            }
            Record::Resumed { .. } => {
                if let Some((step, _)) = self.suspended.take() {
                    self.steps[step].events.push(StepEvent::Resumed);
                }
            }
            Record::HookStarted { kind } => self.hooks_started.push(kind),
            Record::CancelRequested { timed_out, .. } => self.cancel_requested = Some(timed_out),
            Record::Hook { kind, error } => {
                let outcome = Some(error.map_or(Ok(()), Err));
                match kind {
                    HookKind::PreUpdate => self.pre_hook = outcome,
                    HookKind::PostUpdate => self.post_hook = outcome,
                }
            }
            Record::Finished { status, at } => self.finished = Some((status, at)),
        }
        Ok(())
    }

    /// The report this state amounts to.
    pub fn report(&self) -> Report {
        let steps: Vec<StepReport> = self
            .plan
            .steps
            .iter()
            .zip(&self.steps)
            .map(|(p, s)| StepReport {
                number: p.number,
                label: p.label(),
                level: p.level,
                handler: p.handler.clone(),
                description: p.description.clone(),
                outcome: s.outcome.unwrap_or(StepOutcome::Pending),
                actions: s.actions().cloned().collect(),
                // Live, the action in progress; read back from the file, the one whose
                // `action-started` is the step's last record.
                running: s.running.or(match s.events.last() {
                    Some(StepEvent::Interrupted(a)) if s.outcome.is_none() => Some(*a),
                    _ => None,
                }),
            })
            .collect();
        let failure = steps
            .iter()
            .find(|s| matches!(s.outcome, StepOutcome::Failed | StepOutcome::Cancelled))
            .and_then(|s| {
                // The failing action is the first failed one (a restore may follow it),
                // passing over an `is-installed` failure the step went on from: that
                // counts as "not installed", and the action that failed later is why.
                let went_on = |i: usize| {
                    s.actions[i + 1..]
                        .iter()
                        .any(|a| !matches!(a.action, Action::Restore | Action::Cancel))
                };
                let failed = s
                    .actions
                    .iter()
                    .enumerate()
                    .find(|(i, a)| {
                        let passed_over = a.action == Action::IsInstalled && went_on(*i);
                        !a.result.is_success() && !passed_over
                    })
                    .or_else(|| {
                        s.actions
                            .iter()
                            .enumerate()
                            .find(|(_, a)| !a.result.is_success())
                    })
                    .map(|(_, a)| a)?;
                Some(FailureReport {
                    step: s.number,
                    label: s.label.clone(),
                    action: failed.action,
                    result_code: failed.result.result_code,
                    extended_result_code: failed.result.extended_result_code,
                    extended_result_code_hex: failed.result.extended().to_string(),
                    result_details: failed.result.result_details.clone(),
                })
            });
        let (status, finished_at) = match &self.finished {
            Some((status, at)) => (*status, Some(at.clone())),
            None if self.suspended.is_some() => (DeploymentStatus::Suspended, None),
            None => (DeploymentStatus::InProgress, None),
        };
        Report {
            deployment: self.plan.deployment.clone(),
            update_id: self.plan.update_id.to_string(),
            status,
            interruption: self.suspended.map(|(_, i)| i),
            started_at: self.started_at.clone(),
            finished_at,
            steps,
            failure,
            error: self.pre_hook.clone().and_then(Result::err),
            post_hook_error: self.post_hook.clone().and_then(Result::err),
            retry_timestamp: self.plan.retry_timestamp.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(steps: usize) -> Plan {
        let step = |number| crate::plan::PlannedStep {
            number,
            level: 0,
            parent_step: None,
            update_id: handrail_contract::UpdateId {
                provider: "p".into(),
                name: "n".into(),
                version: "1".into(),
            },
            step_index: number as u32,
            handler: "a/b:1".into(),
            description: None,
            files: Vec::new(),
            handler_properties: serde_json::Map::new(),
            installed_criteria: None,
            component: None,
            no_matching_components: false,
        };
        Plan {
            deployment: "d".into(),
            workflow_id: "w".into(),
            update_id: step(0).update_id,
            deployment_dir: "/nowhere".into(),
            steps: (0..steps).map(step).collect(),
            failure_policy: Default::default(),
            retry_timestamp: None,
            handlers: Default::default(),
        }
    }

    fn finished(step: usize, action: Action, code: i32) -> String {
        serde_json::to_string(&Record::ActionFinished {
            step,
            action,
            result: ResultFile::new(code, ""),
        })
        .unwrap()
    }

    fn lines(records: &[String]) -> Vec<String> {
        let admitted = serde_json::to_string(&Record::Admitted {
            plan: Box::new(plan(2)),
            at: "t".into(),
        })
        .unwrap();
        std::iter::once(admitted)
            .chain(records.iter().cloned())
            .collect()
    }

    #[test]
    fn the_install_phase_sees_only_its_own_events() {
        let phase = serde_json::to_string(&Record::InstallPhase { at: "t".into() }).unwrap();
        let r = replay(
            Path::new("j"),
            &lines(&[
                finished(0, Action::IsInstalled, 901),
                finished(0, Action::Download, 500),
                finished(1, Action::IsInstalled, 901),
                finished(1, Action::Download, 500),
                phase.clone(),
                finished(0, Action::IsInstalled, 901),
            ]),
        )
        .unwrap()
        .unwrap();
        assert!(r.install_phase);
        assert_eq!(r.steps[0].events.len(), 3);
        assert_eq!(r.steps[0].phase_events().len(), 1);
        assert!(r.steps[1].phase_events().is_empty());
        let twice = replay(Path::new("j"), &lines(&[phase.clone(), phase]));
        assert!(twice.is_err(), "a second install-phase record is damage");
    }

    #[test]
    fn a_journal_of_one_phase_continues_where_it_stopped() {
        // Written before two phases: step 0 finished, step 1 is past its download.
        let done = serde_json::to_string(&Record::StepFinished {
            step: 0,
            outcome: StepOutcome::Succeeded,
        })
        .unwrap();
        let r = replay(
            Path::new("j"),
            &lines(&[
                finished(0, Action::IsInstalled, 901),
                finished(0, Action::Install, 600),
                done,
                finished(1, Action::IsInstalled, 901),
                finished(1, Action::Download, 500),
                finished(1, Action::Backup, 1000),
            ]),
        )
        .unwrap()
        .unwrap();
        assert!(r.install_phase);
        assert_eq!(r.steps[1].phase_events().len(), 3);
        // A new journal at its start is in the download phase.
        let fresh = replay(
            Path::new("j"),
            &lines(&[finished(0, Action::IsInstalled, 901)]),
        )
        .unwrap()
        .unwrap();
        assert!(!fresh.install_phase);
    }
}
