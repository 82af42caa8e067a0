//! The downloader's rules against an in-memory server and a clock the test moves. The
//! same paths run against real servers through the binary in `tests/e2e/download.rs`.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::Mutex;

use super::*;

/// What the in-memory server does with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    /// Serve it honestly (206 for a range whose validator matches, else 200).
    Serve,
    /// Serve it, but close the connection after this many body bytes.
    CutAfter(usize),
    /// Answer this status with no body.
    Status(u16),
    /// Fail to connect.
    Refuse,
    /// Ignore `Range` and `If-Range`: always the whole file.
    IgnoreRange,
}

struct Server {
    content: Mutex<(Vec<u8>, String)>,
    script: Mutex<VecDeque<Act>>,
    seen: Mutex<Vec<(u64, Option<String>)>>,
}

impl Server {
    fn new(content: Vec<u8>, script: &[Act]) -> Arc<Server> {
        Arc::new(Server {
            content: Mutex::new((content, "\"v1\"".into())),
            script: Mutex::new(script.iter().copied().collect()),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn replace(&self, content: Vec<u8>, etag: &str) {
        *self.content.lock().unwrap() = (content, etag.into());
    }

    fn seen(&self) -> Vec<(u64, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}

struct Shared(Arc<Server>);

impl Transport for Shared {
    fn get(&self, request: &Request<'_>) -> Result<Response, TransportError> {
        let server = &self.0;
        server
            .seen
            .lock()
            .unwrap()
            .push((request.from, request.if_range.map(str::to_owned)));
        let act = server
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Act::Serve);
        let (content, etag) = server.content.lock().unwrap().clone();
        let empty = |status| Response {
            status,
            url: request.url.to_owned(),
            content_length: Some(0),
            content_range: None,
            validator: None,
            retry_after: None,
            body: Box::new(std::io::empty()),
        };
        let (from, cut) = match act {
            Act::Refuse => return Err(TransportError::Transient("connection refused".into())),
            Act::Status(status) => return Ok(empty(status)),
            Act::IgnoreRange => (0, None),
            Act::Serve => (ranged(request, &etag), None),
            Act::CutAfter(n) => (ranged(request, &etag), Some(n)),
        };
        let body = content[from as usize..].to_vec();
        let length = body.len() as u64;
        let body: Box<dyn Read + Send> = match cut {
            Some(n) => Box::new(Cut(std::io::Cursor::new(body), n)),
            None => Box::new(std::io::Cursor::new(body)),
        };
        Ok(Response {
            status: if from > 0 { 206 } else { 200 },
            url: request.url.to_owned(),
            content_length: Some(length),
            content_range: (from > 0).then(|| ContentRange {
                start: from,
                end: content.len() as u64 - 1,
                total: Some(content.len() as u64),
            }),
            validator: Some(etag),
            retry_after: None,
            body,
        })
    }
}

/// Where an honest server starts: at `from` when `If-Range` names the current version.
fn ranged(request: &Request<'_>, etag: &str) -> u64 {
    if request.from > 0 && request.if_range == Some(etag) {
        request.from
    } else {
        0
    }
}

/// A body whose connection breaks after `.1` bytes.
struct Cut(std::io::Cursor<Vec<u8>>, usize);

impl Read for Cut {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.1 == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ));
        }
        let n = buf.len().min(self.1);
        let n = self.0.read(&mut buf[..n])?;
        self.1 -= n;
        Ok(n)
    }
}

/// A clock that moves only when waited on.
#[derive(Default)]
struct TestClock {
    start: Option<Instant>,
    slept: Mutex<Vec<Duration>>,
}

impl TestClock {
    fn new() -> Arc<TestClock> {
        Arc::new(TestClock {
            start: Some(Instant::now()),
            slept: Mutex::new(Vec::new()),
        })
    }

    fn slept(&self) -> Vec<Duration> {
        self.slept.lock().unwrap().clone()
    }
}

impl Clock for TestClock {
    fn now(&self) -> Instant {
        self.start.unwrap() + self.slept.lock().unwrap().iter().sum::<Duration>()
    }

    fn sleep(&self, duration: Duration, _: &CancelToken) {
        self.slept.lock().unwrap().push(duration);
    }
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn wanted<'a>(bytes: &[u8], url: &'a str) -> (Wanted<'a>, [u8; 32]) {
    let sha: [u8; 32] = Sha256::digest(bytes).into();
    (
        Wanted {
            url,
            name: "payload.bin",
            size: bytes.len() as u64,
            hash: FileHash::Sha256(sha),
            headers: &[],
        },
        sha,
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    downloads: PathBuf,
    dest: PathBuf,
    clock: Arc<TestClock>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    Setup {
        downloads: dir.path().join("downloads"),
        dest: dir.path().join("deployment/payload/payload.bin"),
        clock: TestClock::new(),
        _dir: dir,
    }
}

fn downloader(s: &Setup, server: &Arc<Server>, config: DownloadConfig) -> Downloader {
    Downloader::new(
        Arc::new(Shared(server.clone())),
        s.downloads.clone(),
        config,
    )
    .with_clock(s.clock.clone())
}

fn fetch(d: &Downloader, w: &Wanted<'_>, dest: &Path) -> Result<Fetched, DownloadError> {
    d.fetch(w, dest, &mut |_| {}, &CancelToken::new())
}

const MIB: usize = 1 << 20;

#[test]
fn a_cut_connection_resumes_where_it_broke_and_nothing_is_fetched_twice() {
    let s = setup();
    let bytes = content(3 * MIB + 17);
    let server = Server::new(bytes.clone(), &[Act::CutAfter(MIB + 5), Act::CutAfter(MIB)]);
    let d = downloader(&s, &server, DownloadConfig::default());
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    let fetched = fetch(&d, &w, &s.dest).unwrap();
    assert_eq!(fs::read(&s.dest).unwrap(), bytes);
    assert_eq!(fetched.received, bytes.len() as u64, "each byte once");
    assert_eq!(fetched.requests, 3);
    let seen = server.seen();
    assert_eq!(seen[0], (0, None));
    assert_eq!(seen[1], (MIB as u64 + 5, Some("\"v1\"".into())));
    assert_eq!(seen[2], (2 * MIB as u64 + 5, Some("\"v1\"".into())));
    // Kept whole until its deployment is admitted: fetched for a second try, nothing
    // crosses the network.
    let again = s.dest.with_file_name("again.bin");
    let second = fetch(&d, &w, &again).unwrap();
    assert_eq!((second.requests, second.received), (0, 0));
    assert_eq!(fs::read(&again).unwrap(), bytes);
    d.forget_complete();
    assert!(
        fs::read_dir(&s.downloads).unwrap().next().is_none(),
        "nothing left behind"
    );
}

#[test]
fn a_download_interrupted_in_an_earlier_process_resumes_from_its_last_checkpoint() {
    let s = setup();
    let bytes = content(2 * CHECKPOINT_BYTES as usize + 1000);
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    // The first process breaks off past one checkpoint and dies; the second resumes.
    let cut = CHECKPOINT_BYTES as usize + 300;
    let server = Server::new(bytes.clone(), &[Act::CutAfter(cut)]);
    let config = DownloadConfig {
        retries: 0,
        ..DownloadConfig::default()
    };
    let first = fetch(&downloader(&s, &server, config.clone()), &w, &s.dest);
    assert!(
        matches!(first, Err(DownloadError::GaveUp { .. })),
        "{first:?}"
    );
    // A power cut could lose what the page cache held past the checkpoint: only what
    // was recorded durable is trusted.
    let part = s.downloads.join(format!("{}.part", w.hash.key()));
    let mut tail = OpenOptions::new().append(true).open(&part).unwrap();
    tail.write_all(&[0xAA; 4096]).unwrap();
    let fetched = fetch(&downloader(&s, &server, config), &w, &s.dest).unwrap();
    assert_eq!(fs::read(&s.dest).unwrap(), bytes);
    assert_eq!(fetched.resumed_from, cut as u64);
    assert_eq!(fetched.received, (bytes.len() - cut) as u64);
    assert_eq!(server.seen()[1], (cut as u64, Some("\"v1\"".into())));
}

#[test]
fn a_file_that_changed_on_the_server_is_fetched_again_whole_never_spliced() {
    let s = setup();
    let old = content(2 * MIB);
    let mut new = old.clone();
    new[3] ^= 0xFF;
    new[MIB + 3] ^= 0xFF;
    let server = Server::new(old, &[Act::CutAfter(MIB + 10)]);
    let d = downloader(&s, &server, DownloadConfig::default());
    let (w, _) = wanted(&new, "http://server/payload.bin");
    // The new version is published while the first download is broken off.
    let first = d.fetch(
        &w,
        &s.dest,
        &mut |p| {
            if p.done > MIB as u64 {
                server.replace(new.clone(), "\"v2\"");
            }
        },
        &CancelToken::new(),
    );
    let fetched = first.unwrap();
    assert_eq!(fs::read(&s.dest).unwrap(), new);
    let seen = server.seen();
    assert_eq!(
        seen[1],
        (MIB as u64 + 10, Some("\"v1\"".into())),
        "{seen:?}"
    );
    assert_eq!(fetched.received, MIB as u64 + 10 + new.len() as u64);
}

#[test]
fn a_server_that_ignores_if_range_and_splices_is_caught_by_the_hash_and_fetched_again() {
    let s = setup();
    let bytes = content(2 * MIB);
    // The resume gets 200 with the whole file from an honest server; from one that
    // answers 206 from a changed file, the sha256 catches the splice.
    let server = Server::new(bytes.clone(), &[Act::CutAfter(MIB)]);
    let d = downloader(&s, &server, DownloadConfig::default());
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    let mut spliced = bytes.clone();
    spliced[MIB + 1] ^= 1;
    let replaced = std::sync::atomic::AtomicBool::new(false);
    let got = d.fetch(
        &w,
        &s.dest,
        &mut |p| {
            if p.done >= MIB as u64 && !replaced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // Same validator, different bytes: a server that lies.
                server.replace(spliced.clone(), "\"v1\"");
            }
            if p.done == bytes.len() as u64 {
                server.replace(bytes.clone(), "\"v1\"");
            }
        },
        &CancelToken::new(),
    );
    got.unwrap();
    assert_eq!(fs::read(&s.dest).unwrap(), bytes);
    assert_eq!(
        server.seen().last().unwrap(),
        &(0, None),
        "fetched again from byte 0"
    );
}

#[test]
fn a_404_fails_at_once_and_is_never_retried() {
    let s = setup();
    let bytes = content(1000);
    let server = Server::new(bytes.clone(), &[Act::Status(404), Act::Status(404)]);
    let d = downloader(&s, &server, DownloadConfig::default());
    let (w, _) = wanted(&bytes, "http://server/gone.bin");
    let err = fetch(&d, &w, &s.dest).unwrap_err();
    assert_eq!(
        err.to_string(),
        "http://server/gone.bin: the server answered HTTP 404; not retried"
    );
    assert_eq!(server.seen().len(), 1);
    assert!(s.clock.slept().is_empty());
}

#[test]
fn server_errors_are_retried_with_growing_jittered_waits_then_given_up() {
    let s = setup();
    let bytes = content(1000);
    let script = [
        Act::Status(503),
        Act::Refuse,
        Act::Status(500),
        Act::Status(502),
    ];
    let server = Server::new(bytes.clone(), &script);
    let config = DownloadConfig {
        retries: 3,
        backoff_initial_ms: 1000,
        backoff_max_secs: 3,
        ..DownloadConfig::default()
    };
    let d = downloader(&s, &server, config);
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    let err = fetch(&d, &w, &s.dest).unwrap_err();
    assert!(
        err.to_string()
            .contains("gave up after 4 attempts in a row that brought nothing; the last: the server answered HTTP 502"),
        "{err}"
    );
    let slept = s.clock.slept();
    assert_eq!(slept.len(), 3);
    // 1 s, 2 s, then capped at 3 s; each between half and all of it.
    for (wait, full) in slept.iter().zip([1000, 2000, 3000]) {
        let ms = wait.as_millis() as u64;
        assert!(ms >= full / 2 && ms <= full, "{slept:?}");
    }
}

#[test]
fn retries_that_recover_finish_the_download() {
    let s = setup();
    let bytes = content(5000);
    let script = [Act::Refuse, Act::Status(503), Act::Status(429)];
    let server = Server::new(bytes.clone(), &script);
    let d = downloader(&s, &server, DownloadConfig::default());
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    fetch(&d, &w, &s.dest).unwrap();
    assert_eq!(fs::read(&s.dest).unwrap(), bytes);
    assert_eq!(s.clock.slept().len(), 3);
}

#[test]
fn the_deadline_ends_retries_however_many_are_left() {
    let s = setup();
    let bytes = content(1000);
    let server = Server::new(bytes.clone(), &[Act::Status(503); 50]);
    let config = DownloadConfig {
        retries: 1000,
        backoff_initial_ms: 10_000,
        backoff_max_secs: 60,
        deadline_secs: 120,
        ..DownloadConfig::default()
    };
    let d = downloader(&s, &server, config);
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    let err = fetch(&d, &w, &s.dest).unwrap_err();
    assert!(
        matches!(err, DownloadError::Deadline { secs: 120, .. }),
        "{err}"
    );
    let waited: Duration = s.clock.slept().iter().sum();
    assert!(waited < Duration::from_secs(120), "{waited:?}");
}

#[test]
fn a_file_of_another_size_or_hash_is_refused_and_not_kept() {
    let s = setup();
    let bytes = content(1000);
    let server = Server::new(content(1001), &[]);
    let d = downloader(&s, &server, DownloadConfig::default());
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    let err = fetch(&d, &w, &s.dest).unwrap_err();
    assert_eq!(
        err.to_string(),
        "http://server/payload.bin: the server's file is 1001 bytes, the manifest's 1000"
    );
    let mut other = bytes.clone();
    other[0] ^= 1;
    server.replace(other, "\"v9\"");
    let err = fetch(&d, &w, &s.dest).unwrap_err();
    assert!(
        err.to_string().contains("the downloaded file's sha256 is"),
        "{err}"
    );
    assert!(!s.dest.exists());
    assert!(
        fs::read_dir(&s.downloads).unwrap().next().is_none(),
        "nothing kept"
    );
}

#[test]
fn a_cancel_stops_the_download_and_keeps_what_it_had_for_a_resume() {
    let s = setup();
    let bytes = content(3 * MIB);
    let server = Server::new(bytes.clone(), &[]);
    let d = downloader(&s, &server, DownloadConfig::default());
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    let cancel = CancelToken::new();
    let err = d
        .fetch(
            &w,
            &s.dest,
            &mut |p| {
                if p.done >= MIB as u64 {
                    cancel.cancel();
                }
            },
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(err, DownloadError::Cancelled { .. }), "{err}");
    let fetched = fetch(&d, &w, &s.dest).unwrap();
    assert!(fetched.resumed_from >= MIB as u64, "{fetched:?}");
    assert_eq!(fs::read(&s.dest).unwrap(), bytes);
}

#[test]
fn the_bandwidth_cap_paces_the_download() {
    let s = setup();
    let bytes = content(2 * MIB);
    let server = Server::new(bytes.clone(), &[]);
    let config = DownloadConfig {
        rate_limit_kib: 512,
        ..DownloadConfig::default()
    };
    let d = downloader(&s, &server, config);
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    fetch(&d, &w, &s.dest).unwrap();
    let waited: Duration = s.clock.slept().iter().sum();
    // 2 MiB at 512 KiB/s: 4 s, less the last chunk's share (nothing follows it).
    assert!(
        waited >= Duration::from_millis(3400) && waited <= Duration::from_millis(3600),
        "{waited:?}"
    );
}

#[test]
fn content_ranges_parse_as_servers_write_them() {
    assert_eq!(
        ContentRange::parse("bytes 100-199/1000"),
        Some(ContentRange {
            start: 100,
            end: 199,
            total: Some(1000)
        })
    );
    assert_eq!(
        ContentRange::parse("bytes 0-0/*").map(|r| r.total),
        Some(None)
    );
    for bad in [
        "bytes 5-4/10",
        "bytes 0-10/10",
        "items 0-1/2",
        "bytes */10",
        "",
    ] {
        assert_eq!(ContentRange::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_server_that_does_not_resume_sends_the_whole_file_and_it_starts_over() {
    let s = setup();
    let bytes = content(2 * MIB);
    let server = Server::new(bytes.clone(), &[Act::CutAfter(MIB), Act::IgnoreRange]);
    let d = downloader(&s, &server, DownloadConfig::default());
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    let fetched = fetch(&d, &w, &s.dest).unwrap();
    assert_eq!(fs::read(&s.dest).unwrap(), bytes);
    assert_eq!(fetched.received, (MIB + bytes.len()) as u64);
    assert_eq!(server.seen()[1], (MIB as u64, Some("\"v1\"".into())));
}

/// A server that gives no validator cannot be resumed: each attempt starts again from
/// byte 0, and one that cuts every connection runs out of retries rather than looping.
struct NoValidator(Arc<Server>);

impl Transport for NoValidator {
    fn get(&self, request: &Request<'_>) -> Result<Response, TransportError> {
        let mut response = Shared(self.0.clone()).get(request)?;
        response.validator = None;
        Ok(response)
    }
}

#[test]
fn without_a_validator_every_attempt_starts_over_and_cuts_run_out_of_retries() {
    let s = setup();
    let bytes = content(2 * MIB);
    let server = Server::new(bytes.clone(), &[Act::CutAfter(MIB); 10]);
    let config = DownloadConfig {
        retries: 3,
        ..DownloadConfig::default()
    };
    let d = Downloader::new(
        Arc::new(NoValidator(server.clone())),
        s.downloads.clone(),
        config,
    )
    .with_clock(s.clock.clone());
    let (w, _) = wanted(&bytes, "http://server/payload.bin");
    let err = fetch(&d, &w, &s.dest).unwrap_err();
    assert!(
        matches!(err, DownloadError::GaveUp { attempts: 4, .. }),
        "{err}"
    );
    // Never a Range without something to check it against.
    assert!(
        server.seen().iter().all(|(from, _)| *from == 0),
        "{:?}",
        server.seen()
    );
    assert_eq!(server.seen().len(), 4);
}
