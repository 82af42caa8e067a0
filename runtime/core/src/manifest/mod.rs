//! Update manifests: reading and checking the ADU update manifest (v4 and v5) that
//! describes an update, before anything of it runs.
//!
//! This is the first stage of the data flow (manifest → admitted update → plan → …).
//! [`parse_document`] takes the bytes an operator or the service hands over, either a
//! plain manifest or the delivered [`Envelope`] (workflow, manifest string, signature,
//! file URLs), and builds the typed [`UpdateManifest`]; it refuses malformed JSON with a
//! line and column, and wrongly shaped fields with their JSON path. Then
//! [`UpdateManifest::validate`] applies the rules that need to know where the manifest
//! will run: which handlers exist and whether it is the parent (level 0) or a child
//! (level 1). Both report every problem found, not just the first.
//!
//! Inputs are untrusted, so sizes are bounded: see [`MAX_MANIFEST_BYTES`],
//! [`MAX_DOCUMENT_BYTES`], [`MAX_STEPS`], [`MAX_FILES`], [`MAX_STRING_BYTES`] and
//! [`MAX_NESTING_DEPTH`].
//!
//! ```
//! use handrail::manifest::{self, ValidationContext};
//!
//! let bytes = br#"{
//!     "updateId": {"provider": "contoso", "name": "apt-update-test", "version": "1.0"},
//!     "compatibility": [{"manufacturer": "du-device", "model": "e2e-test"}],
//!     "instructions": {"steps": [{
//!         "handler": "microsoft/apt:1",
//!         "files": ["apt-manifest-1.0.json"],
//!         "handlerProperties": {"installedCriteria": "apt-update-test-1.0"}
//!     }]},
//!     "manifestVersion": "4.0"
//! }"#;
//! let document = manifest::parse_document(bytes)?;
//! let known = |id: &str| id == "microsoft/apt:1";
//! document.manifest().validate(&ValidationContext { is_handler_known: &known, level: 0 })?;
//! assert_eq!(document.manifest().update_id.to_string(), "contoso/apt-update-test/1.0");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod envelope;
mod error;
mod json;
mod model;
mod parse;
mod validate;

use serde_json::Value;

pub use envelope::{DetachedResolver, Envelope, Workflow};
pub use error::{ManifestError, ManifestErrors, Problem, ROOT_PATH};
pub use model::{
    FileEntry, InlineStep, ManifestVersion, ReferenceStep, ReferenceTarget, RelatedFile, Step,
    UpdateManifest,
};
pub use validate::{ValidationContext, file_name_problem};

/// Largest update manifest accepted, in bytes (1 MiB), plain or inside an envelope.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
/// Largest document [`parse_document`] reads (an envelope carries an escaped manifest).
pub const MAX_DOCUMENT_BYTES: usize = 2 * MAX_MANIFEST_BYTES;
/// Most `instructions.steps` in one manifest.
pub const MAX_STEPS: usize = 1_000;
/// Most entries in `files` (and in one file's `relatedFiles`).
pub const MAX_FILES: usize = 1_000;
/// Longest string or object key, in bytes (4 KiB). An envelope's `updateManifest` and
/// `updateManifestSignature` are exempt (they are bounded by the document size).
pub const MAX_STRING_BYTES: usize = 4 * 1024;
/// Deepest nesting of arrays and objects (the root object is level 1).
pub const MAX_NESTING_DEPTH: usize = 32;

/// What [`parse_document`] found: a plain manifest or a delivered envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A plain update manifest (e.g. an import manifest or a child manifest).
    Manifest(UpdateManifest),
    /// The manifest as the service delivers it.
    Envelope(Envelope),
}

impl Document {
    /// The update manifest, whichever form carried it.
    pub fn manifest(&self) -> &UpdateManifest {
        match self {
            Document::Manifest(m) => m,
            Document::Envelope(e) => &e.manifest,
        }
    }

    /// The envelope's `workflow.id`; `None` for a plain manifest.
    pub fn workflow_id(&self) -> Option<&str> {
        self.envelope().map(|e| e.workflow.id.as_str())
    }

    /// The envelope, when the document is one.
    pub fn envelope(&self) -> Option<&Envelope> {
        match self {
            Document::Manifest(_) => None,
            Document::Envelope(e) => Some(e),
        }
    }

    /// The update manifest, by value.
    pub fn into_manifest(self) -> UpdateManifest {
        match self {
            Document::Manifest(m) => m,
            Document::Envelope(e) => e.manifest,
        }
    }
}

/// Parses a plain manifest or a delivered envelope.
///
/// A document whose root object has an `updateManifest` or a `workflow` member is read
/// as an envelope; anything else as a plain manifest. The result is well formed but not
/// yet validated: call [`UpdateManifest::validate`] before acting on it.
///
/// A detached envelope (see [`Envelope`]) is refused: its full manifest is a payload file,
/// which [`parse_document_with`] can fetch.
pub fn parse_document(bytes: &[u8]) -> Result<Document, ManifestError> {
    parse_document_with(bytes, &mut |entry| {
        Err(format!(
            "the full manifest is the payload file `{}`, and no payload folder was given to read it from",
            entry.file_name
        ))
    })
}

/// [`parse_document`], fetching a detached envelope's full manifest with `resolve`, which
/// must check the file against the `files` entry it is given (size and sha256).
pub fn parse_document_with(
    bytes: &[u8],
    resolve: &mut envelope::DetachedResolver<'_>,
) -> Result<Document, ManifestError> {
    let value = json::read(bytes, MAX_DOCUMENT_BYTES)?;
    match &value {
        Value::Object(root)
            if envelope::ENVELOPE_KEYS
                .iter()
                .any(|k| root.contains_key(*k)) =>
        {
            let mut errors = ManifestErrors::default();
            json::check_string_lengths(&value, &envelope::LONG_STRING_KEYS, &mut errors);
            match envelope::envelope_from_object(root, resolve) {
                Ok(envelope) if errors.is_empty() => Ok(Document::Envelope(envelope)),
                Ok(_) => Err(ManifestError::Invalid(errors)),
                Err(e) => {
                    errors.absorb(e);
                    Err(ManifestError::Invalid(errors))
                }
            }
        }
        _ => {
            if bytes.len() > MAX_MANIFEST_BYTES {
                return Err(ManifestError::TooLarge {
                    size: bytes.len(),
                    limit: MAX_MANIFEST_BYTES,
                });
            }
            manifest_from_json(&value).map(Document::Manifest)
        }
    }
}

/// Parses a plain update manifest (at most [`MAX_MANIFEST_BYTES`]).
///
/// The result is well formed but not yet validated: call [`UpdateManifest::validate`].
pub fn parse_manifest(bytes: &[u8]) -> Result<UpdateManifest, ManifestError> {
    manifest_from_json(&json::read(bytes, MAX_MANIFEST_BYTES)?)
}

/// Parses a reference step's child manifest in the form ADU's service delivers it, the
/// manifest as a JSON string under `updateManifest` (`{"updateManifest": "{…}"}`, an
/// `updateManifestSignature` beside it is not needed: the child is trusted through the
/// hash its signed parent gives), or the manifest object under that key, or a bare
/// manifest (an import manifest).
///
/// ```
/// let child = r#"{"updateId": {"provider": "contoso", "name": "cameras", "version": "1.1"},
///     "compatibility": [{"group": "cameras"}],
///     "instructions": {"steps": [{"handler": "microsoft/script:1", "files": []}]},
///     "manifestVersion": "5.0"}"#;
/// let delivered = serde_json::json!({"updateManifest": child}).to_string();
/// let bare = handrail::manifest::parse_child_manifest(child.as_bytes())?;
/// assert_eq!(handrail::manifest::parse_child_manifest(delivered.as_bytes())?, bare);
/// # Ok::<(), handrail::manifest::ManifestError>(())
/// ```
pub fn parse_child_manifest(bytes: &[u8]) -> Result<UpdateManifest, ManifestError> {
    let value = json::read(bytes, MAX_DOCUMENT_BYTES)?;
    match value
        .as_object()
        .and_then(|root| root.get("updateManifest"))
    {
        Some(Value::String(manifest)) => parse_manifest(manifest.as_bytes()),
        Some(manifest @ Value::Object(_)) => manifest_from_json(manifest),
        Some(other) => {
            let mut errors = ManifestErrors::default();
            errors.report(
                "updateManifest",
                Problem::WrongType {
                    expected: "a string or an object",
                    found: error::kind(other),
                },
            );
            Err(ManifestError::Invalid(errors))
        }
        None if bytes.len() > MAX_MANIFEST_BYTES => Err(ManifestError::TooLarge {
            size: bytes.len(),
            limit: MAX_MANIFEST_BYTES,
        }),
        None => manifest_from_json(&value),
    }
}

pub(super) fn manifest_from_json(value: &Value) -> Result<UpdateManifest, ManifestError> {
    let mut errors = ManifestErrors::default();
    json::check_string_lengths(value, &[], &mut errors);
    match parse::manifest_from_value(value) {
        Ok(manifest) if errors.is_empty() => Ok(manifest),
        Ok(_) => Err(ManifestError::Invalid(errors)),
        Err(more) => {
            for e in more {
                errors.push(e);
            }
            Err(ManifestError::Invalid(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use handrail_contract::UpdateId;
    use sha2::{Digest, Sha256};

    use super::*;

    const ONE_INLINE: &str = include_str!("../../tests/manifests/valid/one-inline-step.json");
    const TWO_INLINE: &str = include_str!("../../tests/manifests/valid/two-inline-steps.json");
    const PARENT: &str = include_str!("../../tests/manifests/valid/parent-reference-step.json");
    const CHILD: &str = include_str!("../../tests/manifests/valid/child-three-script-steps.json");
    const V5_PARENT: &str =
        include_str!("../../tests/manifests/valid/v5-files-and-detached-reference.json");
    const V5_CHILD: &str = include_str!("../../tests/manifests/valid/v5-detached-child.json");
    const ENVELOPE: &str = include_str!("../../tests/manifests/valid/envelope-v5.json");

    fn known(id: &str) -> bool {
        matches!(
            id,
            "microsoft/script:1"
                | "microsoft/apt:1"
                | "microsoft/swupdate:1"
                | "microsoft/swupdate:2"
        )
    }

    fn validate_at(manifest: &UpdateManifest, level: u8) -> Result<(), ManifestErrors> {
        manifest.validate(&ValidationContext {
            is_handler_known: &known,
            level,
        })
    }

    fn parse(text: &str) -> UpdateManifest {
        match parse_manifest(text.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    fn id(provider: &str, name: &str, version: &str) -> UpdateId {
        UpdateId {
            provider: provider.into(),
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn example_inline_manifests_parse_and_validate_as_parents() {
        for text in [ONE_INLINE, TWO_INLINE] {
            let m = parse(text);
            assert_eq!(m.manifest_version, ManifestVersion::V4);
            assert!(m.is_deployable && m.files.is_empty());
            validate_at(&m, 0).unwrap();
        }
        let m = parse(TWO_INLINE);
        let Step::Inline(second) = &m.steps[1] else {
            panic!("inline expected")
        };
        assert_eq!(second.handler, "microsoft/apt:1");
        assert_eq!(second.files, ["apt-manifest-tree-1.0.json"]);
        assert_eq!(
            second.installed_criteria.as_deref(),
            Some("apt-update-test-tree-2.2")
        );
        assert_eq!(
            m.created_date_time.as_deref(),
            Some("2021-11-16T20:19:29.4019035Z")
        );
    }

    #[test]
    fn example_parent_references_the_camera_child_by_update_id() {
        let m = parse(PARENT);
        validate_at(&m, 0).unwrap();
        let [Step::Reference(step)] = m.steps.as_slice() else {
            panic!("one reference step expected: {:?}", m.steps)
        };
        assert_eq!(step.description.as_deref(), Some("Cameras Firmware Update"));
        assert_eq!(
            step.target,
            ReferenceTarget::UpdateId(id("contoso", "virtual-camera", "1.2"))
        );
    }

    #[test]
    fn example_child_validates_only_as_a_child() {
        let m = parse(CHILD);
        assert!(!m.is_deployable);
        assert_eq!(
            m.referenced_by,
            [id("DU-Client-Eng", "MSOE-Update-Demo", "3.1")]
        );
        assert_eq!(m.steps.len(), 3);
        validate_at(&m, 1).unwrap();
        let errors = validate_at(&m, 0).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(
            errors
                .to_string()
                .starts_with("isDeployable: the update is not deployable on its own"),
            "{errors}"
        );
    }

    #[test]
    fn v5_step_file_ids_resolve_and_the_detached_child_matches_its_entry() {
        let m = parse(V5_PARENT);
        assert_eq!(m.manifest_version, ManifestVersion::V5);
        validate_at(&m, 0).unwrap();
        let Step::Inline(first) = &m.steps[0] else {
            panic!("inline expected")
        };
        assert_eq!(first.files, ["contoso-pre-install.sh"]);
        let Step::Reference(reference) = &m.steps[2] else {
            panic!("reference expected")
        };
        let ReferenceTarget::DetachedManifest { file_id, file_name } = &reference.target else {
            panic!("detached manifest expected: {:?}", reference.target)
        };
        assert_eq!(file_name, "contoso.camera-fw.2.0.importmanifest.json");
        let entry = &m.files[file_id];
        let digest: [u8; 32] = Sha256::digest(V5_CHILD.as_bytes()).into();
        assert_eq!(
            (entry.size_in_bytes, entry.sha256),
            (V5_CHILD.len() as u64, digest),
            "the parent's entry must describe v5-detached-child.json (sha256 {})",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        let child = parse(V5_CHILD);
        validate_at(&child, 1).unwrap();
        assert_eq!(child.update_id, id("contoso", "camera-fw", "2.0"));
    }

    #[test]
    fn envelope_keeps_the_manifest_string_and_workflow() {
        let document = parse_document(ENVELOPE.as_bytes()).unwrap();
        assert_eq!(document.workflow_id(), Some("7c2d5e4a-deployment-1"));
        let Some(envelope) = document.envelope() else {
            panic!("envelope expected")
        };
        assert_eq!(
            envelope.workflow.action,
            Workflow::ACTION_PROCESS_DEPLOYMENT
        );
        assert!(!envelope.workflow.is_cancel());
        assert_eq!(parse(&envelope.manifest_json), envelope.manifest);
        assert!(envelope.signature.is_some());
        assert_eq!(envelope.file_urls.len(), 2);
        validate_at(document.manifest(), 0).unwrap();
    }

    #[test]
    fn a_plain_manifest_is_a_manifest_document() {
        let document = parse_document(ONE_INLINE.as_bytes()).unwrap();
        assert_eq!(document.workflow_id(), None);
        assert_eq!(document.into_manifest(), parse(ONE_INLINE));
    }

    #[test]
    fn limits_give_clear_errors() {
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            parse_manifest(&big),
            Err(ManifestError::TooLarge {
                limit: MAX_MANIFEST_BYTES,
                ..
            })
        ));
        let mut steps = String::from("[");
        for i in 0..=MAX_STEPS {
            steps.push_str(if i == 0 { "{}" } else { ",{}" });
        }
        steps.push(']');
        let text = ONE_INLINE.replacen("\"steps\": [", &format!("\"steps\": {steps}, \"x\": ["), 1);
        let err = parse_manifest(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(err, "instructions.steps: 1001 steps; the limit is 1000");
    }

    #[test]
    fn an_envelope_with_too_many_file_urls_is_refused() {
        let urls: serde_json::Map<String, Value> = (0..=MAX_FILES)
            .map(|i| (format!("f{i}"), Value::String("https://x".into())))
            .collect();
        let envelope = serde_json::json!({
            "workflow": {"action": 3, "id": "w"},
            "updateManifest": ONE_INLINE,
            "fileUrls": urls,
        });
        let err = parse_document(envelope.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fileUrls: 1001 file URLs; the limit is 1000"
        );
    }

    #[test]
    fn errors_inside_an_envelope_name_the_manifest_string_or_the_inner_field() {
        let envelope = |manifest: &str| {
            serde_json::json!({"workflow": {"action": 3, "id": "w"}, "updateManifest": manifest})
                .to_string()
        };
        let err = parse_document(envelope("{\"updateId\": ").as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("updateManifest: does not hold valid JSON: EOF"),
            "{err}"
        );
        let inner = ONE_INLINE.replace("\"handler\": \"microsoft/apt:1\",", "");
        let err = parse_document(envelope(&inner).as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "instructions.steps[0].handler: missing");
        let err = parse_document(br#"{"workflow": {"action": "3"}, "updateManifest": {}}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "workflow.action: must be a non-negative integer, not a string\n\
             workflow.id: missing\n\
             updateManifest: must be a string, not an object"
        );
    }

    #[test]
    fn a_detached_envelope_needs_its_file_and_names_the_entry_it_points_at() {
        let full = serde_json::json!({"updateManifest": ONE_INLINE}).to_string();
        let outer = |id: &str| {
            serde_json::json!({
                "workflow": {"action": 3, "id": "w"},
                "updateManifest": serde_json::json!({
                    "manifestVersion": "5",
                    "detachedManifestFileId": id,
                    "files": {"fd": {"fileName": "full.json", "sizeInBytes": full.len(),
                        "hashes": {"sha256": base64::engine::general_purpose::STANDARD
                            .encode(Sha256::digest(full.as_bytes()))}}},
                })
                .to_string(),
            })
            .to_string()
        };
        let err = parse_document(outer("fd").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("detachedManifestFileId") && err.contains("`full.json`"),
            "{err}"
        );
        let mut asked = Vec::new();
        let document = parse_document_with(outer("fd").as_bytes(), &mut |entry| {
            asked.push(entry.file_name.clone());
            Ok(full.clone().into_bytes())
        })
        .unwrap();
        assert_eq!(asked, ["full.json"]);
        assert_eq!(document.manifest(), &parse(ONE_INLINE));
        assert!(document.envelope().unwrap().detached.is_some());
        let err = parse_document_with(outer("nope").as_bytes(), &mut |_| unreachable!())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`nope` is not a fileId"), "{err}");
    }
}
