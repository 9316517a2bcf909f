//! Pulling into the store what a registry serves with sha512 digests: every blob and document
//! is written through the store's writer for its descriptor, so the store names it by its own
//! digest and a later `rm` of another image finds it (issue 7, finding 3).

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{build_skill, fast_options, progress, reference, write_skill};
use skillport_oci::spec::{Descriptor, ImageConfig, ImageManifest, RootFs, media};
use skillport_oci::{Algorithm, Digest, Hasher, LayerOptions, Store};
use skillport_registry::Client;
use skillport_registry::auth::Credentials;
use skillport_testkit::{FakeRegistry, FakeResponse};

fn sha512(media_type: &str, bytes: &[u8]) -> Descriptor {
    let mut hasher = Hasher::new(Algorithm::Sha512);
    hasher.update(bytes);
    Descriptor {
        media_type: media_type.to_owned(),
        digest: hasher.finish(),
        size: bytes.len() as u64,
        data: None,
        platform: None,
        artifact_type: None,
        annotations: BTreeMap::new(),
    }
}

/// A one-manifest skill image, every digest sha512: the manifest's descriptor, and each
/// document and blob by digest.
fn wide_image() -> (Descriptor, HashMap<Digest, Vec<u8>>) {
    wide_image_embedding(|_| None)
}

/// [`wide_image`] whose manifest embeds, as its config's `data`, what `embed` makes of the
/// config's bytes.
fn wide_image_embedding(
    embed: impl Fn(&[u8]) -> Option<String>,
) -> (Descriptor, HashMap<Digest, Vec<u8>>) {
    let src = tempfile::tempdir().unwrap();
    let skill = write_skill(src.path(), "wide");
    let entries = skillport_skill::walk(&skill).unwrap();
    let (layer, _) = skillport_oci::write_layer(
        &entries,
        &[],
        LayerOptions::default(),
        Vec::new(),
        &mut |_| {},
    )
    .unwrap();
    let layer_descriptor = sha512(media::LAYER_TAR_GZIP, &layer);
    let config = serde_json::to_vec(&ImageConfig {
        created: None,
        architecture: "amd64".into(),
        os: "linux".into(),
        config: None,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![],
        },
    })
    .unwrap();
    let config_descriptor = Descriptor {
        data: embed(&config),
        ..sha512(media::IMAGE_CONFIG, &config)
    };
    let manifest = serde_json::to_vec(&ImageManifest {
        schema_version: 2,
        media_type: Some(media::IMAGE_MANIFEST.into()),
        artifact_type: None,
        config: config_descriptor.clone(),
        layers: vec![layer_descriptor.clone()],
        annotations: BTreeMap::new(),
        subject: None,
    })
    .unwrap();
    let manifest_descriptor = sha512(media::IMAGE_MANIFEST, &manifest);
    let blobs = HashMap::from([
        (layer_descriptor.digest, layer),
        (config_descriptor.digest, config),
        (manifest_descriptor.digest.clone(), manifest),
    ]);
    (manifest_descriptor, blobs)
}

/// A registry serving `blobs`, the manifest `served` also under the tag `1`.
fn serve(served: Descriptor, blobs: HashMap<Digest, Vec<u8>>) -> FakeRegistry {
    FakeRegistry::start(move |request| {
        let path = request.path.as_str();
        if path == "/v2/" {
            return FakeResponse::status(200);
        }
        let key = path.rsplit('/').next().unwrap_or_default();
        let digest = if key == "1" {
            served.digest.clone()
        } else {
            match key.parse::<Digest>() {
                Ok(digest) => digest,
                Err(_) => return FakeResponse::status(404),
            }
        };
        match blobs.get(&digest) {
            Some(bytes) if path.contains("/manifests/") => FakeResponse::bytes(
                200,
                [
                    ("content-type", media::IMAGE_MANIFEST.to_owned()),
                    ("docker-content-digest", digest.to_string()),
                ],
                bytes.clone(),
            ),
            Some(bytes) => FakeResponse::bytes(
                200,
                [("content-type", "application/octet-stream")],
                bytes.clone(),
            ),
            None => FakeResponse::status(404),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha512_pull_then_rm_other_image_keeps_names_and_blobs() {
    let (manifest, blobs) = wide_image();
    let fake = serve(manifest.clone(), blobs);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let other = write_skill(&dir.path().join("src"), "other");
    build_skill(&store, &other, "other:1");

    let client = Client::new(Credentials::empty(), fast_options()).unwrap();
    let pulled = client
        .pull(
            &store,
            &reference(&format!("{}/skills/wide:1", fake.host())),
            progress(),
        )
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, manifest.digest);

    store.remove(&reference("other:1")).unwrap();
    let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.key).collect();
    assert_eq!(names, std::slice::from_ref(&pulled.key));
    let image = skillport_oci::skill_image(&store, &pulled.descriptor).unwrap();
    let files = skillport_oci::list_files(&store, &image).unwrap();
    assert!(files.iter().any(|f| f.path == "SKILL.md"), "{files:?}");
}

/// A config the manifest embeds (as `build` writes it) is stored, or read, without being
/// asked for; other bytes of the same length under its digest are ignored and the config
/// downloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_config_is_used_only_when_it_checks_out() {
    use base64::Engine as _;
    for (what, honest) in [("its own bytes", true), ("other bytes", false)] {
        let (manifest, blobs) = wide_image_embedding(|config| {
            let mut embedded = config.to_vec();
            if !honest {
                embedded[0] ^= 1;
            }
            Some(base64::engine::general_purpose::STANDARD.encode(embedded))
        });
        let manifest_bytes = &blobs[&manifest.digest];
        let parsed: ImageManifest = serde_json::from_slice(manifest_bytes).unwrap();
        let config = parsed.config.digest.clone();
        let config_bytes = blobs[&config].clone();
        let fake = serve(manifest, blobs);
        let image = reference(&format!("{}/skills/wide:1", fake.host()));
        let asked = || {
            fake.requests()
                .iter()
                .filter(|request| request.path.ends_with(&config.to_string()))
                .count()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let client = Client::new(Credentials::empty(), fast_options()).unwrap();
        client.pull(&store, &image, progress()).await.unwrap();
        assert_eq!(asked(), usize::from(!honest), "pull, embedded {what}");
        assert_eq!(store.read_blob(&config).unwrap(), config_bytes, "{what}");
        // `skillport config`, `copy` and signature reads take a blob into memory.
        let read = client.blob(&image, &parsed.config, 1 << 20).await.unwrap();
        assert_eq!(read, config_bytes, "{what}");
        assert_eq!(asked(), 2 * usize::from(!honest), "read, embedded {what}");
    }
}
