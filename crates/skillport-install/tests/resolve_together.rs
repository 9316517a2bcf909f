//! `outdated` resolves every locked tag at once, not one after another: against a registry that
//! answers each tag after a delay, the second request arrives before the first is answered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skillport_install::{Lock, Locked, Project, Source, outdated};
use skillport_oci::Store;
use skillport_registry::auth::Credentials;
use skillport_registry::{Client, ClientOptions};
use skillport_testkit::{FakeRegistry, FakeResponse};

const TAGS: usize = 6;
const DELAY: Duration = Duration::from_millis(800);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outdated_asks_for_every_tag_at_once_and_reports_in_lock_order() {
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = arrivals.clone();
    let moved = format!("sha256:{}", "1".repeat(64));
    let answer = moved.clone();
    let fake = FakeRegistry::start(move |request| {
        if request.path == "/v2/" {
            return FakeResponse::status(200);
        }
        seen.lock().unwrap().push(Instant::now());
        FakeResponse::bytes(
            200,
            [
                ("content-type", "application/vnd.oci.image.index.v1+json"),
                ("docker-content-digest", answer.as_str()),
                ("content-length", "2"),
            ],
            b"{}".to_vec(),
        )
        .delayed(DELAY)
    });
    let work = tempfile::tempdir().unwrap();
    let project = Project::local(work.path(), work.path());
    let lock = Lock {
        skills: (0..TAGS)
            .map(|i| {
                let locked = Locked {
                    source: Source {
                        image: Some(format!("{}/skills/s{i}:1", fake.host())),
                        ..Source::default()
                    },
                    digest: Some(format!("sha256:{}", "0".repeat(64))),
                    commit: None,
                    tree_hash: format!("sha256:{}", "2".repeat(64)),
                    files: std::collections::BTreeMap::new(),
                    installed: vec![format!(".agents/skills/s{i}")],
                };
                (format!("s{i}"), locked)
            })
            .collect(),
        ..Lock::default()
    };
    skillport_install::manifest::write(&project.lock_path(), &lock).unwrap();
    let store = Store::open(&work.path().join("store")).unwrap();
    let client = Client::new(Credentials::empty(), ClientOptions::default()).unwrap();

    let found = outdated(&project, &store, &client).await.unwrap();
    let names: Vec<&str> = found.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["s0", "s1", "s2", "s3", "s4", "s5"]);
    assert!(found.iter().all(|o| o.latest == moved));

    let mut arrivals = arrivals.lock().unwrap().clone();
    arrivals.sort();
    assert!(arrivals.len() >= TAGS, "{} requests", arrivals.len());
    // One after another, each request would wait for the answer before it (DELAY).
    assert!(
        arrivals[1] - arrivals[0] < DELAY / 2,
        "the second tag was asked for {:?} after the first",
        arrivals[1] - arrivals[0]
    );
}
