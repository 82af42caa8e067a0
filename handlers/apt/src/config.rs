//! The device owner's settings for apt (the registration's `[config]` table).
//!
//! ```toml
//! [config]
//! apt_options = ["-o", "Acquire::Retries=3", "-o", "Dir::Etc::SourceList=/etc/handrail/apt.list"]
//! env = { http_proxy = "http://proxy.local:3128" }
//! ```
//!
//! `apt_options` are inserted right after `apt-get` in every call the handler makes;
//! `env` is added to the environment of every program it runs. The handler always sets
//! `DEBIAN_FRONTEND=noninteractive` (nothing can answer a prompt) and a system `PATH`
//! (dpkg refuses to run without one); `env` may replace `PATH`, not the front end.
//!
//! ```
//! use handrail_apt_handler::config::AptConfig;
//! let config: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
//!     r#"{"apt_options": ["-o", "Acquire::Retries=3"], "env": {"http_proxy": "http://p:3128"}}"#,
//! ).unwrap();
//! let apt = AptConfig::from_config(&config).unwrap();
//! assert_eq!(apt.options, ["-o", "Acquire::Retries=3"]);
//! assert!(apt.env.contains(&("DEBIAN_FRONTEND".into(), "noninteractive".into())));
//! assert!(apt.env.contains(&("http_proxy".into(), "http://p:3128".into())));
//! ```

use serde_json::{Map, Value};

/// `PATH` for apt-get and dpkg: they run maintainer scripts and helpers by name.
pub const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The front end debconf uses: nothing can answer a question during an update.
pub const DEBIAN_FRONTEND: (&str, &str) = ("DEBIAN_FRONTEND", "noninteractive");

/// What the registration's config says about running apt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptConfig {
    /// Inserted after `apt-get` in every call.
    pub options: Vec<String>,
    /// The environment of every program the handler runs.
    pub env: Vec<(String, String)>,
}

impl AptConfig {
    /// Reads `apt_options` and `env` from the registration's config; the error names the
    /// setting at fault.
    pub fn from_config(config: &Map<String, Value>) -> Result<AptConfig, String> {
        let options = match config.get("apt_options") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(format!("config.apt_options[{i}]: expected a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("config.apt_options: expected a list of strings".into()),
        };
        let mut env = vec![("PATH".to_owned(), SYSTEM_PATH.to_owned())];
        match config.get("env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(pairs)) => {
                for (key, value) in pairs {
                    let Value::String(value) = value else {
                        return Err(format!("config.env.{key}: expected a string"));
                    };
                    if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                        return Err(format!(
                            "config.env.{key}: not a usable environment variable"
                        ));
                    }
                    if key == DEBIAN_FRONTEND.0 {
                        continue;
                    }
                    env.retain(|(k, _)| k != key);
                    env.push((key.clone(), value.clone()));
                }
            }
            Some(_) => {
                return Err("config.env: expected a table of strings".into());
            }
        }
        env.push((DEBIAN_FRONTEND.0.to_owned(), DEBIAN_FRONTEND.1.to_owned()));
        Ok(AptConfig { options, env })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Result<AptConfig, String> {
        AptConfig::from_config(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn defaults_without_config() {
        let c = config("{}").unwrap();
        assert!(c.options.is_empty());
        assert_eq!(
            c.env,
            [
                ("PATH".to_owned(), SYSTEM_PATH.to_owned()),
                ("DEBIAN_FRONTEND".to_owned(), "noninteractive".to_owned())
            ]
        );
    }

    #[test]
    fn env_replaces_path_but_not_the_front_end() {
        let c = config(r#"{"env": {"PATH": "/opt/bin:/usr/bin", "DEBIAN_FRONTEND": "dialog"}}"#)
            .unwrap();
        assert_eq!(
            c.env,
            [
                ("PATH".to_owned(), "/opt/bin:/usr/bin".to_owned()),
                ("DEBIAN_FRONTEND".to_owned(), "noninteractive".to_owned())
            ]
        );
    }

    #[test]
    fn wrong_shapes_name_the_setting() {
        for (json, field) in [
            (r#"{"apt_options": "-o x"}"#, "config.apt_options"),
            (r#"{"apt_options": ["-o", 3]}"#, "config.apt_options[1]"),
            (r#"{"env": ["A=b"]}"#, "config.env"),
            (r#"{"env": {"A": 1}}"#, "config.env.A"),
            (r#"{"env": {"A=B": "c"}}"#, "config.env.A=B"),
        ] {
            let e = config(json).unwrap_err();
            assert!(e.starts_with(&format!("{field}:")), "{json}: {e}");
        }
    }
}
