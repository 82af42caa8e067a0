//! HTTP and HTTPS for Handrail's downloads: a [`Transport`] over
//! [ureq](https://docs.rs/ureq) and rustls.
//!
//! - **Proxies**: `[download] proxy`, else `HTTPS_PROXY` for `https://` URLs and
//!   `HTTP_PROXY` for `http://` ones (either case), else `ALL_PROXY`; hosts that
//!   `[download] no_proxy` (else `NO_PROXY`) lists are reached directly: names (which
//!   cover their subdomains), `.suffix` domains, IP addresses and IPv4 CIDR blocks, an
//!   optional `:port`, and `*` for every host.
//! - **TLS**: servers are checked against `[download] ca_file` when it is set, else
//!   against the bundled Mozilla roots; `client_cert` and `client_key` present the
//!   device's certificate to servers that ask for one.
//! - **Redirects** are followed here (at most [`MAX_REDIRECTS`]), each hop through the
//!   proxy its own host calls for. A request's own headers (a server's credentials) are
//!   sent to the host it named only: a redirect to another host, port or scheme drops
//!   them. A redirect from `https` to `http` is refused.
//! - Nothing is decompressed: a `Range` counts the file's own bytes.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use handrail::config::DownloadConfig;
use handrail::download::{ContentRange, Request, Response, Transport, TransportError};
use ureq::Agent;
use ureq::http::Uri;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

/// Most redirects one request follows.
pub const MAX_REDIRECTS: usize = 10;

/// Why the transport cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("[download] {key}: {message}")]
pub struct HttpError {
    /// The configuration key (or environment variable) at fault.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// HTTP and HTTPS GETs for the [`handrail::download::Downloader`].
pub struct HttpTransport {
    direct: Agent,
    /// The proxy for `http://` URLs, and its agent.
    http_proxy: Option<(String, Agent)>,
    /// The proxy for `https://` URLs, and its agent.
    https_proxy: Option<(String, Agent)>,
    no_proxy: NoProxy,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("http_proxy", &self.http_proxy.as_ref().map(|p| &p.0))
            .field("https_proxy", &self.https_proxy.as_ref().map(|p| &p.0))
            .field("no_proxy", &self.no_proxy)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport as `config` and the process's environment say.
    pub fn new(config: &DownloadConfig) -> Result<Self, HttpError> {
        Self::with_env(config, &|name| std::env::var(name).ok())
    }

    /// The same, with the proxy variables read through `env`.
    pub fn with_env(
        config: &DownloadConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, HttpError> {
        let tls = tls_config(config)?;
        let agent = |proxy: Option<&str>, key: &str| -> Result<Agent, HttpError> {
            let proxy = proxy
                .map(|p| {
                    ureq::Proxy::new(p).map_err(|e| HttpError {
                        key: key.to_owned(),
                        message: format!("`{p}` is not a proxy URL: {e}"),
                    })
                })
                .transpose()?;
            Ok(Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .tls_config(tls.clone())
                .proxy(proxy)
                .accept_encoding("identity")
                .user_agent(concat!("handrail/", env!("CARGO_PKG_VERSION")))
                .timeout_connect(Some(Duration::from_secs(
                    config.connect_timeout_secs.max(1),
                )))
                .timeout_recv_response(Some(Duration::from_secs(config.read_timeout_secs.max(1))))
                .timeout_per_read(Some(Duration::from_secs(config.read_timeout_secs.max(1))))
                .build()
                .new_agent())
        };
        fn var(
            env: &dyn Fn(&str) -> Option<String>,
            names: &[&'static str],
        ) -> Option<(&'static str, String)> {
            names
                .iter()
                .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        }
        let (http, https) = match &config.proxy {
            Some(p) => (Some(("proxy", p.clone())), Some(("proxy", p.clone()))),
            None => {
                let all = var(env, &["all_proxy", "ALL_PROXY"]);
                (
                    var(env, &["http_proxy", "HTTP_PROXY"]).or(all.clone()),
                    var(env, &["https_proxy", "HTTPS_PROXY"]).or(all),
                )
            }
        };
        let no_proxy = match &config.no_proxy {
            Some(list) => NoProxy::parse(list),
            None => NoProxy::parse(
                &var(env, &["no_proxy", "NO_PROXY"])
                    .map(|v| v.1)
                    .unwrap_or_default(),
            ),
        };
        let with = |p: Option<(&str, String)>| -> Result<Option<(String, Agent)>, HttpError> {
            p.map(|(key, url)| Ok((url.clone(), agent(Some(&url), key)?)))
                .transpose()
        };
        Ok(HttpTransport {
            direct: agent(None, "proxy")?,
            http_proxy: with(http)?,
            https_proxy: with(https)?,
            no_proxy,
        })
    }

    /// The agent (direct or through a proxy) for `uri`.
    fn agent_for(&self, uri: &Uri) -> &Agent {
        let (_, host, port) = authority(uri);
        let proxy = match uri.scheme_str() {
            Some("https") => &self.https_proxy,
            _ => &self.http_proxy,
        };
        match proxy {
            Some((_, agent)) if !self.no_proxy.matches(host.unwrap_or_default(), port) => agent,
            _ => &self.direct,
        }
    }
}

impl Transport for HttpTransport {
    fn get(&self, request: &Request<'_>) -> Result<Response, TransportError> {
        let first = parse_uri(request.url)?;
        let mut uri = first.clone();
        let mut keep_headers = true;
        for _ in 0..=MAX_REDIRECTS {
            let mut builder = self.agent_for(&uri).get(uri.clone());
            if request.from > 0 {
                builder = builder.header("Range", format!("bytes={}-", request.from));
                if let Some(validator) = request.if_range {
                    builder = builder.header("If-Range", validator);
                }
            }
            if keep_headers {
                for (name, value) in request.headers {
                    builder = builder.header(name.as_str(), value.as_str());
                }
            }
            let response = builder.call().map_err(|e| classify(&uri, e))?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = header("location").ok_or_else(|| {
                    TransportError::Fatal(format!("{uri}: HTTP {status} without a Location"))
                })?;
                let next = resolve(&uri, &location)?;
                if uri.scheme_str() == Some("https") && next.scheme_str() != Some("https") {
                    return Err(TransportError::Fatal(format!(
                        "{uri}: redirected from https to `{next}`; refused"
                    )));
                }
                if authority(&next) != authority(&first) && keep_headers {
                    keep_headers = false;
                    if !request.headers.is_empty() {
                        tracing::info!(
                            "{uri} redirects to another host ({next}): its credentials are not sent there"
                        );
                    }
                }
                uri = next;
                continue;
            }
            let validator = header("etag")
                .filter(|e| !e.starts_with("W/"))
                .or_else(|| header("last-modified"));
            let content_range = header("content-range").and_then(|v| ContentRange::parse(&v));
            let content_length = header("content-length").and_then(|v| v.trim().parse().ok());
            let retry_after = header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Ok(Response {
                status,
                url: uri.to_string(),
                content_length,
                content_range,
                validator,
                retry_after,
                body: Box::new(response.into_body().into_reader()),
            });
        }
        Err(TransportError::Fatal(format!(
            "{}: more than {MAX_REDIRECTS} redirects",
            request.url
        )))
    }
}

/// A request to a server's API (JSON in, JSON out), for clients of update servers.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    /// `GET`, `POST`, `PUT`.
    pub method: &'a str,
    /// The URL.
    pub url: &'a str,
    /// Headers (credentials among them).
    pub headers: &'a [(String, String)],
    /// A JSON body.
    pub json: Option<&'a [u8]>,
}

/// A server's answer to an [`ApiRequest`].
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// The body (at most [`MAX_API_BODY`] bytes).
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when given.
    pub retry_after: Option<Duration>,
}

/// The largest API answer read.
pub const MAX_API_BODY: u64 = 4 << 20;

impl HttpTransport {
    /// Sends an API request. Redirects are not followed: an API that moves is told by
    /// its status, and a body is never re-sent elsewhere.
    pub fn api(&self, request: &ApiRequest<'_>) -> Result<ApiResponse, TransportError> {
        use std::io::Read;
        let uri = parse_uri(request.url)?;
        let agent = self.agent_for(&uri);
        let mut http = ureq::http::Request::builder()
            .method(request.method)
            .uri(uri.clone())
            .header("Accept", "application/hal+json, application/json");
        for (name, value) in request.headers {
            http = http.header(name.as_str(), value.as_str());
        }
        let result = match request.json {
            Some(body) => {
                let req = http
                    .header("Content-Type", "application/json")
                    .body(body.to_vec())
                    .map_err(|e| TransportError::Fatal(format!("{uri}: {e}")))?;
                agent.run(req)
            }
            None => {
                let req = http
                    .body(())
                    .map_err(|e| TransportError::Fatal(format!("{uri}: {e}")))?;
                agent.run(req)
            }
        };
        let response = result.map_err(|e| classify(&uri, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(MAX_API_BODY)
            .read_to_end(&mut body)
            .map_err(|e| TransportError::Transient(format!("{uri}: reading the answer: {e}")))?;
        Ok(ApiResponse {
            status,
            body,
            retry_after,
        })
    }
}

fn parse_uri(url: &str) -> Result<Uri, TransportError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| TransportError::Fatal(format!("`{url}` is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(TransportError::Fatal(format!(
            "`{url}`: only http:// and https:// URLs with a host are fetched"
        ))),
    }
}

/// Scheme, host and port: what credentials are tied to.
fn authority(uri: &Uri) -> (Option<&str>, Option<&str>, u16) {
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    (uri.scheme_str(), uri.host(), port)
}

/// `location` (absolute, scheme-relative, absolute-path or relative) against `base`.
fn resolve(base: &Uri, location: &str) -> Result<Uri, TransportError> {
    let scheme = base.scheme_str().unwrap_or("http");
    let origin = base
        .authority()
        .map(|a| format!("{scheme}://{a}"))
        .unwrap_or_default();
    let has_scheme = location.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let absolute = if has_scheme {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{origin}{dir}{location}")
    };
    parse_uri(&absolute)
}

/// Sorts a ureq failure: the network's (worth a retry) or the request's own.
fn classify(uri: &Uri, e: ureq::Error) -> TransportError {
    use ureq::Error as E;
    let message = format!("{uri}: {e}");
    match e {
        // rustls says a handshake failed (a certificate that does not verify, an alert)
        // as invalid data: trying again cannot help.
        E::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => TransportError::Fatal(message),
        E::Timeout(_)
        | E::Io(_)
        | E::HostNotFound
        | E::ConnectionFailed
        | E::Protocol(_)
        | E::BodyExceedsLimit(_) => TransportError::Transient(message),
        _ => TransportError::Fatal(message),
    }
}

fn tls_config(config: &DownloadConfig) -> Result<TlsConfig, HttpError> {
    let mut tls = TlsConfig::builder();
    if let Some(path) = &config.ca_file {
        let certs = read_certs(path, "ca_file")?;
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    if let (Some(cert), Some(key)) = (&config.client_cert, &config.client_key) {
        let chain = read_certs(cert, "client_cert")?;
        let pem = read(key, "client_key")?;
        let key = PrivateKey::from_pem(&pem).map_err(|e| HttpError {
            key: "client_key".into(),
            message: format!("{}: no private key in it: {e}", key.display()),
        })?;
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(tls.build())
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, HttpError> {
    std::fs::read(path).map_err(|e| HttpError {
        key: key.to_owned(),
        message: format!("{}: {e}", path.display()),
    })
}

/// Every certificate in a PEM file; none is an error.
fn read_certs(path: &Path, key: &str) -> Result<Vec<Certificate<'static>>, HttpError> {
    let pem = read(path, key)?;
    let bad = |message: String| HttpError {
        key: key.to_owned(),
        message: format!("{}: {message}", path.display()),
    };
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| bad(format!("not PEM: {e}")))? {
            PemItem::Certificate(c) => certs.push(c),
            _ => continue,
        }
    }
    if certs.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(certs)
}

/// The hosts reached without a proxy.
#[derive(Debug, Clone, Default, PartialEq)]
struct NoProxy {
    all: bool,
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq)]
enum NoProxyHost {
    /// A name: itself and its subdomains.
    Name(String),
    /// An address.
    Ip(IpAddr),
    /// An IPv4 block.
    Cidr(u32, u32),
}

#[derive(Debug, Clone, PartialEq)]
struct NoProxyEntry {
    host: NoProxyHost,
    port: Option<u16>,
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for raw in list
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if raw == "*" {
                out.all = true;
                continue;
            }
            let (host, port) = split_port(raw);
            let host = host.trim_start_matches("*.").trim_start_matches('.');
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let parsed = if let Some((net, bits)) = host.split_once('/') {
                match (net.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) {
                    (Ok(net), Ok(bits)) if bits <= 32 => {
                        let mask = if bits == 0 {
                            0
                        } else {
                            u32::MAX << (32 - bits)
                        };
                        NoProxyHost::Cidr(u32::from(net) & mask, mask)
                    }
                    _ => continue,
                }
            } else if let Ok(ip) = host.parse::<IpAddr>() {
                NoProxyHost::Ip(ip)
            } else {
                NoProxyHost::Name(host.to_ascii_lowercase())
            };
            out.entries.push(NoProxyEntry { host: parsed, port });
        }
        out
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        self.entries.iter().any(|e| {
            e.port.is_none_or(|p| p == port)
                && match &e.host {
                    NoProxyHost::Name(name) => host == *name || host.ends_with(&format!(".{name}")),
                    NoProxyHost::Ip(want) => ip == Some(*want),
                    NoProxyHost::Cidr(net, mask) => matches!(
                        ip,
                        Some(IpAddr::V4(v4)) if u32::from(v4) & mask == *net
                    ),
                }
        })
    }
}

/// `host:port` into its parts (an IPv6 address without brackets has no port).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[')
        && let Some((addr, tail)) = rest.split_once(']')
    {
        return (addr, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_lists_match_as_curl_reads_them() {
        let list = NoProxy::parse("localhost, .lan,example.com:8443 10.0.0.0/8,::1,192.168.1.7");
        for (host, port, direct) in [
            ("localhost", 80, true),
            ("a.lan", 443, true),
            ("lan", 443, true),
            ("example.com", 8443, true),
            ("www.example.com", 8443, true),
            ("example.com", 443, false),
            ("notexample.com", 8443, false),
            ("10.20.30.40", 80, true),
            ("11.0.0.1", 80, false),
            ("[::1]", 80, true),
            ("192.168.1.7", 80, true),
            ("192.168.1.8", 80, false),
            ("updates.contoso.com", 443, false),
        ] {
            assert_eq!(list.matches(host, port), direct, "{host}:{port}");
        }
        assert!(NoProxy::parse("*").matches("anything", 1));
        assert!(!NoProxy::parse("").matches("anything", 1));
    }

    #[test]
    fn proxies_come_from_the_configuration_else_from_the_variable_for_the_scheme() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let t = HttpTransport::with_env(
            &DownloadConfig::default(),
            &env(&[
                ("HTTPS_PROXY", "http://secure-proxy:3128"),
                ("http_proxy", "http://plain-proxy:3128"),
                ("NO_PROXY", "internal.lan"),
            ]),
        )
        .unwrap();
        assert_eq!(
            t.https_proxy.as_ref().unwrap().0,
            "http://secure-proxy:3128"
        );
        assert_eq!(t.http_proxy.as_ref().unwrap().0, "http://plain-proxy:3128");
        assert!(t.no_proxy.matches("cdn.internal.lan", 443));
        let t = HttpTransport::with_env(
            &DownloadConfig::default(),
            &env(&[("ALL_PROXY", "http://any:8080")]),
        )
        .unwrap();
        assert_eq!(t.https_proxy.as_ref().unwrap().0, "http://any:8080");
        let configured = DownloadConfig {
            proxy: Some("http://configured:3128".into()),
            no_proxy: Some("".into()),
            ..DownloadConfig::default()
        };
        let t = HttpTransport::with_env(
            &configured,
            &env(&[("HTTPS_PROXY", "http://ignored:1"), ("NO_PROXY", "*")]),
        )
        .unwrap();
        assert_eq!(t.https_proxy.as_ref().unwrap().0, "http://configured:3128");
        assert!(!t.no_proxy.matches("example.com", 443));
    }

    #[test]
    fn redirect_locations_resolve_against_the_url_that_sent_them() {
        let base: Uri = "https://cdn.example.com:8443/files/a/update.swu?sig=1"
            .parse()
            .unwrap();
        for (location, want) in [
            ("https://other.example/x", "https://other.example/x"),
            ("//mirror.example/y", "https://mirror.example/y"),
            ("/z.bin", "https://cdn.example.com:8443/z.bin"),
            (
                "b/update.swu",
                "https://cdn.example.com:8443/files/a/b/update.swu",
            ),
        ] {
            assert_eq!(resolve(&base, location).unwrap().to_string(), want);
        }
        assert!(resolve(&base, "ftp://x/y").is_err());
    }

    #[test]
    fn bad_tls_files_are_named_with_their_key() {
        let dir = std::env::temp_dir().join(format!("handrail-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = HttpTransport::new(&DownloadConfig {
            ca_file: Some(empty.clone()),
            ..DownloadConfig::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "[download] ca_file: {}: holds no certificate",
                empty.display()
            )
        );
        let missing = dir.join("missing.pem");
        let err = HttpTransport::new(&DownloadConfig {
            client_cert: Some(missing.clone()),
            client_key: Some(missing.clone()),
            ..DownloadConfig::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("[download] client_cert: "),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
