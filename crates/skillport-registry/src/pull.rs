// Pulling an image into the store: its manifests, then the blobs the store lacks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use skillport_oci::spec::{Descriptor, Platform};
use skillport_oci::{
    Digest, Document, ImageTree, LayerFormat, PendingBlob, Reference, Staged, Store, StoredImage,
    TreeError, UnpackLimits,
};

use crate::client::Client;
use crate::error::RegistryError;
use crate::export::{send, streamed_unpack};
use crate::remote::Remote;
use crate::transfer::{Progress, download_blob};

/// How many blobs move at once.
pub(crate) const PARALLEL_BLOBS: usize = 8;

/// How many images of one pull are read at once (as many as `skillport fetch` fetches).
const PARALLEL_IMAGES: usize = 16;

impl Client {
    /// Reads the manifests under `top` (all platforms of an index), several at once.
    pub(crate) async fn tree(
        &self,
        remote: &Remote,
        top: Document,
    ) -> Result<ImageTree, RegistryError> {
        let mut tree = ImageTree::new(top).map_err(|err| not_an_image(remote, &err))?;
        let children = tree.wanted();
        let fetched: Vec<_> = futures_util::stream::iter(&children)
            .map(|child| async {
                self.fetch_document(remote, &child.digest.to_string(), Some(&child.digest))
                    .await
            })
            .buffered(PARALLEL_BLOBS)
            .try_collect()
            .await?;
        for (child, fetched) in children.iter().zip(fetched) {
            tree.add_manifest(child, fetched.bytes)
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
    /// bytes. Each image's blobs download as soon as its manifests are read, while other
    /// images' manifests are; a blob shared between images is downloaded once. All or nothing
    /// is recorded.
    pub async fn pull_all(
        &self,
        store: &Store,
        references: &[Reference],
        progress: Arc<dyn Progress>,
    ) -> Result<Vec<StoredImage>, RegistryError> {
        let requests: Vec<(Reference, Option<PathBuf>)> = references
            .iter()
            .map(|reference| (reference.clone(), None))
            .collect();
        let (stored, _) = self.pull_all_unpacking(store, &requests, progress).await?;
        Ok(stored)
    }

    /// [`Client::pull_all`] that also unpacks, while it downloads, the skill layer of each
    /// image given a folder: into a staging folder there (on the destination's file system),
    /// within the default [`skillport_oci::UnpackLimits`], as `export` would. One download
    /// feeds both the store and the folder, so an installer need not read the layer back.
    /// Such an image is pulled for the manifest its skill is read from alone, as with a
    /// platform (`crane pull --platform`); the store's name for it records the index's digest,
    /// so [`Store::resolve`] of the image's digest finds it.
    ///
    /// An image gets its [`Unpacking`] only when its layer was downloaded here (not already in
    /// the store, nor shared with an earlier image) and the unpack succeeded; otherwise the
    /// caller unpacks from the store, which also reports why a layer was refused. A staged
    /// folder is complete and matched the layer's digest: the unpacker reads the end of the
    /// stream only after the download's digest checked out.
    pub async fn pull_all_unpacking(
        &self,
        store: &Store,
        requests: &[(Reference, Option<PathBuf>)],
        progress: Arc<dyn Progress>,
    ) -> Result<(Vec<StoredImage>, Vec<Option<Unpacking>>), RegistryError> {
        let claimed = std::sync::Mutex::new(BTreeSet::new());
        // Blob downloads of all images together: as many as images read at once.
        let permits = tokio::sync::Semaphore::new(PARALLEL_IMAGES);
        let pulled: Vec<Pulled> = futures_util::stream::iter(requests)
            .map(|(reference, unpack_in)| {
                let shared = Shared {
                    claimed: &claimed,
                    permits: &permits,
                };
                self.pull_blobs(
                    store,
                    reference,
                    unpack_in.as_deref(),
                    shared,
                    progress.clone(),
                )
            })
            .buffered(PARALLEL_IMAGES)
            .try_collect()
            .await?;
        let mut claimed = claimed.into_inner().expect("not poisoned");
        let mut pending = Vec::new();
        let mut names = Vec::new();
        let mut unpacked = Vec::new();
        for (pulled, (reference, _)) in pulled.into_iter().zip(requests) {
            pending.extend(pulled.blobs);
            for document in pulled.tree.documents().into_iter().chain(&pulled.index) {
                if claimed.insert(document.descriptor.digest.clone()) {
                    pending.push(store.expect_bytes(&document.descriptor, &document.bytes)?);
                }
            }
            names.push((reference.store_key(), pulled.tree.top().descriptor.clone()));
            unpacked.push(pulled.unpacked);
        }
        store.commit(pending, &names)?;
        let stored = names
            .into_iter()
            .map(|(key, descriptor)| StoredImage { key, descriptor })
            .collect();
        Ok((stored, unpacked))
    }

    /// The manifests of `reference`, and those of its blobs the store lacks and no other image
    /// of the same pull has `claimed`, downloaded (pending, not yet in the store); its skill
    /// layer also unpacked into `unpack_in` when given.
    async fn pull_blobs(
        &self,
        store: &Store,
        reference: &Reference,
        unpack_in: Option<&Path>,
        Shared { claimed, permits }: Shared<'_>,
        progress: Arc<dyn Progress>,
    ) -> Result<Pulled, RegistryError> {
        let remote = Remote::new(reference);
        let mut top = self.fetch_manifest(reference).await?;
        let mut kept_index = None;
        // An image pulled to be installed needs the manifest its skill is read from, not the
        // other platforms' manifests and configs (the same layer): three requests fewer, each
        // one authenticated.
        if self.options().platform.is_some() || unpack_in.is_some() {
            let platform = self.options().platform.as_ref();
            let (manifest, index) = self.platform_manifest(&remote, top, platform).await?;
            top = manifest;
            kept_index = index;
        }
        let tree = self.tree(&remote, top).await?;
        // Blobs the store holds are skipped; `commit` checks again, under the store lock,
        // that they are still there.
        let downloads: Vec<Descriptor> = tree
            .blobs()
            .into_iter()
            .filter(|blob| {
                !store.contains(blob)
                    && claimed
                        .lock()
                        .expect("not poisoned")
                        .insert(blob.digest.clone())
            })
            .collect();
        // The layer a skill is read from, when it is among the downloads.
        let skill_layer = unpack_in.and_then(|parent| {
            let picked =
                skillport_oci::picked_manifest_on(&tree, self.options().platform.as_ref()).ok()?;
            let manifest = &tree.manifest(&picked.digest)?.manifest;
            let (layer, format) = skillport_oci::skill_layer(manifest).ok()?;
            downloads
                .iter()
                .any(|blob| blob.digest == layer.digest)
                .then(|| (layer, format, parent.to_path_buf()))
        });
        let unpacked = std::sync::Mutex::new(None);
        let blobs = futures_util::stream::iter(&downloads)
            .map(|blob| async {
                // A blob embedded in its manifest (`build` embeds each config), once
                // checked, is the blob: no request.
                if let Some(bytes) = blob.embedded() {
                    return Ok(store.expect_bytes(blob, &bytes)?);
                }
                let _permit = permits
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                match &skill_layer {
                    Some((layer, format, parent)) if layer.digest == blob.digest => {
                        let (pending, staged) = self
                            .download_unpacking(store, &remote, blob, *format, parent, &progress)
                            .await?;
                        *unpacked.lock().expect("not poisoned") = staged.map(|staged| Unpacking {
                            layer: blob.digest.clone(),
                            staged,
                        });
                        Ok(pending)
                    }
                    _ => {
                        self.download_to_store(store, &remote, blob, progress.clone())
                            .await
                    }
                }
            })
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect()
            .await?;
        Ok(Pulled {
            tree,
            index: kept_index,
            blobs,
            unpacked: unpacked.into_inner().expect("not poisoned"),
        })
    }

    /// [`Client::download_to_store`] of a skill layer that also feeds a blocking unpacker
    /// into `parent` through a bounded channel. The unpacker's refusal (or a download that
    /// starts over) only drops the unpacked copy; the blob still goes to the store.
    async fn download_unpacking(
        &self,
        store: &Store,
        remote: &Remote,
        blob: &Descriptor,
        format: LayerFormat,
        parent: &Path,
        progress: &Arc<dyn Progress>,
    ) -> Result<(PendingBlob, Option<Staged>), RegistryError> {
        let (sender, unpacker) =
            streamed_unpack(format, parent.to_path_buf(), UnpackLimits::default());
        let mut tee = TeeSink {
            writer: store.expect_blob(blob)?,
            stream: Some(sender),
        };
        let label = format!("{} {}", remote.repository, blob.digest.short());
        let downloaded = download_blob(
            self,
            &remote.registry,
            &remote.repository,
            blob,
            &mut tee,
            progress,
            &label,
        )
        .await;
        // The end marker, only after the download's size and digest checked out.
        if downloaded.is_ok()
            && let Some(stream) = tee.stream.take()
        {
            let _ = send(&stream, Vec::new());
        }
        tee.stream = None;
        let staged = unpacker.await.expect("unpacking does not panic");
        downloaded?;
        let pending = tee.writer.finish()?;
        Ok((pending, staged.ok()))
    }

    /// The manifest for `platform` under `top` (an index; `None`: the one a skill is read
    /// from), fetched, its descriptor annotated with the index's digest, and the index (to be
    /// stored with it: it proves which image the manifest is of); `top` itself when it is a
    /// manifest.
    async fn platform_manifest(
        &self,
        remote: &Remote,
        top: Document,
        platform: Option<&Platform>,
    ) -> Result<(Document, Option<Document>), RegistryError> {
        let tree = ImageTree::new(top.clone()).map_err(|err| not_an_image(remote, &err))?;
        let mut picked = skillport_oci::picked_manifest_on(&tree, platform)?.clone();
        if picked.digest == top.descriptor.digest {
            return Ok((top, None));
        }
        // The manifest is fetched (and kept as fetched); a copy the index embeds is not kept.
        picked.data = None;
        picked.annotations.insert(
            skillport_oci::spec::annotation::FROM_INDEX.to_owned(),
            top.descriptor.digest.to_string(),
        );
        let fetched = self
            .fetch_document(remote, &picked.digest.to_string(), Some(&picked.digest))
            .await?;
        let manifest = Document {
            descriptor: picked,
            bytes: fetched.bytes,
        };
        Ok((manifest, Some(top)))
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

/// What the images of one pull share: the blobs one of them downloads, and the permits to
/// download.
#[derive(Clone, Copy)]
struct Shared<'a> {
    claimed: &'a std::sync::Mutex<BTreeSet<Digest>>,
    permits: &'a tokio::sync::Semaphore,
}

/// One image of a pull: its manifests, its downloaded blobs (pending), and its skill layer as
/// unpacked on the way.
struct Pulled {
    tree: ImageTree,
    /// The index `tree`'s one manifest was picked from, when it was.
    index: Option<Document>,
    blobs: Vec<PendingBlob>,
    unpacked: Option<Unpacking>,
}

/// A skill layer unpacked while it was pulled, not yet published.
#[derive(Debug)]
pub struct Unpacking {
    /// The layer it was unpacked from.
    pub layer: Digest,
    /// Its files, in a staging folder in the folder the caller gave.
    pub staged: Staged,
}

/// A download that goes to a store blob and, while the unpacker keeps up, to its channel.
struct TeeSink {
    writer: skillport_oci::BlobWriter,
    stream: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl std::io::Write for TeeSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // An empty chunk is the unpacker's end marker: never sent for an empty write.
        if buf.is_empty() {
            return Ok(0);
        }
        self.writer.write_all(buf)?;
        if let Some(stream) = &self.stream
            && send(stream, buf.to_vec()).is_err()
        {
            // The unpacker stopped (it refused the layer): the store still gets the blob.
            self.stream = None;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

impl crate::transfer::Sink for TeeSink {
    fn restart(&mut self) -> std::io::Result<()> {
        // The unpacker cannot start over: it fails, and the caller unpacks from the store.
        self.stream = None;
        self.writer.restart()
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
