//! Installed-criteria records: which steps this device has installed, and when.
//!
//! Appended (fsync'ed) after a step succeeds, never for a step that failed. Handlers stay
//! the authority on whether a step is installed (their `is-installed` answer); these
//! records are what `handrail status` shows and what an operator audits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{StateError, io_err};
use crate::durable;

/// One installed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledCriteria {
    /// The step's installed criteria.
    pub installed_criteria: String,
    /// The handler that installed it.
    pub handler: String,
    /// The update the step belongs to, `provider/name/version`.
    pub update_id: String,
    /// The component it was installed on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The deployment that installed it.
    pub deployment: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One change to the records, as appended to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Change {
    /// A step succeeded.
    Add(InstalledCriteria),
    /// A step was rolled back.
    Forget {
        #[serde(rename = "installedCriteria")]
        installed_criteria: String,
        handler: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component: Option<String>,
    },
}

/// Log size past which a write compacts it (rewrites only the live records).
const COMPACT_OVER_BYTES: u64 = 256 * 1024;

/// The installed-criteria log: one fsync'ed line per change, so recording a step costs
/// one append however many records exist.
#[derive(Debug, Clone)]
pub struct InstalledRecords {
    path: PathBuf,
}

fn same_key(e: &InstalledCriteria, criteria: &str, handler: &str, component: Option<&str>) -> bool {
    e.installed_criteria == criteria && e.handler == handler && e.component.as_deref() == component
}

impl InstalledRecords {
    pub(super) fn new(path: PathBuf) -> Self {
        InstalledRecords { path }
    }

    /// All live records, oldest first (read without changing the log).
    pub fn load(&self) -> Result<Vec<InstalledCriteria>, StateError> {
        let lines = match durable::AppendLog::read(&self.path) {
            Ok(lines) => lines,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.path)(e)),
        };
        let mut all: Vec<InstalledCriteria> = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let change: Change = serde_json::from_str(line).map_err(|e| StateError::Corrupt {
                path: self.path.clone(),
                message: format!("record {index}: {e}"),
            })?;
            match change {
                Change::Add(entry) => {
                    all.retain(|e| {
                        !same_key(
                            e,
                            &entry.installed_criteria,
                            &entry.handler,
                            entry.component.as_deref(),
                        )
                    });
                    all.push(entry);
                }
                Change::Forget {
                    installed_criteria,
                    handler,
                    component,
                } => all
                    .retain(|e| !same_key(e, &installed_criteria, &handler, component.as_deref())),
            }
        }
        Ok(all)
    }

    fn append(&self, change: &Change) -> Result<(), StateError> {
        let line = serde_json::to_string(change).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let mut log =
            durable::AppendLog::open_for_append(&self.path).map_err(io_err(&self.path))?;
        log.append(&line).map_err(io_err(&self.path))?;
        drop(log);
        self.compact_if_large()
    }

    /// Rewrites the log with only the live records once it has grown large.
    fn compact_if_large(&self) -> Result<(), StateError> {
        let size = std::fs::metadata(&self.path)
            .map_err(io_err(&self.path))?
            .len();
        if size <= COMPACT_OVER_BYTES {
            return Ok(());
        }
        let live = self.load()?;
        let mut text = String::new();
        for entry in live {
            let line =
                serde_json::to_string(&Change::Add(entry)).map_err(|e| StateError::Corrupt {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
            text.push_str(&line);
            text.push('\n');
        }
        durable::write_atomic(&self.path, text.as_bytes()).map_err(io_err(&self.path))
    }

    /// Removes the record of a step that was rolled back (no-op when absent).
    pub fn forget(
        &self,
        installed_criteria: &str,
        handler: &str,
        component: Option<&str>,
    ) -> Result<(), StateError> {
        if !self
            .load()?
            .iter()
            .any(|e| same_key(e, installed_criteria, handler, component))
        {
            return Ok(());
        }
        self.append(&Change::Forget {
            installed_criteria: installed_criteria.to_owned(),
            handler: handler.to_owned(),
            component: component.map(str::to_owned),
        })
    }

    /// Adds or refreshes a record (same criteria, handler and component replace the old
    /// one) with one durable append.
    pub fn record(&self, entry: InstalledCriteria) -> Result<(), StateError> {
        self.append(&Change::Add(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(criteria: &str, component: Option<&str>) -> InstalledCriteria {
        InstalledCriteria {
            installed_criteria: criteria.into(),
            handler: "a/b:1".into(),
            update_id: "p/n/1".into(),
            component: component.map(Into::into),
            deployment: "d".into(),
            at: "2026-11-22T00:00:00Z".into(),
        }
    }

    #[test]
    fn adds_replace_forgets_remove_and_a_large_log_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let records = InstalledRecords::new(dir.path().join("installed.log"));
        assert!(records.load().unwrap().is_empty());
        records.record(entry("x", None)).unwrap();
        records.record(entry("x", Some("cam-0"))).unwrap();
        records.record(entry("x", None)).unwrap();
        assert_eq!(records.load().unwrap().len(), 2);
        records.forget("x", "a/b:1", Some("cam-0")).unwrap();
        assert_eq!(records.load().unwrap(), [entry("x", None)]);
        for _ in 0..2000 {
            records.record(entry("y", None)).unwrap();
        }
        let size = std::fs::metadata(dir.path().join("installed.log"))
            .unwrap()
            .len();
        assert!(size <= COMPACT_OVER_BYTES + 1024, "compacted: {size}");
        assert_eq!(
            records.load().unwrap(),
            [entry("x", None), entry("y", None)]
        );
    }
}
