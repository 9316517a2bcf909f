// Moving bytes: streaming blobs to disk while hashing them (resuming with Range after a
// dropped connection), and progress reporting.

use std::io::Write;
use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use skillport_oci::spec::Descriptor;
use skillport_oci::{Digest, Hasher};

use crate::client::{Client, request};
use crate::error::RegistryError;
use crate::request::Access;
use crate::response::{status_error, transport_error};

/// Receives transfer progress. Implementations must be cheap: `advance` runs per chunk.
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes (when known) called `label` starts; returns its id.
    fn start(&self, label: &str, total: Option<u64>) -> u64;
    /// `bytes` more arrived (or left) for transfer `id`.
    fn advance(&self, id: u64, bytes: u64);
    /// Transfer `id` starts again from zero (a server that ignored a range request).
    fn restart(&self, id: u64);
    /// Transfer `id` is over (done or failed).
    fn finish(&self, id: u64);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) -> u64 {
        0
    }
    fn advance(&self, _: u64, _: u64) {}
    fn restart(&self, _: u64) {}
    fn finish(&self, _: u64) {}
}

/// Where a download goes: a file (export) or a store blob (pull). Either can start over
/// when a registry ignores a range request.
pub(crate) trait Sink: Write {
    fn restart(&mut self) -> std::io::Result<()>;
}

impl Sink for std::fs::File {
    fn restart(&mut self) -> std::io::Result<()> {
        self.set_len(0)?;
        std::io::Seek::rewind(self)
    }
}

impl Sink for skillport_oci::BlobWriter {
    fn restart(&mut self) -> std::io::Result<()> {
        skillport_oci::BlobWriter::restart(self)
    }
}

/// Downloads the blob `descriptor` of `repository` into `file` (at its start), checking size
/// and digest. A connection that breaks mid-way is resumed with a Range request, from where it
/// stopped, when the registry honours ranges, and restarted otherwise, within the client's
/// retry budget. On error the file holds garbage: the caller deletes it.
#[allow(clippy::too_many_lines)] // one resumable download loop reads best in one place
pub(crate) async fn download_blob(
    client: &Client,
    registry: &str,
    repository: &str,
    descriptor: &Descriptor,
    file: &mut impl Sink,
    progress: &Arc<dyn Progress>,
    label: &str,
) -> Result<(), RegistryError> {
    let what = format!("blob {}", descriptor.digest);
    let access = Access {
        registry,
        repository,
        actions: "pull",
        what: &what,
    };
    let path = format!("/v2/{repository}/blobs/{}", descriptor.digest);
    let id = progress.start(label, Some(descriptor.size));
    let result = async {
        let mut hasher = Hasher::new(descriptor.digest.algorithm());
        let mut received: u64 = 0;
        let mut breaks = 0;
        loop {
            let from = received;
            let build = |http: &reqwest::Client, base: &str| {
                let req = request(http, Method::GET, base, &path);
                if from > 0 {
                    req.header(RANGE, format!("bytes={from}-"))
                } else {
                    req
                }
            };
            let response = client.send(&access, &build).await?;
            let status = response.status();
            if status == StatusCode::PARTIAL_CONTENT && from > 0 {
                let starts_at = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if starts_at != Some(from) {
                    return Err(RegistryError::Protocol {
                        registry: registry.to_owned(),
                        what: what.clone(),
                        reason: "the registry answered a range request with another range".into(),
                    });
                }
            } else if status.is_success() {
                if from > 0 {
                    // No range support: start over.
                    tracing::debug!(registry, "{what}: no range support, downloading again");
                    hasher = Hasher::new(descriptor.digest.algorithm());
                    received = 0;
                    progress.restart(id);
                    file.restart().map_err(io_err("truncating"))?;
                }
            } else {
                return Err(status_error(&access, response).await);
            }
            let mut stream = response.bytes_stream();
            let mut broke = None;
            // Chunks arrive in TLS-record sizes (16 KiB); one write each costs more than the
            // hashing. Buffering cuts the system calls 64-fold; the buffer is flushed before
            // a resumed request continues where the file ends.
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, &mut *file);
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => {
                        received += chunk.len() as u64;
                        if received > descriptor.size {
                            return Err(RegistryError::SizeMismatch {
                                registry: registry.to_owned(),
                                what: what.clone(),
                                expected: descriptor.size,
                                found: received,
                            });
                        }
                        hasher.update(&chunk);
                        writer.write_all(&chunk).map_err(io_err("writing"))?;
                        progress.advance(id, chunk.len() as u64);
                    }
                    Err(err) => {
                        broke = Some(err);
                        break;
                    }
                }
            }
            writer.flush().map_err(io_err("writing"))?;
            drop(writer);
            // Every byte is here, even if the connection broke after the last one: asking for
            // `bytes=<size>-` would only get a 416. The digest check below decides.
            if received == descriptor.size {
                break;
            }
            match broke {
                None => {
                    // The body ended early without an error: same as a break.
                    breaks += 1;
                    if breaks >= client.options().attempts {
                        return Err(RegistryError::SizeMismatch {
                            registry: registry.to_owned(),
                            what: what.clone(),
                            expected: descriptor.size,
                            found: received,
                        });
                    }
                }
                Some(err) => {
                    breaks += 1;
                    if breaks >= client.options().attempts {
                        return Err(transport_error(registry, err, client.options()));
                    }
                    tracing::debug!(
                        registry,
                        "{what}: connection broke at {received} bytes: {err}"
                    );
                }
            }
            let backoff = client.options().backoff.saturating_mul(breaks);
            tokio::time::sleep(backoff).await;
        }
        let found = hasher.finish();
        if found != descriptor.digest {
            return Err(RegistryError::DigestMismatch {
                registry: registry.to_owned(),
                what: what.clone(),
                expected: descriptor.digest.clone(),
                found,
            });
        }
        file.flush().map_err(io_err("writing"))?;
        Ok(())
    }
    .await;
    progress.finish(id);
    result
}

fn io_err(action: &'static str) -> impl FnOnce(std::io::Error) -> RegistryError {
    move |source| RegistryError::Io {
        action,
        path: "(download)".into(),
        source,
    }
}

/// Checks that `bytes` are what `digest` names.
pub(crate) fn verify(
    registry: &str,
    what: &str,
    digest: &Digest,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    let mut hasher = Hasher::new(digest.algorithm());
    hasher.update(bytes);
    let found = hasher.finish();
    if &found == digest {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            registry: registry.to_owned(),
            what: what.to_owned(),
            expected: digest.clone(),
            found,
        })
    }
}
