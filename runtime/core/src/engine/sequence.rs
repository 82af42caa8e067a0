//! ADU's per-step action sequence as a pure function of what the journal recorded.
//!
//! Per step: `is-installed` (900 → skip), `download`, `backup`, `install`, `apply`;
//! `restore` when install or apply fails after a successful backup; the handler's
//! `cancel` after an action was cancelled. Actions the handler does not implement are
//! skipped. Because the next move depends only on the step's recorded events, a live run
//! and a run resumed from the journal after a crash take the same path; an action that
//! was interrupted by a crash is re-run after `is-installed` confirms the step is not
//! already installed.

use handrail_contract::codes::{self, Interruption};
use handrail_contract::{Action, ResultFile};

use crate::journal::StepEvent;
use crate::report::StepOutcome;

/// What to do next for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Run this action.
    Run(Action),
    /// The step is over with this outcome.
    Finish(StepOutcome),
    /// The step asked for a reboot or agent restart and waits for it: suspend now, and
    /// verify with `is-installed` once resumed.
    AwaitRestart(Interruption),
}

const FORWARD: [Action; 5] = [
    Action::IsInstalled,
    Action::Download,
    Action::Backup,
    Action::Install,
    Action::Apply,
];

/// The first supported forward action after `after` (or from the start for `None`).
fn forward_from(after: Option<Action>, supports: &dyn Fn(Action) -> bool) -> Move {
    let start = match after {
        None => 0,
        Some(a) => FORWARD
            .iter()
            .position(|x| *x == a)
            .map_or(FORWARD.len(), |p| p + 1),
    };
    FORWARD[start..]
        .iter()
        .copied()
        .find(|a| supports(*a))
        .map_or(Move::Finish(StepOutcome::Succeeded), Move::Run)
}

fn finished(e: &StepEvent) -> Option<(Action, &ResultFile)> {
    match e {
        StepEvent::Finished(r) => Some((r.action, &r.result)),
        _ => None,
    }
}

pub(crate) fn backed_up(events: &[&StepEvent]) -> bool {
    events.iter().filter_map(|e| finished(e)).any(|(a, r)| {
        a == Action::Backup && r.is_success() && r.result_code != codes::BACKUP_SUCCESS_UNSUPPORTED
    })
}

fn was_cancelled(events: &[&StepEvent]) -> bool {
    events
        .iter()
        .filter_map(|e| finished(e))
        .any(|(_, r)| r.result_code == codes::FAILURE_CANCELLED)
}

/// After a failed or cancelled `action`: restore when a backup exists, else finish.
fn after_failure(action: Action, events: &[&StepEvent], supports: &dyn Fn(Action) -> bool) -> Move {
    if matches!(action, Action::Install | Action::Apply)
        && backed_up(events)
        && supports(Action::Restore)
    {
        Move::Run(Action::Restore)
    } else if was_cancelled(events) {
        Move::Finish(StepOutcome::Cancelled)
    } else {
        Move::Finish(StepOutcome::Failed)
    }
}

/// The interruption a step asked for, if any of its actions did.
fn asked_for_restart(events: &[StepEvent]) -> Option<Interruption> {
    events
        .iter()
        .filter_map(finished)
        .find_map(|(_, r)| Interruption::of(r.result_code))
}

/// True when an `is-installed` run now would verify a reboot or restart: the step asked
/// for one, was resumed after it, and no crash interrupted an action since.
pub fn verifies(events: &[StepEvent]) -> bool {
    if matches!(events.last(), Some(StepEvent::Interrupted(_))) {
        return false;
    }
    events
        .iter()
        .rposition(|e| matches!(e, StepEvent::Resumed))
        .is_some_and(|resumed| asked_for_restart(&events[..resumed]).is_some())
}

/// True when the step's last event is such a verification.
fn is_verification(events: &[StepEvent]) -> bool {
    match events.split_last() {
        Some((StepEvent::Finished(r), before)) => {
            r.action == Action::IsInstalled && verifies(before)
        }
        _ => false,
    }
}

/// What a step that has run all its actions does next: finish, or — when it asked for a
/// reboot or restart and the handler can tell — wait for it and verify afterwards
/// (success is reported only once the new version is seen running).
fn after_last_action(events: &[StepEvent], supports: &dyn Fn(Action) -> bool) -> Move {
    let Some(interruption) = asked_for_restart(events) else {
        return Move::Finish(StepOutcome::Succeeded);
    };
    if !supports(Action::IsInstalled) {
        return Move::Finish(StepOutcome::Succeeded);
    }
    if events.iter().any(|e| matches!(e, StepEvent::Resumed)) {
        Move::Run(Action::IsInstalled)
    } else {
        Move::AwaitRestart(interruption)
    }
}

/// The next move for a step, given its recorded events and what the handler supports.
pub fn next_move(events: &[StepEvent], supports: &dyn Fn(Action) -> bool) -> Move {
    let evs: Vec<&StepEvent> = events
        .iter()
        .filter(|e| !matches!(e, StepEvent::Resumed))
        .collect();
    let Some(last) = evs.last() else {
        return forward_from(None, supports);
    };
    let (action, result) = match last {
        StepEvent::Interrupted(a @ (Action::Restore | Action::Cancel | Action::IsInstalled)) => {
            return Move::Run(*a);
        }
        StepEvent::Interrupted(a) => {
            return Move::Run(if supports(Action::IsInstalled) {
                Action::IsInstalled
            } else {
                *a
            });
        }
        StepEvent::Resumed => unreachable!("filtered above"),
        StepEvent::Finished(r) => (r.action, &r.result),
    };
    match action {
        Action::IsInstalled if is_verification(events) => {
            if result.result_code == codes::IS_INSTALLED_INSTALLED {
                Move::Finish(StepOutcome::Succeeded)
            } else {
                // Not running after the reboot: undo as for a failed apply.
                after_failure(Action::Apply, &evs, supports)
            }
        }
        Action::IsInstalled => {
            if result.result_code == codes::IS_INSTALLED_INSTALLED {
                Move::Finish(StepOutcome::AlreadyInstalled)
            } else if !result.is_success() {
                after_failure(action, &evs, supports)
            } else if let Some(StepEvent::Interrupted(u)) = evs.len().checked_sub(2).map(|i| evs[i])
            {
                // A re-check after a crash: the step is not installed, so re-run the
                // action the crash interrupted.
                Move::Run(*u)
            } else {
                forward_from(Some(Action::IsInstalled), supports)
            }
        }
        Action::Cancel => {
            let cancelled = evs[..evs.len() - 1]
                .iter()
                .rev()
                .find_map(|e| finished(e))
                .map_or(Action::IsInstalled, |(a, _)| a);
            after_failure(cancelled, &evs, supports)
        }
        Action::Restore => Move::Finish(if was_cancelled(&evs) {
            StepOutcome::Cancelled
        } else {
            StepOutcome::Failed
        }),
        _ if result.is_success() => match forward_from(Some(action), supports) {
            Move::Finish(StepOutcome::Succeeded) => after_last_action(events, supports),
            other => other,
        },
        _ if result.result_code == codes::FAILURE_CANCELLED && supports(Action::Cancel) => {
            Move::Run(Action::Cancel)
        }
        _ => after_failure(action, &evs, supports),
    }
}

/// The reboot or restart the step asked for since it last resumed, if any.
pub fn pending_interruption(events: &[StepEvent]) -> Option<Interruption> {
    events
        .iter()
        .rev()
        .take_while(|e| !matches!(e, StepEvent::Resumed))
        .filter_map(finished)
        .find_map(|(_, r)| Interruption::of(r.result_code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ActionRecord;

    fn done(action: Action, code: i32) -> StepEvent {
        StepEvent::Finished(ActionRecord {
            action,
            result: ResultFile::new(code, ""),
        })
    }

    fn all(_: Action) -> bool {
        true
    }

    #[test]
    fn happy_path_runs_the_whole_sequence() {
        let mut evs = vec![];
        let mut ran = vec![];
        while let Move::Run(a) = next_move(&evs, &all) {
            ran.push(a);
            evs.push(done(a, a.success_code()));
        }
        assert_eq!(ran, FORWARD);
        assert_eq!(next_move(&evs, &all), Move::Finish(StepOutcome::Succeeded));
    }

    #[test]
    fn installed_skips_and_unsupported_actions_are_left_out() {
        let evs = [done(Action::IsInstalled, 900)];
        assert_eq!(
            next_move(&evs, &all),
            Move::Finish(StepOutcome::AlreadyInstalled)
        );
        let only_install = |a: Action| a == Action::Install;
        assert_eq!(next_move(&[], &only_install), Move::Run(Action::Install));
        let evs = [done(Action::Install, 600)];
        assert_eq!(
            next_move(&evs, &only_install),
            Move::Finish(StepOutcome::Succeeded)
        );
    }

    #[test]
    fn failed_install_restores_only_after_a_real_backup() {
        let evs = [
            done(Action::IsInstalled, 901),
            done(Action::Download, 500),
            done(Action::Backup, 1000),
            done(Action::Install, 0),
        ];
        assert_eq!(next_move(&evs, &all), Move::Run(Action::Restore));
        let mut evs = evs.to_vec();
        evs.push(done(Action::Restore, 1100));
        assert_eq!(next_move(&evs, &all), Move::Finish(StepOutcome::Failed));
        evs[2] = done(Action::Backup, 1001);
        evs.pop();
        assert_eq!(next_move(&evs, &all), Move::Finish(StepOutcome::Failed));
        let evs = [done(Action::Download, 0)];
        assert_eq!(next_move(&evs, &all), Move::Finish(StepOutcome::Failed));
    }

    #[test]
    fn interrupted_action_is_rechecked_then_rerun() {
        let evs = vec![
            done(Action::IsInstalled, 901),
            done(Action::Download, 500),
            StepEvent::Interrupted(Action::Install),
        ];
        assert_eq!(next_move(&evs, &all), Move::Run(Action::IsInstalled));
        let mut installed = evs.clone();
        installed.push(done(Action::IsInstalled, 900));
        assert_eq!(
            next_move(&installed, &all),
            Move::Finish(StepOutcome::AlreadyInstalled)
        );
        let mut not = evs.clone();
        not.push(done(Action::IsInstalled, 901));
        assert_eq!(next_move(&not, &all), Move::Run(Action::Install));
        not.push(done(Action::Install, 600));
        assert_eq!(next_move(&not, &all), Move::Run(Action::Apply));
    }

    #[test]
    fn cancel_runs_the_handlers_cancel_then_restores() {
        let evs = vec![
            done(Action::IsInstalled, 901),
            done(Action::Backup, 1000),
            done(Action::Install, codes::FAILURE_CANCELLED),
        ];
        assert_eq!(next_move(&evs, &all), Move::Run(Action::Cancel));
        let mut evs = evs;
        evs.push(done(Action::Cancel, 800));
        assert_eq!(next_move(&evs, &all), Move::Run(Action::Restore));
        evs.push(done(Action::Restore, 1100));
        assert_eq!(next_move(&evs, &all), Move::Finish(StepOutcome::Cancelled));
    }

    #[test]
    fn interruptions_are_pending_until_resumed() {
        let mut evs = vec![done(Action::IsInstalled, 901), done(Action::Install, 605)];
        assert_eq!(
            pending_interruption(&evs),
            Some(Interruption::ImmediateReboot)
        );
        evs.push(StepEvent::Resumed);
        assert_eq!(pending_interruption(&evs), None);
        assert_eq!(next_move(&evs, &all), Move::Run(Action::Apply));
        evs.push(done(Action::Apply, 708));
        assert_eq!(
            pending_interruption(&evs),
            Some(Interruption::DeferredAgentRestart)
        );
    }
}
