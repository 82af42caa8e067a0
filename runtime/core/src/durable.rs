//! Durable writes: the only way Handrail changes its state on disk.
//!
//! Two primitives:
//! - [`write_atomic`]: replace a whole file (temporary file in the same folder, write,
//!   fsync, rename over the target, fsync the folder), so a reader sees the old or the new
//!   content, never a mix;
//! - [`AppendLog`]: append one newline-terminated record to a log and fsync it; a torn
//!   last record (a crash or power cut mid-append) is dropped on [`AppendLog::open`],
//!   with a warning. Every record carries its log's format version and a checksum (see
//!   [`LogFormat`]): a damaged record before the last one is an error naming the file and
//!   the record, never read as if it were whole. A record may
//!   also be appended *deferred* ([`AppendLog::append_deferred`]): written at once,
//!   made durable by the log's next fsync (one fdatasync covers every earlier write of
//!   the file). That is for records nothing outside the log acts on before the next
//!   synced append or [`AppendLog::sync`]: a power cut can lose such a record only
//!   together with everything that followed it, which is what a cut a moment earlier
//!   would have left.
//!
//! Every durable write is also a numbered *journal point*. Setting
//! `HANDRAIL_CRASH_AFTER_WRITE=N` makes the process kill itself with SIGKILL right after
//! its Nth durable write; the crash-matrix tests use it to stop a deployment at every
//! point and prove that `resume` ends where an uninterrupted run does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Environment variable naming the durable write after which the process kills itself.
pub const CRASH_AFTER_WRITE_ENV: &str = "HANDRAIL_CRASH_AFTER_WRITE";

static WRITES: AtomicU64 = AtomicU64::new(0);
static SYNCS: AtomicU64 = AtomicU64::new(0);

fn crash_after() -> Option<u64> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    *AT.get_or_init(|| {
        std::env::var(CRASH_AFTER_WRITE_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Counts one durable write and, when the crash hook asks for it, dies here.
fn journal_point() {
    let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
    if crash_after() == Some(n) {
        // SIGKILL, not abort: no destructor, no flush, exactly what a power cut leaves.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// How many durable writes this process has made.
pub fn writes_so_far() -> u64 {
    WRITES.load(Ordering::SeqCst)
}

/// How many fsyncs (of files and folders) this process has made through this module;
/// the benchmark compares a deployment with as many bare fsync'ed appends.
pub fn syncs_so_far() -> u64 {
    SYNCS.load(Ordering::Relaxed)
}

/// fsyncs a file's data and metadata.
pub fn sync_file(file: &File) -> io::Result<()> {
    SYNCS.fetch_add(1, Ordering::Relaxed);
    file.sync_all()
}

/// fsyncs a file's data (and the metadata needed to read it back).
fn sync_data(file: &File) -> io::Result<()> {
    SYNCS.fetch_add(1, Ordering::Relaxed);
    file.sync_data()
}

/// fsyncs a folder so a rename or creation inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    sync_file(&File::open(dir)?)
}

/// The folder that holds `path`: its parent, `.` for a bare name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Creates a folder (and parents) and makes its entry (and theirs) durable.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    for parent in create_dir_all_deferred(dir)? {
        sync_dir(&parent)?;
    }
    Ok(())
}

/// Creates a folder and any missing parents like [`create_dir_all`], without making
/// them durable yet: returns the folders to [`sync_dir`] for that, outermost first (the
/// parent of each folder it made). Empty when `dir` already existed.
pub fn create_dir_all_deferred(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    let mut at = dir;
    while !at.is_dir() {
        made.push(at);
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    if made.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(dir)?;
    Ok(made
        .iter()
        .rev()
        .map(|d| parent_dir(d).to_owned())
        .collect())
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    sync_file(tmp.as_file())?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)?;
    journal_point();
    Ok(())
}

/// Renames a file durably (both in the same folder).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_dir(parent_dir(to))?;
    journal_point();
    Ok(())
}

/// Removes a file durably (a missing file is fine).
pub fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent_dir(path))?;
    journal_point();
    Ok(())
}

/// The format of one kind of append-only log: its name, for messages, and the version of
/// the records this binary writes, which is also the newest it reads.
///
/// A record is written as one line: the record's text (JSON, which never holds a raw tab
/// or newline), a tab, `v<version>`, a space and a checksum, 16 hex digits of the SHA-256
/// of everything before that space:
///
/// ```text
/// {"event":"resumed","at":"2026-12-03T10:00:00Z"}\tv1 5f1c0e7a9b2d3c4e
/// ```
///
/// A line with no tab is a record of the format before versions (version 0, no
/// checksum), as a release before this one wrote it; such lines are read only before
/// the first framed one, so a damaged frame never passes for an old record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFormat {
    /// What the log is, for messages: `journal`, `installed-criteria log`.
    pub name: &'static str,
    /// The version this binary writes and the newest it reads.
    pub version: u32,
}

/// Why a log's records cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A complete record before the last one fails its checksum or has no valid frame.
    #[error("record {index} is damaged: {reason}")]
    Damaged {
        /// 0-based record number.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A record of a format version newer than this binary reads.
    #[error(
        "record {index} is in {name} format version {version}, written by a newer handrail; this one reads versions up to {supported}"
    )]
    TooNew {
        /// 0-based record number.
        index: usize,
        /// The log's name.
        name: &'static str,
        /// The record's version.
        version: u32,
        /// The newest version this binary reads.
        supported: u32,
    },
}

impl LogError {
    /// What is wrong with the record, without its number (for errors that name it).
    pub fn reason(&self) -> String {
        match self {
            LogError::Io(e) => e.to_string(),
            LogError::Damaged { reason, .. } => format!("it is damaged: {reason}"),
            LogError::TooNew {
                name,
                version,
                supported,
                ..
            } => format!(
                "it is in {name} format version {version}, written by a newer handrail; this one reads versions up to {supported}"
            ),
        }
    }
}

impl LogFormat {
    /// `body` framed as one line of this log, newline not included.
    pub fn frame(&self, body: &str) -> String {
        debug_assert!(!body.contains('\n') && !body.contains('\t'));
        let mut line = format!("{body}\tv{}", self.version);
        let sum = checksum(line.as_bytes());
        line.push(' ');
        line.push_str(&sum);
        line
    }

    /// The record a line holds: its body, or why it cannot be read. `framed_seen` says
    /// whether an earlier line of the log was framed (and becomes true once one is).
    fn unframe(
        &self,
        index: usize,
        line: &[u8],
        framed_seen: &mut bool,
    ) -> Result<String, LogError> {
        let damaged = |reason: &str| LogError::Damaged {
            index,
            reason: reason.to_owned(),
        };
        let Some(tab) = line.iter().rposition(|b| *b == b'\t') else {
            if *framed_seen {
                return Err(damaged(
                    "it has no version and checksum, unlike the records before it",
                ));
            }
            // Every record is a JSON object: a framed line whose tab was damaged ends in
            // its checksum instead.
            if line.last() != Some(&b'}') {
                return Err(damaged("it has no version and checksum"));
            }
            return String::from_utf8(line.to_vec()).map_err(|_| damaged("it is not UTF-8 text"));
        };
        let (body, trailer) = (&line[..tab], &line[tab + 1..]);
        let frame = std::str::from_utf8(trailer)
            .ok()
            .and_then(|t| t.strip_prefix('v')?.split_once(' '))
            .and_then(|(v, sum)| Some((v.parse::<u32>().ok()?, sum)))
            .filter(|(_, sum)| sum.len() == 16);
        let Some((version, sum)) = frame else {
            return Err(damaged("its version and checksum cannot be read"));
        };
        let space = line.len() - sum.len() - 1;
        if checksum(&line[..space]) != sum {
            return Err(damaged(
                "its checksum does not match its content (the file was changed, or the disk returned other data than was written)",
            ));
        }
        if version > self.version {
            return Err(LogError::TooNew {
                index,
                name: self.name,
                version,
                supported: self.version,
            });
        }
        *framed_seen = true;
        String::from_utf8(body.to_vec()).map_err(|_| damaged("it is not UTF-8 text"))
    }

    /// The records of a log's bytes, and the length of the part that holds them: a torn
    /// last line (no newline, or damaged) is left out, with a warning naming `path`.
    fn records(&self, path: &Path, bytes: &[u8]) -> Result<(Vec<String>, usize), LogError> {
        let mut records = Vec::new();
        let mut framed_seen = false;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut at = 0;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            // The last complete line: a power cut may have torn it too.
            let last = at + line.len() == complete;
            let Some(content) = line.strip_suffix(b"\n") else {
                warn_torn(path, self.name, line.len(), "it has no end of line");
                break;
            };
            if !content.is_empty() {
                match self.unframe(records.len(), content, &mut framed_seen) {
                    Ok(record) => records.push(record),
                    Err(LogError::Damaged { reason, .. }) if last => {
                        warn_torn(path, self.name, line.len(), &reason);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            at += line.len();
        }
        Ok((records, at))
    }
}

fn warn_torn(path: &Path, name: &str, len: usize, reason: &str) {
    tracing::warn!(
        "{}: the {name}'s last record ({len} bytes) is torn, as a crash or power cut during its write leaves it: {reason}; it is dropped and the records before it are kept",
        path.display()
    );
}

/// 16 hex digits of the SHA-256 of `bytes`.
fn checksum(bytes: &[u8]) -> String {
    crate::registry::hex(&Sha256::digest(bytes)[..8])
}

/// Opens a log file to read and append, creating it (durably: the file and its folder
/// entry) when it is missing.
fn open_log_file(path: &Path) -> io::Result<File> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    if !existed {
        sync_file(&file)?;
        sync_dir(parent_dir(path))?;
    }
    Ok(file)
}

/// An append-only log of newline-terminated, framed records (see [`LogFormat`]), each
/// fsync'ed as it is appended (or, deferred, with the next one).
#[derive(Debug)]
pub struct AppendLog {
    path: PathBuf,
    file: File,
    format: LogFormat,
    /// Records were written since the last fsync.
    unsynced: bool,
}

impl AppendLog {
    /// Opens (creating if needed) the log, drops a torn last record, and returns the
    /// complete records in order.
    pub fn open(path: &Path, format: LogFormat) -> Result<(AppendLog, Vec<String>), LogError> {
        let mut file = open_log_file(path)?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        let (records, good_len) = format.records(path, &bytes)?;
        if bytes.len() != good_len {
            file.set_len(good_len as u64)?;
            sync_file(&file)?;
        }
        Ok((
            AppendLog {
                path: path.to_owned(),
                file,
                format,
                unsynced: false,
            },
            records,
        ))
    }

    /// Opens (creating if needed) the log to append to, without reading its records:
    /// only its last byte is read, so appending to a long log costs the same as to a
    /// short one. A torn last record is dropped as by [`AppendLog::open`].
    pub fn open_for_append(path: &Path, format: LogFormat) -> Result<AppendLog, LogError> {
        use std::os::unix::fs::FileExt;
        let file = open_log_file(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1)?;
            if last[0] != b'\n' {
                drop(file);
                return AppendLog::open(path, format).map(|(log, _)| log);
            }
        }
        Ok(AppendLog {
            path: path.to_owned(),
            file,
            format,
            unsynced: false,
        })
    }

    /// Reads the complete records of a log without changing it (a torn last record is
    /// skipped, with a warning, not truncated).
    pub fn read(path: &Path, format: LogFormat) -> Result<Vec<String>, LogError> {
        let bytes = fs::read(path)?;
        Ok(format.records(path, &bytes)?.0)
    }

    /// Appends one record (must not contain a newline or a tab) and fsyncs it, with
    /// every deferred record before it.
    pub fn append(&mut self, record: &str) -> io::Result<()> {
        self.write_record(record)?;
        sync_data(&self.file)?;
        self.unsynced = false;
        journal_point();
        Ok(())
    }

    /// Appends one record without an fsync of its own: it is durable once the next
    /// [`AppendLog::append`] or [`AppendLog::sync`] returns. Readers (another process
    /// included) see it at once.
    pub fn append_deferred(&mut self, record: &str) -> io::Result<()> {
        self.write_record(record)?;
        self.unsynced = true;
        journal_point();
        Ok(())
    }

    /// Makes every deferred record durable (nothing to do when there is none).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            sync_data(&self.file)?;
            self.unsynced = false;
        }
        Ok(())
    }

    fn write_record(&mut self, record: &str) -> io::Result<()> {
        let mut line = self.format.frame(record);
        line.push('\n');
        self.file.write_all(line.as_bytes())
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_folder_creation_names_the_parent_of_every_folder_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        assert_eq!(
            create_dir_all_deferred(&deep).unwrap(),
            [
                dir.path().to_owned(),
                dir.path().join("a"),
                dir.path().join("a/b")
            ]
        );
        assert!(deep.is_dir());
        assert!(create_dir_all_deferred(&deep).unwrap().is_empty());
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(create_dir_all_deferred(&file.join("d")).is_err());
    }

    const LOG: LogFormat = LogFormat {
        name: "test log",
        version: 1,
    };

    #[test]
    fn torn_tail_is_dropped_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        {
            let (mut log, recs) = AppendLog::open(&p, LOG).unwrap();
            assert!(recs.is_empty());
            log.append("one").unwrap();
            log.append("two").unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"half").unwrap();
        drop(f);
        let (mut log, recs) = AppendLog::open(&p, LOG).unwrap();
        assert_eq!(recs, ["one", "two"]);
        log.append("three").unwrap();
        let (_, recs) = AppendLog::open(&p, LOG).unwrap();
        assert_eq!(recs, ["one", "two", "three"]);
    }

    #[test]
    fn opening_to_append_drops_a_torn_tail_without_reading_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut log = AppendLog::open_for_append(&p, LOG).unwrap();
        log.append("one").unwrap();
        drop(log);
        AppendLog::open_for_append(&p, LOG)
            .unwrap()
            .append("two")
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"half").unwrap();
        drop(f);
        AppendLog::open_for_append(&p, LOG)
            .unwrap()
            .append("three")
            .unwrap();
        assert_eq!(AppendLog::read(&p, LOG).unwrap(), ["one", "two", "three"]);
    }

    #[test]
    fn deferred_records_are_read_at_once_and_synced_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let (mut log, _) = AppendLog::open(&p, LOG).unwrap();
        let syncs = syncs_so_far();
        log.append_deferred("one").unwrap();
        log.append_deferred("two").unwrap();
        assert!(log.unsynced);
        assert_eq!(AppendLog::read(&p, LOG).unwrap(), ["one", "two"]);
        log.append("three").unwrap();
        assert!(!log.unsynced, "the synced append covers the deferred ones");
        log.sync().unwrap();
        log.append_deferred("four").unwrap();
        log.sync().unwrap();
        assert!(!log.unsynced);
        // Tests in this binary run in parallel: at least this log's two fsyncs counted.
        assert!(syncs_so_far() >= syncs + 2);
        let (_, recs) = AppendLog::open(&p, LOG).unwrap();
        assert_eq!(recs, ["one", "two", "three", "four"]);
    }

    /// The log's bytes after appending `records`.
    fn log_of(dir: &Path, records: &[&str]) -> (PathBuf, Vec<u8>) {
        let p = dir.join("log");
        let _ = fs::remove_file(&p);
        let (mut log, _) = AppendLog::open(&p, LOG).unwrap();
        for r in records {
            log.append(r).unwrap();
        }
        (p.clone(), fs::read(&p).unwrap())
    }

    #[test]
    fn every_record_carries_its_version_and_a_checksum_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (_, bytes) = log_of(dir.path(), &[r#"{"a":1}"#]);
        let text = String::from_utf8(bytes).unwrap();
        let (body, trailer) = text.trim_end().split_once('\t').unwrap();
        assert_eq!(body, r#"{"a":1}"#);
        let (version, sum) = trailer.split_once(' ').unwrap();
        assert_eq!(version, "v1");
        assert_eq!(sum, checksum(format!("{body}\tv1").as_bytes()));
    }

    #[test]
    fn a_flipped_byte_in_any_record_but_the_last_is_an_error_naming_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let records = [r#"{"n":"zero"}"#, r#"{"n":"one"}"#, r#"{"n":"two"}"#];
        let (p, bytes) = log_of(dir.path(), &records);
        let last_starts = bytes[..bytes.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .unwrap()
            + 1;
        for at in 0..bytes.len() - 1 {
            for flip in [0x01u8, 0x20, 0x80] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                fs::write(&p, &damaged).unwrap();
                let read = AppendLog::read(&p, LOG);
                if at == last_starts - 1 {
                    // The newline before the last record: the two last records read as
                    // one torn record, dropped together.
                    assert_eq!(read.unwrap(), records[..1], "byte {at} ^ {flip:#x}");
                    continue;
                }
                if at >= last_starts {
                    // The last record: recovered as a torn tail, the others kept.
                    let got = read.unwrap_or_else(|e| panic!("byte {at} ^ {flip:#x}: {e}"));
                    assert_eq!(got, records[..2], "byte {at} ^ {flip:#x}");
                    continue;
                }
                let index = bytes[..at].iter().filter(|b| **b == b'\n').count();
                match read {
                    Err(LogError::Damaged { index: i, .. }) => {
                        // A flip that makes a newline splits a record: the error names
                        // the record the damage is in, or (numbered after the split) the
                        // one right after it.
                        assert!(
                            i == index || i == index + 1,
                            "byte {at}: record {i}, not {index}"
                        )
                    }
                    other => panic!("byte {at} ^ {flip:#x} went unnoticed: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn records_of_the_format_before_versions_are_read_before_framed_ones_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        fs::write(&p, "{\"old\":1}\n{\"old\":2}\n").unwrap();
        let (mut log, recs) = AppendLog::open(&p, LOG).unwrap();
        assert_eq!(recs, [r#"{"old":1}"#, r#"{"old":2}"#]);
        log.append(r#"{"new":3}"#).unwrap();
        assert_eq!(AppendLog::read(&p, LOG).unwrap().len(), 3);
        // An unframed record after a framed one is damage, not an old record.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"sneaked\":4}\n").unwrap();
        log.append(r#"{"new":5}"#).unwrap();
        let err = AppendLog::read(&p, LOG).unwrap_err().to_string();
        assert!(
            err.contains("record 3 is damaged") && err.contains("no version"),
            "{err}"
        );
    }

    #[test]
    fn a_record_of_a_newer_format_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let newer = LogFormat { version: 2, ..LOG };
        let (mut log, _) = AppendLog::open(&p, LOG).unwrap();
        log.append("{}").unwrap();
        drop(log);
        let (mut log, _) = AppendLog::open(&p, newer).unwrap();
        log.append("{}").unwrap();
        log.append("{}").unwrap();
        let err = AppendLog::open(&p, LOG).unwrap_err().to_string();
        assert_eq!(
            err,
            "record 1 is in test log format version 2, written by a newer handrail; this one reads versions up to 1"
        );
        assert_eq!(AppendLog::read(&p, newer).unwrap().len(), 3);
    }

    #[test]
    fn a_damaged_last_record_before_a_torn_partial_one_is_dropped_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (p, mut bytes) = log_of(dir.path(), &["{\"a\":1}", "{\"b\":2}"]);
        let n = bytes.len();
        bytes[n - 3] ^= 0x01;
        bytes.extend_from_slice(b"{\"c\":3");
        fs::write(&p, &bytes).unwrap();
        let (_, recs) = AppendLog::open(&p, LOG).unwrap();
        assert_eq!(recs, ["{\"a\":1}"]);
        assert!(fs::read(&p).unwrap().ends_with(b"\n"));
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomic(&p, b"old").unwrap();
        write_atomic(&p, b"new content").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new content");
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
        remove_file(&p).unwrap();
        remove_file(&p).unwrap();
        assert!(!p.exists());
    }
}
