//! Independent clients on both sides of the real registry: skopeo (Debian) reads what we push
//! and pushes what we pull, over TLS with basic auth; crane (go-containerregistry, what kagent's
//! init containers pulled with) pulls, exports and flattens what we push, and we pull what it
//! pushes, a multi-layer image included; the oras CLI pushes an agentskills-proposal artifact
//! that we pull and export, and copies what we push — crane and oras over TLS with basic auth
//! too. (These replace the oras-py tests, which could only use a plain registry: oras-py fails
//! against login + TLS. oras-py stays in the test virtualenv for the pull benchmark.)
//!
//! crane and oras are the Go binaries `scripts/k8s-tools.sh` builds. A missing peer tool fails
//! the test with a message saying how to install or build it; nothing is skipped.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{
    blob_names, build_skill, client_for, fast_options, progress, reference, snapshot, write_skill,
};
use skillport_oci::spec::media;
use skillport_oci::{Digest, Store, skill_image};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions};
use skillport_testkit::{Registry, k8s_tool, skopeo, write_tiny_image};

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
// crane and the oras CLI (Go), over TLS with basic auth

/// `crane` with the registry's credentials (`DOCKER_CONFIG`) and CA (`SSL_CERT_FILE`, read by
/// Go's TLS); never the user's own login.
fn crane(registry: &Registry, work: &Path) -> Command {
    let mut command = Command::new(k8s_tool("crane"));
    command.env(
        "DOCKER_CONFIG",
        registry
            .docker_config(&work.join("crane-auth"))
            .parent()
            .unwrap(),
    );
    if let Some(ca) = registry.ca_file() {
        command.env("SSL_CERT_FILE", ca);
    }
    command
}

/// `oras SUBCOMMAND…` with the registry's credentials (`--registry-config`) and CA
/// (`--ca-file`); never the user's own login.
fn oras(registry: &Registry, work: &Path, subcommand: &[&str]) -> Command {
    let mut command = Command::new(k8s_tool("oras"));
    command
        .args(subcommand)
        .arg("--registry-config")
        .arg(registry.docker_config(&work.join("oras-auth")));
    if let Some(ca) = registry.ca_file() {
        command.arg("--ca-file").arg(ca);
    } else {
        command.arg("--plain-http");
    }
    command
}

/// Untars `tar` into a new folder `dest` with GNU tar.
fn untar(tar: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    run(Command::new("tar").arg("-xf").arg(tar).arg("-C").arg(dest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crane_pulls_exports_and_flattens_what_we_push() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(&work.path().join("src"), "for-crane");
    let built = build_skill(&store, &skill, "for-crane:1");
    let remote = format!("{}/skills/for-crane:1", registry.host());
    client_for(&registry, &work.path().join("auth"))
        .push(
            &store,
            &reference("for-crane:1"),
            &reference(&remote),
            progress(),
        )
        .await
        .unwrap();

    // The same index, byte for byte, under the same digest.
    let digest = run(crane(&registry, work.path()).args(["digest", &remote])).stdout;
    assert_eq!(
        String::from_utf8(digest).unwrap().trim(),
        built.digest().to_string()
    );
    let manifest = run(crane(&registry, work.path()).args(["manifest", &remote])).stdout;
    assert_eq!(manifest, store.read_blob(built.digest()).unwrap());

    // `crane export` (kagent's init containers: `crane export REF - | tar -x`) gives the skill's
    // files at the root.
    let exported = work.path().join("export.tar");
    run(crane(&registry, work.path())
        .args(["export", "--platform", "linux/amd64", &remote])
        .arg(&exported));
    let out = work.path().join("out/export");
    untar(&exported, &out);
    assert_eq!(contents(&out), contents(&skill));

    // `crane pull` into an OCI layout of its own: every blob we pushed verifies.
    let layout = work.path().join("crane-layout");
    run(crane(&registry, work.path())
        .args(["pull", "--format", "oci", &remote])
        .arg(&layout));
    assert!(layout.join("index.json").is_file());

    // `crane flatten` squashes each platform's image into a new one; its export is the same.
    let flat = format!("{}/skills/for-crane:flat", registry.host());
    run(crane(&registry, work.path()).args(["flatten", &remote, "-t", &flat]));
    let flat_tar = work.path().join("flat.tar");
    run(crane(&registry, work.path())
        .args(["export", "--platform", "linux/arm64", &flat])
        .arg(&flat_tar));
    let out = work.path().join("out/flat");
    untar(&flat_tar, &out);
    assert_eq!(contents(&out), contents(&skill));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_pull_what_crane_pushes_one_layer_and_many() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let skill = write_skill(&work.path().join("src"), "from-crane");
    let client = client_for(&registry, &work.path().join("auth"));

    // One layer: the skill's files at the root, on an empty base.
    let all = work.path().join("all.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&all)
        .arg("-C")
        .arg(&skill)
        .arg("."));
    let one = format!("{}/skills/from-crane:one", registry.host());
    run(crane(&registry, work.path())
        .args(["append", "--oci-empty-base", "-f"])
        .arg(&all)
        .args(["-t", &one]));
    let crane_digest = run(crane(&registry, work.path()).args(["digest", &one])).stdout;
    let store = Store::open(&work.path().join("store")).unwrap();
    let pulled = client
        .pull(&store, &reference(&one), progress())
        .await
        .unwrap();
    assert_eq!(
        pulled.descriptor.digest.to_string(),
        String::from_utf8(crane_digest).unwrap().trim()
    );
    let dest = work.path().join("out/one/from-crane");
    client
        .export(&reference(&one), &dest, progress())
        .await
        .unwrap();
    assert_eq!(contents(&dest), contents(&skill));

    // Two layers (SKILL.md, then the rest): we pull every blob under crane's digest; a skill
    // image has one layer, so export refuses it and says so; crane flatten makes it one.
    let first = work.path().join("first.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&first)
        .arg("-C")
        .arg(&skill)
        .arg("SKILL.md"));
    let rest = work.path().join("rest.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&rest)
        .arg("-C")
        .arg(&skill)
        .args(["scripts", "references"]));
    let many = format!("{}/skills/from-crane:many", registry.host());
    run(crane(&registry, work.path())
        .args(["append", "--oci-empty-base", "-f"])
        .arg(&first)
        .args(["-t", &many]));
    run(crane(&registry, work.path())
        .args(["append", "-f"])
        .arg(&rest)
        .args(["-b", &many, "-t", &many]));
    let crane_digest = run(crane(&registry, work.path()).args(["digest", &many])).stdout;
    let pulled = client
        .pull(&store, &reference(&many), progress())
        .await
        .unwrap();
    assert_eq!(
        pulled.descriptor.digest.to_string(),
        String::from_utf8(crane_digest).unwrap().trim()
    );
    let layers = run(crane(&registry, work.path()).args(["manifest", &many])).stdout;
    let layers: serde_json::Value = serde_json::from_slice(&layers).unwrap();
    let layers = layers["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for layer in layers {
        let digest: Digest = layer["digest"].as_str().unwrap().parse().unwrap();
        assert!(store.blob_path(&digest).is_file(), "layer {digest} pulled");
    }
    let refused = client
        .export(
            &reference(&many),
            &work.path().join("out/many/from-crane"),
            progress(),
        )
        .await
        .expect_err("a two-layer image is not a skill image");
    eprintln!("two layers: {refused:#}");

    let flat = format!("{}/skills/from-crane:flat", registry.host());
    run(crane(&registry, work.path()).args(["flatten", &many, "-t", &flat]));
    let dest = work.path().join("out/flat/from-crane");
    client
        .export(&reference(&flat), &dest, progress())
        .await
        .unwrap();
    assert_eq!(contents(&dest), contents(&skill));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_pull_and_export_an_agentskills_artifact_pushed_by_the_oras_cli() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let skill = write_skill(&src, "oras-skill");
    let remote = format!("{}/skills/oras-skill:0.1.0", registry.host());
    // `oras push` of a folder packs it as tar+gzip with its files under `<name>/`, and marks
    // the layer with its title and `io.deis.oras.content.unpack`: the proposal's layout.
    let config = work.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"name":"oras-skill","description":"pushed by the oras CLI"}"#,
    )
    .unwrap();
    let output = run(oras(&registry, work.path(), &["push"])
        .current_dir(&src)
        .args(["--artifact-type", media::AGENTSKILLS_ARTIFACT])
        .arg("--config")
        .arg(format!(
            "{}:{}",
            config.display(),
            media::AGENTSKILLS_CONFIG
        ))
        .args(["--annotation", "io.agentskills.skill.name=oras-skill"])
        .arg(&remote)
        .arg(format!("oras-skill:{}", media::AGENTSKILLS_LAYER)));
    let said = String::from_utf8(output.stdout).unwrap();
    let digest: Digest = said
        .lines()
        .find_map(|line| line.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("oras push prints the manifest digest: {said}"))
        .trim()
        .parse()
        .unwrap();

    let client = client_for(&registry, &work.path().join("auth"));
    let resolved = client.resolve(&reference(&remote)).await.unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.media_type, media::IMAGE_MANIFEST);
    let fetched = client.fetch_manifest(&reference(&remote)).await.unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&fetched.bytes).unwrap();
    assert_eq!(manifest["artifactType"], media::AGENTSKILLS_ARTIFACT);
    assert_eq!(manifest["config"]["mediaType"], media::AGENTSKILLS_CONFIG);
    assert_eq!(manifest["layers"][0]["mediaType"], media::AGENTSKILLS_LAYER);
    assert_eq!(
        manifest["layers"][0]["annotations"]["io.deis.oras.content.unpack"],
        "true"
    );

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

    // Our push keeps the artifact as it is (artifactType, custom config and layer types,
    // annotations), so `oras pull` from another TLS + auth registry unpacks the folder again.
    let other = Registry::tls_basic_auth();
    let copy = reference(&format!("{}/mirror/oras-skill:0.1.0", other.host()));
    // One client for both registries: both CAs, both logins.
    let both = Client::new(
        Credentials::from_files(vec![
            AuthFile::read(&registry.docker_config(&work.path().join("auth-a"))).unwrap(),
            AuthFile::read(&other.docker_config(&work.path().join("auth-b"))).unwrap(),
        ]),
        ClientOptions {
            ca_files: vec![
                registry.ca_file().unwrap().to_path_buf(),
                other.ca_file().unwrap().to_path_buf(),
            ],
            ..fast_options()
        },
    )
    .unwrap();
    let pushed = both
        .push(&store, &reference(&remote), &copy, progress())
        .await
        .unwrap();
    assert_eq!(pushed, digest);
    let oras_out = work.path().join("oras-out");
    std::fs::create_dir_all(&oras_out).unwrap();
    let other_work = work.path().join("other");
    run(oras(&other, &other_work, &["pull"])
        .arg("--output")
        .arg(&oras_out)
        .arg(copy.to_string()));
    assert_eq!(contents(&oras_out.join("oras-skill")), contents(&skill));
}

/// What the ORAS CLI does with our image: it resolves the index to the platform's manifest and
/// saves only layers named by `org.opencontainers.image.title`; ours has none, so nothing is
/// saved. Giving our layer a title plus oras' unpack marker would not help: oras extracts such a
/// layer under `<title>/` and refuses entries outside it ("SKILL.md" is outside of "NAME"), and
/// our files are at the layer root, where the kubelet mounts them. A title alone would save the
/// gzip blob as a file. So `oras pull` is not how to get our skill folder; `oras copy` and
/// `oras manifest fetch` work, and `skillport export` or `crane export` unpack it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oras_cli_copies_our_image_and_its_pull_saves_no_files() {
    let registry = Registry::tls_basic_auth();
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

    let fetched = run(oras(&registry, work.path(), &["manifest", "fetch"]).arg(&remote));
    assert_eq!(fetched.stdout, store.read_blob(built.digest()).unwrap());

    let out = work.path().join("oras-out");
    std::fs::create_dir_all(&out).unwrap();
    let pulled = run(oras(&registry, work.path(), &["pull"])
        .args(["--platform", "linux/amd64", "--output"])
        .arg(&out)
        .arg(&remote));
    let said = String::from_utf8_lossy(&pulled.stdout).into_owned()
        + &String::from_utf8_lossy(&pulled.stderr);
    assert!(
        said.contains("Skipped pulling layers without file name"),
        "{said}"
    );
    assert!(std::fs::read_dir(&out).unwrap().next().is_none(), "{said}");
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
