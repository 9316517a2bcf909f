// Pulling an image into the store: its manifests, then the blobs the store lacks.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use skillport_oci::spec::{Descriptor, Platform};
use skillport_oci::{Document, ImageTree, PendingBlob, Reference, Store, StoredImage, TreeError};

use crate::client::Client;
use crate::error::RegistryError;
use crate::remote::Remote;
use crate::transfer::{Progress, download_blob};

/// How many blobs move at once.
pub(crate) const PARALLEL_BLOBS: usize = 8;

impl Client {
    /// Reads the manifests under `top` (all platforms of an index).
    pub(crate) async fn tree(
        &self,
        remote: &Remote,
        top: Document,
    ) -> Result<ImageTree, RegistryError> {
        let mut tree = ImageTree::new(top).map_err(|err| not_an_image(remote, &err))?;
        for child in tree.wanted() {
            let fetched = self
                .fetch_document(remote, &child.digest.to_string(), Some(&child.digest))
                .await?;
            tree.add_manifest(&child, fetched.bytes)
                .map_err(|err| not_an_image(remote, &err))?;
        }
        Ok(tree)
    }

    /// Pulls `reference` into `store` (every platform of an index, or with the options'
    /// platform that platform's manifest alone; skipping blobs the store has), and names it
    /// there as the reference is written. Nothing is recorded unless every byte arrived and
    /// matched its digest.
    pub async fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        progress: Arc<dyn Progress>,
    ) -> Result<StoredImage, RegistryError> {
        let remote = Remote::new(reference);
        let mut top = self.fetch_manifest(reference).await?;
        if let Some(platform) = &self.options().platform {
            top = self.platform_manifest(&remote, top, platform).await?;
        }
        let descriptor = top.descriptor.clone();
        let tree = self.tree(&remote, top).await?;
        // Blobs the store holds are skipped; `commit` checks again, under the store lock,
        // that they are still there.
        let blobs = tree.blobs();
        let mut pending: Vec<PendingBlob> =
            futures_util::stream::iter(blobs.iter().filter(|blob| !store.contains(blob)))
                .map(|blob| self.download_to_store(store, &remote, blob, progress.clone()))
                .buffer_unordered(PARALLEL_BLOBS)
                .try_collect()
                .await?;
        for document in tree.documents() {
            pending.push(store.expect_bytes(&document.descriptor, &document.bytes)?);
        }
        let key = reference.store_key();
        store.commit(pending, &[(key.clone(), descriptor.clone())])?;
        Ok(StoredImage { key, descriptor })
    }

    /// The manifest for `platform` under `top` (an index), fetched; `top` itself when it is a
    /// manifest.
    async fn platform_manifest(
        &self,
        remote: &Remote,
        top: Document,
        platform: &Platform,
    ) -> Result<Document, RegistryError> {
        let tree = ImageTree::new(top.clone()).map_err(|err| not_an_image(remote, &err))?;
        let picked = skillport_oci::picked_manifest_on(&tree, Some(platform))?.clone();
        if picked.digest == top.descriptor.digest {
            return Ok(top);
        }
        let fetched = self
            .fetch_document(remote, &picked.digest.to_string(), Some(&picked.digest))
            .await?;
        Ok(Document {
            descriptor: picked,
            bytes: fetched.bytes,
        })
    }

    async fn download_to_store(
        &self,
        store: &Store,
        remote: &Remote,
        blob: &Descriptor,
        progress: Arc<dyn Progress>,
    ) -> Result<PendingBlob, RegistryError> {
        // The store's writer hashes and counts again, with the descriptor's own algorithm,
        // and syncs the file before it can be renamed into `blobs/`.
        let mut writer = store.expect_blob(blob)?;
        let label = format!("{} {}", remote.repository, blob.digest.short());
        download_blob(
            self,
            &remote.registry,
            &remote.repository,
            blob,
            &mut writer,
            &progress,
            &label,
        )
        .await?;
        Ok(writer.finish()?)
    }
}

/// A registry's documents that do not make an image.
pub(crate) fn not_an_image(remote: &Remote, err: &TreeError) -> RegistryError {
    RegistryError::Protocol {
        registry: remote.registry.clone(),
        what: format!("manifest {}", remote.display),
        reason: format!("not a valid manifest: {err}"),
    }
}
