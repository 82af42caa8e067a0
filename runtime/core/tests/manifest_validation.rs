//! The manifest corpus: every manifest in `tests/manifests/valid/` parses and validates,
//! and every one in `tests/manifests/invalid/` (one fault each, named for the fault) is
//! refused with its own message naming the field at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use handrail::manifest::{self, ValidationContext};

/// Handlers the corpus may name.
fn is_handler_known(id: &str) -> bool {
    matches!(
        id,
        "microsoft/script:1" | "microsoft/apt:1" | "microsoft/swupdate:1" | "microsoft/swupdate:2"
    )
}

/// Valid manifests and the level (0 parent, 1 child) they validate at.
const VALID: &[(&str, u8)] = &[
    ("child-three-script-steps.json", 1),
    ("envelope-v5.json", 0),
    ("installed-criteria-shared.json", 0),
    ("one-inline-step.json", 0),
    ("parent-reference-step.json", 0),
    ("two-inline-steps.json", 0),
    ("v5-detached-child.json", 1),
    ("v5-files-and-detached-reference.json", 0),
];

/// Invalid manifests: file, level it is checked at, a fragment its message must contain.
const INVALID: &[(&str, u8, &str)] = &[
    (
        "compatibility-empty-map.json",
        0,
        "compatibility[0]: must not be empty",
    ),
    (
        "compatibility-missing.json",
        0,
        "compatibility: a deployable update must list",
    ),
    (
        "compatibility-not-array.json",
        0,
        "compatibility: must be an array, not an object",
    ),
    (
        "compatibility-value-not-string.json",
        0,
        "compatibility[0].model: must be a string",
    ),
    (
        "created-date-time-not-string.json",
        0,
        "createdDateTime: must be a string",
    ),
    (
        "download-handler-id-missing.json",
        0,
        "files.f2.downloadHandler.id: missing",
    ),
    (
        "envelope-file-urls-not-strings.json",
        0,
        "fileUrls.f1: must be a string, not an array",
    ),
    (
        "envelope-inner-handler-missing.json",
        0,
        "instructions.steps[0].handler: missing",
    ),
    (
        "envelope-update-manifest-missing.json",
        0,
        "updateManifest: missing",
    ),
    (
        "envelope-update-manifest-not-json.json",
        0,
        "updateManifest: does not hold valid JSON",
    ),
    (
        "envelope-update-manifest-not-string.json",
        0,
        "updateManifest: must be a string",
    ),
    (
        "envelope-workflow-action-not-number.json",
        0,
        "workflow.action: must be a non-negative",
    ),
    (
        "envelope-workflow-id-missing.json",
        0,
        "workflow.id: missing",
    ),
    (
        "file-hash-not-base64.json",
        0,
        "files.f2.hashes.sha256: not valid base64",
    ),
    (
        "file-hash-sha256-missing.json",
        0,
        "files.f2.hashes.sha256: missing",
    ),
    (
        "file-hash-wrong-length.json",
        0,
        "files.f2.hashes.sha256: decodes to 20 bytes",
    ),
    ("file-hashes-missing.json", 0, "files.f2.hashes: missing"),
    (
        "file-name-duplicate.json",
        0,
        "files.f2.fileName: fileName `install.sh` is also",
    ),
    ("file-name-missing.json", 0, "files.f2.fileName: missing"),
    (
        "file-name-traversal.json",
        0,
        "files.f2.fileName: file name \"../firmware.swu\"",
    ),
    ("file-size-missing.json", 0, "files.f2.sizeInBytes: missing"),
    (
        "file-size-negative.json",
        0,
        "files.f2.sizeInBytes: must be a non-negative integer",
    ),
    (
        "files-not-object.json",
        0,
        "files: must be an object (fileId → file) or an array (an import manifest's), not a string",
    ),
    (
        "import-files-filename-missing.json",
        0,
        "files[0].filename: missing",
    ),
    ("instructions-missing.json", 0, "instructions: missing"),
    (
        "is-deployable-not-bool.json",
        0,
        "isDeployable: must be a boolean",
    ),
    (
        "manifest-version-missing.json",
        0,
        "manifestVersion: missing",
    ),
    (
        "manifest-version-number.json",
        0,
        "manifestVersion: must be a string",
    ),
    (
        "manifest-version-unsupported.json",
        0,
        "manifestVersion: unsupported manifestVersion `3.0`",
    ),
    ("nesting-too-deep.json", 0, "deeper than 32 levels (line"),
    (
        "parent-not-deployable.json",
        0,
        "isDeployable: the update is not deployable on its own",
    ),
    (
        "reference-step-detached-file-unknown.json",
        0,
        "instructions.steps[0].detachedManifestFileId",
    ),
    (
        "reference-step-nested-in-child.json",
        1,
        "instructions.steps[2]: nested reference steps are not allowed",
    ),
    (
        "reference-step-no-target.json",
        0,
        "instructions.steps[0]: a reference step needs",
    ),
    (
        "reference-step-update-id-name-empty.json",
        0,
        "instructions.steps[0].updateId.name: must not be empty",
    ),
    (
        "referenced-by-version-missing.json",
        0,
        "referencedBy[0].version: missing",
    ),
    (
        "related-file-name-unsafe.json",
        0,
        "files.f2.relatedFiles.r1.fileName: file name",
    ),
    (
        "root-not-object.json",
        0,
        "(document): must be an object, not an array",
    ),
    (
        "step-description-not-string.json",
        0,
        "instructions.steps[0].description: must be a string",
    ),
    (
        "step-file-absolute-path.json",
        0,
        "instructions.steps[0].files[0]: file name \"/etc/passwd\" is an absolute path",
    ),
    (
        "step-file-backslash.json",
        0,
        "instructions.steps[0].files[0]: file name \"scripts\\\\install.sh\" contains `\\`",
    ),
    (
        "step-file-dot-dot.json",
        0,
        "instructions.steps[0].files[0]: file name \"..\" is `.` or `..`",
    ),
    (
        "step-file-empty-name.json",
        0,
        "instructions.steps[0].files[0]: file name \"\" is empty",
    ),
    (
        "step-file-not-string.json",
        0,
        "instructions.steps[0].files[1]: must be a string, not a number",
    ),
    (
        "step-file-nul-character.json",
        0,
        "instructions.steps[0].files[0]: file name \"install.sh\\0.txt\" contains a NUL",
    ),
    (
        "step-file-path-traversal.json",
        0,
        "instructions.steps[0].files[0]: file name \"../../etc/shadow\" contains `/`",
    ),
    (
        "step-file-unknown.json",
        0,
        "instructions.steps[1].files[1]: `missing.bin` is neither a fileId nor a fileName",
    ),
    (
        "step-files-not-array.json",
        0,
        "instructions.steps[0].files: must be an array, not a string",
    ),
    (
        "step-handler-malformed-id.json",
        0,
        "instructions.steps[0].handler: `microsoft-script` is not a handler id",
    ),
    (
        "step-handler-missing.json",
        0,
        "instructions.steps[1].handler: missing",
    ),
    (
        "step-handler-not-string.json",
        0,
        "instructions.steps[0].handler: must be a string, not an object",
    ),
    (
        "step-handler-properties-not-object.json",
        0,
        "instructions.steps[0].handlerProperties: must be an object",
    ),
    (
        "step-handler-unknown.json",
        0,
        "instructions.steps[0].handler: unknown handler `contoso/firmware:3`",
    ),
    (
        "step-installed-criteria-not-string.json",
        0,
        "instructions.steps[0].handlerProperties.installedCriteria: must be a string",
    ),
    (
        "step-not-object.json",
        0,
        "instructions.steps[0]: must be an object, not a string",
    ),
    (
        "step-type-unknown.json",
        0,
        "instructions.steps[0].type: unknown step type `parallel`",
    ),
    (
        "steps-empty.json",
        0,
        "instructions.steps: must not be empty",
    ),
    ("steps-missing.json", 0, "instructions.steps: missing"),
    (
        "steps-not-array.json",
        0,
        "instructions.steps: must be an array, not an object",
    ),
    (
        "string-too-long.json",
        0,
        "instructions.steps[0].handlerProperties.arguments: string is 5000 bytes long",
    ),
    (
        "syntax-missing-colon.json",
        0,
        "not valid JSON: expected `:` (line 4, column",
    ),
    (
        "too-many-files.json",
        0,
        "files: 1001 files; the limit is 1000",
    ),
    (
        "too-many-steps.json",
        0,
        "instructions.steps: 1001 steps; the limit is 1000",
    ),
    ("update-id-missing.json", 0, "updateId: missing"),
    (
        "update-id-provider-not-string.json",
        0,
        "updateId.provider: must be a string, not a number",
    ),
    (
        "update-id-version-empty.json",
        0,
        "updateId.version: must not be empty",
    ),
];

fn corpus(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/manifests")
        .join(kind)
}

fn json_files(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect()
}

/// Parses and validates; `Ok` or the message the operator would see.
fn check(path: &Path, level: u8) -> Result<(), String> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let document = manifest::parse_document(&bytes).map_err(|e| e.to_string())?;
    document
        .manifest()
        .validate(&ValidationContext {
            is_handler_known: &is_handler_known,
            level,
        })
        .map_err(|e| e.to_string())
}

#[test]
fn every_valid_manifest_parses_and_validates() {
    let dir = corpus("valid");
    let listed: BTreeSet<String> = VALID.iter().map(|(f, _)| (*f).to_owned()).collect();
    assert_eq!(
        json_files(&dir),
        listed,
        "VALID must list exactly the files in {}",
        dir.display()
    );
    for (file, level) in VALID {
        if let Err(message) = check(&dir.join(file), *level) {
            panic!("{file} (level {level}) was refused:\n{message}");
        }
    }
}

#[test]
fn every_invalid_manifest_is_refused_with_its_own_message() {
    let dir = corpus("invalid");
    let listed: BTreeSet<String> = INVALID.iter().map(|(f, _, _)| (*f).to_owned()).collect();
    assert_eq!(
        json_files(&dir),
        listed,
        "INVALID must list exactly the files in {}",
        dir.display()
    );
    assert!(INVALID.len() >= 24);

    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut failures = Vec::new();
    for (file, level, expected) in INVALID {
        let message = match check(&dir.join(file), *level) {
            Ok(()) => {
                failures.push(format!("{file}: accepted"));
                continue;
            }
            Err(message) => message,
        };
        if message.trim().is_empty() {
            failures.push(format!("{file}: empty message"));
        }
        if message.lines().count() != 1 {
            failures.push(format!(
                "{file}: expected exactly one problem, got:\n{message}"
            ));
        }
        if !message.contains(expected) {
            failures.push(format!("{file}: {message:?} does not contain {expected:?}"));
        }
        if let Some(other) = seen.insert(message.clone(), file) {
            failures.push(format!("{file}: same message as {other}: {message:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_child_fails_as_a_parent_because_it_is_not_deployable() {
    let path = corpus("valid").join("child-three-script-steps.json");
    let message = check(&path, 0).unwrap_err();
    assert!(
        message.starts_with("isDeployable: the update is not deployable on its own"),
        "{message}"
    );
}

#[test]
fn steps_that_share_installed_criteria_are_valid_and_found() {
    let bytes = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/manifests/valid/installed-criteria-shared.json"),
    )
    .unwrap();
    let manifest = handrail::manifest::parse_manifest(&bytes).unwrap();
    assert_eq!(
        manifest.shared_installed_criteria(),
        [("shared-criteria-1.0", vec![0, 1])]
    );
}
