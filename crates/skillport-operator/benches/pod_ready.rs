//! What users feel, on a real node: a Deployment scaled from 0 to 1 → its Pod Ready, with 20
//! skills attached in each mode, against the same Deployment without skills. Prints the
//! overhead of each mode and, for the init container, how much of it `skillport fetch` took.
//! Skills come from a TLS + auth registry with a pull secret; the first round of a mode pulls
//! cold (the skill and init images are removed from containerd before each mode;
//! `SKILLPORT_BENCH_KEEP_IMAGES=1` keeps them), later rounds find the images (ImageVolume) on
//! the node — both are printed. `SKILLPORT_BENCH_NODE_LOGS=DIR` saves the node's logs.
//!
//! `SKILLPORT_K8S_BIN=… SKILLPORT_STATIC_BIN=… cargo bench -p skillport-operator --bench pod_ready`
//! (scripts/test.sh prints both paths; the node needs root).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skillport_operator::api::SkillSet;
use skillport_testkit::{Node, NodeOptions, Registry};
use support::{NAMESPACE, gitops_apply, prepare_node, push_skill, wait_condition};

const SKILLS: usize = 20;
const ROUNDS: usize = 3;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

fn deployment(node: &Node, name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "hostNetwork": true,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "agent",
                        "image": node.agent_image(),
                        "command": ["/bin/sh", "-c", "sleep 3600"],
                        "readinessProbe": {
                            "exec": {"command": ["/bin/true"]},
                            "periodSeconds": 1,
                        },
                    }],
                },
            },
        },
    })
}

/// Scales `name` to 1 and returns the time until its Pod is Ready, and the fetch init
/// container's run time (whole seconds, as the API reports it) if it has one.
async fn scale_up(node: &Node, name: &str) -> (Duration, Option<i64>) {
    let deployments: Api<Deployment> = Api::namespaced(node.client(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(node.client(), NAMESPACE);
    let started = Instant::now();
    deployments
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    loop {
        let list = pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await
            .unwrap();
        let status = list
            .items
            .first()
            .map(|pod| serde_json::to_value(&pod.status).unwrap())
            .unwrap_or_default();
        let ready = status["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if ready {
            let fetch = status["initContainerStatuses"]
                .as_array()
                .and_then(|all| all.iter().find(|c| c["name"] == "skillport-fetch"))
                .and_then(|c| {
                    let terminated = &c["state"]["terminated"];
                    let at = |key: &str| {
                        terminated[key]
                            .as_str()
                            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                    };
                    Some(at("finishedAt")?.as_second() - at("startedAt")?.as_second())
                });
            return (started.elapsed(), fetch);
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{name}: not Ready in 3 minutes: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each round's time to Ready and, for the init container, how long `skillport fetch` took.
type Rounds = Vec<(Duration, Option<i64>)>;

/// Each mode's first round on a cold node: the skill images and the init image are removed,
/// so the first round pulls what it needs (the agent and pause images stay). The `earlier`
/// modes' Pods go first: a running Pod whose image volume lost its image makes the kubelet
/// pull it again, beside the round being measured.
async fn make_cold(node: &Node, admin: &kube::Client, host: &str, earlier: &[&str]) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    for mode in earlier {
        for round in 0..ROUNDS {
            let name = format!("{}-{round}", mode.to_ascii_lowercase().replace(' ', "-"));
            deployments
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": 0}})),
                )
                .await
                .unwrap();
        }
    }
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    while !pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if std::env::var_os("SKILLPORT_BENCH_KEEP_IMAGES").is_none() {
        let init_repository = format!("{}/skillport-test/skillport", node.registry().host());
        node.remove_images(&[&format!("{host}/"), &init_repository]);
    }
}

/// `SKILLPORT_BENCH_NODE_LOGS=DIR`: the kubelet's and containerd's logs, for the timestamps of
/// each image pull.
fn save_node_logs(node: &Node) {
    if let Some(dir) = std::env::var_os("SKILLPORT_BENCH_NODE_LOGS") {
        let dir = std::path::Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        for component in ["kubelet", "containerd"] {
            std::fs::write(dir.join(format!("{component}.log")), node.log(component)).unwrap();
        }
    }
}

async fn bench() {
    let binary = std::env::var_os("SKILLPORT_STATIC_BIN")
        .expect("SKILLPORT_STATIC_BIN: the static skillport (scripts/test.sh builds it)");
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let host = registry.host();
    for i in 0..SKILLS {
        push_skill(
            &registry,
            work.path(),
            &format!("s{i:02}"),
            "1",
            "skill body",
        )
        .await;
    }
    let node = Node::start(NodeOptions::default().trust_registry(&registry)).await;
    let (admin, operator) =
        prepare_node(&node, &registry, work.path(), std::path::Path::new(&binary)).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let skills: Vec<Value> = (0..SKILLS)
        .map(|i| json!({"name": format!("s{i:02}"), "image": format!("{host}/skills/s{i:02}:1")}))
        .collect();

    let mut results: Vec<(&str, Rounds)> = Vec::new();
    for (mode, delivery) in [
        ("no skills", None),
        ("ImageVolume", Some("ImageVolume")),
        ("InitContainer", Some("InitContainer")),
    ] {
        let mut rounds = Vec::new();
        let earlier: Vec<&str> = results.iter().map(|(mode, _)| *mode).collect();
        make_cold(&node, &admin, &host, &earlier).await;
        for round in 0..ROUNDS {
            let name = format!("{}-{round}", mode.to_ascii_lowercase().replace(' ', "-"));
            gitops_apply(&deployments, &deployment(&node, &name))
                .await
                .unwrap();
            if let Some(delivery) = delivery {
                let skill_set: SkillSet = serde_json::from_value(json!({
                    "apiVersion": "skillport.dev/v1alpha1",
                    "kind": "SkillSet",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {
                        "skills": skills,
                        "imagePullSecrets": [{"name": "regcred.example.com"}],
                        "delivery": delivery,
                        "workloadRef": {"kind": "Deployment", "name": name},
                    },
                }))
                .unwrap();
                skill_sets
                    .create(&PostParams::default(), &skill_set)
                    .await
                    .unwrap();
                wait_condition(&skill_sets, &name, "Ready", "True", "Applied").await;
            }
            rounds.push(scale_up(&node, &name).await);
        }
        results.push((mode, rounds));
    }
    operator.stop().await;
    save_node_logs(&node);

    let seconds = |d: Duration| d.as_secs_f64();
    let warm = |rounds: &[(Duration, Option<i64>)]| {
        let mut later: Vec<f64> = rounds[1..].iter().map(|(d, _)| seconds(*d)).collect();
        later.sort_by(f64::total_cmp);
        later[later.len() / 2]
    };
    let base_cold = seconds(results[0].1[0].0);
    let base_warm = warm(&results[0].1);
    println!("pod ready: Deployment 0 → 1 replica until the Pod is Ready, {SKILLS} skills");
    for (mode, rounds) in &results {
        let cold = seconds(rounds[0].0);
        let warm = warm(rounds);
        let mut line = format!(
            "  {mode:<14} first {cold:5.2} s ({:+.2} s)   later {warm:5.2} s ({:+.2} s)",
            cold - base_cold,
            warm - base_warm
        );
        if let Some(first) = rounds[0].1 {
            let whole = |seconds: i64| {
                if seconds == 0 {
                    "under 1 s".to_owned()
                } else {
                    format!("~{seconds} s")
                }
            };
            let later = rounds.last().and_then(|r| r.1).unwrap_or_default();
            let _ = write!(
                line,
                "   of which skillport fetch: {} first, {} later (the API reports whole seconds)",
                whole(first),
                whole(later)
            );
        }
        println!("{line}");
    }
}
