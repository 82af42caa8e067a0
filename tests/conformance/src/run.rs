//! The scenarios the kit runs on a loaded handler, and the verdict of each check over
//! what they showed.
//!
//! Scenarios, each on a fresh device: the *lifecycle* (every declared action but cancel
//! in the engine's order, then is-installed again, then restore), run twice; *install
//! twice*; *cancel* (an action whose deployment is cancelled as it starts, while the
//! handler's cancel action runs);
//! the step *without its payload*; the step with *malformed properties*. Actions the
//! profile lists in `skipActions` are not run with the payload (the no-payload scenario
//! runs every declared action: there is nothing to act on).

use handrail::CancelToken;
use handrail::host::{Description, InvocationEnd};
use handrail::registry::{HandlerKind, is_valid_handler_id};
use handrail_contract::codes::{self, Interruption, ext};
use handrail_contract::{Action, CONTRACT_VERSION};

use crate::bench::{Bench, Outcome, Step};
use crate::checks::Check;
use crate::profile::Profile;
use crate::report::{CheckResult, Verdict};

/// Everything the scenarios showed.
struct Seen {
    lifecycle: Vec<Outcome>,
    lifecycle_again: Vec<Outcome>,
    install_twice: Vec<Outcome>,
    cancel: Option<CancelRun>,
    no_payload: Vec<Outcome>,
    malformed: Vec<Outcome>,
    sandbox_changes: Vec<String>,
    /// Processes the handler's programs or worker left running when they had exited.
    left_behind: u64,
}

struct CancelRun {
    /// The action cancelled as it started; `None` when it did not end within the bound.
    cancelled: (Action, Option<Outcome>),
    /// The handler's cancel action; `None` when it did not end within the bound.
    cancel_action: Option<Option<Outcome>>,
}

impl Seen {
    fn every(&self) -> impl Iterator<Item = &Outcome> {
        self.lifecycle
            .iter()
            .chain(&self.lifecycle_again)
            .chain(&self.install_twice)
            .chain(&self.no_payload)
            .chain(&self.malformed)
    }
}

/// Runs the scenarios and judges every check.
pub(crate) async fn check(bench: &Bench, profile: &Profile) -> Vec<CheckResult> {
    let description = bench.handler().description().clone();
    let runs = Runs {
        bench,
        profile,
        description: &description,
    };
    let before = bench.snapshot();
    let left_before = handrail_confine::left_behind(&description.id);
    let seen = Seen {
        lifecycle: runs.lifecycle().await,
        lifecycle_again: runs.lifecycle().await,
        install_twice: runs.install_twice().await,
        cancel: runs.cancel().await,
        no_payload: runs.each(Step::NoPayload, false).await,
        malformed: runs.each(Step::MalformedProperties, true).await,
        sandbox_changes: Vec::new(),
        left_behind: 0,
    };
    let after = bench.snapshot();
    let mut seen = seen;
    seen.left_behind = handrail_confine::left_behind(&description.id) - left_before;
    for (path, fingerprint) in &before {
        match after.get(path) {
            None => seen
                .sandbox_changes
                .push(format!("{} was removed", path.display())),
            Some(now) if now != fingerprint => seen
                .sandbox_changes
                .push(format!("{} changed ({now})", path.display())),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        seen.sandbox_changes.push(format!(
            "{} appeared outside the work folder",
            path.display()
        ));
    }

    Check::ALL
        .into_iter()
        .map(|check| {
            let (verdict, observations) = match profile.skip.get(&check) {
                Some(why) => (Verdict::Skipped(format!("profile: {why}")), Vec::new()),
                None => runs.judge(check, &seen),
            };
            CheckResult {
                check,
                verdict,
                observations,
            }
        })
        .collect()
}

struct Runs<'a> {
    bench: &'a Bench,
    profile: &'a Profile,
    description: &'a Description,
}

type Judged = (Verdict, Vec<String>);

impl Runs<'_> {
    /// Declared, and not left out by the profile.
    fn runs(&self, action: Action) -> bool {
        self.description.supports(action) && !self.profile.skip_actions.contains_key(&action)
    }

    /// Why `action` is not run with the profile's step, if it is not.
    fn not_run(&self, action: Action) -> Option<String> {
        if !self.description.supports(action) {
            return Some(format!("the handler does not declare `{action}`"));
        }
        self.profile
            .skip_actions
            .get(&action)
            .map(|why| format!("the profile does not run `{action}`: {why}"))
    }

    async fn fresh_device(&self) {
        // A device folder that cannot be emptied shows as sandbox changes or failures
        // of the scenario that follows; nothing more useful can be done here.
        let _ = self.bench.reset_device();
    }

    async fn invoke(&self, action: Action, step: Step) -> Outcome {
        self.bench.invoke(action, step, CancelToken::new()).await
    }

    async fn lifecycle(&self) -> Vec<Outcome> {
        self.fresh_device().await;
        let mut outcomes = Vec::new();
        for action in [
            Action::IsInstalled,
            Action::Download,
            Action::Backup,
            Action::Install,
            Action::Apply,
        ] {
            if self.runs(action) {
                outcomes.push(self.invoke(action, Step::Realistic).await);
            }
        }
        if self.runs(Action::IsInstalled) && self.runs(Action::Install) {
            outcomes.push(self.invoke(Action::IsInstalled, Step::Realistic).await);
        }
        if self.runs(Action::Restore) {
            outcomes.push(self.invoke(Action::Restore, Step::Realistic).await);
        }
        outcomes
    }

    async fn install_twice(&self) -> Vec<Outcome> {
        if !self.runs(Action::Install) {
            return Vec::new();
        }
        self.fresh_device().await;
        let first = self.invoke(Action::Install, Step::Realistic).await;
        let second = self.invoke(Action::Install, Step::Realistic).await;
        vec![first, second]
    }

    /// Every declared action but cancel, with `step`.
    async fn each(&self, step: Step, honour_skip: bool) -> Vec<Outcome> {
        self.fresh_device().await;
        let mut outcomes = Vec::new();
        for action in Action::ALL {
            let runs = if honour_skip {
                self.runs(action)
            } else {
                self.description.supports(action)
            };
            if action != Action::Cancel && runs {
                outcomes.push(self.invoke(action, step).await);
            }
        }
        outcomes
    }

    /// Starts the longest action the handler runs with its deployment already cancelled
    /// and, as the engine does, calls the handler's own cancel action at the same time.
    ///
    /// Cancelled before it begins, not after a delay: what the handler does is then the
    /// same on every run and every machine, however small the payload or quick the
    /// action (a cancel fired mid-way proves nothing when the action ends first), and a
    /// handler that never looks at `is-cancelled` shows it, by running to its end or by
    /// running on until the host stops it.
    async fn cancel(&self) -> Option<CancelRun> {
        let action = [
            Action::Install,
            Action::Apply,
            Action::Download,
            Action::Backup,
            Action::IsInstalled,
        ]
        .into_iter()
        .find(|a| self.runs(*a))?;
        self.fresh_device().await;
        let bound = self.profile.cancel_bound;
        let token = CancelToken::new();
        token.cancel();
        // The host stops the action `bound` after the cancel (the bench's cancel grace);
        // the second `bound` is the host's own time to do so.
        let cancelled = async {
            tokio::time::timeout(
                bound * 2,
                self.bench.invoke(action, Step::Realistic, token.clone()),
            )
            .await
            .ok()
        };
        let cancel_action = async {
            if !self.runs(Action::Cancel) {
                return None;
            }
            Some(
                tokio::time::timeout(bound, self.invoke(Action::Cancel, Step::Realistic))
                    .await
                    .ok(),
            )
        };
        let (cancelled, cancel_action) = tokio::join!(cancelled, cancel_action);
        Some(CancelRun {
            cancelled: (action, cancelled),
            cancel_action,
        })
    }

    fn judge(&self, check: Check, seen: &Seen) -> Judged {
        match check {
            Check::Describe => self.describe(),
            Check::ResultFiles => result_files(&seen.lifecycle),
            Check::IsInstalledAnswers => self.is_installed_answers(seen),
            Check::InstalledAfterInstall => self.installed_after_install(seen),
            Check::IdempotentInstall => self.idempotent_install(seen),
            Check::DeclaredActionsImplemented => declared_implemented(seen),
            Check::Cancel => self.cancel_honoured(seen),
            Check::MissingPayload => self.clean_failures(&seen.no_payload, true),
            Check::MalformedProperties => self.clean_failures(&seen.malformed, false),
            Check::Sandbox => sandbox(seen),
            Check::Limits => limits(seen),
            Check::Deterministic => deterministic(seen),
        }
    }

    fn describe(&self) -> Judged {
        let d = self.description;
        let mut problems = Vec::new();
        if !is_valid_handler_id(&d.id) {
            problems.push(format!("id `{}` is not `vendor/name:major`", d.id));
        }
        if d.contract.0 != CONTRACT_VERSION.0 || d.contract.1 > CONTRACT_VERSION.1 {
            problems.push(format!(
                "contract {}.{} is not one this runtime implements ({}.{})",
                d.contract.0, d.contract.1, CONTRACT_VERSION.0, CONTRACT_VERSION.1
            ));
        }
        if d.actions.is_empty() {
            problems.push("declares no actions".into());
        }
        let mut distinct = d.actions.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != d.actions.len() {
            problems.push(format!("declares an action twice: {:?}", d.actions));
        }
        let observations = vec![format!(
            "id {}, contract {}.{}, actions {:?}",
            d.id, d.contract.0, d.contract.1, d.actions
        )];
        (verdict_of(problems), observations)
    }

    fn is_installed_answers(&self, seen: &Seen) -> Judged {
        if let Some(why) = self.not_run(Action::IsInstalled) {
            return skipped(why);
        }
        let answers: Vec<_> = seen
            .lifecycle
            .iter()
            .filter(|o| o.action == Action::IsInstalled)
            .collect();
        let problems = answers
            .iter()
            .filter_map(|o| {
                let r = o.valid()?;
                (!matches!(
                    r.result_code,
                    codes::IS_INSTALLED_INSTALLED | codes::IS_INSTALLED_NOT_INSTALLED
                ))
                .then(|| format!("answered {}", o.summary()))
            })
            .collect();
        (verdict_of(problems), summaries(answers))
    }

    fn installed_after_install(&self, seen: &Seen) -> Judged {
        for action in [Action::IsInstalled, Action::Install] {
            if let Some(why) = self.not_run(action) {
                return skipped(why);
            }
        }
        let observations = summaries(&seen.lifecycle);
        for o in &seen.lifecycle {
            if matches!(o.action, Action::Install | Action::Apply) {
                let Some(r) = o.valid().filter(|r| r.is_success()) else {
                    return (
                        Verdict::Failed(format!(
                            "`{}` did not succeed with the profile's step ({}), so nothing can be said about is-installed; give a step it can install",
                            o.action,
                            o.summary()
                        )),
                        observations,
                    );
                };
                if Interruption::of(r.result_code).is_some_and(|i| i.is_reboot()) {
                    return (
                        Verdict::Skipped(format!(
                            "`{}` asks for a reboot ({}); is-installed may change only after it",
                            o.action, r.result_code
                        )),
                        observations,
                    );
                }
            }
        }
        let last = seen
            .lifecycle
            .iter()
            .rfind(|o| o.action == Action::IsInstalled);
        let verdict = match last.and_then(|o| o.valid()) {
            Some(r) if r.result_code == codes::IS_INSTALLED_INSTALLED => Verdict::Passed,
            _ => Verdict::Failed(format!(
                "after install succeeded, is-installed said {}",
                last.map(|o| o.summary()).unwrap_or_default()
            )),
        };
        (verdict, observations)
    }

    fn idempotent_install(&self, seen: &Seen) -> Judged {
        if let Some(why) = self.not_run(Action::Install) {
            return skipped(why);
        }
        let observations = summaries(&seen.install_twice);
        let [first, second] = &seen.install_twice[..] else {
            return (
                Verdict::Failed("install was not run twice".into()),
                observations,
            );
        };
        let verdict = match (first.valid(), second.valid()) {
            (Some(a), Some(b)) if a.is_success() && b.is_success() => Verdict::Passed,
            (Some(a), _) if !a.is_success() => Verdict::Failed(format!(
                "the first install did not succeed with the profile's step ({}); give a step it can install",
                first.summary()
            )),
            _ => Verdict::Failed(format!(
                "a second install on the same device failed: {}",
                second.summary()
            )),
        };
        (verdict, observations)
    }

    fn cancel_honoured(&self, seen: &Seen) -> Judged {
        let Some(run) = &seen.cancel else {
            return skipped("the profile runs no action that could be cancelled".into());
        };
        let bound = self.profile.cancel_bound.as_secs_f64();
        let mut problems = Vec::new();
        let mut observations = Vec::new();
        let (action, cancelled) = &run.cancelled;
        let native = self.bench.registration().kind == HandlerKind::Native;
        match cancelled {
            None => problems.push(format!(
                "`{action}`, cancelled as it started, had not ended {:.1} s later (the host could not stop it)",
                2.0 * bound
            )),
            Some(o) => {
                observations.push(format!("cancelled: {} after {:?}", o.summary(), o.elapsed));
                match &o.end {
                    // The runtime stops a native handler's worker at once on a cancel.
                    InvocationEnd::Cancelled if native => {}
                    InvocationEnd::Cancelled => problems.push(format!(
                        "`{action}` ignored the cancel: it was still running {bound:.1} s after it and the host stopped it; poll host.is-cancelled and return resultCode -1"
                    )),
                    InvocationEnd::Returned => match o.valid() {
                        Some(r) if r.result_code == codes::FAILURE_CANCELLED => {}
                        Some(r) if codes::is_success(r.result_code) => problems.push(format!(
                            "`{action}`, cancelled before it began, ran to its end and reported success ({}): it never looked at host.is-cancelled; return resultCode -1 once it is true",
                            o.summary()
                        )),
                        Some(_) => {}
                        None => problems.push(format!(
                            "`{action}`, cancelled, wrote a bad result: {}",
                            o.problem.clone().unwrap_or_else(|| o.summary())
                        )),
                    },
                    InvocationEnd::Trapped(_) | InvocationEnd::WorkerDied(_) => {}
                    other => problems.push(format!("`{action}`, cancelled, ended {other:?}")),
                }
            }
        }
        match &run.cancel_action {
            None => observations.push("the handler declares no cancel action".into()),
            Some(None) => problems.push(format!(
                "the handler's cancel action did not return within {bound:.1} s"
            )),
            Some(Some(o)) => {
                observations.push(format!("cancel action: {}", o.summary()));
                if o.valid().is_none() {
                    problems.push(format!(
                        "the cancel action did not write a valid result: {}",
                        o.problem.clone().unwrap_or_else(|| o.summary())
                    ));
                }
            }
        }
        (verdict_of(problems), observations)
    }

    /// No trap or crash, and a result file that is a result object; with
    /// `payload_missing` and a profile that has payload files, install must fail.
    fn clean_failures(&self, outcomes: &[Outcome], payload_missing: bool) -> Judged {
        let mut problems = Vec::new();
        for o in outcomes {
            match &o.end {
                InvocationEnd::Returned => {}
                // Limits are HC-011's to judge.
                InvocationEnd::TimedOut | InvocationEnd::OutOfMemory(_) => continue,
                other => {
                    problems.push(format!("`{}` ended {other:?}", o.action));
                    continue;
                }
            }
            let written = o.result.as_ref().is_some_and(|r| {
                r.extended() != ext::RESULT_FILE_MISSING
                    && r.extended() != ext::RESULT_FILE_MALFORMED
                    && r.extended() != ext::RESULT_FILE_NOT_UTF8
                    && r.extended() != ext::RESULT_FILE_TOO_LARGE
            });
            if !written {
                problems.push(format!(
                    "`{}` wrote no usable result: {}",
                    o.action,
                    o.summary()
                ));
            }
            if payload_missing
                && !self.profile.files.is_empty()
                && o.action == Action::Install
                && o.valid().is_some_and(|r| r.is_success())
            {
                problems.push(format!(
                    "install succeeded without the step's payload files: {}",
                    o.summary()
                ));
            }
        }
        (verdict_of(problems), summaries(outcomes))
    }
}

fn result_files(lifecycle: &[Outcome]) -> Judged {
    let problems = lifecycle
        .iter()
        .filter_map(|o| match &o.end {
            // Limits are HC-011's, symbolic links HC-010's to judge.
            InvocationEnd::TimedOut | InvocationEnd::OutOfMemory(_) => None,
            InvocationEnd::Returned if o.symlink => None,
            InvocationEnd::Returned => o.problem.as_ref().map(|p| format!("`{}`: {p}", o.action)),
            other => Some(format!("`{}` ended {other:?}", o.action)),
        })
        .collect();
    (verdict_of(problems), summaries(lifecycle))
}

fn declared_implemented(seen: &Seen) -> Judged {
    let cancel = seen
        .cancel
        .as_ref()
        .and_then(|c| c.cancel_action.clone().flatten());
    let problems = seen
        .lifecycle
        .iter()
        .chain(&seen.install_twice)
        .chain(cancel.as_ref())
        .filter_map(|o| {
            let r = o.valid()?;
            (r.extended() == ext::ACTION_UNSUPPORTED).then(|| {
                format!(
                    "declares `{}` but answers it as unsupported: {}",
                    o.action,
                    o.summary()
                )
            })
        })
        .collect();
    (verdict_of(problems), Vec::new())
}

fn sandbox(seen: &Seen) -> Judged {
    let mut problems = seen.sandbox_changes.clone();
    problems.extend(
        seen.every()
            .filter(|o| o.symlink)
            .map(|o| format!("`{}` left a symbolic link as its result file", o.action)),
    );
    (verdict_of(problems), Vec::new())
}

fn limits(seen: &Seen) -> Judged {
    let mut problems: Vec<String> = seen
        .every()
        .filter(|o| {
            matches!(
                o.end,
                InvocationEnd::TimedOut | InvocationEnd::OutOfMemory(_)
            )
        })
        .map(|o| format!("`{}` ended {:?} after {:?}", o.action, o.end, o.elapsed))
        .collect();
    if seen.left_behind > 0 {
        problems.push(format!(
            "its programs left {} processes running once they had exited (the runtime killed them; on a device without cgroups they would live on)",
            seen.left_behind
        ));
    }
    (verdict_of(problems), Vec::new())
}

fn deterministic(seen: &Seen) -> Judged {
    let codes = |outcomes: &[Outcome]| {
        outcomes
            .iter()
            .map(|o| format!("{} {}", o.action, o.codes()))
            .collect::<Vec<_>>()
    };
    let (first, second) = (codes(&seen.lifecycle), codes(&seen.lifecycle_again));
    let problems = first
        .iter()
        .zip(&second)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("first run: {a}; second run: {b}"))
        .collect();
    (verdict_of(problems), first)
}

fn verdict_of(problems: Vec<String>) -> Verdict {
    if problems.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(problems.join("; "))
    }
}

fn skipped(why: String) -> Judged {
    (Verdict::Skipped(why), Vec::new())
}

fn summaries<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Vec<String> {
    outcomes.into_iter().map(Outcome::summary).collect()
}
