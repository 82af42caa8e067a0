//! How the CLI shows things: progress bars and plain text for people, JSON for machines.
//!
//! With `--json`, `deploy`, `resume`, `abandon` and `ddi` print one JSON object per line,
//! each with an `event` (the README's "JSON output" lists them and their fields, all
//! camelCase), ending with `{"event":"report", …}`; other commands print one JSON
//! document. Errors go to stderr as text, or as `{"event":"error","error":"…"}` on stdout
//! with `--json`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handrail::CancelToken;
use handrail::admit::DownloadProgress;
use handrail::download;

use handrail::contract::Action;
use handrail::manifest::UpdateManifest;
use handrail::registry::Registry;
use handrail::report::StepOutcome;
use handrail::state::{HistoryEntry, InstalledCriteria};
use handrail::{Deployment, Event, Phase, Report};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::exit::Failure;

pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    fn print_json(&self, value: &serde_json::Value) {
        println!("{value}");
    }

    pub fn message(&self, text: &str) {
        if self.json {
            self.print_json(&json!({ "event": "message", "message": text }));
        } else {
            println!("{text}");
        }
    }

    pub fn error(&self, e: &anyhow::Error) {
        let text = describe(e);
        if self.json {
            self.print_json(&json!({ "event": "error", "error": text }));
        } else {
            eprintln!("error: {text}");
        }
    }

    /// Follows a deployment to its end, showing progress; Ctrl-C or SIGTERM cancels it.
    pub async fn follow(&self, mut deployment: Deployment) -> Result<Report, Failure> {
        if deployment.is_earlier_result() {
            self.message(&format!(
                "deployment {} already ran; this is its result (nothing was run again)",
                deployment.id()
            ));
        }
        cancel_on_signal(deployment.cancel_token());
        let bar = if self.json {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        };
        let mut labels: Vec<String> = Vec::new();
        let mut offset = 0;
        // JSON gets a line per whole percent; plain lines (no terminal to draw a bar on:
        // systemd, a pipe, a log file) one per tenth, each with the action's name.
        let mut shown = ShownProgress::every(if self.json { 1 } else { 10 });
        let mut running: Vec<Option<Action>> = Vec::new();
        while let Some(event) = deployment.next_event().await {
            if self.json {
                if shown.worth_showing(&event) {
                    self.print_json(&serde_json::to_value(&event).map_err(Failure::internal)?);
                }
                continue;
            }
            match &event {
                Event::StepStarted {
                    step,
                    total,
                    label,
                    phase,
                } => {
                    // Each step counts twice: once downloaded, once installed.
                    offset = if *phase == Phase::Install { *total } else { 0 };
                    bar.set_length(2 * *total as u64);
                    bar.set_position((offset + *step) as u64);
                    if labels.len() <= *step {
                        labels.resize(*step + 1, String::new());
                    }
                    labels[*step] = label.clone();
                    bar.set_message(label.clone());
                }
                Event::ActionStarted { step, action } => {
                    let label = labels.get(*step).cloned().unwrap_or_default();
                    if running.len() <= *step {
                        running.resize(*step + 1, None);
                    }
                    running[*step] = Some(*action);
                    bar.set_message(format!("{label}: {action}"));
                }
                Event::Progress { step, done, total } => {
                    let label = labels.get(*step).cloned().unwrap_or_default();
                    let action = running
                        .get(*step)
                        .copied()
                        .flatten()
                        .map(|a| format!("{a} "))
                        .unwrap_or_default();
                    let line = format!("{label}: {action}{}", progress_text(*done, *total));
                    if !bar.is_hidden() {
                        bar.set_message(line);
                    } else if shown.worth_showing(&event) {
                        println!("  {line}");
                    }
                }
                Event::ActionFinished {
                    step,
                    action,
                    result,
                } => {
                    let label = labels.get(*step).cloned().unwrap_or_default();
                    say(
                        &bar,
                        format!(
                            "  {label}: {action} → {}{}",
                            result.result_code,
                            if result.is_success() {
                                String::new()
                            } else {
                                format!(" ({}) {}", result.extended(), result.result_details)
                            }
                        ),
                    );
                }
                Event::StepFinished { step, outcome } => {
                    let label = labels.get(*step).cloned().unwrap_or_default();
                    say(&bar, format!("{} {label}: {outcome}", mark(*outcome)));
                    bar.set_position((offset + *step) as u64 + 1);
                }
                Event::Suspended { interruption } => {
                    say(&bar, format!("⏸ suspended: {interruption:?} required"));
                }
            }
        }
        bar.finish_and_clear();
        let report = deployment.finish().await.map_err(Failure::internal)?;
        self.report(&report);
        Ok(report)
    }

    /// Shows each payload file's download while a deployment is admitted: a bar on a
    /// terminal, else a line per tenth (JSON: an event per whole percent).
    pub fn downloads(&self) -> DownloadProgress {
        let json = self.json;
        let bar = if json {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}, {eta} left",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        };
        let last = Mutex::new(None::<(String, u64)>);
        DownloadProgress(Arc::new(move |p: &download::Progress| {
            if !bar.is_hidden() {
                bar.set_length(p.total);
                bar.set_position(p.done);
                bar.set_message(format!("downloading {}", p.file));
                if p.done == p.total {
                    bar.println(format!("  downloaded {} ({})", p.file, HumanBytes(p.total)));
                    bar.set_position(0);
                }
                return;
            }
            let every = if json { 1 } else { 10 };
            let percent = (u128::from(p.done) * 100 / u128::from(p.total.max(1))).min(100) as u64;
            let bucket = percent / every * every;
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last
                .as_ref()
                .is_some_and(|(f, b)| *f == p.file && *b == bucket)
            {
                return;
            }
            *last = Some((p.file.clone(), bucket));
            if json {
                println!(
                    "{}",
                    json!({"event": "download", "file": p.file, "done": p.done, "total": p.total})
                );
            } else {
                println!(
                    "  downloading {}: {bucket}% ({} of {})",
                    p.file,
                    HumanBytes(p.done),
                    HumanBytes(p.total)
                );
            }
        }))
    }

    pub fn report(&self, report: &Report) {
        if self.json {
            let mut v = serde_json::to_value(report).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("event".into(), "report".into());
            }
            self.print_json(&v);
            return;
        }
        println!(
            "deployment {} of {}: {}",
            report.deployment, report.update_id, report.status
        );
        if let Some(i) = report.interruption {
            println!(
                "  waiting for: {i:?}; run `handrail resume` once the {} has happened",
                if i.is_reboot() {
                    "reboot"
                } else {
                    "agent restart"
                }
            );
        }
        if let Some(f) = &report.failure {
            println!(
                "  failed at {} ({}): resultCode {}, extendedResultCode {} — {}",
                f.label, f.action, f.result_code, f.extended_result_code_hex, f.result_details
            );
        }
        if let Some(e) = &report.error {
            println!("  {e}");
        }
        if let Some(e) = &report.post_hook_error {
            println!("  post-update hook: {e}");
        }
    }

    pub fn valid(&self, path: &Path, manifest: &UpdateManifest) {
        if self.json {
            self.print_json(&json!({
                "valid": true,
                "file": path.display().to_string(),
                "updateId": manifest.update_id.to_string(),
                "steps": manifest.steps.len(),
            }));
        } else {
            println!(
                "{}: valid update manifest for {} ({} steps)",
                path.display(),
                manifest.update_id,
                manifest.steps.len()
            );
        }
    }

    pub fn status(&self, current: Option<&Report>, installed: &[InstalledCriteria]) {
        if self.json {
            self.print_json(&json!({ "current": current, "installed": installed }));
            return;
        }
        match current {
            None => println!("no deployment in progress"),
            Some(r) => {
                println!(
                    "deployment {} of {}: {}",
                    r.deployment, r.update_id, r.status
                );
                for s in &r.steps {
                    match s.running {
                        Some(action) if s.outcome == StepOutcome::Pending => {
                            println!("  ▸ {}: {action} started, not finished", s.label);
                        }
                        _ => println!("  {} {}: {}", mark(s.outcome), s.label, s.outcome),
                    }
                }
            }
        }
        println!("installed criteria: {}", installed.len());
        for i in installed {
            println!(
                "  {} ({} for {}{}) at {}",
                i.installed_criteria,
                i.handler,
                i.update_id,
                i.component
                    .as_ref()
                    .map(|c| format!(", component {c}"))
                    .unwrap_or_default(),
                i.at
            );
        }
    }

    pub fn history(&self, entries: &[HistoryEntry]) {
        if self.json {
            self.print_json(&serde_json::to_value(entries).unwrap_or_default());
            return;
        }
        if entries.is_empty() {
            println!("no deployments yet");
        }
        for e in entries {
            let r = &e.report;
            println!(
                "#{} {} {} {} ({} → {})",
                e.sequence,
                r.deployment,
                r.update_id,
                r.status,
                r.started_at,
                r.finished_at.as_deref().unwrap_or("-")
            );
            if let Some(f) = &r.failure {
                println!(
                    "    failed at {} ({}): {} {} {}",
                    f.label, f.action, f.result_code, f.extended_result_code_hex, f.result_details
                );
            }
            if let Some(e) = &r.error {
                println!("    {e}");
            }
        }
    }

    pub fn handlers(&self, registry: &Registry) {
        if self.json {
            let list: Vec<_> = registry.iter().collect();
            self.print_json(&serde_json::to_value(list).unwrap_or_default());
            return;
        }
        if registry.iter().next().is_none() {
            println!("no handlers registered");
        }
        let paths = |paths: &[std::path::PathBuf]| {
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for r in registry.iter() {
            let caps = &r.capabilities;
            let mut folders = String::new();
            for (name, list) in [("read", &caps.read), ("write", &caps.write)] {
                if !list.is_empty() {
                    folders.push_str(&format!("  {name}: [{}]", paths(list)));
                }
            }
            println!(
                "{}  {}  {}  run: [{}]{folders}  memory {} MiB, timeout {} s",
                r.id,
                r.kind,
                r.artifact.display(),
                paths(&caps.run),
                r.limits.memory_mib,
                r.limits.timeout_secs
            );
            // A handler whose artifact is not what its registration says cannot load:
            // said here, not first when a step reaches it.
            if let Err(e) = r.verify_artifact() {
                println!("  cannot load: {e}");
            }
        }
    }
}

/// A line above the progress bar, or on stdout when there is no terminal to draw on.
/// Which progress events are worth a line: a handler may report progress millions of
/// times, and a log reader needs one line per `every` percent of a step's progress (and
/// its first report), not one per report.
struct ShownProgress {
    /// The step and the percent last shown.
    last: Option<(usize, u64)>,
    /// The granularity, in percent.
    every: u64,
}

/// Progress for people: the percent, and the handler's own units.
fn progress_text(done: u64, total: u64) -> String {
    if total == 0 {
        return format!("{done} done");
    }
    let percent = (u128::from(done) * 100 / u128::from(total)).min(100);
    format!("{percent}% ({done} of {total})")
}

impl ShownProgress {
    fn every(every: u64) -> ShownProgress {
        ShownProgress {
            last: None,
            every: every.max(1),
        }
    }

    /// True for every event but progress within the `every` percent already shown.
    fn worth_showing(&mut self, event: &Event) -> bool {
        let Event::Progress { step, done, total } = event else {
            self.last = None;
            return true;
        };
        let percent = if *total == 0 {
            0
        } else {
            (u128::from(*done) * 100 / u128::from(*total)).min(100) as u64 / self.every * self.every
        };
        let first = self.last.is_none_or(|(s, _)| s != *step);
        let show = first || self.last != Some((*step, percent));
        if show {
            self.last = Some((*step, percent));
        }
        show
    }
}

/// Cancels `cancel` at the first SIGINT or SIGTERM, from a task it starts. The signals
/// are taken over before it returns: one that comes while the caller goes on (admission
/// staging files, before the task has first run) cancels, rather than killing the
/// process as the default action would.
pub fn cancel_on_signal(cancel: CancelToken) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = signals else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        cancel.cancel();
    })
}

fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn mark(outcome: StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Succeeded => "✔",
        StepOutcome::AlreadyInstalled | StepOutcome::NoMatchingComponents => "↷",
        StepOutcome::Failed => "✘",
        StepOutcome::Cancelled => "⊘",
        StepOutcome::RolledBack => "↺",
        StepOutcome::Pending => "·",
    }
}

/// An error and its causes, each said once: a cause whose text the message already
/// carries (many errors name their source in their own message) is not repeated.
pub fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}
