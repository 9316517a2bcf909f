//! A real node (kubelet + containerd + runc on a real control plane) does what only a node does:
//! it mounts a skill image as a read-only `image` volume, runs an init container that fills an
//! `emptyDir` the agent reads, reports a missing skill image as a pull error, and — with the
//! kubelet's `ImageVolume` gate off — leaves the Pod in `ContainerCreating` with `FailedMount …
//! no volume plugin matched`. Each test also checks the node left the host as it found it.
//!
//! One node per machine: every test here is named `node_…` and runs alone in nextest's
//! `k8s-node` group (`.config/nextest.toml`); starting a node costs a few seconds, so the checks
//! that can share one run inside the same test, each a named `async fn`, their Pods side by side.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use skillport_oci::{BuildRequest, Reference, Store, build};
use skillport_skill::{Mode, load, walk};
use skillport_testkit::{HostState, Node, NodeOptions, Registry, k8s_tool};

const TIMEOUT: Duration = Duration::from_secs(90);
const SKILL: &str = "pdf-tools";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_runs_skill_pods_from_a_tls_registry_with_auth() {
    let before = HostState::capture();
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let skill_ref = push_skill(&registry, work.path(), SKILL);
    {
        let node = Node::start(NodeOptions::default().trust_registry(&registry)).await;
        let timings = node.timings();
        eprintln!("node up in {:.2?}: {timings:?}", timings.total);
        let namespace = node.cluster().create_namespace("skills").await;
        create_pull_secret(&node, &namespace, &registry, work.path()).await;

        let crane_image = node.crane_image();
        tokio::join!(
            image_volume_is_mounted_read_only_with_the_skill_at_its_root(
                &node, &namespace, &skill_ref
            ),
            init_container_copies_the_skill_into_an_empty_dir_the_agent_reads(
                &node,
                &namespace,
                &skill_ref,
                &crane_image,
                &registry
            ),
            missing_skill_image_is_a_pull_error(&node, &namespace, &registry),
        );
    }
    assert_eq!(
        HostState::capture(),
        before,
        "the node should leave the host as it found it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_kubelet_with_image_volume_off_fails_the_mount() {
    let before = HostState::capture();
    {
        // The API server keeps the volume (gate on); only the kubelet cannot mount it.
        let node =
            Node::start(NodeOptions::default().kubelet_feature_gate("ImageVolume", false)).await;
        eprintln!("node up in {:.2?}", node.timings().total);
        let namespace = node.cluster().create_namespace("gate-off").await;
        let work = tempfile::tempdir().unwrap();
        let skill_ref = push_skill(node.registry(), work.path(), "gated");
        let pod = image_volume_pod(&node, "gated", &skill_ref, None);
        create_pod(&node, &namespace, &pod).await;
        let message = wait_for_event(&node, &namespace, "gated", "FailedMount").await;
        assert!(
            message.contains("no volume plugin matched"),
            "FailedMount should say no plugin matched: {message}"
        );
        // The kubelet may record the event before it reports the container statuses.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut phase = pod_status(&node, &namespace, "gated").await;
        while phase["containerStatuses"].is_null() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            phase = pod_status(&node, &namespace, "gated").await;
        }
        assert_eq!(
            phase["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating",
            "{phase:#}"
        );
    }
    assert_eq!(
        HostState::capture(),
        before,
        "the node should leave the host as it found it"
    );
}

async fn image_volume_is_mounted_read_only_with_the_skill_at_its_root(
    node: &Node,
    namespace: &str,
    skill_ref: &str,
) {
    let pod = image_volume_pod(node, "image-volume", skill_ref, Some("registry-auth"));
    let started = Instant::now();
    create_pod(node, namespace, &pod).await;
    wait_until_ready(node, namespace, "image-volume").await;
    eprintln!(
        "image volume Pod: create → Ready in {:.2?}",
        started.elapsed()
    );
    let logs = logs_until_done(node, namespace, "image-volume", "agent").await;
    assert!(
        logs.contains(&format!("name: {SKILL}")),
        "SKILL.md at the mount root: {logs}"
    );
    assert!(
        logs.contains("summary from pdf-tools"),
        "scripts/ at the root too: {logs}"
    );
    assert!(logs.contains("\nREADONLY\n"), "a read-only mount: {logs}");
    assert!(
        logs.lines()
            .any(|line| line.contains(&format!(" /skills/{SKILL} ")) && line.contains(" ro")),
        "the mount is ro in /proc/mounts: {logs}"
    );
}

async fn init_container_copies_the_skill_into_an_empty_dir_the_agent_reads(
    node: &Node,
    namespace: &str,
    skill_ref: &str,
    crane_image: &str,
    registry: &Registry,
) {
    // The TLS registry's CA for crane (Go reads SSL_CERT_FILE).
    let ca = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("registry-ca".to_owned()),
            ..Default::default()
        },
        data: Some(
            [(
                "ca.crt".to_owned(),
                registry.ca().unwrap().ca_pem().to_owned(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(node.client(), namespace)
        .create(&PostParams::default(), &ca)
        .await
        .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "init-copy"},
        "spec": {
            "hostNetwork": true,
            "restartPolicy": "Never",
            "initContainers": [{
                "name": "skills-init",
                "image": crane_image,
                "command": ["/bin/sh", "-c", format!(
                    "crane export --platform linux/amd64 {skill_ref} - | tar -x -f - -C /skills/{SKILL}"
                )],
                "env": [
                    {"name": "DOCKER_CONFIG", "value": "/docker"},
                    {"name": "SSL_CERT_FILE", "value": "/ca/ca.crt"},
                ],
                "volumeMounts": [
                    {"name": "skills", "mountPath": format!("/skills/{SKILL}")},
                    {"name": "docker", "mountPath": "/docker", "readOnly": true},
                    {"name": "ca", "mountPath": "/ca", "readOnly": true},
                ],
            }],
            "containers": [agent_container(node, &format!("/skills/{SKILL}"), "skills")],
            "volumes": [
                {"name": "skills", "emptyDir": {}},
                {"name": "docker", "secret": {
                    "secretName": "registry-auth",
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                }},
                {"name": "ca", "configMap": {"name": "registry-ca"}},
            ],
        },
    }))
    .unwrap();
    let started = Instant::now();
    create_pod(node, namespace, &pod).await;
    wait_until_ready(node, namespace, "init-copy").await;
    eprintln!(
        "init container Pod: create → Ready in {:.2?}",
        started.elapsed()
    );
    let logs = logs_until_done(node, namespace, "init-copy", "agent").await;
    assert!(
        logs.contains(&format!("name: {SKILL}")),
        "the agent reads SKILL.md the init container copied: {logs}"
    );
    assert!(
        logs.contains("summary from pdf-tools"),
        "and scripts/: {logs}"
    );
    assert!(
        logs.contains("\nREADONLY\n"),
        "the agent's mount is read-only: {logs}"
    );
}

async fn missing_skill_image_is_a_pull_error(node: &Node, namespace: &str, registry: &Registry) {
    let missing = format!("{}/skills/not-pushed:0.0.1", registry.host());
    let pod = image_volume_pod(node, "missing", &missing, Some("registry-auth"));
    create_pod(node, namespace, &pod).await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let status = pod_status(node, namespace, "missing").await;
        let waiting = &status["containerStatuses"][0]["state"]["waiting"];
        let reason = waiting["reason"].as_str().unwrap_or_default();
        if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
            let message = waiting["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("not-pushed") && message.contains("not found"),
                "the pull error names the image and says it is not found: {message}"
            );
            eprintln!("missing skill image: {reason}: {message}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no pull error for a missing skill image within {TIMEOUT:?}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Pod whose agent mounts `reference` as an `image` volume at `/skills/<SKILL>`.
fn image_volume_pod(node: &Node, name: &str, reference: &str, pull_secret: Option<&str>) -> Pod {
    let secrets: Vec<Value> = pull_secret
        .map(|secret| json!({"name": secret}))
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "hostNetwork": true,
            "restartPolicy": "Never",
            "imagePullSecrets": secrets,
            "containers": [agent_container(node, &format!("/skills/{SKILL}"), "skill")],
            "volumes": [{"name": "skill", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}],
        },
    }))
    .unwrap()
}

/// The agent: prints the skill folder (SKILL.md, scripts/), tries to write into it, shows its
/// mount line, then says DONE and waits.
fn agent_container(node: &Node, mount_path: &str, volume: &str) -> Value {
    let script = format!(
        "cat {mount_path}/SKILL.md; cat {mount_path}/scripts/summarize.py; ls -lR {mount_path}; \
         if touch {mount_path}/written 2>/dev/null; then echo WRITABLE; else echo READONLY; fi; \
         grep ' {mount_path} ' /proc/mounts; echo DONE; sleep 3600"
    );
    json!({
        "name": "agent",
        "image": node.agent_image(),
        "command": ["/bin/sh", "-c", script],
        "volumeMounts": [{"name": volume, "mountPath": mount_path, "readOnly": true}],
    })
}

async fn create_pod(node: &Node, namespace: &str, pod: &Pod) {
    Api::<Pod>::namespaced(node.client(), namespace)
        .create(&PostParams::default(), pod)
        .await
        .unwrap_or_else(|err| panic!("creating Pod {namespace}/{:?}: {err}", pod.metadata.name));
}

async fn pod_status(node: &Node, namespace: &str, name: &str) -> Value {
    let pod = Api::<Pod>::namespaced(node.client(), namespace)
        .get(name)
        .await
        .unwrap();
    serde_json::to_value(pod.status).unwrap()
}

async fn wait_until_ready(node: &Node, namespace: &str, name: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let status = pod_status(node, namespace, name).await;
        let ready = status["conditions"].as_array().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if ready {
            return;
        }
        if Instant::now() > deadline {
            let events = events(node, namespace, name).await;
            panic!(
                "Pod {namespace}/{name} not Ready within {TIMEOUT:?}\nstatus: {status:#}\n\
                 events: {events:#?}\n--- kubelet (last 40 lines) ---\n{}",
                tail(&node.log("kubelet"), 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn events(node: &Node, namespace: &str, name: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(node.client(), namespace)
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|event| {
            (
                event.reason.unwrap_or_default(),
                event.message.unwrap_or_default(),
            )
        })
        .collect()
}

async fn wait_for_event(node: &Node, namespace: &str, name: &str, reason: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let events = events(node, namespace, name).await;
        if let Some((_, message)) = events.iter().find(|(r, _)| r == reason) {
            eprintln!("{reason}: {message}");
            return message.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {reason} event for Pod {namespace}/{name} within {TIMEOUT:?}: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `kubectl logs` (through the API server to the kubelet) once the container printed DONE.
async fn logs_until_done(node: &Node, namespace: &str, pod: &str, container: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let output = node
            .kubectl()
            .args(["logs", "-n", namespace, pod, "-c", container])
            .output()
            .unwrap();
        let logs = String::from_utf8_lossy(&output.stdout).into_owned();
        if logs.contains("DONE") {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}/{pod} did not print DONE within {TIMEOUT:?}: {logs}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_pull_secret(node: &Node, namespace: &str, registry: &Registry, work: &Path) {
    let config = fs::read(registry.docker_config(&work.join("pull-secret"))).unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "registry-auth"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": BASE64.encode(config)},
    }))
    .unwrap();
    Api::<Secret>::namespaced(node.client(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// Builds skill `name` with Skillport's own builder into a fresh store (an OCI image layout)
/// and pushes its image index to `registry` with crane; returns `HOST/skills/NAME@DIGEST`.
fn push_skill(registry: &Registry, work: &Path, name: &str) -> String {
    let dir = work.join("src").join(name);
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::write(
        dir.join("SKILL.md"),
        format!(
            "---\nname: {name}\ndescription: Reads PDF files for the agent.\n---\n\n# {name}\n"
        ),
    )
    .unwrap();
    fs::write(
        dir.join("scripts/summarize.py"),
        format!("print('summary from {name}')\n"),
    )
    .unwrap();
    fs::set_permissions(
        dir.join("scripts/summarize.py"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let store_dir = work.join(format!("store-{name}"));
    let store = Store::open(&store_dir).unwrap();
    let skill = load(&dir, Mode::Strict).unwrap();
    let entries = walk(&dir).unwrap();
    let names = [format!("{name}:1").parse::<Reference>().unwrap()];
    let built = build(
        &store,
        &BuildRequest {
            skill: &skill,
            entries: &entries,
            generated_card: None,
            source_date_epoch: None,
            names: &names,
        },
        &mut |_| {},
    )
    .unwrap();
    let target = format!("{}/skills/{name}:1", registry.host());
    let docker = work.join(format!("docker-{name}"));
    registry.docker_config(&docker);
    let mut crane = Command::new(k8s_tool("crane"));
    crane
        .arg("push")
        .arg(&store_dir)
        .arg(&target)
        .env("DOCKER_CONFIG", &docker);
    if let Some(ca) = registry.ca_file() {
        crane.env("SSL_CERT_FILE", ca);
    }
    let output = crane.output().unwrap();
    assert!(
        output.status.success(),
        "crane push: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    format!("{}/skills/{name}@{}", registry.host(), built.digest())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
