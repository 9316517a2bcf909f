// `--platform` on `inspect`, `export` and `pull`, with an image whose platforms carry different
// skills (skill images carry the same layer under every platform; foreign images need not).

mod common;

use std::fs;

use common::{Sandbox, write_minimal_skill};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use skillport_testkit::Registry;

/// The digest of each platform's manifest in the stored index `digest`.
fn platform_manifests(sandbox: &Sandbox, digest: &str) -> Vec<Value> {
    let index: Value = serde_json::from_slice(&fs::read(sandbox.blob(digest)).unwrap()).unwrap();
    index["manifests"].as_array().unwrap().clone()
}

/// Writes `mixed:1` into the sandbox's store: an index whose linux/amd64 and linux/s390x entries
/// are `amd`'s manifest and whose linux/arm64/v8 entry is `arm`'s.
fn write_mixed_index(sandbox: &Sandbox, amd: &Value, arm: &Value) -> String {
    let mut s390x = amd.clone();
    s390x["platform"] = json!({"architecture": "s390x", "os": "linux"});
    let mut arm64 = arm.clone();
    arm64["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [amd, arm64, s390x],
    }))
    .unwrap();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&index)));
    fs::write(sandbox.blob(&digest), &index).unwrap();
    let layout = sandbox.store().join("index.json");
    let mut top: Value = serde_json::from_slice(&fs::read(&layout).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": digest,
        "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "mixed:1"},
    }));
    fs::write(&layout, serde_json::to_vec(&top).unwrap()).unwrap();
    digest
}

#[test]
fn platform_picks_the_manifest_locally_and_from_a_registry() {
    let sandbox = Sandbox::new();
    let amd_digest = sandbox.build(&write_minimal_skill(sandbox.path(), "on-amd"), "on-amd:1");
    let arm_digest = sandbox.build(&write_minimal_skill(sandbox.path(), "on-arm"), "on-arm:1");
    let amd = platform_manifests(&sandbox, &amd_digest)[0].clone();
    let arm = platform_manifests(&sandbox, &arm_digest)[1].clone();
    assert_eq!(arm["platform"]["architecture"], "arm64");
    write_mixed_index(&sandbox, &amd, &arm);

    // Locally: the default is linux/amd64; --platform reads another, a variant matches.
    let title = |inspected: &Value| inspected["manifest"]["digest"].clone();
    assert_eq!(title(&sandbox.inspect("mixed:1")), amd["digest"]);
    let on_arm = sandbox
        .ok(&["inspect", "mixed:1", "--platform", "linux/arm64", "--json"])
        .json();
    assert_eq!(title(&on_arm), arm["digest"]);
    sandbox.ok(&["export", "mixed:1", "arm", "--platform", "linux/arm64/v8"]);
    assert!(
        fs::read_to_string(sandbox.join("arm/SKILL.md"))
            .unwrap()
            .contains("name: on-arm")
    );
    let missing = sandbox
        .run(&["inspect", "mixed:1", "--platform", "linux/ppc64le"])
        .failure();
    assert!(
        missing.error().contains(
            "no linux/ppc64le manifest (it has linux/amd64, linux/arm64/v8, linux/s390x); pass \
             --platform with one of them"
        ),
        "{missing}"
    );
    let bad = sandbox.run(&["inspect", "mixed:1", "--platform", "arm64"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error\n{bad}");
    assert!(bad.stderr.contains("write os/arch"), "{bad}");

    // From a registry: inspect and export read the platform asked for; pull --platform stores
    // that manifest alone, as the image.
    let registry = Registry::plain();
    let remote = format!("{}/skills/mixed:1", registry.host());
    sandbox.ok(&["push", "mixed:1", &remote]);
    let inspected = sandbox
        .ok(&["inspect", &remote, "--platform", "linux/arm64", "--json"])
        .json();
    assert_eq!(title(&inspected), arm["digest"]);
    sandbox.ok(&["export", &remote, "remote-arm", "--platform", "linux/arm64"]);
    assert!(
        fs::read_to_string(sandbox.join("remote-arm/SKILL.md"))
            .unwrap()
            .contains("name: on-arm")
    );
    let other = Sandbox::new();
    let pulled = other
        .ok(&["pull", &remote, "--platform", "linux/arm64", "--json"])
        .json();
    assert_eq!(pulled["digest"], arm["digest"], "{pulled}");
    assert_eq!(
        pulled["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let listed = other.ok(&["images", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert!(
        !other.blob(amd["digest"].as_str().unwrap()).exists(),
        "the other platforms' manifests are not fetched"
    );
    let refused = other
        .run(&["pull", &remote, "--platform", "windows/amd64"])
        .failure();
    assert!(
        refused.error().contains("no windows/amd64 manifest"),
        "{refused}"
    );
}
