// The local store: an OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) that
// skopeo, umoci and oras read as they are.
//
// Expected flow: a writer streams blobs into temporary files under `.skillport/tmp` (same file
// system, so a rename is atomic): `blob_writer` for new content (a build), whose digest is
// computed, or `expect_blob(descriptor)` for content that must match a descriptor (a pull),
// hashed with the descriptor's own algorithm and checked, digest and size, in `finish`. Then
// `commit` takes the store lock, checks that every blob the new names need is either pending or
// stored, syncs the pending blobs (all at once, on a few threads: a sync each, one after
// another, cost more than a small image's bytes), renames them into `blobs/` and rewrites
// `index.json` through a temporary file and a rename.
//
// Guarantees: every blob in `blobs/` was hashed on its way in and is named by its digest;
// readers never see a half-written blob or index (both appear by rename, after a sync); a build
// or pull that fails before `commit` leaves the store as it was (its temporary files are
// deleted when dropped); concurrent writers are serialised by an exclusive lock on
// `.skillport/lock`, and garbage collection runs under the same lock. A writer may decide
// outside the lock that a blob is present and skip it; `commit` checks again under the lock
// and fails, naming the blob, if a concurrent `remove` collected it meanwhile.
//
// Caveats: a process killed between renaming blobs and rewriting `index.json` leaves
// unreferenced blobs behind; the next `remove` collects them.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use std::collections::BTreeMap;
use std::io::Seek;

use crate::digest::Hasher;
use crate::spec::{Descriptor, ImageIndex, ImageManifest, OciLayout, annotation, media};
use crate::{Algorithm, Digest, Reference};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {action}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an OCI image layout ({reason})")]
    NotALayout { path: PathBuf, reason: String },
    #[error("{reference} is not in the store")]
    NotFound { reference: String },
    #[error("blob {digest} is missing from the store")]
    MissingBlob { digest: Digest },
    #[error(
        "blob {digest}, which the new image needs, is no longer in the store (removed by a concurrent `rm`?)"
    )]
    Incomplete { digest: Digest },
    #[error("content written for blob {expected} hashes to {found}")]
    WrongContent { expected: Digest, found: Digest },
    #[error("content written for blob {digest} has {found} bytes, {expected} expected")]
    WrongSize {
        digest: Digest,
        expected: u64,
        found: u64,
    },
    #[error("{digest} is not an image: {reason}")]
    NotAnImage { digest: Digest, reason: String },
    #[error("blob {expected} in the store is corrupt: its content hashes to {found}")]
    DigestMismatch { expected: Digest, found: Digest },
    #[error("{what} {digest} is not valid JSON")]
    BadDocument {
        what: &'static str,
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// An image recorded in the store under a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// The store key (`name:tag` or `name@digest`).
    pub key: String,
    /// The top-level descriptor (usually an image index).
    pub descriptor: Descriptor,
}

/// What `remove` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Blobs deleted because nothing referenced them any more.
    pub blobs: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// A blob being written: bytes go to a temporary file in the store and are hashed on the way.
pub struct BlobWriter {
    file: BufWriter<NamedTempFile>,
    hasher: Hasher,
    written: u64,
    /// What the content must be, for a writer made by `Store::expect_blob`.
    expected: Option<(Digest, u64)>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A blob fully written but not yet in `blobs/`; it is deleted if dropped before `commit`.
#[derive(Debug)]
pub struct PendingBlob {
    file: NamedTempFile,
    digest: Digest,
    size: u64,
}

impl PendingBlob {
    fn sync(&self) -> Result<(), StoreError> {
        self.file
            .as_file()
            .sync_all()
            .map_err(io_err("syncing", self.file.path()))
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl BlobWriter {
    fn new(file: NamedTempFile, algorithm: Algorithm, expected: Option<(Digest, u64)>) -> Self {
        BlobWriter {
            file: BufWriter::with_capacity(256 * 1024, file),
            hasher: Hasher::new(algorithm),
            written: 0,
            expected,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Throws away what was written, for a download that has to start over.
    pub fn restart(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let file = self.file.get_mut();
        file.as_file().set_len(0)?;
        file.rewind()?;
        self.hasher = Hasher::new(self.hasher.algorithm());
        self.written = 0;
        Ok(())
    }

    /// Finishes the blob: flushes it and, for a writer from `Store::expect_blob`, checks its
    /// digest and size. `Store::commit` syncs it before it is renamed into `blobs/`.
    pub fn finish(self) -> Result<PendingBlob, StoreError> {
        let path = self.file.get_ref().path().to_path_buf();
        let file = self
            .file
            .into_inner()
            .map_err(|err| io_err("writing", &path)(err.into_error()))?;
        let digest = self.hasher.finish();
        let size = self.written;
        if let Some((expected, expected_size)) = self.expected {
            if digest != expected {
                return Err(StoreError::WrongContent {
                    expected,
                    found: digest,
                });
            }
            if size != expected_size {
                return Err(StoreError::WrongSize {
                    digest,
                    expected: expected_size,
                    found: size,
                });
            }
        }
        Ok(PendingBlob { file, digest, size })
    }
}

/// The local OCI image-layout store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating an empty layout if the folder is missing or empty.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let store = Store {
            root: root.to_path_buf(),
        };
        let layout_file = root.join("oci-layout");
        match fs::read(&layout_file) {
            Ok(bytes) => {
                let layout: OciLayout =
                    serde_json::from_slice(&bytes).map_err(|err| StoreError::NotALayout {
                        path: root.to_path_buf(),
                        reason: format!("oci-layout: {err}"),
                    })?;
                if layout.image_layout_version != "1.0.0" {
                    return Err(StoreError::NotALayout {
                        path: root.to_path_buf(),
                        reason: format!(
                            "imageLayoutVersion {} (1.0.0 expected)",
                            layout.image_layout_version
                        ),
                    });
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => store.create()?,
            Err(source) => return Err(io_err("reading", &layout_file)(source)),
        }
        fs::create_dir_all(store.tmp_dir()).map_err(io_err("creating", &store.tmp_dir()))?;
        Ok(store)
    }

    /// Creates an empty layout. Several processes may do this at once on a missing store, and
    /// one may have died half-way: only our own skeleton (`blobs`, `index.json`,
    /// `.skillport`) may already be there, and the work happens under the store lock, where
    /// `oci-layout` is checked again before anything is written.
    fn create(&self) -> Result<(), StoreError> {
        // `oci-layout` too: another process may finish between our read of it and this look.
        const SKELETON: [&str; 4] = ["blobs", "index.json", ".skillport", "oci-layout"];
        if let Ok(entries) = fs::read_dir(&self.root) {
            let foreign = entries
                .filter_map(Result::ok)
                .any(|entry| !SKELETON.iter().any(|name| entry.file_name() == *name));
            if foreign {
                return Err(StoreError::NotALayout {
                    path: self.root.clone(),
                    reason: "the folder is not empty and has no oci-layout file".into(),
                });
            }
        }
        for dir in [self.root.join("blobs/sha256"), self.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        }
        let _lock = self.lock()?;
        if self.root.join("oci-layout").exists() {
            return Ok(()); // another process finished first
        }
        self.write_atomically(
            "index.json",
            &serde_json::to_vec(&ImageIndex::new()).expect("serialises"),
        )?;
        let layout = OciLayout {
            image_layout_version: "1.0.0".into(),
        };
        // `oci-layout` last: its presence marks a complete layout.
        self.write_atomically(
            "oci-layout",
            &serde_json::to_vec(&layout).expect("serialises"),
        )
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(".skillport/tmp")
    }

    /// Where the blob `digest` lives, for reading (an upload streams it from there). Only the
    /// store writes there: content comes in through `blob_writer` or `expect_blob`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    fn lock(&self) -> Result<File, StoreError> {
        let path = self.root.join(".skillport/lock");
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        file.lock().map_err(io_err("locking", &path))?;
        Ok(file)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join(name);
        let mut tmp = self
            .temp_file_raw()
            .map_err(io_err("creating a temporary file in", &self.tmp_dir()))?;
        tmp.write_all(bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io_err("writing", &path))?;
        tmp.persist(&path)
            .map_err(|err| io_err("replacing", &path)(err.error))?;
        Ok(())
    }

    /// Starts a new blob whose digest (sha256) is computed from what is written: a build's.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        Ok(BlobWriter::new(self.temp_file()?, Algorithm::Sha256, None))
    }

    /// Starts the blob `descriptor` names: what is written is hashed with the descriptor's
    /// algorithm, and `finish` fails unless digest and size match it.
    pub fn expect_blob(&self, descriptor: &Descriptor) -> Result<BlobWriter, StoreError> {
        let expected = (descriptor.digest.clone(), descriptor.size);
        Ok(BlobWriter::new(
            self.temp_file()?,
            descriptor.digest.algorithm(),
            Some(expected),
        ))
    }

    /// The pending blob `descriptor` names, holding `bytes` (a manifest, an index, a config):
    /// checked like any [`Store::expect_blob`].
    pub fn expect_bytes(
        &self,
        descriptor: &Descriptor,
        bytes: &[u8],
    ) -> Result<PendingBlob, StoreError> {
        let mut writer = self.expect_blob(descriptor)?;
        writer
            .write_all(bytes)
            .map_err(io_err("writing", &self.tmp_dir()))?;
        writer.finish()
    }

    /// A new temporary file in the store's folder, for a blob being written.
    fn temp_file(&self) -> Result<NamedTempFile, StoreError> {
        self.temp_file_raw()
            .map_err(io_err("creating a temporary file in", &self.tmp_dir()))
    }

    /// Temporary files are made 0644 (less the umask), like any file: the store is read by
    /// other tools and users, and tempfile's default of 0600 would lock them out.
    fn temp_file_raw(&self) -> io::Result<NamedTempFile> {
        tempfile::Builder::new()
            .permissions(fs::Permissions::from_mode(0o644))
            .tempfile_in(self.tmp_dir())
    }

    /// Whether the store holds the blob `descriptor` names, at its full size. Only a hint for
    /// what to download: `commit` checks again under the lock.
    pub fn contains(&self, descriptor: &Descriptor) -> bool {
        fs::metadata(self.blob_path(&descriptor.digest))
            .is_ok_and(|meta| meta.is_file() && meta.len() == descriptor.size)
    }

    /// Moves `blobs` into the store and records each `(key, descriptor)` in `index.json`,
    /// replacing an earlier image of the same key. All under the store lock, where it first
    /// checks that every blob each name needs (documents, configs, layers) is in `blobs` or
    /// already stored at its size: a caller may have skipped a blob it saw in the store, which a
    /// concurrent `remove` then collected. When one is missing, the store is left unchanged.
    pub fn commit(
        &self,
        blobs: Vec<PendingBlob>,
        names: &[(String, Descriptor)],
    ) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        self.check_complete(&blobs, names)?;
        sync_all(&blobs)?;
        self.store_blobs(blobs)?;
        self.record_names(names)
    }

    /// Fails with `Incomplete` when a blob that one of `names` needs is neither in `blobs`
    /// nor in the store. The caller holds the lock.
    fn check_complete(
        &self,
        blobs: &[PendingBlob],
        names: &[(String, Descriptor)],
    ) -> Result<(), StoreError> {
        let pending: BTreeMap<&Digest, &PendingBlob> =
            blobs.iter().map(|blob| (&blob.digest, blob)).collect();
        let read = |digest: &Digest| match pending.get(digest) {
            Some(blob) => {
                let path = blob.file.path();
                fs::read(path).map_err(io_err("reading", path))
            }
            None => self.read_blob(digest).map_err(|err| match err {
                StoreError::MissingBlob { digest } => StoreError::Incomplete { digest },
                other => other,
            }),
        };
        let mut needed = BTreeMap::new();
        for (_, descriptor) in names {
            walk(descriptor, &read, &mut needed)?;
        }
        match needed
            .values()
            .find(|d| !pending.contains_key(&d.digest) && !self.contains(d))
        {
            Some(missing) => Err(StoreError::Incomplete {
                digest: missing.digest.clone(),
            }),
            None => Ok(()),
        }
    }

    fn store_blobs(&self, blobs: Vec<PendingBlob>) -> Result<(), StoreError> {
        for blob in blobs {
            let path = self.blob_path(&blob.digest);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            // A blob already there is kept, unless it is short (left by a crash before we
            // synced blobs): then the verified pending copy replaces it.
            if fs::metadata(&path).is_ok_and(|meta| meta.len() == blob.size) {
                continue;
            }
            blob.file
                .persist(&path)
                .map_err(|err| io_err("storing", &path)(err.error))?;
        }
        Ok(())
    }

    /// Whether `descriptor` is one platform's manifest pulled from the index `digest`: the
    /// name says so, and that index, stored, lists it (the name alone is no proof).
    fn listed_in(&self, descriptor: &Descriptor, digest: &Digest) -> bool {
        let from_index = descriptor.annotations.get(annotation::FROM_INDEX);
        if from_index.is_none_or(|index| *index != digest.to_string()) {
            return false;
        }
        self.read_json::<ImageIndex>("image index", digest)
            .is_ok_and(|index| {
                index
                    .manifests
                    .iter()
                    .any(|child| child.digest == descriptor.digest)
            })
    }

    /// Points each key at its descriptor in `index.json`. The caller holds the lock.
    fn record_names(&self, names: &[(String, Descriptor)]) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let mut index = self.read_index()?;
        for (key, descriptor) in names {
            index
                .manifests
                .retain(|d| ref_name(d) != Some(key.as_str()));
            let mut descriptor = descriptor.clone();
            // The store's index names images; content embedded in a descriptor from a
            // registry's index (up to a manifest's size) has no place in it.
            descriptor.data = None;
            descriptor
                .annotations
                .insert(annotation::REF_NAME.to_owned(), key.clone());
            index.manifests.push(descriptor);
        }
        index
            .manifests
            .sort_by(|a, b| ref_name(a).cmp(&ref_name(b)));
        self.write_index(&index)
    }

    fn read_index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
        serde_json::from_slice(&bytes).map_err(|err| StoreError::NotALayout {
            path: self.root.clone(),
            reason: format!("index.json: {err}"),
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(index).expect("serialises");
        self.write_atomically("index.json", &bytes)
    }

    /// Every named image, sorted by key.
    pub fn list(&self) -> Result<Vec<StoredImage>, StoreError> {
        let index = self.read_index()?;
        let mut images: Vec<StoredImage> = index
            .manifests
            .into_iter()
            .filter_map(|descriptor| {
                let key = ref_name(&descriptor)?.to_owned();
                Some(StoredImage { key, descriptor })
            })
            .collect();
        images.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(images)
    }

    /// Finds the image `reference` names. A reference with a digest matches any image with
    /// that digest and name.
    pub fn resolve(&self, reference: &Reference) -> Result<StoredImage, StoreError> {
        let images = self.list()?;
        let found = if let Some(digest) = reference.digest() {
            images.into_iter().find(|image| {
                // Keys are references (`name:tag`, `name@digest`).
                (&image.descriptor.digest == digest || self.listed_in(&image.descriptor, digest))
                    && image
                        .key
                        .parse::<Reference>()
                        .is_ok_and(|key| key.name() == reference.name())
            })
        } else {
            let key = reference.store_key();
            images.into_iter().find(|image| image.key == key)
        };
        found.ok_or_else(|| StoreError::NotFound {
            reference: reference.to_string(),
        })
    }

    /// Records `target` as another name for the image `source` names.
    pub fn tag(&self, source: &Reference, target: &Reference) -> Result<StoredImage, StoreError> {
        let _lock = self.lock()?;
        let image = self.resolve(source)?;
        let mut descriptor = image.descriptor;
        descriptor.annotations.remove(annotation::REF_NAME);
        let key = target.store_key();
        self.record_names(&[(key.clone(), descriptor.clone())])?;
        Ok(StoredImage { key, descriptor })
    }

    /// Removes the name `reference` and deletes the blobs no remaining name needs.
    pub fn remove(&self, reference: &Reference) -> Result<Removed, StoreError> {
        let _lock = self.lock()?;
        let image = self.resolve(reference)?;
        let mut index = self.read_index()?;
        index
            .manifests
            .retain(|d| ref_name(d) != Some(image.key.as_str()));
        self.write_index(&index)?;
        self.collect_garbage(&index)
    }

    fn collect_garbage(&self, index: &ImageIndex) -> Result<Removed, StoreError> {
        let mut live = BTreeMap::new();
        let read = |digest: &Digest| self.read_blob(digest);
        for descriptor in &index.manifests {
            walk(descriptor, &read, &mut live)?;
        }
        let mut removed = Removed::default();
        let blobs = self.root.join("blobs");
        for algorithm in fs::read_dir(&blobs).map_err(io_err("listing", &blobs))? {
            let algorithm = algorithm.map_err(io_err("listing", &blobs))?;
            let algorithm_dir = algorithm.path();
            for blob in fs::read_dir(&algorithm_dir).map_err(io_err("listing", &algorithm_dir))? {
                let blob = blob.map_err(io_err("listing", &algorithm_dir))?;
                let name = format!(
                    "{}:{}",
                    algorithm.file_name().to_string_lossy(),
                    blob.file_name().to_string_lossy()
                );
                // Leave alone anything that is not a blob we can name.
                let Ok(digest) = name.parse::<Digest>() else {
                    continue;
                };
                if live.contains_key(&digest) {
                    continue;
                }
                let path = blob.path();
                let size = blob.metadata().map_or(0, |m| m.len());
                fs::remove_file(&path).map_err(io_err("deleting", &path))?;
                removed.blobs += 1;
                removed.bytes += size;
            }
        }
        Ok(removed)
    }

    /// Reads a blob whole and checks its digest. For documents; stream layers with `open_blob`.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(io_err("reading", &self.blob_path(digest)))?;
        let mut hasher = crate::digest::Hasher::new(digest.algorithm());
        hasher.update(&bytes);
        let found = hasher.finish();
        if &found != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                found,
            });
        }
        Ok(bytes)
    }

    /// Reads and parses a JSON blob.
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        digest: &Digest,
    ) -> Result<T, StoreError> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::BadDocument {
            what,
            digest: digest.clone(),
            source,
        })
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                StoreError::MissingBlob {
                    digest: digest.clone(),
                }
            } else {
                io_err("opening", &path)(err)
            }
        })
    }
}

/// Syncs every pending blob to disk (a crash after the rename must not leave an empty or short
/// file under a blob's name), several at once: the file system commits concurrent syncs
/// together.
fn sync_all(blobs: &[PendingBlob]) -> Result<(), StoreError> {
    const THREADS: usize = 8;
    if blobs.len() <= 1 {
        return blobs.iter().try_for_each(PendingBlob::sync);
    }
    let per_thread = blobs.len().div_ceil(THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = blobs
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(PendingBlob::sync)))
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().expect("syncing does not panic"))
    })
}

fn ref_name(descriptor: &Descriptor) -> Option<&str> {
    descriptor
        .annotations
        .get(annotation::REF_NAME)
        .map(String::as_str)
}

/// Adds `descriptor` and everything below it to `reached`, reading documents with `read`.
/// Unlike `ImageTree` (which reads skill images), this follows any nesting of indexes: the
/// garbage collector must never miss a blob that something in the store needs.
fn walk(
    descriptor: &Descriptor,
    read: &dyn Fn(&Digest) -> Result<Vec<u8>, StoreError>,
    reached: &mut BTreeMap<Digest, Descriptor>,
) -> Result<(), StoreError> {
    if reached
        .insert(descriptor.digest.clone(), descriptor.clone())
        .is_some()
    {
        return Ok(());
    }
    let digest = &descriptor.digest;
    match descriptor.media_type.as_str() {
        media::IMAGE_INDEX | media::DOCKER_MANIFEST_LIST => {
            let index: ImageIndex = parse("image index", digest, &read(digest)?)?;
            for child in &index.manifests {
                walk(child, read, reached)?;
            }
        }
        media::IMAGE_MANIFEST | media::DOCKER_MANIFEST => {
            // One platform's manifest pulled from an index keeps that index (it proves which
            // image the manifest belongs to), without the other platforms'.
            if let Some(index) = descriptor.annotations.get(annotation::FROM_INDEX)
                && let Ok(index) = index.parse::<Digest>()
            {
                let size = read(&index)?.len() as u64;
                reached.entry(index.clone()).or_insert(Descriptor {
                    media_type: media::IMAGE_INDEX.to_owned(),
                    digest: index,
                    size,
                    data: None,
                    platform: None,
                    artifact_type: None,
                    annotations: crate::spec::Annotations::new(),
                });
            }
            let manifest: ImageManifest = parse("manifest", digest, &read(digest)?)?;
            for blob in std::iter::once(manifest.config).chain(manifest.layers) {
                reached.entry(blob.digest.clone()).or_insert(blob);
            }
        }
        _ => {}
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(
    what: &'static str,
    digest: &Digest,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::BadDocument {
        what,
        digest: digest.clone(),
        source,
    })
}
