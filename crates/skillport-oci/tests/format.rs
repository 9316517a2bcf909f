// The skill image format: determinism, structure, annotations, and builds that fail cleanly.

mod common;

use std::fs::{self, File, FileTimes};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{build_skill, snapshot, write_skill};
use skillport_oci::spec::{ImageConfig, ImageIndex, ImageManifest, annotation, media};
use skillport_oci::{BuildError, BuildRequest, LayerError, Reference, Store, build};
use skillport_skill::{Mode, load, walk};

/// Pinned: if this changes, every published skill's digest changes. That happens only when
/// the format changes on purpose (update it and say so) or when the gzip encoder in
/// Cargo.lock changes its output (pin the old one back). Last changed on purpose when the
/// manifests began to embed their config (`data`).
const GOLDEN_DIGEST: &str =
    "sha256:0cdc1502aad24c6636e99db8836d1a59d07edce0f0a5b986e23d499cff1422f2";

fn store_in(dir: &Path) -> Store {
    Store::open(&dir.join("store")).unwrap()
}

fn set_mtime_recursively(path: &Path, time: SystemTime) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            set_mtime_recursively(&entry.unwrap().path(), time);
        }
    }
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_modified(time))
        .unwrap();
}

#[test]
fn golden_digest_is_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_skill(tmp.path(), "csv-summary");
    let built = build_skill(&store_in(tmp.path()), &dir, "csv-summary:1.2.0", None);
    assert_eq!(built.digest().to_string(), GOLDEN_DIGEST);
}

#[test]
fn same_files_give_the_same_digest_whatever_the_path_mtime_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write_skill(&tmp.path().join("one"), "csv-summary");
    let b = write_skill(&tmp.path().join("two/deeper/path"), "csv-summary");
    set_mtime_recursively(&a, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    set_mtime_recursively(&b, SystemTime::now());
    // Other permission bits, same normalised class: private file, private folder, owner-only
    // executable.
    fs::set_permissions(b.join("SKILL.md"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(b.join("references"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(
        b.join("scripts/summarize.py"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();

    let store_a = store_in(&tmp.path().join("a"));
    let store_b = store_in(&tmp.path().join("b"));
    let first = build_skill(&store_a, &a, "csv-summary:1", None);
    let second = build_skill(&store_b, &b, "other-name:2", None);
    assert_eq!(first.digest(), second.digest());
    assert_eq!(first.layer, second.layer);
    // The store bytes are the same too (but index.json, which holds the names).
    let blobs = |root: &Path| {
        snapshot(root)
            .into_iter()
            .filter(|(path, _)| path.starts_with("blobs/"))
            .collect::<Vec<_>>()
    };
    assert_eq!(blobs(store_a.root()), blobs(store_b.root()));
}

#[test]
fn content_and_executable_bit_change_the_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = write_skill(tmp.path(), "csv-summary");
    let base = build_skill(&store, &dir, "csv-summary:a", None);

    fs::set_permissions(
        dir.join("scripts/summarize.py"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let not_executable = build_skill(&store, &dir, "csv-summary:b", None);
    assert_ne!(base.digest(), not_executable.digest());

    fs::write(dir.join("references/deep/notes.md"), "changed").unwrap();
    let changed = build_skill(&store, &dir, "csv-summary:c", None);
    assert_ne!(not_executable.digest(), changed.digest());
}

#[test]
fn source_date_epoch_sets_mtimes_and_created() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = write_skill(tmp.path(), "csv-summary");
    let plain = build_skill(&store, &dir, "csv-summary:plain", None);
    let dated = build_skill(&store, &dir, "csv-summary:dated", Some(1_700_000_000));
    let again = build_skill(&store, &dir, "csv-summary:again", Some(1_700_000_000));
    assert_ne!(plain.digest(), dated.digest());
    assert_eq!(dated.digest(), again.digest());
    assert_eq!(
        dated
            .annotations
            .get(annotation::CREATED)
            .map(String::as_str),
        Some("2023-11-14T22:13:20Z")
    );
    assert!(!plain.annotations.contains_key(annotation::CREATED));

    let mut archive = layer_archive(&store, &dated.layer.digest);
    for entry in archive.entries().unwrap() {
        assert_eq!(entry.unwrap().header().mtime().unwrap(), 1_700_000_000);
    }
}

fn layer_archive(
    store: &Store,
    digest: &skillport_oci::Digest,
) -> tar::Archive<flate2::read::GzDecoder<File>> {
    tar::Archive::new(flate2::read::GzDecoder::new(
        store.open_blob(digest).unwrap(),
    ))
}

#[test]
fn image_has_an_index_over_two_platforms_with_real_image_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = write_skill(tmp.path(), "csv-summary");
    let built = build_skill(&store, &dir, "csv-summary:1.2.0", None);
    assert_eq!(built.descriptor.media_type, media::IMAGE_INDEX);

    let index: ImageIndex = store.read_json("index", built.digest()).unwrap();
    let platforms: Vec<_> = index
        .manifests
        .iter()
        .map(|d| {
            let p = d.platform.as_ref().unwrap();
            format!("{}/{}", p.os, p.architecture)
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for descriptor in &index.manifests {
        assert_eq!(descriptor.media_type, media::IMAGE_MANIFEST);
        let manifest: ImageManifest = store.read_json("manifest", &descriptor.digest).unwrap();
        assert_eq!(manifest.config.media_type, media::IMAGE_CONFIG);
        assert_eq!(manifest.layers.len(), 1);
        assert_eq!(manifest.layers[0].media_type, media::LAYER_TAR_GZIP);
        assert_eq!(manifest.layers[0].digest, built.layer.digest);
        assert_eq!(manifest.annotations, built.annotations);
        let config: ImageConfig = store.read_json("config", &manifest.config.digest).unwrap();
        // The manifest embeds the config, byte for byte, and the store holds it as a blob too.
        assert_eq!(
            manifest.config.embedded().as_deref(),
            Some(&store.read_blob(&manifest.config.digest).unwrap()[..])
        );
        assert_eq!(config.rootfs.kind, "layers");
        assert_eq!(
            config.rootfs.diff_ids,
            std::slice::from_ref(&built.layer.diff_id)
        );
        let platform = descriptor.platform.as_ref().unwrap();
        assert_eq!(config.architecture, platform.architecture);
    }

    // The diff_id is the sha256 of the uncompressed layer.
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(store.open_blob(&built.layer.digest).unwrap())
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(
        skillport_oci::Digest::sha256(&tar_bytes),
        built.layer.diff_id
    );

    let a = &built.annotations;
    assert_eq!(a[annotation::SKILL_NAME], "csv-summary");
    assert_eq!(a[annotation::TITLE], "csv-summary");
    assert_eq!(a[annotation::VERSION], "1.2.0");
    assert_eq!(a[annotation::LICENSES], "Apache-2.0");
    assert_eq!(a[annotation::AUTHORS], "Test Author");
    assert!(a[annotation::DESCRIPTION].starts_with("Summarises CSV files."));
    assert!(
        !a.contains_key(annotation::SKILLIMAGE_STATUS),
        "no SkillCard, no io.skillimage.*"
    );
}

#[test]
fn layer_holds_the_files_at_its_root_sorted_and_normalised() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = write_skill(tmp.path(), "csv-summary");
    fs::write(dir.join(".hidden"), "x").unwrap();
    fs::create_dir(dir.join(".git")).unwrap();
    fs::write(dir.join(".git/HEAD"), "x").unwrap();
    let built = build_skill(&store, &dir, "csv-summary:1", None);

    let mut archive = layer_archive(&store, &built.layer.digest);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.uid().unwrap(), 0);
        assert_eq!(header.gid().unwrap(), 0);
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!(header.username().unwrap(), Some(""));
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mode = header.mode().unwrap();
        seen.push(format!("{path} {mode:o}"));
    }
    assert_eq!(
        seen,
        [
            "SKILL.md 644",
            "references 755",
            "references/data.bin 644",
            "references/deep 755",
            "references/deep/notes.md 644",
            "scripts 755",
            "scripts/summarize.py 755",
        ]
    );
    assert_eq!(built.layer.files, 4);
}

#[test]
fn skill_card_adds_skillimage_annotations_and_generated_card_is_in_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = write_skill(tmp.path(), "csv-summary");
    let skill = load(&dir, Mode::Strict).unwrap();
    let entries = walk(&dir).unwrap();
    let mut card = skillport_skill::SkillCard::from_frontmatter(
        &skill.frontmatter,
        &semver::Version::new(1, 2, 0),
        "data-team",
    );
    card.metadata.tags = vec!["csv".into(), "data".into()];
    let names = ["csv-summary:1.2.0".parse::<Reference>().unwrap()];
    let built = build(
        &store,
        &BuildRequest {
            skill: &skill,
            entries: &entries,
            generated_card: Some(&card),
            source_date_epoch: None,
            names: &names,
        },
        &mut |_| {},
    )
    .unwrap();
    let a = &built.annotations;
    assert_eq!(a[annotation::SKILLIMAGE_STATUS], "draft");
    assert_eq!(a[annotation::SKILLIMAGE_TAGS], r#"["csv","data"]"#);
    assert_eq!(a[annotation::VENDOR], "data-team");
    assert_eq!(a[annotation::SKILLIMAGE_WORDCOUNT], "6");
    assert_eq!(built.layer.files, 5);

    let mut archive = layer_archive(&store, &built.layer.digest);
    let card_entry = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap() == Path::new("skill.yaml"));
    let mut text = String::new();
    card_entry.unwrap().read_to_string(&mut text).unwrap();
    let parsed = skillport_skill::SkillCard::parse(&text, Path::new("skill.yaml")).unwrap();
    assert_eq!(parsed.metadata.namespace, "data-team");
}

#[test]
fn a_file_that_vanishes_mid_build_fails_it_and_leaves_the_store_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = write_skill(tmp.path(), "csv-summary");
    build_skill(&store, &dir, "csv-summary:kept", None);
    let before = snapshot(store.root());

    let skill = load(&dir, Mode::Strict).unwrap();
    let entries = walk(&dir).unwrap();
    fs::remove_file(dir.join("references/deep/notes.md")).unwrap();
    let names = ["csv-summary:new".parse::<Reference>().unwrap()];
    let request = BuildRequest {
        skill: &skill,
        entries: &entries,
        generated_card: None,
        source_date_epoch: None,
        names: &names,
    };
    let err = build(&store, &request, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, BuildError::Layer(LayerError::Read { path, .. }) if path.ends_with("references/deep/notes.md")),
        "{err:?}"
    );
    assert_eq!(snapshot(store.root()), before);
    assert_eq!(
        fs::read_dir(store.root().join(".skillport/tmp"))
            .unwrap()
            .count(),
        0,
        "temporary files are cleaned up"
    );

    // A file that changes size between the walk and the read fails the same way.
    fs::write(
        dir.join("references/deep/notes.md"),
        "longer than before, by far",
    )
    .unwrap();
    let err = build(&store, &request, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, BuildError::Layer(LayerError::Changed { .. })),
        "{err:?}"
    );
    assert_eq!(snapshot(store.root()), before);
}
