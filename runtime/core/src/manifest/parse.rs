//! Building an [`UpdateManifest`] from parsed JSON.
//!
//! Every field's JSON type and shape is checked here and every problem is collected with
//! its path; the manifest is returned only when there is none. Rules that need context
//! (known handlers, parent or child) or that compare fields are left to
//! [`validate`](super::validate). Step files given as fileIds are resolved to fileNames
//! here, which is why `files` is read before `instructions`.

use std::collections::BTreeMap;

use base64::Engine as _;
use handrail_contract::UpdateId;
use serde_json::{Map, Value};

use super::error::{ManifestErrors, Problem, child, item};
use super::json::Reader;
use super::model::{
    FileEntry, InlineStep, ManifestVersion, ReferenceStep, ReferenceTarget, RelatedFile, Step,
    UpdateManifest,
};
use super::{MAX_FILES, MAX_STEPS};

/// Builds the manifest from `value`, or returns every shape problem found.
pub(crate) fn manifest_from_value(value: &Value) -> Result<UpdateManifest, ManifestErrors> {
    let mut r = Reader::default();
    let manifest = read_manifest(&mut r, value);
    match manifest {
        Some(m) if r.errors.is_empty() => Ok(m),
        _ => Err(r.errors),
    }
}

fn read_manifest(r: &mut Reader, value: &Value) -> Option<UpdateManifest> {
    let root = r.object(value, "")?;
    let update_id = r
        .required(root, "updateId", "")
        .and_then(|v| read_update_id(r, v, "updateId"));
    let is_deployable = Reader::optional(root, "isDeployable")
        .and_then(|v| r.boolean(v, "isDeployable"))
        .unwrap_or(true);
    let compatibility = read_compatibility(r, root);
    let manifest_version = read_manifest_version(r, root);
    let files = read_files(r, root);
    let steps = read_steps(r, root, &files);
    let referenced_by = match Reader::optional(root, "referencedBy") {
        None => Vec::new(),
        Some(v) => r
            .array(v, "referencedBy")
            .map(|ids| {
                ids.iter()
                    .enumerate()
                    .filter_map(|(i, v)| read_update_id(r, v, &item("referencedBy", i)))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let created_date_time = r.optional_string(root, "createdDateTime", "");
    Some(UpdateManifest {
        update_id: update_id?,
        is_deployable,
        compatibility,
        steps,
        manifest_version: manifest_version?,
        files,
        referenced_by,
        created_date_time,
    })
}

/// An `updateId` object. Empty strings are accepted here and refused by validation.
fn read_update_id(r: &mut Reader, value: &Value, path: &str) -> Option<UpdateId> {
    let object = r.object(value, path)?;
    let provider = r.required_string(object, "provider", path);
    let name = r.required_string(object, "name", path);
    let version = r.required_string(object, "version", path);
    Some(UpdateId {
        provider: provider?,
        name: name?,
        version: version?,
    })
}

fn read_manifest_version(r: &mut Reader, root: &Map<String, Value>) -> Option<ManifestVersion> {
    let path = "manifestVersion";
    match r.required(root, path, "")? {
        Value::String(s) => {
            let version = ManifestVersion::from_manifest_str(s);
            if version.is_none() {
                r.report(path, Problem::UnsupportedManifestVersion(s.clone()));
            }
            version
        }
        other => {
            r.report(
                path,
                Problem::WrongType {
                    expected: "a string such as \"5.0\"",
                    found: super::error::kind(other),
                },
            );
            None
        }
    }
}

fn read_compatibility(r: &mut Reader, root: &Map<String, Value>) -> Vec<BTreeMap<String, String>> {
    let path = "compatibility";
    let Some(list) = Reader::optional(root, path).and_then(|v| r.array(v, path)) else {
        return Vec::new();
    };
    let mut maps = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let map_path = item(path, i);
        let Some(object) = r.object(v, &map_path) else {
            continue;
        };
        let mut map = BTreeMap::new();
        for (key, value) in object {
            if let Some(s) = r.string(value, &child(&map_path, key)) {
                map.insert(key.clone(), s);
            }
        }
        maps.push(map);
    }
    maps
}

fn read_steps(
    r: &mut Reader,
    root: &Map<String, Value>,
    files: &BTreeMap<String, FileEntry>,
) -> Vec<Step> {
    let Some(instructions) = r
        .required(root, "instructions", "")
        .and_then(|v| r.object(v, "instructions"))
    else {
        return Vec::new();
    };
    let path = "instructions.steps";
    let Some(list) = r
        .required(instructions, "steps", "instructions")
        .and_then(|v| r.array(v, path))
    else {
        return Vec::new();
    };
    if list.len() > MAX_STEPS {
        r.report(
            path,
            Problem::TooMany {
                what: "steps",
                count: list.len(),
                limit: MAX_STEPS,
            },
        );
        return Vec::new();
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, v)| read_step(r, v, &item(path, i), files))
        .collect()
}

fn read_step(
    r: &mut Reader,
    value: &Value,
    path: &str,
    files: &BTreeMap<String, FileEntry>,
) -> Option<Step> {
    let object = r.object(value, path)?;
    let description = r.optional_string(object, "description", path);
    let kind = r.optional_string(object, "type", path);
    match kind.as_deref() {
        None if object.get("type").is_some_and(|t| !t.is_null()) => None,
        None | Some("inline") => read_inline_step(r, object, path, files, description),
        Some("reference") => read_reference_step(r, object, path, files, description),
        Some(other) => {
            r.report(
                child(path, "type"),
                Problem::UnknownStepType(other.to_owned()),
            );
            None
        }
    }
}

fn read_inline_step(
    r: &mut Reader,
    object: &Map<String, Value>,
    path: &str,
    files: &BTreeMap<String, FileEntry>,
    description: Option<String>,
) -> Option<Step> {
    let handler = r.required_string(object, "handler", path);
    let files_path = child(path, "files");
    let names = match Reader::optional(object, "files") {
        None => Vec::new(),
        Some(v) => r
            .array(v, &files_path)
            .map(|list| {
                list.iter()
                    .enumerate()
                    .filter_map(|(i, v)| r.string(v, &item(&files_path, i)))
                    .map(|name| match files.get(&name) {
                        Some(entry) => entry.file_name.clone(),
                        None => name,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let handler_properties = r.optional_object(object, "handlerProperties", path);
    let criteria_path = child(&child(path, "handlerProperties"), "installedCriteria");
    let installed_criteria = Reader::optional(&handler_properties, "installedCriteria")
        .and_then(|v| r.string(v, &criteria_path));
    Some(Step::Inline(InlineStep {
        description,
        handler: handler?,
        files: names,
        handler_properties,
        installed_criteria,
    }))
}

fn read_reference_step(
    r: &mut Reader,
    object: &Map<String, Value>,
    path: &str,
    files: &BTreeMap<String, FileEntry>,
    description: Option<String>,
) -> Option<Step> {
    let update_id = Reader::optional(object, "updateId")
        .and_then(|v| read_update_id(r, v, &child(path, "updateId")));
    let detached = r.optional_string(object, "detachedManifestFileId", path);
    let target = match detached {
        Some(file_id) => match files.get(&file_id) {
            Some(entry) => ReferenceTarget::DetachedManifest {
                file_name: entry.file_name.clone(),
                file_id,
            },
            None => {
                r.report(
                    child(path, "detachedManifestFileId"),
                    Problem::UnknownFileId(file_id),
                );
                return None;
            }
        },
        None => match update_id {
            Some(id) => ReferenceTarget::UpdateId(id),
            None => {
                // Only a problem of its own when neither field was there at all.
                let present = |k| Reader::optional(object, k).is_some();
                if !present("updateId") && !present("detachedManifestFileId") {
                    r.report(path, Problem::NoReferenceTarget);
                }
                return None;
            }
        },
    };
    Some(Step::Reference(ReferenceStep {
        description,
        target,
    }))
}

/// `files`: a map keyed by fileId (as delivered), or an array of entries with a
/// `filename` each (as ADU's tools write an import manifest), whose steps name their files
/// by that name; an array entry's fileId is its name.
pub(crate) fn read_files(r: &mut Reader, root: &Map<String, Value>) -> BTreeMap<String, FileEntry> {
    let path = "files";
    let object = match Reader::optional(root, path) {
        None => return BTreeMap::new(),
        Some(Value::Array(items)) => return read_import_files(r, items, path),
        Some(Value::Object(object)) => object,
        Some(other) => {
            r.report(
                path,
                Problem::WrongType {
                    expected: "an object (fileId → file) or an array (an import manifest's)",
                    found: super::error::kind(other),
                },
            );
            return BTreeMap::new();
        }
    };
    if object.len() > MAX_FILES {
        r.report(
            path,
            Problem::TooMany {
                what: "files",
                count: object.len(),
                limit: MAX_FILES,
            },
        );
        return BTreeMap::new();
    }
    let mut files = BTreeMap::new();
    for (id, v) in object {
        if let Some(entry) = read_file_entry(r, id, v, &child(path, id)) {
            files.insert(id.clone(), entry);
        }
    }
    files
}

fn read_import_files(r: &mut Reader, items: &[Value], path: &str) -> BTreeMap<String, FileEntry> {
    if items.len() > MAX_FILES {
        r.report(
            path,
            Problem::TooMany {
                what: "files",
                count: items.len(),
                limit: MAX_FILES,
            },
        );
        return BTreeMap::new();
    }
    let mut files: BTreeMap<String, FileEntry> = BTreeMap::new();
    for (i, v) in items.iter().enumerate() {
        let entry_path = item(path, i);
        let Some(entry) = read_file_entry_named(r, None, v, &entry_path, IMPORT_FILE_NAME) else {
            continue;
        };
        if files.contains_key(&entry.file_name) {
            r.report(
                child(&entry_path, IMPORT_FILE_NAME),
                Problem::DuplicateFileName {
                    name: entry.file_name.clone(),
                    other: entry.file_name.clone(),
                },
            );
            continue;
        }
        files.insert(entry.file_name.clone(), entry);
    }
    files
}

/// The member naming a file in an import manifest's `files` array.
const IMPORT_FILE_NAME: &str = "filename";

fn read_file_entry(r: &mut Reader, id: &str, value: &Value, path: &str) -> Option<FileEntry> {
    read_file_entry_named(r, Some(id), value, path, "fileName")
}

/// A `files` entry whose name is the member `name_key`; its fileId is `id`, or its name.
fn read_file_entry_named(
    r: &mut Reader,
    id: Option<&str>,
    value: &Value,
    path: &str,
    name_key: &str,
) -> Option<FileEntry> {
    let object = r.object(value, path)?;
    let common = read_file_common(r, object, path, name_key);
    let related_files = read_related_files(r, object, path);
    let download_handler = match Reader::optional(object, "downloadHandler") {
        None => None,
        Some(v) => {
            let handler_path = child(path, "downloadHandler");
            r.object(v, &handler_path)
                .and_then(|h| r.required_string(h, "id", &handler_path))
        }
    };
    let common = common?;
    Some(FileEntry {
        file_id: id.map_or_else(|| common.file_name.clone(), str::to_owned),
        file_name: common.file_name,
        size_in_bytes: common.size_in_bytes,
        sha256: common.sha256,
        properties: common.properties,
        related_files,
        download_handler,
    })
}

/// The members files and related files share.
struct FileCommon {
    file_name: String,
    size_in_bytes: u64,
    sha256: [u8; 32],
    properties: Map<String, Value>,
}

/// The name (the member `name_key`), `sizeInBytes`, `hashes.sha256` and `properties`.
fn read_file_common(
    r: &mut Reader,
    object: &Map<String, Value>,
    path: &str,
    name_key: &str,
) -> Option<FileCommon> {
    let file_name = r.required_string(object, name_key, path);
    let size = r
        .required(object, "sizeInBytes", path)
        .and_then(|v| r.unsigned(v, &child(path, "sizeInBytes")));
    let hashes_path = child(path, "hashes");
    let sha256 = r
        .required(object, "hashes", path)
        .and_then(|v| r.object(v, &hashes_path))
        .and_then(|h| r.required_string(h, "sha256", &hashes_path))
        .and_then(|b64| decode_sha256(r, &b64, &child(&hashes_path, "sha256")));
    let properties = r.optional_object(object, "properties", path);
    Some(FileCommon {
        file_name: file_name?,
        size_in_bytes: size?,
        sha256: sha256?,
        properties,
    })
}

fn decode_sha256(r: &mut Reader, b64: &str, path: &str) -> Option<[u8; 32]> {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        r.report(path, Problem::NotBase64);
        return None;
    };
    match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(hash) => Some(hash),
        Err(_) => {
            r.report(path, Problem::WrongHashLength(bytes.len()));
            None
        }
    }
}

/// `relatedFiles`: a map keyed by related-file id (as delivered) or an array (as in an
/// import manifest).
fn read_related_files(r: &mut Reader, object: &Map<String, Value>, path: &str) -> Vec<RelatedFile> {
    let Some(value) = Reader::optional(object, "relatedFiles") else {
        return Vec::new();
    };
    let path = child(path, "relatedFiles");
    let entries: Vec<(Option<&String>, &Value, String)> = match value {
        Value::Object(m) => m
            .iter()
            .map(|(id, v)| (Some(id), v, child(&path, id)))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (None, v, item(&path, i)))
            .collect(),
        other => {
            r.report(
                path,
                Problem::WrongType {
                    expected: "an object (keyed by related-file id) or an array",
                    found: super::error::kind(other),
                },
            );
            return Vec::new();
        }
    };
    if entries.len() > MAX_FILES {
        r.report(
            path,
            Problem::TooMany {
                what: "related files",
                count: entries.len(),
                limit: MAX_FILES,
            },
        );
        return Vec::new();
    }
    entries
        .into_iter()
        .filter_map(|(id, v, entry_path)| {
            let object = r.object(v, &entry_path)?;
            // An import manifest's array names each file by `filename`.
            let name_key = if id.is_none() && object.contains_key(IMPORT_FILE_NAME) {
                IMPORT_FILE_NAME
            } else {
                "fileName"
            };
            let common = read_file_common(r, object, &entry_path, name_key)?;
            Some(RelatedFile {
                file_id: id.cloned(),
                file_name: common.file_name,
                size_in_bytes: common.size_in_bytes,
                sha256: common.sha256,
                properties: common.properties,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HASH: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

    fn errors_of(value: Value) -> String {
        match manifest_from_value(&value) {
            Ok(m) => panic!("expected problems, got {m:#?}"),
            Err(e) => e.to_string(),
        }
    }

    fn minimal() -> Value {
        json!({
            "updateId": {"provider": "p", "name": "n", "version": "1"},
            "compatibility": [{"model": "m"}],
            "instructions": {"steps": [{"handler": "microsoft/script:1"}]},
            "manifestVersion": "5.0"
        })
    }

    #[test]
    fn minimal_manifest_takes_defaults() {
        let m = manifest_from_value(&minimal()).unwrap();
        assert!(m.is_deployable);
        assert!(m.files.is_empty() && m.referenced_by.is_empty());
        assert_eq!(m.manifest_version, ManifestVersion::V5);
        let Step::Inline(step) = &m.steps[0] else {
            panic!()
        };
        assert!(step.files.is_empty() && step.handler_properties.is_empty());
        assert_eq!(step.installed_criteria, None);
    }

    #[test]
    fn every_shape_problem_is_collected() {
        let mut v = minimal();
        v["updateId"]["name"] = json!(7);
        v["manifestVersion"] = json!(4);
        v["instructions"]["steps"] = json!([{"handler": 1}, {"type": "inline", "files": "x"}]);
        let text = errors_of(v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "updateId.name: must be a string, not a number",
                "manifestVersion: must be a string such as \"5.0\", not a number",
                "instructions.steps[0].handler: must be a string, not a number",
                "instructions.steps[1].handler: missing",
                "instructions.steps[1].files: must be an array, not a string",
            ]
        );
    }

    #[test]
    fn file_ids_resolve_to_file_names_and_related_files_take_both_forms() {
        let mut v = minimal();
        v["files"] = json!({
            "f1": {"fileName": "a.swu", "sizeInBytes": 3, "hashes": {"sha256": HASH},
                   "downloadHandler": {"id": "microsoft/delta:1"},
                   "relatedFiles": {"r1": {"fileName": "a.delta", "sizeInBytes": 1,
                                           "hashes": {"sha256": HASH}, "properties": {"k": "v"}}}},
            "f2": {"fileName": "b.sh", "sizeInBytes": 0, "hashes": {"sha256": HASH},
                   "relatedFiles": [{"fileName": "c", "sizeInBytes": 1, "hashes": {"sha256": HASH}}]}
        });
        v["instructions"]["steps"][0]["files"] = json!(["f1", "b.sh", "other"]);
        let m = manifest_from_value(&v).unwrap();
        let Step::Inline(step) = &m.steps[0] else {
            panic!()
        };
        assert_eq!(step.files, ["a.swu", "b.sh", "other"]);
        let f1 = &m.files["f1"];
        assert_eq!(f1.download_handler.as_deref(), Some("microsoft/delta:1"));
        assert_eq!(f1.related_files[0].file_id.as_deref(), Some("r1"));
        assert_eq!(m.files["f2"].related_files[0].file_id, None);
        assert_eq!(m.file_named("b.sh").map(|f| f.file_id.as_str()), Some("f2"));
    }

    #[test]
    fn reference_steps_prefer_the_detached_manifest() {
        let mut v = minimal();
        v["files"] =
            json!({"d": {"fileName": "child.json", "sizeInBytes": 3, "hashes": {"sha256": HASH}}});
        v["instructions"]["steps"] = json!([{
            "type": "reference",
            "updateId": {"provider": "p", "name": "c", "version": "1"},
            "detachedManifestFileId": "d"
        }]);
        let m = manifest_from_value(&v).unwrap();
        let Step::Reference(step) = &m.steps[0] else {
            panic!()
        };
        assert_eq!(
            step.target,
            ReferenceTarget::DetachedManifest {
                file_id: "d".into(),
                file_name: "child.json".into()
            }
        );
    }

    #[test]
    fn hashes_must_be_base64_of_32_bytes() {
        let mut v = minimal();
        v["files"] = json!({
            "a": {"fileName": "a", "sizeInBytes": 1, "hashes": {"sha256": "not base64!"}},
            "b": {"fileName": "b", "sizeInBytes": -1, "hashes": {"sha256": "AAAA"}}
        });
        assert_eq!(
            errors_of(v),
            "files.a.hashes.sha256: not valid base64\n\
             files.b.sizeInBytes: must be a non-negative integer, not a number\n\
             files.b.hashes.sha256: decodes to 3 bytes; a sha256 hash is 32 bytes"
        );
    }
}
