//! The manifest as ADU delivers it: a workflow, the manifest as a JSON *string*, its
//! signature and the download URL of each file.
//!
//! ```json
//! {"workflow": {"action": 3, "id": "…", "retryTimestamp": "…"},
//!  "updateManifest": "{\"updateId\": …}",
//!  "updateManifestSignature": "eyJhbGciOi…",
//!  "fileUrls": {"f1": "https://…"}}
//! ```
//!
//! The manifest string is kept verbatim in [`Envelope::manifest_json`] because the
//! signature covers those exact bytes; it is parsed with the same limits as a plain one.
//!
//! A large update is delivered *detached* (ADU's detached update manifest): the signed
//! `updateManifest` then carries a top-level `detachedManifestFileId` and a `files` entry
//! for a payload file that holds the full manifest, as `{"updateManifest": "<the manifest
//! as a string>"}`. The signature covers the short manifest, whose `files` entry gives
//! the full one's size and sha256; [`Envelope::manifest`] is the full one.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::error::{ManifestError, ManifestErrors, Problem, child};
use super::json::Reader;
use super::model::{FileEntry, UpdateManifest};
use super::{MAX_FILES, MAX_MANIFEST_BYTES};

/// Root members whose presence marks a document as an envelope.
pub(crate) const ENVELOPE_KEYS: [&str; 2] = ["updateManifest", "workflow"];

/// Root members exempt from the per-string limit (bounded by the document limit instead).
pub(crate) const LONG_STRING_KEYS: [&str; 2] = ["updateManifest", "updateManifestSignature"];

/// The workflow part of an envelope: what to do with the update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// `workflow.action`: [`Workflow::ACTION_PROCESS_DEPLOYMENT`] or
    /// [`Workflow::ACTION_CANCEL`] (other values are kept as sent).
    pub action: u32,
    /// `workflow.id`: the service's deployment id.
    pub id: String,
    /// `workflow.retryTimestamp`: a new value asks for the same workflow to be retried.
    pub retry_timestamp: Option<String>,
}

impl Workflow {
    /// `workflow.action` asking the device to process the deployment.
    pub const ACTION_PROCESS_DEPLOYMENT: u32 = 3;
    /// `workflow.action` asking the device to cancel the deployment.
    pub const ACTION_CANCEL: u32 = 255;

    /// True when the action is [`Workflow::ACTION_CANCEL`].
    pub fn is_cancel(&self) -> bool {
        self.action == Self::ACTION_CANCEL
    }
}

/// A manifest as delivered by the service.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `workflow`.
    pub workflow: Workflow,
    /// `updateManifest`, parsed.
    pub manifest: UpdateManifest,
    /// `updateManifest` exactly as delivered (the signature covers this string).
    pub manifest_json: String,
    /// `updateManifestSignature` (a JWS), when present.
    pub signature: Option<String>,
    /// `fileUrls`: download URL by fileId; empty when absent.
    pub file_urls: BTreeMap<String, String>,
    /// For a detached manifest: the `files` entry of the payload file it came from.
    pub detached: Option<Box<FileEntry>>,
}

/// Fetches the payload file a detached manifest is in, checked against its `files` entry
/// (size and sha256); the error says why it cannot be had.
pub type DetachedResolver<'a> = dyn FnMut(&FileEntry) -> Result<Vec<u8>, String> + 'a;

/// Builds an envelope from its root object, collecting every problem of the envelope and
/// of the manifest it carries.
pub(crate) fn envelope_from_object(
    root: &Map<String, Value>,
    resolve: &mut DetachedResolver<'_>,
) -> Result<Envelope, ManifestError> {
    let mut r = Reader::default();
    let workflow = r
        .required(root, "workflow", "")
        .and_then(|v| read_workflow(&mut r, v));
    let manifest_json = r.required_string(root, "updateManifest", "");
    let signature = r.optional_string(root, "updateManifestSignature", "");
    let file_urls = read_file_urls(&mut r, root);
    let mut errors = r.errors;
    // The manifest string is read once: for its detached pointer and as the manifest.
    let value = manifest_json
        .as_deref()
        .and_then(|json| read_embedded_value(json, &mut errors));
    let detached = value.as_ref().and_then(|v| detached_entry(v, &mut errors));
    let manifest = match (&detached, &value) {
        (Some(Some(entry)), _) => read_detached_manifest(entry, resolve, &mut errors),
        (Some(None), _) | (None, None) => None,
        (None, Some(value)) => manifest_of(value, &mut errors),
    };
    match (workflow, manifest, manifest_json) {
        (Some(workflow), Some(manifest), Some(manifest_json)) if errors.is_empty() => {
            Ok(Envelope {
                workflow,
                manifest,
                manifest_json,
                signature,
                file_urls,
                detached: detached.flatten().map(Box::new),
            })
        }
        _ => Err(ManifestError::Invalid(errors)),
    }
}

fn read_workflow(r: &mut Reader, value: &Value) -> Option<Workflow> {
    let path = "workflow";
    let object = r.object(value, path)?;
    let action = r.required(object, "action", path).and_then(|v| {
        let action_path = child(path, "action");
        let n = r.unsigned(v, &action_path)?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                r.report(
                    action_path,
                    Problem::WrongType {
                        expected: "a 32-bit action number such as 3 or 255",
                        found: "a larger number",
                    },
                );
                None
            }
        }
    });
    let id = r.required_string(object, "id", path);
    if id.as_deref() == Some("") {
        r.report(child(path, "id"), Problem::Empty);
    }
    let retry_timestamp = r.optional_string(object, "retryTimestamp", path);
    Some(Workflow {
        action: action?,
        id: id.filter(|id| !id.is_empty())?,
        retry_timestamp,
    })
}

fn read_file_urls(r: &mut Reader, root: &Map<String, Value>) -> BTreeMap<String, String> {
    let path = "fileUrls";
    let Some(object) = Reader::optional(root, path).and_then(|v| r.object(v, path)) else {
        return BTreeMap::new();
    };
    if object.len() > MAX_FILES {
        r.report(
            path,
            Problem::TooMany {
                what: "file URLs",
                count: object.len(),
                limit: MAX_FILES,
            },
        );
        return BTreeMap::new();
    }
    object
        .iter()
        .filter_map(|(id, v)| Some((id.clone(), r.string(v, &child(path, id))?)))
        .collect()
}

/// `None` when `updateManifest` is not detached; `Some(entry)` for the `files` entry its
/// `detachedManifestFileId` names (`Some(None)` when that is wrong, reported).
///
/// ADU's agent takes the first `files` entry, as the detached manifest is the only file of
/// such a manifest; Handrail takes the one the id names, and refuses an id that names none.
fn detached_entry(value: &Value, errors: &mut ManifestErrors) -> Option<Option<FileEntry>> {
    const ID: &str = "updateManifest.detachedManifestFileId";
    let root = value.as_object()?;
    let id = match root.get("detachedManifestFileId")? {
        Value::Null => return None,
        Value::String(id) if id.is_empty() => return None,
        Value::String(id) => id.clone(),
        other => {
            errors.report(
                ID,
                Problem::WrongType {
                    expected: "a string (the fileId of the detached manifest)",
                    found: super::error::kind(other),
                },
            );
            return Some(None);
        }
    };
    let mut r = Reader::default();
    let files = super::parse::read_files(&mut r, root);
    for e in r.errors.into_vec() {
        errors.push(e);
    }
    match files.get(&id) {
        Some(entry) => Some(Some(entry.clone())),
        None => {
            errors.report(ID, Problem::UnknownFileId(id));
            Some(None)
        }
    }
}

/// The full manifest of a detached envelope: its file fetched (and checked) by `resolve`,
/// read as ADU reads it, `{"updateManifest": "<the manifest as a string>"}`.
fn read_detached_manifest(
    entry: &FileEntry,
    resolve: &mut DetachedResolver<'_>,
    errors: &mut ManifestErrors,
) -> Option<UpdateManifest> {
    const ID: &str = "updateManifest.detachedManifestFileId";
    let name = &entry.file_name;
    let bytes = match resolve(entry) {
        Ok(bytes) => bytes,
        Err(e) => {
            errors.report(
                ID,
                Problem::DetachedManifest(format!("detached manifest `{name}`: {e}")),
            );
            return None;
        }
    };
    let problem =
        |what: String| Problem::DetachedManifest(format!("detached manifest `{name}`: {what}"));
    let value = match super::json::read(&bytes, super::MAX_DOCUMENT_BYTES) {
        Ok(v) => v,
        Err(e) => {
            errors.report(ID, problem(e.to_string()));
            return None;
        }
    };
    let Some(Value::String(json)) = value.as_object().and_then(|o| o.get("updateManifest")) else {
        errors.report(
            ID,
            problem(
                "must be an object whose `updateManifest` is the full manifest as a string, as ADU delivers it".into(),
            ),
        );
        return None;
    };
    let mut inner = ManifestErrors::default();
    let manifest = read_embedded_value(json, &mut inner).and_then(|v| manifest_of(&v, &mut inner));
    for e in inner.into_vec() {
        errors.push(match e {
            ManifestError::Field { path, problem } => ManifestError::Field {
                path: format!("detached manifest `{name}`: {path}"),
                problem,
            },
            other => other,
        });
    }
    manifest
}

/// The manifest `value` describes; problems of its fields are reported by their path
/// inside the manifest.
fn manifest_of(value: &Value, errors: &mut ManifestErrors) -> Option<UpdateManifest> {
    match super::manifest_from_json(value) {
        Ok(manifest) => Some(manifest),
        Err(e) => {
            errors.absorb(e);
            None
        }
    }
}

/// Reads the `updateManifest` string as JSON; problems of the document as a whole are
/// reported against `updateManifest`.
fn read_embedded_value(json: &str, errors: &mut ManifestErrors) -> Option<Value> {
    let path = "updateManifest";
    if json.trim().is_empty() {
        errors.report(path, Problem::Empty);
        return None;
    }
    match super::json::read(json.as_bytes(), MAX_MANIFEST_BYTES) {
        Ok(value) => Some(value),
        Err(e) => {
            let e = match e {
                ManifestError::Syntax {
                    line,
                    column,
                    message,
                } => ManifestError::field(
                    path,
                    Problem::NotJson {
                        line,
                        column,
                        message,
                    },
                ),
                ManifestError::TooLarge { size, limit } => {
                    ManifestError::field(path, Problem::TooLarge { size, limit })
                }
                ManifestError::TooDeep {
                    line,
                    column,
                    limit,
                } => ManifestError::field(
                    path,
                    Problem::TooDeep {
                        line,
                        column,
                        limit,
                    },
                ),
                other => other,
            };
            errors.absorb(e);
            None
        }
    }
}
