//! A hawkBit DDI client: takes updates from an Eclipse hawkBit server (or one that speaks
//! its Direct Device Integration API, such as goosebit) and runs them through the
//! [`handrail::Runtime`]. `handrail ddi` is this client as a long-running service.
//!
//! Each round it polls the controller resource (`{server}/{tenant}/controller/v1/{id}`)
//! and then waits the interval the server gives (`config.polling.sleep`), backing off
//! exponentially, with jitter, up to `[ddi] retry_max_secs` while the server cannot be
//! reached or answers 5xx/429 (a `Retry-After` is honoured). What the poll links to:
//!
//! - **configData**: the device's `[device]` properties are sent (`mode: merge`).
//! - **deploymentBase**: the action is taken, one at a time, unless the device already
//!   reported it. Its artifacts decide what runs:
//!   - an artifact that is an update manifest or envelope (`.json`), with the payload
//!     files as further artifacts: the manifest is deployed as delivered (its signature
//!     checked as for any deployment), and each payload file is downloaded from its
//!     artifact's link straight into the deployment — resumably, verified against the
//!     manifest's sha256;
//!   - one Handrail bundle (`.swu` with a `handrail-manifest.json`, see
//!     [`handrail::bundle`]): downloaded, verified, unpacked and deployed;
//!   - one plain SWUpdate image (`.swu`): with `[ddi] bare_swu` (the default), run as one
//!     `microsoft/swupdate:2` step whose `installedCriteria` is the chunk's version;
//!     SWUpdate checks the image's own signature.
//!
//!   Feedback: `proceeding` with `Downloaded N%` (each tenth) while an artifact
//!   downloads, `proceeding` with `progress {cnt, of}` as each step starts, and
//!   `closed` with `success` or `failure` and the report's details at the end.
//!   `update: skip` (a closed maintenance window) waits, installing nothing, until the
//!   server offers the action with `update` allowed.
//! - **cancelAction**: the running action is cancelled through the runtime (its handler's
//!   `cancel`, then the rollback the failure policy says) and the cancel is confirmed as
//!   hawkBit expects: `closed` + `success`, "cancellation acknowledged" and the report.
//!   A cancel for an action that is not running is confirmed at once.
//!
//! **Exactly once.** The action being worked on is kept in `<state>/ddi/action.json`
//! (durably, before anything runs): its id, the feedback URL and the deployment id
//! (`ddi-<action id>`). After a crash, a power cut, a reboot a step asked for or a
//! self-update, the client first resumes the runtime's deployment, then reports its
//! result; a result is sent until the server takes it (2xx, or 410 Gone: the action
//! is no longer active) and then marked reported, so the server hears it once. An action
//! the server offers again after it was reported is not run again.

mod api;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use handrail::bundle::{Bundle, MANIFEST_MEMBER};
use handrail::config::{Config, DdiAuth, DdiConfig};
use handrail::download::{Downloader, FileHash, Progress, Wanted};
use handrail::{AdmitOptions, CancelToken, DeploymentStatus, Event, Report, Runtime};
use handrail_http::{ApiRequest, HttpTransport};
use serde::{Deserialize, Serialize};

pub use api::{Artifact, Chunk, DeploymentBase, Handling, Poll};

/// The record format of `<state>/ddi/action.json`.
const RECORD_FORMAT: u32 = 1;

/// Why the client cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum DdiError {
    /// `[ddi]` is missing or wrong.
    #[error("[ddi] {0}")]
    Config(String),
    /// The state directory failed.
    #[error("{path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] handrail::RuntimeError),
    /// A task of the client's own (a blocking call, the deployment's follower) ended
    /// without its result: it panicked or was stopped.
    #[error("the client's task that {what} ended without its result: {message}")]
    Task {
        /// What the task did.
        what: &'static str,
        /// How it ended.
        message: String,
    },
}

/// The action being worked on, as `<state>/ddi/action.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ActionRecord {
    format: u32,
    /// The server's action id.
    action: String,
    /// Where its feedback goes.
    feedback: String,
    /// The deployment it runs as.
    deployment: String,
    /// The server asked to cancel it: the result goes to this feedback URL instead.
    #[serde(default)]
    cancel_feedback: Option<String>,
    /// The result, once known: success, and the details sent with it.
    #[serde(default)]
    outcome: Option<(bool, Vec<String>)>,
    /// The server has the result.
    #[serde(default)]
    reported: bool,
    /// How many times the device took this action: a server may offer an action again
    /// after its result (goosebit does after a failure, when told to), and each take
    /// is a deployment of its own.
    #[serde(default)]
    take: u32,
}

/// The DDI client of one runtime.
#[derive(Clone)]
pub struct DdiClient {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    http: Arc<HttpTransport>,
    downloader: Downloader,
    base: String,
    headers: Vec<(String, String)>,
    attributes: BTreeMap<String, String>,
    dir: PathBuf,
    retry_max: Duration,
    bare_swu: bool,
    device: BTreeMap<String, String>,
}

/// A deployment the client follows.
struct Running {
    action: String,
    cancel: CancelToken,
    /// Cancelled (as a one-time signal) when the deployment has ended.
    ended: CancelToken,
    task: tokio::task::JoinHandle<Result<Report, handrail::EngineError>>,
}

impl DdiClient {
    /// A client for `runtime`, as `config`'s `[ddi]` says, over `http` (built from
    /// [`DdiConfig::transport_config`]).
    pub fn new(runtime: Runtime, config: &Config, http: HttpTransport) -> Result<Self, DdiError> {
        let ddi = config.ddi.as_ref().ok_or_else(|| {
            DdiError::Config(
                "missing: say server, and tenant and controller_id where needed".into(),
            )
        })?;
        let controller = controller_id(ddi, config)?;
        let base = format!(
            "{}/{}/controller/v1/{}",
            ddi.server.trim_end_matches('/'),
            ddi.tenant,
            controller
        );
        let token = match (&ddi.token, &ddi.token_file) {
            (Some(t), _) => Some(t.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| DdiError::Config(format!("token_file {}: {e}", path.display())))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let headers = match (ddi.auth, token) {
            (DdiAuth::TargetToken, Some(t)) => {
                vec![("Authorization".to_owned(), format!("TargetToken {t}"))]
            }
            (DdiAuth::GatewayToken, Some(t)) => {
                vec![("Authorization".to_owned(), format!("GatewayToken {t}"))]
            }
            _ => Vec::new(),
        };
        let dir = runtime.state().root().join("ddi");
        let http = Arc::new(http);
        let downloader = Downloader::new(
            http.clone(),
            runtime.state().root().join("downloads"),
            config.download.clone(),
        );
        let attributes = config.device.clone();
        Ok(DdiClient {
            inner: Arc::new(Inner {
                runtime,
                http,
                downloader,
                base,
                headers,
                attributes,
                dir,
                retry_max: Duration::from_secs(ddi.retry_max_secs.max(1)),
                bare_swu: ddi.bare_swu,
                device: config.device_properties(),
            }),
        })
    }

    /// The controller resource this client polls.
    pub fn controller_url(&self) -> &str {
        &self.inner.base
    }

    /// Polls and acts until `stop` is cancelled; with `once`, until one poll has been
    /// acted on (and the deployment it started has ended and been reported).
    ///
    /// `stop` cancels a running deployment, as a cancel from the server would (its
    /// result is reported); a deployment the runtime left interrupted is resumed first.
    ///
    /// Returns the report of a deployment that stopped for a reboot or an agent restart
    /// (its step asked for one): the client stops there, its action still open on the
    /// server, and the caller reboots or restarts; once it runs again the deployment is
    /// resumed, verified and its result reported. `None` when it stopped otherwise.
    pub async fn run(&self, stop: CancelToken, once: bool) -> Result<Option<Report>, DdiError> {
        let mut running = self.take_over().await?;
        let mut failures = 0u32;
        let mut repolled = false;
        loop {
            if stop.is_cancelled() {
                if let Some(r) = running.take() {
                    r.cancel.cancel();
                    return self.finished(r).await;
                }
                return Ok(None);
            }
            if running.as_ref().is_some_and(|r| r.task.is_finished()) {
                let r = running.take().expect("checked above");
                if let Some(suspended) = self.finished(r).await? {
                    return Ok(Some(suspended));
                }
                if once {
                    return Ok(None);
                }
            }
            self.report_pending().await?;
            let poll = self.blocking("polled", |inner| inner.poll()).await?;
            let wait = match poll {
                Ok(poll) => {
                    failures = 0;
                    let mut sent_attributes = false;
                    if let Some(href) = poll.config_data.clone() {
                        sent_attributes = self
                            .blocking("sent configData", move |inner| {
                                inner.send_config_data(&href)
                            })
                            .await?;
                    }
                    if let Some(href) = &poll.cancel_action {
                        self.cancel(href, &mut running).await?;
                    }
                    if let Some(href) = &poll.deployment_base
                        && running.is_none()
                    {
                        running = self.start(href).await?;
                    }
                    if sent_attributes && !repolled {
                        // A server that waited for the attributes (goosebit offers
                        // nothing before them) is asked again at once, not an interval
                        // later.
                        repolled = true;
                        continue;
                    }
                    repolled = false;
                    Duration::from_secs(poll.sleep_secs.unwrap_or(60).max(1))
                }
                Err((message, retry_after)) => {
                    failures += 1;
                    let wait = retry_after
                        .unwrap_or_else(|| backoff(failures))
                        .min(self.inner.retry_max);
                    tracing::warn!(
                        "{}: {message}; polling again in {} s",
                        self.inner.base,
                        wait.as_secs()
                    );
                    wait
                }
            };
            if once && running.is_none() {
                return Ok(None);
            }
            // The interval, cut short by the running deployment's end or a stop.
            let ended = running
                .as_ref()
                .map(|r| r.ended.clone())
                .unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => {}
                () = ended.cancelled(), if running.is_some() => {}
            }
        }
    }

    /// Runs `f` on the client's state in the blocking pool (HTTP calls and state files
    /// block), its `what` naming it should the task end without a result.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, DdiError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| DdiError::Task {
                what,
                message: e.to_string(),
            })
    }

    /// The deployment the runtime left interrupted or suspended, resumed, when the
    /// record names its action.
    async fn take_over(&self) -> Result<Option<Running>, DdiError> {
        let record = self.inner.load()?;
        let Some(deployment) = self.inner.runtime.resume()? else {
            return Ok(None);
        };
        let (action, feedback) = match record {
            Some(r) if r.deployment == deployment.id() && !r.reported => {
                (r.action, Some(r.feedback))
            }
            _ => {
                // Not the client's: it runs to its end, as `handrail resume` would.
                tracing::info!(
                    "resuming deployment {}, which no DDI action started",
                    deployment.id()
                );
                (String::new(), None)
            }
        };
        tracing::info!("resuming deployment {} (action {action})", deployment.id());
        Ok(Some(self.follow(action, feedback, deployment)))
    }

    /// Takes the action at `href`; `None` when nothing runs (it waits, was reported,
    /// or was refused and reported).
    async fn start(&self, href: &str) -> Result<Option<Running>, DdiError> {
        if let Some(current) = self.inner.runtime.current()? {
            tracing::info!(
                "deployment {} is {}; no action is taken before it ends",
                current.deployment,
                current.status
            );
            return Ok(None);
        }
        let href = href.to_owned();
        let prepared = self
            .blocking("prepared the action", move |inner| inner.prepare(&href))
            .await??;
        let Some(prepared) = prepared else {
            return Ok(None);
        };
        let action = prepared.record.action.clone();
        let feedback = Some(prepared.record.feedback.clone());
        let deployed = self
            .inner
            .runtime
            .deploy(&prepared.manifest, &prepared.payload_dir, prepared.options)
            .await;
        match deployed {
            Ok(deployment) => Ok(Some(self.follow(action, feedback, deployment))),
            Err(e) => {
                tracing::warn!("action {action}: refused: {e}");
                let details = vec![format!("refused on the device: {e}")];
                self.inner.conclude(prepared.record, false, details)?;
                self.report_pending().await?;
                Ok(None)
            }
        }
    }

    /// Follows `deployment` for `action`: each step's start is sent as progress to
    /// `feedback` (none for a deployment no action started).
    fn follow(
        &self,
        action: String,
        feedback: Option<String>,
        mut deployment: handrail::Deployment,
    ) -> Running {
        let cancel = deployment.cancel_token();
        let inner = self.inner.clone();
        let ended = CancelToken::new();
        let signal = ended.clone();
        let task = tokio::spawn(async move {
            let mut last = None;
            while let Some(event) = deployment.next_event().await {
                if let Event::StepStarted {
                    step, total, label, ..
                } = event
                    && last != Some(step)
                    && let Some(url) = feedback.clone()
                {
                    last = Some(step);
                    let inner = inner.clone();
                    let details = vec![format!("step {} of {total}: {label}", step + 1)];
                    let _ = tokio::task::spawn_blocking(move || {
                        inner.send_feedback(
                            &url,
                            api::Execution::Proceeding,
                            None,
                            Some((step as u64, total as u64)),
                            &details,
                        )
                    })
                    .await;
                }
            }
            let report = deployment.finish().await;
            signal.cancel();
            report
        });
        Running {
            action,
            cancel,
            ended,
            task,
        }
    }

    /// `r` ended: its result is recorded, then sent. The report when it suspended.
    async fn finished(&self, r: Running) -> Result<Option<Report>, DdiError> {
        let result = r.task.await.map_err(|e| DdiError::Task {
            what: "followed the deployment",
            message: e.to_string(),
        })?;
        let record = self.inner.load()?.filter(|rec| rec.action == r.action);
        if let Ok(report) = &result
            && report.status == DeploymentStatus::Suspended
        {
            // A reboot or restart: the result comes after the resume.
            tracing::info!(
                "deployment {}: suspended for a reboot or restart; its result follows the resume",
                report.deployment
            );
            if let Some(record) = record {
                // A notice: the result that follows the resume is what counts.
                let _ = self
                    .blocking("sent feedback", move |inner| {
                        inner.send_feedback(
                            &record.feedback,
                            api::Execution::Proceeding,
                            None,
                            None,
                            &["installed; waiting for the device to restart".into()],
                        )
                    })
                    .await?;
            }
            return Ok(Some(report.clone()));
        }
        if let Err(e @ handrail::EngineError::NoSpace(_)) = result {
            // Not an end: the deployment waits in the journal until there is room, and
            // its result is sent once a resume finishes it.
            return Err(DdiError::Runtime(e.into()));
        }
        let Some(record) = record else {
            return Ok(None);
        };
        match result {
            Ok(report) => {
                let (ok, details) = summary(&report);
                self.inner.conclude(record, ok, details)?;
            }
            Err(e) => {
                self.inner.conclude(
                    record,
                    false,
                    vec![format!("the deployment failed on the device: {e}")],
                )?;
            }
        }
        self.report_pending().await?;
        Ok(None)
    }

    /// Sends the recorded result that the server does not have yet.
    async fn report_pending(&self) -> Result<(), DdiError> {
        self.blocking("reported the result", |inner| inner.report_pending())
            .await?
    }

    /// The server asks to stop an action.
    async fn cancel(&self, href: &str, running: &mut Option<Running>) -> Result<(), DdiError> {
        let url = href.to_owned();
        let stop = self
            .blocking("read the cancel action", move |inner| inner.get(&url))
            .await?;
        let stop_id = match stop.and_then(|body| api::stop_id(&body).map_err(|m| (m, None))) {
            Ok(id) => id,
            Err((message, _)) => {
                tracing::warn!("{href}: {message}");
                return Ok(());
            }
        };
        let cancel_feedback = format!("{}/feedback", api::without_query(href));
        match self.inner.load()? {
            Some(mut record) if record.action == stop_id && !record.reported => {
                tracing::info!("the server cancels action {stop_id}");
                record.cancel_feedback = Some(cancel_feedback);
                self.inner.store(&record)?;
                if let Some(r) = running.take_if(|r| r.action == stop_id) {
                    r.cancel.cancel();
                    self.finished(r).await?;
                } else if record.outcome.is_none()
                    && self
                        .inner
                        .runtime
                        .current()?
                        .is_some_and(|c| c.deployment == record.deployment)
                {
                    // Its deployment waits here (not running): ended as a cancel ends
                    // it, rolled back, and that is the result sent.
                    if let Some(abandoned) = self.inner.runtime.abandon()? {
                        let feedback = Some(record.feedback.clone());
                        let r = self.follow(stop_id, feedback, abandoned);
                        self.finished(r).await?;
                    }
                } else if record.outcome.is_none() {
                    self.inner
                        .conclude(record, true, vec!["cancellation acknowledged".into()])?;
                }
                self.report_pending().await
            }
            _ => {
                // Nothing of it runs here: confirmed at once.
                let _ = self
                    .blocking("sent feedback", move |inner| {
                        inner.send_feedback(
                        &cancel_feedback,
                        api::Execution::Closed,
                        Some(true),
                        None,
                        &[
                            "cancellation acknowledged; nothing of the action runs on the device"
                                .into(),
                        ],
                    )
                    })
                    .await?;
                Ok(())
            }
        }
    }
}

/// What a deployment was prepared into.
struct Prepared {
    record: ActionRecord,
    manifest: Vec<u8>,
    payload_dir: PathBuf,
    options: AdmitOptions,
}

impl Inner {
    fn record_path(&self) -> PathBuf {
        self.dir.join("action.json")
    }

    fn load(&self) -> Result<Option<ActionRecord>, DdiError> {
        let path = self.record_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<ActionRecord>(&bytes)
                .ok()
                .filter(|r| r.format == RECORD_FORMAT)
                .map(Some)
                .ok_or_else(|| DdiError::State {
                    path,
                    message: "damaged: not an action record of format 1".into(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DdiError::State {
                path,
                message: e.to_string(),
            }),
        }
    }

    fn store(&self, record: &ActionRecord) -> Result<(), DdiError> {
        let path = self.record_path();
        let state = |e: std::io::Error| DdiError::State {
            path: path.clone(),
            message: e.to_string(),
        };
        handrail::durable::create_dir_all(&self.dir).map_err(state)?;
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(std::io::Error::other)
            .map_err(state)?;
        handrail::durable::write_atomic(&path, &bytes).map_err(state)
    }

    /// Records the action's result (durably, before it is sent).
    fn conclude(
        &self,
        mut record: ActionRecord,
        ok: bool,
        details: Vec<String>,
    ) -> Result<(), DdiError> {
        record.outcome = Some((ok, details));
        self.store(&record)
    }

    fn request(
        &self,
        method: &str,
        url: &str,
        json: Option<&[u8]>,
    ) -> Result<Vec<u8>, (String, Option<Duration>)> {
        let response = self
            .http
            .api(&ApiRequest {
                method,
                url,
                headers: &self.headers,
                json,
            })
            .map_err(|e| (e.to_string(), None))?;
        match response.status {
            200..=299 => Ok(response.body),
            status => {
                let text = String::from_utf8_lossy(&response.body);
                let text: String = text.chars().take(300).collect();
                Err((
                    format!("HTTP {status} for {method} {url}: {}", text.trim()),
                    response.retry_after,
                ))
            }
        }
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, (String, Option<Duration>)> {
        self.request("GET", url, None)
    }

    fn poll(&self) -> Result<Poll, (String, Option<Duration>)> {
        let body = self.get(&self.base)?;
        Poll::parse(&body).map_err(|m| (m, None))
    }

    /// Sends the device's attributes; true when the server took them.
    fn send_config_data(&self, href: &str) -> bool {
        match self.request("PUT", href, Some(&api::config_data(&self.attributes))) {
            Ok(_) => {
                tracing::info!("sent the device's attributes to {href}");
                true
            }
            Err((message, _)) => {
                tracing::warn!("configData: {message}");
                false
            }
        }
    }

    /// Sends feedback; `Ok(true)` when the server took it or no longer has the action.
    fn send_feedback(
        &self,
        url: &str,
        execution: api::Execution,
        finished: Option<bool>,
        progress: Option<(u64, u64)>,
        details: &[String],
    ) -> Result<bool, String> {
        let body = api::feedback(execution, finished, progress, details);
        let response = self
            .http
            .api(&ApiRequest {
                method: "POST",
                url,
                headers: &self.headers,
                json: Some(&body),
            })
            .map_err(|e| e.to_string())?;
        match response.status {
            200..=299 => Ok(true),
            410 => {
                tracing::info!("{url}: 410 Gone: the server no longer has the action");
                Ok(true)
            }
            status => Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&response.body).trim()
            )),
        }
    }

    /// Sends the recorded result if the server does not have it; marks it reported.
    fn report_pending(&self) -> Result<(), DdiError> {
        let Some(mut record) = self.load()? else {
            return Ok(());
        };
        if record.reported {
            return Ok(());
        }
        if record.outcome.is_none() {
            // A crash after the deployment ended and before its result was recorded:
            // history has it.
            if self.runtime.current()?.is_some() {
                return Ok(());
            }
            match self.runtime.state().history().find(&record.deployment) {
                Ok(Some(entry)) if entry.report.status.is_final() => {
                    record.outcome = Some(summary(&entry.report));
                    self.store(&record)?;
                }
                _ => return Ok(()),
            }
        }
        let (ok, details) = record.outcome.clone().expect("set above");
        let (url, ok, details) = match &record.cancel_feedback {
            // A cancel is confirmed as hawkBit expects, whatever the rollback did.
            Some(url) => {
                let mut d = vec!["cancellation acknowledged".to_owned()];
                d.extend(details);
                (url.clone(), true, d)
            }
            None => (record.feedback.clone(), ok, details),
        };
        match self.send_feedback(&url, api::Execution::Closed, Some(ok), None, &details) {
            Ok(_) => {
                record.reported = true;
                self.store(&record)?;
                tracing::info!(
                    "action {}: reported {} to the server",
                    record.action,
                    if ok { "success" } else { "failure" }
                );
                // What was unpacked for the action is no longer needed.
                let _ = std::fs::remove_dir_all(self.dir.join(&record.action));
            }
            Err(message) => {
                tracing::warn!(
                    "action {}: the result could not be sent ({message}); sent again after the next poll",
                    record.action
                );
            }
        }
        Ok(())
    }

    /// Reads the action at `href` and readies its deployment.
    fn prepare(&self, href: &str) -> Result<Option<Prepared>, DdiError> {
        let body = match self.get(href) {
            Ok(body) => body,
            Err((message, _)) => {
                tracing::warn!("{message}");
                return Ok(None);
            }
        };
        if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
            // Nothing to do after all (goosebit answers `null` so).
            return Ok(None);
        }
        let base = match DeploymentBase::parse(&body) {
            Ok(base) => base,
            Err(message) => {
                tracing::warn!("{href}: {message}");
                return Ok(None);
            }
        };
        let feedback = format!("{}/feedback", api::without_query(href));
        let earlier = self.load()?;
        let take = match &earlier {
            // Concluded but not reported yet: the result goes first.
            Some(r) if r.action == base.id && !r.reported && r.outcome.is_some() => {
                return Ok(None);
            }
            // Taken before and never concluded (a crash before admission): again, as
            // the same deployment.
            Some(r) if r.action == base.id && !r.reported => r.take,
            // Offered again after its result: the server wants it run again.
            Some(r) if r.action == base.id => {
                tracing::info!(
                    "action {}: offered again after its result was reported; taking it again",
                    base.id
                );
                r.take + 1
            }
            _ => 0,
        };
        if base.update == Handling::Skip || base.download == Handling::Skip {
            tracing::info!(
                "action {}: the server says {} (maintenance window {}); waiting",
                base.id,
                if base.update == Handling::Skip {
                    "update: skip"
                } else {
                    "download: skip"
                },
                if base.window_closed {
                    "closed"
                } else {
                    "not given"
                }
            );
            return Ok(None);
        }
        let record = ActionRecord {
            format: RECORD_FORMAT,
            action: base.id.clone(),
            feedback,
            deployment: match take {
                0 => format!("ddi-{}", base.id),
                n => format!("ddi-{}-take-{}", base.id, n + 1),
            },
            cancel_feedback: None,
            outcome: None,
            reported: false,
            take,
        };
        self.store(&record)?;
        tracing::info!("action {}: taken", base.id);
        match self.ready(&base, &record) {
            Ok((manifest, payload_dir, options)) => Ok(Some(Prepared {
                record,
                manifest,
                payload_dir,
                options,
            })),
            Err(message) => {
                tracing::warn!("action {}: {message}", base.id);
                self.conclude(record, false, vec![message])?;
                self.report_pending()?;
                Ok(None)
            }
        }
    }

    /// The manifest, payload folder and options of `base`'s deployment.
    fn ready(
        &self,
        base: &DeploymentBase,
        record: &ActionRecord,
    ) -> Result<(Vec<u8>, PathBuf, AdmitOptions), String> {
        let artifacts: Vec<(&Chunk, &Artifact)> = base
            .chunks
            .iter()
            .flat_map(|c| c.artifacts.iter().map(move |a| (c, a)))
            .collect();
        let work = self.dir.join(&base.id);
        let payload_dir = work.join("payload");
        handrail::durable::create_dir_all(&payload_dir)
            .map_err(|e| format!("{}: {e}", payload_dir.display()))?;
        let mut options = AdmitOptions {
            deployment_id: Some(record.deployment.clone()),
            download_headers: self.headers.clone(),
            ..AdmitOptions::default()
        };
        let manifests: Vec<&(&Chunk, &Artifact)> = artifacts
            .iter()
            .filter(|(_, a)| a.filename.ends_with(".json"))
            .collect();
        let on_progress = self.download_feedback(&record.feedback);
        options.on_download = Some(handrail::admit::DownloadProgress(on_progress.clone()));
        // The payload folder is the client's own, on the state directory's file system:
        // what it unpacked there is moved into the deployment, not copied again.
        options.move_payloads = true;
        match (manifests.as_slice(), artifacts.as_slice()) {
            ([(_, manifest)], _) => {
                // The manifest as delivered; its payload files come from their
                // artifacts, straight into the deployment.
                let bytes = self.fetch_small(manifest)?;
                for (_, a) in &artifacts {
                    if a.filename != manifest.filename {
                        check_name(&a.filename)?;
                        options.file_urls.insert(a.filename.clone(), a.url.clone());
                    }
                }
                Ok((bytes, payload_dir, options))
            }
            ([], [(chunk, swu)]) if swu.filename.ends_with(".swu") => {
                check_name(&swu.filename)?;
                let path = work.join(&swu.filename);
                self.fetch(swu, &path, &*on_progress)?;
                let bundle = Bundle::open(&path).map_err(|e| e.to_string())?;
                if bundle.is_handrail_bundle() {
                    let member = bundle.member(MANIFEST_MEMBER).expect("checked");
                    let manifest = bundle
                        .read(member, handrail::manifest::MAX_MANIFEST_BYTES as u64)
                        .map_err(|e| e.to_string())?;
                    bundle
                        .extract_payloads(&payload_dir)
                        .map_err(|e| e.to_string())?;
                    let _ = std::fs::remove_file(&path);
                    Ok((manifest, payload_dir, options))
                } else if self.bare_swu {
                    let sha256 = handrail::registry::sha256_file(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    std::fs::rename(&path, payload_dir.join(&swu.filename))
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    options.unsigned_because = Some(format!(
                        "a plain SWUpdate image ({}) from the DDI server; swupdate checks its own signature",
                        swu.filename
                    ));
                    let manifest = self.swu_manifest(chunk, swu, &sha256);
                    Ok((manifest, payload_dir, options))
                } else {
                    Err(format!(
                        "{} is a plain SWUpdate image, and [ddi] bare_swu is false",
                        swu.filename
                    ))
                }
            }
            ([], []) => Err("the deployment has no artifacts".into()),
            (found, _) if found.len() > 1 => Err(format!(
                "the deployment has {} manifests (.json artifacts); one is expected",
                found.len()
            )),
            _ => Err(format!(
                "the deployment's artifacts ({}) are neither an update manifest with its payload files, nor one .swu",
                artifacts
                    .iter()
                    .map(|(_, a)| a.filename.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The manifest of a plain SWUpdate image: one `microsoft/swupdate:2` step.
    fn swu_manifest(&self, chunk: &Chunk, swu: &Artifact, sha256_hex: &str) -> Vec<u8> {
        let sha256 = handrail::registry::unhex::<32>(sha256_hex).expect("sha256_file gives hex");
        let version = if chunk.version.is_empty() {
            "0"
        } else {
            &chunk.version
        };
        let name = if chunk.name.is_empty() {
            "image"
        } else {
            &chunk.name
        };
        let mut compatibility = serde_json::Map::new();
        for key in ["manufacturer", "model"] {
            if let Some(v) = self.device.get(key) {
                compatibility.insert(key.into(), v.clone().into());
            }
        }
        serde_json::json!({
            "updateId": {"provider": "ddi", "name": sanitize(name), "version": version},
            "isDeployable": true,
            "compatibility": [compatibility],
            "instructions": {"steps": [{
                "handler": "microsoft/swupdate:2",
                "files": ["swu"],
                "handlerProperties": {"swuFileName": swu.filename, "installedCriteria": version},
            }]},
            "files": {"swu": {
                "fileName": swu.filename,
                "sizeInBytes": swu.size,
                "hashes": {"sha256": handrail::admit::b64(&sha256)},
            }},
            "manifestVersion": "5.0",
            "createdDateTime": handrail::clock::now_rfc3339(),
        })
        .to_string()
        .into_bytes()
    }

    /// A small artifact (a manifest) into memory, verified.
    fn fetch_small(&self, a: &Artifact) -> Result<Vec<u8>, String> {
        let limit = handrail::manifest::MAX_MANIFEST_BYTES as u64;
        if a.size > limit {
            return Err(format!("{}: {} bytes, over {limit}", a.filename, a.size));
        }
        let dir = self.dir.join("manifests");
        handrail::durable::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(&a.filename);
        check_name(&a.filename)?;
        self.fetch(a, &path, &|_| {})?;
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = std::fs::remove_file(&path);
        Ok(bytes)
    }

    /// Downloads `a` to `dest`, resumably, verified against the hash the server gives.
    fn fetch(
        &self,
        a: &Artifact,
        dest: &Path,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<(), String> {
        let hash = artifact_hash(a)?;
        let wanted = Wanted {
            url: &a.url,
            name: &a.filename,
            size: a.size,
            hash,
            headers: &self.headers,
        };
        let _ = std::fs::remove_file(dest);
        self.downloader
            .fetch(&wanted, dest, &mut |p| progress(p), &CancelToken::new())
            .map_err(|e| format!("downloading {}: {e}", a.filename))?;
        self.downloader.forget_complete();
        Ok(())
    }

    /// Sends `Downloaded N%` each tenth of a download.
    fn download_feedback(&self, url: &str) -> Arc<dyn Fn(&Progress) + Send + Sync> {
        let tenths = std::sync::Mutex::new(BTreeMap::<String, u64>::new());
        let url = url.to_owned();
        let http = self.http.clone();
        let headers = self.headers.clone();
        Arc::new(move |p: &Progress| {
            if p.total == 0 {
                return;
            }
            let tenth = p.done * 10 / p.total;
            let mut seen = tenths.lock().unwrap_or_else(|e| e.into_inner());
            if seen.get(&p.file).is_some_and(|t| *t >= tenth) {
                return;
            }
            seen.insert(p.file.clone(), tenth);
            drop(seen);
            let body = api::feedback(
                api::Execution::Proceeding,
                None,
                None,
                &[format!("Downloaded {}%", tenth * 10), p.file.clone()],
            );
            let _ = http.api(&ApiRequest {
                method: "POST",
                url: &url,
                headers: &headers,
                json: Some(&body),
            });
        })
    }
}

/// The hash to verify a downloaded artifact against: sha256 where the server gives it,
/// else sha1.
fn artifact_hash(a: &Artifact) -> Result<FileHash, String> {
    if let Some(h) = &a.sha256 {
        return handrail::registry::unhex::<32>(h)
            .map(FileHash::Sha256)
            .ok_or_else(|| format!("{}: hashes.sha256 `{h}` is not a sha256", a.filename));
    }
    if let Some(h) = &a.sha1 {
        return handrail::registry::unhex::<20>(h)
            .map(FileHash::Sha1)
            .ok_or_else(|| format!("{}: hashes.sha1 `{h}` is not a sha1", a.filename));
    }
    Err(format!(
        "{}: the server gives no sha256 or sha1 for it; an unverifiable artifact is refused",
        a.filename
    ))
}

/// Refuses artifact names that would leave their folder.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        Err(format!("artifact `{name}`: not a plain file name"))
    } else {
        Ok(())
    }
}

/// An update-name-safe form of `name`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The controller id: `[ddi] controller_id`, else `[device] serial`, else the machine id.
fn controller_id(ddi: &DdiConfig, config: &Config) -> Result<String, DdiError> {
    if let Some(id) = &ddi.controller_id {
        return Ok(id.clone());
    }
    if let Some(serial) = config.device.get("serial") {
        return Ok(serial.clone());
    }
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            DdiError::Config(
                "controller_id: not set, no [device] serial, and no /etc/machine-id".into(),
            )
        })
}

/// Success, and the details a server shows for `report`.
fn summary(report: &Report) -> (bool, Vec<String>) {
    let ok = report.status == DeploymentStatus::Succeeded;
    let mut details = vec![format!(
        "deployment {} of {}: {}",
        report.deployment, report.update_id, report.status
    )];
    if let Some(f) = &report.failure {
        details.push(format!(
            "{} failed in {}: resultCode {}, extendedResultCode {}: {}",
            f.label, f.action, f.result_code, f.extended_result_code_hex, f.result_details
        ));
    }
    if let Some(e) = &report.error {
        details.push(e.clone());
    }
    for step in &report.steps {
        details.push(format!(
            "{} ({}): {}",
            step.label, step.handler, step.outcome
        ));
    }
    (ok, details)
}

/// The wait after `failures` failed polls in a row: 2^n seconds, half of it jittered.
fn backoff(failures: u32) -> Duration {
    let full = Duration::from_secs(1u64 << failures.min(16));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let half = full / 2;
    half + half.mul_f64(f64::from(nanos % 1000) / 1000.0)
}
