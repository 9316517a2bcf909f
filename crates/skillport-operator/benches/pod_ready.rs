//! What users feel, on a real node: a Deployment scaled from 0 to 1 → its Pod Ready, with 20
//! skills attached in each mode, against the same Deployment without skills. Prints the
//! overhead of each mode and, for the init container, how much of it `skillport fetch` took,
//! and the cold and warm ImageVolume start against the InitContainer start (issue 21's goal 4).
//! Skills come from a TLS + auth registry with a pull secret.
//!
//! Cold rounds (`SKILLPORT_BENCH_COLD_ROUNDS`, default 3 per mode) each start on a node made
//! cold again: every Pod gone, the skill and init images removed from containerd
//! (`SKILLPORT_BENCH_KEEP_IMAGES=1` keeps them). The modes take turns, so the machine's drift
//! falls on each alike; the median is printed. Then each mode's warm rounds find the images
//! on the node (the first is not counted: it may pull), each started with nothing of ours
//! running. `SKILLPORT_BENCH_NODE_LOGS=DIR` saves the node's logs.
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
/// Warm rounds per mode; the first is not counted.
const ROUNDS: usize = 4;
/// The modes, with the delivery their SkillSet asks for.
const MODES: [(&str, Option<&str>); 3] = [
    ("no skills", None),
    ("ImageVolume", Some("ImageVolume")),
    ("InitContainer", Some("InitContainer")),
];
/// Issue 21's goal 4: a cold ImageVolume start within this much of the InitContainer one.
const TARGET: f64 = 1.5;

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

/// A cold node for the next round: every Deployment at 0 and its Pods gone (a running Pod
/// whose image volume lost its image makes the kubelet pull it again, beside the round being
/// measured), then the skill images and the init image removed (the agent and pause images
/// stay).
async fn make_cold(node: &Node, admin: &kube::Client, host: &str) {
    scale_all_down(admin).await;
    if std::env::var_os("SKILLPORT_BENCH_KEEP_IMAGES").is_none() {
        let init_repository = format!("{}/skillport-test/skillport", node.registry().host());
        node.remove_images(&[&format!("{host}/"), &init_repository]);
    }
}

/// Every Deployment at 0 and its Pods gone: each round starts on a node running nothing of
/// ours.
async fn scale_all_down(admin: &kube::Client) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    for deployment in deployments.list(&ListParams::default()).await.unwrap() {
        if deployment.spec.as_ref().and_then(|spec| spec.replicas) != Some(0) {
            deployments
                .patch(
                    &deployment.metadata.name.unwrap_or_default(),
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

/// The Deployment `name`, with a SkillSet of `skills` delivered as `delivery` attached when
/// there is one, scaled up: its time to Ready (and the fetch's, see [`scale_up`]).
async fn one_round(
    node: &Node,
    admin: &kube::Client,
    name: &str,
    delivery: Option<&str>,
    skills: &[Value],
) -> (Duration, Option<i64>) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &deployment(node, name))
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
        wait_condition(&skill_sets, name, "Ready", "True", "Applied").await;
    }
    scale_up(node, name).await
}

fn slug(mode: &str) -> String {
    mode.to_ascii_lowercase().replace(' ', "-")
}

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    let middle = seconds.len() / 2;
    if seconds.len().is_multiple_of(2) {
        f64::midpoint(seconds[middle - 1], seconds[middle])
    } else {
        seconds[middle]
    }
}

async fn bench() {
    let binary = std::env::var_os("SKILLPORT_STATIC_BIN")
        .expect("SKILLPORT_STATIC_BIN: the static skillport (scripts/test.sh builds it)");
    let cold_rounds: usize = std::env::var("SKILLPORT_BENCH_COLD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
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
    let skills: Vec<Value> = (0..SKILLS)
        .map(|i| json!({"name": format!("s{i:02}"), "image": format!("{host}/skills/s{i:02}:1")}))
        .collect();

    let mut cold: [Rounds; 3] = Default::default();
    for round in 0..cold_rounds {
        for turn in 0..MODES.len() {
            let which = (turn + round) % MODES.len();
            let (mode, delivery) = MODES[which];
            eprintln!("cold round {} of {cold_rounds}: {mode}", round + 1);
            make_cold(&node, &admin, &host).await;
            let name = format!("{}-cold-{round}", slug(mode));
            cold[which].push(one_round(&node, &admin, &name, delivery, &skills).await);
        }
    }
    let mut warm: [Rounds; 3] = Default::default();
    for (which, (mode, delivery)) in MODES.into_iter().enumerate() {
        eprintln!("warm rounds: {mode}");
        for round in 0..ROUNDS {
            scale_all_down(&admin).await;
            let name = format!("{}-{round}", slug(mode));
            let timed = one_round(&node, &admin, &name, delivery, &skills).await;
            // The first may pull what the last cold round removed.
            if round > 0 {
                warm[which].push(timed);
            }
        }
    }
    operator.stop().await;
    save_node_logs(&node);
    report(&cold, &warm, cold_rounds);
}

fn report(cold: &[Rounds; 3], warm: &[Rounds; 3], cold_rounds: usize) {
    let seconds =
        |rounds: &Rounds| -> Vec<f64> { rounds.iter().map(|(d, _)| d.as_secs_f64()).collect() };
    let cold_median: Vec<f64> = cold.iter().map(|r| median(seconds(r))).collect();
    let warm_median: Vec<f64> = warm.iter().map(|r| median(seconds(r))).collect();
    println!(
        "pod ready: Deployment 0 → 1 replica until the Pod is Ready, {SKILLS} skills; cold: \
         median of {cold_rounds} rounds, each on a node made cold; warm: median of {}",
        ROUNDS - 1
    );
    for (which, (mode, _)) in MODES.into_iter().enumerate() {
        let each: Vec<String> = seconds(&cold[which])
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect();
        let mut line = format!(
            "  {mode:<14} cold {:5.2} s ({:+.2} s; rounds {})   warm {:5.2} s ({:+.2} s)",
            cold_median[which],
            cold_median[which] - cold_median[0],
            each.join(", "),
            warm_median[which],
            warm_median[which] - warm_median[0],
        );
        let fetched: Vec<i64> = cold[which].iter().filter_map(|r| r.1).collect();
        if !fetched.is_empty() {
            let later: Vec<i64> = warm[which].iter().filter_map(|r| r.1).collect();
            let _ = write!(
                line,
                "   of which skillport fetch: {fetched:?} s cold, {later:?} s warm (the API reports \
                 whole seconds)"
            );
        }
        println!("{line}");
    }
    let cold_ratio = cold_median[1] / cold_median[2];
    let warm_ratio = warm_median[1] / warm_median[2];
    println!(
        "\nImageVolume / InitContainer start: cold {cold_ratio:.2}x (target <= {TARGET}: {}), \
         warm {warm_ratio:.2}x",
        if cold_ratio <= TARGET {
            "meets"
        } else {
            "MISSES"
        }
    );
}
