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
        let mut pulled = self
            .pull_all(store, std::slice::from_ref(reference), progress)
            .await?;
        Ok(pulled.remove(0))
    }

    /// [`Client::pull`] of several images at once, with one store commit for all of them: a
    /// commit syncs and rewrites the store's index, which costs more than a small image's
    /// bytes. Blobs shared between the images are downloaded once. All or nothing is recorded.
    pub async fn pull_all(
        &self,
        store: &Store,
        references: &[Reference],
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<StoredImage>, RegistryError> {
        let trees: Vec<(Remote, ImageTree)> = futures_util::stream::iter(references)
            .map(|reference| async move {
                let remote = Remote::new(reference);
                let mut top = self.fetch_manifest(reference).await?;
                if let Some(platform) = &self.options().platform {
                    top = self.platform_manifest(&remote, top, platform).await?;
                }
                let tree = self.tree(&remote, top).await?;
                Ok::<_, RegistryError>((remote, tree))
            })
            .buffered(PARALLEL_BLOBS)
            .try_collect()
            .await?;
        // Blobs the store holds are skipped; `commit` checks again, under the store lock,
        // that they are still there.
        let mut wanted = std::collections::BTreeSet::new();
        let mut downloads = Vec::new();
        for (remote, tree) in &trees {
            for blob in tree.blobs() {
                if !store.contains(&blob) && wanted.insert(blob.digest.clone()) {
                    downloads.push((remote, blob));
                }
            }
        }
        let mut pending: Vec<PendingBlob> = futures_util::stream::iter(&downloads)
            .map(|(remote, blob)| self.download_to_store(store, remote, blob, progress.clone()))
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect()
            .await?;
        let mut names = Vec::new();
        for ((_, tree), reference) in trees.iter().zip(references) {
            for document in tree.documents() {
                if wanted.insert(document.descriptor.digest.clone()) {
                    pending.push(store.expect_bytes(&document.descriptor, &document.bytes)?);
                }
            }
            names.push((reference.store_key(), tree.top().descriptor.clone()));
        }
        store.commit(pending, &names)?;
        Ok(names
            .into_iter()
            .map(|(key, descriptor)| StoredImage { key, descriptor })
            .collect())
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
