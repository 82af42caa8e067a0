//! Payload downloads through the real binary, from real servers the tests start: nginx
//! (HTTP, HTTPS with a CA of the test's own, mutual TLS, a redirect to another host, a
//! 404) and tinyproxy (the proxy). Beside them, one small server written here does what
//! nginx will not: cut a connection in the middle of a file.

mod common;

use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{Device, sha256_base64};
use handrail_test_support::manifest::{Update, inline_step};
use handrail_test_support::nginx::{Nginx, free_port, read_request_head, wait_listening};
use serde_json::{Value, json};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, made
/// with openssl as a device maker would.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    fn make(dir: &Path) -> Pki {
        let p = |n: &str| dir.join(n);
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=handrail test CA",
            ])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")));
        for (name, serial, ext) in [
            (
                "server",
                "7",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "8", "extendedKeyUsage=clientAuth\n"),
        ] {
            fs::write(
                p(&format!("{name}.ext")),
                format!("basicConstraints=CA:FALSE\n{ext}"),
            )
            .unwrap();
            run(Command::new("openssl")
                .args(["req", "-subj", &format!("/CN={name}")])
                .args(ec)
                .arg("-keyout")
                .arg(p(&format!("{name}.key")))
                .arg("-out")
                .arg(p(&format!("{name}.csr"))));
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-set_serial", serial])
                .arg("-in")
                .arg(p(&format!("{name}.csr")))
                .arg("-CA")
                .arg(p("ca.pem"))
                .arg("-CAkey")
                .arg(p("ca.key"))
                .arg("-extfile")
                .arg(p(&format!("{name}.ext")))
                .arg("-out")
                .arg(p(&format!("{name}.pem"))));
        }
        Pki {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            client_cert: p("client.pem"),
            client_key: p("client.key"),
        }
    }
}

/// nginx serving `www` over HTTP (on 127.0.0.1 and 127.0.0.2), HTTPS and HTTPS that
/// wants a client certificate, with the test's own CA.
struct Servers {
    nginx: Nginx,
    pki: Pki,
    http: u16,
    https: u16,
    mtls: u16,
    /// The key material, kept as long as the server.
    _pki_dir: tempfile::TempDir,
}

impl Servers {
    fn start() -> Servers {
        let pki_dir = tempfile::tempdir().unwrap();
        let pki = Pki::make(pki_dir.path());
        let (cert, key, ca) = (
            pki.server_cert.display().to_string(),
            pki.server_key.display().to_string(),
            pki.ca.display().to_string(),
        );
        let nginx = Nginx::start(3, &|_, ports| {
            format!(
                r#"
    server {{
        listen 127.0.0.1:{https} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
    }}
    server {{
        listen 127.0.0.1:{mtls} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
    }}
"#,
                https = ports[1],
                mtls = ports[2],
            )
        });
        Servers {
            http: nginx.ports[0],
            https: nginx.ports[1],
            mtls: nginx.ports[2],
            nginx,
            pki,
            _pki_dir: pki_dir,
        }
    }
}

impl std::ops::Deref for Servers {
    type Target = Nginx;

    fn deref(&self) -> &Nginx {
        &self.nginx
    }
}

/// A payload file: its bytes, published under its name.
fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

/// An envelope, as ADU's service delivers one, for one script step that runs
/// `device-step.sh` with `blob.bin` beside it; `urls` maps the files' ids (`f1` the
/// script, `f2` the blob) to where they are downloaded from.
fn envelope(device: &Device, id: &str, script: &[u8], blob: &[u8], urls: Value) -> PathBuf {
    let args = format!("--device {}", device.device.display());
    let mut step = inline_step(
        "microsoft/script:1",
        &["device-step.sh", "blob.bin"],
        json!({
            "scriptFileName": "device-step.sh",
            "arguments": args,
            "installedCriteria": id,
        }),
    );
    step["description"] = "downloaded step".into();
    let manifest = Update::new("contoso", "downloaded", "1.0")
        .compatible_with("contoso", "e2e")
        .step(step)
        .file(
            "f1",
            "device-step.sh",
            script.len() as u64,
            &sha256_base64(script),
        )
        .file("f2", "blob.bin", blob.len() as u64, &sha256_base64(blob))
        .json()
        .clone();
    device.manifest(
        &format!("{id}.json"),
        &json!({
            "workflow": {"action": 3, "id": id},
            "updateManifest": manifest.to_string(),
            "updateManifestSignature": "",
            "fileUrls": urls,
        }),
    )
}

fn script() -> Vec<u8> {
    fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/fixtures/device-step.sh"))
        .unwrap()
}

/// `handrail [--config C] deploy <envelope>` with an empty payload folder.
fn deploy(
    device: &Device,
    config: Option<&Path>,
    envelope: &Path,
    env: &[(&str, &str)],
) -> common::Run {
    let mut args = Vec::new();
    if let Some(c) = config {
        args.extend(["--config", c.to_str().unwrap()]);
    }
    args.extend([
        "deploy",
        envelope.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ]);
    device.run_env(&args, env)
}

fn config(device: &Device, name: &str, body: &str) -> PathBuf {
    let path = device.tmp.path().join(name);
    device.write_config(&path, body);
    path
}

fn assert_deployed(device: &Device, run: &common::Run, id: &str) {
    assert_eq!(
        run.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        run.stdout(),
        run.stderr()
    );
    assert!(device.device.join(id).exists(), "{:?}", device.log());
    let left: Vec<_> = fs::read_dir(device.state.join("downloads"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "downloads left behind: {left:?}");
}

#[test]
fn an_envelopes_files_are_downloaded_from_its_urls_and_deployed() {
    let nginx = Servers::start();
    let device = Device::new();
    let (script, blob) = (script(), blob(3 << 20, 1));
    nginx.publish("device-step.sh", &script);
    nginx.publish("blob.bin", &blob);
    // The blob comes through a redirect to another host.
    let urls = json!({
        "f1": nginx.url("device-step.sh"),
        "f2": format!("http://127.0.0.1:{}/moved/?name=blob.bin", nginx.http),
    });
    let env = envelope(&device, "fetched", &script, &blob, urls);
    let args = [
        "--json",
        "deploy",
        env.to_str().unwrap(),
        "--payloads",
        device.payloads.to_str().unwrap(),
    ];
    let run = device.run(&args);
    assert_deployed(&device, &run, "fetched");
    let script_requests = nginx.requests("device-step.sh");
    assert_eq!(script_requests.len(), 1, "{script_requests:?}");
    assert_eq!(script_requests[0].status, 200);
    let blob_requests = nginx.requests("blob.bin");
    assert_eq!(blob_requests.len(), 1, "{blob_requests:?}");
    assert_eq!(blob_requests[0].sent, blob.len() as u64, "each byte once");
    // The download's progress is shown, as JSON events here.
    let events: Vec<Value> = run
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["event"] == "download" && v["file"] == "blob.bin")
        .collect();
    assert!(events.len() >= 10, "{events:?}");
    assert_eq!(events.last().unwrap()["done"], blob.len());
    assert_eq!(events.last().unwrap()["total"], blob.len());
    // The plain form, outside a terminal: a line per tenth, in human units.
    let again = envelope(
        &device,
        "fetched-again",
        &script,
        &blob,
        json!({
            "f1": nginx.url("device-step.sh"),
            "f2": nginx.url("blob.bin"),
        }),
    );
    let run = deploy(&device, None, &again, &[]);
    assert_deployed(&device, &run, "fetched-again");
    let halfway = run
        .stdout()
        .lines()
        .find(|l| l.starts_with("  downloading blob.bin: 50% ("))
        .map(str::to_owned);
    assert!(
        halfway
            .as_ref()
            .is_some_and(|l| l.ends_with(" of 3.00 MiB)")),
        "{}",
        run.stdout()
    );
}

#[test]
fn https_is_checked_against_the_configured_ca_and_presents_the_client_certificate() {
    let nginx = Servers::start();
    let device = Device::new();
    let (script, blob) = (script(), blob(100_000, 2));
    nginx.publish("device-step.sh", &script);
    nginx.publish("blob.bin", &blob);
    let urls = |port: u16| {
        json!({
            "f1": format!("https://127.0.0.1:{port}/files/device-step.sh"),
            "f2": format!("https://127.0.0.1:{port}/files/blob.bin"),
        })
    };
    let pki = &nginx.pki;
    // The bundled roots do not know the test's CA: refused, and said why.
    let env = envelope(&device, "tls-1", &script, &blob, urls(nginx.https));
    let run = deploy(&device, None, &env, &[]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("UnknownIssuer"), "{}", run.stderr());
    assert!(
        run.stderr().contains("https://127.0.0.1"),
        "{}",
        run.stderr()
    );
    let with_ca = config(
        &device,
        "ca.toml",
        &format!(
            "[download]\nca_file = \"{}\"\nretries = 0\n",
            pki.ca.display()
        ),
    );
    let run = deploy(&device, Some(&with_ca), &env, &[]);
    assert_deployed(&device, &run, "tls-1");
    // The server that wants a client certificate refuses a device without one …
    let env = envelope(&device, "tls-2", &script, &blob, urls(nginx.mtls));
    let run = deploy(&device, Some(&with_ca), &env, &[]);
    assert_ne!(run.code(), Some(0), "{}", run.stderr());
    assert!(run.stderr().contains("device-step.sh"), "{}", run.stderr());
    assert!(!device.device.join("tls-2").exists());
    // … and serves one that presents it.
    let mtls = config(
        &device,
        "mtls.toml",
        &format!(
            "[download]\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
            pki.ca.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
    );
    let run = deploy(&device, Some(&mtls), &env, &[]);
    assert_deployed(&device, &run, "tls-2");
    assert!(
        nginx
            .requests("blob.bin")
            .iter()
            .any(|r| r.port == nginx.mtls && r.status == 200)
    );
}

#[test]
fn a_missing_file_fails_at_once_with_the_servers_answer_and_the_id_can_run_once_it_is_there() {
    let nginx = Servers::start();
    let device = Device::new();
    let (script, blob) = (script(), blob(5000, 3));
    nginx.publish("device-step.sh", &script);
    let urls = json!({"f1": nginx.url("device-step.sh"), "f2": nginx.url("blob.bin")});
    let env = envelope(&device, "gone", &script, &blob, urls);
    let run = deploy(&device, None, &env, &[]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains(&format!(
            "payload file `blob.bin` (instructions.steps[0]): downloading it (fileUrls.f2): {}: the server answered HTTP 404; not retried",
            nginx.url("blob.bin")
        )),
        "{}",
        run.stderr()
    );
    assert_eq!(nginx.requests("blob.bin").len(), 1, "a 404 is asked once");
    assert!(device.log().is_empty(), "nothing ran");
    // Published now: the same deployment id runs (a refusal does not consume it).
    nginx.publish("blob.bin", &blob);
    let run = deploy(&device, None, &env, &[]);
    assert_deployed(&device, &run, "gone");
}

#[test]
fn https_and_http_go_through_the_proxy_the_environment_names_unless_no_proxy_lists_the_host() {
    let nginx = Servers::start();
    let device = Device::new();
    let (script, blob) = (script(), blob(200_000, 4));
    nginx.publish("device-step.sh", &script);
    nginx.publish("blob.bin", &blob);
    let proxy = Tinyproxy::start(&[nginx.https, nginx.http]);
    let with_ca = config(
        &device,
        "ca.toml",
        &format!("[download]\nca_file = \"{}\"\n", nginx.pki.ca.display()),
    );
    let urls = json!({
        "f1": nginx.url("device-step.sh"),
        "f2": format!("https://127.0.0.1:{}/files/blob.bin", nginx.https),
    });
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let via = [
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("HTTP_PROXY", proxy_url.as_str()),
        ("NO_PROXY", ""),
    ];
    let env = envelope(&device, "proxied", &script, &blob, urls.clone());
    let run = deploy(&device, Some(&with_ca), &env, &via);
    assert_deployed(&device, &run, "proxied");
    let log = proxy.log();
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", nginx.https)),
        "the https download tunnels through the proxy: {log}"
    );
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", nginx.http)),
        "the http download tunnels through the proxy too: {log}"
    );
    let direct = [
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("HTTP_PROXY", proxy_url.as_str()),
        ("NO_PROXY", "localhost,127.0.0.1"),
    ];
    let before = proxy.log().len();
    let env = envelope(&device, "direct", &script, &blob, urls);
    let run = deploy(&device, Some(&with_ca), &env, &direct);
    assert_deployed(&device, &run, "direct");
    assert!(
        !proxy.log()[before..].contains("127.0.0.1:"),
        "NO_PROXY hosts are reached directly: {}",
        &proxy.log()[before..]
    );
}

/// tinyproxy on loopback, allowed to tunnel to `ports`.
struct Tinyproxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Tinyproxy {
    fn start(ports: &[u16]) -> Tinyproxy {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let connect: String = ports.iter().map(|p| format!("ConnectPort {p}\n")).collect();
            let conf = format!(
                "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nLogFile \"{}/tinyproxy.log\"\nLogLevel Info\nMaxClients 16\nTimeout 60\nDisableViaHeader Yes\n{connect}",
                dir.path().display()
            );
            let conf_path = dir.path().join("tinyproxy.conf");
            fs::write(&conf_path, conf).unwrap();
            let mut child = Command::new("tinyproxy")
                .arg("-d")
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tinyproxy (scripts/setup.sh installs it)");
            if wait_listening(&mut child, port) {
                return Tinyproxy { child, dir, port };
            }
            let _ = child.wait();
        }
        panic!("tinyproxy did not start");
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The partial download's record in the state directory, if one is kept: the bytes it
/// says are on disk.
fn kept_bytes(device: &Device) -> Option<u64> {
    let dir = device.state.join("downloads");
    fs::read_dir(dir).ok()?.find_map(|e| {
        let path = e.ok()?.path();
        (path.extension()? == "json")
            .then(|| serde_json::from_slice::<Value>(&fs::read(&path).ok()?).ok())
            .flatten()
            .and_then(|v| v["durable"].as_u64())
    })
}

/// Kills `handrail deploy` right after each of its durable writes while a 10 MiB file
/// downloads (every 4 MiB the partial file is made durable and recorded), then runs
/// the deployment again (or resumes it, once it was admitted): each ends deployed, and
/// a resumed download asks only for the bytes it did not keep, `If-Range` naming the
/// version it had.
#[test]
fn a_crash_at_every_point_of_a_download_resumes_with_what_was_kept_and_ends_deployed() {
    let nginx = Servers::start();
    let (script, blob) = (script(), blob(10 << 20, 5));
    nginx.publish("device-step.sh", &script);
    nginx.publish("blob.bin", &blob);
    let urls = json!({"f1": nginx.url("device-step.sh"), "f2": nginx.url("blob.bin")});
    let mut resumed = 0;
    for n in 1.. {
        let device = Device::new();
        let env = envelope(&device, "crashed", &script, &blob, urls.clone());
        let seen = nginx.requests("blob.bin").len();
        let crash = n.to_string();
        let first = device.run_env(
            &[
                "deploy",
                env.to_str().unwrap(),
                "--payloads",
                device.payloads.to_str().unwrap(),
            ],
            &[("HANDRAIL_CRASH_AFTER_WRITE", crash.as_str())],
        );
        if !first.killed() {
            assert_deployed(&device, &first, "crashed");
            assert!(
                n > 3,
                "a download has at least two checkpoints and the journal more: {n}"
            );
            break;
        }
        let kept = kept_bytes(&device);
        let again = deploy(&device, None, &env, &[]);
        let again = if again.code() == Some(6) {
            // Admitted before the crash: the journal's deployment is resumed.
            device.run(&["resume"])
        } else {
            again
        };
        assert_eq!(
            again.code(),
            Some(0),
            "crash at write {n}: {}",
            again.stderr()
        );
        assert!(device.device.join("crashed").exists(), "crash at write {n}");
        let requests = nginx.requests("blob.bin")[seen..].to_vec();
        if let Some(kept) = kept.filter(|k| *k > 0) {
            resumed += 1;
            let last = requests.last().unwrap();
            assert_eq!(
                last.range,
                format!("bytes={kept}-"),
                "crash at write {n}: {requests:?}"
            );
            assert!(!last.if_range.is_empty(), "{requests:?}");
            assert_eq!(last.status, 206, "{requests:?}");
            assert_eq!(
                last.sent,
                blob.len() as u64 - kept,
                "only what was not kept"
            );
        }
    }
    assert!(resumed >= 2, "the crashes met both checkpoints: {resumed}");
}

#[test]
fn a_file_that_changed_on_the_server_during_a_crash_is_fetched_whole_and_refused_never_spliced() {
    let nginx = Servers::start();
    let (script, blob) = (script(), blob(9 << 20, 6));
    nginx.publish("device-step.sh", &script);
    nginx.publish("blob.bin", &blob);
    let urls = json!({"f1": nginx.url("device-step.sh"), "f2": nginx.url("blob.bin")});
    // Crash at each durable write in turn until one leaves a partial download.
    let (device, env) = (1..50)
        .find_map(|n| {
            let device = Device::new();
            let env = envelope(&device, "changed", &script, &blob, urls.clone());
            let crash = n.to_string();
            let run = device.run_env(
                &[
                    "deploy",
                    env.to_str().unwrap(),
                    "--payloads",
                    device.payloads.to_str().unwrap(),
                ],
                &[("HANDRAIL_CRASH_AFTER_WRITE", crash.as_str())],
            );
            assert!(run.killed(), "{}", run.stderr());
            kept_bytes(&device)
                .is_some_and(|k| k > 0)
                .then_some((device, env))
        })
        .expect("a crash that leaves a partial download");
    let kept = kept_bytes(&device).expect("a partial download was kept");
    // The server's file changes (same size, another version) while the device is down.
    let mut other = blob.clone();
    other[0] ^= 0xFF;
    other[kept as usize + 1] ^= 0xFF;
    nginx.republish("blob.bin", &other);
    let seen = nginx.requests("blob.bin").len();
    let run = deploy(&device, None, &env, &[]);
    assert_eq!(run.code(), Some(2), "{}", run.stderr());
    assert!(
        run.stderr().contains("the downloaded file's sha256 is"),
        "{}",
        run.stderr()
    );
    let requests = nginx.requests("blob.bin")[seen..].to_vec();
    assert_eq!(requests[0].range, format!("bytes={kept}-"), "{requests:?}");
    assert_eq!(
        requests[0].status, 200,
        "If-Range sent the whole new file: {requests:?}"
    );
    assert!(device.log().is_empty(), "nothing ran");
}

/// A server written here, beside nginx: it serves one file with an `ETag`, honours
/// `Range` + `If-Range`, and cuts the first connection after `cut` body bytes.
struct Cutter {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Cutter {
    fn start(body: Vec<u8>, cut: usize) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let head = read_request_head(&mut reader);
                seen.lock().unwrap().push(head.clone());
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                };
                let from = match (header("range"), header("if-range")) {
                    (Some(r), Some(v)) if v == "\"cutter-1\"" => r
                        .trim_start_matches("bytes=")
                        .trim_end_matches('-')
                        .parse::<usize>()
                        .unwrap_or(0),
                    _ => 0,
                };
                let rest = &body[from..];
                let head = if from > 0 {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nETag: \"cutter-1\"\r\nConnection: close\r\n\r\n",
                        rest.len(),
                        body.len() - 1,
                        body.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"cutter-1\"\r\nConnection: close\r\n\r\n",
                        rest.len()
                    )
                };
                let _ = stream.write_all(head.as_bytes());
                let send = if i == 0 { &rest[..cut] } else { rest };
                let _ = stream.write_all(send);
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Both);
                let _ = reader.read(&mut [0u8; 1]);
            }
        });
        Cutter { port, requests }
    }
}

#[test]
fn a_connection_cut_in_the_middle_of_a_file_is_resumed_with_range_and_if_range() {
    let nginx = Servers::start();
    let device = Device::new();
    let (script, blob) = (script(), blob(2 << 20, 7));
    nginx.publish("device-step.sh", &script);
    let cutter = Cutter::start(blob.clone(), 700_000);
    let urls = json!({
        "f1": nginx.url("device-step.sh"),
        "f2": format!("http://127.0.0.1:{}/blob.bin", cutter.port),
    });
    let env = envelope(&device, "cut", &script, &blob, urls);
    let fast = config(
        &device,
        "fast.toml",
        "[download]\nbackoff_initial_ms = 10\n",
    );
    let run = deploy(&device, Some(&fast), &env, &[]);
    assert_deployed(&device, &run, "cut");
    let requests = cutter.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let second = requests[1].to_ascii_lowercase();
    assert!(second.contains("range: bytes=700000-"), "{second}");
    assert!(second.contains("if-range: \"cutter-1\""), "{second}");
}

/// Ctrl-C while a payload file downloads stops admission at once: exit 5 (cancelled),
/// and history records the deployment cancelled, with nothing run.
#[test]
fn an_interrupt_during_admission_cancels_it_and_history_says_so() {
    let (script, blob) = (script(), blob(8 << 20, 9));
    // A server that sends the first MiB of the file, then nothing more (until the test
    // ends): the download is under way when the interrupt comes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (release, stalled) = std::sync::mpsc::channel::<()>();
    let sent = blob[..1 << 20].to_vec();
    let total = blob.len();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request_head(&mut BufReader::new(stream.try_clone().unwrap()));
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nETag: \"stall\"\r\n\r\n"
        )
        .unwrap();
        stream.write_all(&sent).unwrap();
        stream.flush().unwrap();
        let _ = stalled.recv();
    });
    let device = Device::new();
    fs::write(device.payloads.join("device-step.sh"), &script).unwrap();
    let url = format!("http://127.0.0.1:{port}/blob.bin");
    let env = envelope(
        &device,
        "interrupted",
        &script,
        &blob,
        json!({"f1": url, "f2": url}),
    );
    let key: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&blob)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let part = device.state.join("downloads").join(format!("{key}.part"));
    let agent = device.start_until(
        &[
            "deploy",
            env.to_str().unwrap(),
            "--payloads",
            device.payloads.to_str().unwrap(),
        ],
        &part,
    );
    unsafe {
        libc::kill(agent.id() as i32, libc::SIGINT);
    }
    let out = agent.wait_with_output().unwrap();
    let _ = release.send(());
    server.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history = device.run(&["--json", "history"]);
    let entries = history.last_json();
    let entry = &entries
        .as_array()
        .and_then(|a| a.last())
        .unwrap_or_else(|| panic!("no history entry: {entries}"))["report"];
    assert_eq!(entry["status"], "cancelled", "{entry}");
    assert!(
        entry["error"].as_str().unwrap_or("").contains("cancel"),
        "{entry}"
    );
    assert!(device.log().is_empty(), "nothing ran: {:?}", device.log());
    let status = device.run(&["status"]);
    assert!(
        status.stdout().contains("no deployment in progress"),
        "{}",
        status.stdout()
    );
}
