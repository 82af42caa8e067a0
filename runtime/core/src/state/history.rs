//! Deployment history: one JSON report per finished deployment, bounded in number.
//!
//! Entries are files named `<sequence>-<deployment id>.json` so listing is ordering;
//! writing one is atomic, and once more than [`History::LIMIT`] exist the oldest go.
//!
//! An entry that cannot be read back (damaged on disk) costs only itself: reading the
//! history passes over it with a warning naming the file ([`History::damaged`] lists
//! them), and the next append sets it aside as `<name>.damaged`, kept for inspection.
//!
//! Each entry carries its format version ([`FORMAT`]). One of a newer version, written by
//! a newer binary before a self-update was switched back, is passed over with a warning
//! saying so, and kept: it is not damaged, and the newer binary reads it again.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{StateError, io_err};
use crate::durable;
use crate::report::Report;

/// The format version of the history entries this binary writes, the newest it reads.
/// Entries written before versions have none and read as version 0.
pub const FORMAT: u32 = 1;

/// One finished deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The entry's format version ([`FORMAT`] when written by this binary).
    #[serde(default)]
    pub format: u32,
    /// Sequence number, increasing.
    pub sequence: u64,
    /// The report of the deployment.
    pub report: Report,
}

/// The history folder.
#[derive(Debug, Clone)]
pub struct History {
    dir: PathBuf,
}

impl History {
    /// How many entries are kept.
    pub const LIMIT: usize = 200;

    pub(super) fn new(dir: PathBuf) -> Self {
        History { dir }
    }

    fn files(&self) -> Result<Vec<(u64, PathBuf)>, StateError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut files: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let seq = name
                    .strip_suffix(".json")?
                    .split_once('-')?
                    .0
                    .parse()
                    .ok()?;
                Some((seq, e.path()))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// All entries that can be read, oldest first; a damaged one is passed over with a
    /// warning naming it.
    pub fn load(&self) -> Result<Vec<HistoryEntry>, StateError> {
        let mut entries = Vec::new();
        for (_, path) in self.files()? {
            match read_entry(&path)? {
                Ok(entry) => entries.push(entry),
                Err(unreadable) => unreadable.warn(),
            }
        }
        Ok(entries)
    }

    /// The entries that cannot be read back, each with what is wrong with it.
    pub fn damaged(&self) -> Result<Vec<StateError>, StateError> {
        let mut damaged = Vec::new();
        for (_, path) in self.files()? {
            if let Err(Unreadable::Damaged(damage)) = read_entry(&path)? {
                damaged.push(damage);
            }
        }
        Ok(damaged)
    }

    /// The recorded entry of a deployment id, if any (a damaged one counts as none, with a
    /// warning).
    pub fn find(&self, deployment: &str) -> Result<Option<HistoryEntry>, StateError> {
        // The newest run of the id: a refused or retried deployment runs again.
        let suffix = format!("-{deployment}.json");
        let Some((_, path)) = self
            .files()?
            .into_iter()
            .rev()
            .find(|(_, p)| p.to_string_lossy().ends_with(&suffix))
        else {
            return Ok(None);
        };
        Ok(match read_entry(&path)? {
            Ok(entry) => Some(entry),
            Err(unreadable) => {
                unreadable.warn();
                None
            }
        })
    }

    /// Renames every damaged entry to `<name>.damaged`, out of the history's way.
    fn set_aside_damaged(&self) -> Result<(), StateError> {
        for damage in self.damaged()? {
            if let StateError::Corrupt { path, .. } = &damage {
                let mut aside = path.clone().into_os_string();
                aside.push(".damaged");
                durable::rename(path, std::path::Path::new(&aside)).map_err(io_err(path))?;
                tracing::warn!("{damage}; set aside as {}", aside.to_string_lossy());
            }
        }
        Ok(())
    }

    /// True when a report for this deployment is already recorded.
    pub fn contains(&self, deployment: &str) -> Result<bool, StateError> {
        Ok(self.find(deployment)?.is_some())
    }

    /// Appends a report (idempotent: when the newest entry of its deployment id is this
    /// very report, as when a crash came between recording it and retiring the journal,
    /// nothing is added) and trims the oldest entries.
    pub fn append(&self, report: &Report) -> Result<(), StateError> {
        self.set_aside_damaged()?;
        if self
            .find(&report.deployment)?
            .is_some_and(|e| e.report == *report)
        {
            return Ok(());
        }
        durable::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let files = self.files()?;
        let sequence = files.last().map(|(s, _)| s + 1).unwrap_or(1);
        let entry = HistoryEntry {
            format: FORMAT,
            sequence,
            report: report.clone(),
        };
        let path = self
            .dir
            .join(format!("{sequence:08}-{}.json", report.deployment));
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        durable::write_atomic(&path, &bytes).map_err(io_err(&path))?;
        let excess = (files.len() + 1).saturating_sub(Self::LIMIT);
        for (_, old) in files.into_iter().take(excess) {
            durable::remove_file(&old).map_err(io_err(&old))?;
        }
        Ok(())
    }
}

/// Why an entry cannot be read.
#[derive(Debug)]
enum Unreadable {
    /// Not JSON, or not an entry.
    Damaged(StateError),
    /// Of a newer format version than this binary reads.
    Newer(StateError),
}

impl Unreadable {
    fn warn(&self) {
        match self {
            Unreadable::Damaged(e) => tracing::warn!("{e}; passed over"),
            Unreadable::Newer(e) => tracing::warn!("{e}; passed over and kept"),
        }
    }
}

/// One entry read back: `Err` inside when the file is damaged (not JSON, not an entry)
/// or newer than this binary reads, the outer error when it cannot be read at all.
fn read_entry(path: &std::path::Path) -> Result<Result<HistoryEntry, Unreadable>, StateError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let damaged = |e: serde_json::Error| {
        Unreadable::Damaged(StateError::Corrupt {
            path: path.to_owned(),
            message: format!("a damaged history entry: {e}"),
        })
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return Ok(Err(damaged(e))),
    };
    if let Some(version) = value.get("format").and_then(serde_json::Value::as_u64)
        && version > u64::from(FORMAT)
    {
        return Ok(Err(Unreadable::Newer(StateError::Corrupt {
            path: path.to_owned(),
            message: format!(
                "a history entry in format version {version}, written by a newer handrail; this one reads versions up to {FORMAT}"
            ),
        })));
    }
    Ok(serde_json::from_value(value).map_err(damaged))
}
