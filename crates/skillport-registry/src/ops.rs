// The operations: resolve, fetch a manifest, list tags, pull into the store, push from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LINK, LOCATION};
use reqwest::{Method, StatusCode};
use skillport_oci::spec::{Descriptor, ImageIndex, ImageManifest, media};
use std::path::{Path, PathBuf};

use skillport_oci::{
    Digest, PendingBlob, Reference, Staged, Store, StoredImage, UnpackLimits, Unpacked,
};

use crate::client::{Client, Target, request, status_error};
use crate::error::RegistryError;
use crate::transfer::{CapError, Progress, download_blob, file_body, read_capped, verify};

/// Every manifest media type we read, for `Accept`.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Blobs above this size are uploaded in chunks; smaller ones in one request.
const CHUNK_SIZE: u64 = 8 << 20;

/// How many blobs move at once.
const PARALLEL_BLOBS: usize = 8;

/// A reference split the way the distribution API wants it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// `host[:port]`; `docker.io` when the reference names none.
    pub registry: String,
    /// The repository path; Docker Hub's official images get `library/`.
    pub repository: String,
    /// The tag or digest to ask for.
    pub reference: String,
    /// The reference as the user wrote it, for messages.
    pub display: String,
}

impl Remote {
    /// Splits `reference`; with neither tag nor digest, asks for `latest`.
    pub fn new(reference: &Reference) -> Remote {
        let registry = reference.registry().unwrap_or("docker.io").to_owned();
        let mut repository = reference.repository().to_owned();
        if registry == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        let tag_or_digest = match (reference.digest(), reference.tag()) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        Remote {
            registry,
            repository,
            reference: tag_or_digest,
            display: reference.to_string(),
        }
    }

    fn target<'a>(&'a self, actions: &'a str, what: &'a str) -> Target<'a> {
        Target {
            registry: &self.registry,
            repository: &self.repository,
            actions,
            what,
        }
    }
}

/// What `export` unpacked.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The digest the reference resolved to.
    pub digest: Digest,
    /// The layer unpacked.
    pub layer: Digest,
    /// Files and bytes.
    pub unpacked: Unpacked,
}

/// A manifest or index as fetched: its descriptor (digest verified) and bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

/// The manifests under a fetched top-level document, and the blobs they need.
struct Tree {
    documents: Vec<Fetched>,
    blobs: Vec<Descriptor>,
}

impl Client {
    /// The digest (and media type and size) a reference points at, with one HEAD request.
    pub async fn resolve(&self, reference: &Reference) -> Result<Descriptor, RegistryError> {
        let remote = Remote::new(reference);
        let what = format!("manifest {}", remote.display);
        let target = remote.target("pull", &what);
        let path = format!("/v2/{}/manifests/{}", remote.repository, remote.reference);
        let build = |http: &reqwest::Client, base: &str| {
            request(http, Method::HEAD, base, &path).header(ACCEPT, MANIFEST_TYPES)
        };
        let response = self.send(&target, &build).await?;
        if response.status() == StatusCode::NOT_FOUND {
            // A HEAD answer has no body, so no reason: ask with GET for the registry's own
            // message, which tells a missing tag from a missing repository.
            return Ok(self.fetch_manifest(reference).await?.descriptor);
        }
        if !response.status().is_success() {
            return Err(status_error(&target, response).await);
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let digest = header("docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        let media_type = header(CONTENT_TYPE.as_str());
        let size = header(CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok());
        match (digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size))
                if reference.digest().is_none_or(|d| *d == digest) =>
            {
                Ok(Descriptor {
                    media_type,
                    digest,
                    size,
                    platform: None,
                    artifact_type: None,
                    annotations: BTreeMap::new(),
                })
            }
            // Some registries leave the digest out of HEAD answers: fetch and hash instead.
            _ => Ok(self.fetch_manifest(reference).await?.descriptor),
        }
    }

    /// Fetches the manifest or index a reference points at, verifying its digest when the
    /// reference or the registry names one, and refusing oversized or unknown documents.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<Fetched, RegistryError> {
        let remote = Remote::new(reference);
        self.fetch_document(&remote, &remote.reference, reference.digest())
            .await
    }

    async fn fetch_document(
        &self,
        remote: &Remote,
        tag_or_digest: &str,
        expected: Option<&Digest>,
    ) -> Result<Fetched, RegistryError> {
        let what = format!("manifest {}", remote.display);
        let target = remote.target("pull", &what);
        let path = format!("/v2/{}/manifests/{tag_or_digest}", remote.repository);
        let build = |http: &reqwest::Client, base: &str| {
            request(http, Method::GET, base, &path).header(ACCEPT, MANIFEST_TYPES)
        };
        let response = self.send(&target, &build).await?;
        if !response.status().is_success() {
            return Err(status_error(&target, response).await);
        }
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let limit = self.options().max_manifest_bytes;
        let bytes = read_capped(response, limit)
            .await
            .map_err(|err| match err {
                CapError::TooLarge => RegistryError::TooLarge {
                    registry: remote.registry.clone(),
                    what: what.clone(),
                    limit,
                },
                CapError::Transport(err) => {
                    crate::client::transport_error(&remote.registry, &err, self.options())
                }
            })?;
        let digest = match expected.or(header_digest.as_ref()) {
            Some(digest) => {
                verify(&remote.registry, &what, digest, &bytes)?;
                digest.clone()
            }
            None => Digest::sha256(&bytes),
        };
        let declared: Option<String> = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned));
        let media_type = declared.or(content_type).unwrap_or_default();
        if !matches!(
            media_type.as_str(),
            media::IMAGE_INDEX
                | media::IMAGE_MANIFEST
                | media::DOCKER_MANIFEST
                | media::DOCKER_MANIFEST_LIST
        ) {
            return Err(RegistryError::UnsupportedMediaType {
                registry: remote.registry.clone(),
                what,
                media_type,
            });
        }
        Ok(Fetched {
            descriptor: Descriptor {
                media_type,
                digest,
                size: bytes.len() as u64,
                platform: None,
                artifact_type: None,
                annotations: BTreeMap::new(),
            },
            bytes,
        })
    }

    /// Checks that `registry` accepts this client's credentials for it: `GET /v2/`, answering
    /// its challenge. `docker login` does the same before it saves anything.
    pub async fn check_login(&self, registry: &str) -> Result<(), RegistryError> {
        let target = Target {
            registry,
            repository: "",
            actions: "",
            what: "login",
        };
        let build = |http: &reqwest::Client, base: &str| request(http, Method::GET, base, "/v2/");
        let response = self.send(&target, &build).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(&target, response).await)
        }
    }

    /// Every tag of the repository `reference` names, following pagination.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        let remote = Remote::new(reference);
        let what = format!("tags of {}", remote.repository);
        let target = remote.target("pull", &what);
        let mut path = format!("/v2/{}/tags/list?n=1000", remote.repository);
        let mut tags = Vec::new();
        for _page in 0..10_000 {
            let build =
                |http: &reqwest::Client, base: &str| request(http, Method::GET, base, &path);
            let response = self.send(&target, &build).await?;
            if !response.status().is_success() {
                return Err(status_error(&target, response).await);
            }
            let next = response
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body =
                read_capped(response, 16 << 20)
                    .await
                    .map_err(|_| RegistryError::Protocol {
                        registry: remote.registry.clone(),
                        what: what.clone(),
                        reason: "tag list unreadable or too large".into(),
                    })?;
            let page: serde_json::Value =
                serde_json::from_slice(&body).map_err(|err| RegistryError::Protocol {
                    registry: remote.registry.clone(),
                    what: what.clone(),
                    reason: err.to_string(),
                })?;
            if let Some(list) = page.get("tags").and_then(serde_json::Value::as_array) {
                tags.extend(list.iter().filter_map(|t| t.as_str().map(str::to_owned)));
            }
            match next {
                Some(next) => path = next,
                None => return Ok(tags),
            }
        }
        Err(RegistryError::Protocol {
            registry: remote.registry.clone(),
            what,
            reason: "tag list pagination does not end".into(),
        })
    }

    /// Reads the manifests under `top` (all platforms of an index) and lists their blobs.
    async fn tree(&self, remote: &Remote, top: Fetched) -> Result<Tree, RegistryError> {
        let mut documents = Vec::new();
        let mut manifests = Vec::new();
        let what = format!("manifest {}", remote.display);
        let bad = |err: serde_json::Error| RegistryError::Protocol {
            registry: remote.registry.clone(),
            what: what.clone(),
            reason: format!("not a valid manifest: {err}"),
        };
        match top.descriptor.media_type.as_str() {
            media::IMAGE_INDEX | media::DOCKER_MANIFEST_LIST => {
                let index: ImageIndex = serde_json::from_slice(&top.bytes).map_err(bad)?;
                for child in &index.manifests {
                    let fetched = self
                        .fetch_document(remote, &child.digest.to_string(), Some(&child.digest))
                        .await?;
                    manifests.push(
                        serde_json::from_slice::<ImageManifest>(&fetched.bytes).map_err(bad)?,
                    );
                    documents.push(fetched);
                }
            }
            _ => manifests.push(serde_json::from_slice::<ImageManifest>(&top.bytes).map_err(bad)?),
        }
        documents.push(top);
        Ok(Tree {
            documents,
            blobs: blobs_of(manifests),
        })
    }

    /// Pulls `reference` into `store` (every platform of an index, skipping blobs the store
    /// has), and names it there as the reference is written. Nothing is recorded unless every
    /// byte arrived and matched its digest.
    pub async fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        progress: Arc<dyn Progress>,
    ) -> Result<StoredImage, RegistryError> {
        let remote = Remote::new(reference);
        let top = self.fetch_manifest(reference).await?;
        let descriptor = top.descriptor.clone();
        let tree = self.tree(&remote, top).await?;
        let mut pending: Vec<PendingBlob> = futures_util::stream::iter(
            tree.blobs
                .iter()
                .filter(|blob| !store.has_blob(&blob.digest)),
        )
        .map(|blob| self.download_to_store(store, &remote, blob, progress.clone()))
        .buffer_unordered(PARALLEL_BLOBS)
        .try_collect()
        .await?;
        for document in &tree.documents {
            pending.push(store.pending_bytes(&document.bytes)?);
        }
        let key = reference.store_key();
        store.commit(pending, &[(key.clone(), descriptor.clone())])?;
        Ok(StoredImage { key, descriptor })
    }

    /// Downloads the skill `reference` names straight into the folder `dest` (absent or
    /// empty): the manifest (linux/amd64 of an index, or the only one), then the layer into a
    /// temporary file beside `dest`, verified, then unpacked safely and renamed into place.
    pub async fn export(
        &self,
        reference: &Reference,
        dest: &Path,
        progress: Arc<dyn Progress>,
    ) -> Result<Exported, RegistryError> {
        self.export_with_limits(reference, dest, UnpackLimits::default(), progress)
            .await
    }

    /// [`Client::export`] with the limits on what the layer may expand to (bytes, entries)
    /// chosen by the caller: `skillport fetch` bounds each skill by what its folder may hold.
    pub async fn export_with_limits(
        &self,
        reference: &Reference,
        dest: &Path,
        limits: UnpackLimits,
        progress: Arc<dyn Progress>,
    ) -> Result<Exported, RegistryError> {
        // Refuse a taken destination before downloading anything; `publish` checks again.
        skillport_oci::folder::check_destination(dest)
            .map_err(|err| skillport_oci::ReadError::from(skillport_oci::UnpackError::from(err)))?;
        let remote = Remote::new(reference);
        let top = self.fetch_manifest(reference).await?;
        let what = format!("manifest {}", remote.display);
        let bad = |err: serde_json::Error| RegistryError::Protocol {
            registry: remote.registry.clone(),
            what: what.clone(),
            reason: format!("not a valid manifest: {err}"),
        };
        let manifest_bytes = match top.descriptor.media_type.as_str() {
            media::IMAGE_INDEX | media::DOCKER_MANIFEST_LIST => {
                let index: ImageIndex = serde_json::from_slice(&top.bytes).map_err(bad)?;
                let child = skillport_oci::pick_manifest(&index).ok_or_else(|| {
                    RegistryError::Read(skillport_oci::ReadError::NotASkill {
                        reason: "the index has no linux/amd64 manifest and more than one other"
                            .into(),
                    })
                })?;
                self.fetch_document(&remote, &child.digest.to_string(), Some(&child.digest))
                    .await?
                    .bytes
            }
            _ => top.bytes,
        };
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).map_err(bad)?;
        let (layer, format) = skillport_oci::skill_layer(&manifest)?;
        let parent = match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let io = |action| {
            let path = parent.clone();
            move |source| RegistryError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&parent).map_err(io("creating"))?;
        let mut download = tempfile::Builder::new()
            .prefix(".skillport-download-")
            .tempfile_in(&parent)
            .map_err(io("creating a temporary file in"))?;
        let label = format!("{} {}", remote.repository, layer.digest.short());
        download_blob(
            self,
            &remote.registry,
            &remote.repository,
            &layer,
            download.as_file_mut(),
            &progress,
            &label,
        )
        .await?;
        let file = download.reopen().map_err(io("reading"))?;
        let dest = dest.to_path_buf();
        let unpacked = tokio::task::spawn_blocking(move || {
            let staged = Staged::unpack(std::io::BufReader::new(file), format, &parent, limits)?;
            staged.publish(&dest)
        })
        .await
        .expect("unpacking does not panic")
        .map_err(skillport_oci::ReadError::from)?;
        Ok(Exported {
            digest: top.descriptor.digest,
            layer: layer.digest,
            unpacked,
        })
    }

    async fn download_to_store(
        &self,
        store: &Store,
        remote: &Remote,
        blob: &Descriptor,
        progress: Arc<dyn Progress>,
    ) -> Result<PendingBlob, RegistryError> {
        let mut file = store.temp_file()?;
        let label = format!("{} {}", remote.repository, blob.digest.short());
        download_blob(
            self,
            &remote.registry,
            &remote.repository,
            blob,
            file.as_file_mut(),
            &progress,
            &label,
        )
        .await?;
        Ok(Store::pending_verified(
            file,
            blob.digest.clone(),
            blob.size,
        ))
    }

    /// Pushes the image `local` names in `store` to `remote_ref`: blobs the registry lacks
    /// (mounted from another repository of the same registry when the image came from one),
    /// then the manifests, then the index under the tag. Returns the pushed digest.
    pub async fn push(
        &self,
        store: &Store,
        local: &Reference,
        remote_ref: &Reference,
        progress: Arc<dyn Progress>,
    ) -> Result<Digest, RegistryError> {
        let image = store.resolve(local)?;
        let remote = Remote::new(remote_ref);
        // Where the image was pulled from, when that is the same registry: blobs can be
        // mounted from there instead of uploaded.
        let mount_from = local
            .registry()
            .filter(|registry| *registry == remote.registry)
            .map(|_| local.repository().to_owned())
            .filter(|repository| *repository != remote.repository);

        let top_bytes = store.read_blob(&image.descriptor.digest)?;
        let mut documents: Vec<(Descriptor, Vec<u8>)> = Vec::new();
        let parse_manifest = |bytes: &[u8]| {
            serde_json::from_slice::<ImageManifest>(bytes).map_err(|err| {
                skillport_oci::StoreError::BadDocument {
                    what: "manifest",
                    digest: Digest::sha256(bytes),
                    source: err,
                }
            })
        };
        let mut manifests = Vec::new();
        match image.descriptor.media_type.as_str() {
            media::IMAGE_INDEX | media::DOCKER_MANIFEST_LIST => {
                let index: ImageIndex = serde_json::from_slice(&top_bytes).map_err(|err| {
                    skillport_oci::StoreError::BadDocument {
                        what: "image index",
                        digest: image.descriptor.digest.clone(),
                        source: err,
                    }
                })?;
                for child in &index.manifests {
                    let bytes = store.read_blob(&child.digest)?;
                    manifests.push(parse_manifest(&bytes)?);
                    documents.push((child.clone(), bytes));
                }
            }
            _ => manifests.push(parse_manifest(&top_bytes)?),
        }
        let blobs = blobs_of(manifests);

        futures_util::stream::iter(blobs.iter())
            .map(|blob| {
                self.push_blob(
                    store,
                    &remote,
                    blob,
                    mount_from.as_deref(),
                    progress.clone(),
                )
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        for (descriptor, bytes) in &documents {
            self.put_manifest(
                &remote,
                &descriptor.digest.to_string(),
                &descriptor.media_type,
                bytes,
            )
            .await?;
        }
        let tag = remote_ref
            .tag()
            .map_or_else(|| image.descriptor.digest.to_string(), str::to_owned);
        self.put_manifest(&remote, &tag, &image.descriptor.media_type, &top_bytes)
            .await?;
        Ok(image.descriptor.digest)
    }

    async fn put_manifest(
        &self,
        remote: &Remote,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let what = format!("manifest {}:{tag_or_digest}", remote.repository);
        let target = remote.target("pull,push", &what);
        let path = format!("/v2/{}/manifests/{tag_or_digest}", remote.repository);
        let body = bytes::Bytes::copy_from_slice(bytes);
        let build = |http: &reqwest::Client, base: &str| {
            request(http, Method::PUT, base, &path)
                .header(CONTENT_TYPE, media_type)
                .body(body.clone())
        };
        let response = self.send(&target, &build).await?;
        if response.status().is_success() {
            let expected = Digest::sha256(bytes);
            let echoed = response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Digest>().ok());
            if let Some(echoed) = echoed.filter(|d| *d != expected) {
                return Err(RegistryError::DigestMismatch {
                    registry: remote.registry.clone(),
                    what,
                    expected,
                    found: echoed,
                });
            }
            Ok(())
        } else {
            Err(status_error(&target, response).await)
        }
    }

    async fn blob_exists(&self, remote: &Remote, digest: &Digest) -> Result<bool, RegistryError> {
        let what = format!("blob {digest}");
        let target = remote.target("pull,push", &what);
        let path = format!("/v2/{}/blobs/{digest}", remote.repository);
        let build = |http: &reqwest::Client, base: &str| request(http, Method::HEAD, base, &path);
        let response = self.send(&target, &build).await?;
        match response.status() {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(&target, response).await),
        }
    }

    async fn push_blob(
        &self,
        store: &Store,
        remote: &Remote,
        blob: &Descriptor,
        mount_from: Option<&str>,
        progress: Arc<dyn Progress>,
    ) -> Result<(), RegistryError> {
        if self.blob_exists(remote, &blob.digest).await? {
            return Ok(());
        }
        let what = format!("blob {}", blob.digest);
        let target = remote.target("pull,push", &what);
        let start_path = match mount_from {
            Some(from) => format!(
                "/v2/{}/blobs/uploads/?mount={}&from={from}",
                remote.repository, blob.digest
            ),
            None => format!("/v2/{}/blobs/uploads/", remote.repository),
        };
        let build = |http: &reqwest::Client, base: &str| {
            request(http, Method::POST, base, &start_path).header(CONTENT_LENGTH, 0)
        };
        let response = self.send(&target, &build).await?;
        match response.status() {
            StatusCode::CREATED => return Ok(()), // mounted
            StatusCode::ACCEPTED => {}
            _ => return Err(status_error(&target, response).await),
        }
        let mut location = location(&response, remote, &what)?;
        let path = store.blob_path(&blob.digest);
        let label = format!("{} {}", remote.repository, blob.digest.short());
        let id = progress.start(&label, Some(blob.size));
        let result = async {
            if blob.size > CHUNK_SIZE {
                location = self
                    .upload_chunks(&target, remote, location, &path, blob, &progress, id)
                    .await?;
                self.finish_upload(&target, &location, &blob.digest, None)
                    .await
            } else {
                let body = || file_body(&path, progress.clone(), id);
                self.finish_upload(&target, &location, &blob.digest, Some((&body, blob.size)))
                    .await
            }
        }
        .await;
        progress.finish(id);
        result
    }

    #[allow(clippy::too_many_arguments)] // one upload's state; a struct would only rename it
    async fn upload_chunks(
        &self,
        target: &Target<'_>,
        remote: &Remote,
        mut location: String,
        path: &std::path::Path,
        blob: &Descriptor,
        progress: &Arc<dyn Progress>,
        id: u64,
    ) -> Result<String, RegistryError> {
        use std::io::{Read, Seek, SeekFrom};
        let mut offset = 0;
        while offset < blob.size {
            let len = CHUNK_SIZE.min(blob.size - offset);
            let mut chunk = vec![0u8; usize::try_from(len).expect("chunk fits in memory")];
            let mut file = std::fs::File::open(path).map_err(|source| RegistryError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })?;
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut chunk))
                .map_err(|source| RegistryError::Io {
                    action: "reading",
                    path: path.to_path_buf(),
                    source,
                })?;
            let chunk = bytes::Bytes::from(chunk);
            let range = format!("{offset}-{}", offset + len - 1);
            let url = location.clone();
            let build = |http: &reqwest::Client, _base: &str| {
                http.patch(&url)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, &range)
                    .header(CONTENT_LENGTH, len)
                    .body(chunk.clone())
            };
            let response = self.send(target, &build).await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(status_error(target, response).await);
            }
            location = crate::ops::location(&response, remote, target.what)?;
            offset += len;
            progress.advance(id, len);
        }
        Ok(location)
    }

    async fn finish_upload(
        &self,
        target: &Target<'_>,
        location: &str,
        digest: &Digest,
        body: Option<(&(dyn Fn() -> std::io::Result<reqwest::Body> + Sync), u64)>,
    ) -> Result<(), RegistryError> {
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let build = |http: &reqwest::Client, _base: &str| {
            let put = http
                .put(&url)
                .header(CONTENT_TYPE, "application/octet-stream");
            match body {
                Some((body, size)) => match body() {
                    Ok(body) => put.header(CONTENT_LENGTH, size).body(body),
                    // Unreadable now: send nothing, and let the size check below report it.
                    Err(_) => put.header(CONTENT_LENGTH, 0),
                },
                None => put.header(CONTENT_LENGTH, 0),
            }
        };
        let response = self.send(target, &build).await?;
        if response.status() == StatusCode::CREATED {
            Ok(())
        } else {
            Err(status_error(target, response).await)
        }
    }
}

/// The config and layers of `manifests`, each blob once.
fn blobs_of(manifests: Vec<ImageManifest>) -> Vec<Descriptor> {
    let mut blobs: Vec<Descriptor> = Vec::new();
    for manifest in manifests {
        for blob in std::iter::once(manifest.config).chain(manifest.layers) {
            if !blobs.iter().any(|b| b.digest == blob.digest) {
                blobs.push(blob);
            }
        }
    }
    blobs
}

/// The absolute upload URL from a `Location` header (registries send relative ones too).
fn location(
    response: &reqwest::Response,
    remote: &Remote,
    what: &str,
) -> Result<String, RegistryError> {
    let value = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            registry: remote.registry.clone(),
            what: what.to_owned(),
            reason: "upload answered without a Location".into(),
        })?;
    Ok(response
        .url()
        .join(value)
        .map_or_else(|_| value.to_owned(), |url| url.to_string()))
}

/// The path of the `rel="next"` link in a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            let url = url.trim().trim_start_matches('<').trim_end_matches('>');
            // Keep the path and query; the base is the registry's.
            match url.find("/v2/") {
                Some(i) => url[i..].to_owned(),
                None => url.to_owned(),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_split_like_docker() {
        let r = Remote::new(&"alpine".parse().unwrap());
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("docker.io", "library/alpine", "latest")
        );
        let r = Remote::new(&"127.0.0.1:5000/skills/pdf:1.0".parse().unwrap());
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "skills/pdf", "1.0")
        );
    }

    #[test]
    fn next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(
            next_link(r#"<https://r.io/v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</v2/a/tags/list?last=x>; rel="prev""#), None);
    }
}
