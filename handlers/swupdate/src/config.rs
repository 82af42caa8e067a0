//! The device owner's settings for swupdate (the registration's `[config]` table): where
//! the two slots are, which swupdate selection writes each, and the files that hold the
//! boot slot and the running version.
//!
//! ```toml
//! [config]
//! slots = { a = "/dev/mmcblk0p2", b = "/dev/mmcblk0p3" }
//! selections = { a = "stable,copy1", b = "stable,copy2" }   # the default
//! boot_env = "/var/lib/boot/bootenv"       # boot_slot=a, upgrade_available=0, ustate=0
//! version_file = "/etc/sw-version"         # the running system's version
//! public_key = "/etc/swupdate/public.pem"  # swupdate -k (optional)
//! hwrevision = "board:1.0"                 # swupdate -H (optional)
//! swupdate_options = ["-l", "4"]           # more swupdate arguments (optional)
//! ```
//!
//! swupdate writes the images of the selection it is given (`-e`); the `.swu`'s
//! `sw-description` names each selection's target device, so `selections.b` must be the
//! one that writes `slots.b`. The handler grants nothing itself: the registration must
//! also grant `capabilities.write` for the folder holding `boot_env` and
//! `capabilities.read` (or `write`) for the folder holding `version_file`. For the
//! built-in registration, the device configuration does both:
//!
//! ```toml
//! [handler_config."microsoft/swupdate:2"]   # these settings
//! boot_env = "/var/lib/boot/bootenv"
//! # …
//! [handler_grants."microsoft/swupdate:2"]   # and the folders they name
//! write = ["/var/lib/boot"]
//! read = ["/etc/sw-version.d"]
//! ```
//!
//! ```
//! use handrail_swupdate_handler::config::SwupdateConfig;
//! let config: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
//!     r#"{"slots": {"a": "/dev/p2", "b": "/dev/p3"}, "boot_env": "/boot/env", "version_file": "/etc/v"}"#,
//! ).unwrap();
//! let config = SwupdateConfig::from_config(&config).unwrap();
//! assert_eq!(config.other_slot("a"), Some("b"));
//! assert_eq!(config.selection("b"), "stable,copy2");
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The names of the two slots.
pub const SLOT_NAMES: [&str; 2] = ["a", "b"];

/// The slot called `name`, if it is one of [`SLOT_NAMES`].
pub fn slot(name: &str) -> Option<&'static str> {
    SLOT_NAMES.iter().copied().find(|s| *s == name)
}

/// The boot environment variable naming the slot the bootloader boots.
pub const DEFAULT_SLOT_VARIABLE: &str = "boot_slot";

/// The boot environment variable saying an update waits to be confirmed.
pub const DEFAULT_UPGRADE_VARIABLE: &str = "upgrade_available";

/// What the registration's config says about the slots and swupdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwupdateConfig {
    /// Slot name (`a`, `b`) → its device or image file.
    pub slots: BTreeMap<String, String>,
    /// Slot name → the swupdate selection (`-e set,mode`) that writes it.
    pub selections: BTreeMap<String, String>,
    /// The boot environment file.
    pub boot_env: String,
    /// The file holding the running system's version.
    pub version_file: String,
    /// The variable naming the boot slot in `boot_env`.
    pub slot_variable: String,
    /// The variable marking an unconfirmed update in `boot_env`.
    pub upgrade_variable: String,
    /// swupdate's `-k`.
    pub public_key: Option<String>,
    /// swupdate's `-H`.
    pub hwrevision: Option<String>,
    /// More swupdate arguments, before the handler's own.
    pub options: Vec<String>,
}

fn string(config: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(format!("config.{key}: expected a non-empty string")),
    }
}

fn required(config: &Map<String, Value>, key: &str) -> Result<String, String> {
    string(config, key)?.ok_or_else(|| format!("config.{key}: missing"))
}

fn absolute(key: &str, path: String) -> Result<String, String> {
    if path.starts_with('/') {
        Ok(path)
    } else {
        Err(format!("config.{key}: `{path}` is not an absolute path"))
    }
}

/// A table with exactly the keys `a` and `b`, each a non-empty string.
fn per_slot(
    config: &Map<String, Value>,
    key: &str,
) -> Result<Option<BTreeMap<String, String>>, String> {
    let table = match config.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(table)) => table,
        Some(_) => return Err(format!("config.{key}: expected a table {{ a = …, b = … }}")),
    };
    let mut out = BTreeMap::new();
    for (name, value) in table {
        if !SLOT_NAMES.contains(&name.as_str()) {
            return Err(format!(
                "config.{key}.{name}: the slots are named `a` and `b`"
            ));
        }
        match value {
            Value::String(s) if !s.trim().is_empty() => {
                out.insert(name.clone(), s.clone());
            }
            _ => return Err(format!("config.{key}.{name}: expected a non-empty string")),
        }
    }
    for name in SLOT_NAMES {
        if !out.contains_key(name) {
            return Err(format!("config.{key}.{name}: missing"));
        }
    }
    Ok(Some(out))
}

impl SwupdateConfig {
    /// Reads the settings; the error names the setting at fault.
    pub fn from_config(config: &Map<String, Value>) -> Result<SwupdateConfig, String> {
        let slots = per_slot(config, "slots")?.ok_or("config.slots: missing")?;
        if slots["a"] == slots["b"] {
            return Err(format!(
                "config.slots: a and b are the same device `{}`",
                slots["a"]
            ));
        }
        let selections = per_slot(config, "selections")?.unwrap_or_else(|| {
            BTreeMap::from([
                ("a".to_owned(), "stable,copy1".to_owned()),
                ("b".to_owned(), "stable,copy2".to_owned()),
            ])
        });
        let options = match config.get("swupdate_options") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(format!("config.swupdate_options[{i}]: expected a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("config.swupdate_options: expected a list of strings".into()),
        };
        Ok(SwupdateConfig {
            slots,
            selections,
            boot_env: absolute("boot_env", required(config, "boot_env")?)?,
            version_file: absolute("version_file", required(config, "version_file")?)?,
            slot_variable: string(config, "slot_variable")?
                .unwrap_or_else(|| DEFAULT_SLOT_VARIABLE.to_owned()),
            upgrade_variable: string(config, "upgrade_variable")?
                .unwrap_or_else(|| DEFAULT_UPGRADE_VARIABLE.to_owned()),
            public_key: string(config, "public_key")?
                .map(|p| absolute("public_key", p))
                .transpose()?,
            hwrevision: string(config, "hwrevision")?,
            options,
        })
    }

    /// The slot that is not `slot`, when `slot` is one of the two.
    pub fn other_slot(&self, slot: &str) -> Option<&'static str> {
        match slot {
            "a" => Some("b"),
            "b" => Some("a"),
            _ => None,
        }
    }

    /// The swupdate selection that writes `slot`.
    pub fn selection(&self, slot: &str) -> &str {
        self.selections.get(slot).map_or("", String::as_str)
    }

    /// The device or image file of `slot`.
    pub fn device(&self, slot: &str) -> &str {
        self.slots.get(slot).map_or("", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Result<SwupdateConfig, String> {
        SwupdateConfig::from_config(&serde_json::from_str(json).unwrap())
    }

    const BASE: &str =
        r#""slots": {"a": "/s/a", "b": "/s/b"}, "boot_env": "/e", "version_file": "/v""#;

    #[test]
    fn defaults() {
        let c = config(&format!("{{{BASE}}}")).unwrap();
        assert_eq!(c.selection("a"), "stable,copy1");
        assert_eq!(c.slot_variable, "boot_slot");
        assert_eq!(c.upgrade_variable, "upgrade_available");
        assert_eq!(c.public_key, None);
        assert_eq!(c.device("b"), "/s/b");
    }

    #[test]
    fn wrong_shapes_name_the_setting() {
        for (json, field) in [
            ("{}".to_owned(), "config.slots"),
            (
                r#"{"slots": {"a": "/x", "c": "/y"}}"#.to_owned(),
                "config.slots.c",
            ),
            (r#"{"slots": {"a": "/x"}}"#.to_owned(), "config.slots.b"),
            (
                r#"{"slots": {"a": "/x", "b": "/x"}}"#.to_owned(),
                "config.slots",
            ),
            (
                r#"{"slots": {"a": "/x", "b": "/y"}, "version_file": "/v"}"#.to_owned(),
                "config.boot_env",
            ),
            (
                format!(r#"{{{BASE}, "public_key": "key.pem"}}"#),
                "config.public_key",
            ),
            (
                format!(r#"{{{BASE}, "selections": {{"a": "s,1"}}}}"#),
                "config.selections.b",
            ),
            (
                format!(r#"{{{BASE}, "swupdate_options": "-v"}}"#),
                "config.swupdate_options",
            ),
        ] {
            let e = config(&json).unwrap_err();
            assert!(e.starts_with(&format!("{field}:")), "{json}: {e}");
        }
    }
}
