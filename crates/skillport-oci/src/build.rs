// Building a skill image into the store: layer → configs → manifests → index → commit.

use std::io::Write;

use skillport_skill::{Entry, Skill, SkillCard};

use crate::image::{ImageDocuments, image_documents, rfc3339, skill_annotations};
use crate::layer::{GeneratedFile, Layer, LayerError, LayerOptions, write_layer};
use crate::spec::{Annotations, Descriptor};
use crate::store::{Store, StoreError};
use crate::{Digest, Reference};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// The loaded, validated skill.
    pub skill: &'a Skill,
    /// Its files, from `skillport_skill::walk`.
    pub entries: &'a [Entry],
    /// A SkillCard to add as `skill.yaml` when the folder has none (`build --card`).
    pub generated_card: Option<&'a SkillCard>,
    /// SOURCE_DATE_EPOCH: entry mtimes and the `created` annotation. `None` means mtime 0
    /// and no `created`, so that builds are reproducible by default.
    pub source_date_epoch: Option<u64>,
    /// Names to record in the store.
    pub names: &'a [Reference],
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image index's descriptor; its digest is the image's.
    pub descriptor: Descriptor,
    /// The layer.
    pub layer: Layer,
    /// The annotations on the index and manifests.
    pub annotations: Annotations,
}

impl Built {
    /// The image digest.
    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }
}

/// Why a build failed. The store is unchanged whenever this is returned.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("SKILL.md is left out of the image (is it named in .skillignore?)")]
    SkillMdExcluded,
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds the image for `request` into `store`, calling `progress` with file bytes read.
pub fn build(
    store: &Store,
    request: &BuildRequest<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<Built, BuildError> {
    if !request.entries.iter().any(|e| e.path == "SKILL.md") {
        return Err(BuildError::SkillMdExcluded);
    }
    let mut generated = Vec::new();
    let existing_card = request.skill.card.as_ref();
    if existing_card.is_none()
        && let Some(card) = request.generated_card
    {
        generated.push(GeneratedFile {
            path: "skill.yaml".to_owned(),
            content: card.to_yaml().into_bytes(),
        });
    }
    let card = existing_card.or(request.generated_card);
    let created = request.source_date_epoch.and_then(rfc3339);
    let options = LayerOptions {
        mtime: request.source_date_epoch.unwrap_or(0),
    };

    let writer = store.blob_writer()?;
    let (writer, layer) = write_layer(request.entries, &generated, options, writer, progress)?;
    let layer_blob = writer.finish()?;

    let annotations = skill_annotations(request.skill, card, created.as_deref());
    let ImageDocuments { index, others } =
        image_documents(&layer, &annotations, created.as_deref());
    let mut blobs = vec![layer_blob];
    for document in others.iter().chain([&index]) {
        blobs.push(store.expect_bytes(&document.descriptor, &document.bytes)?);
    }
    let names: Vec<(String, Descriptor)> = request
        .names
        .iter()
        .map(|name| (name.store_key(), index.descriptor.clone()))
        .collect();
    store.commit(blobs, &names)?;
    Ok(Built {
        descriptor: index.descriptor,
        layer,
        annotations,
    })
}

/// Writes the layer for `entries` to `out` without a store (benchmarks, `--dry-run`).
pub fn layer_only<W: Write>(
    entries: &[Entry],
    source_date_epoch: Option<u64>,
    out: W,
) -> Result<Layer, LayerError> {
    let options = LayerOptions {
        mtime: source_date_epoch.unwrap_or(0),
    };
    write_layer(entries, &[], options, out, &mut |_| {}).map(|(_, layer)| layer)
}
