// Reading a skill image back out of the store: which manifest, which layer, its files.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::Digest;
use crate::digest::HashingReader;
use crate::image::Document;
use crate::spec::{Descriptor, ImageIndex, ImageManifest, Platform, media};
use crate::store::{Store, StoreError};
use crate::tree::{ImageTree, TreeError};
use crate::unpack::{Compression, LayerFormat, Staged, UnpackError, UnpackLimits, Unpacked};

/// Why an image could not be read as a skill.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("not a skill image: {reason}")]
    NotASkill { reason: String },
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("layer {expected} does not match its digest: the content hashes to {found}")]
    DigestMismatch { expected: Digest, found: Digest },
    #[error("layer {digest} has {found} bytes, {expected} expected")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        found: u64,
    },
}

/// An image resolved down to its one layer.
#[derive(Debug, Clone)]
pub struct SkillImage {
    /// The top-level descriptor (index or manifest).
    pub descriptor: Descriptor,
    /// The index, when the top level is one.
    pub index: Option<ImageIndex>,
    /// The manifest picked (linux/amd64, or the only one).
    pub manifest_descriptor: Descriptor,
    pub manifest: ImageManifest,
    /// The skill's layer.
    pub layer: Descriptor,
    /// How the layer is packed.
    pub format: LayerFormat,
}

/// Picks the manifest to read from an index: linux/amd64, else the only one (the rule of
/// [`ImageTree::pick`] on [`Platform::skill_default`]).
pub fn pick_manifest(index: &ImageIndex) -> Option<&Descriptor> {
    crate::tree::pick(index, &Platform::skill_default())
}

/// The one layer of a skill image's manifest, and how it is packed.
pub fn skill_layer(manifest: &ImageManifest) -> Result<(Descriptor, LayerFormat), ReadError> {
    let not_a_skill = |reason: String| ReadError::NotASkill { reason };
    let layer = match manifest.layers.as_slice() {
        [layer] => layer.clone(),
        layers => {
            return Err(not_a_skill(format!(
                "{} layers, a skill image has exactly one",
                layers.len()
            )));
        }
    };
    let compression = Compression::from_media_type(&layer.media_type).ok_or_else(|| {
        not_a_skill(format!(
            "layer media type {} is not a tar layer",
            layer.media_type
        ))
    })?;
    // The agentskills.io artifact proposal puts the files under `<name>/`.
    let in_folder = manifest.artifact_type.as_deref() == Some(media::AGENTSKILLS_ARTIFACT)
        || manifest.config.media_type == media::AGENTSKILLS_CONFIG
        || layer.media_type == media::AGENTSKILLS_LAYER;
    Ok((
        layer,
        LayerFormat {
            compression,
            in_folder,
        },
    ))
}

/// The manifest of `tree` to read a skill from ([`Platform::skill_default`]), or why there is
/// none.
pub fn picked_manifest(tree: &ImageTree) -> Result<&Descriptor, ReadError> {
    picked_manifest_on(tree, None)
}

/// The manifest of `tree` for `platform` exactly, or with `None` the default rule
/// ([`picked_manifest`]); or why there is none, listing the platforms the index has.
pub fn picked_manifest_on<'a>(
    tree: &'a ImageTree,
    platform: Option<&Platform>,
) -> Result<&'a Descriptor, ReadError> {
    let picked = match platform {
        Some(platform) => tree.pick_exact(platform),
        None => tree.pick(&Platform::skill_default()),
    };
    picked.ok_or_else(|| {
        let listed: Vec<String> = tree.platforms().iter().map(ToString::to_string).collect();
        let wanted = platform.map_or_else(
            || {
                format!(
                    "no {} manifest and more than one other",
                    Platform::skill_default()
                )
            },
            |platform| format!("no {platform} manifest"),
        );
        ReadError::NotASkill {
            reason: format!(
                "the index has {wanted} (it has {}); pass --platform with one of them",
                if listed.is_empty() {
                    "no platforms listed".to_owned()
                } else {
                    listed.join(", ")
                }
            ),
        }
    })
}

/// Resolves `descriptor` (an index or a manifest in `store`) to its skill layer, reading only
/// the manifest it picks.
pub fn skill_image(store: &Store, descriptor: &Descriptor) -> Result<SkillImage, ReadError> {
    skill_image_on(store, descriptor, None)
}

/// [`skill_image`] from the manifest for `platform` exactly ([`picked_manifest_on`]).
pub fn skill_image_on(
    store: &Store,
    descriptor: &Descriptor,
    platform: Option<&Platform>,
) -> Result<SkillImage, ReadError> {
    let top = Document {
        descriptor: descriptor.clone(),
        bytes: store.read_blob(&descriptor.digest)?,
    };
    let mut tree = ImageTree::new(top).map_err(|err| match err {
        TreeError::UnexpectedMediaType { media_type, .. } => ReadError::NotASkill {
            reason: format!("unexpected media type {media_type}"),
        },
        other => other.into(),
    })?;
    let manifest_descriptor = picked_manifest_on(&tree, platform)?.clone();
    if tree.manifest(&manifest_descriptor.digest).is_none() {
        let bytes = store.read_blob(&manifest_descriptor.digest)?;
        tree.add_manifest(&manifest_descriptor, bytes)?;
    }
    let manifest = tree
        .manifest(&manifest_descriptor.digest)
        .expect("added above")
        .manifest
        .clone();
    let (layer, format) = skill_layer(&manifest)?;
    Ok(SkillImage {
        descriptor: descriptor.clone(),
        index: tree.index().cloned(),
        manifest_descriptor,
        manifest,
        layer,
        format,
    })
}

/// Unpacks the image's layer into `dest` (absent or an empty folder), verifying the layer's
/// digest and size before anything appears at `dest`.
pub fn export(store: &Store, image: &SkillImage, dest: &Path) -> Result<Unpacked, ReadError> {
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(|source| UnpackError::Io {
        action: "creating",
        path: parent.to_path_buf(),
        source,
    })?;
    let blob = store.open_blob(&image.layer.digest)?;
    let staged = unpack_verified(blob, &image.layer, image.format, parent)?;
    Ok(staged.publish(dest)?)
}

/// Unpacks `reader` (the blob of `layer`) into a staging folder in `parent`, then checks the
/// whole blob's digest and size.
pub fn unpack_verified<R: Read>(
    reader: R,
    layer: &Descriptor,
    format: impl Into<LayerFormat>,
    parent: &Path,
) -> Result<Staged, ReadError> {
    let mut hashing = HashingReader::new(reader, layer.digest.algorithm());
    let staged = Staged::unpack(&mut hashing, format, parent, UnpackLimits::default())?;
    let (found, size) = hashing.finish().map_err(|source| {
        ReadError::Unpack(UnpackError::Corrupt {
            compression: "tar",
            source,
        })
    })?;
    if found != layer.digest {
        return Err(ReadError::DigestMismatch {
            expected: layer.digest.clone(),
            found,
        });
    }
    if size != layer.size {
        return Err(ReadError::SizeMismatch {
            digest: layer.digest.clone(),
            expected: layer.size,
            found: size,
        });
    }
    Ok(staged)
}

/// One entry of a layer, as `inspect` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileInfo {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
}

/// Lists the entries of the image's layer without unpacking it.
pub fn list_files(store: &Store, image: &SkillImage) -> Result<Vec<FileInfo>, ReadError> {
    let blob = store.open_blob(&image.layer.digest)?;
    let decoded = image.format.compression.decoder(blob).map_err(corrupt)?;
    let limits = UnpackLimits::default();
    let mut archive = tar::Archive::new(decoded);
    let mut files = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        if files.len() as u64 >= limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: limits.max_entries,
            }
            .into());
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            _ => "other",
        };
        files.push(FileInfo {
            path: String::from_utf8_lossy(&entry.path_bytes())
                .trim_end_matches('/')
                .to_owned(),
            kind,
            size: header.size().unwrap_or(0),
        });
    }
    Ok(files)
}

fn corrupt(source: io::Error) -> ReadError {
    ReadError::Unpack(UnpackError::Corrupt {
        compression: "tar",
        source,
    })
}
