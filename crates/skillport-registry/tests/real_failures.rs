//! What goes wrong against real registries (and hosts that are not there): each failure is the
//! right `RegistryError` variant, one line naming the registry and the repository or reference,
//! with a hint and without the password; and a pull or export that fails on content leaves
//! nothing behind.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{
    assert_reported, blob_names, build_skill, client_for, fast_options, progress, reference,
    snapshot, write_skill,
};
use skillport_oci::{Digest, Store};
use skillport_registry::auth::{AuthError, AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, RegistryError};
use skillport_testkit::Registry;

/// Builds `name:1` into a store under `work` and pushes it to `registry` as
/// `skills/<name>:1`; returns the store, the remote reference and the image digest.
async fn pushed_skill(
    registry: &Registry,
    work: &Path,
    name: &str,
) -> (Store, skillport_oci::Reference, Digest) {
    let store = Store::open(&work.join("source")).unwrap();
    let skill = write_skill(&work.join("src"), name);
    let built = build_skill(&store, &skill, &format!("{name}:1"));
    let remote = reference(&format!("{}/skills/{name}:1", registry.host()));
    client_for(registry, &work.join("auth"))
        .push(
            &store,
            &reference(&format!("{name}:1")),
            &remote,
            progress(),
        )
        .await
        .unwrap();
    (store, remote, built.digest().clone())
}

/// A Docker config for `host` with this user and password.
fn config_with(dir: &Path, host: &str, user: &str, password: &str) -> Credentials {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        &path,
        serde_json::json!({ "auths": { host: { "auth": auth } } }).to_string(),
    )
    .unwrap();
    Credentials::from_files(vec![AuthFile::read(&path).unwrap()])
}

fn client(credentials: Credentials, options: ClientOptions) -> Client {
    Client::new(credentials, options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_unauthorized_and_never_printed() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let (store, remote, _) = pushed_skill(&registry, work.path(), "guarded").await;
    let (user, right) = registry.credentials().unwrap();
    let wrong = "wrong-NEVER-PRINT-password";
    let client = client(
        config_with(&work.path().join("wrong"), &registry.host(), user, wrong),
        ClientOptions {
            ca_files: vec![registry.ca_file().unwrap().to_path_buf()],
            ..fast_options()
        },
    );

    let err = client.resolve(&remote).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_reported(&err, &registry.host(), &["skills/guarded"], Some(wrong));
    assert_reported(&err, &registry.host(), &["were refused"], Some(right));

    let target = Store::open(&work.path().join("target")).unwrap();
    let err = client.pull(&target, &remote, progress()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_reported(&err, &registry.host(), &["skills/guarded"], Some(wrong));
    assert!(target.list().unwrap().is_empty());

    let other = reference(&format!("{}/skills/other:1", registry.host()));
    let err = client
        .push(&store, &reference("guarded:1"), &other, progress())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_reported(&err, &registry.host(), &["skills/other"], Some(wrong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_for_an_auth_registry_is_unauthorized_with_a_login_hint() {
    let registry = Registry::basic_auth();
    let work = tempfile::tempdir().unwrap();
    let (_, remote, _) = pushed_skill(&registry, work.path(), "guarded").await;
    let client = client(Credentials::empty(), fast_options());
    let err = client.resolve(&remote).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    let (_, password) = registry.credentials().unwrap();
    assert_reported(
        &err,
        &registry.host(),
        &["skills/guarded", "no credentials"],
        Some(password),
    );
    assert!(
        err.hint().unwrap().contains("skillport login"),
        "{:?}",
        err.hint()
    );
    assert!(!err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_credential_helper_names_the_helper_and_the_registry_with_a_hint() {
    let registry = Registry::basic_auth();
    let work = tempfile::tempdir().unwrap();
    let (_, remote, _) = pushed_skill(&registry, work.path(), "helped").await;
    let path = work.path().join("helper-config.json");
    std::fs::write(
        &path,
        serde_json::json!({ "credHelpers": { registry.host(): "skillport-test-absent" } })
            .to_string(),
    )
    .unwrap();
    let client = client(
        Credentials::from_files(vec![AuthFile::read(&path).unwrap()]),
        fast_options(),
    );
    let err = client.resolve(&remote).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Auth(AuthError::HelperMissing { .. })),
        "{err:?}"
    );
    assert_reported(
        &err,
        &registry.host(),
        &["docker-credential-skillport-test-absent"],
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_registry_without_its_ca_is_a_tls_error_and_works_when_marked_insecure() {
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let (_, remote, digest) = pushed_skill(&registry, work.path(), "secure").await;
    let credentials = || common::credentials_for(&registry, &work.path().join("auth"));

    let untrusting = client(credentials(), fast_options());
    let err = untrusting.resolve(&remote).await.unwrap_err();
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    let (_, password) = registry.credentials().unwrap();
    assert_reported(&err, &registry.host(), &[], Some(password));
    assert!(
        err.hint().unwrap().contains("--ca-file"),
        "{:?}",
        err.hint()
    );

    let insecure = client(
        credentials(),
        ClientOptions {
            insecure_registries: vec![registry.host()],
            ..fast_options()
        },
    );
    assert_eq!(insecure.resolve(&remote).await.unwrap().digest, digest);
    let store = Store::open(&work.path().join("store")).unwrap();
    let pulled = insecure.pull(&store, &remote, progress()).await.unwrap();
    assert_eq!(pulled.descriptor.digest, digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_is_a_connect_error_and_fails_fast() {
    let client = client(Credentials::empty(), fast_options());
    let remote = reference("nonexistent.invalid:5000/skills/ghost:1");
    let start = Instant::now();
    let err = client.resolve(&remote).await.unwrap_err();
    assert!(matches!(err, RegistryError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_reported(&err, "nonexistent.invalid:5000", &[], None);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_connect_error() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let client = client(Credentials::empty(), fast_options());
    let err = client
        .resolve(&reference(&format!("{host}/skills/ghost:1")))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Connect { .. }), "{err:?}");
    assert_reported(&err, &host, &[], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_or_repository_that_does_not_exist_is_not_found() {
    let registry = Registry::basic_auth();
    let work = tempfile::tempdir().unwrap();
    let (_, _, _) = pushed_skill(&registry, work.path(), "present").await;
    let client = client_for(&registry, &work.path().join("auth"));
    let (_, password) = registry.credentials().unwrap();
    let missing = reference(&format!("{}/skills/present:nope", registry.host()));
    let missing_text = missing.to_string();

    // The registry's own reason, not just "404": a missing tag is not a missing repository.
    let err = client.resolve(&missing).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert_reported(
        &err,
        &registry.host(),
        &[&missing_text, "manifest unknown"],
        Some(password),
    );

    let store = Store::open(&work.path().join("store")).unwrap();
    let err = client.pull(&store, &missing, progress()).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert_reported(&err, &registry.host(), &[&missing_text], Some(password));

    let dest = work.path().join("out/present");
    let err = client
        .export(&missing, &dest, progress())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(!dest.exists());

    let err = client
        .list_tags(&reference(&format!("{}/skills/absent", registry.host())))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert_reported(
        &err,
        &registry.host(),
        &["skills/absent", "repository name not known"],
        Some(password),
    );
}

/// Overwrites a blob in the registry's storage with other bytes of the same length.
fn tamper(registry: &Registry, digest: &Digest) {
    let path = registry.blob_file(&digest.to_string());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_layer_is_a_digest_mismatch_and_leaves_nothing_behind() {
    let registry = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let (source, remote, _) = pushed_skill(&registry, work.path(), "tampered").await;
    let image = source.resolve(&reference("tampered:1")).unwrap();
    let layer = skillport_oci::skill_image(&source, &image.descriptor)
        .unwrap()
        .layer;
    tamper(&registry, &layer.digest);
    let client = client_for(&registry, &work.path().join("auth"));

    // A store that already holds something: it must come out exactly as it went in.
    let store = Store::open(&work.path().join("store")).unwrap();
    let other = write_skill(&work.path().join("src"), "bystander");
    build_skill(&store, &other, "bystander:1");
    let before = snapshot(store.root());
    let err = client.pull(&store, &remote, progress()).await.unwrap_err();
    match &err {
        RegistryError::DigestMismatch { expected, .. } => assert_eq!(expected, &layer.digest),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_reported(&err, &registry.host(), &[&layer.digest.to_string()], None);
    assert_eq!(
        snapshot(store.root()),
        before,
        "the failed pull changed the store"
    );
    assert_eq!(store.list().unwrap().len(), 1);

    // Export: no destination, no staging folder, no download beside it.
    let parent = work.path().join("out");
    std::fs::create_dir_all(&parent).unwrap();
    let err = client
        .export(&remote, &parent.join("tampered"), progress())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(snapshot(&parent), [], "the failed export left files behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_manifest_is_a_digest_mismatch() {
    let registry = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let (_, remote, digest) = pushed_skill(&registry, work.path(), "forged").await;
    tamper(&registry, &digest);
    let client = client_for(&registry, &work.path().join("auth"));
    let store = Store::open(&work.path().join("store")).unwrap();
    let err = client.pull(&store, &remote, progress()).await.unwrap_err();
    match &err {
        RegistryError::DigestMismatch { expected, .. } => assert_eq!(expected, &digest),
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_reported(&err, &registry.host(), &[&remote.to_string()], None);
    assert!(blob_names(&store).is_empty());
    let by_digest = reference(&format!("{}/skills/forged@{digest}", registry.host()));
    let err = client.fetch_manifest(&by_digest).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
}
