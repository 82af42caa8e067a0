//! nginx, the real HTTP server the download tests and the benchmark fetch from: started
//! on loopback ports of its own, serving a folder, logging every request's range and
//! the bytes it sent, and stopped when dropped.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for a server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Waits until `port` accepts connections on loopback (true), or `child` ends (false);
/// panics past 20 s.
pub fn wait_listening(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads an HTTP request's head (up to its empty line) from `reader`, as a server
/// written in a test receives it.
pub fn read_request_head(reader: &mut impl std::io::BufRead) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

/// One request as nginx logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The path.
    pub uri: String,
    /// Its `Range` header (empty when none).
    pub range: String,
    /// Its `If-Range` header (empty when none).
    pub if_range: String,
    /// The status answered.
    pub status: u16,
    /// Body bytes sent.
    pub sent: u64,
    /// The port it came in on.
    pub port: u16,
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// The folder served: `/files/<name>` is `www/files/<name>`.
    pub www: PathBuf,
    /// The ports it listens on, as [`Nginx::start`] was asked for them; the first serves
    /// plain HTTP on 127.0.0.1 and 127.0.0.2.
    pub ports: Vec<u16>,
}

impl Nginx {
    /// Starts nginx with a plain HTTP server on the first of `ports` fresh ports (on
    /// 127.0.0.1 and 127.0.0.2) and the further `server { … }` blocks `servers` writes,
    /// given its scratch folder and the ports. Retries with other ports when one was
    /// taken meanwhile.
    pub fn start(ports: usize, servers: &dyn Fn(&Path, &[u16]) -> String) -> Nginx {
        let dir = tempfile::tempdir().expect("a scratch folder");
        let www = dir.path().join("www");
        fs::create_dir_all(www.join("files")).expect("the served folder");
        for _ in 0..5 {
            let chosen: Vec<u16> = (0..ports.max(1)).map(|_| free_port()).collect();
            let d = dir.path().display();
            let conf = format!(
                r#"
daemon off;
master_process off;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fastcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    log_format dl '$uri|$http_range|$http_if_range|$status|$body_bytes_sent|$server_port';
    access_log {d}/access.log dl;
    default_type application/octet-stream;
    sendfile on;
    root {www};
    server {{
        listen 127.0.0.1:{http};
        listen 127.0.0.2:{http};
        location /moved/ {{ return 302 http://127.0.0.2:{http}/files/$arg_name; }}
    }}
{servers}
}}
"#,
                www = www.display(),
                http = chosen[0],
                servers = servers(dir.path(), &chosen),
            );
            let conf_path = dir.path().join("nginx.conf");
            fs::write(&conf_path, conf).expect("nginx.conf");
            let mut child = Command::new("nginx")
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx (scripts/setup.sh installs nginx-light)");
            if chosen.iter().all(|p| wait_listening(&mut child, *p)) {
                return Nginx {
                    child,
                    dir,
                    www,
                    ports: chosen,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "nginx did not start: {}",
            fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
    }

    /// The plain HTTP port.
    pub fn http(&self) -> u16 {
        self.ports[0]
    }

    /// The URL of `/files/<name>` over plain HTTP.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/files/{name}", self.http())
    }

    /// Where `/files/<name>` is on disk.
    pub fn path(&self, name: &str) -> PathBuf {
        self.www.join("files").join(name)
    }

    /// Publishes `bytes` as `/files/<name>`.
    pub fn publish(&self, name: &str, bytes: &[u8]) {
        fs::write(self.path(name), bytes).expect("a published file");
    }

    /// Publishes a new version of `/files/<name>`, dated a minute on: nginx's `ETag` is
    /// its date and size, so it names another version however soon this comes.
    pub fn republish(&self, name: &str, bytes: &[u8]) {
        let path = self.path(name);
        let before = fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("the published version");
        fs::write(&path, bytes).expect("the new version");
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(before + Duration::from_secs(60)))
            .expect("its date");
    }

    /// Every request logged so far for `/files/<name>`.
    pub fn requests(&self, name: &str) -> Vec<Logged> {
        let log = fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let wanted = format!("/files/{name}");
        log.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('|').collect();
                let dash = |s: &str| {
                    if s == "-" {
                        String::new()
                    } else {
                        s.to_owned()
                    }
                };
                Some(Logged {
                    uri: f.first()?.to_string(),
                    range: dash(f.get(1)?),
                    if_range: dash(f.get(2)?),
                    status: f.get(3)?.parse().ok()?,
                    sent: f.get(4)?.parse().ok()?,
                    port: f.get(5)?.parse().ok()?,
                })
            })
            .filter(|l| l.uri == wanted)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
