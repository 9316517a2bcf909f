//! Regression tests for the findings of the registry client review (issue 7), each named after
//! the bug it pins, scripted with the testkit's `FakeRegistry` where a real registry will not
//! misbehave on demand. Each failed on the code before its fix.

mod common;
mod fake;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::{build_skill, fast_options, progress, reference};
use skillport_oci::Digest;
use skillport_registry::{Progress, RegistryError};
use skillport_testkit::{FakeRegistry, FakeRequest, FakeResponse, NO_HEADERS};

use fake::{Image, PASSWORD, REPOSITORY, USER, client, client_with_password, empty_store, remote};

/// A registry that accepts every push: blobs absent, uploads accepted at `upload_to`
/// (a full URL, or a path on the registry), manifests stored.
fn accepting_registry(
    upload_to: impl Fn() -> String + Send + Sync + 'static,
    password: bool,
) -> FakeRegistry {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    FakeRegistry::start(move |request| {
        if password && request.header("authorization") != Some(basic.as_str()) {
            return FakeResponse::status(401)
                .with_header("www-authenticate", r#"Basic realm="fake""#);
        }
        match request.method.as_str() {
            "HEAD" => FakeResponse::status(404),
            "POST" => FakeResponse::status(202).with_header("location", upload_to()),
            "PUT" if request.path.contains("/manifests/") => {
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(201).with_header("docker-content-digest", digest)
            }
            "PUT" => FakeResponse::status(201),
            _ => FakeResponse::status(200),
        }
    })
}

fn pushed_image(store: &skillport_oci::Store, name: &str, extra: Option<Vec<u8>>) -> Digest {
    let dir = tempfile::tempdir().unwrap();
    let skill = common::write_skill(dir.path(), name);
    if let Some(bytes) = extra {
        std::fs::write(skill.join("references/random.bin"), bytes).unwrap();
    }
    build_skill(store, &skill, &format!("{name}:1"))
        .layer
        .digest
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_sends_no_credentials_to_an_upload_location_on_another_origin() {
    let elsewhere = FakeRegistry::start(|request| match request.method.as_str() {
        "PUT" => FakeResponse::status(201),
        _ => FakeResponse::status(202),
    });
    let upload_url = format!("{}/uploads/one", elsewhere.url());
    let registry = accepting_registry(move || upload_url.clone(), true);
    let (_store_dir, store) = empty_store();
    pushed_image(&store, "leaky", None);
    let dir = tempfile::tempdir().unwrap();
    let target = reference(&format!("{}/{REPOSITORY}:1", registry.host()));
    client_with_password(&registry, dir.path())
        .push(&store, &reference("leaky:1"), &target, progress())
        .await
        .unwrap();
    let uploads = elsewhere.requests();
    assert_eq!(uploads.len(), 3, "two configs and the layer: {uploads:?}");
    for request in &uploads {
        assert_eq!(
            request.header("authorization"),
            None,
            "the registry's credentials went to another origin"
        );
    }
    // The registry itself still got them.
    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.header("authorization").is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_a_reference_without_a_tag_pushes_latest() {
    let registry = accepting_registry(|| "/v2/upload/1".into(), false);
    let (_store_dir, store) = empty_store();
    pushed_image(&store, "untagged", None);
    let target = reference(&format!("{}/{REPOSITORY}", registry.host()));
    let digest = client(fast_options())
        .push(&store, &reference("untagged:1"), &target, progress())
        .await
        .unwrap();
    let tagged: Vec<FakeRequest> = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .filter(|r| !r.path.ends_with(&digest.to_string()) && !r.path.contains("sha256:"))
        .collect();
    assert_eq!(tagged.len(), 1, "one manifest PUT under a tag");
    assert_eq!(tagged[0].path, format!("/v2/{REPOSITORY}/manifests/latest"));
}

/// Which answer an upload registry loses (after acting on the request).
#[derive(Clone, Copy, PartialEq)]
enum Lose {
    /// The first chunk's (only a blob over 8 MiB is sent in chunks).
    FirstChunk,
    /// The closing PUT's of a chunked upload (the only upload PUT without a body).
    ClosingPut,
}

/// An upload registry with one session per POST, which keeps the bytes it receives, refuses
/// a chunk that does not start where its bytes end (as distribution does), and loses one
/// answer with a 503 after acting on the request.
fn forgetful_upload_registry(lose: Lose) -> FakeRegistry {
    let sessions = Mutex::new(HashMap::<String, Vec<u8>>::new());
    let completed = Mutex::new(HashSet::<String>::new());
    let answers_lost = AtomicUsize::new(0);
    FakeRegistry::start(move |request| {
        let prefix = format!("/v2/{REPOSITORY}/blobs/uploads/");
        let mut sessions = sessions.lock().unwrap();
        let mut completed = completed.lock().unwrap();
        let lose_this =
            |which: Lose| which == lose && answers_lost.fetch_add(1, Ordering::SeqCst) == 0;
        match request.method.as_str() {
            "HEAD" => {
                let present = completed.iter().any(|d| request.path.ends_with(d.as_str()));
                FakeResponse::status(if present { 200 } else { 404 })
            }
            "POST" => {
                let session = format!("{prefix}u{}", sessions.len() + completed.len());
                sessions.insert(session.clone(), Vec::new());
                FakeResponse::status(202).with_header("location", session)
            }
            "GET" => match sessions.get(&request.path) {
                Some(held) => FakeResponse::status(204)
                    .with_header("range", format!("0-{}", held.len().saturating_sub(1)))
                    .with_header("location", request.path.clone()),
                None => FakeResponse::status(404),
            },
            "PATCH" => {
                let Some(held) = sessions.get_mut(&request.path) else {
                    return FakeResponse::status(404);
                };
                let range = request.header("content-range").unwrap_or_default();
                let start: usize = range.split('-').next().unwrap().parse().unwrap();
                if start != held.len() {
                    return FakeResponse::status(416);
                }
                held.extend_from_slice(&request.body);
                if lose_this(Lose::FirstChunk) {
                    return FakeResponse::status(503);
                }
                FakeResponse::status(202).with_header("location", request.path.clone())
            }
            "PUT" if request.path.starts_with(&prefix) => {
                let closing_chunked = request.body.is_empty();
                let Some(mut held) = sessions.remove(&request.path) else {
                    return FakeResponse::status(404);
                };
                held.extend_from_slice(&request.body);
                let digest = Digest::sha256(&held).to_string();
                let query = request.query.clone().unwrap_or_default();
                if !query.contains(&digest.replace(':', "%3A")) && !query.contains(&digest) {
                    return FakeResponse::status(400);
                }
                completed.insert(digest);
                if closing_chunked && lose_this(Lose::ClosingPut) {
                    return FakeResponse::status(503);
                }
                FakeResponse::status(201)
            }
            "PUT" => {
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(201).with_header("docker-content-digest", digest)
            }
            _ => FakeResponse::status(405),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_an_upload_chunk_resumes_from_the_upload_status() {
    let (_store_dir, store) = empty_store();
    pushed_image(&store, "chunky", Some(common::incompressible(9 << 20, 7)));
    let fake = forgetful_upload_registry(Lose::FirstChunk);
    let target = reference(&format!("{}/{REPOSITORY}:1", fake.host()));
    client(fast_options())
        .push(&store, &reference("chunky:1"), &target, progress())
        .await
        .unwrap();
    assert_eq!(
        count(&fake, |r| r.method == "GET"),
        1,
        "one status request after the lost answer"
    );
    let requests = fake.requests();
    let ranges: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "PATCH")
        .filter_map(|r| r.header("content-range"))
        .collect();
    let first = format!("0-{}", (8 << 20) - 1);
    assert_eq!(
        ranges.iter().filter(|r| **r == first).count(),
        1,
        "the first chunk was sent again: {ranges:?}"
    );
    assert_eq!(ranges.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_the_closing_put_is_checked_not_repeated() {
    let (_store_dir, store) = empty_store();
    pushed_image(&store, "closing", Some(common::incompressible(9 << 20, 8)));
    let fake = forgetful_upload_registry(Lose::ClosingPut);
    let target = reference(&format!("{}/{REPOSITORY}:1", fake.host()));
    client(fast_options())
        .push(&store, &reference("closing:1"), &target, progress())
        .await
        .unwrap();
    let closing_puts = count(&fake, |r| {
        r.method == "PUT" && r.path.contains("/uploads/") && r.body.is_empty()
    });
    assert_eq!(closing_puts, 1, "the closing PUT was repeated");
}

/// A token registry whose tokens carry their scopes and live `lifetime` seconds, and which
/// asks for the source repository's pull scope on a mount, as distribution does. Counts the
/// requests refused for an expired token.
fn scoped_token_registry(lifetime: u64) -> (FakeRegistry, Arc<AtomicUsize>) {
    let issued = Mutex::new(Vec::<(String, std::time::Instant)>::new());
    let expired = Arc::new(AtomicUsize::new(0));
    let expired_count = expired.clone();
    let fake = FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        let mut issued = issued.lock().unwrap();
        if request.path == "/token" {
            let scopes: Vec<String> = request
                .query
                .as_deref()
                .unwrap_or_default()
                .split('&')
                .filter_map(|pair| pair.strip_prefix("scope="))
                .map(|s| {
                    s.replace("%3A", ":")
                        .replace("%2F", "/")
                        .replace("%2C", ",")
                })
                .collect();
            let token = format!("t{}", issued.len());
            issued.push((scopes.join(" "), std::time::Instant::now()));
            return FakeResponse::json(
                200,
                &serde_json::json!({ "token": token, "expires_in": lifetime }),
            );
        }
        let needed = match request.query.as_deref() {
            Some(q) if q.contains("mount=") => {
                format!("repository:skills/source:pull repository:{REPOSITORY}:pull,push")
            }
            _ => format!("repository:{REPOSITORY}:pull,push"),
        };
        let grant = request
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer t"))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| issued.get(n));
        let covers = grant.is_some_and(|(scopes, _)| {
            needed.split(' ').all(|s| scopes.split(' ').any(|t| t == s))
        });
        let fresh = grant.is_some_and(|(_, at)| at.elapsed() < Duration::from_secs(lifetime));
        if covers && !fresh {
            expired.fetch_add(1, Ordering::SeqCst);
        }
        if !covers || !fresh {
            return FakeResponse::status(401).with_header(
                "www-authenticate",
                format!(r#"Bearer realm="http://{host}/token",service="fake",scope="{needed}""#),
            );
        }
        match request.method.as_str() {
            "POST" => FakeResponse::status(201),
            "PUT" => {
                let digest = Digest::sha256(&request.body).to_string();
                FakeResponse::status(201).with_header("docker-content-digest", digest)
            }
            _ => FakeResponse::status(404),
        }
    });
    (fake, expired_count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_is_retried_on_503() {
    let image = Image::build("token-retry");
    let tokens = AtomicUsize::new(0);
    let fake = FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        if request.path == "/token" {
            return if tokens.fetch_add(1, Ordering::SeqCst) == 0 {
                FakeResponse::status(503)
            } else {
                FakeResponse::json(200, &serde_json::json!({ "token": "t" }))
            };
        }
        if request.header("authorization") != Some("Bearer t") {
            return FakeResponse::status(401).with_header(
                "www-authenticate",
                format!(r#"Bearer realm="http://{host}/token",service="fake""#),
            );
        }
        image.serve(request)
    });
    client(fast_options())
        .resolve(&remote(&fake))
        .await
        .unwrap();
    let token_requests = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/token")
        .count();
    assert_eq!(token_requests, 2);
}

fn count(fake: &FakeRegistry, what: impl Fn(&FakeRequest) -> bool) -> usize {
    fake.requests().iter().filter(|r| what(r)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_heads_and_mounts_reuse_the_session_token() {
    let (fake, _) = scoped_token_registry(300);
    let (_store_dir, store) = empty_store();
    pushed_image(&store, "mounted", None);
    // Named as if pulled from another repository of the same registry: blobs are mounted.
    let source = reference(&format!("{}/skills/source:1", fake.host()));
    store.tag(&reference("mounted:1"), &source).unwrap();
    let target = reference(&format!("{}/{REPOSITORY}:1", fake.host()));
    client(fast_options())
        .push(&store, &source, &target, progress())
        .await
        .unwrap();
    let tokens = count(&fake, |r| r.path == "/token");
    // One token for pull,push; one more once a mount asks for the source's pull scope too.
    assert_eq!(tokens, 2, "a token per request: {:?}", fake.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_renewed_before_the_registry_refuses_it() {
    let (fake, expired) = scoped_token_registry(1);
    let (_store_dir, store) = empty_store();
    pushed_image(&store, "expiring", None);
    let target = reference(&format!("{}/{REPOSITORY}:1", fake.host()));
    let client = client(fast_options());
    for _ in 0..2 {
        client
            .push(&store, &reference("expiring:1"), &target, progress())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(
        expired.load(Ordering::SeqCst),
        0,
        "an expired token was sent and refused"
    );
    assert!(count(&fake, |r| r.path == "/token") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_breaks_after_the_last_byte_is_not_resumed_past_the_end() {
    let image = Image::build("complete");
    let served = image.clone();
    let fake = FakeRegistry::start(move |request| {
        if request.path == served.layer_path() {
            if request.header("range").is_some() {
                return FakeResponse::status(416);
            }
            let bytes = served.layer_bytes.clone();
            let announced = bytes.len() as u64 + 10;
            return FakeResponse::truncated(200, NO_HEADERS, bytes, announced);
        }
        served.serve(request)
    });
    let (_store_dir, store) = empty_store();
    client(fast_options())
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    assert_eq!(store.read_blob(&image.layer).unwrap(), image.layer_bytes);
    assert_eq!(count(&fake, |r| r.header("range").is_some()), 0);
}

/// Progress that keeps each transfer's position.
#[derive(Default)]
struct Positions(Mutex<Vec<i128>>);

impl Progress for Positions {
    fn start(&self, _: &str, _: Option<u64>) -> u64 {
        let mut all = self.0.lock().unwrap();
        all.push(0);
        all.len() as u64 - 1
    }
    fn advance(&self, id: u64, bytes: u64) {
        self.0.lock().unwrap()[usize::try_from(id).unwrap()] += i128::from(bytes);
    }
    fn restart(&self, id: u64) {
        self.0.lock().unwrap()[usize::try_from(id).unwrap()] = 0;
    }
    fn finish(&self, _: u64) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_restarts_when_a_server_ignores_the_range() {
    let image = Image::build("restarted");
    let served = image.clone();
    let gets = AtomicUsize::new(0);
    let fake = FakeRegistry::start(move |request| {
        if request.path == served.layer_path() && gets.fetch_add(1, Ordering::SeqCst) == 0 {
            let bytes = served.layer_bytes.clone();
            let half = bytes[..bytes.len() / 2].to_vec();
            return FakeResponse::truncated(200, NO_HEADERS, half, bytes.len() as u64);
        }
        served.serve(request)
    });
    let (_store_dir, store) = empty_store();
    let positions = Arc::new(Positions::default());
    client(fast_options())
        .pull(&store, &remote(&fake), positions.clone())
        .await
        .unwrap();
    let layer_size = i128::try_from(image.layer_bytes.len()).unwrap();
    let all = positions.0.lock().unwrap().clone();
    assert!(
        all.contains(&layer_size) && all.iter().all(|p| *p <= layer_size),
        "positions {all:?} for a {layer_size}-byte layer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_missing_from_the_store_fails_the_push_before_its_put() {
    let registry = accepting_registry(|| "/v2/upload/1".into(), false);
    let (_store_dir, store) = empty_store();
    let layer = pushed_image(&store, "vanished", None);
    std::fs::remove_file(store.blob_path(&layer)).unwrap();
    let target = reference(&format!("{}/{REPOSITORY}:1", registry.host()));
    let err = client(fast_options())
        .push(&store, &reference("vanished:1"), &target, progress())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Io { .. }), "{err:?}");
    let empty_puts = count(&registry, |r| {
        r.method == "PUT" && r.path.contains("upload") && r.body.is_empty()
    });
    assert_eq!(empty_puts, 0, "an empty PUT stood in for the missing blob");
}

/// A registry holding one image under two repositories, `skills/fake` and `skills/other`,
/// that wants Basic credentials (`bearer`: false) or scoped tokens for each repository.
fn two_repository_registry(bearer: bool) -> FakeRegistry {
    let image = Image::build("two-repositories");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        let repository = if request.path.starts_with("/v2/skills/other/") {
            "skills/other"
        } else {
            REPOSITORY
        };
        if request.path == "/token" {
            let scope = request.query.clone().unwrap_or_default();
            return FakeResponse::json(200, &serde_json::json!({ "token": scope }));
        }
        let authorized = match request.header("authorization") {
            // A token is good for the repository its scope names.
            Some(token) if bearer => token.contains(&repository.replace('/', "%2F")),
            header => header == Some(basic.as_str()),
        };
        if !authorized {
            let challenge = if bearer {
                format!(
                    r#"Bearer realm="http://{host}/token",service="fake",scope="repository:{repository}:pull""#
                )
            } else {
                r#"Basic realm="fake""#.to_owned()
            };
            return FakeResponse::status(401).with_header("www-authenticate", challenge);
        }
        let mut same = request.clone();
        same.path = request
            .path
            .replace("/v2/skills/other/", &format!("/v2/{REPOSITORY}/"));
        image.serve(&same)
    })
}

/// Pulls `skills/fake:1` and then `skills/other:1`; returns the requests refused with a 401.
async fn unauthorized_pulls_of_two_repositories(fake: &FakeRegistry) -> Vec<FakeRequest> {
    let credentials = tempfile::tempdir().unwrap();
    let client = client_with_password(fake, credentials.path());
    let (_store_dir, store) = empty_store();
    for repository in [REPOSITORY, "skills/other"] {
        let image = reference(&format!("{}/{repository}:1", fake.host()));
        client.pull(&store, &image, progress()).await.unwrap();
    }
    fake.requests()
        .into_iter()
        .filter(|r| r.path != "/token" && r.header("authorization").is_none())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_repository_gets_basic_credentials_without_a_401_first() {
    let fake = two_repository_registry(false);
    let refused = unauthorized_pulls_of_two_repositories(&fake).await;
    // The first request of all learns how the registry asks; no other is refused.
    assert_eq!(refused.len(), 1, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_repository_gets_its_token_without_a_401_first() {
    let fake = two_repository_registry(true);
    let refused = unauthorized_pulls_of_two_repositories(&fake).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    // Each repository still gets a token of its own scope.
    let tokens: HashSet<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .filter_map(|r| r.query)
        .collect();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_of_a_path_scoped_entry_are_not_sent_ahead_to_another_path() {
    let fake = two_repository_registry(true);
    // One entry per repository (podman's path-scoped keys): the second repository's
    // credentials did not answer the first's challenge, so they wait for its own.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let host = fake.host();
    std::fs::write(
        &path,
        serde_json::json!({ "auths": {
            format!("{host}/{REPOSITORY}"): { "auth": auth },
            format!("{host}/skills/other"): { "auth": auth },
        }})
        .to_string(),
    )
    .unwrap();
    let client = skillport_registry::Client::new(
        skillport_registry::auth::Credentials::from_files(vec![
            skillport_registry::auth::AuthFile::read(&path).unwrap(),
        ]),
        fast_options(),
    )
    .unwrap();
    let (_store_dir, store) = empty_store();
    for repository in [REPOSITORY, "skills/other"] {
        let image = reference(&format!("{host}/{repository}:1"));
        client.pull(&store, &image, progress()).await.unwrap();
    }
    let refused: Vec<FakeRequest> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path != "/token" && r.header("authorization").is_none())
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_for_a_second_repository_is_the_same_error_as_without_answering_ahead() {
    // Tokens for `skills/other` are refused: answering its challenge ahead fails, and so does
    // answering the registry's own 401 after it; the pull reports that, once.
    let image = Image::build("refused-token");
    let fake = FakeRegistry::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_owned();
        let query = request.query.clone().unwrap_or_default();
        if request.path == "/token" {
            if query.contains("other") {
                return FakeResponse::status(401);
            }
            return FakeResponse::json(200, &serde_json::json!({ "token": query }));
        }
        let repository = if request.path.starts_with("/v2/skills/other/") {
            "skills/other"
        } else {
            REPOSITORY
        };
        let authorized = request
            .header("authorization")
            .is_some_and(|token| token.contains(&repository.replace('/', "%2F")));
        if !authorized {
            return FakeResponse::status(401).with_header(
                "www-authenticate",
                format!(
                    r#"Bearer realm="http://{host}/token",service="fake",scope="repository:{repository}:pull""#
                ),
            );
        }
        image.serve(request)
    });
    let credentials = tempfile::tempdir().unwrap();
    let client = client_with_password(&fake, credentials.path());
    let (_store_dir, store) = empty_store();
    client
        .pull(&store, &remote(&fake), progress())
        .await
        .unwrap();
    let other = reference(&format!("{}/skills/other:1", fake.host()));
    let err = client.pull(&store, &other, progress()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(!format!("{err:?}{err}").contains(PASSWORD));
    // One token request ahead (tried once), one after the registry's 401.
    let refused = count(&fake, |r| {
        r.path == "/token" && r.query.as_deref().unwrap_or_default().contains("other")
    });
    assert_eq!(refused, 2, "{:?}", fake.requests());
}
