//! Payload downloads: a file an update names but the payload folder lacks is fetched
//! from the URL its envelope gives.
//!
//! - Streamed into `<state>/downloads/` while it is hashed: each byte is written once,
//!   then the verified file is renamed into the deployment folder (the same file system).
//! - Resumed after a cut connection, a crash or a reboot with `Range` and `If-Range`: the
//!   partial file and what the server said of it (its `ETag` or `Last-Modified`) are kept
//!   durably every [`checkpoint_interval`], and a file that changed on the server meanwhile
//!   is fetched again from its first byte rather than spliced from two versions.
//! - Retried with exponential backoff and jitter while the server or the network fails
//!   (5xx, 408, 429, a refused or cut connection), within [`DownloadConfig::retries`]
//!   attempts in a row that bring no byte and an overall deadline; any other 4xx ends the
//!   download at once with the server's answer (a 404 never loops).
//! - Checked against the manifest's size and sha256 before anything uses it.
//!
//! How the bytes travel is a [`Transport`]: `handrail-http` gives one for HTTP and HTTPS
//! (proxies, a custom CA, client certificates); an embedder can bring its own.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::admit::b64;
use crate::cancel::CancelToken;
use crate::config::DownloadConfig;
use crate::durable;
use crate::registry::hex;

/// How often a download in progress is made durable (data fsync'ed, its length
/// recorded), at the least: a file larger than 32 of these is made durable each 32nd of
/// it ([`checkpoint_interval`]), so at most that much is fetched again after a power cut
/// and a large file costs 32 checkpoints, not one per 4 MiB.
pub const CHECKPOINT_BYTES: u64 = 4 << 20;

/// Bytes between two checkpoints of a file of `size` bytes.
pub fn checkpoint_interval(size: u64) -> u64 {
    (size / 32).max(CHECKPOINT_BYTES)
}

/// The version of the record kept beside a partial download.
const RECORD_FORMAT: u32 = 1;

/// One GET, as a [`Transport`] is asked to send it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The URL (`http://` or `https://` for `handrail-http`).
    pub url: &'a str,
    /// Resume from this byte (`Range: bytes=<from>-`); 0 asks for the whole file.
    pub from: u64,
    /// With `from`: send the rest only if the file is still this one (`If-Range`).
    pub if_range: Option<&'a str>,
    /// Further headers (e.g. `Authorization`), sent to the URL's host only: a redirect
    /// to another host drops them.
    pub headers: &'a [(String, String)],
}

/// A response, its body still to be read.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The URL that answered (after redirects).
    pub url: String,
    /// `Content-Length`, when given.
    pub content_length: Option<u64>,
    /// `Content-Range` of a 206, when given.
    pub content_range: Option<ContentRange>,
    /// What identifies this version of the file for `If-Range`: a strong `ETag`, else
    /// `Last-Modified`.
    pub validator: Option<String>,
    /// `Retry-After` in seconds, when given.
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: Box<dyn Read + Send>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &self.url)
            .field("content_length", &self.content_length)
            .field("content_range", &self.content_range)
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

/// `Content-Range: bytes <start>-<end>/<total>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
    /// The whole file's size, unless the server gave `*`.
    pub total: Option<u64>,
}

impl ContentRange {
    /// Parses a `Content-Range` value; `None` when it is not `bytes a-b/total`.
    pub fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        let (start, end) = range.split_once('-')?;
        let start: u64 = start.trim().parse().ok()?;
        let end: u64 = end.trim().parse().ok()?;
        let total = match total.trim() {
            "*" => None,
            t => Some(t.parse().ok()?),
        };
        (start <= end && total.is_none_or(|t| end < t)).then_some(ContentRange {
            start,
            end,
            total,
        })
    }
}

/// Why a [`Transport`] could not bring a response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// Worth trying again: the network or the server failed (refused, reset, timed out).
    #[error("{0}")]
    Transient(String),
    /// Trying again cannot help (a bad URL, a certificate that does not verify).
    #[error("{0}")]
    Fatal(String),
}

/// Sends GETs: how a download reaches its server.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request`, following redirects; a status of any kind is a response.
    fn get(&self, request: &Request<'_>) -> Result<Response, TransportError>;
}

/// Time as downloads see it: waits between attempts, the deadline, the bandwidth cap.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Instant;
    /// Waits `duration` (or until `cancel`, when it can).
    fn sleep(&self, duration: Duration, cancel: &CancelToken);
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration, cancel: &CancelToken) {
        // In slices, so that a cancel is seen within one.
        let end = Instant::now() + duration;
        while !cancel.is_cancelled() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// The file a download must bring.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// Where from.
    pub url: &'a str,
    /// The payload file's name (for messages and progress).
    pub name: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Its hash.
    pub hash: FileHash,
    /// Further request headers (a server's credentials).
    pub headers: &'a [(String, String)],
}

/// The hash a downloaded file must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileHash {
    /// SHA-256 (what manifests give).
    Sha256([u8; 32]),
    /// SHA-1, for servers that give nothing better (goosebit); with the size.
    Sha1([u8; 20]),
}

impl FileHash {
    /// The algorithm's name.
    pub fn algorithm(&self) -> &'static str {
        match self {
            FileHash::Sha256(_) => "sha256",
            FileHash::Sha1(_) => "sha1",
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            FileHash::Sha256(b) => b,
            FileHash::Sha1(b) => b,
        }
    }

    /// What the downloads folder calls this content: the sha256's hex, or `sha1-` and
    /// the sha1's.
    fn key(&self) -> String {
        match self {
            FileHash::Sha256(b) => hex(b),
            FileHash::Sha1(b) => format!("sha1-{}", hex(b)),
        }
    }

    /// The hash as a partial download's record keeps it: a sha256 in base64 (as the
    /// records of format 1 always did), a sha1 as `sha1:<hex>`.
    fn record_value(&self) -> String {
        match self {
            FileHash::Sha256(b) => b64(b),
            FileHash::Sha1(b) => format!("sha1:{}", hex(b)),
        }
    }

    fn hasher(&self) -> Hasher {
        match self {
            FileHash::Sha256(_) => Hasher::Sha256(Sha256::new()),
            FileHash::Sha1(_) => Hasher::Sha1(ring::digest::Context::new(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            )),
        }
    }
}

impl std::fmt::Display for FileHash {
    /// `sha256 <base64>` (as manifests write it) or `sha1 <hex>` (as servers do).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileHash::Sha256(b) => write!(f, "sha256 {}", b64(b)),
            FileHash::Sha1(b) => write!(f, "sha1 {}", hex(b)),
        }
    }
}

/// A running hash of either kind.
#[derive(Clone)]
enum Hasher {
    Sha256(Sha256),
    Sha1(ring::digest::Context),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finish().as_ref().to_vec(),
        }
    }

    /// The hash of `path`'s bytes, of `hash`'s kind.
    fn of_file(hash: &FileHash, path: &Path) -> std::io::Result<Vec<u8>> {
        let mut hasher = hash.hasher();
        let mut file = File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(hasher.finish());
            }
            hasher.update(&buf[..n]);
        }
    }
}

/// How far a download is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The payload file's name.
    pub file: String,
    /// Bytes of it on disk.
    pub done: u64,
    /// Its size.
    pub total: u64,
}

/// What one [`Downloader::fetch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes kept from an earlier, interrupted download.
    pub resumed_from: u64,
    /// Bytes received over the network by this call.
    pub received: u64,
    /// Requests sent.
    pub requests: u32,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server answered with a status that trying again cannot change.
    #[error("{url}: the server answered HTTP {status}; not retried")]
    Refused {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// Every attempt failed.
    #[error(
        "{url}: gave up after {attempts} attempts in a row that brought nothing; the last: {last}"
    )]
    GaveUp {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The overall deadline passed.
    #[error(
        "{url}: not downloaded within the {secs} s deadline ([download] deadline_secs); the last failure: {last}"
    )]
    Deadline {
        /// The URL.
        url: String,
        /// The deadline.
        secs: u64,
        /// The last failure, if any.
        last: String,
    },
    /// The server's file is not the one the manifest names.
    #[error("{url}: {message}")]
    Mismatch {
        /// The URL.
        url: String,
        /// How it differs.
        message: String,
    },
    /// The transport cannot reach the URL at all.
    #[error("{url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The deployment was cancelled.
    #[error("{url}: cancelled")]
    Cancelled {
        /// The URL.
        url: String,
    },
    /// A local file could not be written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed (for a full disk: "no space left on the file system").
        message: String,
    },
}

/// The record kept beside a partial download (`<key>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PartRecord {
    format: u32,
    url: String,
    size: u64,
    sha256: String,
    validator: Option<String>,
    /// Bytes of the `.part` file known to be on disk.
    durable: u64,
}

/// Fetches payload files through a [`Transport`] into a downloads folder.
pub struct Downloader {
    transport: Arc<dyn Transport>,
    dir: PathBuf,
    config: DownloadConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Downloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloader")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One attempt's failure, and whether another may help.
enum Attempt {
    Retry(String, Option<Duration>),
    Fail(DownloadError),
}

/// The partial file and its hash so far.
struct Partial {
    file: File,
    hasher: Hasher,
    done: u64,
    validator: Option<String>,
    /// Its bytes came in more than one piece (resumed), so a splice is possible.
    resumed: bool,
}

impl Downloader {
    /// Downloads into `dir` (created when needed) through `transport`.
    pub fn new(transport: Arc<dyn Transport>, dir: PathBuf, config: DownloadConfig) -> Self {
        Downloader {
            transport,
            dir,
            config,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same, on another clock (tests and simulations control time with it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Brings `wanted` to `dest` (durably, verified), resuming what an earlier call left.
    /// `progress` hears of every chunk; a cancel stops between chunks and waits.
    pub fn fetch(
        &self,
        wanted: &Wanted<'_>,
        dest: &Path,
        progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> Result<Fetched, DownloadError> {
        let key = wanted.hash.key();
        let part_path = self.dir.join(format!("{key}.part"));
        let record_path = self.dir.join(format!("{key}.json"));
        let io = |path: &Path, e: std::io::Error| DownloadError::Io {
            path: path.to_owned(),
            message: describe_io(&e),
        };
        // What is not the manifest's file is not kept.
        let discard = || {
            let _ = fs::remove_file(&part_path);
            let _ = fs::remove_file(&record_path);
        };
        durable::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        // Complete and verified by an earlier call whose deployment was never admitted
        // (a crash in between): used again, not fetched again.
        let complete = self.dir.join(&key);
        if complete.exists() {
            if matches_file(&complete, wanted.size, &wanted.hash) {
                link_into(&complete, dest).map_err(|e| io(dest, e))?;
                return Ok(Fetched {
                    resumed_from: wanted.size,
                    received: 0,
                    requests: 0,
                });
            }
            let _ = fs::remove_file(&complete);
        }
        let mut partial = self
            .reopen(wanted, &part_path, &record_path)
            .map_err(|e| io(&part_path, e))?;
        let resumed_from = partial.done;
        if resumed_from > 0 {
            tracing::info!(
                "{}: resuming its download at byte {resumed_from} of {}",
                wanted.name,
                wanted.size
            );
        }
        let started = self.clock.now();
        let deadline = (self.config.deadline_secs > 0)
            .then(|| started + Duration::from_secs(self.config.deadline_secs));
        let mut fetched = Fetched {
            resumed_from,
            received: 0,
            requests: 0,
        };
        let mut failures = 0u32;
        // The furthest the file has been: an attempt counts as progress only past it, so
        // a server that cuts every connection of a file it cannot resume (no validator:
        // each attempt starts again from byte 0) still runs out of retries.
        let mut furthest = partial.done;
        let mut restarted = false;
        loop {
            if cancel.is_cancelled() {
                return Err(DownloadError::Cancelled {
                    url: wanted.url.to_owned(),
                });
            }
            if partial.done == wanted.size {
                let actual = partial.hasher.clone().finish();
                if actual == wanted.hash.bytes() {
                    break;
                }
                // A resumed file may have been spliced (a server that ignored If-Range,
                // a partial file damaged by a power cut): once, fetch it all again.
                if partial.resumed && !restarted {
                    tracing::warn!(
                        "{}: the resumed download does not match its {}; fetching it again from its first byte",
                        wanted.name,
                        wanted.hash.algorithm()
                    );
                    restarted = true;
                    partial.restart().map_err(|e| io(&part_path, e))?;
                    continue;
                }
                discard();
                return Err(DownloadError::Mismatch {
                    url: wanted.url.to_owned(),
                    message: format!(
                        "the downloaded file's {} is {}, the expected {}",
                        wanted.hash.algorithm(),
                        match wanted.hash {
                            FileHash::Sha256(_) => b64(&actual),
                            FileHash::Sha1(_) => hex(&actual),
                        },
                        wanted.hash
                    ),
                });
            }
            fetched.requests += 1;
            let outcome = self.attempt(
                wanted,
                &mut partial,
                &record_path,
                &mut fetched,
                progress,
                cancel,
                started,
            );
            let (last, wait) = match outcome {
                Ok(()) => continue,
                Err(Attempt::Fail(e)) => {
                    if matches!(e, DownloadError::Mismatch { .. }) {
                        discard();
                    }
                    return Err(e);
                }
                Err(Attempt::Retry(message, wait)) => (message, wait),
            };
            // Attempts that brought the file further do not count against the retries.
            if partial.done > furthest {
                furthest = partial.done;
                failures = 0;
            }
            failures += 1;
            if failures > self.config.retries {
                return Err(DownloadError::GaveUp {
                    url: wanted.url.to_owned(),
                    attempts: failures,
                    last,
                });
            }
            let backoff = self.backoff(failures, wait);
            if let Some(deadline) = deadline
                && self.clock.now() + backoff >= deadline
            {
                return Err(DownloadError::Deadline {
                    url: wanted.url.to_owned(),
                    secs: self.config.deadline_secs,
                    last,
                });
            }
            tracing::warn!(
                "{}: {last}; trying again in {} ms (attempt {} of {})",
                wanted.name,
                backoff.as_millis(),
                failures + 1,
                self.config.retries + 1
            );
            self.clock.sleep(backoff, cancel);
        }
        durable::sync_file(&partial.file).map_err(|e| io(&part_path, e))?;
        drop(partial);
        // Kept complete under its sha256 until the deployment is admitted
        // ([`Downloader::forget_complete`]), and linked into the deployment folder: no
        // byte is written twice, and a crash before admission loses nothing.
        fs::rename(&part_path, &complete).map_err(|e| io(&complete, e))?;
        durable::sync_dir(&self.dir).map_err(|e| io(&self.dir, e))?;
        durable::remove_file(&record_path).map_err(|e| io(&record_path, e))?;
        link_into(&complete, dest).map_err(|e| io(dest, e))?;
        Ok(fetched)
    }

    /// Removes the complete downloads kept for deployments not yet admitted: once one
    /// is, its files are in its own folder. Partial downloads stay, to be resumed.
    pub fn forget_complete(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let hexes = |n: &str, len| n.len() == len && n.bytes().all(|b| b.is_ascii_hexdigit());
            if hexes(&name, 64) || name.strip_prefix("sha1-").is_some_and(|n| hexes(n, 40)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The partial file an earlier call left for this content, checked against its
    /// record; else an empty one.
    fn reopen(
        &self,
        wanted: &Wanted<'_>,
        part_path: &Path,
        record_path: &Path,
    ) -> std::io::Result<Partial> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(part_path)?;
        let mut partial = Partial {
            file,
            hasher: wanted.hash.hasher(),
            done: 0,
            validator: None,
            resumed: false,
        };
        let record = fs::read(record_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<PartRecord>(&bytes).ok());
        let usable = record.filter(|r| {
            r.format == RECORD_FORMAT
                && r.size == wanted.size
                && r.sha256 == wanted.hash.record_value()
                && r.validator.is_some()
                && r.durable <= wanted.size
        });
        let Some(record) = usable else {
            partial.restart()?;
            return Ok(partial);
        };
        let on_disk = partial.file.metadata()?.len();
        let keep = record.durable.min(on_disk);
        partial.file.set_len(keep)?;
        // The kept bytes are read once to hash them; they are not written again.
        partial.file.seek(SeekFrom::Start(0))?;
        let mut left = keep;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = partial.file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            partial.hasher.update(&buf[..n]);
            left -= n as u64;
        }
        partial.done = keep - left;
        partial.file.set_len(partial.done)?;
        partial.file.seek(SeekFrom::End(0))?;
        partial.validator = record.validator;
        partial.resumed = partial.done > 0;
        Ok(partial)
    }

    /// One request and as much of its body as arrives.
    #[allow(clippy::too_many_arguments, reason = "one attempt's whole context")]
    fn attempt(
        &self,
        wanted: &Wanted<'_>,
        partial: &mut Partial,
        record_path: &Path,
        fetched: &mut Fetched,
        progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
        started: Instant,
    ) -> Result<(), Attempt> {
        let url = wanted.url;
        let fail = |message: String| {
            Attempt::Fail(DownloadError::Mismatch {
                url: url.to_owned(),
                message,
            })
        };
        let io_fail = |e: std::io::Error| {
            Attempt::Fail(DownloadError::Io {
                path: record_path.with_extension("part"),
                message: describe_io(&e),
            })
        };
        let resuming = partial.done > 0 && partial.validator.is_some();
        if partial.done > 0 && !resuming {
            partial.restart().map_err(io_fail)?;
        }
        let from = partial.done;
        let if_range = partial.validator.clone().filter(|_| resuming);
        let request = Request {
            url,
            from,
            if_range: if_range.as_deref(),
            headers: wanted.headers,
        };
        let response = match self.transport.get(&request) {
            Ok(response) => response,
            Err(TransportError::Transient(message)) => return Err(Attempt::Retry(message, None)),
            Err(TransportError::Fatal(message)) => {
                return Err(Attempt::Fail(DownloadError::Transport {
                    url: url.to_owned(),
                    message,
                }));
            }
        };
        let status = response.status;
        match status {
            200 => {
                if partial.done > 0 {
                    tracing::info!(
                        "{}: the server sent the whole file (it changed, or it does not resume); starting again from its first byte",
                        wanted.name
                    );
                    partial.restart().map_err(io_fail)?;
                }
                if let Some(length) = response.content_length
                    && length != wanted.size
                {
                    return Err(fail(format!(
                        "the server's file is {length} bytes, the manifest's {}",
                        wanted.size
                    )));
                }
            }
            206 => {
                let range = response.content_range;
                let fits = range.is_some_and(|r| {
                    r.start == partial.done && r.total.is_none_or(|t| t == wanted.size)
                });
                if !fits {
                    if let Some(total) = range.and_then(|r| r.total)
                        && total != wanted.size
                    {
                        return Err(fail(format!(
                            "the server's file is {total} bytes, the manifest's {}",
                            wanted.size
                        )));
                    }
                    partial.restart().map_err(io_fail)?;
                    return Err(Attempt::Retry(
                        format!(
                            "the server answered a resume at byte {} with {}",
                            from,
                            range.map_or("no Content-Range".to_owned(), |r| format!(
                                "bytes {}-{}",
                                r.start, r.end
                            ))
                        ),
                        None,
                    ));
                }
                partial.resumed = true;
            }
            416 => {
                partial.restart().map_err(io_fail)?;
                return Err(Attempt::Retry(
                    format!("the server refused a resume at byte {} (HTTP 416)", from),
                    None,
                ));
            }
            408 | 429 | 500..=599 => {
                return Err(Attempt::Retry(
                    format!("the server answered HTTP {status}"),
                    response.retry_after,
                ));
            }
            _ => {
                return Err(Attempt::Fail(DownloadError::Refused {
                    url: response.url,
                    status,
                }));
            }
        }
        if response.validator.is_some() {
            partial.validator = response.validator.clone();
        }
        let mut body = response.body;
        let mut buf = vec![0u8; 256 << 10];
        let mut since_checkpoint = 0u64;
        let mut this_request = 0u64;
        loop {
            if cancel.is_cancelled() {
                self.checkpoint(wanted, partial, record_path)
                    .map_err(io_fail)?;
                return Err(Attempt::Fail(DownloadError::Cancelled {
                    url: url.to_owned(),
                }));
            }
            let room = wanted.size - partial.done;
            // One byte more than the file's size is read, to catch a longer file.
            let want = buf
                .len()
                .min(usize::try_from(room.saturating_add(1)).unwrap_or(usize::MAX));
            let n = match body.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.checkpoint(wanted, partial, record_path)
                        .map_err(io_fail)?;
                    return Err(Attempt::Retry(
                        format!(
                            "the connection failed after {} of {} bytes: {e}",
                            partial.done, wanted.size
                        ),
                        None,
                    ));
                }
            };
            if n as u64 > room {
                partial.restart().map_err(io_fail)?;
                return Err(fail(format!(
                    "the server's file is longer than the manifest's {} bytes",
                    wanted.size
                )));
            }
            partial.file.write_all(&buf[..n]).map_err(io_fail)?;
            start_writeback(&partial.file, partial.done, n);
            partial.hasher.update(&buf[..n]);
            partial.done += n as u64;
            fetched.received += n as u64;
            this_request += n as u64;
            since_checkpoint += n as u64;
            if since_checkpoint >= checkpoint_interval(wanted.size) {
                self.checkpoint(wanted, partial, record_path)
                    .map_err(io_fail)?;
                since_checkpoint = 0;
            }
            progress(&Progress {
                file: wanted.name.to_owned(),
                done: partial.done,
                total: wanted.size,
            });
            if partial.done == wanted.size {
                return Ok(());
            }
            self.pace(fetched.received, started, cancel);
        }
        self.checkpoint(wanted, partial, record_path)
            .map_err(io_fail)?;
        if partial.done < wanted.size {
            return Err(Attempt::Retry(
                format!(
                    "the connection closed after {} of {} bytes ({this_request} by this request)",
                    partial.done, wanted.size
                ),
                None,
            ));
        }
        Ok(())
    }

    /// Makes the partial file's bytes so far durable, and records them.
    fn checkpoint(
        &self,
        wanted: &Wanted<'_>,
        partial: &Partial,
        record_path: &Path,
    ) -> std::io::Result<()> {
        if partial.validator.is_none() {
            // Without a validator nothing can be resumed safely: nothing to record.
            return Ok(());
        }
        durable::sync_file(&partial.file)?;
        let record = PartRecord {
            format: RECORD_FORMAT,
            url: wanted.url.to_owned(),
            size: wanted.size,
            sha256: wanted.hash.record_value(),
            validator: partial.validator.clone(),
            durable: partial.done,
        };
        let bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        durable::write_atomic(record_path, &bytes)
    }

    /// Waits as long as the bandwidth cap asks, given `received` bytes since `started`.
    fn pace(&self, received: u64, started: Instant, cancel: &CancelToken) {
        let cap = self.config.rate_limit_kib.saturating_mul(1024);
        if cap == 0 {
            return;
        }
        let due = Duration::from_secs_f64(received as f64 / cap as f64);
        let elapsed = self.clock.now().saturating_duration_since(started);
        if due > elapsed {
            self.clock.sleep(due - elapsed, cancel);
        }
    }

    /// The wait before attempt `failures + 1`: exponential from the initial backoff, capped,
    /// with jitter (half fixed, half random), or what the server asked for (capped).
    fn backoff(&self, failures: u32, asked: Option<Duration>) -> Duration {
        let max = Duration::from_secs(self.config.backoff_max_secs.max(1));
        if let Some(asked) = asked {
            return asked.min(max);
        }
        let initial = Duration::from_millis(self.config.backoff_initial_ms);
        let exp = initial.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let full = exp.min(max);
        let half = full / 2;
        half + half.mul_f64(jitter())
    }
}

impl Partial {
    /// Empties the partial file and its hash: the download starts from its first byte.
    fn restart(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.hasher = match self.hasher {
            Hasher::Sha256(_) => Hasher::Sha256(Sha256::new()),
            Hasher::Sha1(_) => Hasher::Sha1(ring::digest::Context::new(
                &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            )),
        };
        self.done = 0;
        self.validator = None;
        self.resumed = false;
        Ok(())
    }
}

/// Starts writing `len` bytes at `offset` of `file` to the disk without waiting for
/// them: the disk works while the network does, the next checkpoint's fsync finds little
/// left to write, and the page cache does not fill with a large download's dirty pages.
fn start_writeback(file: &File, offset: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // Advice only: a failure changes nothing the checkpoint's fsync does not cover.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as _,
                len as _,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// True when `path` holds `size` bytes whose hash is `hash` (read, not written).
fn matches_file(path: &Path, size: u64, hash: &FileHash) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() == size)
        && Hasher::of_file(hash, path).is_ok_and(|actual| actual == hash.bytes())
}

/// Makes `dest` name the same file as `src` (a hard link; a rename where the file
/// system has none), durably.
fn link_into(src: &Path, dest: &Path) -> std::io::Result<()> {
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    durable::create_dir_all(parent)?;
    match fs::remove_file(dest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if fs::hard_link(src, dest).is_err() {
        fs::rename(src, dest)?;
    }
    durable::sync_dir(parent)
}

/// A number in [0, 1) that differs between calls and between processes (not for secrets).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        x = nanos ^ (u64::from(std::process::id()) << 32) | 1;
    }
    // xorshift64
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// An I/O error in words, a full disk said plainly.
fn describe_io(e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        "no space left on the file system".to_owned()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests;
