//! ADU's action sequence as a pure function of what the journal recorded.
//!
//! A deployment runs in ADU's two phases. In the download phase every step runs
//! `is-installed` (900 → the step is done) and `download`; only when every step has
//! downloaded does the install phase run, step by step, `is-installed` again, `backup`,
//! `install` and `apply`. So a download that fails in a late step leaves nothing
//! installed. Within a phase: `restore` when install or apply fails after a successful
//! backup; the handler's `cancel` after an action was cancelled; actions the handler
//! does not implement are skipped. Like ADU's agent, a failed `is-installed` counts as
//! "not installed": the step goes on, and fails (if it does) in the action that fails.
//!
//! Because the next move depends only on the step's recorded events in its phase, a
//! live run and a run resumed from the journal after a crash take the same path; an
//! action that was interrupted by a crash is re-run after `is-installed` confirms the
//! step is not already installed. When `is-installed` answers installed after a crash
//! interrupted the step's `install` or `apply`, the change is this deployment's own (the
//! action got far enough before the crash): the step goes on as if that action had
//! succeeded, so it ends as an uninterrupted run would — succeeded, recorded installed,
//! in the rollback set — not as "already installed".

use handrail_contract::codes::{self, Interruption};
use handrail_contract::{Action, ResultFile};

use crate::journal::StepEvent;
use crate::report::StepOutcome;

/// The two phases of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `is-installed` and `download`, for every step before any installs.
    Download,
    /// `is-installed`, `backup`, `install`, `apply`, step by step.
    Install,
}

impl Phase {
    /// The forward actions of the phase, in order.
    fn forward(self) -> &'static [Action] {
        match self {
            Phase::Download => &[Action::IsInstalled, Action::Download],
            Phase::Install => &[
                Action::IsInstalled,
                Action::Backup,
                Action::Install,
                Action::Apply,
            ],
        }
    }
}

/// What to do next for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Run this action.
    Run(Action),
    /// The step has downloaded and waits for the install phase.
    Downloaded,
    /// The step is over with this outcome.
    Finish(StepOutcome),
    /// The step asked for a reboot or agent restart and waits for it: suspend now, and
    /// verify with `is-installed` once resumed.
    AwaitRestart(Interruption),
}

/// The first supported forward action of `phase` after `after` (from the start for
/// `None`), or `None` at the end of the phase.
fn forward_from(
    phase: Phase,
    after: Option<Action>,
    supports: &dyn Fn(Action) -> bool,
) -> Option<Action> {
    let forward = phase.forward();
    let start = match after {
        None => 0,
        Some(a) => forward
            .iter()
            .position(|x| *x == a)
            .map_or(forward.len(), |p| p + 1),
    };
    forward[start..].iter().copied().find(|a| supports(*a))
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
    // A verification that a crash interrupted is still one when it runs again.
    let mut events = events;
    while let Some((StepEvent::Interrupted(Action::IsInstalled), before)) = events.split_last() {
        events = before;
    }
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

/// The move after `action` succeeded (or, for `None`, before the phase's first action).
fn forward(
    phase: Phase,
    after: Option<Action>,
    events: &[StepEvent],
    supports: &dyn Fn(Action) -> bool,
) -> Move {
    match forward_from(phase, after, supports) {
        Some(next) => Move::Run(next),
        None if phase == Phase::Download => Move::Downloaded,
        None => after_last_action(events, supports),
    }
}

/// The next move for a step in `phase`, given its recorded events in that phase (see
/// [`crate::journal::StepState::phase_events`]) and what the handler supports.
pub fn next_move(events: &[StepEvent], phase: Phase, supports: &dyn Fn(Action) -> bool) -> Move {
    let evs: Vec<&StepEvent> = events
        .iter()
        .filter(|e| !matches!(e, StepEvent::Resumed))
        .collect();
    let Some(last) = evs.last() else {
        return forward(phase, None, events, supports);
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
            let interrupted = evs.len().checked_sub(2).and_then(|i| match evs[i] {
                StepEvent::Interrupted(u) => Some(*u),
                _ => None,
            });
            if result.result_code == codes::IS_INSTALLED_INSTALLED {
                match interrupted {
                    // The interrupted install or apply made the change: go on from it.
                    Some(u @ (Action::Install | Action::Apply)) => {
                        forward(phase, Some(u), events, supports)
                    }
                    _ => Move::Finish(StepOutcome::AlreadyInstalled),
                }
            } else if result.result_code == codes::FAILURE_CANCELLED {
                after_failure(action, &evs, supports)
            } else if let Some(u) = interrupted {
                // A re-check after a crash: the step is not installed, so re-run the
                // action the crash interrupted.
                Move::Run(u)
            } else {
                // Not installed — or `is-installed` failed, which ADU's agent also takes
                // as "not installed".
                forward(phase, Some(Action::IsInstalled), events, supports)
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
        // ADU's steps handler goes on to the next step, without `apply`, after an install
        // that says it skipped (already installed, or no matching component).
        Action::Install
            if matches!(
                result.result_code,
                codes::INSTALL_SKIPPED_UPDATE_ALREADY_INSTALLED
                    | codes::INSTALL_SKIPPED_NO_MATCHING_COMPONENTS
            ) =>
        {
            Move::Finish(
                if result.result_code == codes::INSTALL_SKIPPED_UPDATE_ALREADY_INSTALLED {
                    StepOutcome::AlreadyInstalled
                } else {
                    StepOutcome::NoMatchingComponents
                },
            )
        }
        _ if result.is_success() => forward(phase, Some(action), events, supports),
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

    /// Runs a step's phase with every action succeeding; returns what ran and the end.
    fn run_phase(evs: &mut Vec<StepEvent>, phase: Phase) -> (Vec<Action>, Move) {
        let mut ran = vec![];
        loop {
            match next_move(evs, phase, &all) {
                Move::Run(a) => {
                    ran.push(a);
                    evs.push(done(a, a.success_code()));
                }
                end => return (ran, end),
            }
        }
    }

    #[test]
    fn a_step_downloads_then_installs_in_two_phases() {
        let mut download = vec![];
        assert_eq!(
            run_phase(&mut download, Phase::Download),
            (
                vec![Action::IsInstalled, Action::Download],
                Move::Downloaded
            )
        );
        // The install phase sees only its own events, and checks again first.
        let mut install = vec![];
        assert_eq!(
            run_phase(&mut install, Phase::Install),
            (
                vec![
                    Action::IsInstalled,
                    Action::Backup,
                    Action::Install,
                    Action::Apply
                ],
                Move::Finish(StepOutcome::Succeeded)
            )
        );
    }

    #[test]
    fn installed_skips_and_unsupported_actions_are_left_out() {
        let evs = [done(Action::IsInstalled, 900)];
        for phase in [Phase::Download, Phase::Install] {
            assert_eq!(
                next_move(&evs, phase, &all),
                Move::Finish(StepOutcome::AlreadyInstalled)
            );
        }
        let only_install = |a: Action| a == Action::Install;
        assert_eq!(
            next_move(&[], Phase::Download, &only_install),
            Move::Downloaded
        );
        assert_eq!(
            next_move(&[], Phase::Install, &only_install),
            Move::Run(Action::Install)
        );
        let evs = [done(Action::Install, 600)];
        assert_eq!(
            next_move(&evs, Phase::Install, &only_install),
            Move::Finish(StepOutcome::Succeeded)
        );
    }

    #[test]
    fn installed_after_a_crash_in_install_or_apply_goes_on_as_if_the_action_succeeded() {
        let interrupted = |a| {
            vec![
                done(Action::IsInstalled, 901),
                done(Action::Backup, 1000),
                done(Action::Install, 600),
                StepEvent::Interrupted(a),
                done(Action::IsInstalled, 900),
            ]
        };
        assert_eq!(
            next_move(&interrupted(Action::Apply), Phase::Install, &all),
            Move::Finish(StepOutcome::Succeeded)
        );
        // No finished install before an interrupted install.
        let mut evs = interrupted(Action::Install);
        evs.remove(2);
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Run(Action::Apply)
        );
        // A download or backup changes nothing on the device: installed is installed.
        let evs = [
            StepEvent::Interrupted(Action::Download),
            done(Action::IsInstalled, 900),
        ];
        assert_eq!(
            next_move(&evs, Phase::Download, &all),
            Move::Finish(StepOutcome::AlreadyInstalled)
        );
        // A verification after a reboot that a crash interrupted is still a verification.
        let evs = [
            done(Action::IsInstalled, 901),
            done(Action::Install, 600),
            done(Action::Apply, codes::APPLY_REQUIRED_REBOOT),
            StepEvent::Resumed,
            StepEvent::Interrupted(Action::IsInstalled),
            done(Action::IsInstalled, 900),
        ];
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Finish(StepOutcome::Succeeded)
        );
    }

    #[test]
    fn a_failed_is_installed_counts_as_not_installed() {
        let evs = [done(Action::IsInstalled, 0)];
        assert_eq!(
            next_move(&evs, Phase::Download, &all),
            Move::Run(Action::Download)
        );
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Run(Action::Backup)
        );
        // A cancelled one is a cancel.
        let evs = [done(Action::IsInstalled, codes::FAILURE_CANCELLED)];
        assert_eq!(
            next_move(&evs, Phase::Download, &|a| a != Action::Cancel),
            Move::Finish(StepOutcome::Cancelled)
        );
    }

    #[test]
    fn any_positive_code_is_success_and_a_skipped_install_skips_apply() {
        let evs = [done(Action::IsInstalled, 901), done(Action::Backup, 700)];
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Run(Action::Install)
        );
        let evs = [
            done(Action::IsInstalled, 901),
            done(
                Action::Install,
                codes::INSTALL_SKIPPED_UPDATE_ALREADY_INSTALLED,
            ),
        ];
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Finish(StepOutcome::AlreadyInstalled)
        );
    }

    #[test]
    fn failed_install_restores_only_after_a_real_backup() {
        let evs = [
            done(Action::IsInstalled, 901),
            done(Action::Backup, 1000),
            done(Action::Install, 0),
        ];
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Run(Action::Restore)
        );
        let mut evs = evs.to_vec();
        evs.push(done(Action::Restore, 1100));
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Finish(StepOutcome::Failed)
        );
        evs[1] = done(Action::Backup, 1001);
        evs.pop();
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Finish(StepOutcome::Failed)
        );
        let evs = [done(Action::IsInstalled, 901), done(Action::Download, 0)];
        assert_eq!(
            next_move(&evs, Phase::Download, &all),
            Move::Finish(StepOutcome::Failed)
        );
    }

    #[test]
    fn interrupted_action_is_rechecked_then_rerun() {
        for (phase, interrupted, then) in [
            (Phase::Download, Action::Download, Move::Downloaded),
            (Phase::Install, Action::Install, Move::Run(Action::Apply)),
        ] {
            let evs = vec![
                done(Action::IsInstalled, 901),
                StepEvent::Interrupted(interrupted),
            ];
            assert_eq!(next_move(&evs, phase, &all), Move::Run(Action::IsInstalled));
            let mut installed = evs.clone();
            installed.push(done(Action::IsInstalled, 900));
            // An interrupted download changed nothing: installed before. An interrupted
            // install made the change: on as if it had succeeded.
            assert_eq!(
                next_move(&installed, phase, &all),
                if phase == Phase::Download {
                    Move::Finish(StepOutcome::AlreadyInstalled)
                } else {
                    then
                }
            );
            let mut not = evs.clone();
            not.push(done(Action::IsInstalled, 901));
            assert_eq!(next_move(&not, phase, &all), Move::Run(interrupted));
            not.push(done(interrupted, interrupted.success_code()));
            assert_eq!(next_move(&not, phase, &all), then);
        }
    }

    #[test]
    fn cancel_runs_the_handlers_cancel_then_restores() {
        let evs = vec![
            done(Action::IsInstalled, 901),
            done(Action::Backup, 1000),
            done(Action::Install, codes::FAILURE_CANCELLED),
        ];
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Run(Action::Cancel)
        );
        let mut evs = evs;
        evs.push(done(Action::Cancel, 800));
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Run(Action::Restore)
        );
        evs.push(done(Action::Restore, 1100));
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Finish(StepOutcome::Cancelled)
        );
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
        assert_eq!(
            next_move(&evs, Phase::Install, &all),
            Move::Run(Action::Apply)
        );
        evs.push(done(Action::Apply, 708));
        assert_eq!(
            pending_interruption(&evs),
            Some(Interruption::DeferredAgentRestart)
        );
    }
}
