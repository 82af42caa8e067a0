//! Admission: from manifest bytes and a payload folder to a [`Plan`], or a clear refusal.
//!
//! Admission parses the manifest, checks its signature against the [`Trust`] policy,
//! validates it (and the child manifest of every reference step, trusted through its hash
//! in the parent), checks every payload file's size and sha256 against the manifest while
//! staging it into the deployment folder, selects components for child updates, and
//! numbers the step runs. Nothing runs when it refuses: the deployment folder is removed
//! and the error names the field, step or file at fault. A payload file that does not
//! match is kept aside in `<state>/quarantine/<deployment>/` for inspection (the newest
//! [`MAX_QUARANTINED`] deployments' are kept).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use handrail_contract::{PayloadFile, UpdateId};
use sha2::{Digest, Sha256};

use crate::cancel::CancelToken;
use crate::components::{ComponentEnumerator, EnumeratorError};
use crate::config::{Config, FailurePolicy};
use crate::download::{Downloader, FileHash, Progress, Wanted};
use crate::durable;
use crate::manifest::{
    self, FileEntry, ManifestError, ManifestErrors, ReferenceTarget, Step, UpdateManifest,
    ValidationContext,
};
use crate::plan::{HandlerPin, Plan, PlannedStep};
use crate::preflight;
use crate::registry::Registry;
use crate::trust::{SignatureError, Trust, Verdict};

/// Most step runs one deployment may expand to (child steps count once per component).
pub const MAX_PLANNED_STEPS: usize = 10_000;

/// How many refused deployments' mismatching payload files are kept for inspection.
pub const MAX_QUARANTINED: usize = 4;

/// Why a deployment was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The manifest could not be parsed. (Not a `source`: the message already holds
    /// every problem, and a printed chain would repeat them.)
    #[error("manifest: {0}")]
    Parse(ManifestError),
    /// The manifest's signature is missing (and required), or does not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The manifest (or a child manifest) is not valid.
    #[error("{context}:\n{errors}")]
    Invalid {
        /// Which manifest.
        context: String,
        /// Every problem found.
        errors: ManifestErrors,
    },
    /// The manifest is not valid, and its signature does not hold either: every problem
    /// of the manifest, then the signature's verdict on a line of its own.
    #[error("{invalid}\nsignature: {signature}")]
    InvalidAndUnsigned {
        /// The manifest's problems ([`AdmitError::Invalid`]).
        invalid: Box<AdmitError>,
        /// Why the signature does not hold.
        signature: SignatureError,
    },
    /// A handler the plan names cannot be loaded; nothing ran.
    #[error("handler `{handler}` (first run by {step}) cannot be loaded: {message}")]
    HandlerUnloadable {
        /// The handler id.
        handler: String,
        /// The label of the first step that runs it.
        step: String,
        /// Why, with the extended code a step would have failed with.
        message: String,
    },
    /// A reference step's child manifest could not be found or read.
    #[error("instructions.steps[{step}]: {message}")]
    Child {
        /// Index of the reference step.
        step: usize,
        /// What went wrong.
        message: String,
    },
    /// A payload file is missing or does not match the manifest.
    #[error("payload file `{file}` (instructions.steps[{step}]): {message}")]
    Payload {
        /// The step naming the file (in its own update).
        step: usize,
        /// The file name.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Child updates expand to more step runs than [`MAX_PLANNED_STEPS`].
    #[error(
        "instructions.steps[{step}]: the deployment expands to more than {MAX_PLANNED_STEPS} step runs (child steps × components)"
    )]
    TooManySteps {
        /// The reference step whose expansion went past the limit.
        step: usize,
    },
    /// The deployment id is not usable.
    #[error("deployment id `{0}`: use 1–128 characters from A–Z, a–z, 0–9, `.`, `_`, `-`")]
    BadDeploymentId(String),
    /// The update is not for this device.
    #[error("{0}")]
    Incompatible(String),
    /// Not enough free space to stage and install the payload.
    #[error(
        "not enough free space: the payload needs {needed} bytes × {factor} = {required} bytes free, but only {free} are"
    )]
    NoSpace {
        /// Payload bytes so far.
        needed: u64,
        /// The configured factor.
        factor: f64,
        /// Bytes required.
        required: u64,
        /// Bytes free.
        free: u64,
    },
    /// Components could not be enumerated.
    #[error(transparent)]
    Enumerator(#[from] EnumeratorError),
    /// The deployment folder could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Options of one deployment.
#[derive(Debug, Clone, Default)]
pub struct AdmitOptions {
    /// Deployment id; defaults to the envelope's workflow id, else a fresh one.
    pub deployment_id: Option<String>,
    /// Refuse payload files the manifest gives no size and sha256 for (also refused when
    /// the configuration says so).
    pub require_file_hashes: bool,
    /// Overrides the configured failure policy for this deployment.
    pub failure_policy: Option<FailurePolicy>,
    /// Hears how far each payload file's download is.
    pub on_download: Option<DownloadProgress>,
    /// Stops admission (a download in progress) when cancelled.
    pub cancel: Option<CancelToken>,
    /// Where payload files the payload folder lacks come from, by file name; over the
    /// envelope's `fileUrls` (an update server that serves each file as an artifact of
    /// its own).
    pub file_urls: BTreeMap<String, String>,
    /// Headers every download sends (a server's credentials), to the URL's host only.
    pub download_headers: Vec<(String, String)>,
    /// Admits an unsigned manifest even where signatures are required, for this
    /// reason (logged): a manifest the agent itself made around content
    /// that carries its own signature, such as a plain SWUpdate image. Never for a
    /// manifest that came from elsewhere.
    pub unsigned_because: Option<String>,
    /// The payload folder is the caller's own scratch space on the state directory's
    /// file system (as the DDI client's, where it unpacked a bundle): its files are moved
    /// into the deployment, not copied, so each byte is written once. A file that cannot
    /// be moved (another file system) is copied.
    pub move_payloads: bool,
}

/// A callback for download progress ([`AdmitOptions::on_download`]).
#[derive(Clone)]
pub struct DownloadProgress(pub std::sync::Arc<dyn Fn(&Progress) + Send + Sync>);

impl std::fmt::Debug for DownloadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DownloadProgress")
    }
}

/// Parses a manifest (or envelope), checks its signature against `trust`, and validates
/// it against the registered handlers; `context` names the manifest in errors (e.g. its
/// file name). A detached envelope's full manifest is read from `payload_dir` and checked
/// against the size and sha256 its signed envelope gives (the signature is checked once
/// the document is read; nothing runs before both hold).
pub fn validate(
    bytes: &[u8],
    registry: &Registry,
    trust: &Trust,
    context: &str,
    payload_dir: Option<&Path>,
) -> Result<(manifest::Document, Verdict), AdmitError> {
    let parsed = match payload_dir {
        Some(dir) => manifest::parse_document_with(bytes, &mut |entry| read_detached(dir, entry)),
        None => manifest::parse_document(bytes),
    };
    let document = match parsed {
        Ok(document) => document,
        // A document that is JSON but carries no signature, where one is required: both
        // verdicts at once.
        Err(e) if trust.is_required() && !carries_signature(bytes) => {
            return Err(AdmitError::InvalidAndUnsigned {
                invalid: Box::new(AdmitError::Parse(e)),
                signature: SignatureError::Unsigned,
            });
        }
        Err(e) => return Err(AdmitError::Parse(e)),
    };
    // Both verdicts are reached before either is reported, so one run names every
    // problem: the manifest's, then the signature's.
    let verdict = trust.check(&document);
    let is_known = |id: &str| registry.contains(id);
    let valid = document.manifest().validate(&ValidationContext {
        is_handler_known: &is_known,
        level: 0,
    });
    let verdict = match (valid, verdict) {
        (Ok(()), verdict) => verdict?,
        (Err(errors), verdict) => {
            let invalid = AdmitError::Invalid {
                context: context.to_owned(),
                errors,
            };
            return Err(match verdict {
                Ok(_) => invalid,
                Err(signature) => AdmitError::InvalidAndUnsigned {
                    invalid: Box::new(invalid),
                    signature,
                },
            });
        }
    };
    warn_of_shared_criteria(document.manifest(), context);
    Ok((document, verdict))
}

/// Warns of every `installedCriteria` that several steps of `m` share, naming the steps.
fn warn_of_shared_criteria(m: &UpdateManifest, context: &str) {
    for (criteria, steps) in m.shared_installed_criteria() {
        let steps: Vec<String> = steps
            .iter()
            .map(|i| format!("instructions.steps[{i}]"))
            .collect();
        tracing::warn!(
            "{context}: {} share installedCriteria `{criteria}`; each runs, and its handler's is-installed may find it installed because another of them is",
            steps.join(", ")
        );
    }
}

/// The id a deployment runs under: the one asked for, else the envelope's workflow id,
/// else a fresh one.
pub fn deployment_id(
    options: &AdmitOptions,
    document: &manifest::Document,
) -> Result<String, AdmitError> {
    match options
        .deployment_id
        .clone()
        .or_else(|| document.workflow_id().map(str::to_owned))
    {
        Some(id) if is_valid_deployment_id(&id) => Ok(id),
        Some(id) => Err(AdmitError::BadDeploymentId(id)),
        None => Ok(fresh_id(&document.manifest().update_id)),
    }
}

/// What admission needs from the runtime.
pub(crate) struct Admission<'a> {
    pub registry: &'a Registry,
    pub enumerator: Option<&'a dyn ComponentEnumerator>,
    pub deployments_dir: &'a Path,
    pub options: &'a AdmitOptions,
    pub config: &'a Config,
    /// The parent is signed, or signing is required: every child manifest and payload
    /// file must then be vouched for by a hash in a trusted manifest.
    pub signed: bool,
    /// Fetches files the payload folder lacks from the envelope's `fileUrls`.
    pub downloader: Option<&'a Downloader>,
}

/// True when `id` can name a deployment (and its folder).
pub fn is_valid_deployment_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !id.starts_with('.')
}

fn fresh_id(update: &UpdateId) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let clean: String = format!("{}-{}", update.name, update.version)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{clean}-{nanos:x}")
}

impl Admission<'_> {
    /// Admits a validated deployment under the id `deployment`: checks compatibility,
    /// stages and verifies payloads within the disk budget, expands child updates, and
    /// returns the plan — or refuses, leaving nothing behind.
    pub fn admit(
        &self,
        document: &manifest::Document,
        deployment: &str,
        payload_dir: &Path,
    ) -> Result<Plan, AdmitError> {
        let top = document.manifest();
        if self.config.has_device_identity() {
            let device = self.config.device_properties();
            if !preflight::compatible(&device, &top.compatibility) {
                return Err(AdmitError::Incompatible(preflight::incompatibility(
                    &device,
                    &top.compatibility,
                )));
            }
        } else {
            tracing::warn!(
                "the device's manufacturer and model are not configured: compatibility of {} not checked",
                top.update_id
            );
        }
        let deployment_dir = self.deployments_dir.join(deployment);
        if deployment_dir.exists() {
            return Err(AdmitError::Io {
                path: deployment_dir,
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a deployment with this id is already staged",
                ),
            });
        }
        let free = preflight::free_bytes(
            self.deployments_dir
                .parent()
                .unwrap_or(self.deployments_dir),
        )
        .map_err(|source| AdmitError::Io {
            path: self.deployments_dir.to_owned(),
            source,
        })?;
        let no_urls = BTreeMap::new();
        let cancel = self.options.cancel.clone().unwrap_or_default();
        let mut stager = Stager {
            payload_dir,
            urls: document.envelope().map_or(&no_urls, |e| &e.file_urls),
            named_urls: &self.options.file_urls,
            headers: &self.options.download_headers,
            downloader: self.downloader,
            on_download: self.options.on_download.as_ref(),
            cancel: &cancel,
            staged_dir: deployment_dir.join("payload"),
            staged: BTreeMap::new(),
            quarantine_dir: self
                .deployments_dir
                .parent()
                .unwrap_or(self.deployments_dir)
                .join("quarantine"),
            deployment: deployment.to_owned(),
            require_hashes: self.options.require_file_hashes
                || self.config.deployment.require_file_hashes
                || self.signed,
            move_payloads: self.options.move_payloads,
            budget: Budget {
                free,
                factor: self.config.deployment.disk_space_factor,
                needed: 0,
            },
        };
        let planned = self.plan_steps(top, &mut stager);
        let steps = match planned {
            Ok(steps) => steps,
            Err(e) => {
                let _ = fs::remove_dir_all(&deployment_dir);
                return Err(e);
            }
        };
        let handlers = steps
            .iter()
            .filter_map(|s| {
                let registration = self.registry.get(&s.handler)?;
                Some((s.handler.clone(), HandlerPin::of(registration)))
            })
            .collect();
        Ok(Plan {
            workflow_id: document
                .workflow_id()
                .map(str::to_owned)
                .unwrap_or_else(|| deployment.to_owned()),
            deployment: deployment.to_owned(),
            update_id: top.update_id.clone(),
            deployment_dir,
            steps,
            failure_policy: self
                .options
                .failure_policy
                .unwrap_or(self.config.deployment.failure_policy),
            retry_timestamp: retry_timestamp(document),
            handlers,
        })
    }

    fn validate(&self, m: &UpdateManifest, level: u8, context: &str) -> Result<(), AdmitError> {
        let is_known = |id: &str| self.registry.contains(id);
        m.validate(&ValidationContext {
            is_handler_known: &is_known,
            level,
        })
        .map_err(|errors| AdmitError::Invalid {
            context: context.to_owned(),
            errors,
        })?;
        warn_of_shared_criteria(m, context);
        Ok(())
    }

    fn plan_steps(
        &self,
        top: &UpdateManifest,
        stager: &mut Stager<'_>,
    ) -> Result<Vec<PlannedStep>, AdmitError> {
        let mut steps = Vec::new();
        for (index, step) in top.steps.iter().enumerate() {
            match step {
                Step::Inline(inline) => {
                    let files = stager.stage_step(index, &inline.files, &top.files)?;
                    steps.push(PlannedStep {
                        number: steps.len(),
                        level: 0,
                        parent_step: None,
                        update_id: top.update_id.clone(),
                        step_index: index as u32,
                        handler: inline.handler.clone(),
                        description: inline.description.clone(),
                        files,
                        handler_properties: inline.handler_properties.clone(),
                        installed_criteria: inline.installed_criteria.clone(),
                        component: None,
                        no_matching_components: false,
                    });
                }
                Step::Reference(reference) => {
                    let child = self.load_child(index, &reference.target, top, stager)?;
                    self.validate(
                        &child,
                        1,
                        &format!(
                            "instructions.steps[{index}]: child update {}",
                            child.update_id
                        ),
                    )?;
                    let components = match self.enumerator {
                        Some(e) => Some(e.select(&child.compatibility)?),
                        None => None,
                    };
                    let runs: Vec<Option<_>> = match &components {
                        None => vec![None],
                        Some(list) if list.is_empty() => vec![None],
                        Some(list) => list.iter().cloned().map(Some).collect(),
                    };
                    let none_matched = components.as_ref().is_some_and(|l| l.is_empty());
                    if steps.len() + runs.len() * child.steps.len() > MAX_PLANNED_STEPS {
                        return Err(AdmitError::TooManySteps { step: index });
                    }
                    for component in runs {
                        for (child_index, child_step) in child.steps.iter().enumerate() {
                            let Step::Inline(inline) = child_step else {
                                // Validation at level 1 refuses nested reference steps.
                                continue;
                            };
                            let files =
                                stager.stage_step(child_index, &inline.files, &child.files)?;
                            steps.push(PlannedStep {
                                number: steps.len(),
                                level: 1,
                                parent_step: Some(index as u32),
                                update_id: child.update_id.clone(),
                                step_index: child_index as u32,
                                handler: inline.handler.clone(),
                                description: inline.description.clone(),
                                files,
                                handler_properties: inline.handler_properties.clone(),
                                installed_criteria: inline.installed_criteria.clone(),
                                component: component.clone(),
                                no_matching_components: none_matched,
                            });
                        }
                    }
                }
            }
        }
        Ok(steps)
    }

    /// Finds, verifies and parses the child manifest a reference step names.
    fn load_child(
        &self,
        index: usize,
        target: &ReferenceTarget,
        parent: &UpdateManifest,
        stager: &mut Stager<'_>,
    ) -> Result<UpdateManifest, AdmitError> {
        let payload_dir = stager.payload_dir;
        let child_err = |message: String| AdmitError::Child {
            step: index,
            message,
        };
        let bytes = match target {
            ReferenceTarget::DetachedManifest { file_id, file_name } => {
                let mut path = payload_dir.join(file_name);
                if !path.exists()
                    && let Some(entry) = parent.files.get(file_id)
                    && stager.url_for(entry).is_some()
                {
                    // Not in the payload folder: downloaded (verified against the
                    // parent's entry) into the deployment folder, like a payload file.
                    path = stager.download(index, file_name, entry)?;
                }
                let bytes = crate::limits::read(&path, manifest::MAX_MANIFEST_BYTES as u64).map_err(|e| {
                    child_err(format!(
                        "detached manifest `{file_name}` (file {file_id}) cannot be read from {}: {e}",
                        payload_dir.display()
                    ))
                })?;
                if let Some(entry) = parent.files.get(file_id) {
                    let actual: [u8; 32] = Sha256::digest(&bytes).into();
                    if actual != entry.sha256 || bytes.len() as u64 != entry.size_in_bytes {
                        return Err(child_err(format!(
                            "detached manifest `{file_name}` does not match the parent's files.{file_id} (size {} vs {}, sha256 {} vs {})",
                            bytes.len(),
                            entry.size_in_bytes,
                            b64(&actual),
                            b64(&entry.sha256)
                        )));
                    }
                }
                bytes
            }
            ReferenceTarget::UpdateId(id) if self.signed => {
                return Err(child_err(format!(
                    "child update {id} is referenced by updateId only, with no hash in the signed parent to trust it by; reference it with detachedManifestFileId (a `files` entry with its size and sha256)"
                )));
            }
            ReferenceTarget::UpdateId(id) => {
                find_child_by_id(payload_dir, id).map_err(child_err)?
            }
        };
        manifest::parse_child_manifest(&bytes)
            .map_err(|e| child_err(format!("child manifest: {e}")))
    }
}

/// The payload file a detached manifest is in, checked against its `files` entry.
fn read_detached(payload_dir: &Path, entry: &manifest::FileEntry) -> Result<Vec<u8>, String> {
    let name = &entry.file_name;
    if let Some(problem) = manifest::file_name_problem(name) {
        return Err(format!("its fileName {problem}"));
    }
    let path = payload_dir.join(name);
    let bytes = crate::limits::read(&path, manifest::MAX_DOCUMENT_BYTES as u64)
        .map_err(|e| format!("cannot be read from {}: {e}", payload_dir.display()))?;
    let actual: [u8; 32] = Sha256::digest(&bytes).into();
    if actual != entry.sha256 || bytes.len() as u64 != entry.size_in_bytes {
        return Err(format!(
            "{} does not match files.{} of the signed manifest: size {} bytes (manifest: {}), sha256 {} (manifest: {})",
            path.display(),
            entry.file_id,
            bytes.len(),
            entry.size_in_bytes,
            b64(&actual),
            b64(&entry.sha256)
        ));
    }
    Ok(bytes)
}

/// The envelope's `workflow.retryTimestamp`, when it gives one.
pub fn retry_timestamp(document: &manifest::Document) -> Option<String> {
    document
        .envelope()
        .and_then(|e| e.workflow.retry_timestamp.clone())
}

/// True unless `bytes` are a JSON object without an `updateManifestSignature` (anything
/// that is not JSON cannot be judged, and is not said to be unsigned).
fn carries_signature(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(root)) => root
            .get("updateManifestSignature")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| !s.trim().is_empty()),
        _ => true,
    }
}

impl From<ManifestError> for AdmitError {
    fn from(e: ManifestError) -> AdmitError {
        AdmitError::Parse(e)
    }
}

/// A sha256 as a manifest writes it (standard base64), for messages and records.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Looks for the child manifest of `id` in the payload folder: first the import-manifest
/// name ADU uses (`provider.name.version.importmanifest.json`), then any `.json` file
/// whose `updateId` matches.
fn find_child_by_id(payload_dir: &Path, id: &UpdateId) -> Result<Vec<u8>, String> {
    let conventional = payload_dir.join(format!(
        "{}.{}.{}.importmanifest.json",
        id.provider, id.name, id.version
    ));
    if let Ok(bytes) = crate::limits::read(&conventional, manifest::MAX_MANIFEST_BYTES as u64) {
        return Ok(bytes);
    }
    let entries = fs::read_dir(payload_dir)
        .map_err(|e| format!("cannot list payload folder {}: {e}", payload_dir.display()))?;
    let mut candidates: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    candidates.sort();
    for path in &candidates {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if meta.len() > manifest::MAX_MANIFEST_BYTES as u64 {
            continue;
        }
        let Ok(bytes) = crate::limits::read(path, manifest::MAX_MANIFEST_BYTES as u64) else {
            continue;
        };
        if let Ok(m) = manifest::parse_child_manifest(&bytes)
            && m.update_id == *id
        {
            return Ok(bytes);
        }
    }
    Err(format!(
        "child update {id} not found: looked for {} and for a .json manifest with that updateId in {}",
        conventional.display(),
        payload_dir.display()
    ))
}

/// Copies (or hard-links) payload files into the deployment folder, verifying each.
struct Stager<'a> {
    payload_dir: &'a Path,
    /// The envelope's `fileUrls`: where files the payload folder lacks come from.
    urls: &'a BTreeMap<String, String>,
    /// [`AdmitOptions::file_urls`], by file name, before `urls`.
    named_urls: &'a BTreeMap<String, String>,
    /// [`AdmitOptions::download_headers`].
    headers: &'a [(String, String)],
    downloader: Option<&'a Downloader>,
    on_download: Option<&'a DownloadProgress>,
    cancel: &'a CancelToken,
    staged_dir: PathBuf,
    staged: BTreeMap<String, (Option<[u8; 32]>, PayloadFile)>,
    /// `<state>/quarantine`: where mismatching files are kept aside.
    quarantine_dir: PathBuf,
    deployment: String,
    require_hashes: bool,
    /// [`AdmitOptions::move_payloads`].
    move_payloads: bool,
    budget: Budget,
}

/// Free space against payload size × factor, charged file by file before staging.
struct Budget {
    free: u64,
    factor: f64,
    needed: u64,
}

impl Budget {
    fn charge(&mut self, bytes: u64) -> Result<(), AdmitError> {
        let needed = self.needed.saturating_add(bytes);
        let required = (needed as f64 * self.factor).ceil() as u64;
        if required > self.free {
            return Err(AdmitError::NoSpace {
                needed,
                factor: self.factor,
                required,
                free: self.free,
            });
        }
        self.needed = needed;
        Ok(())
    }
}

impl Stager<'_> {
    fn stage_step(
        &mut self,
        step: usize,
        names: &[String],
        files: &BTreeMap<String, FileEntry>,
    ) -> Result<Vec<PayloadFile>, AdmitError> {
        names
            .iter()
            .map(|name| {
                let entry = files.values().find(|f| &f.file_name == name);
                self.stage(step, name, entry)
            })
            .collect()
    }

    fn stage(
        &mut self,
        step: usize,
        name: &str,
        entry: Option<&FileEntry>,
    ) -> Result<PayloadFile, AdmitError> {
        let err = |message: String| AdmitError::Payload {
            step,
            file: name.to_owned(),
            message,
        };
        if self.cancel.is_cancelled() {
            return Err(err(
                "admission was cancelled before this file was staged; nothing was run".into(),
            ));
        }
        let expected = entry.map(|e| e.sha256);
        if let Some((prior, staged)) = self.staged.get(name) {
            if prior.is_some() && expected.is_some() && *prior != expected {
                return Err(err(
                    "two updates of this deployment name a file with this name but different sha256"
                        .into(),
                ));
            }
            return Ok(staged.clone());
        }
        if entry.is_none() && self.require_hashes {
            return Err(err(
                "the manifest gives no size and sha256 for it (its `files` has no entry with this fileName) and unverified payloads are refused".into(),
            ));
        }
        let src = self.payload_dir.join(name);
        let (dst, size) = match fs::symlink_metadata(&src) {
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && let Some(entry) = entry
                    && self.url_for(entry).is_some() =>
            {
                (self.download(step, name, entry)?, entry.size_in_bytes)
            }
            found => {
                let meta = found.map_err(|e| err(format!("cannot read {}: {e}", src.display())))?;
                self.copy_in(step, name, entry, &src, &meta)?
            }
        };
        let file = PayloadFile {
            name: name.to_owned(),
            path: dst.display().to_string(),
            size,
        };
        self.staged
            .insert(name.to_owned(), (expected, file.clone()));
        Ok(file)
    }

    /// Copies the payload folder's `src` into the deployment folder (charged to the disk
    /// budget first) while hashing it, and checks it against `entry`; returns where it is
    /// and its size.
    fn copy_in(
        &mut self,
        step: usize,
        name: &str,
        entry: Option<&FileEntry>,
        src: &Path,
        meta: &fs::Metadata,
    ) -> Result<(PathBuf, u64), AdmitError> {
        let err = |message: String| AdmitError::Payload {
            step,
            file: name.to_owned(),
            message,
        };
        if !meta.is_file() {
            return Err(err(format!("{} is not a regular file", src.display())));
        }
        // A file of the wrong size is still copied (within the disk budget) so that it
        // can be kept aside and its hash reported.
        self.budget.charge(meta.len())?;
        durable::create_dir_all(&self.staged_dir).map_err(|source| AdmitError::Io {
            path: self.staged_dir.clone(),
            source,
        })?;
        let dst = self.staged_dir.join(name);
        let moved =
            self.move_payloads && meta.file_type().is_file() && fs::rename(src, &dst).is_ok();
        let staged = if moved {
            // Moved whole (its data already durable where it was): read once to hash.
            durable::sync_dir(&self.staged_dir).and_then(|()| hash_file(&dst, meta.len()))
        } else {
            copy_hashing(src, &dst, meta.len())
        };
        let (size, actual) =
            staged.map_err(|e| err(format!("cannot stage it into {}: {e}", dst.display())))?;
        if let Some(e) = entry
            && (actual != e.sha256 || size != e.size_in_bytes)
        {
            let kept = self.quarantine(&dst, name);
            return Err(err(format!(
                "does not match the manifest: size {size} bytes (manifest: {}), sha256 {} (manifest: {}); {kept}",
                e.size_in_bytes,
                b64(&actual),
                b64(&e.sha256)
            )));
        }
        Ok((dst, size))
    }
}

impl Stager<'_> {
    /// Where `entry` is downloaded from, when the payload folder lacks it.
    fn url_for(&self, entry: &FileEntry) -> Option<&str> {
        self.named_urls
            .get(&entry.file_name)
            .or_else(|| self.urls.get(&entry.file_id))
            .map(String::as_str)
    }

    /// Downloads `entry` from its `fileUrls` URL into the deployment folder (charged to
    /// the disk budget first, verified against its size and sha256) and returns where it
    /// is.
    fn download(
        &mut self,
        step: usize,
        name: &str,
        entry: &FileEntry,
    ) -> Result<PathBuf, AdmitError> {
        let err = |message: String| AdmitError::Payload {
            step,
            file: name.to_owned(),
            message,
        };
        let Some(url) = self.url_for(entry).map(str::to_owned) else {
            return Err(err("no URL to download it from".into()));
        };
        let url = url.as_str();
        let Some(downloader) = self.downloader else {
            return Err(err(format!(
                "not in {}, and this runtime has no transport to download it from fileUrls.{}",
                self.payload_dir.display(),
                entry.file_id
            )));
        };
        self.budget.charge(entry.size_in_bytes)?;
        // The downloader makes the deployment folder as it links the file in.
        let dst = self.staged_dir.join(name);
        let wanted = Wanted {
            url,
            name,
            size: entry.size_in_bytes,
            hash: FileHash::Sha256(entry.sha256),
            headers: self.headers,
        };
        let on_download = self.on_download;
        let mut progress = |p: &Progress| {
            if let Some(sink) = on_download {
                (sink.0)(p);
            }
        };
        tracing::info!("{name}: not in the payload folder; downloading it from {url}");
        let fetched = downloader
            .fetch(&wanted, &dst, &mut progress, self.cancel)
            .map_err(|e| err(format!("downloading it (fileUrls.{}): {e}", entry.file_id)))?;
        tracing::info!(
            "{name}: downloaded, {} bytes received in {} requests{}",
            fetched.received,
            fetched.requests,
            if fetched.resumed_from > 0 {
                format!(", resumed at byte {}", fetched.resumed_from)
            } else {
                String::new()
            }
        );
        Ok(dst)
    }

    /// Moves a mismatching staged file to `<quarantine>/<deployment>/<name>` and says
    /// where it is (or why it could not be kept); only the newest [`MAX_QUARANTINED`]
    /// deployments' files are kept.
    fn quarantine(&self, staged: &Path, name: &str) -> String {
        let dir = self.quarantine_dir.join(&self.deployment);
        let kept = dir.join(name);
        let moved = durable::create_dir_all(&dir)
            .and_then(|()| fs::rename(staged, &kept))
            .and_then(|()| durable::sync_dir(&dir));
        match moved {
            Ok(()) => {
                prune_quarantine(&self.quarantine_dir, &self.deployment);
                format!("kept aside as {}", kept.display())
            }
            Err(e) => {
                let _ = fs::remove_file(staged);
                format!("it could not be kept aside in {}: {e}", dir.display())
            }
        }
    }
}

/// Removes the oldest quarantined deployments beyond [`MAX_QUARANTINED`] (never `keep`).
fn prune_quarantine(root: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let mut folders: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != keep)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    folders.sort();
    let excess = (folders.len() + 1).saturating_sub(MAX_QUARANTINED);
    for (_, path) in folders.into_iter().take(excess) {
        let _ = fs::remove_dir_all(&path);
    }
}

/// Copies `src` to `dst` (fsync'ed) and returns the size and sha256 of the bytes written.
///
/// At most one byte more than `limit` (the size it had when charged to the disk budget)
/// is copied, so a file that grows meanwhile shows up as a size mismatch. A symbolic link
/// swapped in after the caller's check is not followed.
/// The size (up to `limit` + 1) and sha256 of a file.
fn hash_file(path: &Path, limit: u64) -> std::io::Result<(u64, [u8; 32])> {
    hash_copy(fs::File::open(path)?.take(limit.saturating_add(1)), None)
}

/// Copies `src` (up to `limit` + 1 bytes, not following a symbolic link) to `dst`,
/// durably, hashing it on the way.
fn copy_hashing(src: &Path, dst: &Path, limit: u64) -> std::io::Result<(u64, [u8; 32])> {
    use std::os::unix::fs::OpenOptionsExt;
    let input = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)?;
    let mut output = fs::File::create(dst)?;
    let hashed = hash_copy(input.take(limit.saturating_add(1)), Some(&mut output))?;
    crate::durable::sync_file(&output)?;
    Ok(hashed)
}

/// Reads `input` to its end, hashing it and writing it to `output` when there is one;
/// the size and sha256 read.
fn hash_copy(
    mut input: impl Read,
    mut output: Option<&mut fs::File>,
) -> std::io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(out) = output.as_mut() {
            out.write_all(&buf[..n])?;
        }
        size += n as u64;
    }
    Ok((size, hasher.finalize().into()))
}
