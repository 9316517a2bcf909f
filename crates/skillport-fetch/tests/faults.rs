//! Faults: a real registry killed mid-download (retried, then a clear failure; restarted, a
//! re-run succeeds), downloads cut short by a scripted registry (retried until they succeed),
//! a registry that hangs (bounded by the timeout), a second fetch into the same folder, and
//! what an interrupted run left behind.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    Site, contents, failure_of, fast_options, file, incompressible, plan, push_skill, run,
    skill_md, tar_gz, top_level, try_run, write_skill,
};
use skillport_fetch::plan::PlannedSkill;
use skillport_fetch::{Action, FetchError, FetchOptions, FetchPlan};
use skillport_oci::Digest;
use skillport_oci::spec::{Descriptor, ImageManifest, media};
use skillport_testkit::{FakeRegistry, FakeRequest, FakeResponse, NO_HEADERS};

/// Bytes of the layer arrived so far in `into`'s staging folders: the download streams into
/// the unpacker, which writes the files there as they come.
fn downloading(into: &Path) -> u64 {
    fn bytes_below(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| match entry.file_type() {
                Ok(kind) if kind.is_dir() => bytes_below(&entry.path()),
                Ok(_) => entry.metadata().map_or(0, |meta| meta.len()),
                Err(_) => 0,
            })
            .sum()
    }
    let Ok(entries) = fs::read_dir(into) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(".skillport-staging-")
        })
        .map(|entry| bytes_below(&entry.path()))
        .sum()
}

#[test]
fn a_registry_killed_mid_download_is_retried_then_reported_and_a_rerun_succeeds() {
    let work = tempfile::tempdir().unwrap();
    let mut a = Site::start(&work.path().join("secrets"), "artifactory");
    let big = write_skill(
        &work.path().join("src"),
        "big",
        &[("model.bin", &incompressible(50 << 20, 7))],
    );
    let (reference, digest) = push_skill(&a, work.path(), &big, "big", "1");
    let plan = plan(
        vec![PlannedSkill::image("big", format!("{reference}@{digest}"))],
        &[&a],
    );
    let into = work.path().join("skills");
    let options = FetchOptions {
        attempts: 3,
        backoff: Duration::from_millis(200),
        ..fast_options()
    };

    let fetching = std::thread::spawn({
        let (plan, into, options) = (plan.clone(), into.clone(), options.clone());
        move || run(&plan, &into, &options)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while downloading(&into) == 0 {
        assert!(
            !fetching.is_finished(),
            "the download ended before the registry could be stopped"
        );
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    a.registry.stop();
    let started = Instant::now();
    let report = fetching.join().unwrap();
    failure_of(
        &report,
        "big",
        &[&a.host(), "cannot connect", "(after 3 attempts)"],
        &[&a.password()],
    );
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "two backoffs of 200 and 400 ms between the attempts"
    );
    assert_eq!(
        top_level(&into),
        ["index.json"],
        "no half skill, no staging folder"
    );

    a.registry.restart();
    let report = run(&plan, &into, &options);
    assert_eq!(
        report.outcomes[0]
            .result
            .as_ref()
            .map(|done| done.action)
            .ok(),
        Some(Action::Fetched)
    );
    assert_eq!(contents(&into.join("big")), contents(&big));
}

/// A registry on 127.0.0.1 (plain HTTP) serving one skill image `skills/<name>:1`, whose layer
/// requests go to `blob`.
fn scripted(
    name: &str,
    blob: impl Fn(&FakeRequest, &[u8]) -> FakeResponse + Send + Sync + 'static,
) -> (FakeRegistry, String, Vec<u8>) {
    scripted_declaring(name, None, blob)
}

/// [`scripted`], with the manifest declaring the layer's size as `declared_size` (its true size
/// when `None`).
fn scripted_declaring(
    name: &str,
    declared_size: Option<u64>,
    blob: impl Fn(&FakeRequest, &[u8]) -> FakeResponse + Send + Sync + 'static,
) -> (FakeRegistry, String, Vec<u8>) {
    let layer = tar_gz(&[
        file("SKILL.md", &skill_md(name)),
        file("data.bin", &incompressible(256 << 10, 3)),
    ]);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let manifest = serde_json::to_vec(&ImageManifest {
        schema_version: 2,
        media_type: Some(media::IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::of(media::IMAGE_CONFIG, &config),
        layers: vec![Descriptor {
            size: declared_size.unwrap_or(layer.len() as u64),
            ..Descriptor::of(media::LAYER_TAR_GZIP, &layer)
        }],
        annotations: std::collections::BTreeMap::new(),
        subject: None,
    })
    .unwrap();
    let manifest_digest = Digest::sha256(&manifest).to_string();
    let layer_path = format!("/v2/skills/{name}/blobs/{}", Digest::sha256(&layer));
    let config_path = format!("/v2/skills/{name}/blobs/{}", Digest::sha256(&config));
    let manifests = format!("/v2/skills/{name}/manifests/");
    let served = layer.clone();
    let fake = FakeRegistry::start(move |request| {
        if request.path == "/v2/" {
            FakeResponse::status(200)
        } else if request.path.starts_with(&manifests) {
            FakeResponse::bytes(
                200,
                [
                    ("content-type", media::IMAGE_MANIFEST),
                    ("docker-content-digest", manifest_digest.as_str()),
                ],
                manifest.clone(),
            )
        } else if request.path == config_path {
            FakeResponse::bytes(200, NO_HEADERS, config.clone())
        } else if request.path == layer_path {
            blob(request, &served)
        } else {
            FakeResponse::status(404)
        }
    });
    let reference = format!("{}/skills/{name}:1", fake.host());
    (fake, reference, layer)
}

fn layer_requests(fake: &FakeRegistry, name: &str, layer: &[u8]) -> usize {
    let path = format!("/v2/skills/{name}/blobs/{}", Digest::sha256(layer));
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

#[test]
fn downloads_cut_short_are_retried_until_one_arrives_whole() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    // The first two layer requests end halfway; the third is whole. The registry client resumes
    // once (the second request), then gives up on that attempt; the fetch tries the skill again.
    let (fake, reference, layer) = scripted("flaky", move |_, layer| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            FakeResponse::truncated(
                200,
                NO_HEADERS,
                layer[..layer.len() / 2].to_vec(),
                layer.len() as u64,
            )
        } else {
            FakeResponse::bytes(200, NO_HEADERS, layer.to_vec())
        }
    });
    let work = tempfile::tempdir().unwrap();
    let into = work.path().join("skills");
    let plan = FetchPlan {
        skills: vec![PlannedSkill::image("flaky", &reference)],
        ..FetchPlan::new()
    };
    let report = run(&plan, &into, &fast_options());
    assert!(report.is_success(), "{:?}", report.termination_message());
    assert_eq!(served.load(Ordering::SeqCst), 3);
    assert_eq!(layer_requests(&fake, "flaky", &layer), 3);
    assert_eq!(top_level(&into), ["flaky", "index.json"]);
    assert_eq!(
        common::index(&into).skills[0].bytes,
        (skill_md("flaky").len() + (256 << 10)) as u64
    );
}

/// Issue 7, finding 5: only the unpacked bytes were bounded, so a manifest declaring a 30 GB
/// layer filled `--into` before anything stopped it. Now the declared size is checked against
/// the download limit before the layer is asked for.
#[test]
fn a_layer_declared_larger_than_the_download_limit_is_refused_before_downloading() {
    // Asked for, the layer sends 1 MiB and then nothing: a client that downloads it waits for
    // the timeout (without filling the disk of the machine running this test).
    let (fake, reference, layer) = scripted_declaring("huge", Some(30 << 30), |_, layer| {
        FakeResponse::stall_after(200, NO_HEADERS, layer[..1 << 10].to_vec(), None)
    });
    let work = tempfile::tempdir().unwrap();
    let into = work.path().join("skills");
    let plan = FetchPlan {
        skills: vec![PlannedSkill::image("huge", &reference)],
        ..FetchPlan::new()
    };
    let options = FetchOptions {
        timeout: Duration::from_secs(5),
        max_download_bytes: 64 << 20,
        ..fast_options()
    };
    let report = run(&plan, &into, &options);
    failure_of(&report, "huge", &[&fake.host(), "limit"], &[]);
    let failure = report.failures().next().unwrap();
    assert_eq!(failure.attempts, 1, "a size over the limit is not retried");
    assert_eq!(
        layer_requests(&fake, "huge", &layer),
        0,
        "the layer was never asked for"
    );
    assert_eq!(top_level(&into), ["index.json"]);
}

#[test]
fn a_registry_that_never_finishes_is_bounded_by_the_timeout() {
    let (fake, reference, _) = scripted("stuck", |_, layer| {
        FakeResponse::stall_after(
            200,
            NO_HEADERS,
            layer[..1024].to_vec(),
            Some(layer.len() as u64),
        )
    });
    let work = tempfile::tempdir().unwrap();
    let into = work.path().join("skills");
    let plan = FetchPlan {
        skills: vec![PlannedSkill::image("stuck", &reference)],
        ..FetchPlan::new()
    };
    let options = FetchOptions {
        timeout: Duration::from_secs(2),
        ..fast_options()
    };
    let started = Instant::now();
    let report = run(&plan, &into, &options);
    let elapsed = started.elapsed();
    failure_of(
        &report,
        "stuck",
        &[&reference, "not fetched within the 2s timeout"],
        &[],
    );
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    assert!(
        report
            .failures()
            .next()
            .unwrap()
            .hint()
            .unwrap()
            .contains("--timeout"),
        "the hint names the flag"
    );
    assert_eq!(top_level(&into), ["index.json"]);
    drop(fake);
}

#[test]
fn a_second_fetch_into_the_same_folder_waits_for_the_first() {
    let work = tempfile::tempdir().unwrap();
    let into = work.path().join("skills");
    fs::create_dir_all(&into).unwrap();
    let holder = fs::File::open(&into).unwrap();
    holder.lock().unwrap();
    let options = FetchOptions {
        timeout: Duration::from_millis(500),
        ..fast_options()
    };
    let err = try_run(&FetchPlan::new(), &into, &options).unwrap_err();
    assert!(matches!(err, FetchError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("another skillport fetch"), "{err}");
    holder.unlock().unwrap();
    let report = run(&FetchPlan::new(), &into, &options);
    assert!(report.is_success());
}

#[test]
fn what_an_interrupted_run_left_is_removed() {
    let work = tempfile::tempdir().unwrap();
    let into = work.path().join("skills");
    fs::create_dir_all(into.join(".skillport-staging-abc123/half/scripts")).unwrap();
    fs::write(into.join(".skillport-staging-abc123/half/scripts/x"), b"x").unwrap();
    fs::write(into.join(".skillport-index-xyz"), b"{").unwrap();
    fs::write(into.join(".hidden-not-ours"), b"keep").unwrap();
    run(&FetchPlan::new(), &into, &fast_options());
    assert_eq!(top_level(&into), [".hidden-not-ours", "index.json"]);
}
