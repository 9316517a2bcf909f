//! The admission webhook under load: 500 requests per second (open loop: each request is sent
//! at its scheduled time, and its latency counts from then, so a slow answer cannot hide the
//! ones queued behind it) for 60 s (SKILLPORT_WEBHOOK_SECONDS to change), over loopback HTTPS,
//! with a realistic labelled Pod AdmissionReview (tests/fixtures/admission/pod-image-volume.json)
//! to `/mutate-pods`, then the same body to the same server's `/echo` — the floor: TLS, HTTP and
//! the body, without admission. Prints p50 / p99 / max latency and errors for both, and the ratio.
//! Target: `/mutate-pods` p99 ≤ 5 ms with zero errors.
//!
//! The SkillSet is read from a real API server (its status written as the operator would); the
//! webhook server and the load generator run in this process on runtimes of their own.
//!
//! `SKILLPORT_K8S_BIN=$(scripts/k8s-tools.sh --bin-dir) cargo bench -p skillport-operator --bench webhook`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use skillport_operator::api::SkillSet;
use skillport_operator::translate::Options;
use skillport_operator::webhook::{self, admission};
use skillport_testkit::{Cluster, Registry};
use support::{INIT_IMAGE, NAMESPACE, WebhookFiles, prepare, skill_set};

const RATE: u32 = 500;

struct Run {
    latencies: Vec<Duration>,
    errors: usize,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds: u64 = std::env::var("SKILLPORT_WEBHOOK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // The webhook server's runtime: its own threads, as in the operator.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (cluster, files, port, body) = server.block_on(start());
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mutate = load.block_on(drive(&files, port, "/mutate-pods", &body, seconds));
    let echo = load.block_on(drive(&files, port, "/echo", &body, seconds));
    println!(
        "webhook load: {RATE} req/s for {seconds} s each over loopback HTTPS, a {} byte labelled Pod AdmissionReview",
        body.len()
    );
    let p99_mutate = report("/mutate-pods", &mutate);
    let p99_echo = report("/echo (floor)", &echo);
    println!(
        "  p99 ratio /mutate-pods : /echo = {:.2}",
        p99_mutate.as_secs_f64() / p99_echo.as_secs_f64().max(1e-9)
    );
    let met = p99_mutate <= Duration::from_millis(5) && mutate.errors == 0;
    println!(
        "  target p99 <= 5 ms with zero errors: {}",
        if met { "met" } else { "NOT met" }
    );
    drop(cluster);
}

/// The API server with a resolved SkillSet, and the webhook serving on 127.0.0.1.
async fn start() -> (Cluster, WebhookFiles, u16, Vec<u8>) {
    let cluster = Cluster::start_default().await;
    let registry = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let admin = prepare(&cluster, &registry, work.path()).await;
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("tools", "registry.example", &json!({})),
        )
        .await
        .unwrap();
    let digest = |n: u8| format!("sha256:{}", format!("{n:x}").repeat(64));
    let status = json!({"status": {
        "observedGeneration": 1,
        "delivery": "ImageVolume",
        "skills": [{"name": "pdf", "digest": digest(1)}, {"name": "review", "digest": digest(2)}],
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Resolved", "message": "bench",
            "observedGeneration": 1, "lastTransitionTime": "2026-12-02T06:00:00Z",
        }],
    }});
    skill_sets
        .patch_status("tools", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let files = WebhookFiles::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let (state, _cache) = admission::Admission::start(admin, Options::new(INIT_IMAGE), "skillport");
    tokio::spawn(webhook::serve(
        tcp,
        files.serving.tls.clone(),
        webhook::with_echo(admission::router(state)),
        std::future::pending(),
    ));
    let body = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/admission/pod-image-volume.json"),
    )
    .unwrap();
    (cluster, files, port, body)
}

/// `RATE` requests per second to `path` for `seconds`, after a second of warm-up.
async fn drive(files: &WebhookFiles, port: u16, path: &str, body: &[u8], seconds: u64) -> Run {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(files.ca.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = Arc::new(format!("https://127.0.0.1:{port}{path}"));
    let body = axum::body::Bytes::from(body.to_vec());
    let mutate = path == "/mutate-pods";
    let send = |scheduled: Instant| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tokio::spawn(async move {
            let answer = client.post(url.as_str()).body(body).send().await;
            let ok = match answer {
                Ok(answer) if answer.status() == 200 => match answer.bytes().await {
                    // An admission answer must allow the Pod and carry the patch.
                    Ok(bytes) => {
                        let bytes: &[u8] = &bytes;
                        !mutate
                            || (contains(bytes, b"\"allowed\":true")
                                && contains(bytes, b"\"patch\""))
                    }
                    Err(_) => false,
                },
                _ => false,
            };
            (scheduled.elapsed(), ok)
        })
    };
    // Warm-up: connections made, caches filled.
    let warm: Vec<_> = (0..RATE).map(|_| send(Instant::now())).collect();
    for task in warm {
        let _ = task.await;
    }
    let total = usize::try_from(u64::from(RATE) * seconds).unwrap();
    let period = Duration::from_secs(1) / RATE;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = started + period * u32::try_from(i).unwrap();
        tokio::time::sleep_until(scheduled.into()).await;
        tasks.push(send(scheduled));
    }
    let mut run = Run {
        latencies: Vec::with_capacity(total),
        errors: 0,
    };
    for task in tasks {
        let (latency, ok) = task.await.unwrap();
        run.latencies.push(latency);
        if !ok {
            run.errors += 1;
        }
    }
    run
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Prints one line; returns p99.
fn report(what: &str, run: &Run) -> Duration {
    let mut sorted = run.latencies.clone();
    sorted.sort();
    let at = |permille: usize| sorted[(sorted.len() * permille / 1000).min(sorted.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {what:<14} p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   errors {}/{}",
        ms(at(500)),
        ms(at(990)),
        ms(*sorted.last().unwrap()),
        run.errors,
        sorted.len()
    );
    at(990)
}
