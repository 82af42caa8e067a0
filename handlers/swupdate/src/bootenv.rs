//! The boot environment: a small `key=value` file the bootloader reads (as `fw_printenv`
//! prints U-Boot's environment), holding the slot to boot and the upgrade state.
//!
//! ```
//! use handrail_swupdate_handler::bootenv::BootEnv;
//! let mut env = BootEnv::parse("# U-Boot\nboot_slot=a\nupgrade_available=0\n");
//! assert_eq!(env.get("boot_slot"), Some("a"));
//! env.set("boot_slot", "b");
//! env.set("ustate", "1");
//! env.remove("upgrade_available");
//! assert_eq!(env.to_text(), "# U-Boot\nboot_slot=b\nustate=1\n");
//! ```
//!
//! [`BootEnv::store`] replaces the file atomically: the new text goes to a temporary file
//! beside it, which is then renamed over it, so a power cut leaves the old or the new
//! environment, never half of one. The folder holding the file must be granted to the
//! handler (`capabilities.write`).

use std::path::Path;

/// One line of the file: a variable, or anything else (comments, blank lines), kept as is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Variable(String, String),
    Other(String),
}

/// The variables of a boot environment file, in file order, with its other lines kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootEnv {
    lines: Vec<Line>,
}

impl BootEnv {
    /// Reads `key=value` lines; other lines are kept but carry no variable.
    pub fn parse(text: &str) -> BootEnv {
        let lines = text
            .lines()
            .map(|line| match line.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() && !line.starts_with('#') => {
                    Line::Variable(key.trim().to_owned(), value.trim().to_owned())
                }
                _ => Line::Other(line.to_owned()),
            })
            .collect();
        BootEnv { lines }
    }

    /// Reads the file at `path`.
    pub fn load(path: &Path) -> std::io::Result<BootEnv> {
        std::fs::read_to_string(path).map(|text| BootEnv::parse(&text))
    }

    /// Replaces the file at `path` with this environment (temporary file, then rename).
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::other("the boot environment path names no file"))?;
        let mut temporary_name = name.to_owned();
        temporary_name.push(".handrail-new");
        let temporary = path.with_file_name(temporary_name);
        std::fs::write(&temporary, self.to_text())?;
        std::fs::rename(&temporary, path)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|line| match line {
            Line::Variable(k, v) if k == key => Some(v.as_str()),
            _ => None,
        })
    }

    /// Sets `key` to `value`, in place when it is already set, else at the end.
    pub fn set(&mut self, key: &str, value: &str) {
        let mut found = false;
        for line in &mut self.lines {
            if let Line::Variable(k, v) = line
                && k == key
            {
                *v = value.to_owned();
                found = true;
            }
        }
        if !found {
            self.lines
                .push(Line::Variable(key.to_owned(), value.to_owned()));
        }
    }

    /// Unsets `key`.
    pub fn remove(&mut self, key: &str) {
        self.lines
            .retain(|line| !matches!(line, Line::Variable(k, _) if k == key));
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Variable(k, v) => text.push_str(&format!("{k}={v}\n")),
                Line::Other(other) => {
                    text.push_str(other);
                    text.push('\n');
                }
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_comments_and_replaces_in_place() {
        let mut env = BootEnv::parse("a=1\n\n# note=x\nb = 2\n");
        assert_eq!(env.get("note"), None);
        assert_eq!(env.get("b"), Some("2"));
        env.set("a", "3");
        assert_eq!(env.to_text(), "a=3\n\n# note=x\nb=2\n");
    }

    #[test]
    fn store_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootenv");
        std::fs::write(&path, "boot_slot=a\n").unwrap();
        let mut env = BootEnv::load(&path).unwrap();
        env.set("boot_slot", "b");
        env.store(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "boot_slot=b\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
