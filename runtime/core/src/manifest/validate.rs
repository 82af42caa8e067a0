//! The rules an update manifest must meet before anything of it runs.
//!
//! [`UpdateManifest::validate`] checks what parsing cannot: the handlers a step names are
//! well formed and known on this device, a child update (level 1) has no reference steps
//! while a parent (level 0) is deployable, file names cannot escape the work folder, step
//! files are described by `files`, and no two steps or files collide. Every problem is
//! collected, each named by its JSON path, so one run shows everything there is to fix.

use std::collections::BTreeMap;

use handrail_contract::UpdateId;

use super::error::{ManifestErrors, Problem, child, item};
use super::model::{InlineStep, ReferenceTarget, Step, UpdateManifest};
use crate::registry::is_valid_handler_id;

/// What validation needs to know about where the manifest will run.
pub struct ValidationContext<'a> {
    /// True when a handler with this id is registered on the device.
    pub is_handler_known: &'a dyn Fn(&str) -> bool,
    /// 0 for the top (parent) update, 1 for a child update named by a reference step.
    pub level: u8,
}

impl std::fmt::Debug for ValidationContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidationContext")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

/// Why `name` cannot be used as a file name in a work folder, if it cannot.
///
/// ```
/// use handrail::manifest::file_name_problem;
/// assert_eq!(file_name_problem("image.swu"), None);
/// assert!(file_name_problem("../etc/passwd").is_some());
/// ```
pub fn file_name_problem(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if name.is_empty() {
        Some("is empty")
    } else if name.contains('\0') {
        Some("contains a NUL character")
    } else if name.starts_with(['/', '\\'])
        || (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':')
    {
        Some("is an absolute path")
    } else if name.contains('/') {
        Some("contains `/` (a file name may not name a folder)")
    } else if name.contains('\\') {
        Some("contains `\\` (a file name may not name a folder)")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else {
        None
    }
}

impl UpdateManifest {
    /// Checks every rule that needs context or compares fields; returns all problems.
    ///
    /// ```
    /// let bytes = br#"{
    ///     "updateId": {"provider": "contoso", "name": "demo", "version": "1.0"},
    ///     "compatibility": [{"manufacturer": "contoso", "model": "m1"}],
    ///     "instructions": {"steps": [{"handler": "contoso/unknown:1", "files": ["x.sh"]}]},
    ///     "manifestVersion": "5.0"
    /// }"#;
    /// let manifest = handrail::manifest::parse_manifest(bytes).unwrap();
    /// let known = |id: &str| id == "microsoft/script:1";
    /// let cx = handrail::manifest::ValidationContext { is_handler_known: &known, level: 0 };
    /// let errors = manifest.validate(&cx).unwrap_err();
    /// assert_eq!(
    ///     errors.to_string(),
    ///     "instructions.steps[0].handler: unknown handler `contoso/unknown:1` \
    ///      (no handler with this id is registered)"
    /// );
    /// ```
    pub fn validate(&self, cx: &ValidationContext<'_>) -> Result<(), ManifestErrors> {
        let mut errors = ManifestErrors::default();
        check_update_id(&self.update_id, "updateId", &mut errors);
        self.check_deployability(cx, &mut errors);
        self.check_files(&mut errors);
        self.check_steps(cx, &mut errors);
        errors.into_result(())
    }

    fn check_deployability(&self, cx: &ValidationContext<'_>, errors: &mut ManifestErrors) {
        if cx.level == 0 && !self.is_deployable {
            errors.report("isDeployable", Problem::NotDeployable);
        }
        for (i, map) in self.compatibility.iter().enumerate() {
            if map.is_empty() {
                errors.report(item("compatibility", i), Problem::Empty);
            }
        }
        if self.is_deployable && self.compatibility.is_empty() {
            errors.report("compatibility", Problem::CompatibilityRequired);
        }
    }

    fn check_files(&self, errors: &mut ManifestErrors) {
        let mut first_with_name: BTreeMap<&str, &str> = BTreeMap::new();
        for (id, entry) in &self.files {
            let path = child("files", id);
            check_file_name(&entry.file_name, &child(&path, "fileName"), errors);
            if let Some(other) = first_with_name.insert(&entry.file_name, id) {
                // Keep the first holder of the name so every repeat names the same entry.
                first_with_name.insert(&entry.file_name, other);
                errors.report(
                    child(&path, "fileName"),
                    Problem::DuplicateFileName {
                        name: entry.file_name.clone(),
                        other: other.to_owned(),
                    },
                );
            }
            for (i, related) in entry.related_files.iter().enumerate() {
                let related_path = child(&path, "relatedFiles");
                let related_path = match &related.file_id {
                    Some(rid) => child(&related_path, rid),
                    None => item(&related_path, i),
                };
                check_file_name(
                    &related.file_name,
                    &child(&related_path, "fileName"),
                    errors,
                );
            }
        }
    }

    /// The `installedCriteria` strings several inline steps share, each with the indexes
    /// of its steps. ADU's demos give the steps of one child the same criteria, and its
    /// agent runs them: each step's handler answers is-installed for itself. Handrail
    /// runs them too, and warns, since a step can then look installed because another
    /// one is.
    pub fn shared_installed_criteria(&self) -> Vec<(&str, Vec<usize>)> {
        let mut steps: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, step) in self.steps.iter().enumerate() {
            if let Step::Inline(InlineStep {
                installed_criteria: Some(value),
                ..
            }) = step
            {
                steps.entry(value.as_str()).or_default().push(index);
            }
        }
        steps.into_iter().filter(|(_, s)| s.len() > 1).collect()
    }

    fn check_steps(&self, cx: &ValidationContext<'_>, errors: &mut ManifestErrors) {
        if self.steps.is_empty() {
            errors.report("instructions.steps", Problem::Empty);
        }
        for (index, step) in self.steps.iter().enumerate() {
            let path = item("instructions.steps", index);
            match step {
                Step::Inline(step) => {
                    check_handler(&step.handler, &child(&path, "handler"), cx, errors);
                    let files_path = child(&path, "files");
                    for (i, name) in step.files.iter().enumerate() {
                        self.check_step_file(name, &item(&files_path, i), errors);
                    }
                }
                Step::Reference(step) => {
                    if cx.level >= 1 {
                        errors.report(path.clone(), Problem::NestedReference);
                    }
                    if let ReferenceTarget::UpdateId(id) = &step.target {
                        check_update_id(id, &child(&path, "updateId"), errors);
                    }
                }
            }
        }
    }

    /// A step file must be safe to create; when the manifest describes its files, it must
    /// also be one of them (the step's fileIds were already resolved to fileNames).
    fn check_step_file(&self, name: &str, path: &str, errors: &mut ManifestErrors) {
        if self.files.is_empty() {
            check_file_name(name, path, errors);
        } else if self.file_named(name).is_none() {
            errors.report(path, Problem::UnknownFile(name.to_owned()));
        }
    }
}

fn check_update_id(id: &UpdateId, path: &str, errors: &mut ManifestErrors) {
    for (key, value) in [
        ("provider", &id.provider),
        ("name", &id.name),
        ("version", &id.version),
    ] {
        if value.is_empty() {
            errors.report(child(path, key), Problem::Empty);
        }
    }
}

fn check_handler(id: &str, path: &str, cx: &ValidationContext<'_>, errors: &mut ManifestErrors) {
    if id.is_empty() {
        errors.report(path, Problem::Empty);
    } else if !is_valid_handler_id(id) {
        errors.report(path, Problem::BadHandlerId(id.to_owned()));
    } else if !(cx.is_handler_known)(id) {
        errors.report(path, Problem::UnknownHandler(id.to_owned()));
    }
}

fn check_file_name(name: &str, path: &str, errors: &mut ManifestErrors) {
    if let Some(reason) = file_name_problem(name) {
        errors.report(
            path,
            Problem::UnsafeFileName {
                name: name.to_owned(),
                reason,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::manifest::parse_manifest;

    const HASH: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    fn known(id: &str) -> bool {
        matches!(id, "microsoft/script:1" | "microsoft/apt:1")
    }

    fn problems(value: serde_json::Value, level: u8) -> Vec<String> {
        let bytes = serde_json::to_vec(&value).unwrap();
        let manifest = parse_manifest(&bytes).unwrap();
        let cx = ValidationContext {
            is_handler_known: &known,
            level,
        };
        match manifest.validate(&cx) {
            Ok(()) => Vec::new(),
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn base() -> serde_json::Value {
        json!({
            "updateId": {"provider": "p", "name": "n", "version": "1"},
            "compatibility": [{"model": "m"}],
            "instructions": {"steps": []},
            "manifestVersion": "4.0"
        })
    }

    #[test]
    fn all_problems_are_reported_together() {
        let mut v = base();
        v["updateId"]["version"] = json!("");
        v["isDeployable"] = json!(false);
        v["compatibility"] = json!([{}]);
        let got = problems(v, 0);
        assert_eq!(
            got,
            [
                "updateId.version: must not be empty",
                "isDeployable: the update is not deployable on its own (isDeployable is false); \
                 deploy the update that references it",
                "compatibility[0]: must not be empty",
                "instructions.steps: must not be empty",
            ]
        );
    }

    #[test]
    fn shared_criteria_are_valid_and_each_names_its_steps() {
        let mut v = base();
        v["instructions"]["steps"] = json!([
            {"handler": "microsoft/apt:1", "handlerProperties": {"installedCriteria": "a"}},
            {"handler": "microsoft/apt:1", "handlerProperties": {"installedCriteria": "b"}},
            {"handler": "microsoft/apt:1", "handlerProperties": {"installedCriteria": "a"}}
        ]);
        assert_eq!(problems(v.clone(), 0), Vec::<String>::new());
        let manifest = crate::manifest::parse_manifest(v.to_string().as_bytes()).unwrap();
        assert_eq!(manifest.shared_installed_criteria(), [("a", vec![0, 2])]);
    }

    #[test]
    fn step_files_must_be_described_when_files_exist() {
        let mut v = base();
        v["files"] = json!({
            "f1": {"fileName": "a.sh", "sizeInBytes": 1, "hashes": {"sha256": HASH}},
            "f2": {"fileName": "a.sh", "sizeInBytes": 1, "hashes": {"sha256": HASH}}
        });
        v["instructions"]["steps"] =
            json!([{"handler": "microsoft/script:1", "files": ["f1", "a.sh", "b.sh"]}]);
        assert_eq!(
            problems(v, 0),
            [
                "files.f2.fileName: fileName `a.sh` is also the fileName of files.f1",
                "instructions.steps[0].files[2]: `b.sh` is neither a fileId nor a fileName in \
                 the manifest's `files`",
            ]
        );
    }

    #[test]
    fn levels_decide_deployability_and_reference_steps() {
        let mut v = base();
        v["isDeployable"] = json!(false);
        v["instructions"]["steps"] = json!([{"type": "reference",
            "updateId": {"provider": "p", "name": "c", "version": "1"}}]);
        assert_eq!(problems(v.clone(), 0).len(), 1);
        let child = problems(v, 1);
        assert_eq!(child.len(), 1);
        assert!(child[0].starts_with("instructions.steps[0]: nested reference steps"));
    }

    #[test]
    fn file_names_that_could_escape_are_refused() {
        for bad in ["", ".", "..", "a/b", "/abs", "a\\b", "C:x", "nul\0"] {
            assert!(file_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["a", "a.b", "..a", "a..", "-x", "é.bin"] {
            assert_eq!(file_name_problem(good), None, "{good:?}");
        }
    }
}
