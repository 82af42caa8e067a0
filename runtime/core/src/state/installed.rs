//! Installed-criteria records: which steps this device has installed, and when.
//!
//! Appended (fsync'ed) after a step succeeds, never for a step that failed. Handlers that
//! implement `is-installed` stay the authority on whether a step is installed; for those
//! that do not, these records answer it. They are what `handrail status` shows and what
//! an operator audits.
//!
//! A record replaces those of another version of the same update installed by the same
//! handler on the same component (cameras updated from 2.1 to 2.2 no longer list 2.1);
//! when the step that replaced them is rolled back, they are live again.

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

/// The log's record format: version 1 added the version and checksum of every record.
const FORMAT: durable::LogFormat = durable::LogFormat {
    name: "installed-criteria log",
    version: 1,
};

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

/// `provider/name` and version of an update id (`provider/name/version`).
fn update_and_version(update_id: &str) -> (&str, &str) {
    update_id.rsplit_once('/').unwrap_or((update_id, ""))
}

/// True when `new` replaces `old`: another version of the same update, installed by the
/// same handler on the same component.
fn replaces(new: &InstalledCriteria, old: &InstalledCriteria) -> bool {
    let (update, version) = update_and_version(&new.update_id);
    let (old_update, old_version) = update_and_version(&old.update_id);
    update == old_update
        && version != old_version
        && new.handler == old.handler
        && new.component == old.component
}

/// The records as replayed: the live ones, each with the records it replaced (which come
/// back if it is rolled back).
#[derive(Debug, Default)]
struct Replayed {
    live: Vec<Live>,
    /// The deployment of the newest record added: the only one a rollback may still
    /// forget records of.
    newest_deployment: Option<String>,
}

#[derive(Debug)]
struct Live {
    record: InstalledCriteria,
    replaced: Vec<Live>,
}

impl Replayed {
    fn add(&mut self, entry: InstalledCriteria) {
        self.newest_deployment = Some(entry.deployment.clone());
        self.live.retain(|l| {
            !same_key(
                &l.record,
                &entry.installed_criteria,
                &entry.handler,
                entry.component.as_deref(),
            )
        });
        let (replaced, kept): (Vec<Live>, Vec<Live>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|l| replaces(&entry, &l.record));
        self.live = kept;
        self.live.push(Live {
            record: entry,
            replaced,
        });
    }

    fn forget(&mut self, criteria: &str, handler: &str, component: Option<&str>) {
        let Some(at) = self
            .live
            .iter()
            .position(|l| same_key(&l.record, criteria, handler, component))
        else {
            return;
        };
        let gone = self.live.remove(at);
        // Another step of the same update still installed keeps what it replaced.
        if let Some(sibling) = self.live.iter_mut().find(|l| {
            update_and_version(&l.record.update_id) == update_and_version(&gone.record.update_id)
                && l.record.handler == gone.record.handler
                && l.record.component == gone.record.component
        }) {
            sibling.replaced.extend(gone.replaced);
        } else {
            self.live.extend(gone.replaced);
        }
    }

    fn records(&self) -> Vec<InstalledCriteria> {
        self.live.iter().map(|l| l.record.clone()).collect()
    }

    /// Adds that replay to this state, replaced records before their replacements.
    ///
    /// Only the newest deployment's records keep what they replaced: a rollback forgets
    /// the records of the deployment it undoes, and no other, so what an earlier
    /// deployment's records replaced can never be live again (keeping it would grow the
    /// log by a record for every version ever installed).
    fn changes(&self) -> Vec<InstalledCriteria> {
        fn walk(l: &Live, newest: Option<&String>, out: &mut Vec<InstalledCriteria>) {
            if Some(&l.record.deployment) == newest {
                for r in &l.replaced {
                    walk(r, newest, out);
                }
            }
            out.push(l.record.clone());
        }
        let mut out = Vec::new();
        for l in &self.live {
            walk(l, self.newest_deployment.as_ref(), &mut out);
        }
        out
    }
}

impl InstalledRecords {
    pub(super) fn new(path: PathBuf) -> Self {
        InstalledRecords { path }
    }

    /// All live records, oldest first (read without changing the log).
    pub fn load(&self) -> Result<Vec<InstalledCriteria>, StateError> {
        Ok(self.replay()?.records())
    }

    fn replay(&self) -> Result<Replayed, StateError> {
        let lines = match durable::AppendLog::read(&self.path, FORMAT) {
            Ok(lines) => lines,
            Err(durable::LogError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Replayed::default());
            }
            Err(e) => return Err(self.log_error(e)),
        };
        let mut state = Replayed::default();
        for (index, line) in lines.iter().enumerate() {
            let change: Change = serde_json::from_str(line).map_err(|e| StateError::Corrupt {
                path: self.path.clone(),
                message: format!("record {index}: {e}"),
            })?;
            match change {
                Change::Add(entry) => state.add(entry),
                Change::Forget {
                    installed_criteria,
                    handler,
                    component,
                } => state.forget(&installed_criteria, &handler, component.as_deref()),
            }
        }
        Ok(state)
    }

    fn log_error(&self, e: durable::LogError) -> StateError {
        match e {
            durable::LogError::Io(e) => io_err(&self.path)(e),
            durable::LogError::Damaged { index, .. } | durable::LogError::TooNew { index, .. } => {
                StateError::Corrupt {
                    path: self.path.clone(),
                    message: format!("record {index}: {}", e.reason()),
                }
            }
        }
    }

    fn append(&self, change: &Change) -> Result<(), StateError> {
        let line = serde_json::to_string(change).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let mut log = durable::AppendLog::open_for_append(&self.path, FORMAT)
            .map_err(|e| self.log_error(e))?;
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
        let mut text = String::new();
        for entry in self.replay()?.changes() {
            let line =
                serde_json::to_string(&Change::Add(entry)).map_err(|e| StateError::Corrupt {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
            text.push_str(&FORMAT.frame(&line));
            text.push('\n');
        }
        durable::write_atomic(&self.path, text.as_bytes()).map_err(io_err(&self.path))
    }

    /// Removes the record of a step that was rolled back (no-op when absent); the records
    /// it replaced are live again.
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
    /// one; so do those of another version of the same update, see the module docs) with
    /// one durable append.
    pub fn record(&self, entry: InstalledCriteria) -> Result<(), StateError> {
        // Nothing is appended after damage: the log must read back whole.
        self.replay()?;
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

    #[test]
    fn compaction_keeps_what_the_newest_deployment_replaced_and_nothing_older() {
        let dir = tempfile::tempdir().unwrap();
        let records = InstalledRecords::new(dir.path().join("installed.log"));
        // 300 versions of one update, one deployment each: the live record replaces the
        // one before it every time.
        for v in 0..300 {
            records
                .record(InstalledCriteria {
                    deployment: format!("d{v}"),
                    ..version(&format!("fw-{v}"), &format!("c/cam/{v}"), "cam-0")
                })
                .unwrap();
        }
        // What a compaction writes: the live record and the one it replaced.
        let kept = records.replay().unwrap().changes();
        assert_eq!(kept.len(), 2, "compaction keeps old versions: {kept:?}");
        let size = std::fs::metadata(dir.path().join("installed.log"))
            .unwrap()
            .len();
        assert!(size <= COMPACT_OVER_BYTES + 1024, "compacted: {size}");
        // The newest deployment can still be rolled back onto the version before it.
        records.forget("fw-299", "a/b:1", Some("cam-0")).unwrap();
        let live: Vec<_> = records
            .load()
            .unwrap()
            .into_iter()
            .map(|e| e.installed_criteria)
            .collect();
        assert_eq!(live, ["fw-298"]);
    }

    #[test]
    fn damaged_records_are_named_and_nothing_is_appended_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("installed.log");
        let records = InstalledRecords::new(path.clone());
        records.record(entry("a", None)).unwrap();
        records.record(entry("b", None)).unwrap();
        records.record(entry("c", None)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.iter().position(|b| *b == b'a').unwrap();
        bytes[at] = b'A';
        std::fs::write(&path, &bytes).unwrap();
        for err in [
            records.load().unwrap_err(),
            records.record(entry("d", None)).unwrap_err(),
        ] {
            let err = err.to_string();
            assert!(
                err.contains("installed.log")
                    && err.contains("record 0")
                    && err.contains("checksum"),
                "{err}"
            );
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing appended");
    }

    fn version(criteria: &str, update_id: &str, component: &str) -> InstalledCriteria {
        InstalledCriteria {
            update_id: update_id.into(),
            ..entry(criteria, Some(component))
        }
    }

    #[test]
    fn a_later_version_replaces_the_records_of_earlier_ones_until_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let records = InstalledRecords::new(dir.path().join("installed.log"));
        // Two steps of camera 1.1 on cam-0, then 2.1, then 2.2; cam-1 stays at 1.1.
        records
            .record(version("fw-1.1", "c/cam/1.1", "cam-0"))
            .unwrap();
        records
            .record(version("cfg-1.1", "c/cam/1.1", "cam-0"))
            .unwrap();
        records
            .record(version("fw-1.1", "c/cam/1.1", "cam-1"))
            .unwrap();
        records
            .record(version("fw-2.1", "c/cam/2.1", "cam-0"))
            .unwrap();
        records
            .record(version("fw-2.2", "c/cam/2.2", "cam-0"))
            .unwrap();
        records
            .record(version("cfg-2.2", "c/cam/2.2", "cam-0"))
            .unwrap();
        let live = |r: &InstalledRecords| -> Vec<String> {
            let mut v: Vec<String> = r
                .load()
                .unwrap()
                .iter()
                .map(|e| {
                    format!(
                        "{}@{}",
                        e.installed_criteria,
                        e.component.as_deref().unwrap()
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            live(&records),
            ["cfg-2.2@cam-0", "fw-1.1@cam-1", "fw-2.2@cam-0"]
        );
        // Another handler's record of the same update is not replaced.
        let other = InstalledCriteria {
            handler: "x/y:1".into(),
            ..version("other-1.1", "c/cam/1.1", "cam-0")
        };
        records.record(other).unwrap();
        records
            .record(version("fw-2.3", "c/cam/2.3", "cam-1"))
            .unwrap();
        assert!(live(&records).contains(&"other-1.1@cam-0".to_owned()));

        // Rolling 2.2 back (its steps in reverse) makes 2.1 live again, and only 2.1.
        records.forget("cfg-2.2", "a/b:1", Some("cam-0")).unwrap();
        assert_eq!(live(&records)[..2], ["fw-2.2@cam-0", "fw-2.3@cam-1"]);
        records.forget("fw-2.2", "a/b:1", Some("cam-0")).unwrap();
        assert_eq!(
            live(&records),
            ["fw-2.1@cam-0", "fw-2.3@cam-1", "other-1.1@cam-0"]
        );
        // A compacted log keeps what each live record replaced.
        let state = records.replay().unwrap();
        let mut text = String::new();
        for e in state.changes() {
            text.push_str(&serde_json::to_string(&Change::Add(e)).unwrap());
            text.push('\n');
        }
        let compacted = InstalledRecords::new(dir.path().join("compacted.log"));
        std::fs::write(dir.path().join("compacted.log"), text).unwrap();
        assert_eq!(live(&compacted), live(&records));
        compacted.forget("fw-2.1", "a/b:1", Some("cam-0")).unwrap();
        assert_eq!(
            live(&compacted),
            [
                "cfg-1.1@cam-0",
                "fw-1.1@cam-0",
                "fw-2.3@cam-1",
                "other-1.1@cam-0"
            ]
        );
    }
}
