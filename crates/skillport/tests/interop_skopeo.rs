// Interoperability with independent tools: skopeo (Debian) reads the store as an OCI image
// layout and copies images out of it; GNU tar and gzip read the layer; and skillport reads
// back the layouts skopeo writes. umoci is not used here: 0.4.7 refuses references such as
// `my-skill:0.1.0` ("tag is ambiguous").

mod common;

use std::fs;
use std::path::Path;

use common::{
    Node, PRIVATE_MODES, SAMPLE_ENTRIES, Sandbox, assert_same_tree, path_str, run, sh, skopeo,
    tool, tree, write_sample_skill,
};
use serde_json::Value;

const REF: &str = "my-skill:0.1.0";

/// A sandbox with the sample skill built as `my-skill:0.1.0`; returns the digest.
fn built(sandbox: &Sandbox) -> String {
    let dir = write_sample_skill(&sandbox.join("src"), "my-skill", PRIVATE_MODES);
    sandbox.build(&dir, REF)
}

fn oci(store: &Path, reference: &str) -> String {
    format!("oci:{}:{reference}", store.display())
}

#[test]
fn skopeo_inspect_reads_the_image_from_the_store() {
    let sandbox = Sandbox::new();
    let digest = built(&sandbox);
    let ours = sandbox.inspect(REF);

    let run = skopeo(&["inspect", &oci(&sandbox.store(), REF)]).success();
    let theirs = run.json();
    assert_eq!(theirs["Digest"], digest.as_str(), "{run}");
    assert_eq!(theirs["Os"], "linux", "{run}");
    assert_eq!(theirs["Architecture"], "amd64", "{run}");
    assert_eq!(
        theirs["Layers"],
        serde_json::json!([ours["layer"]["digest"]]),
        "{run}"
    );
    let labels = &theirs["Labels"];
    assert_eq!(labels["io.agentskills.skill.name"], "my-skill", "{run}");
    assert_eq!(labels["org.opencontainers.image.version"], "1.2.0", "{run}");

    // The arm64 manifest has the same layer.
    let run = skopeo(&[
        "--override-arch",
        "arm64",
        "inspect",
        &oci(&sandbox.store(), REF),
    ])
    .success();
    let arm = run.json();
    assert_eq!(arm["Architecture"], "arm64", "{run}");
    assert_eq!(arm["Layers"], theirs["Layers"], "{run}");
}

#[test]
fn skopeo_sees_an_index_over_amd64_and_arm64_and_a_config_with_the_layer_diff_id() {
    let sandbox = Sandbox::new();
    built(&sandbox);
    let ours = sandbox.inspect(REF);

    let run = skopeo(&["inspect", "--raw", &oci(&sandbox.store(), REF)]).success();
    let index = run.json();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{run}"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(
                m["mediaType"], "application/vnd.oci.image.manifest.v1+json",
                "{run}"
            );
            format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"]).replace('"', "")
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{run}");

    // diff_id is the digest of the uncompressed tar: check it with gzip and sha256sum.
    let run = skopeo(&["inspect", "--config", &oci(&sandbox.store(), REF)]).success();
    let config = run.json();
    assert_eq!(config["rootfs"]["type"], "layers", "{run}");
    let layer_blob = sandbox.blob(ours["layer"]["digest"].as_str().unwrap());
    let unzipped = sh("gzip -dc \"$1\" | sha256sum", &[path_str(&layer_blob)]).success();
    let diff_id = format!(
        "sha256:{}",
        unzipped.stdout.split_whitespace().next().unwrap()
    );
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([diff_id]),
        "config from skopeo:\n{run}"
    );
}

#[test]
fn skopeo_copy_to_a_dir_round_trips_the_files() {
    let sandbox = Sandbox::new();
    built(&sandbox);
    let dir = sandbox.join("copied");
    skopeo(&[
        "copy",
        "-q",
        &oci(&sandbox.store(), REF),
        &format!("dir:{}", dir.display()),
    ])
    .success();

    let manifest: Value =
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    let hex = layers[0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();

    let unpacked = sandbox.join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let mut tar = tool("tar", "tar");
    tar.arg("-xzf").arg(dir.join(hex)).arg("-C").arg(&unpacked);
    run(tar).success();
    assert_same_tree(&tree(&unpacked), &tree(&sandbox.join("src/my-skill")));
}

/// One line of `tar -tvz --numeric-owner --full-time`.
struct Listed {
    mode: String,
    owner: String,
    time: String,
    name: String,
}

fn tar_listing(blob: &Path) -> Vec<Listed> {
    let mut tar = tool("tar", "tar");
    tar.args(["-tvz", "--numeric-owner", "--full-time", "-f"])
        .arg(blob);
    let run = run(tar).success();
    assert!(run.stderr.is_empty(), "GNU tar complained:\n{run}");
    run.stdout
        .lines()
        .map(|line| {
            // drwxr-xr-x 0/0   0 1970-01-01 00:00:00 references
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 6, "unexpected tar line {line:?}");
            Listed {
                mode: fields[0].to_owned(),
                owner: fields[1].to_owned(),
                time: format!("{} {}", fields[3], fields[4]),
                name: fields[5].to_owned(),
            }
        })
        .collect()
}

#[test]
fn gnu_tar_lists_the_layer_sorted_root_owned_with_normalised_modes() {
    let sandbox = Sandbox::new();
    built(&sandbox);
    let ours = sandbox.inspect(REF);
    let blob = sandbox.blob(ours["layer"]["digest"].as_str().unwrap());

    let mut gzip = tool("gzip", "gzip");
    gzip.arg("-t").arg(&blob);
    run(gzip).success();

    let listed = tar_listing(&blob);
    let names: Vec<&str> = listed.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, SAMPLE_ENTRIES, "entries, in this order");
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "entries are sorted");
    for entry in &listed {
        assert_eq!(entry.owner, "0/0", "{} is owned by uid/gid 0", entry.name);
        assert_eq!(
            entry.time, "1970-01-01 00:00:00",
            "{} has mtime 0",
            entry.name
        );
        let expected = match entry.name.as_str() {
            "alias.md" => "lrwxrwxrwx",
            "assets" | "references" | "references/empty" | "scripts" => "drwxr-xr-x",
            "scripts/run.sh" => "-rwxr-xr-x",
            _ => "-rw-r--r--",
        };
        assert_eq!(
            entry.mode, expected,
            "mode of {} (written with 0600/0700)",
            entry.name
        );
    }
}

#[test]
fn skillport_reads_the_layouts_skopeo_writes() {
    let sandbox = Sandbox::new();
    let digest = built(&sandbox);
    let source = tree(&sandbox.join("src/my-skill"));

    // With --all and --preserve-digests skopeo copies the index itself: the same digest.
    let copy = sandbox.join("copy-all");
    skopeo(&[
        "copy",
        "-q",
        "--all",
        "--preserve-digests",
        &oci(&sandbox.store(), REF),
        &oci(&copy, REF),
    ])
    .success();
    let listed = run(sandbox.bare(&["--store", path_str(&copy), "images", "--json"]))
        .success()
        .json();
    assert_eq!(listed[0]["digest"], digest.as_str(), "{listed}");

    // Without --all skopeo writes one platform's manifest, no index: still a skill image.
    let copy = sandbox.join("copy-one");
    skopeo(&["copy", "-q", &oci(&sandbox.store(), REF), &oci(&copy, REF)]).success();
    let inspected = run(sandbox.bare(&["--store", path_str(&copy), "inspect", REF, "--json"]))
        .success()
        .json();
    assert_eq!(
        inspected["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{inspected}"
    );
    let out = sandbox.join("exported");
    run(sandbox.bare(&["--store", path_str(&copy), "export", REF, path_str(&out)])).success();
    assert_same_tree(&tree(&out), &source);
    assert!(
        matches!(
            tree(&out).get("scripts/run.sh"),
            Some(Node::File {
                executable: true,
                ..
            })
        ),
        "the executable stays executable"
    );
}
