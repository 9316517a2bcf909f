// Reading responses: small bodies under a cap, the registry's own error message, Retry-After,
// and turning transport failures into errors by their type (not by their text).

use std::error::Error as _;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};

use crate::error::RegistryError;
use crate::request::{Access, ClientOptions};

/// Reads a whole body, refusing more than `limit` bytes (whatever Content-Length says).
/// A response body of at most `limit` bytes, as [`RegistryError`]s naming `registry` and
/// `what`.
pub(crate) async fn read_limited(
    response: Response,
    limit: u64,
    registry: &str,
    what: &str,
    options: &ClientOptions,
) -> Result<Vec<u8>, RegistryError> {
    read_capped(response, limit).await.map_err(|err| match err {
        CapError::TooLarge => RegistryError::TooLarge {
            registry: registry.to_owned(),
            what: what.to_owned(),
            limit,
        },
        CapError::Transport(err) => transport_error(registry, err, options),
    })
}

pub(crate) async fn read_capped(response: Response, limit: u64) -> Result<Vec<u8>, CapError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(CapError::TooLarge);
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(CapError::Transport)?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(CapError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug)]
pub(crate) enum CapError {
    TooLarge,
    Transport(reqwest::Error),
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries and treated as absent).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The rustls error somewhere in `err`'s chain, if the failure was TLS. rustls errors reach
/// us wrapped in `io::Error`s (two deep, from hyper and tokio-rustls), whose `source()` skips
/// the wrapped error itself, so each `io::Error` is opened with `get_ref`.
fn tls_cause(err: &reqwest::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(cause) = next {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            // The wrapped error itself (often another `io::Error`), not its source.
            next = Some(inner as &(dyn std::error::Error + 'static));
            continue;
        }
        next = cause.source();
    }
    None
}

/// Whether the server spoke TLS and its certificate was refused: such a server must not be
/// retried in plain HTTP, which would hide the certificate problem behind a "400".
pub(crate) fn is_certificate_error(err: &reqwest::Error) -> bool {
    matches!(
        tls_cause(err),
        Some(
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType
        )
    )
}

/// The innermost message of an error chain: what actually happened, without the layers of
/// "error sending request" around it.
fn innermost(err: &reqwest::Error) -> String {
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    reason
}

/// A failure to get any answer from `registry`, classified by the error's type; the
/// `reqwest::Error` is kept as the source.
pub(crate) fn transport_error(
    registry: &str,
    err: reqwest::Error,
    options: &ClientOptions,
) -> RegistryError {
    // The URL may carry a signature in its query (object storage): never print it.
    let err = err.without_url();
    if err.is_timeout() {
        return RegistryError::Timeout {
            registry: registry.to_owned(),
            seconds: if err.is_connect() {
                options.connect_timeout.as_secs()
            } else {
                options.read_timeout.as_secs()
            },
            source: err,
        };
    }
    if let Some(tls) = tls_cause(&err) {
        return RegistryError::Tls {
            registry: registry.to_owned(),
            reason: tls.to_string(),
        };
    }
    RegistryError::Connect {
        registry: registry.to_owned(),
        reason: innermost(&err),
        source: err,
    }
}

/// Turns an unexpected response into an error with the registry's own message.
pub(crate) async fn status_error(access: &Access<'_>, response: Response) -> RegistryError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let message = error_message(response).await;
    let registry = access.registry.to_owned();
    match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            registry,
            what: access.what.to_owned(),
            message,
        },
        StatusCode::FORBIDDEN => RegistryError::Denied {
            registry,
            repository: access.repository.to_owned(),
            message,
        },
        _ => RegistryError::Status {
            registry,
            what: access.what.to_owned(),
            status: status.as_u16(),
            message,
            retry_after,
        },
    }
}

/// The registry's error text: the first `errors[].message` of its JSON body, or the status.
async fn error_message(response: Response) -> String {
    let status = response.status();
    let fallback = status
        .canonical_reason()
        .unwrap_or("unexpected status")
        .to_ascii_lowercase();
    let Ok(bytes) = read_capped(response, 64 * 1024).await else {
        return fallback;
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    parsed
        .as_ref()
        .and_then(|v| v.get("errors")?.get(0))
        .and_then(|e| {
            let code = e
                .get("code")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let message = e
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let text = format!("{code} {message}").trim().to_ascii_lowercase();
            (!text.is_empty()).then_some(text)
        })
        .unwrap_or(fallback)
}

/// A `Location` header resolved against the URL that sent it (registries send relative ones).
pub(crate) fn location(response: &Response) -> Option<reqwest::Url> {
    let value = response
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    response.url().join(value).ok()
}
