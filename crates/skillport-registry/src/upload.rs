// Uploading one blob so that a lost answer never breaks it.
//
// An upload is a session on the registry: chunks go up with PATCH, the last bytes and the
// digest with PUT. Neither may be repeated blindly — after a lost answer the registry may
// already hold the chunk (a second PATCH of the same range is refused) or have completed the
// blob (a second PUT finds no session). So these requests are sent once, and after a failure
// that may pass the upload asks the registry where it stands (`GET` the upload URL: `Range`
// says how many bytes it holds) and goes on from there; when the session is gone, a HEAD of
// the blob tells a completed upload from a lost one.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{StatusCode, Url};
use skillport_oci::Digest;
use skillport_oci::spec::Descriptor;

use crate::client::Client;
use crate::error::RegistryError;
use crate::remote::Remote;
use crate::request::Access;
use crate::response::{self, status_error};
use crate::transfer::Progress;

/// Blobs above this size are uploaded in chunks; smaller ones in one request. Each request's
/// body is read into memory, so this also bounds the memory of one upload.
pub(crate) const CHUNK_SIZE: u64 = 8 << 20;

/// Where an upload stands on the registry.
enum Status {
    /// The registry holds the first `offset` bytes; go on at `location`.
    At { offset: u64, location: Url },
    /// The session is gone: completed, or expired.
    Gone,
}

/// Where an upload's bytes come from.
pub(crate) enum Source<'a> {
    /// A store blob.
    File(&'a Path),
    /// A small blob made in memory (a signature bundle, the empty config).
    Bytes(&'a [u8]),
    /// The same blob in another registry (`copy`): read into memory, never to disk, once the
    /// target turned out to need it.
    Registry(&'a Remote),
}

/// One upload session of `blob` from `source`.
pub(crate) struct Upload<'a> {
    pub client: &'a Client,
    pub access: &'a Access<'a>,
    pub remote: &'a Remote,
    pub blob: &'a Descriptor,
    pub source: Source<'a>,
    pub progress: &'a Arc<dyn Progress>,
    pub id: u64,
}

impl Upload<'_> {
    /// Sends the blob to the session at `location`: in chunks of [`CHUNK_SIZE`] when it is
    /// larger, then the closing PUT (with the bytes of a small blob); resumes from the registry's status after
    /// each failure that may pass, within the client's attempts.
    pub(crate) async fn run(&self, mut location: Url) -> Result<(), RegistryError> {
        let mut offset = 0;
        let mut failures = 0;
        loop {
            let remaining = self.blob.size - offset;
            // Large blobs go up in chunks and close with an empty PUT (as go-containerregistry
            // does: some registries take no bytes with the closing PUT of a chunked upload);
            // small ones in the closing PUT alone.
            let step = if self.blob.size > CHUNK_SIZE && remaining > 0 {
                let len = remaining.min(CHUNK_SIZE);
                self.patch(&location, offset, len)
                    .await
                    .map(|next| Some((next, len)))
            } else {
                self.put(&location, offset, remaining).await.map(|()| None)
            };
            let error = match step {
                Ok(Some((next, len))) => {
                    offset += len;
                    self.progress.advance(self.id, len);
                    location = next;
                    continue;
                }
                Ok(None) => {
                    self.progress.advance(self.id, remaining);
                    return Ok(());
                }
                Err(error) if error.is_transient() => error,
                Err(error) => return Err(error),
            };
            failures += 1;
            if failures >= self.client.options().attempts {
                return Err(error);
            }
            tracing::debug!(
                registry = self.access.registry,
                what = self.access.what,
                "upload interrupted at {offset} bytes ({error}); asking the registry where it stands"
            );
            tokio::time::sleep(self.client.backoff(failures)).await;
            match self.status(&location).await? {
                Status::At {
                    offset: held,
                    location: next,
                } if held <= self.blob.size => {
                    self.progress.restart(self.id);
                    self.progress.advance(self.id, held);
                    offset = held;
                    location = next;
                }
                Status::At { .. } => {
                    return Err(self.protocol("the registry holds more bytes than the blob has"));
                }
                Status::Gone
                    if self
                        .client
                        .blob_exists(self.remote, &self.blob.digest)
                        .await? =>
                {
                    // The closing PUT went through; only its answer was lost.
                    return Ok(());
                }
                Status::Gone => return Err(error),
            }
        }
    }

    /// Sends `len` bytes from `offset` as a chunk; returns where the next request goes.
    async fn patch(&self, location: &Url, offset: u64, len: u64) -> Result<Url, RegistryError> {
        let chunk = self.read(offset, len)?;
        let range = format!("{offset}-{}", offset + len - 1);
        let build = |http: &reqwest::Client, _base: &str| {
            http.patch(location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, &range)
                .header(CONTENT_LENGTH, len)
                .body(chunk.clone())
        };
        let response = self.client.send_once(self.access, &build).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_error(self.access, response).await);
        }
        response::location(&response)
            .ok_or_else(|| self.protocol("a chunk answered without a Location"))
    }

    /// Sends the last `len` bytes from `offset` (none after chunks that covered everything)
    /// with the digest, closing the upload.
    async fn put(&self, location: &Url, offset: u64, len: u64) -> Result<(), RegistryError> {
        let body = self.read(offset, len)?;
        // `digest=sha256:…` as registries and their clients write it (a digest needs no
        // escaping in a query).
        let mut url = location.clone();
        let query = match url.query() {
            Some(query) if !query.is_empty() => format!("{query}&digest={}", self.blob.digest),
            _ => format!("digest={}", self.blob.digest),
        };
        url.set_query(Some(&query));
        let build = |http: &reqwest::Client, _base: &str| {
            http.put(url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, len)
                .body(body.clone())
        };
        let response = self.client.send_once(self.access, &build).await?;
        if response.status() == StatusCode::CREATED {
            Ok(())
        } else {
            Err(status_error(self.access, response).await)
        }
    }

    /// Asks the registry how much of the upload it holds.
    async fn status(&self, location: &Url) -> Result<Status, RegistryError> {
        let build = |http: &reqwest::Client, _base: &str| http.get(location.clone());
        let response = self.client.send(self.access, &build).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(Status::Gone),
            status if status.is_success() => {
                let offset = response
                    .headers()
                    .get(RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(held_bytes)
                    .ok_or_else(|| self.protocol("the upload status has no Range"))?;
                let next = response::location(&response).unwrap_or_else(|| location.clone());
                Ok(Status::At {
                    offset,
                    location: next,
                })
            }
            _ => Err(status_error(self.access, response).await),
        }
    }

    fn read(&self, offset: u64, len: u64) -> Result<bytes::Bytes, RegistryError> {
        let len = usize::try_from(len).expect("at most one chunk");
        let path = match self.source {
            Source::File(path) => path,
            Source::Bytes(bytes) => {
                let start = usize::try_from(offset).expect("within the blob");
                return Ok(bytes::Bytes::copy_from_slice(&bytes[start..start + len]));
            }
            Source::Registry(_) => unreachable!("read into memory before the upload starts"),
        };
        let io = |source| RegistryError::Io {
            action: "reading",
            path: path.to_path_buf(),
            source,
        };
        let mut buffer = vec![0u8; len];
        let mut file = std::fs::File::open(path).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        file.read_exact(&mut buffer).map_err(io)?;
        Ok(bytes::Bytes::from(buffer))
    }

    fn protocol(&self, reason: &str) -> RegistryError {
        RegistryError::Protocol {
            registry: self.access.registry.to_owned(),
            what: self.access.what.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// How many bytes an upload's `Range: 0-<last>` says the registry holds. Distribution answers
/// `0-0` for an empty upload as for a one-byte one; our offsets are 0 or whole chunks, so
/// `0-0` means none.
fn held_bytes(range: &str) -> Option<u64> {
    let (start, last) = range.trim().trim_start_matches("bytes=").split_once('-')?;
    if start != "0" {
        return None;
    }
    match last.parse::<u64>().ok()? {
        0 => Some(0),
        last => Some(last + 1),
    }
}

impl Client {
    /// Whether the repository of `remote` holds the blob `digest`.
    pub(crate) async fn blob_exists(
        &self,
        remote: &Remote,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let what = format!("blob {digest}");
        let access = remote.access("pull,push", &what);
        let path = format!("/v2/{}/blobs/{digest}", remote.repository);
        let build = |http: &reqwest::Client, base: &str| {
            crate::client::request(http, reqwest::Method::HEAD, base, &path)
        };
        let response = self.send(&access, &build).await?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(&access, response).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ranges_say_how_many_bytes_are_held() {
        assert_eq!(held_bytes("0-8388607"), Some(8 << 20));
        assert_eq!(held_bytes("0-0"), Some(0));
        assert_eq!(held_bytes("bytes=0-99"), Some(100));
        assert_eq!(held_bytes("5-9"), None);
        assert_eq!(held_bytes("junk"), None);
    }
}
