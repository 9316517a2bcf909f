// Exporting a skill straight from a registry into a folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skillport_oci::spec::Descriptor;
use skillport_oci::{Digest, ImageTree, LayerFormat, Reference, Staged, UnpackLimits, Unpacked};

use crate::client::Client;
use crate::error::RegistryError;
use crate::pull::not_an_image;
use crate::remote::Remote;
use crate::transfer::{Progress, download_blob};

/// The layer a skill image's files are in, as its manifests name it: what `export` downloads,
/// and what a fetch plan may carry so that `skillport fetch` downloads it without reading the
/// manifests again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillLayer {
    /// The digest of the image's top document (an index, or the manifest itself).
    pub digest: Digest,
    /// The layer's descriptor: digest, size and media type.
    pub layer: Descriptor,
    /// How its files are laid out.
    pub format: LayerFormat,
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

impl Client {
    /// Downloads the skill `reference` names straight into the folder `dest` (absent or
    /// empty): the manifest (linux/amd64 of an index, or the only one), then the layer into a
    /// temporary file beside `dest`, verified, then unpacked safely and renamed into place.
    pub async fn export(
        &self,
        reference: &Reference,
        dest: &Path,
        progress: Arc<dyn Progress>,
    ) -> Result<Exported, RegistryError> {
        self.export_with_limits(reference, dest, UnpackLimits::default(), u64::MAX, progress)
            .await
    }

    /// The top document of `reference` and the manifest a skill is read from (an index's
    /// linux/amd64 one, or its only one; the options' platform exactly when set), fetched
    /// without any blob: what export reads first, and all `inspect` shows.
    pub async fn skill_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(ImageTree, Descriptor), RegistryError> {
        let top = self.fetch_manifest(reference).await?;
        self.skill_manifest_of(reference, top).await
    }

    /// [`Client::skill_manifest`] from the top document `top`, already fetched for
    /// `reference`: one request more for an index, none for a manifest.
    pub async fn skill_manifest_of(
        &self,
        reference: &Reference,
        top: skillport_oci::Document,
    ) -> Result<(ImageTree, Descriptor), RegistryError> {
        let remote = Remote::new(reference);
        let mut tree = ImageTree::new(top).map_err(|err| not_an_image(&remote, &err))?;
        // One manifest is enough to read the skill: fetch only the one picked.
        let picked =
            skillport_oci::picked_manifest_on(&tree, self.options().platform.as_ref())?.clone();
        if tree.manifest(&picked.digest).is_none() {
            let fetched = self
                .fetch_document(&remote, &picked.digest.to_string(), Some(&picked.digest))
                .await?;
            tree.add_manifest(&picked, fetched.bytes)
                .map_err(|err| not_an_image(&remote, &err))?;
        }
        Ok((tree, picked))
    }

    /// The layer the skill of `reference` is read from: its top document and the manifest
    /// [`Client::skill_manifest`] picks, and no blob.
    pub async fn skill_layer(&self, reference: &Reference) -> Result<SkillLayer, RegistryError> {
        let top = self.fetch_manifest(reference).await?;
        self.skill_layer_of(reference, top).await
    }

    /// [`Client::skill_layer`] from the top document `top`, already fetched for `reference`.
    pub async fn skill_layer_of(
        &self,
        reference: &Reference,
        top: skillport_oci::Document,
    ) -> Result<SkillLayer, RegistryError> {
        let (tree, picked) = self.skill_manifest_of(reference, top).await?;
        let manifest = &tree.manifest(&picked.digest).expect("fetched").manifest;
        let (layer, format) = skillport_oci::skill_layer(manifest)?;
        Ok(SkillLayer {
            digest: tree.top().descriptor.digest.clone(),
            layer,
            format,
        })
    }

    /// [`Client::export`] with the limits on what the layer may expand to (bytes, entries)
    /// and on its download chosen by the caller: `skillport fetch` bounds each skill by what
    /// its folder may hold. A layer whose manifest declares more than `max_download_bytes` is
    /// refused before it is asked for; the download stops at the declared size.
    pub async fn export_with_limits(
        &self,
        reference: &Reference,
        dest: &Path,
        limits: UnpackLimits,
        max_download_bytes: u64,
        progress: Arc<dyn Progress>,
    ) -> Result<Exported, RegistryError> {
        // Refuse a taken destination before downloading anything; `publish` checks again.
        check_destination(dest)?;
        let skill = self.skill_layer(reference).await?;
        self.export_layer(
            reference,
            &skill,
            dest,
            limits,
            max_download_bytes,
            progress,
        )
        .await
    }

    /// Downloads the layer `skill` names from the repository of `reference` straight into
    /// the folder `dest`, verified against the layer's digest and size, within the limits of
    /// [`Client::export_with_limits`]: one request, no manifest. Whoever read the manifests
    /// (the operator, when it resolved the image for a fetch plan) vouches for `skill`.
    pub async fn export_layer(
        &self,
        reference: &Reference,
        skill: &SkillLayer,
        dest: &Path,
        limits: UnpackLimits,
        max_download_bytes: u64,
        progress: Arc<dyn Progress>,
    ) -> Result<Exported, RegistryError> {
        check_destination(dest)?;
        let remote = Remote::new(reference);
        let (layer, format) = (skill.layer.clone(), skill.format);
        if layer.size > max_download_bytes {
            return Err(RegistryError::TooLarge {
                registry: remote.registry.clone(),
                what: format!("layer {} ({} bytes declared)", layer.digest, layer.size),
                limit: max_download_bytes,
            });
        }
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
        // Downloading, digesting, gunzipping and writing overlap: the download feeds a
        // blocking unpacker through a bounded channel. The unpacker writes into a staging
        // folder only, and publishes it after the download has ended with the right size and
        // digest (it reads until the end marker that comes only then).
        let (sender, streamed) = streamed_unpack(format, parent.clone(), limits);
        let label = format!("{} {}", remote.repository, layer.digest.short());
        let mut sink = ChannelSink {
            sender: Some(sender),
            fallback: None,
            parent: parent.clone(),
        };
        let downloaded = download_blob(
            self,
            &remote.registry,
            &remote.repository,
            &layer,
            &mut sink,
            &progress,
            &label,
        )
        .await;
        if downloaded.is_ok() {
            sink.finish();
        }
        let fallback = sink.fallback.take();
        drop(sink);
        let mut result = streamed
            .await
            .expect("unpacking does not panic")
            .and_then(|staged| staged.publish(dest));
        // The registry ignored a range request: the layer was downloaded again into a file,
        // and is unpacked from it now that it is whole.
        if let (Ok(()), Some(file)) = (&downloaded, fallback) {
            let file = file.reopen().map_err(io("reading"))?;
            let dest = dest.to_path_buf();
            result = tokio::task::spawn_blocking(move || {
                let staged =
                    Staged::unpack(std::io::BufReader::new(file), format, &parent, limits)?;
                staged.publish(&dest)
            })
            .await
            .expect("unpacking does not panic");
        }
        let unpacked = match (downloaded, result) {
            (Ok(()), result) => result.map_err(skillport_oci::ReadError::from)?,
            // The unpacker refused the layer (a bomb, a path out of the folder) and stopped
            // reading: its reason, not the download's broken pipe.
            (Err(RegistryError::Io { source, .. }), Err(refused))
                if source.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                return Err(skillport_oci::ReadError::from(refused).into());
            }
            // Otherwise the download's error explains an unpacker that stopped short.
            (Err(error), _) => return Err(error),
        };
        Ok(Exported {
            digest: skill.digest.clone(),
            layer: layer.digest,
            unpacked,
        })
    }
}

/// Refuses a destination that exists and is not an empty folder.
fn check_destination(dest: &Path) -> Result<(), RegistryError> {
    skillport_oci::folder::check_destination(dest)
        .map_err(|err| skillport_oci::ReadError::from(skillport_oci::UnpackError::from(err)))?;
    Ok(())
}

/// Chunks (of up to 1 MiB, as the download buffers them) in flight between the download and
/// the unpacker: bounds the memory a fast registry can fill.
const STREAM_CHUNKS: usize = 4;

/// A blocking unpacker into a staging folder in `parent`, fed through a bounded channel: the
/// sender of its chunks (an empty chunk ends the stream, sent only once the download's size
/// and digest checked out), and the staged folder, or why the layer was refused. A sender
/// dropped without the end marker fails the unpack, so nothing half-downloaded is staged.
pub(crate) fn streamed_unpack(
    format: LayerFormat,
    parent: PathBuf,
    limits: UnpackLimits,
) -> (
    std::sync::mpsc::SyncSender<Vec<u8>>,
    tokio::task::JoinHandle<Result<Staged, skillport_oci::UnpackError>>,
) {
    let (sender, receiver) = std::sync::mpsc::sync_channel(STREAM_CHUNKS);
    let unpacker = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader::new(receiver);
        let staged = Staged::unpack(&mut reader, format, &parent, limits)?;
        // What follows the tar's end (gzip padding) still counts: the end marker decides.
        std::io::copy(&mut reader, &mut std::io::sink()).map_err(|source| {
            skillport_oci::UnpackError::Corrupt {
                compression: "tar",
                source,
            }
        })?;
        Ok(staged)
    });
    (sender, unpacker)
}

/// The download's side of a streamed layer. An empty chunk is the end marker, sent only after
/// the download's size and digest checked out. When a registry makes the download start over,
/// the stream is abandoned (the unpacker fails, its staging folder goes) and the rest goes to
/// a temporary file in `parent`.
struct ChannelSink {
    sender: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    fallback: Option<tempfile::NamedTempFile>,
    parent: PathBuf,
}

impl ChannelSink {
    fn finish(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = send(&sender, Vec::new());
        }
    }
}

/// Sends, letting the runtime move other tasks off this worker while the channel is full.
pub(crate) fn send(
    sender: &std::sync::mpsc::SyncSender<Vec<u8>>,
    chunk: Vec<u8>,
) -> Result<(), std::sync::mpsc::SendError<Vec<u8>>> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| sender.send(chunk))
    } else {
        sender.send(chunk)
    }
}

impl std::io::Write for ChannelSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(file) = &mut self.fallback {
            return file.write(buf);
        }
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the stream was finished"))?;
        send(sender, buf.to_vec()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the unpacker stopped")
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.fallback {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl crate::transfer::Sink for ChannelSink {
    fn restart(&mut self) -> std::io::Result<()> {
        self.sender = None;
        self.fallback = Some(
            tempfile::Builder::new()
                .prefix(".skillport-download-")
                .tempfile_in(&self.parent)?,
        );
        Ok(())
    }
}

/// The unpacker's side: the chunks in order; the end marker is the end; a sender gone without
/// it (the download failed) is an error, so nothing is published.
struct ChannelReader {
    receiver: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ChannelReader {
    fn new(receiver: std::sync::mpsc::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            receiver,
            chunk: Vec::new(),
            at: 0,
            ended: false,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.ended {
                return Ok(0);
            }
            match self.receiver.recv() {
                Ok(chunk) if chunk.is_empty() => self.ended = true,
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the download stopped before the layer was complete",
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
