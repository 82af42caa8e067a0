//! The typed form of an ADU update manifest (v4 and v5), as the rest of Handrail uses it.
//!
//! [`UpdateManifest`] is what [`parse_manifest`](super::parse_manifest) builds: the update's
//! identity, compatibility, ordered [`Step`]s and the payload [`FileEntry`]s. Step file
//! lists are already resolved to file *names* (a v5 step names files by fileId), so a
//! consumer never needs to know which form the manifest used. Only JSON shape is checked
//! when building it; [`UpdateManifest::validate`] checks the rules that need context.

use std::collections::BTreeMap;
use std::fmt;

use handrail_contract::UpdateId;
use serde_json::{Map, Value};

/// The manifest schema versions Handrail reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManifestVersion {
    /// `"manifestVersion": "4.0"` (or `"4"`): multi-step ordered execution.
    V4,
    /// `"manifestVersion": "5.0"` (or `"5"`): v4 plus download handlers and related files.
    V5,
}

impl ManifestVersion {
    /// Reads a `manifestVersion` string: `"4"`, `"4.0"`, `"5"` or `"5.0"`.
    ///
    /// ```
    /// use handrail::manifest::ManifestVersion;
    /// assert_eq!(ManifestVersion::from_manifest_str("5.0"), Some(ManifestVersion::V5));
    /// assert_eq!(ManifestVersion::from_manifest_str("3"), None);
    /// ```
    pub fn from_manifest_str(s: &str) -> Option<Self> {
        match s {
            "4" | "4.0" => Some(ManifestVersion::V4),
            "5" | "5.0" => Some(ManifestVersion::V5),
            _ => None,
        }
    }

    /// The canonical string, `"4.0"` or `"5.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestVersion::V4 => "4.0",
            ManifestVersion::V5 => "5.0",
        }
    }
}

impl fmt::Display for ManifestVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An update manifest: one update, its steps and its payload files.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateManifest {
    /// `updateId`: provider, name and version of the update.
    pub update_id: UpdateId,
    /// `isDeployable`; `true` when absent. A child update is usually not deployable alone.
    pub is_deployable: bool,
    /// `compatibility`: property maps (e.g. `{manufacturer, model}` or `{group}`); empty
    /// when absent.
    pub compatibility: Vec<BTreeMap<String, String>>,
    /// `instructions.steps`, in order.
    pub steps: Vec<Step>,
    /// `manifestVersion`.
    pub manifest_version: ManifestVersion,
    /// Top-level `files`, keyed by fileId; empty when absent (names are then taken as is).
    pub files: BTreeMap<String, FileEntry>,
    /// `referencedBy`: the updates that reference this one as a child.
    pub referenced_by: Vec<UpdateId>,
    /// `createdDateTime`, verbatim.
    pub created_date_time: Option<String>,
}

impl UpdateManifest {
    /// The `files` entry with the given fileName.
    pub fn file_named(&self, name: &str) -> Option<&FileEntry> {
        self.files.values().find(|f| f.file_name == name)
    }

    /// The inline steps with their indexes in `steps`.
    pub fn inline_steps(&self) -> impl Iterator<Item = (usize, &InlineStep)> {
        self.steps.iter().enumerate().filter_map(|(i, s)| match s {
            Step::Inline(inline) => Some((i, inline)),
            Step::Reference(_) => None,
        })
    }
}

/// One entry of `instructions.steps`.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A step run by a handler (`type` absent or `"inline"`).
    Inline(InlineStep),
    /// A step naming a child update (`"type": "reference"`).
    Reference(ReferenceStep),
}

impl Step {
    /// The step's `description`.
    pub fn description(&self) -> Option<&str> {
        match self {
            Step::Inline(s) => s.description.as_deref(),
            Step::Reference(s) => s.description.as_deref(),
        }
    }
}

/// A step run by one handler.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineStep {
    /// `description`.
    pub description: Option<String>,
    /// `handler`, e.g. `microsoft/script:1`.
    pub handler: String,
    /// The step's payload files by *file name*, in the order listed. A fileId is resolved
    /// through the manifest's `files`; a name that matches no fileId is kept as is.
    pub files: Vec<String>,
    /// `handlerProperties`; empty when absent.
    pub handler_properties: Map<String, Value>,
    /// `handlerProperties.installedCriteria`.
    pub installed_criteria: Option<String>,
}

/// A step naming a child update.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceStep {
    /// `description`.
    pub description: Option<String>,
    /// Which child update.
    pub target: ReferenceTarget,
}

/// How a reference step names its child update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceTarget {
    /// By `updateId` only; the child manifest is looked up by id.
    UpdateId(UpdateId),
    /// By `detachedManifestFileId`: a payload file of this update holds the child manifest.
    /// Preferred over `updateId` when a step has both, because the file's size and hash are
    /// known from the parent.
    DetachedManifest {
        /// The fileId (a key of the parent's `files`).
        file_id: String,
        /// That entry's fileName.
        file_name: String,
    },
}

/// One entry of the top-level `files` map.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    /// The key of this entry in `files`.
    pub file_id: String,
    /// `fileName`: the name the file has in the work folder.
    pub file_name: String,
    /// `sizeInBytes`.
    pub size_in_bytes: u64,
    /// `hashes.sha256`, decoded from base64.
    pub sha256: [u8; 32],
    /// `properties`; empty when absent.
    pub properties: Map<String, Value>,
    /// `relatedFiles` (v5, for download handlers); empty when absent.
    pub related_files: Vec<RelatedFile>,
    /// `downloadHandler.id` (v5), e.g. `microsoft/delta:1`.
    pub download_handler: Option<String>,
}

/// One entry of a file's `relatedFiles`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedFile {
    /// The related file's id when `relatedFiles` is a map keyed by id (the delivered
    /// form); `None` when it is an array (the import-manifest form).
    pub file_id: Option<String>,
    /// `fileName`.
    pub file_name: String,
    /// `sizeInBytes`.
    pub size_in_bytes: u64,
    /// `hashes.sha256`, decoded from base64.
    pub sha256: [u8; 32],
    /// `properties`; empty when absent.
    pub properties: Map<String, Value>,
}
