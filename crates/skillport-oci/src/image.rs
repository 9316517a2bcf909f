// From a skill and its layer to the image documents: two image configs (linux/amd64 and
// linux/arm64, identical but for the architecture), two manifests over the same layer, and
// the index over both. Kubernetes mounts an `image` volume only from a real image, which is
// why there is an image config with `rootfs.diff_ids` rather than an empty artifact config.

use skillport_skill::{Skill, SkillCard};

use crate::Layer;
use crate::spec::{
    Annotations, ContainerConfig, Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform,
    RootFs, annotation, media,
};

/// The platforms every skill image is published for.
pub const PLATFORMS: [(&str, &str); 2] = [("linux", "amd64"), ("linux", "arm64")];

/// A small JSON document ready to be stored: its descriptor and its bytes.
#[derive(Debug, Clone)]
pub struct Document {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

impl Document {
    fn json<T: serde::Serialize>(media_type: &str, value: &T) -> Document {
        let bytes = serde_json::to_vec(value).expect("image documents always serialise");
        Document {
            descriptor: Descriptor::of(media_type, &bytes),
            bytes,
        }
    }
}

/// Everything of a skill image except the layer blob itself.
#[derive(Debug, Clone)]
pub struct ImageDocuments {
    /// The image index; its digest is the image's digest.
    pub index: Document,
    /// Manifests and configs, in the order they should be stored.
    pub others: Vec<Document>,
}

/// The annotations of a skill image, from `SKILL.md`, the SkillCard (if any) and the creation
/// time (`created`, RFC 3339; only from SOURCE_DATE_EPOCH, so that builds stay reproducible).
pub fn skill_annotations(
    skill: &Skill,
    card: Option<&SkillCard>,
    created: Option<&str>,
) -> Annotations {
    let fm = &skill.frontmatter;
    let mut out = Annotations::new();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            out.insert(key.to_owned(), value.to_owned());
        }
    };
    put(annotation::SKILL_NAME, Some(&fm.name));
    put(annotation::DESCRIPTION, Some(&fm.description));
    put(annotation::LICENSES, fm.license.as_deref());
    put(annotation::CREATED, created);
    put(
        annotation::VERSION,
        fm.metadata.get("version").map(String::as_str),
    );
    put(
        annotation::AUTHORS,
        fm.metadata.get("author").map(String::as_str),
    );
    put(
        annotation::TITLE,
        Some(
            card.and_then(|c| c.metadata.display_name.as_deref())
                .unwrap_or(&fm.name),
        ),
    );
    if let Some(card) = card {
        let meta = &card.metadata;
        let authors: Vec<String> = meta
            .authors
            .iter()
            .map(|a| match &a.email {
                Some(email) => format!("{} <{email}>", a.name),
                None => a.name.clone(),
            })
            .collect();
        put(annotation::VERSION, Some(&meta.version));
        put(annotation::VENDOR, Some(&meta.namespace));
        put(annotation::AUTHORS, Some(&authors.join(", ")));
        if let Some(provenance) = &card.provenance {
            put(annotation::SOURCE, provenance.source.as_deref());
            put(annotation::REVISION, provenance.commit.as_deref());
        }
        // skillctl lists an image only when it has a status; a fresh build is a draft there.
        put(annotation::SKILLIMAGE_STATUS, Some("draft"));
        if !meta.tags.is_empty() {
            let tags = serde_json::to_string(&meta.tags).expect("strings serialise");
            put(annotation::SKILLIMAGE_TAGS, Some(&tags));
        }
        put(
            annotation::SKILLIMAGE_COMPATIBILITY,
            meta.compatibility
                .as_deref()
                .or(fm.compatibility.as_deref()),
        );
        let words = skill.body.split_whitespace().count().to_string();
        put(annotation::SKILLIMAGE_WORDCOUNT, Some(&words));
    }
    out
}

/// The configs, manifests and index of a skill image whose single layer is `layer`.
pub fn image_documents(
    layer: &Layer,
    annotations: &Annotations,
    created: Option<&str>,
) -> ImageDocuments {
    let layer_descriptor = Descriptor {
        media_type: media::LAYER_TAR_GZIP.to_owned(),
        digest: layer.digest.clone(),
        size: layer.size,
        data: None,
        platform: None,
        artifact_type: None,
        annotations: Annotations::new(),
    };
    let mut index = ImageIndex::new();
    index.annotations = annotations.clone();
    let mut others = Vec::new();
    for (os, architecture) in PLATFORMS {
        let config = Document::json(
            media::IMAGE_CONFIG,
            &ImageConfig {
                created: created.map(str::to_owned),
                architecture: architecture.to_owned(),
                os: os.to_owned(),
                config: Some(ContainerConfig {
                    labels: annotations.clone(),
                }),
                rootfs: RootFs {
                    kind: "layers".to_owned(),
                    diff_ids: vec![layer.diff_id.clone()],
                },
            },
        );
        let manifest = Document::json(
            media::IMAGE_MANIFEST,
            &ImageManifest {
                schema_version: 2,
                media_type: Some(media::IMAGE_MANIFEST.to_owned()),
                artifact_type: None,
                // The config rides in the manifest too (a few hundred bytes): a puller that
                // keeps it (`install`, `pull`) needs one request fewer per image.
                config: Descriptor::embedding(media::IMAGE_CONFIG, &config.bytes),
                layers: vec![layer_descriptor.clone()],
                annotations: annotations.clone(),
                subject: None,
            },
        );
        let mut entry = manifest.descriptor.clone();
        entry.platform = Some(Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            variant: None,
        });
        index.manifests.push(entry);
        others.push(config);
        others.push(manifest);
    }
    ImageDocuments {
        index: Document::json(media::IMAGE_INDEX, &index),
        others,
    }
}

/// The RFC 3339 form of a Unix time, as written in `created`.
pub fn rfc3339(seconds: u64) -> Option<String> {
    let seconds = i64::try_from(seconds).ok()?;
    let time = time::OffsetDateTime::from_unix_timestamp(seconds).ok()?;
    time.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
