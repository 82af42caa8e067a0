//! Durable writes: the only way Handrail changes its state on disk.
//!
//! Two primitives:
//! - [`write_atomic`]: replace a whole file (temporary file in the same folder, write,
//!   fsync, rename over the target, fsync the folder), so a reader sees the old or the new
//!   content, never a mix;
//! - [`AppendLog`]: append one newline-terminated record to a log and fsync it; a torn
//!   last record (a crash mid-append) is dropped on [`AppendLog::open`]. A record may
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
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The prefix of a buffer up to and including its last newline.
trait CompleteLines {
    fn rsplit_once_newline(&self) -> &[u8];
}

impl CompleteLines for Vec<u8> {
    fn rsplit_once_newline(&self) -> &[u8] {
        match self.iter().rposition(|b| *b == b'\n') {
            Some(i) => &self[..=i],
            None => &[],
        }
    }
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

/// An append-only log of newline-terminated records, each fsync'ed as it is appended
/// (or, deferred, with the next one).
#[derive(Debug)]
pub struct AppendLog {
    path: PathBuf,
    file: File,
    /// Records were written since the last fsync.
    unsynced: bool,
}

impl AppendLog {
    /// Opens (creating if needed) the log, drops a torn last record, and returns the
    /// complete records in order.
    pub fn open(path: &Path) -> io::Result<(AppendLog, Vec<String>)> {
        let mut file = open_log_file(path)?;
        let mut records = Vec::new();
        let mut good_len = 0u64;
        {
            let mut reader = BufReader::new(&mut file);
            reader.seek(SeekFrom::Start(0))?;
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                good_len += n as u64;
                line.pop();
                records.push(String::from_utf8_lossy(&line).into_owned());
            }
        }
        if file.metadata()?.len() != good_len {
            file.set_len(good_len)?;
            sync_file(&file)?;
        }
        Ok((
            AppendLog {
                path: path.to_owned(),
                file,
                unsynced: false,
            },
            records,
        ))
    }

    /// Opens (creating if needed) the log to append to, without reading its records:
    /// only its last byte is read, so appending to a long log costs the same as to a
    /// short one. A torn last record is dropped as by [`AppendLog::open`].
    pub fn open_for_append(path: &Path) -> io::Result<AppendLog> {
        use std::os::unix::fs::FileExt;
        let file = open_log_file(path)?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1)?;
            if last[0] != b'\n' {
                drop(file);
                return AppendLog::open(path).map(|(log, _)| log);
            }
        }
        Ok(AppendLog {
            path: path.to_owned(),
            file,
            unsynced: false,
        })
    }

    /// Reads the complete records of a log without changing it (a torn last record is
    /// skipped, not truncated).
    pub fn read(path: &Path) -> io::Result<Vec<String>> {
        let bytes = fs::read(path)?;
        let complete = bytes.rsplit_once_newline();
        Ok(complete
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect())
    }

    /// Appends one record (must not contain a newline) and fsyncs it, with every
    /// deferred record before it.
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
        debug_assert!(!record.contains('\n'));
        let mut buf = Vec::with_capacity(record.len() + 1);
        buf.extend_from_slice(record.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)
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

    #[test]
    fn torn_tail_is_dropped_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        {
            let (mut log, recs) = AppendLog::open(&p).unwrap();
            assert!(recs.is_empty());
            log.append("one").unwrap();
            log.append("two").unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"half").unwrap();
        drop(f);
        let (mut log, recs) = AppendLog::open(&p).unwrap();
        assert_eq!(recs, ["one", "two"]);
        log.append("three").unwrap();
        let (_, recs) = AppendLog::open(&p).unwrap();
        assert_eq!(recs, ["one", "two", "three"]);
    }

    #[test]
    fn opening_to_append_drops_a_torn_tail_without_reading_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut log = AppendLog::open_for_append(&p).unwrap();
        log.append("one").unwrap();
        drop(log);
        AppendLog::open_for_append(&p)
            .unwrap()
            .append("two")
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"half").unwrap();
        drop(f);
        AppendLog::open_for_append(&p)
            .unwrap()
            .append("three")
            .unwrap();
        assert_eq!(AppendLog::read(&p).unwrap(), ["one", "two", "three"]);
    }

    #[test]
    fn deferred_records_are_read_at_once_and_synced_by_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let (mut log, _) = AppendLog::open(&p).unwrap();
        let syncs = syncs_so_far();
        log.append_deferred("one").unwrap();
        log.append_deferred("two").unwrap();
        assert!(log.unsynced);
        assert_eq!(AppendLog::read(&p).unwrap(), ["one", "two"]);
        log.append("three").unwrap();
        assert!(!log.unsynced, "the synced append covers the deferred ones");
        log.sync().unwrap();
        log.append_deferred("four").unwrap();
        log.sync().unwrap();
        assert!(!log.unsynced);
        // Tests in this binary run in parallel: at least this log's two fsyncs counted.
        assert!(syncs_so_far() >= syncs + 2);
        let (_, recs) = AppendLog::open(&p).unwrap();
        assert_eq!(recs, ["one", "two", "three", "four"]);
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
