// Exporting a skill straight from a registry into a folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use skillport_oci::spec::Descriptor;
use skillport_oci::{Digest, ImageTree, Reference, Staged, UnpackLimits, Unpacked};

use crate::client::Client;
use crate::error::RegistryError;
use crate::pull::not_an_image;
use crate::remote::Remote;
use crate::transfer::{Progress, download_blob};

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
        let remote = Remote::new(reference);
        let top = self.fetch_manifest(reference).await?;
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
        skillport_oci::folder::check_destination(dest)
            .map_err(|err| skillport_oci::ReadError::from(skillport_oci::UnpackError::from(err)))?;
        let remote = Remote::new(reference);
        let (tree, picked) = self.skill_manifest(reference).await?;
        let digest = tree.top().descriptor.digest.clone();
        let manifest = &tree.manifest(&picked.digest).expect("fetched").manifest;
        let (layer, format) = skillport_oci::skill_layer(manifest)?;
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
            digest,
            layer: layer.digest,
            unpacked,
        })
    }
}
