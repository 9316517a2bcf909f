//! The fake registry answers as scripted and logs what it was sent. Checked with a raw
//! `TcpStream` client, so nothing between the test and the wire hides what the fake does.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use skillport_testkit::{FakeRegistry, FakeRequest, FakeResponse, NO_HEADERS};

/// A response as read off the wire.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn connect(fake: &FakeRegistry) -> TcpStream {
    let stream = TcpStream::connect(fake.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

fn send(stream: &mut TcpStream, request: &str) {
    stream.write_all(request.as_bytes()).unwrap();
}

/// Reads the status line and headers; returns them and whatever body bytes came along.
fn read_head(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "closed before the end of the headers");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    (status, headers, buffer[end + 4..].to_vec())
}

/// A whole `Connection: close` response with a Content-Length body.
fn get(fake: &FakeRegistry, method: &str, path: &str, extra_headers: &str) -> Raw {
    let mut stream = connect(fake);
    send(
        &mut stream,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra_headers}Connection: close\r\n\r\n",
            fake.host()
        ),
    );
    let (status, headers, mut body) = read_head(&mut stream);
    stream.read_to_end(&mut body).unwrap();
    Raw {
        status,
        headers,
        body,
    }
}

#[test]
fn scripted_responses_and_the_request_log() {
    let fake = FakeRegistry::start(|request: &FakeRequest| match request.path.as_str() {
        "/v2/" => FakeResponse::json(401, &json!({"errors": []}))
            .with_header("www-authenticate", r#"Basic realm="fake""#),
        "/v2/tiny/manifests/1" => FakeResponse::bytes(
            200,
            [
                ("content-type", "application/vnd.oci.image.manifest.v1+json"),
                ("docker-content-digest", "sha256:abc"),
            ],
            b"{}".to_vec(),
        ),
        _ => FakeResponse::status(404),
    });
    assert!(fake.url().starts_with("http://127.0.0.1:"));

    let response = get(&fake, "GET", "/v2/", "");
    assert_eq!(response.status, 401);
    assert_eq!(
        response.header("www-authenticate"),
        Some(r#"Basic realm="fake""#)
    );
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.body, br#"{"errors":[]}"#);

    let response = get(
        &fake,
        "GET",
        "/v2/tiny/manifests/1?ns=example.com",
        "Authorization: Basic dTpw\r\nRange: bytes=10-\r\n",
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("docker-content-digest"), Some("sha256:abc"));
    assert_eq!(response.header("content-length"), Some("2"));
    assert_eq!(response.body, b"{}");

    // HEAD: the length of the body that would be sent, no body.
    let response = get(&fake, "HEAD", "/v2/tiny/manifests/1", "");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("2"));
    assert!(response.body.is_empty());

    assert_eq!(get(&fake, "GET", "/elsewhere", "").status, 404);

    let requests = fake.requests();
    assert_eq!(
        requests
            .iter()
            .map(|request| (request.method.as_str(), request.path_and_query()))
            .collect::<Vec<_>>(),
        [
            ("GET", "/v2/".to_owned()),
            ("GET", "/v2/tiny/manifests/1?ns=example.com".to_owned()),
            ("HEAD", "/v2/tiny/manifests/1".to_owned()),
            ("GET", "/elsewhere".to_owned()),
        ]
    );
    assert_eq!(requests[0].header("authorization"), None);
    assert_eq!(requests[1].query.as_deref(), Some("ns=example.com"));
    assert_eq!(requests[1].header("Authorization"), Some("Basic dTpw"));
    assert_eq!(requests[1].header("range"), Some("bytes=10-"));
    assert_eq!(requests[1].header("host"), Some(fake.host().as_str()));
}

#[test]
fn request_bodies_are_logged_and_handlers_keep_state() {
    let count = AtomicUsize::new(0);
    let fake = FakeRegistry::start(move |_| {
        let seen = count.fetch_add(1, Ordering::SeqCst);
        FakeResponse::bytes(201, NO_HEADERS, format!("request {seen}"))
    });
    let mut stream = connect(&fake);
    send(
        &mut stream,
        "PUT /v2/tiny/blobs/uploads/x?digest=sha256:1 HTTP/1.1\r\nHost: x\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    let (status, _, mut body) = read_head(&mut stream);
    stream.read_to_end(&mut body).unwrap();
    assert_eq!(status, 201);
    assert_eq!(body, b"request 0");
    assert_eq!(get(&fake, "GET", "/", "").body, b"request 1");
    assert_eq!(fake.requests()[0].body, b"hello");
    assert_eq!(fake.requests()[0].method, "PUT");
}

#[test]
fn a_truncated_body_ends_early_and_the_connection_closes() {
    let fake = FakeRegistry::start(|_| {
        FakeResponse::truncated(200, NO_HEADERS, b"0123456789".to_vec(), 100)
    });
    let mut stream = connect(&fake);
    send(
        &mut stream,
        "GET /v2/tiny/blobs/sha256:1 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (status, headers, mut body) = read_head(&mut stream);
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("content-length".to_owned(), "100".to_owned())),
        "{headers:?}"
    );
    // Keep-alive was asked for, yet the server closes: read_to_end returns, short.
    let started = Instant::now();
    stream.read_to_end(&mut body).unwrap();
    assert_eq!(body, b"0123456789");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_stalled_body_sends_its_bytes_then_nothing() {
    let fake = FakeRegistry::start(|_| {
        FakeResponse::stall_after(200, NO_HEADERS, b"01234".to_vec(), Some(1000))
    });
    let mut stream = connect(&fake);
    send(&mut stream, "GET /blob HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, headers, mut body) = read_head(&mut stream);
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("content-length".to_owned(), "1000".to_owned())),
        "{headers:?}"
    );
    while body.len() < 5 {
        let mut chunk = [0_u8; 64];
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "closed instead of stalling");
        body.extend_from_slice(&chunk[..read]);
    }
    assert_eq!(body, b"01234");
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let error = stream.read(&mut [0_u8; 64]).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error:?}"
    );
    // The fake goes away even with this connection still open.
    drop(fake);
}

#[test]
fn an_endless_body_keeps_coming() {
    let fake = FakeRegistry::start(|_| FakeResponse::endless(200, NO_HEADERS));
    let mut stream = connect(&fake);
    send(&mut stream, "GET /blob HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, headers, body) = read_head(&mut stream);
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("transfer-encoding".to_owned(), "chunked".to_owned())),
        "{headers:?}"
    );
    let mut received = body.len();
    let mut chunk = vec![0_u8; 64 * 1024];
    while received < 8 * 1024 * 1024 {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "the endless body ended");
        received += read;
    }
}

#[test]
fn delayed_responses_wait_before_the_status_line() {
    let fake = FakeRegistry::start(|_| {
        FakeResponse::status(204)
            .delayed(Duration::from_millis(300))
            .with_header("x-after", "delay")
    });
    let started = Instant::now();
    let response = get(&fake, "GET", "/", "");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status, 204);
    assert_eq!(response.header("x-after"), Some("delay"));
}

#[test]
fn a_panicking_handler_gives_a_500_that_says_so() {
    let fake = FakeRegistry::start(|_| panic!("scripted panic"));
    let response = get(&fake, "GET", "/", "");
    assert_eq!(response.status, 500);
    assert!(String::from_utf8_lossy(&response.body).contains("handler panicked"));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn works_inside_a_tokio_test_and_drops_there() {
    let fake = FakeRegistry::start(|_| FakeResponse::status(200));
    let addr = fake.addr();
    let status = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response[9..12].to_owned()
    })
    .await
    .unwrap();
    assert_eq!(status, "200");
    drop(fake);
}
