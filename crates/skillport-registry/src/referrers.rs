// What is attached to an image (OCI 1.1 referrers, with the referrers-tag fallback), cosign's
// signatures among it (bundles, and legacy `.sig` tags), and attaching an artifact.
//
// Bounded against a registry that wants to stall or exhaust us: every document and blob is
// read with a cap, and at most MAX_ATTACHED referrers or `.sig` layers are looked at.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use skillport_oci::spec::{Annotations, Descriptor, ImageIndex, ImageManifest, media};
use skillport_oci::{Digest, Reference};

use crate::client::{Client, request};
use crate::error::RegistryError;
use crate::remote::Remote;
use crate::response::{read_limited, status_error};
use crate::transfer::{NoProgress, verify};
use crate::upload::Source;

/// The artifact type (and layer media type) of a sigstore bundle.
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// At most this many referrers, or `.sig` layers, are read for one image.
const MAX_ATTACHED: usize = 32;
/// A signature bundle or payload larger than this is refused.
const MAX_SIGNATURE_BYTES: u64 = 1 << 20;

/// cosign's signatures on one image, as bytes, not yet checked.
#[derive(Debug, Default)]
pub struct Attached {
    /// Bundles found through the referrers API or the referrers tag.
    pub bundles: Vec<AttachedBundle>,
    /// Layers of the legacy `sha256-<hex>.sig` tag.
    pub legacy: Vec<AttachedLayer>,
    /// Whether the registry serves the referrers API (else the referrers tag was read).
    pub referrers_api: bool,
}

impl Attached {
    /// Each bundle as `(origin, created, bytes)`: what `skillport_sign::bundle::read_all` reads.
    pub fn bundle_parts(&self) -> impl Iterator<Item = (String, Option<String>, &[u8])> {
        self.bundles.iter().map(|bundle| {
            (
                format!("bundle {}", bundle.manifest),
                bundle.created.clone(),
                bundle.bytes.as_slice(),
            )
        })
    }

    /// Each legacy layer as `(origin, payload, annotations)`.
    pub fn legacy_parts(&self) -> impl Iterator<Item = (String, &[u8], &Annotations)> {
        self.legacy.iter().map(|layer| {
            (
                layer.origin.clone(),
                layer.payload.as_slice(),
                &layer.annotations,
            )
        })
    }
}

#[derive(Debug)]
pub struct AttachedBundle {
    /// The artifact manifest that carries it.
    pub manifest: Digest,
    /// Its `org.opencontainers.image.created`, when given.
    pub created: Option<String>,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct AttachedLayer {
    /// `<tag> layer <n>`, for messages.
    pub origin: String,
    pub payload: Vec<u8>,
    pub annotations: Annotations,
}

/// How an artifact reached the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub digest: Digest,
    /// The registry indexes it for the referrers API; else the referrers tag was updated.
    pub referrers_api: bool,
}

impl Client {
    /// The manifests that name `subject` (in the repository of `reference`) as theirs: the
    /// referrers API's answer, or, on a registry without it, the referrers tag
    /// `<alg>-<hex>`. The flag says which was read.
    pub async fn referrers(
        &self,
        reference: &Reference,
        subject: &Digest,
    ) -> Result<(Vec<Descriptor>, bool), RegistryError> {
        let remote = Remote::new(reference);
        // A registry found without the API once is not asked again (one round trip less).
        if self.lacks_referrers_api(&remote.registry) {
            return Ok((self.referrers_tag(&remote, subject).await?.manifests, false));
        }
        let what = format!("referrers of {}@{subject}", remote.repository);
        let access = remote.access("pull", &what);
        let path = format!("/v2/{}/referrers/{subject}", remote.repository);
        let build = |http: &reqwest::Client, base: &str| {
            request(http, Method::GET, base, &path).header(ACCEPT, media::IMAGE_INDEX)
        };
        let response = self.send(&access, &build).await?;
        let status = response.status();
        let is_index = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(media::IMAGE_INDEX));
        if status.is_success() && is_index {
            let limit = self.options().max_manifest_bytes;
            let bytes =
                read_limited(response, limit, &remote.registry, &what, self.options()).await?;
            let index: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|err| RegistryError::Protocol {
                    registry: remote.registry.clone(),
                    what: what.clone(),
                    reason: format!("the referrers answer is not an image index: {err}"),
                })?;
            return Ok((index.manifests, true));
        }
        // No referrers API (404, or a registry that answers the unknown route otherwise).
        if !matches!(
            status,
            StatusCode::NOT_FOUND
                | StatusCode::BAD_REQUEST
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::NOT_IMPLEMENTED
        ) && !status.is_success()
        {
            return Err(status_error(&access, response).await);
        }
        self.note_no_referrers_api(&remote.registry);
        Ok((self.referrers_tag(&remote, subject).await?.manifests, false))
    }

    /// The referrers tag's index, or an empty one when the tag does not exist.
    async fn referrers_tag(
        &self,
        remote: &Remote,
        subject: &Digest,
    ) -> Result<ImageIndex, RegistryError> {
        let tag = fallback_tag(subject);
        match self.fetch_document(remote, &tag, None).await {
            Ok(document) => {
                serde_json::from_slice(&document.bytes).map_err(|err| RegistryError::Protocol {
                    registry: remote.registry.clone(),
                    what: format!("referrers tag {}:{tag}", remote.repository),
                    reason: format!("not an image index: {err}"),
                })
            }
            Err(err) if err.kind() == crate::ErrorKind::NotFound => Ok(ImageIndex::new()),
            Err(err) => Err(err),
        }
    }

    /// cosign's signatures on `subject` in the repository of `reference`: every sigstore
    /// bundle attached to it, and the layers of its legacy `.sig` tag.
    pub async fn signatures(
        &self,
        reference: &Reference,
        subject: &Digest,
    ) -> Result<Attached, RegistryError> {
        let (bundles, legacy) = futures_util::future::try_join(
            self.bundle_signatures(reference, subject),
            self.legacy_signatures(reference, subject),
        )
        .await?;
        Ok(Attached {
            legacy: legacy.legacy,
            ..bundles
        })
    }

    /// The sigstore bundles attached to `subject` (referrers API, or the referrers tag).
    pub async fn bundle_signatures(
        &self,
        reference: &Reference,
        subject: &Digest,
    ) -> Result<Attached, RegistryError> {
        let remote = Remote::new(reference);
        let (referrers, referrers_api) = self.referrers(reference, subject).await?;
        // The artifact type the index names is a hint (some registries put the config's media
        // type there): every referrer that might be a bundle is opened, at once.
        let candidates: Vec<&Descriptor> = referrers
            .iter()
            .filter(|d| {
                d.artifact_type
                    .as_deref()
                    .is_none_or(|t| t == BUNDLE_ARTIFACT_TYPE || t == EMPTY_MEDIA_TYPE)
            })
            .take(MAX_ATTACHED)
            .collect();
        // One referrer that cannot be read (not an image manifest, a blob gone) does not hide
        // the others; a registry that fails on the way does fail the read.
        let opened = futures_util::future::join_all(
            candidates
                .iter()
                .map(|descriptor| self.bundle_of(&remote, &descriptor.digest)),
        )
        .await;
        let mut bundles = Vec::new();
        for result in opened {
            match result {
                Ok(bundle) => bundles.extend(bundle),
                Err(err) if err.is_transient() => return Err(err),
                Err(err) => tracing::debug!(error = %err, "skipping an unreadable referrer"),
            }
        }
        Ok(Attached {
            bundles,
            legacy: Vec::new(),
            referrers_api,
        })
    }

    /// The bundle the artifact `digest` carries, if it is one.
    async fn bundle_of(
        &self,
        remote: &Remote,
        digest: &Digest,
    ) -> Result<Option<AttachedBundle>, RegistryError> {
        let manifest = self.artifact_manifest(remote, digest).await?;
        let Some(layer) = manifest
            .layers
            .first()
            .filter(|l| l.media_type == BUNDLE_ARTIFACT_TYPE)
        else {
            return Ok(None);
        };
        Ok(Some(AttachedBundle {
            manifest: digest.clone(),
            created: manifest
                .annotations
                .get(skillport_oci::spec::annotation::CREATED)
                .cloned(),
            bytes: self.blob_bytes(remote, layer, MAX_SIGNATURE_BYTES).await?,
        }))
    }

    /// The layers of the legacy `<alg>-<hex>.sig` tag of `subject`.
    pub async fn legacy_signatures(
        &self,
        reference: &Reference,
        subject: &Digest,
    ) -> Result<Attached, RegistryError> {
        let remote = Remote::new(reference);
        let tag = format!("{}.sig", fallback_tag(subject));
        let manifest = match self.fetch_document(&remote, &tag, None).await {
            Ok(document) => {
                serde_json::from_slice::<ImageManifest>(&document.bytes).map_err(|err| {
                    RegistryError::Protocol {
                        registry: remote.registry.clone(),
                        what: format!("signature tag {}:{tag}", remote.repository),
                        reason: format!("not an image manifest: {err}"),
                    }
                })?
            }
            Err(err) if err.kind() == crate::ErrorKind::NotFound => {
                return Ok(Attached::default());
            }
            Err(err) => return Err(err),
        };
        let layers: Vec<(usize, &Descriptor)> = manifest
            .layers
            .iter()
            .enumerate()
            .filter(|(_, layer)| layer.media_type == SIMPLE_SIGNING)
            .take(MAX_ATTACHED)
            .collect();
        let payloads = futures_util::future::try_join_all(
            layers
                .iter()
                .map(|(_, layer)| self.blob_bytes(&remote, layer, MAX_SIGNATURE_BYTES)),
        )
        .await?;
        Ok(Attached {
            legacy: layers
                .iter()
                .zip(payloads)
                .map(|((index, layer), payload)| AttachedLayer {
                    origin: format!("{tag} layer {}", index + 1),
                    payload,
                    annotations: layer.annotations.clone(),
                })
                .collect(),
            ..Attached::default()
        })
    }

    async fn artifact_manifest(
        &self,
        remote: &Remote,
        digest: &Digest,
    ) -> Result<ImageManifest, RegistryError> {
        let document = self
            .fetch_document(remote, &digest.to_string(), Some(digest))
            .await?;
        serde_json::from_slice(&document.bytes).map_err(|err| RegistryError::Protocol {
            registry: remote.registry.clone(),
            what: format!("manifest {}@{digest}", remote.repository),
            reason: format!("not an image manifest: {err}"),
        })
    }

    /// A small blob in memory, its size and digest checked.
    /// The blob `descriptor` of the repository `reference` names, in memory (at most
    /// `limit` bytes), its size and digest checked: an image config, say.
    pub async fn blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        self.blob_bytes(&Remote::new(reference), descriptor, limit)
            .await
    }

    /// A blob in memory, at most `limit` bytes, its size and digest checked; the
    /// descriptor's embedded `data` when it checks out, without a request.
    pub(crate) async fn blob_bytes(
        &self,
        remote: &Remote,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("blob {}", descriptor.digest);
        if descriptor.size > limit {
            return Err(RegistryError::TooLarge {
                registry: remote.registry.clone(),
                what,
                limit,
            });
        }
        if let Some(bytes) = descriptor.embedded() {
            return Ok(bytes);
        }
        let access = remote.access("pull", &what);
        let path = format!("/v2/{}/blobs/{}", remote.repository, descriptor.digest);
        let build = |http: &reqwest::Client, base: &str| request(http, Method::GET, base, &path);
        let response = self.send(&access, &build).await?;
        if !response.status().is_success() {
            return Err(status_error(&access, response).await);
        }
        let bytes = read_limited(
            response,
            descriptor.size,
            &remote.registry,
            &what,
            self.options(),
        )
        .await?;
        verify(&remote.registry, &what, &descriptor.digest, &bytes)?;
        Ok(bytes)
    }

    /// Attaches an artifact to `subject` in the repository of `reference`, as cosign v3 does:
    /// an image manifest with the empty config, one layer `layer_bytes` of `artifact_type`,
    /// `annotations`, and `subject`; pushed by digest. A registry that does not answer
    /// `OCI-Subject` gets the referrers tag updated too (OCI distribution spec 1.1).
    pub async fn attach(
        &self,
        reference: &Reference,
        subject: &Descriptor,
        artifact_type: &str,
        layer_bytes: &[u8],
        annotations: Annotations,
    ) -> Result<Attachment, RegistryError> {
        let remote = Remote::new(reference);
        let config = Descriptor::of(EMPTY_MEDIA_TYPE, b"{}");
        let layer = Descriptor::of(artifact_type, layer_bytes);
        for (descriptor, bytes) in [(&config, &b"{}"[..]), (&layer, layer_bytes)] {
            self.upload_blob(
                &remote,
                descriptor,
                Source::Bytes(bytes),
                None,
                Arc::new(NoProgress),
            )
            .await?;
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media::IMAGE_MANIFEST.to_owned()),
            artifact_type: Some(artifact_type.to_owned()),
            config,
            layers: vec![layer],
            annotations: annotations.clone(),
            subject: Some(Descriptor {
                annotations: BTreeMap::new(),
                data: None,
                platform: None,
                artifact_type: None,
                ..subject.clone()
            }),
        };
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let digest = Digest::sha256(&bytes);
        let answer = self
            .put_manifest(&remote, &digest.to_string(), media::IMAGE_MANIFEST, &bytes)
            .await?;
        // A registry that indexes subjects says so with `OCI-Subject`; one that forgets the
        // header (go-containerregistry's) is asked whether it serves the referrers API, as
        // cosign and oras do. Only a registry without it gets the referrers tag.
        let mut referrers_api = answer.subject_seen;
        if !referrers_api {
            let (listed, api) = self.referrers(reference, &subject.digest).await?;
            referrers_api = api;
            if !api && !listed.iter().any(|d| d.digest == digest) {
                let mut index = ImageIndex::new();
                index.manifests = listed;
                index.manifests.push(Descriptor {
                    artifact_type: Some(artifact_type.to_owned()),
                    annotations,
                    ..Descriptor::of(media::IMAGE_MANIFEST, &bytes)
                });
                let index_bytes = serde_json::to_vec(&index).expect("an index serializes");
                self.put_manifest(
                    &remote,
                    &fallback_tag(&subject.digest),
                    media::IMAGE_INDEX,
                    &index_bytes,
                )
                .await?;
            }
        }
        Ok(Attachment {
            digest,
            referrers_api,
        })
    }
}

/// The referrers tag of a digest (`sha256:abc…` → `sha256-abc…`), where signatures of it are
/// listed on registries without the referrers API; cosign's legacy tag adds `.sig`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm().name(), digest.hex())
}
