//! Independent clients on both sides of the real registry: skopeo (Debian) reads what we push
//! and pushes what we pull, over TLS with basic auth; oras (the oras-py SDK, PyPI, in the test
//! virtualenv) pushes an agentskills-proposal artifact that we pull and export, and pulls what
//! we push.
//!
//! oras-py works against a plain-HTTP registry without login and fails against login + TLS
//! (see shared/TESTING.md), so the oras tests use `Registry::plain()`. A missing peer tool
//! fails the test with a message saying how to install it; nothing is skipped.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{blob_names, build_skill, client_for, progress, reference, snapshot, write_skill};
use skillport_oci::spec::{ImageIndex, media};
use skillport_oci::{Digest, Store, skill_image};
use skillport_testkit::{Registry, skopeo, venv_tool, write_tiny_image};

const PUSH_AGENTSKILL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/oras/push_agentskill.py"
);

/// `python -c ORAS_PULL TARGET OUTDIR`: oras-py pulls over plain HTTP, prints the file count.
const ORAS_PULL: &str = "import sys\nfrom oras.client import OrasClient\n\
    files = OrasClient(insecure=True).pull(target=sys.argv[1], outdir=sys.argv[2])\n\
    print(len(files))\n";

#[track_caller]
fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("running {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Files and their content (no modes: peers unpack with their own umask).
fn contents(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    snapshot(dir)
        .into_iter()
        .map(|(path, content, _)| (path, content))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// skopeo

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_inspects_and_copies_what_we_push() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let client = client_for(&registry, &work.path().join("auth"));
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(&work.path().join("src"), "csv-summary");
    let built = build_skill(&store, &skill, "csv-summary:1.0.0");
    let remote = format!("{}/skills/csv-summary:1.0.0", registry.host());
    client
        .push(
            &store,
            &reference("csv-summary:1.0.0"),
            &reference(&remote),
            progress(),
        )
        .await
        .unwrap();

    // The raw index, byte for byte.
    let raw = run(skopeo()
        .arg("inspect")
        .arg("--raw")
        .args(registry.skopeo_flags(""))
        .arg(format!("docker://{remote}")))
    .stdout;
    assert_eq!(raw, store.read_blob(built.digest()).unwrap());

    // skopeo's own reading: the digest, the platform, the one layer.
    let inspected: serde_json::Value = serde_json::from_slice(
        &run(skopeo()
            .arg("inspect")
            .args(registry.skopeo_flags(""))
            .arg("--override-os=linux")
            .arg("--override-arch=amd64")
            .arg(format!("docker://{remote}")))
        .stdout,
    )
    .unwrap();
    assert_eq!(inspected["Digest"], built.digest().to_string());
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(
        inspected["Layers"],
        serde_json::json!([built.layer.digest.to_string()])
    );
    let tags: serde_json::Value = serde_json::from_slice(
        &run(skopeo()
            .arg("list-tags")
            .args(registry.skopeo_flags(""))
            .arg(format!("docker://{}/skills/csv-summary", registry.host())))
        .stdout,
    )
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["1.0.0"]));

    // Both platforms into an OCI layout: the same index, the same layer bytes.
    let layout = work.path().join("copied");
    run(skopeo()
        .arg("copy")
        .arg("--all")
        .arg("--preserve-digests")
        .args(registry.skopeo_flags("src-"))
        .arg(format!("docker://{remote}"))
        .arg(format!("oci:{}:copied", layout.display())));
    let copied = Store::open(&layout).unwrap();
    let images = copied.list().unwrap();
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0].key, "copied");
    assert_eq!(&images[0].descriptor.digest, built.digest());
    assert_eq!(
        std::fs::read(copied.blob_path(&built.layer.digest)).unwrap(),
        store.read_blob(&built.layer.digest).unwrap()
    );
    assert_eq!(blob_names(&copied), blob_names(&store));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_pull_what_skopeo_pushes_from_our_store() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(&work.path().join("src"), "via-skopeo");
    let built = build_skill(&store, &skill, "via-skopeo:2.0.0");
    let remote = format!("{}/skills/via-skopeo:2.0.0", registry.host());
    // Our store is an OCI image layout skopeo reads as it is.
    run(skopeo()
        .arg("copy")
        .arg("--all")
        .arg("--preserve-digests")
        .args(registry.skopeo_flags("dest-"))
        .arg(format!("oci:{}:via-skopeo:2.0.0", store.root().display()))
        .arg(format!("docker://{remote}")));

    let client = client_for(&registry, &work.path().join("auth"));
    assert_eq!(
        &client.resolve(&reference(&remote)).await.unwrap().digest,
        built.digest()
    );
    let pulled_store = Store::open(&work.path().join("pulled")).unwrap();
    let pulled = client
        .pull(&pulled_store, &reference(&remote), progress())
        .await
        .unwrap();
    assert_eq!(&pulled.descriptor.digest, built.digest());
    let dest = work.path().join("out/via-skopeo");
    client
        .export(&reference(&remote), &dest, progress())
        .await
        .unwrap();
    assert_eq!(snapshot(&dest), snapshot(&skill));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_pull_a_plain_image_skopeo_pushes() {
    // Written by the testkit without our code, so neither side of this test is ours but the pull.
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let tiny = write_tiny_image(&layout, "1", b"hello from skopeo\n");
    let remote = format!("{}/tiny/hello:1", registry.host());
    run(skopeo()
        .arg("copy")
        .arg("--preserve-digests")
        .args(registry.skopeo_flags("dest-"))
        .arg(format!("oci:{}:1", layout.display()))
        .arg(format!("docker://{remote}")));

    let client = client_for(&registry, &work.path().join("auth"));
    let resolved = client.resolve(&reference(&remote)).await.unwrap();
    assert_eq!(resolved.digest.to_string(), tiny.manifest_digest);
    assert_eq!(resolved.media_type, media::IMAGE_MANIFEST);
    let store = Store::open(&work.path().join("store")).unwrap();
    let pulled = client
        .pull(&store, &reference(&remote), progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest.to_string(), tiny.manifest_digest);
    let layer: Digest = tiny.layer_digest.parse().unwrap();
    assert_eq!(store.read_blob(&layer).unwrap(), tiny.layer);
    let dest = work.path().join("out/hello");
    let exported = client
        .export(&reference(&remote), &dest, progress())
        .await
        .unwrap();
    assert_eq!(exported.layer, layer);
    assert_eq!(
        std::fs::read(dest.join("hello.txt")).unwrap(),
        b"hello from skopeo\n"
    );
}

// ---------------------------------------------------------------------------------------------
// oras (plain registry: oras-py fails against login + TLS)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_pull_and_export_an_agentskills_artifact_pushed_by_oras() {
    let registry = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let skill = write_skill(&work.path().join("src"), "oras-skill");
    let remote = format!("{}/skills/oras-skill:0.1.0", registry.host());
    let oras_work = work.path().join("oras");
    std::fs::create_dir_all(&oras_work).unwrap();
    let output = run(Command::new(venv_tool("python"))
        .arg(PUSH_AGENTSKILL)
        .arg(&remote)
        .arg(&skill)
        .arg(&oras_work));
    let digest: Digest = String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .expect("the script prints the manifest digest");

    let client = client_for(&registry, &work.path().join("auth"));
    let resolved = client.resolve(&reference(&remote)).await.unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.media_type, media::IMAGE_MANIFEST);
    let fetched = client.fetch_manifest(&reference(&remote)).await.unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&fetched.bytes).unwrap();
    assert_eq!(manifest["artifactType"], media::AGENTSKILLS_ARTIFACT);
    assert_eq!(manifest["config"]["mediaType"], media::AGENTSKILLS_CONFIG);
    assert_eq!(manifest["layers"][0]["mediaType"], media::AGENTSKILLS_LAYER);

    // Straight to a folder: the `<name>/` prefix is stripped, files land at the root.
    let dest = work.path().join("out/direct/oras-skill");
    client
        .export(&reference(&remote), &dest, progress())
        .await
        .unwrap();
    assert_eq!(contents(&dest), contents(&skill));
    assert!(!dest.join("oras-skill").exists());

    // Into the store, then out of it: the same files.
    let store = Store::open(&work.path().join("store")).unwrap();
    let pulled = client
        .pull(&store, &reference(&remote), progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, digest);
    let image = skill_image(&store, &pulled.descriptor).unwrap();
    assert!(image.format.in_folder);
    let from_store = work.path().join("out/store/oras-skill");
    skillport_oci::export(&store, &image, &from_store).unwrap();
    assert_eq!(contents(&from_store), contents(&skill));

    // By digest too.
    let by_digest = reference(&format!("{}/skills/oras-skill@{digest}", registry.host()));
    let dest = work.path().join("out/by-digest/oras-skill");
    client.export(&by_digest, &dest, progress()).await.unwrap();
    assert_eq!(contents(&dest), contents(&skill));

    // Our push keeps the artifact as it is (artifactType, custom config and layer types), so
    // oras pulls it back from another registry. oras-py saves a layer of a type it does not
    // know as a file named by its title annotation, without unpacking it.
    let other = Registry::plain();
    let copy = reference(&format!("{}/mirror/oras-skill:0.1.0", other.host()));
    let pushed = client
        .push(&store, &reference(&remote), &copy, progress())
        .await
        .unwrap();
    assert_eq!(pushed, digest);
    let oras_out = work.path().join("oras-out");
    run(Command::new(venv_tool("python"))
        .arg("-c")
        .arg(ORAS_PULL)
        .arg(copy.to_string())
        .arg(&oras_out));
    assert_eq!(
        std::fs::read(oras_out.join("oras-skill")).unwrap(),
        std::fs::read(store.blob_path(&image.layer.digest)).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_pulls_what_we_push() {
    let registry = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(&work.path().join("src"), "for-oras");
    let built = build_skill(&store, &skill, "for-oras:1");
    let remote = format!("{}/skills/for-oras:1", registry.host());
    client_for(&registry, &work.path().join("auth"))
        .push(
            &store,
            &reference("for-oras:1"),
            &reference(&remote),
            progress(),
        )
        .await
        .unwrap();

    // oras-py's pull reads only `layers` of what it fetches, so an index yields nothing: it is
    // pointed at the linux/amd64 manifest by digest. Our layer is OCI tar+gzip, which oras-py
    // treats as a packed folder and unpacks into the output folder.
    let index: ImageIndex = store.read_json("index", built.digest()).unwrap();
    let amd64 = skillport_oci::pick_manifest(&index).unwrap();
    let out = work.path().join("oras-out");
    let output = run(Command::new(venv_tool("python"))
        .arg("-c")
        .arg(ORAS_PULL)
        .arg(format!(
            "{}/skills/for-oras@{}",
            registry.host(),
            amd64.digest
        ))
        .arg(&out));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1");
    assert_eq!(contents(&out), contents(&skill));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_pull_a_docker_manifest_list_skopeo_converts_our_image_to() {
    // Docker schema 2 media types (manifest list, manifest, config, rootfs.diff.tar.gzip), as
    // older registries and tools still write them.
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(&work.path().join("src"), "docker-format");
    build_skill(&store, &skill, "docker-format:1");
    let remote = format!("{}/skills/docker-format:1", registry.host());
    run(skopeo()
        .arg("copy")
        .arg("--all")
        .arg("--format=v2s2")
        .args(registry.skopeo_flags("dest-"))
        .arg(format!("oci:{}:docker-format:1", store.root().display()))
        .arg(format!("docker://{remote}")));

    let client = client_for(&registry, &work.path().join("auth"));
    let fetched = client.fetch_manifest(&reference(&remote)).await.unwrap();
    assert_eq!(fetched.descriptor.media_type, media::DOCKER_MANIFEST_LIST);
    let pulled_store = Store::open(&work.path().join("pulled")).unwrap();
    let pulled = client
        .pull(&pulled_store, &reference(&remote), progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, fetched.descriptor.digest);
    let image = skill_image(&pulled_store, &pulled.descriptor).unwrap();
    assert_eq!(image.layer.media_type, media::DOCKER_LAYER_TAR_GZIP);
    let dest = work.path().join("out/docker-format");
    client
        .export(&reference(&remote), &dest, progress())
        .await
        .unwrap();
    assert_eq!(snapshot(&dest), snapshot(&skill));
}
