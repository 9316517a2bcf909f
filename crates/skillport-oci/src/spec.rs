// The OCI image-spec documents we write and read.
//
// Written by hand rather than taken from `oci-spec`: that crate keeps annotations in a
// `HashMap`, whose order changes from run to run, and our digests must not. Here every map is
// a `BTreeMap`, every optional field is left out when empty, and serde_json writes the fields
// in declaration order, so the same values always give the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Digest;

/// Media types and annotation keys.
pub mod media {
    pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// The agentskills.io OCI artifact proposal.
    pub const AGENTSKILLS_ARTIFACT: &str = "application/vnd.agentskills.skill.v1";
    pub const AGENTSKILLS_CONFIG: &str = "application/vnd.agentskills.skill.config.v1+json";
    pub const AGENTSKILLS_LAYER: &str = "application/vnd.agentskills.skill.content.v1.tar+gzip";
}

/// Annotation keys.
pub mod annotation {
    pub const TITLE: &str = "org.opencontainers.image.title";
    pub const DESCRIPTION: &str = "org.opencontainers.image.description";
    pub const VERSION: &str = "org.opencontainers.image.version";
    pub const LICENSES: &str = "org.opencontainers.image.licenses";
    pub const AUTHORS: &str = "org.opencontainers.image.authors";
    pub const VENDOR: &str = "org.opencontainers.image.vendor";
    pub const SOURCE: &str = "org.opencontainers.image.source";
    pub const REVISION: &str = "org.opencontainers.image.revision";
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    pub const SKILL_NAME: &str = "io.agentskills.skill.name";
    /// On a store's name for one platform's manifest pulled from an index: that index's
    /// digest, so that the image's own digest (the one pinned in locks and plans) still finds
    /// it.
    pub const FROM_INDEX: &str = "io.skillport.index.digest";
    // The keys skillimage's skillctl reads; it lists an image only when `status` is present.
    pub const SKILLIMAGE_STATUS: &str = "io.skillimage.status";
    pub const SKILLIMAGE_TAGS: &str = "io.skillimage.tags";
    pub const SKILLIMAGE_COMPATIBILITY: &str = "io.skillimage.compatibility";
    pub const SKILLIMAGE_WORDCOUNT: &str = "io.skillimage.wordcount";
}

/// Annotations: sorted, so that they serialise the same way every time.
pub type Annotations = BTreeMap<String, String>;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// The content itself, base64 (image-spec 1.1 "embedded content"): a puller can use it
    /// instead of asking for the blob, once [`Descriptor::embedded`] has checked it. Kept as
    /// the text it was written as, so a document read and written again keeps its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

impl Descriptor {
    /// A descriptor for `bytes` of `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: Digest::sha256(bytes),
            size: bytes.len() as u64,
            data: None,
            platform: None,
            artifact_type: None,
            annotations: Annotations::new(),
        }
    }

    /// [`Descriptor::of`] with the bytes embedded as `data`: for a small blob (an image
    /// config) a puller then needs no request for it. Registries still get the blob itself.
    pub fn embedding(media_type: &str, bytes: &[u8]) -> Descriptor {
        use base64::Engine as _;
        Descriptor {
            data: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ..Descriptor::of(media_type, bytes)
        }
    }

    /// The embedded `data`, decoded, when it is exactly the content the descriptor names
    /// (its size and digest, with the digest's own algorithm, as the image spec asks of a
    /// consumer). `None` when there is none or it does not check out: the blob is then read
    /// from where it lives, as if nothing were embedded.
    pub fn embedded(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let text = self.data.as_deref()?;
        // Padded base64 of `size` bytes is exactly this long: any other length is refused
        // before anything is decoded.
        if text.len() as u64 != self.size.div_ceil(3).saturating_mul(4) {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let mut hasher = crate::digest::Hasher::new(self.digest.algorithm());
        hasher.update(&bytes);
        (bytes.len() as u64 == self.size && hasher.finish() == self.digest).then_some(bytes)
    }
}

/// The platform an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform whose manifest a skill is read from: linux/amd64. Skill layers are the
    /// same on every platform; the choice only has to be stable.
    pub fn skill_default() -> Platform {
        Platform {
            architecture: "amd64".to_owned(),
            os: "linux".to_owned(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

/// `os/arch` or `os/arch/variant`, as docker's and crane's `--platform` take it.
impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |part: &&str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        match parts.as_slice() {
            [os, architecture] | [os, architecture, _] if parts.iter().all(valid) => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*architecture).to_owned(),
                variant: parts.get(2).map(|variant| (*variant).to_owned()),
            }),
            _ => Err(format!(
                "{text:?} is not a platform: write os/arch or os/arch/variant (linux/arm64, \
                 linux/arm/v7)"
            )),
        }
    }
}

/// An image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
    /// OCI 1.1: the manifest this one refers to (a signature's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
}

/// An image index (or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: Annotations,
}

impl ImageIndex {
    /// An empty OCI image index.
    pub fn new() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media::IMAGE_INDEX.to_owned()),
            manifests: Vec::new(),
            annotations: Annotations::new(),
        }
    }
}

impl Default for ImageIndex {
    fn default() -> Self {
        ImageIndex::new()
    }
}

/// The image configuration. Only the fields a skill image needs; others are ignored on read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
}

/// The part of the image configuration a runtime would use to run it; for a skill, labels only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Labels", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Annotations,
}

/// The layers' uncompressed digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// The `oci-layout` file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciLayout {
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_data_is_used_only_when_it_is_the_named_content() {
        let bytes = br#"{"architecture":"amd64","os":"linux"}"#;
        let good = Descriptor::embedding(media::IMAGE_CONFIG, bytes);
        assert_eq!(good.embedded().as_deref(), Some(&bytes[..]));
        // Written and read back, the text is kept as it was.
        let json = serde_json::to_string(&good).unwrap();
        assert!(json.contains(r#""data":""#), "{json}");
        assert_eq!(serde_json::from_str::<Descriptor>(&json).unwrap(), good);

        let length = good.data.as_ref().unwrap().len();
        let mut flipped = bytes.to_vec();
        flipped[0] ^= 1;
        let refused = [
            ("none", None),
            (
                "other bytes of the same length",
                Descriptor::embedding(media::IMAGE_CONFIG, &flipped).data,
            ),
            ("not base64", Some("!".repeat(length))),
            (
                "too long",
                Some(format!("{}QUFB", good.data.as_ref().unwrap())),
            ),
            (
                "too short",
                Some(good.data.as_ref().unwrap()[4..].to_owned()),
            ),
        ];
        for (why, data) in refused {
            let descriptor = Descriptor {
                data,
                ..good.clone()
            };
            assert_eq!(descriptor.embedded(), None, "{why}");
        }
        // The right bytes under a wrong size or digest are refused too.
        let wrong_size = Descriptor {
            size: good.size + 1,
            ..good.clone()
        };
        assert_eq!(wrong_size.embedded(), None);
        let wrong_digest = Descriptor {
            digest: Digest::sha256(b"else"),
            ..good.clone()
        };
        assert_eq!(wrong_digest.embedded(), None);
    }
}
