//! Installed-criteria records: which steps this device has installed, and when.
//!
//! Written (atomically) after a step succeeds, never for a step that failed. Handlers stay
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

/// The installed-criteria file.
#[derive(Debug, Clone)]
pub struct InstalledRecords {
    path: PathBuf,
}

impl InstalledRecords {
    pub(super) fn new(path: PathBuf) -> Self {
        InstalledRecords { path }
    }

    /// All records, oldest first.
    pub fn load(&self) -> Result<Vec<InstalledCriteria>, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }

    /// Removes the record of a step that was rolled back (no-op when absent).
    pub fn forget(
        &self,
        installed_criteria: &str,
        handler: &str,
        component: Option<&str>,
    ) -> Result<(), StateError> {
        let mut all = self.load()?;
        let before = all.len();
        all.retain(|e| {
            !(e.installed_criteria == installed_criteria
                && e.handler == handler
                && e.component.as_deref() == component)
        });
        if all.len() == before {
            return Ok(());
        }
        self.write(&all)
    }

    fn write(&self, all: &[InstalledCriteria]) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(all).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        durable::write_atomic(&self.path, &bytes).map_err(io_err(&self.path))
    }

    /// Adds or refreshes a record (same criteria, handler and component replace the old
    /// one) and writes the file durably.
    pub fn record(&self, entry: InstalledCriteria) -> Result<(), StateError> {
        let mut all = self.load()?;
        all.retain(|e| {
            !(e.installed_criteria == entry.installed_criteria
                && e.handler == entry.handler
                && e.component == entry.component)
        });
        all.push(entry);
        self.write(&all)
    }
}
