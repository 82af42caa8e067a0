//! Redirects through the real transport, against two small servers on two loopback
//! addresses: a request's own headers (a server's credentials) follow a redirect on the
//! same host and never one to another host.

use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use handrail::config::DownloadConfig;
use handrail::download::{Request, Transport};
use handrail_http::HttpTransport;
use handrail_test_support::nginx::read_request_head;

/// A server on `addr` that answers each request with `answer(path)` and keeps every
/// request's head.
fn serve(
    addr: &str,
    answer: impl Fn(&str, u16) -> String + Send + 'static,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(format!("{addr}:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let head = read_request_head(&mut reader);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            kept.lock().unwrap().push(head);
            let _ = stream.write_all(answer(&path, port).as_bytes());
            let _ = stream.flush();
        }
    });
    (port, seen)
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"e1\"\r\n\r\n{body}",
        body.len()
    )
}

fn get(url: &str) -> (u16, String) {
    let transport = HttpTransport::with_env(&DownloadConfig::default(), &|_| None).unwrap();
    let headers = [(
        "Authorization".to_owned(),
        "TargetToken secret-1".to_owned(),
    )];
    let mut response = transport
        .get(&Request {
            url,
            from: 0,
            if_range: None,
            headers: &headers,
        })
        .unwrap();
    let mut body = String::new();
    response.body.read_to_string(&mut body).unwrap();
    (response.status, body)
}

fn has_credentials(head: &str) -> bool {
    head.to_ascii_lowercase()
        .contains("authorization: targettoken secret-1")
}

#[test]
fn credentials_follow_a_redirect_on_the_same_host_only() {
    let (other, other_seen) = serve("127.0.0.2", |_, _| ok("from the other host"));
    let (port, seen) = serve("127.0.0.1", |path, port| match path {
        "/same" => format!(
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}/file\r\nContent-Length: 0\r\n\r\n"
        ),
        "/file" => ok("from the same host"),
        _ => String::new(),
    });
    let (status, body) = get(&format!("http://127.0.0.1:{port}/same"));
    assert_eq!((status, body.as_str()), (200, "from the same host"));
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(heads.iter().all(|h| has_credentials(h)), "{heads:?}");

    // To another host: the redirect is followed, the credentials stay behind.
    let location = format!("http://127.0.0.2:{other}/file");
    let (redirector_port, redirected_seen) = serve("127.0.0.1", move |_, _| {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
        )
    });
    let (status, body) = get(&format!("http://127.0.0.1:{redirector_port}/artifact"));
    assert_eq!((status, body.as_str()), (200, "from the other host"));
    assert!(has_credentials(&redirected_seen.lock().unwrap()[0]));
    let there = other_seen.lock().unwrap().clone();
    assert_eq!(there.len(), 1, "{there:?}");
    assert!(
        !has_credentials(&there[0]),
        "sent to another host: {}",
        there[0]
    );
}
