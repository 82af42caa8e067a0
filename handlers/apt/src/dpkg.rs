//! What dpkg says is on the device: `dpkg-query -W -f='${Status}\t${Version}\n' name`.
//!
//! Backup reads what is installed before the step installs anything, and restore what
//! a failed install left, from dpkg itself, so a package removed or replaced behind the
//! handler's back is seen as such.
//!
//! ```
//! use handrail_apt_handler::dpkg::{PackageState, parse_query_output};
//! let states = parse_query_output("install ok installed\t2.0\n").unwrap();
//! assert_eq!(states, [PackageState { status: "installed".into(), version: "2.0".into() }]);
//! assert!(states[0].is_installed());
//! ```

/// The `dpkg-query` format the handler reads: the status triple and the version.
pub const QUERY_FORMAT: &str = "${Status}\t${Version}\n";

/// dpkg-query's exit code when no installed or known package matches.
pub const NOT_FOUND_EXIT: i32 = 1;

/// One line of dpkg-query's answer (one per architecture a package is known for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageState {
    /// The package's state, the last word of `${Status}`: `installed`, `half-configured`,
    /// `unpacked`, `config-files`, `not-installed`, …
    pub status: String,
    /// The version dpkg has for it (empty when it has none).
    pub version: String,
}

impl PackageState {
    /// True when the package is fully installed and configured.
    pub fn is_installed(&self) -> bool {
        self.status == "installed"
    }

    /// True when the package has files on the device beyond its configuration files:
    /// fully installed, or left half-way by a failed install.
    pub fn is_present(&self) -> bool {
        !matches!(self.status.as_str(), "not-installed" | "config-files")
    }
}

/// The version of a package that is fully installed, if any.
pub fn installed_version(states: &[PackageState]) -> Option<&str> {
    states
        .iter()
        .find(|s| s.is_installed())
        .map(|s| s.version.as_str())
}

/// Parses dpkg-query's standard output in [`QUERY_FORMAT`].
pub fn parse_query_output(stdout: &str) -> Result<Vec<PackageState>, String> {
    stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (status, version) = line
                .split_once('\t')
                .ok_or_else(|| format!("unexpected dpkg-query output line `{line}`"))?;
            let state = status
                .split_whitespace()
                .nth(2)
                .ok_or_else(|| format!("unexpected dpkg status `{status}`"))?;
            Ok(PackageState {
                status: state.to_owned(),
                version: version.trim().to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_of_a_failed_install_and_of_a_removed_package() {
        let states = parse_query_output(
            "install ok half-configured\t1.0\ndeinstall ok config-files\t0.9\nunknown ok not-installed\t\n",
        )
        .unwrap();
        assert_eq!(states.len(), 3);
        assert!(!states[0].is_installed() && states[0].is_present());
        assert!(!states[1].is_present());
        assert!(!states[2].is_present());
        assert_eq!(states[2].version, "");
        assert_eq!(installed_version(&states), None);
    }

    #[test]
    fn one_line_per_architecture() {
        let states =
            parse_query_output("install ok installed\t2.36-9\ninstall ok installed\t2.36-9\n")
                .unwrap();
        assert_eq!(installed_version(&states), Some("2.36-9"));
        assert!(parse_query_output("").unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_query_output("no tab here\n").is_err());
        assert!(parse_query_output("installed\t1.0\n").is_err());
    }
}
