// Pushing an image from the store: blobs the registry lacks (mounted or uploaded), then manifests.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use skillport_oci::spec::Descriptor;
use skillport_oci::{Digest, ImageTree, Reference, Store};

use crate::client::{Client, request};
use crate::error::RegistryError;
use crate::pull::PARALLEL_BLOBS;
use crate::remote::Remote;
use crate::response::{location, status_error};
use crate::transfer::{Progress, verify};
use crate::upload::{Source, Upload};

/// The same rule as pull: the target is the tag its reference names, `latest` when it names
/// none, or its digest, which must then be the image's own.
fn check_target(
    remote: &Remote,
    target: &Reference,
    digest: &Digest,
    operation: &str,
) -> Result<(), RegistryError> {
    match target.digest() {
        Some(wanted) if wanted != digest => Err(RegistryError::DigestMismatch {
            registry: remote.registry.clone(),
            what: format!("{operation} target {}", remote.display),
            expected: wanted.clone(),
            found: digest.clone(),
        }),
        _ => Ok(()),
    }
}

/// The largest blob `copy` carries between registries (in memory, never on disk).
const MAX_COPIED_BLOB: u64 = 1 << 30;

/// What the registry said to a manifest PUT.
pub(crate) struct PutAnswer {
    /// It answered `OCI-Subject`: it indexes the manifest's `subject` for the referrers API.
    pub subject_seen: bool,
}

impl Client {
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

        check_target(&remote, remote_ref, &image.descriptor.digest, "push")?;
        let tree = ImageTree::read(store, &image.descriptor)?;
        let blobs = tree.blobs();

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
        self.put_documents(&remote, &tree).await?;
        Ok(image.descriptor.digest)
    }

    /// Copies the image `source` names to `target` (another repository, or another registry),
    /// every platform of an index: blobs the target lacks are mounted within one registry, or
    /// read from the source into memory and uploaded (never written to disk); then the
    /// manifests, the top one under the target's tag. Returns the image's digest, which the
    /// copy keeps.
    pub async fn copy(
        &self,
        source: &Reference,
        target: &Reference,
        progress: Arc<dyn Progress>,
    ) -> Result<Digest, RegistryError> {
        let from = Remote::new(source);
        let to = Remote::new(target);
        let top = self.fetch_manifest(source).await?;
        let digest = top.descriptor.digest.clone();
        check_target(&to, target, &digest, "copy")?;
        let tree = self.tree(&from, top).await?;
        let mount_from = (from.registry == to.registry && from.repository != to.repository)
            .then_some(from.repository.as_str());
        futures_util::stream::iter(tree.blobs())
            .map(|blob| {
                let (from, to, progress) = (&from, &to, progress.clone());
                async move {
                    self.upload_blob(to, &blob, Source::Registry(from), mount_from, progress)
                        .await
                }
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;
        self.put_documents(&to, &tree).await?;
        Ok(digest)
    }

    /// Puts the manifests of `tree` to `remote`: those under an index by digest, the top last,
    /// under the tag (or digest) `remote` names.
    async fn put_documents(&self, remote: &Remote, tree: &ImageTree) -> Result<(), RegistryError> {
        let documents = tree.documents();
        let (top, children) = documents.split_last().expect("a tree has a top");
        for document in children {
            self.put_manifest(
                remote,
                &document.descriptor.digest.to_string(),
                &document.descriptor.media_type,
                &document.bytes,
            )
            .await?;
        }
        self.put_manifest(
            remote,
            &remote.reference,
            &top.descriptor.media_type,
            &top.bytes,
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn put_manifest(
        &self,
        remote: &Remote,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<PutAnswer, RegistryError> {
        let what = format!("manifest {}:{tag_or_digest}", remote.repository);
        let access = remote.access("pull,push", &what);
        let path = format!("/v2/{}/manifests/{tag_or_digest}", remote.repository);
        let body = bytes::Bytes::copy_from_slice(bytes);
        let build = |http: &reqwest::Client, base: &str| {
            request(http, Method::PUT, base, &path)
                .header(CONTENT_TYPE, media_type)
                .body(body.clone())
        };
        let response = self.send(&access, &build).await?;
        if response.status().is_success() {
            let subject_seen = response.headers().contains_key("oci-subject");
            let echoed = response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Digest>().ok());
            // The registry names the digest in its own algorithm: hash ours the same way.
            if let Some(echoed) = echoed {
                verify(&remote.registry, &what, &echoed, bytes)?;
            }
            Ok(PutAnswer { subject_seen })
        } else {
            Err(status_error(&access, response).await)
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
        let path = store.blob_path(&blob.digest);
        self.upload_blob(remote, blob, Source::File(&path), mount_from, progress)
            .await
    }

    /// Uploads `blob` from `source` unless the repository holds it (or can mount it).
    pub(crate) async fn upload_blob(
        &self,
        remote: &Remote,
        blob: &Descriptor,
        source: Source<'_>,
        mount_from: Option<&str>,
        progress: Arc<dyn Progress>,
    ) -> Result<(), RegistryError> {
        if self.blob_exists(remote, &blob.digest).await? {
            return Ok(());
        }
        let what = format!("blob {}", blob.digest);
        let access = remote.access("pull,push", &what);
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
        let response = self.send(&access, &build).await?;
        match response.status() {
            StatusCode::CREATED => return Ok(()), // mounted
            StatusCode::ACCEPTED => {}
            _ => return Err(status_error(&access, response).await),
        }
        let location = location(&response).ok_or_else(|| RegistryError::Protocol {
            registry: remote.registry.clone(),
            what: what.clone(),
            reason: "upload answered without a Location".into(),
        })?;
        let fetched;
        let source = match source {
            Source::Registry(from) => {
                fetched = self.blob_bytes(from, blob, MAX_COPIED_BLOB).await?;
                Source::Bytes(&fetched)
            }
            other => other,
        };
        let label = format!("{} {}", remote.repository, blob.digest.short());
        let id = progress.start(&label, Some(blob.size));
        let upload = Upload {
            client: self,
            access: &access,
            remote,
            blob,
            source,
            progress: &progress,
            id,
        };
        let result = upload.run(location).await;
        progress.finish(id);
        result
    }
}
