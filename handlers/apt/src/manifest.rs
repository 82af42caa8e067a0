//! The apt manifest: the one payload file of an apt step, in ADU's format.
//!
//! ```json
//! {
//!   "name": "contoso-iot-edge",
//!   "version": "1.0.0",
//!   "packages": [{"name": "moby-engine", "version": "20.10.5+azure-1"}, {"name": "tree"}],
//!   "agentRestartRequired": false
//! }
//! ```
//!
//! As in ADU's parser, `packages` may be left out (the manifest then lists nothing, and
//! download fails as ADU's does when apt is given no packages), but an empty
//! `packages` array is a malformed manifest.
//!
//! Parsing names the field at fault (`packages[1].name: missing`). Package names and
//! versions end up on apt-get's command line, so anything apt would read as something
//! other than a plain name or version (an option, a glob or pattern, a release selector)
//! is refused here, before any program runs.
//!
//! ```
//! use handrail_apt_handler::manifest::{AptManifest, ProblemKind};
//! let m = AptManifest::parse(br#"{"name":"n","version":"1","packages":[{"name":"tree","version":"2.1.0-1"},{"name":"jq"}]}"#).unwrap();
//! assert_eq!(m.specs(), ["tree=2.1.0-1", "jq"]);
//! assert!(!m.agent_restart_required);
//!
//! let bad = AptManifest::parse(br#"{"name":"n","version":"1","packages":[{"name":"-o"}]}"#).unwrap_err();
//! assert_eq!(bad.kind, ProblemKind::UnsafeName);
//! assert_eq!(bad.field, "packages[0].name");
//! ```

use handrail_sdk::json::kind;
use serde_json::{Map, Value};

/// One package to install: `name` (optionally `name:arch`), at `version` when given,
/// else whatever version apt picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The Debian package name.
    pub name: String,
    /// The exact Debian version, when the manifest pins one.
    pub version: Option<String>,
}

impl Package {
    /// How apt-get's `install` names the package: `name=version`, or `name`.
    pub fn spec(&self) -> String {
        match &self.version {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A parsed and checked apt manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptManifest {
    /// The manifest's own name.
    pub name: String,
    /// The manifest's own version.
    pub version: String,
    /// The packages, in the manifest's order; empty when the manifest has no `packages`.
    pub packages: Vec<Package>,
    /// True when the agent must restart once the packages are installed (apply → 707).
    pub agent_restart_required: bool,
}

/// What kind of problem a manifest has; each maps to its own extended code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not JSON, or a field is missing, empty or of the wrong type.
    Malformed,
    /// A package name apt would not read as a plain package name.
    UnsafeName,
    /// A package version apt would not read as a plain version.
    UnsafeVersion,
}

/// Why an apt manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem {
    /// The kind of problem.
    pub kind: ProblemKind,
    /// The field at fault (`packages[2].version`); empty for the whole document.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for ManifestProblem {}

fn malformed(field: &str, reason: impl Into<String>) -> ManifestProblem {
    ManifestProblem {
        kind: ProblemKind::Malformed,
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A string field that must be present and non-empty.
fn required_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<&'a str, ManifestProblem> {
    match object.get(key) {
        None | Some(Value::Null) => Err(malformed(field, "missing")),
        Some(Value::String(s)) if s.is_empty() => Err(malformed(field, "empty")),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(malformed(
            field,
            format!("expected a string, found {}", kind(other)),
        )),
    }
}

impl AptManifest {
    /// Parses and checks the bytes of an apt manifest; a UTF-8 byte-order mark before it
    /// is skipped, as ADU's JSON parser skips it (its samples start with one).
    pub fn parse(bytes: &[u8]) -> Result<AptManifest, ManifestProblem> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| malformed("", format!("not valid JSON: {e}")))?;
        let Value::Object(root) = value else {
            return Err(malformed(
                "",
                format!("expected a JSON object, found {}", kind(&value)),
            ));
        };
        let name = required_str(&root, "name", "name")?.to_owned();
        let version = required_str(&root, "version", "version")?.to_owned();
        let agent_restart_required = match root.get("agentRestartRequired") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(malformed(
                    "agentRestartRequired",
                    format!("expected true or false, found {}", kind(other)),
                ));
            }
        };
        let none = Vec::new();
        let listed = match root.get("packages") {
            None | Some(Value::Null) => &none,
            Some(Value::Array(list)) if list.is_empty() => {
                return Err(malformed("packages", "empty: list at least one package"));
            }
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(malformed(
                    "packages",
                    format!("expected an array, found {}", kind(other)),
                ));
            }
        };
        let packages = listed
            .iter()
            .enumerate()
            .map(|(i, entry)| parse_package(i, entry))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AptManifest {
            name,
            version,
            packages,
            agent_restart_required,
        })
    }

    /// The packages as apt-get's `install` arguments.
    pub fn specs(&self) -> Vec<String> {
        self.packages.iter().map(Package::spec).collect()
    }
}

fn parse_package(index: usize, entry: &Value) -> Result<Package, ManifestProblem> {
    let at = format!("packages[{index}]");
    let Value::Object(object) = entry else {
        return Err(malformed(
            &at,
            format!("expected an object, found {}", kind(entry)),
        ));
    };
    let name_field = format!("{at}.name");
    let name = required_str(object, "name", &name_field)?;
    check_name(name).map_err(|reason| ManifestProblem {
        kind: ProblemKind::UnsafeName,
        field: name_field,
        reason,
    })?;
    let version_field = format!("{at}.version");
    let version = match object.get("version") {
        None | Some(Value::Null) => None,
        Some(_) => {
            let version = required_str(object, "version", &version_field)?;
            check_version(version).map_err(|reason| ManifestProblem {
                kind: ProblemKind::UnsafeVersion,
                field: version_field,
                reason,
            })?;
            Some(version.to_owned())
        }
    };
    Ok(Package {
        name: name.to_owned(),
        version,
    })
}

/// What apt would make of a character that has no place in a plain name or version.
fn misread(c: char) -> Option<&'static str> {
    Some(match c {
        c if c.is_whitespace() => "whitespace, which splits it into several arguments",
        '*' | '?' | '[' | ']' | '~' | '^' | '$' | '!' | '(' | ')' | '|' | '{' | '}' => {
            "a glob or pattern character, which apt would match against other packages"
        }
        '/' => "`/`, which apt reads as a release selector (name/release)",
        '=' => "`=`, which apt reads as a version selector",
        _ => return None,
    })
}

/// Checks a package name: Debian's `[a-z0-9][a-z0-9+.-]*`, optionally `:arch`.
///
/// ```
/// use handrail_apt_handler::manifest::check_name;
/// assert!(check_name("libstdc++6").is_ok());
/// assert!(check_name("python3.11:amd64").is_ok());
/// assert!(check_name("--purge").unwrap_err().contains("option"));
/// assert!(check_name("lib*").unwrap_err().contains("glob"));
/// assert!(check_name("tree/bookworm").unwrap_err().contains("release"));
/// ```
pub fn check_name(name: &str) -> Result<(), String> {
    if name.starts_with('-') {
        return Err(format!(
            "`{name}` starts with `-`, which apt-get would read as an option"
        ));
    }
    if let Some(why) = name.chars().find_map(misread) {
        return Err(format!("`{name}` contains {why}"));
    }
    let (package, arch) = match name.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (name, None),
    };
    let plain = |s: &str, extra: &[char]| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
    };
    if !plain(package, &['+', '-', '.']) || !arch.is_none_or(|a| plain(a, &['-'])) {
        return Err(format!(
            "`{name}` is not a Debian package name (lower-case letters, digits, `+`, `-` and `.`, starting with a letter or digit, optionally followed by `:architecture`)"
        ));
    }
    Ok(())
}

/// Checks a package version: Debian's `[epoch:]upstream[-revision]` characters
/// (`A-Za-z0-9.+~:-`), starting with a letter or digit.
///
/// ```
/// use handrail_apt_handler::manifest::check_version;
/// assert!(check_version("1:2.38.1-5+deb12u1").is_ok());
/// assert!(check_version("1.0~rc1").is_ok());
/// assert!(check_version("1.*").unwrap_err().contains("glob"));
/// assert!(check_version("-1").is_err());
/// ```
pub fn check_version(version: &str) -> Result<(), String> {
    if let Some(why) = version.chars().filter(|c| *c != '~').find_map(misread) {
        return Err(format!("`{version}` contains {why}"));
    }
    let starts_plain = version
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !starts_plain
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | ':' | '-'))
    {
        return Err(format!(
            "`{version}` is not a Debian version (letters, digits, `.`, `+`, `~`, `:` and `-`, starting with a letter or digit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> ManifestProblem {
        AptManifest::parse(text.as_bytes()).expect_err(text)
    }

    #[test]
    fn adu_manifest_parses() {
        let m = AptManifest::parse(
            br#"{
                "name": "contoso-iot-edge",
                "version": "1.0.0",
                "packages": [
                    {"name": "moby-engine", "version": "20.10.5+azure-1"},
                    {"name": "tree"}
                ],
                "agentRestartRequired": true,
                "comment": "unknown fields are ignored, as in ADU"
            }"#,
        )
        .unwrap();
        assert_eq!(m.name, "contoso-iot-edge");
        assert_eq!(m.version, "1.0.0");
        assert!(m.agent_restart_required);
        assert_eq!(m.specs(), ["moby-engine=20.10.5+azure-1", "tree"]);
        assert_eq!(m.packages[1].version, None);
    }

    #[test]
    fn every_malformed_field_is_named() {
        let cases = [
            ("not json", ""),
            ("[1]", ""),
            (r#"{"version":"1","packages":[{"name":"a"}]}"#, "name"),
            (r#"{"name":"n","packages":[{"name":"a"}]}"#, "version"),
            (
                r#"{"name":"n","version":1,"packages":[{"name":"a"}]}"#,
                "version",
            ),
            (r#"{"name":"n","version":"1","packages":[]}"#, "packages"),
            (
                r#"{"name":"n","version":"1","packages":{"a":1}}"#,
                "packages",
            ),
            (
                r#"{"name":"n","version":"1","packages":["a"]}"#,
                "packages[0]",
            ),
            (
                r#"{"name":"n","version":"1","packages":[{"name":"a"},{"version":"1"}]}"#,
                "packages[1].name",
            ),
            (
                r#"{"name":"n","version":"1","packages":[{"name":""}]}"#,
                "packages[0].name",
            ),
            (
                r#"{"name":"n","version":"1","packages":[{"name":"a","version":""}]}"#,
                "packages[0].version",
            ),
            (
                r#"{"name":"n","version":"1","packages":[{"name":"a","version":2}]}"#,
                "packages[0].version",
            ),
            (
                r#"{"name":"n","version":"1","packages":[{"name":"a"}],"agentRestartRequired":"yes"}"#,
                "agentRestartRequired",
            ),
        ];
        for (text, field) in cases {
            let p = problem(text);
            assert_eq!(p.kind, ProblemKind::Malformed, "{text}");
            assert_eq!(p.field, field, "{text}: {p}");
        }
        assert!(problem("not json").to_string().contains("not valid JSON"));
    }

    #[test]
    fn names_and_versions_apt_would_misread_are_refused() {
        for name in [
            "-y",
            "--allow-unauthenticated",
            "tree evil",
            "tree\tx",
            "lib*",
            "?installed",
            "~nfoo",
            "tree/unstable",
            "tree=1.0",
            "Tree",
            ".tree",
            "tree:",
            "tree:AMD64",
            "tree;rm",
        ] {
            let text = format!(
                r#"{{"name":"n","version":"1","packages":[{{"name":"x"}},{{"name":{}}}]}}"#,
                serde_json::to_string(name).unwrap()
            );
            let p = problem(&text);
            assert_eq!(
                (p.kind, p.field.as_str()),
                (ProblemKind::UnsafeName, "packages[1].name"),
                "{name}"
            );
            assert!(p.reason.contains(name), "{p}");
        }
        for version in ["1.*", "1.0 2.0", "-1", "1.0/stable", "=1", "1?", "1,0", ""] {
            let text = format!(
                r#"{{"name":"n","version":"1","packages":[{{"name":"x","version":{}}}]}}"#,
                serde_json::to_string(version).unwrap()
            );
            let p = problem(&text);
            assert_eq!(p.field, "packages[0].version", "{version}");
            let want = if version.is_empty() {
                ProblemKind::Malformed
            } else {
                ProblemKind::UnsafeVersion
            };
            assert_eq!(p.kind, want, "{version}: {p}");
        }
    }

    #[test]
    fn packages_may_be_left_out_but_not_empty() {
        let m = AptManifest::parse(br#"{"name":"n","version":"1"}"#).unwrap();
        assert!(m.packages.is_empty());
        let m = AptManifest::parse(br#"{"name":"n","version":"1","packages":null}"#).unwrap();
        assert!(m.specs().is_empty());
        let p = problem(r#"{"name":"n","version":"1","packages":[]}"#);
        assert_eq!(
            (p.kind, p.field.as_str()),
            (ProblemKind::Malformed, "packages")
        );
    }

    #[test]
    fn real_debian_names_and_versions_pass() {
        for name in ["g++", "libc6", "0ad", "python3.11", "libc6:i386", "x:armhf"] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
        for v in [
            "1.0",
            "2:1.2.3-4",
            "1.0~beta1+dfsg-2ubuntu0.1",
            "20.10.5+azure-1",
        ] {
            assert_eq!(check_version(v), Ok(()), "{v}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_nothing_else() {
        let text = r#"{"name": "demo", "version": "1.0", "packages": [{"name": "hello"}]}"#;
        let mut with_bom = b"\xEF\xBB\xBF".to_vec();
        with_bom.extend_from_slice(text.as_bytes());
        assert_eq!(
            AptManifest::parse(&with_bom).unwrap(),
            AptManifest::parse(text.as_bytes()).unwrap()
        );
        let mut twice = b"\xEF\xBB\xBF".to_vec();
        twice.extend_from_slice(&with_bom);
        assert!(AptManifest::parse(&twice).is_err());
        assert!(AptManifest::parse(b"\xEF\xBB").is_err());
    }
}
