//! goosebit, the real hawkBit DDI server the DDI client's tests talk to: a Python server
//! (PyPI `goosebit` 0.2.12) that `scripts/setup.sh` installs into a virtual environment
//! and names in `HANDRAIL_GOOSEBIT_VENV`. [`Goosebit::start`] makes its database schema
//! (aerich), starts it on a loopback port of its own with its database, artifacts and log
//! in the folder given, creates the first user and keeps its token; dropping it stops
//! the server.
//!
//! What goosebit does, in short (the details, with each request and answer, are in the
//! notes the module was written from):
//!
//! - The device side is `{url}/DEFAULT/controller/v1/{device}` and asks for no
//!   authentication. A device's first poll registers it and answers only a `configData`
//!   link (and a 10 s sleep) until it sends `PUT configData`; only then does an
//!   assignment show up as a `deploymentBase` link. The action id is the software's id
//!   (no `?c=`), and the download link, `{device}/download`, serves whatever the device
//!   is assigned *now* (with `Range` and `If-Range`).
//! - Software is compatible with the hardware its `sw-description` names:
//!   `software.hardware-compatibility` names revisions of the board `default`, none means
//!   board and revision `default`; the device's board and revision are its configData's
//!   `hw_boardname` and `hw_revision` (`default` when left out), and an assignment to an
//!   incompatible device is refused.
//! - Feedback always answers 200 (never 410), for any action id: `proceeding` makes the
//!   device Running, `closed` + `success`/`none` Finished with the action's version as
//!   its `sw_version`, `closed` + `failure` Error (and no more offers until a
//!   [`Goosebit::force_update`]). A device whose `sw_version` is the assigned version is
//!   offered nothing.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::nginx::free_port;

/// The environment variable naming goosebit's virtual environment.
pub const VENV_VAR: &str = "HANDRAIL_GOOSEBIT_VENV";

/// The tenant goosebit serves the DDI API under (its default, set explicitly).
pub const TENANT: &str = "DEFAULT";

/// The poll interval goosebit tells registered devices: its shortest (`HH:MM:SS`).
pub const POLL_TIME: &str = "00:00:01";

/// The user [`Goosebit::start`] creates.
const USER: &str = "admin";
const PASSWORD: &str = "handrail-test";

/// How long the server may take to start (a loaded machine imports Python slowly).
const START_BOUND: Duration = Duration::from_secs(60);

/// goosebit's logging: its own configuration, but keeping the loggers that exist before
/// it is applied (uvicorn's), whose records are the request lines and the tracebacks of
/// failed requests; goosebit's default drops them.
const LOGGING: &str = r#"{"version": 1, "disable_existing_loggers": false,
 "formatters": {"simple": {"format": "%(asctime)s - %(name)s - %(levelname)s - %(message)s"}},
 "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple", "level": "DEBUG"}},
 "loggers": {"DDI API": {"level": "DEBUG"}, "tortoise": {"level": "WARNING"},
  "aiosqlite": {"level": "WARNING"}, "aiocache": {"level": "WARNING"}, "multipart": {"level": "INFO"}},
 "root": {"level": "INFO", "handlers": ["console"]}}"#;

/// A software (an uploaded `.swu`) as goosebit numbers it; also the id of the actions
/// that deploy it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SoftwareId(pub u64);

impl std::fmt::Display for SoftwareId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A running goosebit.
pub struct Goosebit {
    child: Child,
    port: u16,
    dir: PathBuf,
    token: String,
}

impl Goosebit {
    /// Starts goosebit with its database, artifacts, configuration and log in `dir`
    /// (created if missing), bound to 127.0.0.1 on a free port, telling devices to poll
    /// every second; creates the first user and keeps its token. Retries with another
    /// port when one was taken meanwhile.
    ///
    /// # Panics
    /// When `HANDRAIL_GOOSEBIT_VENV` is not set or names no goosebit install (a test whose
    /// server is missing fails, never skips), or the server does not start.
    pub fn start(dir: &Path) -> Goosebit {
        let venv = venv();
        fs::create_dir_all(dir.join("artifacts"))
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
        let dir = fs::canonicalize(dir).expect("the goosebit folder, absolute");
        // Settings from a file of our own: otherwise goosebit reads ./goosebit.yaml or
        // /etc/goosebit.yaml if they exist. Environment variables win over it.
        fs::write(dir.join("goosebit.yaml"), "{}\n").expect("goosebit.yaml");
        let migrations = migrations(&venv);
        fs::write(
            dir.join("aerich.toml"),
            format!(
                "[tool.aerich]\ntortoise_orm = \"goosebit.db.config.TORTOISE_CONF\"\n\
                 location = \"{}\"\nsrc_folder = \".\"\n",
                migrations.display()
            ),
        )
        .expect("aerich.toml");

        let aerich_log = dir.join("aerich.log");
        let status = settings(Command::new(venv.join("bin/aerich")), &dir)
            .args(["-c", "aerich.toml", "upgrade"])
            .stdin(Stdio::null())
            .stdout(log_file(&aerich_log))
            .stderr(log_file(&aerich_log))
            .status()
            .unwrap_or_else(|e| panic!("cannot run aerich from {}: {e}", venv.display()));
        assert!(
            status.success(),
            "aerich upgrade (goosebit's schema) failed ({status}):\n{}",
            fs::read_to_string(&aerich_log).unwrap_or_default()
        );

        let log = dir.join("goosebit.log");
        for _ in 0..5 {
            let port = free_port();
            let mut child = uvicorn(&venv, &dir, port, &log);
            if wait_ready(&mut child, port, &log) {
                let mut server = Goosebit {
                    child,
                    port,
                    dir,
                    token: String::new(),
                };
                server.token = server.setup();
                return server;
            }
            let _ = child.wait();
            let text = fs::read_to_string(&log).unwrap_or_default();
            if !text.contains("address already in use") {
                panic!("goosebit did not start:\n{text}");
            }
        }
        panic!(
            "goosebit did not start (no free port):\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The tenant of its DDI API, `DEFAULT`.
    pub fn tenant(&self) -> &'static str {
        TENANT
    }

    /// The DDI resource of `device`, `{url}/DEFAULT/controller/v1/{device}`: what a
    /// device's configuration names; everything further is a link the server answers.
    pub fn controller(&self, device: &str) -> String {
        format!("{}/{TENANT}/controller/v1/{device}", self.url())
    }

    /// The bearer token of the management API.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Its folder (database, artifacts, configuration, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log so far: uvicorn's request lines, goosebit's messages, tracebacks.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("goosebit.log")).unwrap_or_default()
    }

    /// Uploads the `.swu` at `swu` (`PUT /api/v1/software`, multipart).
    ///
    /// # Panics
    /// When goosebit refuses it (422: not an `.swu` it can read; 409: a software of the
    /// same version and compatible hardware exists).
    pub fn upload(&self, swu: &Path) -> SoftwareId {
        let bytes = fs::read(swu).unwrap_or_else(|e| panic!("cannot read {}: {e}", swu.display()));
        let name = swu
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("update.swu");
        let boundary = format!("handrail-goosebit-{}-{}", std::process::id(), bytes.len());
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let answer = self.api("PUT", "/api/v1/software", &content_type, &body);
        let id = answer.json()["id"].as_u64();
        match (answer.status, id) {
            (200, Some(id)) => SoftwareId(id),
            _ => self.fail(&format!("upload of {} refused: {answer}", swu.display())),
        }
    }

    /// Assigns `software` to `device` (`PATCH /api/v1/devices`): offered at its next poll
    /// once it has sent its configData.
    ///
    /// # Panics
    /// When the device has not polled yet (goosebit would answer 500), or goosebit refuses
    /// (422: the software is not compatible with the device's hardware).
    pub fn assign(&self, device: &str, software: SoftwareId) {
        self.patch_device(device, json!({"software": software.to_string()}));
    }

    /// Makes goosebit offer `device`'s assignment again although it reported an error, or
    /// already runs the assigned version (`force_update`, cleared by its next `closed`).
    ///
    /// # Panics
    /// As [`Goosebit::assign`].
    pub fn force_update(&self, device: &str) {
        self.patch_device(device, json!({"force_update": true}));
    }

    /// `device`'s entry of `GET /api/v1/devices` (`last_state` ∈ Unknown, Registered,
    /// Running, Error, Finished; `sw_version`, `progress`, `assigned_software`,
    /// `hardware`, …), or `None` while goosebit does not know it.
    pub fn device(&self, id: &str) -> Option<Value> {
        let answer = self.api("GET", "/api/v1/devices", "", &[]);
        if answer.status != 200 {
            self.fail(&format!("GET /api/v1/devices: {answer}"));
        }
        answer.json()["devices"]
            .as_array()
            .and_then(|devices| devices.iter().find(|d| d["id"] == id).cloned())
    }

    /// What `device` sent as feedback details, one line each, since its current action
    /// started (`GET /api/v1/devices/{id}/log`), or `None` while goosebit does not know it.
    pub fn device_log(&self, id: &str) -> Option<String> {
        // Asking for an unknown device would register it.
        self.device(id)?;
        let answer = self.api("GET", &format!("/api/v1/devices/{id}/log"), "", &[]);
        if answer.status != 200 {
            self.fail(&format!("the log of {id}: {answer}"));
        }
        Some(answer.json()["log"].as_str().unwrap_or_default().to_owned())
    }

    /// Polls `device`'s entry every 100 ms until `pred` holds for it, and returns it.
    ///
    /// # Panics
    /// When `bound` passes first, naming `what` was waited for, with the last entry and
    /// the server's log.
    pub fn wait_device(
        &self,
        id: &str,
        what: &str,
        bound: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + bound;
        loop {
            let entry = self.device(id);
            if let Some(entry) = &entry
                && pred(entry)
            {
                return entry.clone();
            }
            if Instant::now() >= deadline {
                let last = entry.map_or_else(|| "none".to_owned(), |e| e.to_string());
                self.fail(&format!(
                    "device {id} not {what} within {bound:?}; its last entry: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `POST /setup`: the first user, and its token.
    /// Stops the server (its whole process group), keeping its database and artifacts:
    /// devices find it down until [`Goosebit::restart`].
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped server again, on the same port with the same folder, and logs
    /// in again (its tokens die with the process).
    ///
    /// # Panics
    /// When it does not start.
    pub fn restart(&mut self) {
        let log = self.dir.join("goosebit.log");
        self.child = uvicorn(&venv(), &self.dir, self.port, &log);
        if !wait_ready(&mut self.child, self.port, &log) {
            self.fail("goosebit did not start again on its port");
        }
        let form = format!("username={USER}&password={PASSWORD}");
        let answer = self.api(
            "POST",
            "/login",
            "application/x-www-form-urlencoded",
            form.as_bytes(),
        );
        self.token = match answer.json()["access_token"].as_str() {
            Some(token) if answer.status == 200 => token.to_owned(),
            _ => self.fail(&format!("POST /login: {answer}")),
        };
    }

    fn setup(&self) -> String {
        let form = format!("username={USER}&password={PASSWORD}");
        let answer = self.api(
            "POST",
            "/setup",
            "application/x-www-form-urlencoded",
            form.as_bytes(),
        );
        match answer.json()["access_token"].as_str() {
            Some(token) if answer.status == 200 => token.to_owned(),
            _ => self.fail(&format!("POST /setup: {answer}")),
        }
    }

    fn patch_device(&self, device: &str, mut change: Value) {
        if self.device(device).is_none() {
            self.fail(&format!(
                "device {device} is unknown to goosebit: it must poll before it can be changed"
            ));
        }
        change["devices"] = json!([device]);
        let answer = self.api(
            "PATCH",
            "/api/v1/devices",
            "application/json",
            change.to_string().as_bytes(),
        );
        if answer.status != 200 {
            self.fail(&format!("PATCH /api/v1/devices {change}: {answer}"));
        }
    }

    /// A request to the management API, with the token once there is one; panics with the
    /// log when the server cannot be reached.
    fn api(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Answer {
        let auth = format!("Bearer {}", self.token);
        let mut headers = Vec::new();
        // None before there is a token: goosebit answers a malformed one with a 500.
        if !self.token.is_empty() {
            headers.push(("Authorization", auth.as_str()));
        }
        if !content_type.is_empty() {
            headers.push(("Content-Type", content_type));
        }
        let url = format!("{}{path}", self.url());
        try_http(method, &url, &headers, body)
            .unwrap_or_else(|e| self.fail(&format!("{method} {url}: {e}")))
    }

    fn fail(&self, message: &str) -> ! {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(150)..].join("\n");
        panic!("goosebit: {message}\n--- server log (last 150 lines) ---\n{tail}");
    }
}

impl Drop for Goosebit {
    fn drop(&mut self) {
        // The whole group the server leads (uvicorn runs one process, but whatever it
        // may start goes too), then the server itself should the group be gone.
        self.stop();
    }
}

/// uvicorn serving goosebit from `dir` on 127.0.0.1:`port`, its output to `log`, in a
/// process group of its own (stopped as one).
fn uvicorn(venv: &Path, dir: &Path, port: u16, log: &Path) -> Child {
    settings(Command::new(venv.join("bin/uvicorn")), dir)
        .args(["goosebit:app", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(log_file(log))
        .stderr(log_file(log))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run uvicorn from {}: {e}", venv.display()))
}

/// The virtual environment `scripts/setup.sh` installs goosebit into.
fn venv() -> PathBuf {
    let venv = std::env::var_os(VENV_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("{VENV_VAR} is not set: scripts/setup.sh installs goosebit and exports it")
        });
    assert!(
        venv.join("bin/uvicorn").is_file() && venv.join("bin/aerich").is_file(),
        "{VENV_VAR}={} holds no goosebit install (bin/uvicorn, bin/aerich): run scripts/setup.sh",
        venv.display()
    );
    venv
}

/// goosebit's migrations folder in the virtual environment (aerich's `location`).
fn migrations(venv: &Path) -> PathBuf {
    fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages/goosebit/db/migrations"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no goosebit/db/migrations under {}/lib", venv.display()))
}

/// `command` with goosebit's settings for `dir`, run there; no other `GOOSEBIT_*`.
fn settings(mut command: Command, dir: &Path) -> Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GOOSEBIT_") {
            command.env_remove(name);
        }
    }
    command
        .current_dir(dir)
        .env("GOOSEBIT_SETTINGS", dir.join("goosebit.yaml"))
        .env(
            "GOOSEBIT_DB_URI",
            format!("sqlite://{}", dir.join("goosebit.sqlite3").display()),
        )
        .env("GOOSEBIT_ARTIFACTS_DIR", dir.join("artifacts"))
        .env("GOOSEBIT_TENANT", TENANT)
        .env("GOOSEBIT_POLL_TIME", POLL_TIME)
        .env("GOOSEBIT_LOGGING", LOGGING);
    command
}

fn log_file(path: &Path) -> File {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// Waits until goosebit answers on `port` (true; uvicorn binds once the app has started),
/// or `child` ends (false); panics with the log past [`START_BOUND`].
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> bool {
    let deadline = Instant::now() + START_BOUND;
    let url = format!("http://127.0.0.1:{port}/login");
    loop {
        if let Ok(answer) = try_http("GET", &url, &[], &[]) {
            // 302 to /setup: no user yet.
            if answer.status < 500 {
                return true;
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!(
                "goosebit did not answer on {port} within {START_BOUND:?}:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a minimal SWUpdate image to `dir/name`, made by the system's `cpio` (newc):
/// `sw-description` first (`software.version` = `version`, and `hardware-compatibility`
/// = `revisions` of the board `default` unless empty), then a small `payload` member.
/// Each version and revision list makes another file (goosebit keys artifacts by hash).
///
/// # Panics
/// When `cpio` (scripts/setup.sh installs it) cannot run.
pub fn minimal_swu(dir: &Path, name: &str, version: &str, revisions: &[&str]) -> PathBuf {
    let work = dir.join(format!("{name}.members"));
    fs::create_dir_all(&work).expect("the members' folder");
    let mut description = format!(
        "software =\n{{\n\tversion = \"{version}\";\n\tdescription = \"handrail test {name}\";\n"
    );
    if !revisions.is_empty() {
        let list: Vec<String> = revisions.iter().map(|r| format!("\"{r}\"")).collect();
        description.push_str(&format!(
            "\thardware-compatibility = [ {} ];\n",
            list.join(", ")
        ));
    }
    description.push_str("};\n");
    fs::write(work.join("sw-description"), description).expect("sw-description");
    fs::write(
        work.join("payload"),
        format!("payload of {name} {version}\n").repeat(64),
    )
    .expect("payload");
    let out = dir.join(name);
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&work)
        .stdin(Stdio::piped())
        .stdout(File::create(&out).expect("the .swu"))
        .spawn()
        .expect("cpio runs (scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .expect("cpio's stdin")
        .write_all(b"sw-description\npayload\n")
        .expect("the member list");
    let status = child.wait().expect("cpio ends");
    assert!(status.success(), "cpio failed: {status}");
    out
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or `Value::Null` when it is none.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text())
    }
}

/// One HTTP/1.1 request to a plain `http://host:port/path` URL (a goosebit link, say),
/// as a device would send it, independent of the HTTP code under test: `headers` besides
/// `Host`, `Content-Length` and `Connection: close`, and `body` (empty for none).
///
/// # Panics
/// When the server cannot be reached or answers no HTTP.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    try_http(method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// [`http`], failures returned.
pub fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad(format!("not a plain http URL: {url}")))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;

    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad(format!("no HTTP head in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("no status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if method == "HEAD" {
        answer.body.clear();
    } else if answer
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        answer.body = dechunk(&answer.body).ok_or_else(|| bad("a broken chunked body".into()))?;
    } else if let Some(length) = answer.header("content-length").and_then(|l| l.parse().ok()) {
        answer.body.truncate(length);
    }
    Ok(answer)
}

/// A chunked body's data.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}
