//! apt-get's command lines, in ADU's form, and what of apt's output a failure reports.
//!
//! Every call is `apt-get <config.apt_options…> <arguments…>`:
//!
//! ```
//! use handrail_apt_handler::apt;
//! let options = vec!["-o".to_owned(), "Acquire::Retries=3".to_owned()];
//! let specs = vec!["tree=2.1.0-1".to_owned()];
//! assert_eq!(
//!     apt::download(&options, &specs),
//!     ["-o", "Acquire::Retries=3", "-y", "--allow-downgrades", "--download-only", "install", "tree=2.1.0-1"]
//! );
//! assert_eq!(apt::update(&[]), ["update"]);
//! ```

/// The apt-get binary; the registration must grant it.
pub const APT_GET: &str = "/usr/bin/apt-get";

/// The dpkg-query binary; the registration must grant it.
pub const DPKG_QUERY: &str = "/usr/bin/dpkg-query";

/// Most lines of apt's output a failure's details carry.
pub const MAX_DETAIL_LINES: usize = 12;

/// Most characters of apt's output a failure's details carry.
pub const MAX_DETAIL_CHARS: usize = 2048;

/// Keep the configuration files the device has, and take the package's default for new
/// ones, without asking (ADU's options).
const DPKG_KEEP_CONFIG: [&str; 4] = [
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
];

fn with_options(options: &[String], rest: &[&str], packages: &[String]) -> Vec<String> {
    options
        .iter()
        .cloned()
        .chain(rest.iter().map(|s| (*s).to_owned()))
        .chain(packages.iter().cloned())
        .collect()
}

/// `apt-get update`: refresh the package lists.
pub fn update(options: &[String]) -> Vec<String> {
    with_options(options, &["update"], &[])
}

/// `apt-get -y --allow-downgrades --download-only install <specs>`.
pub fn download(options: &[String], specs: &[String]) -> Vec<String> {
    with_options(
        options,
        &["-y", "--allow-downgrades", "--download-only", "install"],
        specs,
    )
}

/// `apt-get -y --allow-downgrades -o Dpkg::Options::=--force-confdef
/// -o Dpkg::Options::=--force-confold install <specs>`.
///
/// ```
/// let args = handrail_apt_handler::apt::install(&[], &["tree=2.1.0-1".to_owned()]);
/// assert_eq!(args.join(" "), "-y --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install tree=2.1.0-1");
/// ```
pub fn install(options: &[String], specs: &[String]) -> Vec<String> {
    let mut rest = vec!["-y", "--allow-downgrades"];
    rest.extend(DPKG_KEEP_CONFIG);
    rest.push("install");
    with_options(options, &rest, specs)
}

/// `apt-get -y remove <names>`.
pub fn remove(options: &[String], names: &[String]) -> Vec<String> {
    with_options(options, &["-y", "remove"], names)
}

/// The lines of apt's output that say what went wrong, for a failure's details: the
/// last lines of its standard error, and the lines of its standard output that carry
/// dpkg's errors (dpkg reports a failed maintainer script there, under apt), capped at
/// [`MAX_DETAIL_LINES`] lines and [`MAX_DETAIL_CHARS`] characters, the newest kept.
///
/// ```
/// let out = "Setting up x (1.0) ...\ndpkg: error processing package x (--configure):\n installed x package post-installation script subprocess returned error exit status 1\nErrors were encountered while processing:\n x\n";
/// let err = "E: Sub-process /usr/bin/dpkg returned an error code (1)\n";
/// let summary = handrail_apt_handler::apt::summary(out.as_bytes(), err.as_bytes());
/// assert!(summary.starts_with("dpkg: error processing package x"));
/// assert!(summary.ends_with("E: Sub-process /usr/bin/dpkg returned an error code (1)"));
/// assert!(!summary.contains("Setting up"));
/// ```
pub fn summary(stdout: &[u8], stderr: &[u8]) -> String {
    let stdout = String::from_utf8_lossy(stdout);
    let stderr = String::from_utf8_lossy(stderr);
    let mut lines: Vec<&str> = dpkg_errors(&stdout);
    lines.extend(
        stderr
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty()),
    );
    let start = lines.len().saturating_sub(MAX_DETAIL_LINES);
    let text = lines[start..].join("\n");
    if text.chars().count() <= MAX_DETAIL_CHARS {
        return text;
    }
    let skip = text.chars().count() - MAX_DETAIL_CHARS;
    format!("…{}", text.chars().skip(skip + 1).collect::<String>())
}

/// dpkg's error reports in apt's standard output: `dpkg: error …`, `E: …`,
/// `Errors were encountered …` and the indented lines that continue them.
fn dpkg_errors(stdout: &str) -> Vec<&str> {
    let mut kept = Vec::new();
    let mut continuing = false;
    for line in stdout.lines().map(str::trim_end) {
        let starts_report = line.starts_with("dpkg: error")
            || line.starts_with("dpkg: dependency problems")
            || line.starts_with("E: ")
            || line.starts_with("Errors were encountered");
        if starts_report || (continuing && line.starts_with(' ')) {
            kept.push(line);
            continuing = true;
        } else {
            continuing = false;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_right_after_apt_get() {
        let options = vec!["-o".to_owned(), "Dir::State::Lists=/l".to_owned()];
        let specs = vec!["a=1".to_owned(), "b".to_owned()];
        assert_eq!(update(&options), ["-o", "Dir::State::Lists=/l", "update"]);
        assert_eq!(
            install(&options, &specs),
            [
                "-o",
                "Dir::State::Lists=/l",
                "-y",
                "--allow-downgrades",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
                "install",
                "a=1",
                "b"
            ]
        );
        assert_eq!(
            remove(&options, &["b".to_owned()]),
            ["-o", "Dir::State::Lists=/l", "-y", "remove", "b"]
        );
    }

    #[test]
    fn summary_keeps_the_newest_lines_and_caps_them() {
        let err: String = (0..40).map(|i| format!("E: problem {i}\n")).collect();
        let s = summary(b"", err.as_bytes());
        assert_eq!(s.lines().count(), MAX_DETAIL_LINES);
        assert!(s.ends_with("E: problem 39"));
        let long = format!("E: {}\n", "x".repeat(10_000));
        let s = summary(b"", long.as_bytes());
        assert_eq!(s.chars().count(), MAX_DETAIL_CHARS);
        assert!(s.starts_with('…'));
        assert_eq!(summary(b"Reading package lists...\n", b""), "");
    }
}
