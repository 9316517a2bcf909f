//! Scale on a real API server: N SkillSets attached to N Deployments (N = 1000 unless
//! SKILLPORT_SCALE_N says otherwise), the operator binary running as deploy/'s ServiceAccount
//! against a TLS + auth registry. Prints the time from start to all Ready, API requests per
//! SkillSet (counted by the API server's own `apiserver_request_total`), the writes of a full
//! no-op resync (a restarted operator reconciling everything again; target 0) and the operator's
//! resident memory when idle. Target at `SKILLPORT_SCALE_N=10000`: all Ready in under 5 minutes,
//! idle RSS under 100 MiB.
//!
//! `SKILLPORT_K8S_BIN=$(scripts/k8s-tools.sh --bin-dir) cargo bench -p skillport-operator --bench scale`

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use skillport_operator::api::SkillSet;
use skillport_testkit::{Cluster, ClusterOptions, Registry};
use support::{
    INIT_IMAGE, NAMESPACE, deployment_manifest, gitops_apply, prepare, push_skill, skill_set,
};

fn main() {
    let count: usize = std::env::var("SKILLPORT_SCALE_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scale(count));
}

/// `apiserver_request_total` summed by verb, leaving out Leases (the API server renews its own)
/// and dry runs.
async fn requests(client: &kube::Client) -> BTreeMap<String, f64> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await
        .unwrap();
    let mut by_verb = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        // Dry runs (the operator's image-volume probe) store nothing.
        if line.contains("resource=\"leases\"") || line.contains("dry_run=\"All\"") {
            continue;
        }
        let verb = line
            .split("verb=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?")
            .to_owned();
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap_or(0.0);
        *by_verb.entry(verb).or_insert(0.0) += value;
    }
    by_verb
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(verb, n)| (verb.clone(), n - before.get(verb).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

fn writes(counts: &BTreeMap<String, f64>) -> f64 {
    ["POST", "PUT", "PATCH", "APPLY", "DELETE"]
        .iter()
        .map(|verb| counts.get(*verb).copied().unwrap_or(0.0))
        .sum()
}

fn start_operator(kubeconfig: &std::path::Path, registry: &Registry, metrics_port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_skillport-operator"))
        .args([
            "run",
            "--init-image",
            INIT_IMAGE,
            "--namespace",
            "skillport-system",
        ])
        .arg("--ca-file")
        .arg(registry.ca_file().unwrap())
        .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
        .args(["--concurrency", "8"])
        .env("KUBECONFIG", kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("SCALE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .spawn()
        .expect("starting skillport-operator")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The operator's own `skillport_reconciles` counter.
fn reconciles(port: u16) -> f64 {
    let output = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
        .output();
    let text = output
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("skillport_reconciles_total "))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

async fn all_ready(skill_sets: &Api<SkillSet>, count: usize) -> (Duration, u32) {
    let started = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        let list = skill_sets.list(&ListParams::default()).await.unwrap();
        let ready = list
            .items
            .iter()
            .filter(|s| {
                s.status.as_ref().is_some_and(|status| {
                    status
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if ready == count {
            return (started.elapsed(), polls);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1200),
            "{ready} of {count} Ready after 20 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// N Deployments, each with a SkillSet (two image skills) naming it, 16 at a time.
async fn create_all(admin: &kube::Client, host: &str, count: usize) {
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    futures_util::stream::iter(0..count)
        .map(|i| {
            let (deployments, skill_sets) = (&deployments, &skill_sets);
            async move {
                let name = format!("agent-{i:04}");
                gitops_apply(deployments, &deployment_manifest(&name))
                    .await
                    .unwrap();
                // The default updateInterval (the tests' helper says 10s).
                let spec = json!({
                    "workloadRef": {"kind": "Deployment", "name": name},
                    "updateInterval": "10m",
                });
                skill_sets
                    .create(&PostParams::default(), &skill_set(&name, host, &spec))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

async fn scale(count: usize) {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let host = registry.host();
    push_skill(&registry, work.path(), "pdf", "1", "pdf").await;
    push_skill(&registry, work.path(), "review", "1", "review").await;
    let admin = prepare(&cluster, &registry, work.path()).await;
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let made = Instant::now();
    create_all(&admin, &host, count).await;
    eprintln!(
        "{count} Deployments and SkillSets created in {:.1?}",
        made.elapsed()
    );

    let identity = cluster
        .service_account("skillport-system", "skillport-operator")
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let before = requests(&admin).await;
    let operator = start_operator(&identity.kubeconfig, &registry, port);
    let (ready_in, polls) = all_ready(&skill_sets, count).await;
    let first = delta(&requests(&admin).await, &before);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss = rss_mib(operator.id());
    stop(operator);

    // A full resync: a new operator process reconciles every SkillSet again.
    let before = requests(&admin).await;
    let operator = start_operator(&identity.kubeconfig, &registry, port);
    let resync_started = Instant::now();
    #[allow(clippy::cast_precision_loss)]
    while reconciles(port) < count as f64 {
        assert!(
            resync_started.elapsed() < Duration::from_secs(600),
            "resync too slow"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let resync_in = resync_started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resync = delta(&requests(&admin).await, &before);
    stop(operator);

    #[allow(clippy::cast_precision_loss)]
    let per = |n: f64| n / count as f64;
    let mut first_by_verb = first.clone();
    // The bench's own polling LISTs are not the operator's.
    if let Some(list) = first_by_verb.get_mut("LIST") {
        *list -= f64::from(polls);
    }
    println!("scale: {count} SkillSets (2 image skills each) on {count} Deployments");
    println!(
        "  all Ready after          {:.1} s ({:.1} SkillSets/s)",
        ready_in.as_secs_f64(),
        per(1.0).recip() / ready_in.as_secs_f64()
    );
    println!(
        "  API requests per SkillSet {:.2} ({})",
        per(first_by_verb.values().sum()),
        first_by_verb
            .iter()
            .map(|(verb, n)| format!("{verb} {:.2}", per(*n)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  writes per SkillSet       {:.2}",
        per(writes(&first_by_verb))
    );
    println!(
        "  no-op resync: {count} reconciles in {:.1} s, writes {} (target 0); requests {}",
        resync_in.as_secs_f64(),
        writes(&resync),
        resync
            .iter()
            .map(|(verb, n)| format!("{verb} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Issue 22's target, at 10,000 SkillSets: all Ready in under 5 minutes, idle RSS under
    // 100 MiB (deploy/'s memory limit is sized from this line).
    println!("  operator idle RSS         {idle_rss:.1} MiB (target < 100 MiB at 10,000)");
}
