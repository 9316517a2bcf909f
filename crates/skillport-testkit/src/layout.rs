//! A tiny OCI image written by hand into an OCI image layout, for peer clients to push
//! (`skopeo copy oci:LAYOUT:TAG docker://…`). Independent of `skillport-oci` on purpose: a test
//! that pushes with a peer and pulls with our client must not use our code on both sides.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// What [`write_tiny_image`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TinyImage {
    /// `sha256:…` of the manifest: the image digest.
    pub manifest_digest: String,
    pub manifest: Vec<u8>,
    pub config_digest: String,
    pub config: Vec<u8>,
    /// `sha256:…` of the gzip layer as stored and pushed.
    pub layer_digest: String,
    pub layer: Vec<u8>,
    /// `sha256:…` of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
}

/// Adds a linux/amd64 OCI image tagged `tag` to the OCI image layout at `layout` (created if
/// missing; other tags are kept). Its one `tar+gzip` layer holds `hello.txt` with `contents`.
/// Same `contents`, same digests.
pub fn write_tiny_image(layout: &Path, tag: &str, contents: &[u8]) -> TinyImage {
    let tar = tar_with_one_file("hello.txt", contents);
    let diff_id = digest(&tar);
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(&tar).expect("gzip into memory");
    let layer = encoder.finish().expect("gzip into memory");
    let layer_digest = digest(&layer);

    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))
    .expect("JSON");
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))
    .expect("JSON");
    let manifest_digest = digest(&manifest);

    let blobs = layout.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).unwrap_or_else(|err| panic!("creating {}: {err}", blobs.display()));
    for (digest, bytes) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        let path = blobs.join(digest.trim_start_matches("sha256:"));
        fs::write(&path, bytes).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
    }
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("writing oci-layout");
    add_to_index(layout, tag, &manifest_digest, manifest.len());

    TinyImage {
        manifest_digest,
        manifest,
        config_digest,
        config,
        layer_digest,
        layer,
        diff_id,
    }
}

/// Points `tag` at the manifest in `index.json`, replacing an older entry for the same tag.
fn add_to_index(layout: &Path, tag: &str, manifest_digest: &str, size: usize) {
    let path = layout.join("index.json");
    let mut index: Value = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display())),
        Err(_) => json!({ "schemaVersion": 2, "manifests": [] }),
    };
    let manifests = index["manifests"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("{} has no manifests array", path.display()));
    manifests.retain(|entry| {
        entry["annotations"]["org.opencontainers.image.ref.name"].as_str() != Some(tag)
    });
    manifests.push(json!({
        "mediaType": MANIFEST_MEDIA_TYPE,
        "digest": manifest_digest,
        "size": size,
        "annotations": { "org.opencontainers.image.ref.name": tag },
    }));
    fs::write(&path, serde_json::to_vec(&index).expect("JSON"))
        .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

fn tar_with_one_file(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(contents.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, name, contents)
        .expect("tar into memory");
    builder.into_inner().expect("tar into memory")
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
