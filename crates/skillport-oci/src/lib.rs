//! The skill image format and the local store.
//!
//! Owns the artifact: media types, the deterministic tar+gzip layer, image configs, manifests,
//! the image index and its annotations; the local OCI image-layout store (atomic writes,
//! locking, garbage collection); references; and safe unpacking of layers.
//!
//! It must not touch the network or Kubernetes: the registry client and the operator build on
//! it, not the other way round.

mod build;
mod digest;
pub mod folder;
mod image;
mod layer;
mod read;
mod reference;
pub mod spec;
mod store;
mod tree;
pub mod tree_hash;
mod unpack;

pub use build::{BuildError, BuildRequest, Built, build, layer_only};
pub use digest::{Algorithm, Digest, Hasher, HashingReader, HashingWriter, ParseDigestError};
pub use image::{Document, ImageDocuments, PLATFORMS, image_documents, rfc3339, skill_annotations};
pub use layer::{GeneratedFile, Layer, LayerError, LayerOptions, write_layer};
pub use read::{
    FileInfo, ReadError, SkillImage, export, list_files, pick_manifest, picked_manifest,
    picked_manifest_on, skill_image, skill_image_on, skill_layer, unpack_verified,
};
pub use reference::{ParseReferenceError, Reference};
pub use store::{BlobWriter, PendingBlob, Removed, Store, StoreError, StoredImage};
pub use tree::{ImageTree, TreeError, TreeManifest};
pub use unpack::{Compression, LayerFormat, Staged, UnpackError, UnpackLimits, Unpacked};
