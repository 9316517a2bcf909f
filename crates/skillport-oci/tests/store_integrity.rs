// What the store checks when content arrives from outside (a pull): every blob against its
// descriptor's own algorithm and size, and every blob a new name needs at commit time.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use common::{build_skill, write_skill};
use flate2::Compression as Level;
use flate2::write::GzEncoder;
use skillport_oci::spec::{Descriptor, ImageConfig, ImageManifest, RootFs, media};
use skillport_oci::{Algorithm, Digest, Hasher, PendingBlob, Reference, Store, StoreError};

fn reference(text: &str) -> Reference {
    text.parse().unwrap()
}

fn digest(algorithm: Algorithm, bytes: &[u8]) -> Digest {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(bytes);
    hasher.finish()
}

fn descriptor(media_type: &str, algorithm: Algorithm, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest(algorithm, bytes),
        size: bytes.len() as u64,
        data: None,
        platform: None,
        artifact_type: None,
        annotations: BTreeMap::new(),
    }
}

fn layer_bytes(name: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let skill = format!("---\nname: {name}\ndescription: A skill.\n---\n");
    let mut header = tar::Header::new_ustar();
    header.set_size(skill.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "SKILL.md", skill.as_bytes())
        .unwrap();
    let mut gzip = GzEncoder::new(Vec::new(), Level::fast());
    gzip.write_all(&tar.into_inner().unwrap()).unwrap();
    gzip.finish().unwrap()
}

/// The documents of a one-manifest image over `layer`, every digest in `algorithm`:
/// `(config, manifest)` as `(descriptor, bytes)`.
fn image(algorithm: Algorithm, layer: &Descriptor) -> [(Descriptor, Vec<u8>); 2] {
    let config = serde_json::to_vec(&ImageConfig {
        created: None,
        architecture: "amd64".into(),
        os: "linux".into(),
        config: None,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.digest.clone()],
        },
    })
    .unwrap();
    let config_descriptor = descriptor(media::IMAGE_CONFIG, algorithm, &config);
    let manifest = serde_json::to_vec(&ImageManifest {
        schema_version: 2,
        media_type: Some(media::IMAGE_MANIFEST.into()),
        artifact_type: None,
        config: config_descriptor.clone(),
        layers: vec![layer.clone()],
        annotations: BTreeMap::new(),
        subject: None,
    })
    .unwrap();
    [
        (config_descriptor, config),
        (
            descriptor(media::IMAGE_MANIFEST, algorithm, &manifest),
            manifest,
        ),
    ]
}

fn pending(store: &Store, descriptor: &Descriptor, bytes: &[u8]) -> PendingBlob {
    store.expect_bytes(descriptor, bytes).unwrap()
}

/// The blobs of one image, staged: its layer, then the config and manifest [`image`] made.
fn pending_image(
    store: &Store,
    layer: &Descriptor,
    layer_bytes: &[u8],
    [config, manifest]: &[(Descriptor, Vec<u8>); 2],
) -> Vec<PendingBlob> {
    vec![
        pending(store, layer, layer_bytes),
        pending(store, &config.0, &config.1),
        pending(store, &manifest.0, &manifest.1),
    ]
}

fn names(store: &Store) -> Vec<String> {
    store.list().unwrap().into_iter().map(|i| i.key).collect()
}

/// Issue 7, finding 3: manifests were stored through a sha256-only writer while `index.json`
/// recorded their sha512 descriptor; removing any other image then failed half-way, dropping
/// names and leaking blobs.
#[test]
fn sha512_manifest_then_rm_other_image_keeps_names_and_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let other = write_skill(tmp.path(), "other");
    build_skill(&store, &other, "other:1", None);

    let layer = layer_bytes("wide");
    let layer_descriptor = descriptor(media::LAYER_TAR_GZIP, Algorithm::Sha512, &layer);
    let documents = image(Algorithm::Sha512, &layer_descriptor);
    let blobs = pending_image(&store, &layer_descriptor, &layer, &documents);
    let [_, manifest] = documents;
    store
        .commit(blobs, &[("wide:1".to_owned(), manifest.0.clone())])
        .unwrap();

    store.remove(&reference("other:1")).unwrap();
    assert_eq!(names(&store), ["wide:1"]);
    let image = skillport_oci::skill_image(&store, &manifest.0).unwrap();
    assert_eq!(image.layer.digest, layer_descriptor.digest);
    let files = skillport_oci::list_files(&store, &image).unwrap();
    assert_eq!(files[0].path, "SKILL.md");
    assert_eq!(store.read_blob(&layer_descriptor.digest).unwrap(), layer);
}

/// Issue 7, finding 4: `pull` decides outside the store lock that a blob is present; an `rm`
/// that collects it before the pull commits must make the commit fail, not leave a name that
/// points at nothing.
#[test]
fn blob_collected_between_has_blob_and_commit_fails_the_commit_and_records_no_name() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let dir = write_skill(tmp.path(), "shared");
    let built = build_skill(&store, &dir, "shared:1", None);
    let layer = skillport_oci::skill_image(&store, &built.descriptor)
        .unwrap()
        .layer;

    // A pull of another image over the same layer finds the layer present and skips it...
    assert!(store.contains(&layer));
    // ...while a concurrent `rm` collects it.
    store.remove(&reference("shared:1")).unwrap();

    let [config, manifest] = image(Algorithm::Sha256, &layer);
    let blobs = vec![
        pending(&store, &config.0, &config.1),
        pending(&store, &manifest.0, &manifest.1),
    ];
    let before = common::snapshot(store.root());
    let err = store
        .commit(blobs, &[("copy:1".to_owned(), manifest.0.clone())])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Incomplete { digest } if *digest == layer.digest),
        "{err}"
    );
    assert!(err.to_string().contains(&layer.digest.to_string()), "{err}");
    assert!(names(&store).is_empty());
    assert_eq!(common::snapshot(store.root()), before, "store unchanged");
}

#[test]
fn expect_blob_checks_digest_and_size_with_the_descriptors_algorithm() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let wide = descriptor(media::IMAGE_CONFIG, Algorithm::Sha512, b"{}");
    let blob = store.expect_bytes(&wide, b"{}").unwrap();
    assert_eq!(blob.digest(), &wide.digest);
    store.commit(vec![blob], &[]).unwrap();
    assert!(store.contains(&wide));
    assert_eq!(store.read_blob(&wide.digest).unwrap(), b"{}");

    let err = store.expect_bytes(&wide, b"[]").unwrap_err();
    assert!(
        matches!(&err, StoreError::WrongContent { expected, .. } if *expected == wide.digest),
        "{err}"
    );
    let mut short = wide.clone();
    short.size = 3;
    let err = store.expect_bytes(&short, b"{}").unwrap_err();
    assert!(
        matches!(err, StoreError::WrongSize { found: 2, .. }),
        "{err}"
    );

    // A download that starts over keeps only what came after the restart.
    let mut writer = store.expect_blob(&wide).unwrap();
    writer.write_all(b"garbage").unwrap();
    writer.restart().unwrap();
    writer.write_all(b"{}").unwrap();
    assert_eq!(writer.finish().unwrap().size(), 2);
}

/// Issue 7, finding 10: a crash before blobs were synced could leave an empty blob that
/// `has_blob` trusted, so every later pull skipped it.
#[test]
fn empty_blob_left_by_a_crash_is_not_trusted_and_is_replaced_on_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let layer = layer_bytes("crashed");
    let layer_descriptor = descriptor(media::LAYER_TAR_GZIP, Algorithm::Sha256, &layer);
    let path = store.blob_path(&layer_descriptor.digest);
    std::fs::write(&path, b"").unwrap();
    assert!(!store.contains(&layer_descriptor));

    let documents = image(Algorithm::Sha256, &layer_descriptor);
    let blobs = pending_image(&store, &layer_descriptor, &layer, &documents);
    let [_, manifest] = documents;
    store
        .commit(blobs, &[("crashed:1".to_owned(), manifest.0.clone())])
        .unwrap();
    assert!(store.contains(&layer_descriptor));
    assert_eq!(std::fs::read(&path).unwrap(), layer);
}

/// A name's descriptor may come from a registry's index with the manifest embedded in it
/// (`data`, up to a manifest's size): the store's index.json names the image without it.
#[test]
fn a_name_is_recorded_without_embedded_data() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let layer = layer_bytes("embedded");
    let layer_descriptor = descriptor(media::LAYER_TAR_GZIP, Algorithm::Sha256, &layer);
    let documents = image(Algorithm::Sha256, &layer_descriptor);
    let blobs = pending_image(&store, &layer_descriptor, &layer, &documents);
    let [_, manifest] = documents;
    let named = Descriptor {
        data: Some(base64::engine::general_purpose::STANDARD.encode(&manifest.1)),
        ..manifest.0.clone()
    };
    assert!(named.embedded().is_some());
    store
        .commit(blobs, &[("embedded:1".to_owned(), named)])
        .unwrap();
    let index = std::fs::read_to_string(tmp.path().join("s/index.json")).unwrap();
    assert!(!index.contains("\"data\""), "{index}");
    let stored = store.resolve(&reference("embedded:1")).unwrap();
    assert_eq!(stored.descriptor.data, None);
    assert_eq!(stored.descriptor.digest, manifest.0.digest);
}
