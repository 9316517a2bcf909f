//! An in-process HTTP server scripted per request, for what a real registry never does: lie
//! about lengths, stall, never end, answer slowly, send odd statuses and headers.
//!
//! It runs axum on its own tokio runtime (two worker threads), so it works the same from a
//! plain `#[test]` and from inside `#[tokio::test]`. The script is a closure called for every
//! request on a blocking thread (it may sleep or wait on a channel); the request is logged
//! before the closure runs.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt as _};
use tokio::runtime::Runtime;

type Handler = dyn Fn(&FakeRequest) -> FakeResponse + Send + Sync;

/// A scripted HTTP/1.1 server on `127.0.0.1:<random port>`; stops on drop, cutting any open
/// connection (stalled and endless bodies included).
pub struct FakeRegistry {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<Runtime>,
}

struct Shared {
    handler: Box<Handler>,
    requests: Mutex<Vec<FakeRequest>>,
}

/// One request as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeRequest {
    /// `GET`, `HEAD`, `PUT`, …
    pub method: String,
    /// The path, percent-encoded as sent, without the query.
    pub path: String,
    /// The query string without `?`, as sent.
    pub query: Option<String>,
    /// In the order sent; names are lowercase.
    pub headers: Vec<(String, String)>,
    /// The whole request body (empty when there is none).
    pub body: Vec<u8>,
}

impl FakeRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `path?query`, or just `path`.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(query) => format!("{}?{query}", self.path),
            None => self.path.clone(),
        }
    }
}

/// What the fake answers. Headers are sent as given (`Content-Length` is set for you where the
/// variant says so); an invalid status or header turns into a `500` whose body says which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeResponse {
    /// A complete response; `Content-Length` is the body's length (also for `HEAD`, where the
    /// body is not sent).
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces `Content-Length: content_length`, sends `body` (shorter), then closes the
    /// connection: a download cut short.
    Truncated {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        content_length: u64,
    },
    /// Sends the headers (with `Content-Length` when given, else chunked) and `body`, then
    /// nothing, ever, while keeping the connection open: a server that hangs mid-download.
    Stall {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        content_length: Option<u64>,
    },
    /// Sends the headers, then `chunk` over and over with chunked encoding, never ending: for
    /// size caps.
    Endless {
        status: u16,
        headers: Vec<(String, String)>,
        chunk: Vec<u8>,
    },
    /// Waits `delay` before sending anything of `response` (not even the status line).
    Delayed {
        delay: Duration,
        response: Box<FakeResponse>,
    },
}

impl FakeResponse {
    /// A status with an empty body.
    pub fn status(status: u16) -> FakeResponse {
        FakeResponse::bytes(status, NO_HEADERS, Vec::new())
    }

    /// `value` as JSON, `Content-Type: application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> FakeResponse {
        FakeResponse::bytes(
            status,
            [("content-type", "application/json")],
            serde_json::to_vec(value).expect("a JSON value serialises"),
        )
    }

    /// A complete response with these headers and body.
    pub fn bytes<N, V>(
        status: u16,
        headers: impl IntoIterator<Item = (N, V)>,
        body: impl Into<Vec<u8>>,
    ) -> FakeResponse
    where
        N: Into<String>,
        V: Into<String>,
    {
        FakeResponse::Full {
            status,
            headers: owned(headers),
            body: body.into(),
        }
    }

    /// See [`FakeResponse::Truncated`].
    pub fn truncated<N, V>(
        status: u16,
        headers: impl IntoIterator<Item = (N, V)>,
        body: impl Into<Vec<u8>>,
        content_length: u64,
    ) -> FakeResponse
    where
        N: Into<String>,
        V: Into<String>,
    {
        FakeResponse::Truncated {
            status,
            headers: owned(headers),
            body: body.into(),
            content_length,
        }
    }

    /// See [`FakeResponse::Stall`].
    pub fn stall_after<N, V>(
        status: u16,
        headers: impl IntoIterator<Item = (N, V)>,
        body: impl Into<Vec<u8>>,
        content_length: Option<u64>,
    ) -> FakeResponse
    where
        N: Into<String>,
        V: Into<String>,
    {
        FakeResponse::Stall {
            status,
            headers: owned(headers),
            body: body.into(),
            content_length,
        }
    }

    /// See [`FakeResponse::Endless`]; the chunk is 64 KiB of zeros.
    pub fn endless<N, V>(status: u16, headers: impl IntoIterator<Item = (N, V)>) -> FakeResponse
    where
        N: Into<String>,
        V: Into<String>,
    {
        FakeResponse::Endless {
            status,
            headers: owned(headers),
            chunk: vec![0; 64 * 1024],
        }
    }

    /// This response, after `delay`.
    #[must_use]
    pub fn delayed(self, delay: Duration) -> FakeResponse {
        FakeResponse::Delayed {
            delay,
            response: Box::new(self),
        }
    }

    /// This response with one more header.
    #[must_use]
    pub fn with_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> FakeResponse {
        match &mut self {
            FakeResponse::Full { headers, .. }
            | FakeResponse::Truncated { headers, .. }
            | FakeResponse::Stall { headers, .. }
            | FakeResponse::Endless { headers, .. } => headers.push((name.into(), value.into())),
            FakeResponse::Delayed { response, .. } => {
                let inner = std::mem::replace(response.as_mut(), FakeResponse::status(0));
                **response = inner.with_header(name, value);
            }
        }
        self
    }
}

/// For `FakeResponse::bytes(200, NO_HEADERS, body)`.
pub const NO_HEADERS: [(&str, &str); 0] = [];

fn owned<N: Into<String>, V: Into<String>>(
    headers: impl IntoIterator<Item = (N, V)>,
) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(name, value)| (name.into(), value.into()))
        .collect()
}

impl FakeRegistry {
    /// Starts serving; `handler` decides every response.
    pub fn start(
        handler: impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static,
    ) -> FakeRegistry {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-registry")
            .enable_all()
            .build()
            .expect("building the fake registry's runtime");
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0 for the fake");
        listener
            .set_nonblocking(true)
            .expect("making the fake's listener non-blocking");
        let addr = listener.local_addr().expect("the fake's address");
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(serve_one)
            .with_state(Arc::clone(&shared));
        runtime.spawn(async move {
            let listener =
                tokio::net::TcpListener::from_std(listener).expect("handing the listener to tokio");
            // Ends only with the runtime.
            let _ = axum::serve(listener, app).await;
        });
        FakeRegistry {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        // Not a plain drop: that blocks, and panics inside `#[tokio::test]`. Open connections
        // (a stalled body) would also keep a graceful shutdown waiting forever.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for FakeRegistry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("FakeRegistry")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn serve_one(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|bytes| bytes.to_vec())
        .unwrap_or_default();
    let request = FakeRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body,
    };
    shared
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request.clone());

    let script = Arc::clone(&shared);
    let outcome = tokio::task::spawn_blocking(move || {
        catch_unwind(AssertUnwindSafe(|| (script.handler)(&request)))
    })
    .await;
    let Ok(Ok(mut response)) = outcome else {
        return plain_response(500, "fake registry: the test's handler panicked");
    };
    while let FakeResponse::Delayed {
        delay,
        response: inner,
    } = response
    {
        tokio::time::sleep(delay).await;
        response = *inner;
    }
    into_http(response)
}

fn into_http(response: FakeResponse) -> Response {
    match response {
        FakeResponse::Full {
            status,
            headers,
            body,
        } => build(status, &headers, None, Body::from(body)),
        FakeResponse::Truncated {
            status,
            headers,
            body,
            content_length,
        } => {
            // Yield once before failing so hyper flushes the bytes it has; a body error then
            // makes hyper close the connection short of Content-Length.
            let stream =
                stream::iter([Ok::<_, io::Error>(Bytes::from(body))]).chain(stream::once(async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Err(io::Error::other("fake registry: truncated body"))
                }));
            build(
                status,
                &headers,
                Some(content_length),
                Body::from_stream(stream),
            )
        }
        FakeResponse::Stall {
            status,
            headers,
            body,
            content_length,
        } => {
            let stream =
                stream::iter([Ok::<_, io::Error>(Bytes::from(body))]).chain(stream::pending());
            build(status, &headers, content_length, Body::from_stream(stream))
        }
        FakeResponse::Endless {
            status,
            headers,
            chunk,
        } => {
            let stream = stream::repeat(Bytes::from(chunk)).map(Ok::<_, io::Error>);
            build(status, &headers, None, Body::from_stream(stream))
        }
        FakeResponse::Delayed { response, .. } => into_http(*response),
    }
}

fn build(
    status: u16,
    headers: &[(String, String)],
    content_length: Option<u64>,
    body: Body,
) -> Response {
    let Ok(status) = StatusCode::from_u16(status) else {
        return plain_response(500, &format!("fake registry: invalid status {status}"));
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return plain_response(
                500,
                &format!("fake registry: invalid header {name:?}: {value:?}"),
            );
        };
        response.headers_mut().append(name, value);
    }
    if let Some(length) = content_length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

fn plain_response(status: u16, message: &str) -> Response {
    let mut response = Response::new(Body::from(message.to_owned()));
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    response
}
