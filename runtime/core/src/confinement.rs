//! What a registration asks for when the kernel cannot confine its handler.
//!
//! `config.landlock` in a registration, for a native handler's worker and for the
//! programs any handler starts through `run`:
//!
//! | value | where Landlock is unavailable |
//! |---|---|
//! | `"require"` (default) | the handler is refused, with an error that says why |
//! | `"best-effort"` | the handler runs unconfined, with a warning in the log |
//!
//! Rules that Landlock enforces only in part (an older kernel handles fewer kinds of
//! access) count as enforced: reading and writing files is confined from the first
//! Landlock version on.

use serde::{Deserialize, Serialize};

/// The registration key.
pub const CONFIG_KEY: &str = "landlock";

/// The registration's policy for a kernel without Landlock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandlockPolicy {
    /// Refuse to run the handler unconfined.
    #[default]
    Require,
    /// Run it unconfined, with a warning.
    BestEffort,
}

impl LandlockPolicy {
    /// The policy a registration's `[config]` table asks for.
    ///
    /// ```
    /// use handrail::confinement::LandlockPolicy;
    /// let config = serde_json::json!({"landlock": "best-effort"});
    /// let config = config.as_object().unwrap();
    /// assert_eq!(LandlockPolicy::from_config(config), Ok(LandlockPolicy::BestEffort));
    /// assert_eq!(LandlockPolicy::from_config(&Default::default()), Ok(LandlockPolicy::Require));
    /// ```
    pub fn from_config(
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<LandlockPolicy, String> {
        match config.get(CONFIG_KEY) {
            None => Ok(LandlockPolicy::Require),
            Some(serde_json::Value::String(s)) if s == "require" => Ok(LandlockPolicy::Require),
            Some(serde_json::Value::String(s)) if s == "best-effort" => {
                Ok(LandlockPolicy::BestEffort)
            }
            Some(other) => Err(format!(
                "config.{CONFIG_KEY}: {other} is not \"require\" or \"best-effort\""
            )),
        }
    }

    /// What to do with a native worker or a program whose Landlock rules are
    /// (`enforced`) or are not in force, `landlock` being the kernel's Landlock status
    /// for people: `Ok(None)` to go on confined, `Ok(Some(warning))` to go on
    /// unconfined, `Err(reason)` to refuse.
    pub fn judge(self, enforced: bool, landlock: &str) -> Result<Option<String>, String> {
        match (enforced, self) {
            (true, _) => Ok(None),
            (false, LandlockPolicy::Require) => Err(format!(
                "Landlock is not available on this kernel ({landlock}), so the handler cannot be confined; \
                 its registration requires confinement (config.{CONFIG_KEY} = \"require\", the default). \
                 Set config.{CONFIG_KEY} = \"best-effort\" to run it unconfined"
            )),
            (false, LandlockPolicy::BestEffort) => Ok(Some(format!(
                "Landlock is not available on this kernel ({landlock}); the handler runs UNCONFINED \
                 (it can read and write whatever the runtime can), as its registration allows \
                 (config.{CONFIG_KEY} = \"best-effort\")"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_the_key() {
        for bad in [serde_json::json!("off"), serde_json::json!(true)] {
            let mut config = serde_json::Map::new();
            config.insert(CONFIG_KEY.into(), bad);
            let err = LandlockPolicy::from_config(&config).unwrap_err();
            assert!(err.starts_with("config.landlock:"), "{err}");
        }
    }

    #[test]
    fn require_refuses_and_best_effort_warns_without_landlock() {
        for policy in [LandlockPolicy::Require, LandlockPolicy::BestEffort] {
            assert_eq!(policy.judge(true, "ABI 6"), Ok(None));
        }
        let refused = LandlockPolicy::Require
            .judge(false, "not implemented")
            .unwrap_err();
        assert!(
            refused.contains("not available on this kernel (not implemented)")
                && refused.contains("best-effort"),
            "{refused}"
        );
        let warning = LandlockPolicy::BestEffort
            .judge(false, "not enabled")
            .unwrap()
            .unwrap();
        assert!(warning.contains("UNCONFINED"), "{warning}");
    }
}
