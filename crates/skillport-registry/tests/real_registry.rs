//! The client against the real CNCF distribution registry (skillport-testkit) on 127.0.0.1:
//! plain HTTP, htpasswd basic auth, and TLS from a test CA with basic auth. Push, resolve, list
//! tags, pull (by tag and digest), export, chunked uploads, cross-repository mounts, concurrent
//! pulls, and two registries with two pull-secret files at once.

mod common;

use common::{
    blob_names, build_skill, client_for, credentials_for, fast_options, incompressible, progress,
    reference, snapshot, write_skill,
};
use skillport_oci::spec::media;
use skillport_oci::{Reference, Store, skill_image};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions};
use skillport_testkit::{Registry, RegistryOptions};

/// Build, push, resolve, tag, list, pull (tag and digest) and export against `registry`.
async fn round_trip(registry: &Registry) {
    let work = tempfile::tempdir().unwrap();
    let client = client_for(registry, &work.path().join("auth"));
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(&work.path().join("src"), "csv-summary");
    let built = build_skill(&store, &skill, "csv-summary:1.2.0");
    let local = reference("csv-summary:1.2.0");
    let host = registry.host();
    let remote = reference(&format!("{host}/skills/csv-summary:1.2.0"));

    let pushed = client
        .push(&store, &local, &remote, progress())
        .await
        .unwrap();
    assert_eq!(&pushed, built.digest(), "push returns the image digest");

    let resolved = client.resolve(&remote).await.unwrap();
    assert_eq!(resolved.digest, pushed);
    assert_eq!(resolved.media_type, media::IMAGE_INDEX);
    assert_eq!(resolved.size, built.descriptor.size);
    let fetched = client.fetch_manifest(&remote).await.unwrap();
    assert_eq!(fetched.descriptor.digest, pushed);
    assert_eq!(fetched.bytes, store.read_blob(&pushed).unwrap());

    for tag in ["1", "1.2", "latest"] {
        let other = reference(&format!("{host}/skills/csv-summary:{tag}"));
        assert_eq!(
            client
                .push(&store, &local, &other, progress())
                .await
                .unwrap(),
            pushed
        );
    }
    let mut tags = client.list_tags(&remote).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1", "1.2", "1.2.0", "latest"]);

    // Into a fresh store: the same digest, every blob of both platforms, the same files.
    let pulled_store = Store::open(&work.path().join("pulled")).unwrap();
    let pulled = client
        .pull(&pulled_store, &remote, progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, pushed);
    assert_eq!(pulled.key, remote.store_key());
    assert_eq!(blob_names(&pulled_store), blob_names(&store));
    assert_eq!(
        pulled_store.resolve(&remote).unwrap().descriptor.digest,
        pushed
    );
    let image = skill_image(&pulled_store, &pulled.descriptor).unwrap();
    let out = work.path().join("out/from-store/csv-summary");
    skillport_oci::export(&pulled_store, &image, &out).unwrap();
    assert_eq!(snapshot(&out), snapshot(&skill));

    // By digest.
    let by_digest = reference(&format!("{host}/skills/csv-summary@{pushed}"));
    assert_eq!(client.resolve(&by_digest).await.unwrap().digest, pushed);
    let digest_store = Store::open(&work.path().join("by-digest")).unwrap();
    let pulled = client
        .pull(&digest_store, &by_digest, progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, pushed);
    assert_eq!(pulled.key, by_digest.store_key());
    assert_eq!(blob_names(&digest_store), blob_names(&store));

    pull_unpacking(&client, &remote, &store, &built, &skill, work.path()).await;

    // Straight from the registry into a folder.
    let dest = work.path().join("out/direct/csv-summary");
    let exported = client.export(&remote, &dest, progress()).await.unwrap();
    assert_eq!(exported.digest, pushed);
    assert_eq!(exported.layer, built.layer.digest);
    assert_eq!(exported.unpacked.files, 3);
    assert_eq!(snapshot(&dest), snapshot(&skill));
    let siblings: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        siblings,
        ["csv-summary"],
        "no staging folder or download left"
    );
}

/// Pulled and unpacked on the way, from one download: the store as a pull leaves it, and the
/// staged folder as export leaves it, with its tree hashed while it was written.
async fn pull_unpacking(
    client: &Client,
    remote: &Reference,
    store: &Store,
    built: &skillport_oci::Built,
    skill: &std::path::Path,
    work: &std::path::Path,
) {
    let pushed = built.digest().clone();
    let tee_store = Store::open(&work.join("tee")).unwrap();
    let parent = work.join("out/tee");
    std::fs::create_dir_all(&parent).unwrap();
    let requests = [(remote.clone(), Some(parent.clone()))];
    let (stored, mut unpacked) = client
        .pull_all_unpacking(&tee_store, &requests, progress())
        .await
        .unwrap();
    // The manifest the skill is read from (linux/amd64), its config and the layer: what an
    // install needs, not the other platform's manifest and config.
    let image = skill_image(store, &built.descriptor).unwrap();
    assert_eq!(
        stored[0].descriptor.digest,
        image.manifest_descriptor.digest
    );
    assert_eq!(
        stored[0].descriptor.annotations[skillport_oci::spec::annotation::FROM_INDEX],
        pushed.to_string()
    );
    assert_eq!(
        blob_names(&tee_store).len(),
        4,
        "the index, the manifest, its config, the layer"
    );
    // The image's own digest still finds it.
    let pinned = reference(&format!("{}@{pushed}", remote.name()));
    assert_eq!(
        tee_store.resolve(&pinned).unwrap().descriptor.digest,
        image.manifest_descriptor.digest
    );
    let unpacking = unpacked.remove(0).expect("the layer was downloaded here");
    assert_eq!(unpacking.layer, built.layer.digest);
    assert_eq!(
        unpacking.staged.unpacked().tree_hash(),
        skillport_oci::tree_hash::tree_hash(unpacking.staged.path()).unwrap()
    );
    // A name that claims another index is not believed: that index must list the manifest.
    let layout = work.join("tee/index.json");
    let original = std::fs::read_to_string(&layout).unwrap();
    let layer = built.layer.digest.to_string();
    std::fs::write(&layout, original.replace(&pushed.to_string(), &layer)).unwrap();
    let forged = reference(&format!("{}@{layer}", remote.name()));
    assert!(tee_store.resolve(&forged).is_err());
    std::fs::write(&layout, original).unwrap();
    let teed = parent.join("csv-summary");
    unpacking.staged.publish(&teed).unwrap();
    assert_eq!(snapshot(&teed), snapshot(skill));
    // With the layer in the store already, nothing is downloaded and nothing staged.
    let (_, unpacked) = client
        .pull_all_unpacking(&tee_store, &requests, progress())
        .await
        .unwrap();
    assert!(unpacked[0].is_none());
    assert_eq!(
        std::fs::read_dir(&parent).unwrap().count(),
        1,
        "no staging left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_a_plain_registry() {
    round_trip(&Registry::plain()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_a_basic_auth_registry() {
    round_trip(&Registry::basic_auth()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_on_a_tls_registry_with_basic_auth() {
    round_trip(&Registry::tls_basic_auth()).await;
}

/// Where the registry keeps upload sessions for a repository: a push that uploads creates it;
/// one that only finds or mounts blobs does not.
fn uploads_dir(registry: &Registry, repository: &str) -> std::path::PathBuf {
    registry
        .storage_root()
        .join("docker/registry/v2/repositories")
        .join(repository)
        .join("_uploads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_again_uploads_no_blob() {
    let registry = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let client = client_for(&registry, work.path());
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(work.path(), "again");
    build_skill(&store, &skill, "again:1");
    let remote = reference(&format!("{}/skills/again:1", registry.host()));
    client
        .push(&store, &reference("again:1"), &remote, progress())
        .await
        .unwrap();
    let uploads = uploads_dir(&registry, "skills/again");
    assert!(
        uploads.is_dir(),
        "the first push uploaded: {}",
        uploads.display()
    );
    std::fs::remove_dir_all(&uploads).unwrap();

    let again = reference(&format!("{}/skills/again:2", registry.host()));
    client
        .push(&store, &reference("again:1"), &again, progress())
        .await
        .unwrap();
    assert!(
        !uploads.exists(),
        "the second push started an upload although the registry had every blob"
    );
    let mut tags = client.list_tags(&remote).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_over_8_mib_is_uploaded_in_chunks_and_comes_back_intact() {
    let registry = Registry::basic_auth();
    let work = tempfile::tempdir().unwrap();
    let client = client_for(&registry, &work.path().join("auth"));
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(&work.path().join("src"), "big-data");
    std::fs::write(
        skill.join("references/random.bin"),
        incompressible(9 << 20, 7),
    )
    .unwrap();
    let built = build_skill(&store, &skill, "big-data:1");
    assert!(
        built.layer.size > 8 << 20,
        "the layer must exceed the 8 MiB chunk: {}",
        built.layer.size
    );
    let remote = reference(&format!("{}/skills/big-data:1", registry.host()));
    client
        .push(&store, &reference("big-data:1"), &remote, progress())
        .await
        .unwrap();
    let stored = std::fs::read(registry.blob_file(&built.layer.digest.to_string())).unwrap();
    assert_eq!(
        stored,
        store.read_blob(&built.layer.digest).unwrap(),
        "the registry holds the layer byte for byte"
    );

    let dest = work.path().join("out/big-data");
    let exported = client.export(&remote, &dest, progress()).await.unwrap();
    assert_eq!(exported.layer, built.layer.digest);
    assert_eq!(snapshot(&dest), snapshot(&skill));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_to_another_repository_of_the_same_registry_mounts_the_blobs() {
    let registry = Registry::basic_auth();
    let work = tempfile::tempdir().unwrap();
    let client = client_for(&registry, &work.path().join("auth"));
    let source = Store::open(&work.path().join("source")).unwrap();
    let skill = write_skill(work.path(), "mounted");
    build_skill(&source, &skill, "mounted:1");
    let host = registry.host();
    let a = reference(&format!("{host}/a/mounted:1"));
    let digest = client
        .push(&source, &reference("mounted:1"), &a, progress())
        .await
        .unwrap();

    // Pull `host/a/mounted:1` into a store, then push that name to `host/b/mounted:1`.
    let store = Store::open(&work.path().join("store")).unwrap();
    client.pull(&store, &a, progress()).await.unwrap();
    let b = reference(&format!("{host}/b/mounted:1"));
    assert_eq!(
        client.push(&store, &a, &b, progress()).await.unwrap(),
        digest
    );
    assert!(
        !uploads_dir(&registry, "b/mounted").exists(),
        "blobs were uploaded to b/mounted instead of mounted from a/mounted"
    );

    let check = Store::open(&work.path().join("check")).unwrap();
    let pulled = client.pull(&check, &b, progress()).await.unwrap();
    assert_eq!(pulled.descriptor.digest, digest);
    assert_eq!(blob_names(&check), blob_names(&source));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_list_holds_every_tag() {
    // distribution 2.8 answers the whole list in one page (it ignores `n`); paging over
    // `Link` headers is covered against the fake registry in hostile.rs.
    let registry = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let client = client_for(&registry, work.path());
    let store = Store::open(&work.path().join("store")).unwrap();
    let skill = write_skill(work.path(), "many-tags");
    build_skill(&store, &skill, "many-tags:1");
    let mut expected = Vec::new();
    for i in 0..25 {
        let tag = format!("v{i:02}");
        let remote = reference(&format!("{}/many-tags:{tag}", registry.host()));
        client
            .push(&store, &reference("many-tags:1"), &remote, progress())
            .await
            .unwrap();
        expected.push(tag);
    }
    let mut tags = client
        .list_tags(&reference(&format!("{}/many-tags", registry.host())))
        .await
        .unwrap();
    tags.sort();
    assert_eq!(tags, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_skills_pulled_at_once_into_one_store() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let client = client_for(&registry, &work.path().join("auth"));
    let source = Store::open(&work.path().join("source")).unwrap();
    let mut remotes: Vec<(Reference, skillport_oci::Digest)> = Vec::new();
    for i in 0..10 {
        let name = format!("skill-{i}");
        let skill = write_skill(&work.path().join("src"), &name);
        let built = build_skill(&source, &skill, &format!("{name}:1"));
        let remote = reference(&format!("{}/skills/{name}:1", registry.host()));
        client
            .push(
                &source,
                &reference(&format!("{name}:1")),
                &remote,
                progress(),
            )
            .await
            .unwrap();
        remotes.push((remote, built.digest().clone()));
    }

    let store = Store::open(&work.path().join("store")).unwrap();
    let pulls = remotes
        .iter()
        .map(|(remote, _)| client.pull(&store, remote, progress()));
    let pulled = futures_util::future::join_all(pulls).await;
    for ((remote, digest), result) in remotes.iter().zip(pulled) {
        let image = result.unwrap_or_else(|err| panic!("{remote}: {err}"));
        assert_eq!(&image.descriptor.digest, digest);
        assert_eq!(&store.resolve(remote).unwrap().descriptor.digest, digest);
    }
    assert_eq!(store.list().unwrap().len(), 10);
    assert_eq!(blob_names(&store), blob_names(&source));
    let tmp: Vec<_> = std::fs::read_dir(store.root().join(".skillport/tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
}

/// Two registries, two users and passwords, two pull-secret-style files merged into one
/// `Credentials`, one client: each registry gets its own password, whichever file comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_pulls_from_two_registries_with_two_secret_files() {
    let first = Registry::start(RegistryOptions {
        tls: false,
        basic_auth: Some(("alice".into(), "alice-NEVER-PRINT-1".into())),
        ..RegistryOptions::default()
    });
    let second = Registry::start(RegistryOptions {
        tls: true,
        basic_auth: Some(("bob".into(), "bob-NEVER-PRINT-2".into())),
        ..RegistryOptions::default()
    });
    let work = tempfile::tempdir().unwrap();

    // Put one skill in each, each pushed with that registry's own credentials only.
    let source = Store::open(&work.path().join("source")).unwrap();
    let mut targets = Vec::new();
    for (registry, name) in [(&first, "one"), (&second, "two")] {
        let skill = write_skill(&work.path().join("src"), name);
        let built = build_skill(&source, &skill, &format!("{name}:1"));
        let remote = reference(&format!("{}/skills/{name}:1", registry.host()));
        client_for(registry, &work.path().join(format!("auth-{name}")))
            .push(
                &source,
                &reference(&format!("{name}:1")),
                &remote,
                progress(),
            )
            .await
            .unwrap();
        targets.push((remote, built.digest().clone()));
    }

    let secret = |registry: &Registry, name: &str| {
        AuthFile::read(&registry.docker_config(&work.path().join(name))).unwrap()
    };
    let ca_files = vec![second.ca_file().unwrap().to_path_buf()];
    for order in ["first-then-second", "second-then-first"] {
        let files = if order == "first-then-second" {
            vec![secret(&first, "secret-a"), secret(&second, "secret-b")]
        } else {
            vec![secret(&second, "secret-b"), secret(&first, "secret-a")]
        };
        let client = Client::new(
            Credentials::from_files(files),
            ClientOptions {
                ca_files: ca_files.clone(),
                ..fast_options()
            },
        )
        .unwrap();
        let store = Store::open(&work.path().join(order)).unwrap();
        let (one, two) = tokio::join!(
            client.pull(&store, &targets[0].0, progress()),
            client.pull(&store, &targets[1].0, progress()),
        );
        assert_eq!(one.unwrap().descriptor.digest, targets[0].1, "{order}");
        assert_eq!(two.unwrap().descriptor.digest, targets[1].1, "{order}");
    }

    // Each file alone is not enough for the other registry.
    let only_first = Client::new(credentials_for(&first, &work.path().join("only")), {
        ClientOptions {
            ca_files,
            ..fast_options()
        }
    })
    .unwrap();
    let err = only_first.resolve(&targets[1].0).await.unwrap_err();
    assert!(
        matches!(err, skillport_registry::RegistryError::Unauthorized { .. }),
        "{err:?}"
    );
    common::assert_reported(
        &err,
        &second.host(),
        &["skills/two", "no credentials"],
        Some("alice-NEVER-PRINT-1"),
    );
}
