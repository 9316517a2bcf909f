// One image as a tree: the top object (an image index or a manifest), the manifests under it
// and the blobs they need. Reading a skill, pulling, pushing and exporting all walk an image
// the same way; this is that walk, written once.
//
// Expected flow: `ImageTree::new(top)` parses the top document; the caller loads each manifest
// it wants (`wanted()` lists them all, `pick(platform)` names the one to read a skill from)
// from wherever it reads documents (the store, a registry) and hands it to `add_manifest`;
// `blobs()` then lists the configs and layers of the loaded manifests, each once.
//
// Caveats: an index whose children are indexes themselves is not a skill image and is refused
// when such a child is added; the store's garbage collector walks any nesting on its own.

use crate::image::Document;
use crate::spec::{Descriptor, ImageIndex, ImageManifest, Platform, media};
use crate::store::{Store, StoreError};

/// Why documents do not make an image tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{what} {digest} is not valid JSON")]
    BadDocument {
        what: &'static str,
        digest: crate::Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("{digest} has media type {media_type}, not an image index or manifest")]
    UnexpectedMediaType {
        digest: crate::Digest,
        media_type: String,
    },
    #[error("manifest {digest} is not listed in the image index")]
    NotListed { digest: crate::Digest },
}

/// A manifest of the tree: its descriptor (as the index lists it, platform included), its bytes
/// and its parsed content.
#[derive(Debug, Clone)]
pub struct TreeManifest {
    pub document: Document,
    pub manifest: ImageManifest,
}

/// An image index or manifest and what hangs below it.
#[derive(Debug, Clone)]
pub struct ImageTree {
    top: Document,
    index: Option<ImageIndex>,
    manifests: Vec<TreeManifest>,
}

impl ImageTree {
    /// Parses the top document. A manifest at the top is the tree's only manifest; an index's
    /// manifests are added with [`ImageTree::add_manifest`].
    pub fn new(top: Document) -> Result<ImageTree, TreeError> {
        let digest = &top.descriptor.digest;
        match top.descriptor.media_type.as_str() {
            media::IMAGE_INDEX | media::DOCKER_MANIFEST_LIST => {
                let index = parse("image index", digest, &top.bytes)?;
                Ok(ImageTree {
                    top,
                    index: Some(index),
                    manifests: Vec::new(),
                })
            }
            media::IMAGE_MANIFEST | media::DOCKER_MANIFEST => {
                let manifest = parse("manifest", digest, &top.bytes)?;
                let only = TreeManifest {
                    document: top.clone(),
                    manifest,
                };
                Ok(ImageTree {
                    top,
                    index: None,
                    manifests: vec![only],
                })
            }
            other => Err(TreeError::UnexpectedMediaType {
                digest: digest.clone(),
                media_type: other.to_owned(),
            }),
        }
    }

    /// Reads the image `descriptor` names from `store`, every manifest included.
    pub fn read(store: &Store, descriptor: &Descriptor) -> Result<ImageTree, StoreError> {
        let bytes = store.read_blob(&descriptor.digest)?;
        let mut tree = ImageTree::new(Document {
            descriptor: descriptor.clone(),
            bytes,
        })
        .map_err(tree_to_store)?;
        for child in tree.wanted() {
            let bytes = store.read_blob(&child.digest)?;
            tree.add_manifest(&child, bytes).map_err(tree_to_store)?;
        }
        Ok(tree)
    }

    /// The top document.
    pub fn top(&self) -> &Document {
        &self.top
    }

    /// The image index, when the top is one.
    pub fn index(&self) -> Option<&ImageIndex> {
        self.index.as_ref()
    }

    /// The manifests the index lists that are not loaded yet (none for a manifest at the top).
    pub fn wanted(&self) -> Vec<Descriptor> {
        self.index
            .iter()
            .flat_map(|index| &index.manifests)
            .filter(|child| self.manifest(&child.digest).is_none())
            .cloned()
            .collect()
    }

    /// Adds the manifest `descriptor` (one the index lists) with its bytes, which the caller
    /// has checked against the descriptor.
    pub fn add_manifest(
        &mut self,
        descriptor: &Descriptor,
        bytes: Vec<u8>,
    ) -> Result<(), TreeError> {
        let listed = self
            .index
            .iter()
            .flat_map(|index| &index.manifests)
            .find(|child| child.digest == descriptor.digest)
            .ok_or_else(|| TreeError::NotListed {
                digest: descriptor.digest.clone(),
            })?;
        if !matches!(
            listed.media_type.as_str(),
            media::IMAGE_MANIFEST | media::DOCKER_MANIFEST
        ) {
            return Err(TreeError::UnexpectedMediaType {
                digest: listed.digest.clone(),
                media_type: listed.media_type.clone(),
            });
        }
        let manifest = parse("manifest", &descriptor.digest, &bytes)?;
        if self.manifest(&descriptor.digest).is_none() {
            self.manifests.push(TreeManifest {
                document: Document {
                    descriptor: listed.clone(),
                    bytes,
                },
                manifest,
            });
        }
        Ok(())
    }

    /// The manifest to read on `platform`: the index's entry for it, else the index's only
    /// entry, else none; or the top itself when it is a manifest. Skill layers are the same on
    /// every platform, so which one hardly matters, but the choice is stable.
    pub fn pick(&self, platform: &Platform) -> Option<&Descriptor> {
        match &self.index {
            Some(index) => pick(index, platform),
            None => Some(&self.top.descriptor),
        }
    }

    /// The manifest for exactly `platform` (no fallback to an index's only entry); the top
    /// itself when it is a manifest (a skill's files do not depend on the platform).
    pub fn pick_exact(&self, platform: &Platform) -> Option<&Descriptor> {
        match &self.index {
            Some(index) => pick_exact(index, platform),
            None => Some(&self.top.descriptor),
        }
    }

    /// The platforms an index lists, in its order; empty for a manifest.
    pub fn platforms(&self) -> Vec<&Platform> {
        self.index
            .iter()
            .flat_map(|index| &index.manifests)
            .filter_map(|d| d.platform.as_ref())
            .collect()
    }

    /// The loaded manifest `digest`.
    pub fn manifest(&self, digest: &crate::Digest) -> Option<&TreeManifest> {
        self.manifests
            .iter()
            .find(|m| &m.document.descriptor.digest == digest)
    }

    /// The loaded manifests, in the order they were added.
    pub fn manifests(&self) -> &[TreeManifest] {
        &self.manifests
    }

    /// The configs and layers of the loaded manifests, each blob once.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut blobs: Vec<Descriptor> = Vec::new();
        for tree_manifest in &self.manifests {
            let manifest = &tree_manifest.manifest;
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if !blobs.iter().any(|b| b.digest == blob.digest) {
                    blobs.push(blob.clone());
                }
            }
        }
        blobs
    }

    /// Every document: the manifests under an index first, then the top, the order in which
    /// a store or a registry must receive them.
    pub fn documents(&self) -> Vec<&Document> {
        let children = self
            .manifests
            .iter()
            .map(|m| &m.document)
            .filter(|_| self.index.is_some());
        children.chain([&self.top]).collect()
    }
}

/// The entry of `index` for `platform` (os and architecture), else its only entry.
pub(crate) fn pick<'a>(index: &'a ImageIndex, platform: &Platform) -> Option<&'a Descriptor> {
    pick_exact(index, platform).or(match index.manifests.as_slice() {
        [only] => Some(only),
        _ => None,
    })
}

/// The entry of `index` for `platform`: os and architecture, and the variant when it names one.
pub(crate) fn pick_exact<'a>(index: &'a ImageIndex, platform: &Platform) -> Option<&'a Descriptor> {
    index.manifests.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == platform.os
                && p.architecture == platform.architecture
                && (platform.variant.is_none() || p.variant == platform.variant)
        })
    })
}

fn parse<T: serde::de::DeserializeOwned>(
    what: &'static str,
    digest: &crate::Digest,
    bytes: &[u8],
) -> Result<T, TreeError> {
    serde_json::from_slice(bytes).map_err(|source| TreeError::BadDocument {
        what,
        digest: digest.clone(),
        source,
    })
}

fn tree_to_store(err: TreeError) -> StoreError {
    match err {
        TreeError::BadDocument {
            what,
            digest,
            source,
        } => StoreError::BadDocument {
            what,
            digest,
            source,
        },
        TreeError::UnexpectedMediaType { digest, media_type } => StoreError::NotAnImage {
            digest,
            reason: format!("media type {media_type}"),
        },
        TreeError::NotListed { digest } => StoreError::NotAnImage {
            digest,
            reason: "a manifest the index does not list".into(),
        },
    }
}
