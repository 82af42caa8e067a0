//! The backup: what each listed package was before the step touched it, kept as
//! `apt-backup.json` in the step's work folder, and what restoring it takes.
//!
//! ```json
//! {"packages": [
//!   {"name": "handrail-test-hello", "state": "installed", "version": "1.0"},
//!   {"name": "handrail-test-broken", "state": "absent"}
//! ]}
//! ```
//!
//! ```
//! use handrail_apt_handler::backup::{Backup, Before, Prior, RestorePlan};
//! let backup = Backup { packages: vec![
//!     Prior { name: "hello".into(), before: Before::Installed { version: "1.0".into() } },
//!     Prior { name: "broken".into(), before: Before::Absent },
//! ]};
//! // Now hello is at 2.0 and broken is half-installed.
//! let plan = RestorePlan::new(&backup, |name| match name {
//!     "hello" => (Some("2.0".into()), true),
//!     _ => (None, true),
//! });
//! assert_eq!(plan.remove, ["broken"]);
//! assert_eq!(plan.reinstall, ["hello=1.0"]);
//! ```

use serde::{Deserialize, Serialize};

/// The backup file's name in the work folder.
pub const BACKUP_FILE: &str = "apt-backup.json";

/// What one package was before the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Before {
    /// Fully installed at this version.
    Installed {
        /// The version dpkg had installed.
        version: String,
    },
    /// Not installed (or only its configuration files were left).
    Absent,
}

/// One listed package and what it was before the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prior {
    /// The package name, as the manifest lists it.
    pub name: String,
    /// What it was.
    #[serde(flatten)]
    pub before: Before,
}

/// The backup of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// Every listed package, in the manifest's order.
    pub packages: Vec<Prior>,
}

impl Backup {
    /// The backup as written to [`BACKUP_FILE`].
    pub fn to_json(&self) -> String {
        // Plain strings and enums: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a backup file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Backup, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// What restoring a backup takes, given what is on the device now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestorePlan {
    /// Packages that were absent and are (partly) on the device now: `apt-get remove`.
    pub remove: Vec<String>,
    /// `name=version` of packages that were installed at another version (or have gone
    /// since): installed again with `--allow-downgrades`.
    pub reinstall: Vec<String>,
}

impl RestorePlan {
    /// The plan for `backup`; `now(name)` says what dpkg has for a package now: the
    /// fully installed version, if any, and whether it has files on the device at all.
    pub fn new(backup: &Backup, mut now: impl FnMut(&str) -> (Option<String>, bool)) -> Self {
        let mut plan = RestorePlan::default();
        for prior in &backup.packages {
            let (installed, present) = now(&prior.name);
            match &prior.before {
                Before::Absent if present => plan.remove.push(prior.name.clone()),
                Before::Absent => {}
                Before::Installed { version } if installed.as_deref() != Some(version) => {
                    plan.reinstall.push(format!("{}={version}", prior.name));
                }
                Before::Installed { .. } => {}
            }
        }
        plan
    }

    /// True when every package is already as it was.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.reinstall.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_format_round_trips() {
        let backup = Backup {
            packages: vec![
                Prior {
                    name: "a".into(),
                    before: Before::Installed {
                        version: "1:2.0-1".into(),
                    },
                },
                Prior {
                    name: "b".into(),
                    before: Before::Absent,
                },
            ],
        };
        let json = backup.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"packages": [
                {"name": "a", "state": "installed", "version": "1:2.0-1"},
                {"name": "b", "state": "absent"}
            ]})
        );
        assert_eq!(Backup::parse(json.as_bytes()).unwrap(), backup);
        assert!(Backup::parse(br#"{"packages":[{"name":"a","state":"gone"}]}"#).is_err());
    }

    #[test]
    fn packages_already_as_before_are_left_alone() {
        let backup = Backup {
            packages: vec![
                Prior {
                    name: "same".into(),
                    before: Before::Installed {
                        version: "1.0".into(),
                    },
                },
                Prior {
                    name: "still-absent".into(),
                    before: Before::Absent,
                },
                Prior {
                    name: "removed-since".into(),
                    before: Before::Installed {
                        version: "3.0".into(),
                    },
                },
            ],
        };
        let plan = RestorePlan::new(&backup, |name| match name {
            "same" => (Some("1.0".into()), true),
            _ => (None, false),
        });
        assert_eq!(plan.remove, Vec::<String>::new());
        assert_eq!(plan.reinstall, ["removed-since=3.0"]);
        let nothing = RestorePlan::new(&backup, |name| match name {
            "same" => (Some("1.0".into()), true),
            "removed-since" => (Some("3.0".into()), true),
            _ => (None, false),
        });
        assert!(nothing.is_empty());
    }
}
