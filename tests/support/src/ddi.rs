//! A small hawkBit DDI server for the tests, beside goosebit: it offers what goosebit
//! does not (cancelAction, maintenance windows, gateway and target tokens, sha256,
//! several artifacts, a server that is down) and records every request and feedback.
//!
//! It serves `/{tenant}/controller/v1/{controller}` and the resources it links to, and
//! artifacts under `/files/`, with `Range` and `If-Range` (the `ETag` is the content's
//! length and a generation number that changes when the test replaces the file).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// An artifact the server offers.
#[derive(Debug, Clone)]
pub struct OfferedArtifact {
    /// Its file name.
    pub filename: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Offer its sha256 (hex) among the hashes.
    pub sha256: bool,
    /// Offer its sha1 (hex).
    pub sha1: bool,
}

/// What the server holds; change it through [`DdiServer::with`].
#[derive(Debug, Default)]
pub struct DdiState {
    /// The polling interval it tells the device (`HH:MM:SS`).
    pub sleep: String,
    /// The action it offers, with its artifacts, as (id, chunk version, artifacts).
    pub action: Option<(String, String, Vec<OfferedArtifact>)>,
    /// `deployment.update` of the offered action (`attempt`, `forced`, `skip`).
    pub update: String,
    /// A maintenance window (`available`, `unavailable`).
    pub window: Option<String>,
    /// A cancel it offers: (cancel action id, the action to stop).
    pub cancel: Option<(String, String)>,
    /// The `Authorization` header every controller request must carry.
    pub authorization: Option<String>,
    /// Answers every controller request with 503 while set.
    pub down: bool,
    /// Artifact connections are cut after this many body bytes while set.
    pub cut_after: Option<u64>,
    /// Generation of the artifacts (part of their ETag).
    pub generation: u32,
    /// Action ids closed by the device (no longer offered; further feedback: 410).
    pub closed: Vec<String>,
    /// Every feedback: (action id, body).
    pub feedback: Vec<(String, Value)>,
    /// Every cancel feedback: (cancel id, body).
    pub cancel_feedback: Vec<(String, Value)>,
    /// Every configData body.
    pub config_data: Vec<Value>,
    /// Every request: (method, path, `Authorization`, `Range`, `If-Range`).
    pub requests: Vec<(String, String, String, String, String)>,
    /// Controller polls answered (any status).
    pub polls: u64,
}

/// The server, on 127.0.0.1; stopped when dropped.
pub struct DdiServer {
    port: u16,
    shared: Arc<(Mutex<DdiState>, Condvar)>,
    tenant: String,
}

impl DdiServer {
    /// Starts serving tenant `DEFAULT`, polling interval one second.
    pub fn start() -> DdiServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new((
            Mutex::new(DdiState {
                sleep: "00:00:01".into(),
                update: "attempt".into(),
                ..DdiState::default()
            }),
            Condvar::new(),
        ));
        let tenant = "DEFAULT".to_owned();
        let s = shared.clone();
        let t = tenant.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                let t = t.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, port, &t, &s);
                });
            }
        });
        DdiServer {
            port,
            shared,
            tenant,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Changes the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut DdiState) -> T) -> T {
        let (lock, cond) = &*self.shared;
        let mut state = lock.lock().unwrap();
        let out = f(&mut state);
        cond.notify_all();
        out
    }

    /// Waits until `pred` holds of the state (checked on every request), at most
    /// `bound`; panics naming `what` with the state's feedback otherwise.
    pub fn wait(&self, what: &str, bound: Duration, pred: impl Fn(&DdiState) -> bool) {
        let (lock, cond) = &*self.shared;
        let end = Instant::now() + bound;
        let mut state = lock.lock().unwrap();
        while !pred(&state) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "waited {bound:?} for {what}; feedback: {:#?}; cancel feedback: {:#?}; last requests: {:?}",
                    state.feedback,
                    state.cancel_feedback,
                    state.requests.iter().rev().take(10).collect::<Vec<_>>()
                );
            }
            state = cond.wait_timeout(state, left).unwrap().0;
        }
    }

    /// The `closed` feedback the action got: `finished` values, in order.
    pub fn closed_results(&self, action: &str) -> Vec<String> {
        self.with(|s| {
            s.feedback
                .iter()
                .filter(|(a, f)| a == action && f["status"]["execution"] == "closed")
                .map(|(_, f)| {
                    f["status"]["result"]["finished"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned()
                })
                .collect()
        })
    }
}

fn sha_hex(bytes: &[u8], sha256: bool) -> String {
    use sha2::Digest;
    let digest: Vec<u8> = if sha256 {
        sha2::Sha256::digest(bytes).to_vec()
    } else {
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
            .as_ref()
            .to_vec()
    };
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn serve(
    stream: TcpStream,
    port: u16,
    tenant: &str,
    shared: &(Mutex<DdiState>, Condvar),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let path = target.split('?').next().unwrap_or("").to_owned();
    let header = |k: &str| headers.get(k).cloned().unwrap_or_default();
    let (lock, cond) = shared;
    let mut state = lock.lock().unwrap();
    state.requests.push((
        method.clone(),
        path.clone(),
        header("authorization"),
        header("range"),
        header("if-range"),
    ));
    cond.notify_all();
    let mut out = stream;
    let respond = |out: &mut TcpStream, status: u16, body: &[u8], extra: &str| {
        let reason = match status {
            200 => "OK",
            206 => "Partial Content",
            401 => "Unauthorized",
            404 => "Not Found",
            410 => "Gone",
            503 => "Service Unavailable",
            _ => "Other",
        };
        let _ = write!(
            out,
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        );
        let _ = out.write_all(body);
    };
    let base = format!("/{tenant}/controller/v1/");
    if let Some(name) = path.strip_prefix("/files/") {
        let artifact = state
            .action
            .as_ref()
            .and_then(|(_, _, arts)| arts.iter().find(|a| a.filename == name).cloned());
        let Some(a) = artifact else {
            respond(&mut out, 404, b"", "");
            return Ok(());
        };
        let etag = format!("\"{}-{}\"", a.bytes.len(), state.generation);
        let cut = state.cut_after;
        drop(state);
        let range = header("range");
        let from = range
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse::<usize>().ok())
            .filter(|_| {
                let ir = header("if-range");
                ir.is_empty() || ir == etag
            })
            .filter(|f| *f < a.bytes.len());
        let (status, slice, extra) = match from {
            Some(f) => (
                206,
                &a.bytes[f..],
                format!(
                    "ETag: {etag}\r\nContent-Range: bytes {f}-{}/{}\r\n",
                    a.bytes.len() - 1,
                    a.bytes.len()
                ),
            ),
            None => (
                200,
                &a.bytes[..],
                format!("ETag: {etag}\r\nAccept-Ranges: bytes\r\n"),
            ),
        };
        let _ = write!(
            out,
            "HTTP/1.1 {status} OK\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            slice.len()
        );
        match cut {
            Some(n) if (n as usize) < slice.len() => {
                let _ = out.write_all(&slice[..n as usize]);
                let _ = out.flush();
                let _ = out.shutdown(std::net::Shutdown::Both);
            }
            _ => {
                let _ = out.write_all(slice);
            }
        }
        return Ok(());
    }
    let Some(rest) = path.strip_prefix(&base) else {
        respond(&mut out, 404, b"", "");
        return Ok(());
    };
    if state.down {
        state.polls += 1;
        cond.notify_all();
        respond(&mut out, 503, b"down", "");
        return Ok(());
    }
    if let Some(auth) = &state.authorization
        && header("authorization") != *auth
    {
        respond(&mut out, 401, b"", "");
        return Ok(());
    }
    let mut segs = rest.split('/');
    let controller = segs.next().unwrap_or("").to_owned();
    let link = |p: &str| json!({"href": format!("http://127.0.0.1:{port}{base}{controller}/{p}")});
    let seg: Vec<&str> = segs.collect();
    match (method.as_str(), seg.as_slice()) {
        ("GET", []) => {
            state.polls += 1;
            let mut links = serde_json::Map::new();
            if state.config_data.is_empty() {
                links.insert("configData".into(), link("configData"));
            }
            if let Some((cancel, _)) = &state.cancel {
                links.insert(
                    "cancelAction".into(),
                    link(&format!("cancelAction/{cancel}")),
                );
            } else if let Some((id, _, _)) = &state.action
                && !state.closed.contains(id)
            {
                links.insert(
                    "deploymentBase".into(),
                    link(&format!("deploymentBase/{id}?c={}", state.generation)),
                );
            }
            let body = json!({"config": {"polling": {"sleep": state.sleep}}, "_links": links});
            cond.notify_all();
            respond(&mut out, 200, body.to_string().as_bytes(), "");
        }
        ("PUT", ["configData"]) => {
            state
                .config_data
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            cond.notify_all();
            respond(&mut out, 200, b"", "");
        }
        ("GET", ["deploymentBase", id]) => {
            let Some((aid, version, arts)) = state.action.clone().filter(|(a, _, _)| a == id)
            else {
                respond(&mut out, 404, b"", "");
                return Ok(());
            };
            let artifacts: Vec<Value> = arts
                .iter()
                .map(|a| {
                    let mut hashes = serde_json::Map::new();
                    if a.sha256 {
                        hashes.insert("sha256".into(), sha_hex(&a.bytes, true).into());
                    }
                    if a.sha1 {
                        hashes.insert("sha1".into(), sha_hex(&a.bytes, false).into());
                    }
                    json!({"filename": a.filename, "size": a.bytes.len(), "hashes": hashes,
                        "_links": {"download-http": {"href": format!("http://127.0.0.1:{port}/files/{}", a.filename)}}})
                })
                .collect();
            let mut deployment = json!({"download": "forced", "update": state.update,
                "chunks": [{"part": "os", "name": "firmware", "version": version, "artifacts": artifacts}]});
            if let Some(w) = &state.window {
                deployment["maintenanceWindow"] = w.clone().into();
            }
            let body = json!({"id": aid, "deployment": deployment});
            respond(&mut out, 200, body.to_string().as_bytes(), "");
        }
        ("POST", ["deploymentBase", id, "feedback"]) => {
            let id = id.to_string();
            if state.closed.contains(&id) {
                respond(&mut out, 410, b"", "");
                return Ok(());
            }
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if value["status"]["execution"] == "closed" {
                state.closed.push(id.clone());
            }
            state.feedback.push((id, value));
            cond.notify_all();
            respond(&mut out, 200, b"", "");
        }
        ("GET", ["cancelAction", id]) => {
            let Some((cid, stop)) = state.cancel.clone().filter(|(c, _)| c == id) else {
                respond(&mut out, 404, b"", "");
                return Ok(());
            };
            let body = json!({"id": cid, "cancelAction": {"stopId": stop}});
            respond(&mut out, 200, body.to_string().as_bytes(), "");
        }
        ("POST", ["cancelAction", id, "feedback"]) => {
            let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if value["status"]["execution"] == "closed"
                && let Some((_, stop)) = state.cancel.take()
            {
                state.closed.push(stop);
            }
            state.cancel_feedback.push((id.to_string(), value));
            cond.notify_all();
            respond(&mut out, 200, b"", "");
        }
        _ => respond(&mut out, 404, b"", ""),
    }
    Ok(())
}
