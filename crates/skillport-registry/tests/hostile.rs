//! What a real registry will not do (or not on demand), scripted with the testkit's
//! `FakeRegistry` (plain HTTP on 127.0.0.1, which the client may use for loopback): rate limits
//! with Retry-After, endless 5xx, silent servers, truncated and stalled bodies, ignored ranges,
//! wrong sizes, oversized and forged manifests, HEADs without a digest, redirects to object
//! storage, bearer tokens (granted, anonymous, refused, expired, renewed, two scopes at once),
//! identity tokens, 403, paginated tags, and pushes (blobs present, mounted, mount declined,
//! relative upload locations, chunked uploads). Each test asserts on the requests the client
//! sent, not only on the outcome.

mod common;
mod fake;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{assert_reported, blob_names, build_skill, fast_options, progress, reference};
use skillport_oci::spec::{ImageIndex, ImageManifest, media};
use skillport_oci::{Digest, Store};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, RegistryError};
use skillport_testkit::{FakeRegistry, FakeRequest, FakeResponse, NO_HEADERS};

use fake::{
    Image, PASSWORD, REPOSITORY, USER, client, client_with_password, empty_store, remote,
    requests_to,
};

// ---------------------------------------------------------------------------------------------
// Retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_retried_after_the_wait() {
    let image = Image::build("limited");
    let served = image.clone();
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = times.clone();
    let fake = FakeRegistry::start(move |request| {
        if request.path.contains("/manifests/") {
            let mut seen = seen.lock().unwrap();
            seen.push(Instant::now());
            if seen.len() == 1 {
                return FakeResponse::status(429).with_header("retry-after", "1");
            }
        }
        served.serve(request)
    });
    let fetched = client(fast_options())
        .fetch_manifest(&remote(&fake))
        .await
        .unwrap();
    assert_eq!(fetched.descriptor.digest, image.index);
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 2, "one refusal, one retry");
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?}, before the 1 s Retry-After (backoff is 20 ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_that_never_passes_fails_after_the_attempts_as_transient() {
    let fake = FakeRegistry::start(|request| {
        if request.path == "/v2/" {
            FakeResponse::status(200)
        } else {
            FakeResponse::json(
                503,
                &serde_json::json!({ "errors": [{ "code": "UNAVAILABLE", "message": "down for maintenance" }] }),
            )
        }
    });
    let client = client(ClientOptions {
        attempts: 3,
        ..fast_options()
    });
    let remote = remote(&fake);
    let err = client.fetch_manifest(&remote).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(message.contains(&fake.host()), "{message}");
    assert!(message.contains(&remote.to_string()), "{message}");
    assert!(message.contains("down for maintenance"), "{message}");
    let path = format!("/v2/{REPOSITORY}/manifests/1");
    assert_eq!(
        requests_to(&fake, &path).len(),
        3,
        "exactly `attempts` tries"
    );
}

// ---------------------------------------------------------------------------------------------
// Broken downloads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_blob_is_resumed_with_a_range_request() {
    let image = Image::build("resumed");
    let served = image.clone();
    let half = image.layer_bytes.len() / 2;
    let fake = FakeRegistry::start(move |request| {
        if request.path != served.layer_path() {
            return served.serve(request);
        }
        let total = served.layer_bytes.len();
        match request.header("range") {
            None => FakeResponse::truncated(
                200,
                [("accept-ranges", "bytes")],
                served.layer_bytes[..half].to_vec(),
                total as u64,
            ),
            Some(range) => {
                let from: usize = range
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|r| r.parse().ok())
                    .expect("an open-ended byte range");
                FakeResponse::bytes(
                    206,
                    [(
                        "content-range",
                        format!("bytes {from}-{}/{total}", total - 1),
                    )],
                    served.layer_bytes[from..].to_vec(),
                )
            }
        }
    });
    let (_dir, store) = empty_store();
    let pulled = client(fast_options())
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, image.index);
    assert_eq!(store.read_blob(&image.layer).unwrap(), image.layer_bytes);
    let layer_requests = requests_to(&fake, &image.layer_path());
    let ranges: Vec<Option<&str>> = layer_requests.iter().map(|r| r.header("range")).collect();
    assert_eq!(
        ranges,
        [None, Some(format!("bytes={half}-").as_str())],
        "one full request, then one resuming where the first stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_ranges_gets_the_download_restarted() {
    let image = Image::build("restarted");
    let served = image.clone();
    let fake = FakeRegistry::start(move |request| {
        if request.path != served.layer_path() {
            return served.serve(request);
        }
        match request.header("range") {
            // The first try breaks off after a third; the retry ignores the range.
            None => FakeResponse::truncated(
                200,
                NO_HEADERS,
                served.layer_bytes[..served.layer_bytes.len() / 3].to_vec(),
                served.layer_bytes.len() as u64,
            ),
            Some(_) => FakeResponse::bytes(200, NO_HEADERS, served.layer_bytes.clone()),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out/restarted");
    let exported = client(fast_options())
        .export(&remote(&fake), &dest, progress())
        .await
        .unwrap();
    assert_eq!(exported.layer, image.layer);
    assert!(dest.join("SKILL.md").is_file());
    let layer_requests = requests_to(&fake, &image.layer_path());
    assert_eq!(layer_requests.len(), 2);
    assert!(layer_requests[1].header("range").is_some());
    let (_dir, store) = empty_store();
    client(fast_options())
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(store.read_blob(&image.layer).unwrap(), image.layer_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_a_timeout_within_the_read_timeout() {
    let image = Image::build("stalled");
    let served = image.clone();
    let fake = FakeRegistry::start(move |request| {
        if request.path == served.layer_path() {
            FakeResponse::stall_after(
                200,
                NO_HEADERS,
                served.layer_bytes[..10].to_vec(),
                Some(served.layer_bytes.len() as u64),
            )
        } else {
            served.serve(request)
        }
    });
    let client = client(ClientOptions {
        read_timeout: Duration::from_secs(1),
        attempts: 2,
        ..fast_options()
    });
    let (_dir, store) = empty_store();
    let start = Instant::now();
    let err = client
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, RegistryError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains(&fake.host()), "{err}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "two stalled attempts with a 1 s read timeout took {took:?}"
    );
    assert!(blob_names(&store).is_empty());
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_longer_or_shorter_than_its_descriptor_is_a_size_mismatch() {
    for (case, extra) in [("longer", true), ("shorter", false)] {
        let image = Image::build("sized");
        let served = image.clone();
        let fake = FakeRegistry::start(move |request| {
            if request.path != served.layer_path() {
                return served.serve(request);
            }
            let mut bytes = served.layer_bytes.clone();
            if extra {
                bytes.extend_from_slice(b"more");
            } else {
                bytes.truncate(bytes.len() - 4);
            }
            FakeResponse::bytes(200, NO_HEADERS, bytes)
        });
        let (_dir, store) = empty_store();
        let err = client(fast_options())
            .pull(&store, &remote(&fake), progress())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::SizeMismatch { .. }),
            "{case}: {err:?}"
        );
        assert_reported(&err, &fake.host(), &[&image.layer.to_string()], None);
        assert!(blob_names(&store).is_empty(), "{case}");
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_over_the_cap_is_too_large() {
    for endless in [false, true] {
        let image = Image::build("huge");
        let served = image.clone();
        let fake = FakeRegistry::start(move |request| {
            if !request.path.contains("/manifests/") {
                return served.serve(request);
            }
            let headers = [("content-type", media::IMAGE_MANIFEST)];
            if endless {
                FakeResponse::endless(200, headers)
            } else {
                FakeResponse::bytes(200, headers, vec![b' '; 64 * 1024])
            }
        });
        let client = client(ClientOptions {
            max_manifest_bytes: 16 * 1024,
            ..fast_options()
        });
        let remote = remote(&fake);
        let err = client.fetch_manifest(&remote).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::TooLarge { limit: 16384, .. }),
            "endless={endless}: {err:?}"
        );
        assert!(err.to_string().contains(&remote.to_string()), "{err}");
        let (_dir, store) = empty_store();
        let err = client.pull(&store, &remote, progress()).await.unwrap_err();
        assert!(matches!(err, RegistryError::TooLarge { .. }), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_does_not_hash_to_its_digest_is_refused() {
    let image = Image::build("forged");
    let served = image.clone();
    let forged_child = image.manifests[0].to_string();
    let fake = FakeRegistry::start(move |request| {
        // Every manifest by digest comes back as the index's bytes; the tag comes back with a
        // Docker-Content-Digest that names something else.
        if let Some(reference) = request
            .path
            .strip_prefix(&format!("/v2/{REPOSITORY}/manifests/"))
        {
            let index = served.blobs[&served.index.to_string()].clone();
            let claimed = if reference.starts_with("sha256:") {
                reference.to_owned()
            } else {
                forged_child.clone()
            };
            return FakeResponse::bytes(
                200,
                [
                    ("content-type", media::IMAGE_INDEX),
                    ("docker-content-digest", claimed.as_str()),
                ],
                index,
            );
        }
        served.serve(request)
    });
    let client = client(fast_options());
    let by_digest = reference(&format!(
        "{}/{REPOSITORY}@{}",
        fake.host(),
        image.manifests[0]
    ));
    let err = client.fetch_manifest(&by_digest).await.unwrap_err();
    match &err {
        RegistryError::DigestMismatch {
            expected, found, ..
        } => {
            assert_eq!(expected, &image.manifests[0]);
            assert_eq!(found, &image.index);
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_reported(&err, &fake.host(), &[&by_digest.to_string()], None);
    let err = client.fetch_manifest(&remote(&fake)).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    let (_dir, store) = empty_store();
    let err = client
        .pull(&store, &by_digest, progress())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(blob_names(&store).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens and permissions

/// A registry that wants `Bearer <token>` and sends clients to `/token` for it; the token
/// service answers with `token_status` (200 hands out `good-token`), and the registry accepts
/// the token only when `accepts_token`.
fn token_registry(image: Arc<Image>, token_status: u16, accepts_token: bool) -> FakeRegistry {
    let expected_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path == "/token" {
            if token_status != 200 || request.header("authorization") != Some(&expected_basic) {
                return FakeResponse::json(
                    token_status.max(401),
                    &serde_json::json!({ "details": "incorrect username or password" }),
                );
            }
            return FakeResponse::json(
                200,
                &serde_json::json!({ "token": "good-token", "expires_in": 300 }),
            );
        }
        if accepts_token && request.header("authorization") == Some("Bearer good-token") {
            return image.serve(request);
        }
        FakeResponse::json(
            401,
            &serde_json::json!({ "errors": [{ "code": "UNAUTHORIZED", "message": "authentication required" }] }),
        )
        .with_header(
            "www-authenticate",
            format!(
                r#"Bearer realm="http://{host}/token",service="fake-registry",scope="repository:{REPOSITORY}:pull""#
            ),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_challenge_is_answered_with_a_token_from_the_realm() {
    let image = Image::build("tokened");
    let fake = token_registry(image.clone(), 200, true);
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_password(&fake, dir.path());
    let (_store_dir, store) = empty_store();
    let pulled = client
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, image.index);

    let requests = fake.requests();
    let token_requests: Vec<_> = requests.iter().filter(|r| r.path == "/token").collect();
    assert_eq!(
        token_requests.len(),
        1,
        "one token for the pull scope, reused for every request"
    );
    let query = token_requests[0].query.clone().unwrap_or_default();
    assert!(query.contains("service=fake-registry"), "{query}");
    assert!(
        query.contains("scope=repository%3Askills%2Ffake%3Apull"),
        "{query}"
    );
    for request in requests.iter().filter(|r| r.path.starts_with("/v2/skills")) {
        let auth = request.header("authorization");
        assert!(
            auth.is_none() || auth == Some("Bearer good-token"),
            "{} {} sent {auth:?}",
            request.method,
            request.path
        );
    }
    let authorised = requests
        .iter()
        .filter(|r| r.header("authorization") == Some("Bearer good-token"))
        .count();
    assert!(
        authorised >= 4,
        "index, 2 manifests, 1 layer (the configs ride in the manifests)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_unauthorized_with_a_hint_and_no_secret() {
    let image = Image::build("refused");
    let fake = token_registry(image, 401, true);
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_password(&fake, dir.path());
    let remote = remote(&fake);
    let err = client.resolve(&remote).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_reported(
        &err,
        &fake.host(),
        &[REPOSITORY, "token service refused"],
        Some(PASSWORD),
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert!(!format!("{err} {err:?}").contains(&encoded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_registry_rejects_is_unauthorized_after_one_new_token() {
    // An expired or revoked token: the token service hands one out, the registry refuses it.
    let image = Image::build("expired");
    let fake = token_registry(image, 200, false);
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_password(&fake, dir.path());
    let err = client.fetch_manifest(&remote(&fake)).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_reported(&err, &fake.host(), &[REPOSITORY], Some(PASSWORD));
    let tokens = requests_to(&fake, "/token").len();
    assert_eq!(tokens, 1, "no loop of token requests");
    assert!(
        fake.requests().len() <= 4,
        "gave up quickly: {:?}",
        fake.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_without_permission_is_denied() {
    let fake = FakeRegistry::start(|request| {
        if request.path == "/v2/" {
            return FakeResponse::status(200);
        }
        FakeResponse::json(
            403,
            &serde_json::json!({ "errors": [{ "code": "DENIED", "message": "requested access to the resource is denied" }] }),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_password(&fake, dir.path());
    let err = client.resolve(&remote(&fake)).await.unwrap_err();
    assert!(matches!(err, RegistryError::Denied { .. }), "{err:?}");
    assert_reported(&err, &fake.host(), &[REPOSITORY], Some(PASSWORD));
    let err = client.fetch_manifest(&remote(&fake)).await.unwrap_err();
    assert!(matches!(err, RegistryError::Denied { .. }), "{err:?}");
    assert!(err.to_string().contains("denied"), "{err}");
    assert!(!err.is_transient());
}

// ---------------------------------------------------------------------------------------------
// Tags

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_listed_across_pages_of_link_headers() {
    let fake = FakeRegistry::start(|request| {
        let path = format!("/v2/{REPOSITORY}/tags/list");
        if request.path != path {
            return FakeResponse::status(200);
        }
        let host = request.header("host").unwrap_or_default().to_owned();
        let query = request.query.clone().unwrap_or_default();
        let page = |tags: &[&str]| serde_json::json!({ "name": REPOSITORY, "tags": tags });
        if query.contains("last=b") {
            // The second page links on with an absolute URL.
            FakeResponse::json(200, &page(&["c", "d"])).with_header(
                "link",
                format!(r#"<http://{host}{path}?n=2&last=d>; rel="next""#),
            )
        } else if query.contains("last=d") {
            FakeResponse::json(200, &page(&["e"]))
        } else {
            FakeResponse::json(200, &page(&["a", "b"]))
                .with_header("link", format!(r#"<{path}?n=2&last=b>; rel="next""#))
        }
    });
    let tags = client(fast_options())
        .list_tags(&reference(&format!("{}/{REPOSITORY}", fake.host())))
        .await
        .unwrap();
    assert_eq!(tags, ["a", "b", "c", "d", "e"]);
    let queries: Vec<String> = requests_to(&fake, &format!("/v2/{REPOSITORY}/tags/list"))
        .into_iter()
        .map(|r| r.query.unwrap_or_default())
        .collect();
    assert_eq!(queries, ["n=1000", "n=2&last=b", "n=2&last=d"]);
}

// ---------------------------------------------------------------------------------------------
// Pushes

/// A registry that takes manifests; `blob_present` answers blob HEADs, `mount_works` mount
/// requests (201) — anything else is refused so a stray upload fails the test.
fn push_registry(blob_present: bool, mount_works: bool) -> FakeRegistry {
    FakeRegistry::start(move |request| {
        let is_upload = request.path.contains("/blobs/uploads/");
        match request.method.as_str() {
            "HEAD" if request.path.contains("/blobs/") => {
                FakeResponse::status(if blob_present { 200 } else { 404 })
            }
            "POST" if is_upload => {
                let query = request.query.clone().unwrap_or_default();
                if mount_works && query.contains("mount=") {
                    FakeResponse::status(201)
                } else {
                    FakeResponse::status(405)
                }
            }
            "PUT" if request.path.contains("/manifests/") => {
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(201).with_header("docker-content-digest", digest)
            }
            _ if request.path == "/v2/" => FakeResponse::status(200),
            _ => FakeResponse::status(405),
        }
    })
}

fn local_image(store: &Store) -> (tempfile::TempDir, Digest) {
    let dir = tempfile::tempdir().unwrap();
    let skill = common::write_skill(dir.path(), "pushed");
    let built = build_skill(store, &skill, "pushed:1");
    (dir, built.digest().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_skips_every_blob_the_registry_has() {
    let fake = push_registry(true, false);
    let (_store_dir, store) = empty_store();
    let (_dir, digest) = local_image(&store);
    let target = reference(&format!("{}/{REPOSITORY}:2", fake.host()));
    let pushed = client(fast_options())
        .push(&store, &reference("pushed:1"), &target, progress())
        .await
        .unwrap();
    assert_eq!(pushed, digest);
    let requests = fake.requests();
    assert!(
        !requests.iter().any(|r| r.path.contains("/blobs/uploads/")),
        "an upload started: {requests:?}"
    );
    let heads = requests.iter().filter(|r| r.method == "HEAD").count();
    assert_eq!(heads, 3, "two configs and the shared layer");
    let manifests: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(manifests.len(), 3, "two platform manifests, then the index");
    assert_eq!(
        manifests[2], "2",
        "the tag goes last, once its manifests are there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_a_pulled_image_mounts_blobs_from_its_source_repository() {
    let fake = push_registry(false, true);
    let (_store_dir, store) = empty_store();
    let (_dir, _) = local_image(&store);
    let source = reference(&format!("{}/team-a/pushed:1", fake.host()));
    store.tag(&reference("pushed:1"), &source).unwrap();
    let target = reference(&format!("{}/team-b/pushed:1", fake.host()));
    client(fast_options())
        .push(&store, &source, &target, progress())
        .await
        .unwrap();
    let posts: Vec<FakeRequest> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 3, "one mount per blob");
    for post in &posts {
        assert_eq!(post.path, "/v2/team-b/pushed/blobs/uploads/");
        let query = post.query.clone().unwrap_or_default();
        assert!(
            query.contains("mount=sha256") && query.contains("from=team-a/pushed"),
            "{query}"
        );
    }
    assert!(
        !fake
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" || (r.method == "PUT" && r.path.contains("/blobs/"))),
        "a mounted blob was uploaded anyway"
    );
}

// ---------------------------------------------------------------------------------------------
// More of what real registries do now and then

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_falls_back_to_get_when_head_names_no_digest() {
    let image = Image::build("headless");
    let served = image.clone();
    let fake = FakeRegistry::start(move |request| {
        if request.method == "HEAD" && request.path.contains("/manifests/") {
            return FakeResponse::status(200).with_header("content-type", media::IMAGE_INDEX);
        }
        served.serve(request)
    });
    let resolved = client(fast_options())
        .resolve(&remote(&fake))
        .await
        .unwrap();
    assert_eq!(resolved.digest, image.index);
    assert_eq!(resolved.media_type, media::IMAGE_INDEX);
    let methods: Vec<String> = requests_to(&fake, &format!("/v2/{REPOSITORY}/manifests/1"))
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_never_answers_is_a_timeout_after_the_attempts() {
    let fake = FakeRegistry::start(|request| {
        if request.path == "/v2/" {
            return FakeResponse::status(200);
        }
        FakeResponse::status(200).delayed(Duration::from_secs(30))
    });
    let client = client(ClientOptions {
        read_timeout: Duration::from_secs(1),
        attempts: 2,
        ..fast_options()
    });
    let start = Instant::now();
    let err = client.fetch_manifest(&remote(&fake)).await.unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err, RegistryError::Timeout { seconds: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&fake.host()), "{err}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "two silent attempts with a 1 s read timeout took {took:?}"
    );
    assert_eq!(
        requests_to(&fake, &format!("/v2/{REPOSITORY}/manifests/1")).len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulling_again_downloads_no_blob() {
    let image = Image::build("cached");
    let served = image.clone();
    let fake = FakeRegistry::start(move |request| served.serve(request));
    let client = client(fast_options());
    let (_dir, store) = empty_store();
    client
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    let blob_gets = || {
        fake.requests()
            .iter()
            .filter(|r| r.path.contains("/blobs/"))
            .count()
    };
    assert_eq!(
        blob_gets(),
        1,
        "the shared layer (the configs ride in the manifests)"
    );
    let again = client
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(again.descriptor.digest, image.index);
    assert_eq!(
        blob_gets(),
        1,
        "the second pull fetched blobs the store has"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_token_is_fetched_without_credentials() {
    // A public repository behind a token service (ghcr.io, Docker Hub): no credentials at all.
    let image = Image::build("public");
    let served = image.clone();
    let fake = FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path == "/token" {
            return FakeResponse::json(200, &serde_json::json!({ "access_token": "anon" }));
        }
        if request.header("authorization") == Some("Bearer anon") {
            return served.serve(request);
        }
        FakeResponse::status(401).with_header(
            "www-authenticate",
            format!(r#"Bearer realm="http://{host}/token",service="fake""#),
        )
    });
    let (_dir, store) = empty_store();
    let pulled = client(fast_options())
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, image.index);
    let tokens = requests_to(&fake, "/token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].header("authorization"), None);
    let query = tokens[0].query.clone().unwrap_or_default();
    assert!(
        query.contains("scope=repository%3Askills%2Ffake%3Apull"),
        "the scope comes from the request when the challenge has none: {query}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_renewed_and_the_pull_goes_on() {
    // The registry takes each token for three requests, then wants a newer one.
    let image = Image::build("renewed");
    let served = image.clone();
    let issued = Arc::new(AtomicUsize::new(0));
    let uses = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let fake = FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path == "/token" {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            return FakeResponse::json(200, &serde_json::json!({ "token": format!("t{n}") }));
        }
        if let Some(token) = request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            let mut uses = uses.lock().unwrap();
            let count = uses.entry(token.to_owned()).or_default();
            *count += 1;
            if *count <= 3 {
                return served.serve(request);
            }
        }
        FakeResponse::status(401).with_header(
            "www-authenticate",
            format!(
                r#"Bearer realm="http://{host}/token",service="fake",scope="repository:{REPOSITORY}:pull""#
            ),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_password(&fake, dir.path());
    let (_store_dir, store) = empty_store();
    let pulled = client
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, image.index);
    assert!(
        requests_to(&fake, "/token").len() >= 2,
        "six requests at three per token need a renewal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_redirects_to_storage_are_followed_without_the_registry_token() {
    // Registries on object storage answer blob GETs with a redirect to a signed URL on another
    // host; that host must not get the registry's Authorization (S3 refuses two auth methods).
    let image = Image::build("redirected");
    let stored = image.clone();
    let storage = FakeRegistry::start(move |request| {
        let digest = request.path.trim_start_matches("/bucket/");
        match stored.blobs.get(digest) {
            Some(bytes) => FakeResponse::bytes(200, NO_HEADERS, bytes.clone()),
            None => FakeResponse::status(404),
        }
    });
    let storage_url = storage.url();
    let served = image.clone();
    let fake = FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path == "/token" {
            return FakeResponse::json(200, &serde_json::json!({ "token": "registry-token" }));
        }
        if request.header("authorization") != Some("Bearer registry-token") {
            return FakeResponse::status(401).with_header(
                "www-authenticate",
                format!(r#"Bearer realm="http://{host}/token",service="fake""#),
            );
        }
        if let Some(digest) = request
            .path
            .strip_prefix(&format!("/v2/{REPOSITORY}/blobs/"))
        {
            return FakeResponse::status(307).with_header(
                "location",
                format!("{storage_url}/bucket/{digest}?X-Amz-Signature=signed"),
            );
        }
        served.serve(request)
    });
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_password(&fake, dir.path());
    let (_store_dir, store) = empty_store();
    client
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(store.read_blob(&image.layer).unwrap(), image.layer_bytes);
    let storage_requests = storage.requests();
    // The layer (the configs ride in the manifests).
    assert_eq!(storage_requests.len(), 1);
    for request in &storage_requests {
        assert_eq!(
            request.header("authorization"),
            None,
            "the registry token went to the storage host"
        );
        assert_eq!(request.query.as_deref(), Some("X-Amz-Signature=signed"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monolithic_upload_follows_a_relative_location_and_sends_the_digest() {
    let uploads = Arc::new(AtomicUsize::new(0));
    let fake = FakeRegistry::start(move |request| {
        let prefix = format!("/v2/{REPOSITORY}/blobs/uploads/");
        match request.method.as_str() {
            "HEAD" => FakeResponse::status(404),
            "POST" if request.path == prefix => {
                let n = uploads.fetch_add(1, Ordering::SeqCst);
                FakeResponse::status(202)
                    .with_header("location", format!("{prefix}session-{n}?_state=s{n}"))
            }
            "PUT" if request.path.starts_with(&prefix) => {
                let query = request.query.clone().unwrap_or_default();
                let digest = Digest::sha256(&request.body).to_string();
                if query.ends_with(&format!("&digest={digest}")) && query.starts_with("_state=s") {
                    FakeResponse::status(201)
                } else {
                    FakeResponse::status(400)
                }
            }
            "PUT" => {
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(201).with_header("docker-content-digest", digest)
            }
            _ => FakeResponse::status(200),
        }
    });
    let (_store_dir, store) = empty_store();
    let (_dir, digest) = local_image(&store);
    let target = reference(&format!("{}/{REPOSITORY}:1", fake.host()));
    let pushed = client(fast_options())
        .push(&store, &reference("pushed:1"), &target, progress())
        .await
        .unwrap();
    assert_eq!(pushed, digest);
    let blob_puts: Vec<FakeRequest> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/session-"))
        .collect();
    assert_eq!(blob_puts.len(), 3);
    let mut sent: Vec<String> = blob_puts
        .iter()
        .map(|r| Digest::sha256(&r.body).to_string())
        .collect();
    sent.sort();
    let index: ImageIndex = store.read_json("index", &digest).unwrap();
    let mut expected: Vec<String> = Vec::new();
    for child in &index.manifests {
        let manifest: ImageManifest = store.read_json("manifest", &child.digest).unwrap();
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if !expected.contains(&blob.digest.to_string()) {
                expected.push(blob.digest.to_string());
            }
        }
    }
    expected.sort();
    assert_eq!(sent, expected, "each config and the layer, byte for byte");
}

/// `application/x-www-form-urlencoded` decoding, enough for query strings.
fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Every value of `name` in a query string, decoded.
fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| url_decode(value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_needing_two_scopes_asks_the_token_service_for_both_as_the_spec_says() {
    // The token spec: a GET token request carries one `scope` field per resource scope (only
    // the POST form joins them with spaces). The registry's challenge for a mount names two
    // scopes in one space-separated field, as distribution does; this token service is strict
    // and refuses a scope field holding a space.
    const SOURCE: &str = "team-a/pushed";
    const TARGET: &str = "team-b/pushed";
    let fake = FakeRegistry::start(|request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        let query = request.query.clone().unwrap_or_default();
        if request.path == "/token" {
            let scopes = query_values(&query, "scope");
            if scopes.is_empty() || scopes.iter().any(|s| s.contains(' ')) {
                return FakeResponse::json(400, &serde_json::json!({ "details": "invalid scope" }));
            }
            return FakeResponse::json(
                200,
                &serde_json::json!({ "token": format!("granted|{}", scopes.join("|")) }),
            );
        }
        if request.path == "/v2/" {
            return FakeResponse::status(200);
        }
        let granted: Vec<String> = request
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer granted|"))
            .map(|t| t.split('|').map(str::to_owned).collect())
            .unwrap_or_default();
        let allows = |repository: &str, action: &str| {
            granted.iter().any(|scope| {
                scope
                    .strip_prefix(&format!("repository:{repository}:"))
                    .is_some_and(|actions| actions.split(',').any(|a| a == action))
            })
        };
        let mounting = request.method == "POST" && query.contains("mount=");
        let allowed = allows(TARGET, "pull")
            && (request.method == "HEAD" || allows(TARGET, "push"))
            && (!mounting || allows(SOURCE, "pull"));
        if !allowed {
            let scope = if mounting {
                format!("repository:{TARGET}:pull,push repository:{SOURCE}:pull")
            } else {
                format!("repository:{TARGET}:pull,push")
            };
            return FakeResponse::status(401).with_header(
                "www-authenticate",
                format!(r#"Bearer realm="http://{host}/token",service="fake",scope="{scope}""#),
            );
        }
        match request.method.as_str() {
            "HEAD" => FakeResponse::status(404),
            "POST" if mounting => FakeResponse::status(201),
            "PUT" if request.path.contains("/manifests/") => {
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(201).with_header("docker-content-digest", digest)
            }
            _ => FakeResponse::status(405),
        }
    });
    let (_store_dir, store) = empty_store();
    let (_dir, digest) = local_image(&store);
    let source = reference(&format!("{}/{SOURCE}:1", fake.host()));
    store.tag(&reference("pushed:1"), &source).unwrap();
    let target = reference(&format!("{}/{TARGET}:1", fake.host()));
    let dir = tempfile::tempdir().unwrap();
    let pushed = client_with_password(&fake, dir.path())
        .push(&store, &source, &target, progress())
        .await
        .unwrap();
    assert_eq!(pushed, digest);
    let asked: Vec<Vec<String>> = requests_to(&fake, "/token")
        .iter()
        .map(|r| query_values(r.query.as_deref().unwrap_or_default(), "scope"))
        .collect();
    assert!(
        asked.contains(&vec![
            format!("repository:{TARGET}:pull,push"),
            format!("repository:{SOURCE}:pull"),
        ]),
        "no token request carried both scopes as separate fields: {asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_layer_will_not_unpack_leaves_no_trace() {
    // The layer matches its digest but is not gzip: the failure comes after the download, in
    // the unpacking, and must still leave nothing beside the destination.
    let layer = b"this is not a gzip stream".to_vec();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::IMAGE_MANIFEST,
        "config": { "mediaType": media::IMAGE_CONFIG, "digest": Digest::sha256(&config), "size": config.len() },
        "layers": [{ "mediaType": media::LAYER_TAR_GZIP, "digest": Digest::sha256(&layer), "size": layer.len() }],
    }))
    .unwrap();
    let blobs: HashMap<String, Vec<u8>> = [
        (Digest::sha256(&layer).to_string(), layer),
        (Digest::sha256(&config).to_string(), config),
    ]
    .into_iter()
    .collect();
    let fake = FakeRegistry::start(move |request| {
        if request.path.contains("/manifests/") {
            return FakeResponse::bytes(
                200,
                [("content-type", media::IMAGE_MANIFEST)],
                manifest.clone(),
            );
        }
        let digest = request.path.rsplit('/').next().unwrap_or_default();
        match blobs.get(digest) {
            Some(bytes) => FakeResponse::bytes(200, NO_HEADERS, bytes.clone()),
            None => FakeResponse::status(if request.path == "/v2/" { 200 } else { 404 }),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("skills");
    std::fs::create_dir_all(&parent).unwrap();
    let err = client(fast_options())
        .export(&remote(&fake), &parent.join("broken"), progress())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Read(skillport_oci::ReadError::Unpack(_))
        ),
        "{err:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&parent).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_the_registry_declines_falls_back_to_an_upload() {
    // A registry may answer a mount request by opening a normal upload (202), for example when
    // the source repository is not readable: the blob must then be uploaded there.
    let fake = FakeRegistry::start(|request| {
        let prefix = "/v2/team-b/pushed/blobs/uploads/";
        match request.method.as_str() {
            "HEAD" => FakeResponse::status(404),
            "POST" => {
                FakeResponse::status(202).with_header("location", format!("{prefix}declined-mount"))
            }
            "PUT" if request.path.starts_with(prefix) => {
                let query = request.query.clone().unwrap_or_default();
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(if query == format!("digest={digest}") {
                    201
                } else {
                    400
                })
            }
            "PUT" => {
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(201).with_header("docker-content-digest", digest)
            }
            _ => FakeResponse::status(200),
        }
    });
    let (_store_dir, store) = empty_store();
    let (_dir, digest) = local_image(&store);
    let source = reference(&format!("{}/team-a/pushed:1", fake.host()));
    store.tag(&reference("pushed:1"), &source).unwrap();
    let target = reference(&format!("{}/team-b/pushed:1", fake.host()));
    let pushed = client(fast_options())
        .push(&store, &source, &target, progress())
        .await
        .unwrap();
    assert_eq!(pushed, digest);
    let uploads = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/declined-mount"))
        .count();
    assert_eq!(uploads, 3, "each blob uploaded after its declined mount");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_over_8_mib_goes_up_in_ranged_chunks_then_a_closing_put() {
    let fake = FakeRegistry::start(|request| {
        let prefix = format!("/v2/{REPOSITORY}/blobs/uploads/");
        match request.method.as_str() {
            "HEAD" => FakeResponse::status(404),
            "POST" => FakeResponse::status(202).with_header("location", format!("{prefix}s?n=0")),
            "PATCH" => {
                let n: usize = request
                    .query
                    .as_deref()
                    .and_then(|q| q.strip_prefix("n="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(99);
                FakeResponse::status(202).with_header("location", format!("{prefix}s?n={}", n + 1))
            }
            "PUT" if request.path.contains("/manifests/") => {
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(201).with_header("docker-content-digest", digest)
            }
            "PUT" => FakeResponse::status(201),
            _ => FakeResponse::status(200),
        }
    });
    let (_store_dir, store) = empty_store();
    let dir = tempfile::tempdir().unwrap();
    let skill = common::write_skill(dir.path(), "chunky");
    std::fs::write(
        skill.join("references/random.bin"),
        common::incompressible(9 << 20, 11),
    )
    .unwrap();
    let built = build_skill(&store, &skill, "chunky:1");
    let layer = store.read_blob(&built.layer.digest).unwrap();
    let target = reference(&format!("{}/{REPOSITORY}:1", fake.host()));
    client(fast_options())
        .push(&store, &reference("chunky:1"), &target, progress())
        .await
        .unwrap();

    let requests = fake.requests();
    let patches: Vec<&FakeRequest> = requests.iter().filter(|r| r.method == "PATCH").collect();
    let ranges: Vec<Option<&str>> = patches.iter().map(|r| r.header("content-range")).collect();
    let split = 8 << 20;
    assert_eq!(
        ranges,
        [
            Some(format!("0-{}", split - 1).as_str()),
            Some(format!("{split}-{}", layer.len() - 1).as_str()),
        ]
    );
    // Each PATCH went to the Location the previous answer gave.
    let queries: Vec<Option<&str>> = patches.iter().map(|r| r.query.as_deref()).collect();
    assert_eq!(queries, [Some("n=0"), Some("n=1")]);
    let sent: Vec<u8> = patches.iter().flat_map(|r| r.body.clone()).collect();
    assert!(sent == layer, "the chunks do not add up to the layer");
    let close = requests
        .iter()
        .find(|r| {
            r.method == "PUT"
                && r.query
                    .as_deref()
                    .is_some_and(|q| q.ends_with(&built.layer.digest.to_string()))
        })
        .expect("a closing PUT");
    assert_eq!(
        close.query.as_deref(),
        Some(format!("n=2&digest={}", built.layer.digest).as_str())
    );
    assert!(close.body.is_empty());
}

/// A token registry for identity (refresh) tokens, as `az acr login` and `docker login` with
/// an identity provider leave them: the client POSTs the refresh token to the realm.
fn refresh_token_registry(image: Arc<Image>, valid_refresh_token: &'static str) -> FakeRegistry {
    FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path == "/oauth2/token" {
            let form = String::from_utf8_lossy(&request.body).into_owned();
            let refresh = query_values(&form, "refresh_token");
            let grant = query_values(&form, "grant_type");
            if request.method == "POST"
                && grant == ["refresh_token"]
                && refresh == [valid_refresh_token]
            {
                return FakeResponse::json(200, &serde_json::json!({ "access_token": "fresh" }));
            }
            return FakeResponse::json(
                401,
                &serde_json::json!({ "error": "invalid_grant", "error_description": "refresh token expired" }),
            );
        }
        if request.header("authorization") == Some("Bearer fresh") {
            return image.serve(request);
        }
        FakeResponse::status(401).with_header(
            "www-authenticate",
            format!(
                r#"Bearer realm="http://{host}/oauth2/token",service="fake",scope="repository:{REPOSITORY}:pull""#
            ),
        )
    })
}

fn client_with_identity_token(fake: &FakeRegistry, dir: &std::path::Path, token: &str) -> Client {
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        serde_json::json!({ "auths": { fake.host(): {
            "auth": base64::engine::general_purpose::STANDARD.encode("00000000-0000-0000-0000-000000000000:"),
            "identitytoken": token,
        } } })
        .to_string(),
    )
    .unwrap();
    Client::new(
        Credentials::from_files(vec![AuthFile::read(&path).unwrap()]),
        fast_options(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_token_is_exchanged_for_an_access_token() {
    let image = Image::build("refreshed");
    let fake = refresh_token_registry(image.clone(), "refresh-NEVER-PRINT-ok");
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_identity_token(&fake, dir.path(), "refresh-NEVER-PRINT-ok");
    let (_store_dir, store) = empty_store();
    let pulled = client
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, image.index);
    let exchanges = requests_to(&fake, "/oauth2/token");
    assert_eq!(exchanges.len(), 1);
    let form = String::from_utf8_lossy(&exchanges[0].body).into_owned();
    assert_eq!(query_values(&form, "service"), ["fake"]);
    assert_eq!(
        query_values(&form, "scope"),
        [format!("repository:{REPOSITORY}:pull")]
    );
    assert_eq!(
        exchanges[0].query, None,
        "the refresh token goes in the body, not the URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_identity_token_is_unauthorized_without_the_token() {
    let image = Image::build("stale");
    let fake = refresh_token_registry(image, "a-newer-token");
    let dir = tempfile::tempdir().unwrap();
    let stale = "refresh-NEVER-PRINT-expired";
    let client = client_with_identity_token(&fake, dir.path(), stale);
    let remote = remote(&fake);
    let err = client.fetch_manifest(&remote).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_reported(
        &err,
        &fake.host(),
        &[REPOSITORY, "token service refused"],
        Some(stale),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_into_a_non_empty_folder_fails_before_any_request() {
    let fake = FakeRegistry::start(|_| FakeResponse::status(500));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("taken");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("mine.txt"), "keep").unwrap();
    let err = client(fast_options())
        .export(&remote(&fake), &dest, progress())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an empty folder"), "{err}");
    assert!(
        fake.requests().is_empty(),
        "nothing is downloaded for a taken folder"
    );
    assert_eq!(std::fs::read(dest.join("mine.txt")).unwrap(), b"keep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_login_gets_a_registry_wide_token_without_a_scope() {
    let expected_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let fake = FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path == "/token" {
            if request.header("authorization") != Some(&expected_basic) {
                return FakeResponse::status(401);
            }
            return FakeResponse::json(200, &serde_json::json!({ "token": "login-token" }));
        }
        if request.path == "/v2/" && request.header("authorization") == Some("Bearer login-token") {
            return FakeResponse::json(200, &serde_json::json!({}));
        }
        FakeResponse::status(401).with_header(
            "www-authenticate",
            format!(r#"Bearer realm="http://{host}/token",service="fake-registry""#),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    client_with_password(&fake, dir.path())
        .check_login(&fake.host())
        .await
        .unwrap();
    let token_requests = requests_to(&fake, "/token");
    assert_eq!(token_requests.len(), 1);
    let query = token_requests[0].query.clone().unwrap_or_default();
    assert!(query.contains("service=fake-registry"), "{query}");
    assert!(
        !query.contains("scope"),
        "a registry-wide token asks for no scope: {query}"
    );

    // Refused credentials: an error naming the registry, without the password.
    let err = client(fast_options())
        .check_login(&fake.host())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&fake.host()) && !err.to_string().contains(PASSWORD));
}
