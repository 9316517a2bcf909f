// A skill image served by the testkit's `FakeRegistry` the way a well-behaved registry would,
// and clients wired to it: shared by the tests that script what real registries will not do.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use skillport_oci::spec::{ImageIndex, ImageManifest, media};
use skillport_oci::{Digest, Reference, Store};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions};
use skillport_testkit::{FakeRegistry, FakeRequest, FakeResponse};

use crate::common::{self, build_skill, fast_options, reference};

pub const REPOSITORY: &str = "skills/fake";
pub const USER: &str = "robot";
pub const PASSWORD: &str = "pw-NEVER-PRINT-fake";

/// A skill image built into a store, with every blob in memory for the fake to serve.
pub struct Image {
    _dir: tempfile::TempDir,
    pub index: Digest,
    pub manifests: Vec<Digest>,
    pub layer: Digest,
    pub layer_bytes: Vec<u8>,
    pub blobs: HashMap<String, Vec<u8>>,
}

impl Image {
    pub fn build(name: &str) -> Arc<Image> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let skill = common::write_skill(&dir.path().join("src"), name);
        let built = build_skill(&store, &skill, &format!("{name}:1"));
        let index_digest = built.digest().clone();
        let index: ImageIndex = store.read_json("index", &index_digest).unwrap();
        let mut blobs = HashMap::new();
        blobs.insert(
            index_digest.to_string(),
            store.read_blob(&index_digest).unwrap(),
        );
        let mut manifests = Vec::new();
        for child in &index.manifests {
            let manifest: ImageManifest = store.read_json("manifest", &child.digest).unwrap();
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                blobs.insert(
                    blob.digest.to_string(),
                    store.read_blob(&blob.digest).unwrap(),
                );
            }
            blobs.insert(
                child.digest.to_string(),
                store.read_blob(&child.digest).unwrap(),
            );
            manifests.push(child.digest.clone());
        }
        let layer = built.layer.digest.clone();
        Arc::new(Image {
            layer_bytes: blobs[&layer.to_string()].clone(),
            _dir: dir,
            index: index_digest,
            manifests,
            layer,
            blobs,
        })
    }

    pub fn layer_path(&self) -> String {
        format!("/v2/{REPOSITORY}/blobs/{}", self.layer)
    }

    /// What a well-behaved registry answers for this image under `skills/fake:1`.
    pub fn serve(&self, request: &FakeRequest) -> FakeResponse {
        if request.path == "/v2/" {
            return FakeResponse::status(200);
        }
        if let Some(tag_or_digest) = request
            .path
            .strip_prefix(&format!("/v2/{REPOSITORY}/manifests/"))
        {
            let digest = if tag_or_digest == "1" {
                self.index.to_string()
            } else {
                tag_or_digest.to_owned()
            };
            let Some(bytes) = self.blobs.get(&digest) else {
                return not_found("MANIFEST_UNKNOWN");
            };
            let media_type = if digest == self.index.to_string() {
                media::IMAGE_INDEX
            } else {
                media::IMAGE_MANIFEST
            };
            return FakeResponse::bytes(
                200,
                [
                    ("content-type", media_type),
                    ("docker-content-digest", digest.as_str()),
                ],
                bytes.clone(),
            );
        }
        if let Some(digest) = request
            .path
            .strip_prefix(&format!("/v2/{REPOSITORY}/blobs/"))
        {
            return match self.blobs.get(digest) {
                Some(bytes) => FakeResponse::bytes(
                    200,
                    [("content-type", "application/octet-stream")],
                    bytes.clone(),
                ),
                None => not_found("BLOB_UNKNOWN"),
            };
        }
        not_found("NAME_UNKNOWN")
    }
}

pub fn not_found(code: &str) -> FakeResponse {
    FakeResponse::json(
        404,
        &serde_json::json!({ "errors": [{ "code": code, "message": "unknown" }] }),
    )
}

pub fn remote(fake: &FakeRegistry) -> Reference {
    reference(&format!("{}/{REPOSITORY}:1", fake.host()))
}

pub fn client(options: ClientOptions) -> Client {
    Client::new(Credentials::empty(), options).unwrap()
}

pub fn client_with_password(fake: &FakeRegistry, dir: &std::path::Path) -> Client {
    let path = dir.join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        &path,
        serde_json::json!({ "auths": { fake.host(): { "auth": auth } } }).to_string(),
    )
    .unwrap();
    Client::new(
        Credentials::from_files(vec![AuthFile::read(&path).unwrap()]),
        fast_options(),
    )
    .unwrap()
}

pub fn requests_to(fake: &FakeRegistry, path: &str) -> Vec<FakeRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

pub fn empty_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}
