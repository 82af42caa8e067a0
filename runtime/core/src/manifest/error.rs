//! Errors of manifest parsing and validation, each naming the JSON path it concerns.
//!
//! A [`ManifestError`] is either about the document as a whole (not JSON, too large, too
//! deeply nested) or about one field, written `path: problem`, e.g.
//! `instructions.steps[1].handler: missing`. Paths use `.key` for object members and
//! `[i]` for array items; a key that is not a plain identifier is quoted (`files["a.b"]`).
//! [`ManifestErrors`] collects every problem found, one per line when displayed.

use std::fmt;

/// The path written for a problem with the document's root value.
pub const ROOT_PATH: &str = "(document)";

/// What is wrong with one field of a manifest or envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A required field is absent (or `null`).
    #[error("missing")]
    Missing,
    /// The field has the wrong JSON type.
    #[error("must be {expected}, not {found}")]
    WrongType {
        /// What the field must be, e.g. "a string".
        expected: &'static str,
        /// What it is, e.g. "a number".
        found: &'static str,
    },
    /// A string, array or object that must have content is empty.
    #[error("must not be empty")]
    Empty,
    /// A string is longer than [`MAX_STRING_BYTES`](super::MAX_STRING_BYTES).
    #[error("string is {len} bytes long; the limit is {limit} bytes")]
    StringTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A list or map has more entries than allowed.
    #[error("{count} {what}; the limit is {limit}")]
    TooMany {
        /// What is counted, e.g. "steps".
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An embedded manifest is larger than [`MAX_MANIFEST_BYTES`](super::MAX_MANIFEST_BYTES).
    #[error("holds {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An embedded manifest nests arrays/objects deeper than allowed.
    #[error("nests arrays/objects deeper than {limit} levels (line {line}, column {column})")]
    TooDeep {
        /// Line of the opening bracket that went too deep (1-based).
        line: usize,
        /// Its column in bytes (1-based).
        column: usize,
        /// The limit.
        limit: usize,
    },
    /// A string that must hold JSON does not.
    #[error("does not hold valid JSON: {message} (line {line}, column {column})")]
    NotJson {
        /// Line of the fault inside the string (1-based).
        line: usize,
        /// Column of the fault inside the string (1-based).
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// `manifestVersion` is not one Handrail reads.
    #[error("unsupported manifestVersion `{0}` (supported: \"4\", \"4.0\", \"5\", \"5.0\")")]
    UnsupportedManifestVersion(String),
    /// A step's `type` is neither `inline` nor `reference`.
    #[error("unknown step type `{0}` (expected \"inline\" or \"reference\")")]
    UnknownStepType(String),
    /// A handler id is not of the form `vendor/name:major`.
    #[error("`{0}` is not a handler id of the form vendor/name:major")]
    BadHandlerId(String),
    /// No handler with this id is registered.
    #[error("unknown handler `{0}` (no handler with this id is registered)")]
    UnknownHandler(String),
    /// A file name could escape the work folder or cannot name a file.
    #[error("file name {name:?} {reason}")]
    UnsafeFileName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A step names a file the manifest's `files` does not describe.
    #[error("`{0}` is neither a fileId nor a fileName in the manifest's `files`")]
    UnknownFile(String),
    /// A reference step's `detachedManifestFileId` is not a key of `files`.
    #[error("`{0}` is not a fileId in the manifest's `files`")]
    UnknownFileId(String),
    /// A reference step names no child update.
    #[error("a reference step needs `updateId` or `detachedManifestFileId`")]
    NoReferenceTarget,
    /// A child update contains a reference step.
    #[error(
        "nested reference steps are not allowed (a child update may not reference another update)"
    )]
    NestedReference,
    /// Two `files` entries share a fileName.
    #[error("fileName `{name}` is also the fileName of files.{other}")]
    DuplicateFileName {
        /// The shared name.
        name: String,
        /// The fileId of the other entry.
        other: String,
    },
    /// A top-level update is not deployable.
    #[error(
        "the update is not deployable on its own (isDeployable is false); deploy the update \
         that references it"
    )]
    NotDeployable,
    /// A deployable update lists no compatibility.
    #[error("a deployable update must list at least one compatibility property map")]
    CompatibilityRequired,
    /// A hash is not base64.
    #[error("not valid base64")]
    NotBase64,
    /// A sha256 hash does not decode to 32 bytes.
    #[error("decodes to {0} bytes; a sha256 hash is 32 bytes")]
    WrongHashLength(usize),
    /// The detached manifest an envelope points at cannot be had or is not as described.
    #[error("{0}")]
    DetachedManifest(String),
}

/// One problem with a manifest document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The bytes are not JSON.
    #[error("not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// Line of the fault (1-based).
        line: usize,
        /// Column of the fault (1-based).
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// The document is larger than allowed.
    #[error("document is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Arrays/objects nest deeper than allowed.
    #[error(
        "document nests arrays/objects deeper than {limit} levels (line {line}, column {column})"
    )]
    TooDeep {
        /// Line of the opening bracket that went too deep (1-based).
        line: usize,
        /// Its column in bytes (1-based).
        column: usize,
        /// The limit.
        limit: usize,
    },
    /// One field is wrong.
    #[error("{path}: {problem}")]
    Field {
        /// JSON path of the field, e.g. `instructions.steps[1].handler`.
        path: String,
        /// What is wrong with it.
        problem: Problem,
    },
    /// The document is JSON but not shaped as a manifest: every problem found.
    #[error("{0}")]
    Invalid(ManifestErrors),
}

impl ManifestError {
    /// A field error.
    pub fn field(path: impl Into<String>, problem: Problem) -> Self {
        ManifestError::Field {
            path: path.into(),
            problem,
        }
    }

    /// The JSON path of a field error.
    pub fn path(&self) -> Option<&str> {
        match self {
            ManifestError::Field { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The problem of a field error.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ManifestError::Field { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// Every problem found in a manifest; displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestErrors(Vec<ManifestError>);

impl ManifestErrors {
    /// The problems, in the order found (document order).
    pub fn iter(&self) -> std::slice::Iter<'_, ManifestError> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems as a vector.
    pub fn into_vec(self) -> Vec<ManifestError> {
        self.0
    }

    pub(crate) fn push(&mut self, error: ManifestError) {
        self.0.push(error);
    }

    pub(crate) fn report(&mut self, path: impl Into<String>, problem: Problem) {
        self.0.push(ManifestError::field(path, problem));
    }

    /// Adds `error`, flattening a nested [`ManifestError::Invalid`].
    pub(crate) fn absorb(&mut self, error: ManifestError) {
        match error {
            ManifestError::Invalid(list) => self.0.extend(list.0),
            other => self.0.push(other),
        }
    }

    /// `Ok(value)` when there is no problem, else `Err(self)`.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ManifestErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

impl From<Vec<ManifestError>> for ManifestErrors {
    fn from(errors: Vec<ManifestError>) -> Self {
        ManifestErrors(errors)
    }
}

impl From<ManifestErrors> for ManifestError {
    fn from(errors: ManifestErrors) -> Self {
        ManifestError::Invalid(errors)
    }
}

impl IntoIterator for ManifestErrors {
    type Item = ManifestError;
    type IntoIter = std::vec::IntoIter<ManifestError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ManifestErrors {
    type Item = &'a ManifestError;
    type IntoIter = std::slice::Iter<'a, ManifestError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The path of member `key` of the object at `parent`.
pub(crate) fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'));
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// The path of item `index` of the array at `parent`.
pub(crate) fn item(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// How a JSON value's type is named in messages.
pub(crate) fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_keys_that_are_not_identifiers() {
        assert_eq!(child("", "updateId"), "updateId");
        assert_eq!(child("files", "f3"), "files.f3");
        assert_eq!(child("files", "a.b"), "files[\"a.b\"]");
        assert_eq!(child("", ""), "[\"\"]");
        assert_eq!(
            item(&child("instructions", "steps"), 1),
            "instructions.steps[1]"
        );
    }

    #[test]
    fn errors_display_path_then_problem_one_per_line() {
        let mut errors = ManifestErrors::default();
        errors.report("instructions.steps[1].handler", Problem::Missing);
        errors.report("files.f3.hashes.sha256", Problem::NotBase64);
        assert_eq!(
            errors.to_string(),
            "instructions.steps[1].handler: missing\nfiles.f3.hashes.sha256: not valid base64"
        );
        let nested = ManifestError::from(errors.clone());
        let mut flat = ManifestErrors::default();
        flat.absorb(nested);
        assert_eq!(flat, errors);
    }
}
