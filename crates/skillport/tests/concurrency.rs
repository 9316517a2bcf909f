// Several `skillport` processes on one store at once: builds of different skills, builds of
// the same skill under one name, and `rm` while others build. Afterwards every name is
// listed, every blob hashes to its file name (checked by sha256sum), skopeo reads every
// image, and nothing is left in the store's scratch folder.
//
// The processes are started together and simply run to the end: no test waits for another
// process to reach some state, so nothing here depends on timing to pass.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::{
    Rng, Sandbox, assert_blobs_match_their_names, assert_no_temporary_files, digest_line, path_str,
    skopeo, spawn, write_minimal_skill,
};

/// A skill of about 3 MB: text that compresses and random bytes that do not.
fn big_skill(parent: &Path, name: &str, seed: u64) -> PathBuf {
    let dir = write_minimal_skill(parent, name);
    let mut rng = Rng::new(seed);
    fs::create_dir_all(dir.join("references")).unwrap();
    fs::create_dir_all(dir.join("assets")).unwrap();
    fs::write(dir.join("references/one.md"), rng.text(1 << 20)).unwrap();
    fs::write(dir.join("references/two.md"), rng.text(1 << 20)).unwrap();
    fs::write(dir.join("assets/blob.bin"), rng.bytes(1 << 20)).unwrap();
    dir
}

/// Runs `skillport build DIR -t NAME:1` for every skill at once; returns the digests.
fn build_all_at_once(sandbox: &Sandbox, skills: &[(String, PathBuf)]) -> Vec<String> {
    let running: Vec<_> = skills
        .iter()
        .map(|(name, dir)| {
            spawn(sandbox.skillport(&["build", path_str(dir), "-t", &format!("{name}:1")]))
        })
        .collect();
    running
        .into_iter()
        .map(|process| digest_line(&process.wait().success()))
        .collect()
}

/// Names in the store, from `images --json`, with their digests.
fn listed(sandbox: &Sandbox) -> Vec<(String, String)> {
    let images = sandbox.ok(&["images", "--json"]).json();
    images
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            (
                image["reference"].as_str().unwrap().to_owned(),
                image["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every check that a store is whole: blobs hash to their names, every listed image reads
/// (`inspect` opens its index, manifest, config and layer), skopeo reads it, and no
/// temporary files are left behind.
fn assert_store_is_whole(sandbox: &Sandbox) {
    let blobs = assert_blobs_match_their_names(&sandbox.store());
    for (reference, digest) in listed(sandbox) {
        let inspected = sandbox.inspect(&reference);
        for key in ["manifest", "config", "layer"] {
            let blob = inspected[key]["digest"].as_str().unwrap();
            assert!(blobs.contains(blob), "{reference}: {key} {blob} is missing");
        }
        let run = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{reference}", sandbox.store().display()),
        ])
        .success();
        assert!(
            run.stdout
                .contains("\"application/vnd.oci.image.index.v1+json\""),
            "{reference} ({digest}) as skopeo sees it:\n{run}"
        );
    }
    assert_no_temporary_files(&sandbox.store());
}

#[test]
fn six_builds_of_different_skills_into_one_store_at_once() {
    let sandbox = Sandbox::new();
    // Open the store first: creating a new store concurrently is its own test below.
    sandbox.ok(&["images"]);
    let skills: Vec<(String, PathBuf)> = (0..6)
        .map(|i| {
            let name = format!("skill-{i}");
            let dir = big_skill(&sandbox.join("src"), &name, i);
            (name, dir)
        })
        .collect();

    let digests = build_all_at_once(&sandbox, &skills);

    let expected: Vec<(String, String)> = skills
        .iter()
        .zip(&digests)
        .map(|((name, _), digest)| (format!("{name}:1"), digest.clone()))
        .collect();
    assert_eq!(
        listed(&sandbox),
        expected,
        "every build is listed, with its digest"
    );
    let distinct: BTreeSet<&String> = digests.iter().collect();
    assert_eq!(distinct.len(), 6, "six different skills, six images");
    assert_store_is_whole(&sandbox);
}

#[test]
fn rm_while_others_build() {
    let sandbox = Sandbox::new();
    let victim = big_skill(&sandbox.join("src"), "victim", 100);
    let victim_digest = sandbox.build(&victim, "victim:1");
    let victim_layer = sandbox.inspect("victim:1")["layer"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let skills: Vec<(String, PathBuf)> = (0..5)
        .map(|i| {
            let name = format!("other-{i}");
            let dir = big_skill(&sandbox.join("src"), &name, 200 + i);
            (name, dir)
        })
        .collect();

    let builds: Vec<_> = skills
        .iter()
        .map(|(name, dir)| {
            spawn(sandbox.skillport(&["build", path_str(dir), "-t", &format!("{name}:1")]))
        })
        .collect();
    let removal = spawn(sandbox.skillport(&["rm", "victim:1"]));
    let removed = removal.wait().success();
    assert!(removed.stdout.contains("removed victim:1"), "{removed}");
    let digests: Vec<String> = builds
        .into_iter()
        .map(|process| digest_line(&process.wait().success()))
        .collect();

    let names: Vec<(String, String)> = listed(&sandbox);
    let expected: Vec<(String, String)> = skills
        .iter()
        .zip(&digests)
        .map(|((name, _), digest)| (format!("{name}:1"), digest.clone()))
        .collect();
    assert_eq!(names, expected, "victim gone, every build listed");
    for blob in [&victim_digest, &victim_layer] {
        assert!(
            !sandbox.blob(blob).exists(),
            "{blob} of the removed image should have been deleted"
        );
    }
    assert_store_is_whole(&sandbox);
}

#[test]
fn the_same_skill_built_at_once_under_one_name_is_listed_once() {
    let sandbox = Sandbox::new();
    sandbox.ok(&["images"]);
    let dir = big_skill(&sandbox.join("src"), "twin", 7);
    let skills: Vec<(String, PathBuf)> = (0..4).map(|_| ("twin".into(), dir.clone())).collect();
    let digests = build_all_at_once(&sandbox, &skills);
    assert!(
        digests.iter().all(|d| d == &digests[0]),
        "same files, same digest: {digests:?}"
    );
    assert_eq!(
        listed(&sandbox),
        [("twin:1".to_owned(), digests[0].clone())]
    );
    assert_store_is_whole(&sandbox);
}

// Pins a bug in `Store::open` (crates/skillport-oci/src/store.rs, `open`/`create`): two
// processes that open a store that does not exist yet race. The first creates `blobs/` and
// `.skillport/` before it writes `oci-layout`; the second, finding no `oci-layout` in a
// folder that is no longer empty, fails with "not an OCI image layout". Six tiny builds in
// three fresh stores make the race all but certain while the bug is there.
#[test]
fn builds_into_a_store_that_does_not_exist_yet_all_succeed() {
    let sandbox = Sandbox::new();
    let skills: Vec<PathBuf> = (0..6)
        .map(|i| write_minimal_skill(&sandbox.join("src"), &format!("tiny-{i}")))
        .collect();
    for round in 0..3 {
        let store = sandbox.join(&format!("fresh-{round}"));
        let running: Vec<_> = skills
            .iter()
            .map(|dir| spawn(sandbox.bare(&["--store", path_str(&store), "build", path_str(dir)])))
            .collect();
        for process in running {
            process.wait().success();
        }
        let blobs = assert_blobs_match_their_names(&store);
        assert!(!blobs.is_empty());
    }
}
