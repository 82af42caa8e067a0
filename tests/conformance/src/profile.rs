//! The conformance profile: the realistic step the kit runs a handler with, and the checks
//! that cannot apply to it.
//!
//! A profile is a TOML file beside the registration (`<registration>.conform.toml`, or
//! `conform.toml` in the same folder) or named with `--profile`:
//!
//! ```toml
//! installedCriteria = "contoso-camera-1.2"   # the step's installedCriteria
//! deviceFolder = "markerDir"                 # optional: a scratch device folder, granted
//!                                            # read-write and named in [config] under this key
//! cancelBoundSecs = 5                        # how long a cancelled action may take to end
//!
//! [handlerProperties]                        # the step's handlerProperties; "{device}" in a
//! arguments = "--marker {device}/installed"  # string becomes the scratch device folder
//!
//! [[files]]                                  # the step's payload files
//! name = "install.sh"
//! text = "#!/bin/sh\n…"                      # inline, or `path = "relative/to/profile"`
//!
//! [config]                                   # the registration's [config] for the run;
//! boot_env = "{device}/bootenv"              # "{device}" as in handlerProperties
//!
//! [[deviceFiles]]                            # what a fresh scratch device holds: laid
//! name = "bootenv"                           # into its folder before every scenario
//! text = "boot_slot=a\n"                     # (`text` or `path`, as for [[files]])
//!
//! [skip]                                     # checks that cannot apply, and why
//! "HC-004" = "needs a device with a real camera"
//!
//! [skipActions]                              # actions never run with the payload above
//! install = "installs packages on the machine running the kit"
//! ```
//!
//! The scratch device folder is granted to the handler read-write when the profile uses
//! it: `deviceFolder`, `{device}` in `[config]`, or `[[deviceFiles]]`.
//!
//! Without a profile the step has no payload files, no properties and the installed
//! criteria `conformance-1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use handrail_contract::Action;
use serde::Deserialize;

use crate::checks::Check;

/// Replaced by the scratch device folder in the profile's handler properties.
pub const DEVICE_PLACEHOLDER: &str = "{device}";

/// How long a cancelled action may take to end, unless the profile says otherwise.
pub const DEFAULT_CANCEL_BOUND: Duration = Duration::from_secs(5);

/// Errors reading a profile.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// One payload file of the profile's step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFile {
    /// The file's name in the step.
    pub name: String,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// The realistic step a handler is checked with, and what to leave out.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The step's `handlerProperties`.
    pub handler_properties: serde_json::Map<String, serde_json::Value>,
    /// The step's installed criteria.
    pub installed_criteria: Option<String>,
    /// The step's payload files.
    pub files: Vec<ProfileFile>,
    /// When set, the kit grants a scratch device folder read-write and names it in the
    /// registration's `[config]` under this key.
    pub device_folder: Option<String>,
    /// Settings merged over the registration's `[config]`; `{device}` in a string
    /// becomes the scratch device folder.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The files a fresh scratch device holds (names relative to its folder).
    pub device_files: Vec<ProfileFile>,
    /// How long a cancelled action may take to end.
    pub cancel_bound: Duration,
    /// Checks that do not apply to this handler, with the reason.
    pub skip: BTreeMap<Check, String>,
    /// Actions never run with the profile's payload, with the reason.
    pub skip_actions: BTreeMap<Action, String>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            handler_properties: serde_json::Map::new(),
            installed_criteria: Some("conformance-1".into()),
            files: Vec::new(),
            device_folder: None,
            config: serde_json::Map::new(),
            device_files: Vec::new(),
            cancel_bound: DEFAULT_CANCEL_BOUND,
            skip: BTreeMap::new(),
            skip_actions: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProfile {
    #[serde(default)]
    handler_properties: serde_json::Map<String, serde_json::Value>,
    installed_criteria: Option<String>,
    #[serde(default)]
    files: Vec<RawFile>,
    device_folder: Option<String>,
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    device_files: Vec<RawFile>,
    cancel_bound_secs: Option<u64>,
    #[serde(default)]
    skip: BTreeMap<String, String>,
    #[serde(default)]
    skip_actions: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    text: Option<String>,
    path: Option<PathBuf>,
}

impl Profile {
    /// Reads a profile file; relative file paths in it are resolved against its folder.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Profile::parse(path, &text)
    }

    /// Parses a profile's text; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Profile, ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawProfile = toml::from_str(text).map_err(|e| invalid(e.message().into()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let files = read_files("files", raw.files, base).map_err(invalid)?;
        let device_files = read_files("deviceFiles", raw.device_files, base).map_err(invalid)?;
        let mut skip = BTreeMap::new();
        for (id, reason) in raw.skip {
            let check = Check::from_id(&id)
                .ok_or_else(|| invalid(format!("skip: unknown check `{id}`")))?;
            skip.insert(check, reason);
        }
        let mut skip_actions = BTreeMap::new();
        for (name, reason) in raw.skip_actions {
            let action = name
                .parse::<Action>()
                .map_err(|e| invalid(format!("skipActions: {e}")))?;
            skip_actions.insert(action, reason);
        }
        Ok(Profile {
            handler_properties: raw.handler_properties,
            installed_criteria: raw
                .installed_criteria
                .or(Profile::default().installed_criteria),
            files,
            device_folder: raw.device_folder,
            config: raw.config,
            device_files,
            cancel_bound: raw
                .cancel_bound_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_CANCEL_BOUND),
            skip,
            skip_actions,
        })
    }

    /// True when the run uses the scratch device folder, which is then granted to the
    /// handler read-write.
    pub fn uses_device(&self) -> bool {
        fn mentions(value: &serde_json::Value) -> bool {
            match value {
                serde_json::Value::String(s) => s.contains(DEVICE_PLACEHOLDER),
                serde_json::Value::Array(items) => items.iter().any(mentions),
                serde_json::Value::Object(map) => map.values().any(mentions),
                _ => false,
            }
        }
        self.device_folder.is_some()
            || !self.device_files.is_empty()
            || self.config.values().any(mentions)
    }

    /// The profile that belongs beside a registration or artifact, if there is one:
    /// `<file stem>.conform.toml`, else `conform.toml` in the same folder; for an
    /// artifact cargo built (`<crate>/target/<target>/<profile>/x.wasm`, as
    /// `handrail new-handler`'s crate builds it), else the crate's own `conform.toml`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let built = dir.path().join("target/wasm32-wasip2/release");
    /// std::fs::create_dir_all(&built).unwrap();
    /// std::fs::write(dir.path().join("conform.toml"), "").unwrap();
    /// let found = handrail_conformance::Profile::beside(&built.join("contoso_camera.wasm"));
    /// assert_eq!(found, Some(dir.path().join("conform.toml")));
    /// ```
    pub fn beside(path: &Path) -> Option<PathBuf> {
        let folder = path.parent().unwrap_or(Path::new("."));
        let stem = path.file_stem()?.to_string_lossy();
        // `<crate>/target/<target>/<profile>/`: three folders up is the crate.
        let built_crate = folder.ancestors().nth(3).filter(|_| {
            folder
                .ancestors()
                .nth(2)
                .is_some_and(|t| t.ends_with("target"))
        });
        [
            Some(folder.join(format!("{stem}.conform.toml"))),
            Some(folder.join("conform.toml")),
            built_crate.map(|c| c.join("conform.toml")),
        ]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
    }
}

/// The `[[files]]` (or `[[deviceFiles]]`, named `table` in errors) of a profile, each
/// read from its `text` or its `path` relative to `base`.
fn read_files(table: &str, raw: Vec<RawFile>, base: &Path) -> Result<Vec<ProfileFile>, String> {
    let mut files = Vec::new();
    for (i, file) in raw.into_iter().enumerate() {
        let contents = match (file.text, file.path) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(p)) => {
                let p = base.join(p);
                std::fs::read(&p)
                    .map_err(|e| format!("{table}[{i}].path: cannot read {}: {e}", p.display()))?
            }
            _ => {
                return Err(format!(
                    "{table}[{i}]: give exactly one of `text` and `path`"
                ));
            }
        };
        if file.name.is_empty() || file.name.contains('/') || file.name.starts_with('.') {
            return Err(format!(
                "{table}[{i}].name: `{}` is not a plain file name",
                file.name
            ));
        }
        files.push(ProfileFile {
            name: file.name,
            contents,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_names_its_checks_and_actions() {
        let p = Profile::parse(
            Path::new("p.toml"),
            r#"
installedCriteria = "x-1"
deviceFolder = "markerDir"
cancelBoundSecs = 2
[handlerProperties]
a = "b"
[[files]]
name = "f.txt"
text = "hi"
[skip]
"HC-004" = "needs a camera"
[skipActions]
install = "changes the machine"
"#,
        )
        .unwrap();
        assert_eq!(p.installed_criteria.as_deref(), Some("x-1"));
        assert_eq!(p.files[0].contents, b"hi");
        assert_eq!(p.cancel_bound, Duration::from_secs(2));
        assert_eq!(p.skip[&Check::InstalledAfterInstall], "needs a camera");
        assert!(p.skip_actions.contains_key(&Action::Install));
    }

    #[test]
    fn a_profile_sets_the_registrations_config_and_the_devices_files() {
        let p = Profile::parse(
            Path::new("p.toml"),
            r#"
[config]
boot_env = "{device}/bootenv"
slots = { a = "{device}/a.img", b = "/dev/b" }
[[deviceFiles]]
name = "bootenv"
text = "boot_slot=a\n"
"#,
        )
        .unwrap();
        assert_eq!(p.config["slots"]["b"], "/dev/b");
        assert_eq!(p.device_files[0].name, "bootenv");
        assert_eq!(p.device_files[0].contents, b"boot_slot=a\n");
        assert!(p.uses_device());
        assert!(!Profile::default().uses_device());
        let config_only = Profile::parse(
            Path::new("p.toml"),
            "[config]\nnested = { deep = [\"{device}/x\"] }\n",
        )
        .unwrap();
        assert!(config_only.uses_device());
    }

    #[test]
    fn unknown_checks_actions_and_bad_names_are_refused() {
        for (text, says) in [
            ("[skip]\n\"HC-999\" = \"x\"", "unknown check `HC-999`"),
            (
                "[skipActions]\nfly = \"x\"",
                "skipActions: unknown action `fly`",
            ),
            ("[[files]]\nname = \"../x\"\ntext = \"\"", "files[0].name"),
            ("[[files]]\nname = \"x\"", "files[0]: give exactly one"),
            (
                "[[deviceFiles]]\nname = \"a/b\"\ntext = \"\"",
                "deviceFiles[0].name",
            ),
        ] {
            let e = Profile::parse(Path::new("p.toml"), text).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
    }
}
