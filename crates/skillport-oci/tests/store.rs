// The local store: names, garbage collection, concurrent writers, refusing foreign folders.

mod common;

use std::fs;
use std::thread;

use common::{build_skill, write_skill};
use skillport_oci::{Digest, Reference, Store, StoreError};

fn reference(text: &str) -> Reference {
    text.parse().unwrap()
}

fn blob_count(store: &Store) -> usize {
    fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count()
}

#[test]
fn new_store_is_an_oci_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let layout = fs::read_to_string(store.root().join("oci-layout")).unwrap();
    assert_eq!(layout, r#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(store.root().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], serde_json::json!([]));
    // Opening again keeps it.
    Store::open(store.root()).unwrap();
}

#[test]
fn refuses_a_folder_that_is_not_a_layout() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotALayout { .. }), "{err}");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "nothing written"
    );
}

#[test]
fn tag_resolve_and_remove_collect_only_unreferenced_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let one = write_skill(&tmp.path().join("a"), "one");
    let two = write_skill(&tmp.path().join("b"), "two");
    let first = build_skill(&store, &one, "one:1", None);
    build_skill(&store, &two, "two:1", None);
    store
        .tag(&reference("one:1"), &reference("one:latest"))
        .unwrap();
    let before = blob_count(&store);

    let by_digest = store
        .resolve(&reference(&format!("one@{}", first.digest())))
        .unwrap();
    assert_eq!(&by_digest.descriptor.digest, first.digest());
    assert!(matches!(
        store.resolve(&reference(&format!("two@{}", first.digest()))),
        Err(StoreError::NotFound { .. })
    ));

    let removed = store.remove(&reference("one:1")).unwrap();
    assert_eq!(removed.blobs, 0, "one:latest still needs every blob");
    assert_eq!(blob_count(&store), before);

    let removed = store.remove(&reference("one:latest")).unwrap();
    // index + 2 manifests + 2 configs + layer; skill "two" shares none of them.
    assert_eq!(removed.blobs, 6);
    assert_eq!(blob_count(&store), before - 6);
    assert!(!store.blob_path(&first.layer.digest).exists());
    let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.key).collect();
    assert_eq!(names, ["two:1"]);
    assert!(matches!(
        store.remove(&reference("one:1")),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn identical_skills_share_blobs_and_rebuilds_replace_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let dir = write_skill(tmp.path(), "one");
    build_skill(&store, &dir, "one:1", None);
    let count = blob_count(&store);
    build_skill(&store, &dir, "one:2", None);
    assert_eq!(blob_count(&store), count, "same content, same blobs");

    fs::write(dir.join("references/deep/notes.md"), "new notes").unwrap();
    let rebuilt = build_skill(&store, &dir, "one:2", None);
    let images = store.list().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(
        &store
            .resolve(&reference("one:2"))
            .unwrap()
            .descriptor
            .digest,
        rebuilt.digest()
    );
}

#[test]
fn concurrent_builds_and_removes_leave_a_consistent_store() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s");
    Store::open(&root).unwrap();
    let keep = write_skill(&tmp.path().join("keep"), "keep");
    build_skill(&Store::open(&root).unwrap(), &keep, "keep:1", None);

    let handles: Vec<_> = (0..6)
        .map(|i| {
            let root = root.clone();
            let parent = tmp.path().join(format!("src{i}"));
            thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                let dir = write_skill(&parent, &format!("skill-{i}"));
                fs::write(
                    dir.join("references/unique.txt"),
                    format!("{i}").repeat(100_000),
                )
                .unwrap();
                for round in 0..3 {
                    build_skill(&store, &dir, &format!("skill-{i}:{round}"), None);
                }
                store.remove(&reference(&format!("skill-{i}:0"))).unwrap();
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }

    let store = Store::open(&root).unwrap();
    let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.key).collect();
    assert_eq!(names.len(), 1 + 6 * 2, "{names:?}");
    for image in store.list().unwrap() {
        let resolved = skillport_oci::skill_image(&store, &image.descriptor).unwrap();
        skillport_oci::list_files(&store, &resolved).unwrap();
    }
    for blob in fs::read_dir(root.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        let digest: Digest = format!("sha256:{}", blob.file_name().to_string_lossy())
            .parse()
            .unwrap();
        assert_eq!(
            Digest::sha256(&fs::read(blob.path()).unwrap()),
            digest,
            "blob content matches its name"
        );
    }
}

#[test]
fn image_tree_reads_every_manifest_and_lists_each_blob_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("s")).unwrap();
    let dir = write_skill(tmp.path(), "one");
    let built = build_skill(&store, &dir, "one:1", None);
    let tree = skillport_oci::ImageTree::read(&store, &built.descriptor).unwrap();
    assert_eq!(tree.manifests().len(), 2, "linux/amd64 and linux/arm64");
    assert!(tree.wanted().is_empty());
    // Two configs (one per platform) and the one shared layer.
    let blobs = tree.blobs();
    assert_eq!(blobs.len(), 3);
    assert_eq!(
        blobs
            .iter()
            .filter(|b| b.digest == built.layer.digest)
            .count(),
        1
    );
    let documents: Vec<_> = tree
        .documents()
        .iter()
        .map(|d| d.descriptor.digest.clone())
        .collect();
    assert_eq!(documents.len(), 3);
    assert_eq!(
        documents.last(),
        Some(built.digest()),
        "the index goes last"
    );
    let amd64 = tree
        .pick(&skillport_oci::spec::Platform::skill_default())
        .unwrap();
    assert_eq!(amd64.platform.as_ref().unwrap().architecture, "amd64");
    assert_eq!(
        &skillport_oci::skill_image(&store, &built.descriptor)
            .unwrap()
            .manifest_descriptor,
        amd64
    );
}
