// Reading manifests: resolve a reference, fetch a manifest or index, list tags, check a login.

use std::collections::BTreeMap;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use reqwest::{Method, StatusCode};
use skillport_oci::spec::{Descriptor, media};
use skillport_oci::{Digest, Document, Reference};

use crate::client::{Client, request};
use crate::error::RegistryError;
use crate::remote::Remote;
use crate::request::Access;
use crate::response::{read_capped, read_limited, status_error};
use crate::transfer::verify;

/// Every manifest media type we read, for `Accept`.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

impl Client {
    /// The digest (and media type and size) a reference points at, with one HEAD request.
    pub async fn resolve(&self, reference: &Reference) -> Result<Descriptor, RegistryError> {
        let remote = Remote::new(reference);
        let what = format!("manifest {}", remote.display);
        let access = remote.access("pull", &what);
        let path = format!("/v2/{}/manifests/{}", remote.repository, remote.reference);
        let build = |http: &reqwest::Client, base: &str| {
            request(http, Method::HEAD, base, &path).header(ACCEPT, MANIFEST_TYPES)
        };
        let response = self.send(&access, &build).await?;
        if response.status() == StatusCode::NOT_FOUND {
            // A HEAD answer has no body, so no reason: ask with GET for the registry's own
            // message, which tells a missing tag from a missing repository.
            return Ok(self.fetch_manifest(reference).await?.descriptor);
        }
        if !response.status().is_success() {
            return Err(status_error(&access, response).await);
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let digest = header("docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        let media_type = header(CONTENT_TYPE.as_str());
        let size = header(CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok());
        match (digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size))
                if reference.digest().is_none_or(|d| *d == digest) =>
            {
                Ok(Descriptor {
                    media_type,
                    digest,
                    size,
                    data: None,
                    platform: None,
                    artifact_type: None,
                    annotations: BTreeMap::new(),
                })
            }
            // Some registries leave the digest out of HEAD answers: fetch and hash instead.
            _ => Ok(self.fetch_manifest(reference).await?.descriptor),
        }
    }

    /// Fetches the manifest or index a reference points at (its descriptor, digest verified,
    /// and bytes), verifying its digest when the reference or the registry names one, and
    /// refusing oversized or unknown documents.
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<Document, RegistryError> {
        let remote = Remote::new(reference);
        self.fetch_document(&remote, &remote.reference, reference.digest())
            .await
    }

    pub(crate) async fn fetch_document(
        &self,
        remote: &Remote,
        tag_or_digest: &str,
        expected: Option<&Digest>,
    ) -> Result<Document, RegistryError> {
        let what = format!("manifest {}", remote.display);
        let access = remote.access("pull", &what);
        let path = format!("/v2/{}/manifests/{tag_or_digest}", remote.repository);
        let build = |http: &reqwest::Client, base: &str| {
            request(http, Method::GET, base, &path).header(ACCEPT, MANIFEST_TYPES)
        };
        let response = self.send(&access, &build).await?;
        if !response.status().is_success() {
            return Err(status_error(&access, response).await);
        }
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let limit = self.options().max_manifest_bytes;
        let bytes = read_limited(response, limit, &remote.registry, &what, self.options()).await?;
        let digest = match expected.or(header_digest.as_ref()) {
            Some(digest) => {
                verify(&remote.registry, &what, digest, &bytes)?;
                digest.clone()
            }
            None => Digest::sha256(&bytes),
        };
        let declared: Option<String> = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned));
        let media_type = declared.or(content_type).unwrap_or_default();
        if !matches!(
            media_type.as_str(),
            media::IMAGE_INDEX
                | media::IMAGE_MANIFEST
                | media::DOCKER_MANIFEST
                | media::DOCKER_MANIFEST_LIST
        ) {
            return Err(RegistryError::UnsupportedMediaType {
                registry: remote.registry.clone(),
                what,
                media_type,
            });
        }
        Ok(Document {
            descriptor: Descriptor {
                media_type,
                digest,
                size: bytes.len() as u64,
                data: None,
                platform: None,
                artifact_type: None,
                annotations: BTreeMap::new(),
            },
            bytes,
        })
    }

    /// Checks that `registry` accepts this client's credentials for it: `GET /v2/`, answering
    /// its challenge. `docker login` does the same before it saves anything.
    pub async fn check_login(&self, registry: &str) -> Result<(), RegistryError> {
        let access = Access {
            registry,
            repository: "",
            actions: "",
            what: "login",
        };
        let build = |http: &reqwest::Client, base: &str| request(http, Method::GET, base, "/v2/");
        let response = self.send(&access, &build).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(&access, response).await)
        }
    }

    /// Every tag of the repository `reference` names, following pagination.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        let remote = Remote::new(reference);
        let what = format!("tags of {}", remote.repository);
        let access = remote.access("pull", &what);
        let mut path = format!("/v2/{}/tags/list?n=1000", remote.repository);
        let mut tags = Vec::new();
        for _page in 0..10_000 {
            let build =
                |http: &reqwest::Client, base: &str| request(http, Method::GET, base, &path);
            let response = self.send(&access, &build).await?;
            if !response.status().is_success() {
                return Err(status_error(&access, response).await);
            }
            let next = response
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body =
                read_capped(response, 16 << 20)
                    .await
                    .map_err(|_| RegistryError::Protocol {
                        registry: remote.registry.clone(),
                        what: what.clone(),
                        reason: "tag list unreadable or too large".into(),
                    })?;
            let page: serde_json::Value =
                serde_json::from_slice(&body).map_err(|err| RegistryError::Protocol {
                    registry: remote.registry.clone(),
                    what: what.clone(),
                    reason: err.to_string(),
                })?;
            if let Some(list) = page.get("tags").and_then(serde_json::Value::as_array) {
                tags.extend(list.iter().filter_map(|t| t.as_str().map(str::to_owned)));
            }
            match next {
                Some(next) => path = next,
                None => return Ok(tags),
            }
        }
        Err(RegistryError::Protocol {
            registry: remote.registry.clone(),
            what,
            reason: "tag list pagination does not end".into(),
        })
    }
}

/// The path of the `rel="next"` link in a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            let url = url.trim().trim_start_matches('<').trim_end_matches('>');
            // Keep the path and query; the base is the registry's.
            match url.find("/v2/") {
                Some(i) => url[i..].to_owned(),
                None => url.to_owned(),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(
            next_link(r#"<https://r.io/v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</v2/a/tags/list?last=x>; rel="prev""#), None);
    }
}
