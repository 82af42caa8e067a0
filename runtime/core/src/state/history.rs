//! Deployment history: one JSON report per finished deployment, bounded in number.
//!
//! Entries are files named `<sequence>-<deployment id>.json` so listing is ordering;
//! writing one is atomic, and once more than [`History::LIMIT`] exist the oldest go.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{StateError, io_err};
use crate::durable;
use crate::report::Report;

/// One finished deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
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

    /// All entries, oldest first.
    pub fn load(&self) -> Result<Vec<HistoryEntry>, StateError> {
        self.files()?
            .into_iter()
            .map(|(_, path)| {
                let bytes = fs::read(&path).map_err(io_err(&path))?;
                serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                    path: path.clone(),
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// The recorded entry of a deployment id, if any.
    pub fn find(&self, deployment: &str) -> Result<Option<HistoryEntry>, StateError> {
        let suffix = format!("-{deployment}.json");
        let Some((_, path)) = self
            .files()?
            .into_iter()
            .find(|(_, p)| p.to_string_lossy().ends_with(&suffix))
        else {
            return Ok(None);
        };
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })
    }

    /// True when a report for this deployment is already recorded.
    pub fn contains(&self, deployment: &str) -> Result<bool, StateError> {
        Ok(self.find(deployment)?.is_some())
    }

    /// Appends a report (idempotent per deployment id) and trims the oldest entries.
    pub fn append(&self, report: &Report) -> Result<(), StateError> {
        if self.contains(&report.deployment)? {
            return Ok(());
        }
        durable::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let files = self.files()?;
        let sequence = files.last().map(|(s, _)| s + 1).unwrap_or(1);
        let entry = HistoryEntry {
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
