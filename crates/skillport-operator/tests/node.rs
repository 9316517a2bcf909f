//! End to end on a real node (kubelet + containerd + runc on a real control plane): the operator
//! attaches SkillSets to Deployments, the Pods run, and the agent container reads every skill's
//! `SKILL.md` read-only at its mount path, finds them in `SKILL_FOLDERS` and in the index — with
//! image volumes (the kubelet pulls from a TLS + auth registry whose CA the node's containerd
//! trusts, with the SkillSet's pull secret) and with the fetch init container (the static
//! `skillport` binary on an empty base, assembled with crane; the CA reaches it through the
//! plan). A moved tag rolls the Pods onto the new content; a skill image without `SKILL.md`
//! fails the Pod's verify init container with one termination message.
//!
//! Named `node_…`: one node per machine, in nextest's `k8s-node` group.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use skillport_operator::api::SkillSet;
use skillport_testkit::{Node, NodeOptions, Registry, k8s_tool};
use support::{
    NAMESPACE, Operator, WebhookFiles, config, deploy_kustomization, enforce_release_key,
    events_for, gitops_apply, log_to_test_output, plan_reference, prepare_node, prepare_node_with,
    push_skill, sign_skill, skill_set, tenant_namespace, volume_reference, wait_condition,
    wait_for, write_kustomization,
};

const POD_TIMEOUT: Duration = Duration::from_secs(120);

/// The static `skillport` scripts/test.sh builds (`--target x86_64-unknown-linux-musl`).
fn static_skillport() -> PathBuf {
    let path = std::env::var_os("SKILLPORT_STATIC_BIN").map(PathBuf::from);
    match path {
        Some(path) if path.is_file() => path,
        _ => panic!(
            "SKILLPORT_STATIC_BIN does not name the static skillport binary; scripts/test.sh \
             builds it (cargo build -p skillport --target x86_64-unknown-linux-musl --profile \
             static-test) and sets it"
        ),
    }
}

/// An agent Deployment (host network: the test node has no CNI) whose container prints each
/// folder of `SKILL_FOLDERS` (its SKILL.md, whether it can write there), each folder under
/// `KAGENT_SKILLS_FOLDER` (as kagent's runtime looks for skills) and the index; then `DONE`,
/// then waits.
fn agent_deployment(node: &Node, name: &str) -> Value {
    let script = "echo \"FOLDERS=$SKILL_FOLDERS\"; IFS=,; for f in $SKILL_FOLDERS; do \
         echo \"== $f\"; cat \"$f/SKILL.md\"; \
         if touch \"$f/written\" 2>/dev/null; then echo WRITABLE; else echo READONLY; fi; done; \
         unset IFS; \
         if [ -n \"$KAGENT_SKILLS_FOLDER\" ]; then for d in \"$KAGENT_SKILLS_FOLDER\"/*/; do \
         echo \"kagent finds $d: $(grep '^name:' \"$d/SKILL.md\")\"; done; fi; \
         echo '== index'; cat \"$SKILLPORT_INDEX\"; echo; echo DONE; sleep 3600";
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "hostNetwork": true,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "agent",
                        "image": node.agent_image(),
                        "command": ["/bin/sh", "-c", script],
                    }],
                },
            },
        },
    })
}

/// The logs of the agent in the Pod of Deployment `name` that runs the template's current
/// skills-digest, once it printed `DONE`.
async fn agent_logs(node: &Node, name: &str) -> String {
    let deployments: Api<Deployment> = Api::namespaced(node.client(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(node.client(), NAMESPACE);
    wait_for(
        &format!("{name}: the agent of the current template prints DONE"),
        POD_TIMEOUT,
        || async {
            let deployment = deployments.get(name).await.map_err(|e| e.to_string())?;
            let digest = skills_digest(deployment.spec.unwrap().template.metadata.as_ref());
            let list = pods
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await
                .map_err(|e| e.to_string())?;
            // A template without skills (the webhook injects them): any Pod with skills.
            let current = list
                .items
                .iter()
                .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                .find(|pod| {
                    let ours = skills_digest(Some(&pod.metadata));
                    ours == digest || (digest.is_none() && ours.is_some())
                })
                .ok_or_else(|| format!("no Pod with skills-digest {digest:?} yet"))?;
            let pod = current.metadata.name.clone().unwrap();
            let output = node
                .kubectl()
                .args(["logs", "-n", NAMESPACE, &pod, "-c", "agent"])
                .output()
                .map_err(|e| e.to_string())?;
            let logs = String::from_utf8_lossy(&output.stdout).into_owned();
            if logs.contains("DONE") {
                Ok(logs)
            } else {
                Err(format!(
                    "{pod}: {logs}{}; status {}",
                    String::from_utf8_lossy(&output.stderr),
                    serde_json::to_string(&current.status).unwrap_or_default()
                ))
            }
        },
    )
    .await
}

fn skills_digest(
    metadata: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
) -> Option<String> {
    metadata?
        .annotations
        .as_ref()?
        .get("skillport.dev/skills-digest")
        .cloned()
}

/// What every agent must see: both skills at their paths, read-only, in SKILL_FOLDERS and the
/// index (with the pinned digests). Index paths are relative to the index's folder (the mount
/// root): with image volumes review is only at its own mount path; the init container's folder
/// holds it under the root too (and the agent gets it at /opt/review through a subPath).
fn check_agent(mode: &str, logs: &str, pdf_body: &str, pdf_digest: &str) {
    let review_path = if mode.starts_with("image") {
        "../opt/review"
    } else {
        "review"
    };
    assert!(
        logs.contains("FOLDERS=/skills/pdf,/opt/review"),
        "{mode}: SKILL_FOLDERS: {logs}"
    );
    assert!(
        logs.contains("== /skills/pdf\n---\nname: pdf") && logs.contains(pdf_body),
        "{mode}: pdf's SKILL.md at its mount path: {logs}"
    );
    assert!(
        logs.contains("== /opt/review\n---\nname: review"),
        "{mode}: review's SKILL.md at its own mount path: {logs}"
    );
    assert_eq!(
        logs.matches("READONLY").count(),
        2,
        "{mode}: both read-only: {logs}"
    );
    assert!(!logs.contains("WRITABLE"), "{mode}: {logs}");
    let index_text = logs
        .split("== index\n")
        .nth(1)
        .and_then(|rest| rest.split("\nDONE").next())
        .unwrap_or_default();
    let index: Value = serde_json::from_str(index_text.trim())
        .unwrap_or_else(|err| panic!("{mode}: the index is JSON ({err}): {index_text}"));
    assert_eq!(index["kind"], "SkillIndex", "{mode}");
    let paths: Vec<&str> = index["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["pdf", review_path], "{mode}: index paths");
    assert_eq!(
        index["skills"][0]["digest"], pdf_digest,
        "{mode}: index digest"
    );
}

/// Pushes an image whose only file is README.md (no SKILL.md) with crane.
fn push_without_skill_md(registry: &Registry, work: &Path) -> String {
    let dir = work.join("no-skill-md");
    std::fs::create_dir_all(dir.join("content")).unwrap();
    std::fs::write(dir.join("content/README.md"), "not a skill\n").unwrap();
    let layer = dir.join("layer.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&layer)
        .arg("-C")
        .arg(dir.join("content"))
        .arg("README.md")
        .status()
        .unwrap();
    assert!(status.success());
    let config_dir = dir.join("docker");
    registry.docker_config(&config_dir);
    let reference = format!("{}/skills/hollow:1", registry.host());
    let output = Command::new(k8s_tool("crane"))
        .args([
            "append",
            "--oci-empty-base",
            "--platform",
            "linux/amd64",
            "-f",
        ])
        .arg(&layer)
        .args(["-t", &reference])
        .env("DOCKER_CONFIG", &config_dir)
        .env("SSL_CERT_FILE", registry.ca_file().unwrap())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "crane append: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    reference
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_agents_read_their_skills_in_both_modes_and_roll_on_a_moved_tag() {
    log_to_test_output();
    let binary = static_skillport();
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let host = registry.host();
    let pdf_1 = push_skill(&registry, work.path(), "pdf", "1", "first body").await;
    push_skill(&registry, work.path(), "review", "1", "review body").await;
    let hollow = push_without_skill_md(&registry, work.path());

    let node = Node::start(NodeOptions::default().trust_registry(&registry)).await;
    let (admin, operator) = prepare_node(&node, &registry, work.path(), &binary).await;

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    for (name, delivery) in [("iv", "ImageVolume"), ("ic", "InitContainer")] {
        gitops_apply(&deployments, &agent_deployment(&node, name))
            .await
            .unwrap();
        let spec = json!({
            "workloadRef": {"kind": "Deployment", "name": name},
            "delivery": delivery,
            "folderEnv": ["KAGENT_SKILLS_FOLDER"],
        });
        skill_sets
            .create(&PostParams::default(), &skill_set(name, &host, &spec))
            .await
            .unwrap();
    }
    for name in ["iv", "ic"] {
        wait_condition(&skill_sets, name, "Ready", "True", "Applied").await;
    }
    let (iv, ic) = tokio::join!(agent_logs(&node, "iv"), agent_logs(&node, "ic"));
    check_agent("image volumes", &iv, "first body", &pdf_1);
    check_agent("init container", &ic, "first body", &pdf_1);
    // folderEnv: a runtime that reads its own variable (kagent's) finds the skills under the
    // root; review is mounted elsewhere, and the init container's folder holds it too.
    assert!(iv.contains("kagent finds /skills/pdf/: name: pdf"), "{iv}");
    assert!(!iv.contains("kagent finds /skills/review/"), "{iv}");
    for skill in ["pdf", "review"] {
        assert!(
            ic.contains(&format!("kagent finds /skills/{skill}/: name: {skill}")),
            "{ic}"
        );
    }
    fetch_gets_no_token(&node, "ic").await;

    // The tag moves: both Deployments roll, and the new Pods read the new content.
    let pdf_2 = push_skill(&registry, work.path(), "pdf", "1", "second body").await;
    let (iv, ic) = tokio::join!(
        wait_for(
            "moved tag: the new agent reads the new pdf",
            POD_TIMEOUT,
            || async {
                let logs = agent_logs(&node, "iv").await;
                if logs.contains("second body") {
                    Ok(logs)
                } else {
                    Err(logs)
                }
            }
        ),
        wait_for(
            "moved tag: the new agent reads the new pdf (init)",
            POD_TIMEOUT,
            || async {
                let logs = agent_logs(&node, "ic").await;
                if logs.contains("second body") {
                    Ok(logs)
                } else {
                    Err(logs)
                }
            }
        ),
    );
    check_agent("image volumes, moved", &iv, "second body", &pdf_2);
    check_agent("init container, moved", &ic, "second body", &pdf_2);

    hollow_image_fails_the_pod(&node, &host, &hollow).await;
    operator.stop().await;
}

/// Skill policies on the node (issue 17): under an enforcing ClusterSkillPolicy, unsigned skills
/// reach neither mode's pod template (no image volume, no plan); signed, both agents read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_only_signed_skills_reach_the_agents_in_both_modes() {
    log_to_test_output();
    let binary = static_skillport();
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let host = registry.host();
    let pdf = push_skill(&registry, work.path(), "pdf", "1", "signed body").await;
    push_skill(&registry, work.path(), "review", "1", "review body").await;
    let node = Node::start(NodeOptions::default().trust_registry(&registry)).await;
    let (admin, operator) = prepare_node(&node, &registry, work.path(), &binary).await;
    let key = skillport_sign::PrivateKey::generate();
    enforce_release_key(&admin, &key, &host).await;

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    for (name, delivery) in [("iv", "ImageVolume"), ("ic", "InitContainer")] {
        gitops_apply(&deployments, &agent_deployment(&node, name))
            .await
            .unwrap();
        let spec =
            json!({"workloadRef": {"kind": "Deployment", "name": name}, "delivery": delivery});
        skill_sets
            .create(&PostParams::default(), &skill_set(name, &host, &spec))
            .await
            .unwrap();
    }
    for name in ["iv", "ic"] {
        wait_condition(&skill_sets, name, "Resolved", "False", "NotVerified").await;
        let deployment = deployments.get(name).await.unwrap();
        assert_eq!(
            volume_reference(&deployment, "skill-pdf"),
            None,
            "{name}: an unsigned image volume"
        );
        assert_eq!(
            plan_reference(&deployment),
            None,
            "{name}: a plan of unsigned skills"
        );
    }

    for skill in ["pdf", "review"] {
        sign_skill(&registry, work.path(), skill, "1", &key).await;
    }
    for name in ["iv", "ic"] {
        wait_condition(&skill_sets, name, "Ready", "True", "Applied").await;
    }
    let (iv, ic) = tokio::join!(agent_logs(&node, "iv"), agent_logs(&node, "ic"));
    check_agent("image volumes, signed", &iv, "signed body", &pdf);
    check_agent("init container, signed", &ic, "signed body", &pdf);
    operator.stop().await;
}

/// The ServiceAccount admission plugin mounted the Pod's API token in the agent (so it is on),
/// and not in the fetch init container, which never talks to the API server: the folder laid
/// over the token's path keeps it out.
async fn fetch_gets_no_token(node: &Node, name: &str) {
    const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let pods: Api<Pod> = Api::namespaced(node.client(), NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .unwrap();
    // The Pod with skills (one of the template before them may still be going).
    let spec = list
        .items
        .iter()
        .filter_map(|pod| pod.spec.clone())
        .find(|spec| {
            spec.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == "skillport-fetch")
        })
        .expect("a Pod with the fetch init container");
    let token_volume = |container: &k8s_openapi::api::core::v1::Container| {
        container
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == TOKEN_DIR)
            .map(|m| m.name.clone())
    };
    let agent = spec.containers.iter().find(|c| c.name == "agent").unwrap();
    assert!(
        token_volume(agent).is_some_and(|v| v.starts_with("kube-api-access")),
        "the agent has the token (the plugin is on): {agent:?}"
    );
    let init = spec.init_containers.clone().unwrap_or_default();
    let fetch = init.iter().find(|c| c.name == "skillport-fetch").unwrap();
    assert_eq!(
        token_volume(fetch).as_deref(),
        Some("skillport-no-token"),
        "fetch has an empty folder where the token would be: {fetch:?}"
    );
}

/// A skill image without SKILL.md: the verify init container fails the Pod, one line.
async fn hollow_image_fails_the_pod(node: &Node, host: &str, hollow: &str) {
    let admin = node.client();
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &agent_deployment(node, "hollow"))
        .await
        .unwrap();
    let spec = json!({
        "workloadRef": {"kind": "Deployment", "name": "hollow"},
        "delivery": "ImageVolume",
        "skills": [{"name": "hollow", "image": hollow}],
    });
    skill_sets
        .create(&PostParams::default(), &skill_set("hollow", host, &spec))
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    let message = wait_for(
        "hollow: the verify container's termination message",
        POD_TIMEOUT,
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=hollow"))
                .await
                .map_err(|e| e.to_string())?;
            // The Pod of the rollout with skills (the first Pod, from before, has no verify).
            let status = serde_json::to_value(
                list.items
                    .iter()
                    .map(|p| p.status.clone())
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_default();
            let verify = status
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["initContainerStatuses"].as_array())
                .flatten()
                .find(|c| c["name"] == "skillport-verify")
                .cloned()
                .unwrap_or_default();
            ["state", "lastState"]
                .iter()
                .find_map(|key| {
                    verify[key]["terminated"]["message"]
                        .as_str()
                        .map(str::to_owned)
                })
                .ok_or_else(|| status.to_string())
        },
    )
    .await;
    assert_eq!(message.trim().lines().count(), 1, "one line: {message}");
    assert!(
        message.contains("\"hollow\"") && message.contains("no SKILL.md"),
        "hollow: {message}"
    );
}

/// A kubelet with the ImageVolume gate off (the API server keeps image volumes): the Pod's
/// FailedMount ("no volume plugin matched") makes `Auto` fall back to the init container for that
/// SkillSet, with an Event naming the node, and the agent still gets its skills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_a_kubelet_without_image_volumes_makes_auto_fall_back_to_the_init_container() {
    log_to_test_output();
    let binary = static_skillport();
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let host = registry.host();
    let pdf = push_skill(&registry, work.path(), "pdf", "1", "first body").await;
    push_skill(&registry, work.path(), "review", "1", "review body").await;
    let node = Node::start(
        NodeOptions::default()
            .trust_registry(&registry)
            .kubelet_feature_gate("ImageVolume", false),
    )
    .await;
    let webhook = WebhookFiles::new();
    let (admin, operator) =
        prepare_node_with(&node, &registry, work.path(), &binary, Some(&webhook)).await;

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &agent_deployment(&node, "auto"))
        .await
        .unwrap();
    let spec = json!({"workloadRef": {"kind": "Deployment", "name": "auto"}});
    skill_sets
        .create(&PostParams::default(), &skill_set("auto", &host, &spec))
        .await
        .unwrap();
    falls_back(&skill_sets, "auto").await;
    let events = events_for(&admin, "auto").await;
    let fallback = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("ImageVolumeMountFailed"))
        .and_then(|e| e.note.clone())
        .unwrap_or_else(|| panic!("an ImageVolumeMountFailed Event: {events:?}"));
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let node_name = nodes.items[0].metadata.name.clone().unwrap();
    assert!(
        fallback.contains(&format!("node {node_name} ")),
        "the Event names the node {node_name}: {fallback}"
    );
    assert!(fallback.contains("no volume plugin matched"), "{fallback}");
    let logs = agent_logs(&node, "auto").await;
    check_agent("init container (fallback)", &logs, "first body", &pdf);
    let operator = restart_keeps_the_fallback(operator, &node, &registry, &binary, &webhook).await;
    let auto = skill_sets.get("auto").await.unwrap();
    let failure = auto
        .status
        .unwrap()
        .image_volume_failure
        .expect("in status");
    assert_eq!(failure.reason, "ImageVolumeMountFailed");
    assert_eq!(failure.node.as_deref(), Some(node_name.as_str()));

    labelled_pods_fall_back(&node, &admin, &host, &pdf).await;
    operator.stop().await;
}

/// The fallback is kept in the SkillSet's status: a restarted operator (a new leader) does not
/// roll the fallen-back Deployment to image volumes and back (it did when it was kept in memory).
async fn restart_keeps_the_fallback(
    operator: Operator,
    node: &Node,
    registry: &Registry,
    binary: &Path,
    webhook: &WebhookFiles,
) -> Operator {
    let deployments: Api<Deployment> = Api::namespaced(node.client(), NAMESPACE);
    let generation = |d: Deployment| d.metadata.generation;
    let before = generation(deployments.get("auto").await.unwrap());
    operator.stop().await;
    let mut config = config(registry);
    config.init_image = node.binary_image("skillport", binary);
    config.webhook = Some(webhook.serving.clone());
    let operator = Operator::run(node.cluster(), config).await;
    // Long enough for the new operator's first reconcile of every SkillSet.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = deployments.get("auto").await.unwrap();
    assert_eq!(
        generation(after.clone()),
        before,
        "the restart rolled the Deployment (image volumes: {:?})",
        volume_reference(&after, "skill-pdf")
    );
    operator
}

/// Until SkillSet `name`'s delivery is InitContainer.
async fn falls_back(skill_sets: &Api<SkillSet>, name: &str) {
    wait_for(
        &format!("{name}: falls back to InitContainer"),
        POD_TIMEOUT,
        || async {
            let skill_set = skill_sets.get(name).await.map_err(|e| e.to_string())?;
            let delivery = skill_set.status.and_then(|s| s.delivery);
            if delivery == Some(skillport_operator::api::Delivery::InitContainer) {
                Ok(())
            } else {
                Err(format!("{delivery:?}"))
            }
        },
    )
    .await;
}

/// The webhook door on a node that cannot mount image volumes: Pods of a labelled Deployment get
/// image volumes; their FailedMount makes the SkillSet fall back, and the Pods made after that
/// get the init container.
async fn labelled_pods_fall_back(node: &Node, admin: &kube::Client, host: &str, pdf: &str) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("labelled", host, &json!({})),
        )
        .await
        .unwrap();
    wait_condition(&skill_sets, "labelled", "Ready", "True", "Resolved").await;
    let mut manifest = agent_deployment(node, "labelled");
    manifest["spec"]["template"]["metadata"]["labels"]["skillport.dev/skillset"] =
        json!("labelled");
    gitops_apply(&deployments, &manifest).await.unwrap();
    falls_back(&skill_sets, "labelled").await;
    let events = events_for(admin, "labelled").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("ImageVolumeMountFailed")),
        "labelled: the fallback comes from the node's FailedMount: {events:?}"
    );
    // The Pod stuck on its image volumes is not replaced by its ReplicaSet: deleted, as its
    // owner would, the next one gets the init container.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
    pods.delete_collection(
        &kube::api::DeleteParams::default(),
        &ListParams::default().labels("app=labelled"),
    )
    .await
    .unwrap();
    let logs = agent_logs(node, "labelled").await;
    check_agent(
        "init container (webhook, fallback)",
        &logs,
        "first body",
        pdf,
    );
}

/// The static operator scripts/test.sh builds beside the static skillport.
fn static_operator() -> PathBuf {
    let path = static_skillport().with_file_name("skillport-operator");
    assert!(
        path.is_file(),
        "{} is missing; scripts/test.sh builds it (cargo build -p skillport-operator --target \
         x86_64-unknown-linux-musl --profile static-test)",
        path.display()
    );
    path
}

/// A kustomize overlay of deploy/ for the test node: the images just pushed, host network and
/// the API server's loopback address (no kube-proxy, no CNI, so the namespace cannot enforce the
/// restricted profile), the registry's CA for the operator, and the webhook on 127.0.0.1 with
/// its certificate in the Secret deploy/ mounts (made here, as cert-manager would).
fn test_overlay(
    dir: &Path,
    api_port: &str,
    operator_image: &str,
    init_image: &str,
    ca: &Path,
    webhook: &WebhookFiles,
) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    std::fs::copy(&webhook.serving.tls.cert, dir.join("tls.crt")).unwrap();
    std::fs::copy(&webhook.serving.tls.key, dir.join("tls.key")).unwrap();
    let (name, tag) = operator_image.rsplit_once(':').unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let patch = json!([
        // One replica: on one node's host network a second could not bind the same ports.
        {"op": "replace", "path": "/spec/replicas", "value": 1},
        {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": true},
        {"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": [
            "run",
            format!("--init-image={init_image}"),
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            "--leader-elect",
            "--ca-file=/etc/skillport-ca/ca.crt",
            "--webhook-cert=/etc/skillport/webhook/tls.crt",
            "--webhook-key=/etc/skillport/webhook/tls.key",
            format!("--webhook-addr={}", webhook.serving.addr),
        ]},
        {"op": "replace", "path": "/spec/template/spec/containers/0/ports/0/containerPort", "value": metrics_port},
        {"op": "replace", "path": "/spec/template/spec/containers/0/ports/1/containerPort", "value": webhook.serving.addr.port()},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
         "value": {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
         "value": {"name": "KUBERNETES_SERVICE_PORT", "value": api_port}},
        {"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts/-",
         "value": {"name": "registry-ca", "mountPath": "/etc/skillport-ca", "readOnly": true}},
        {"op": "add", "path": "/spec/template/spec/volumes/-",
         "value": {"name": "registry-ca", "configMap": {"name": "registry-ca"}}},
    ]);
    let mut kustomization = deploy_kustomization(dir, Some(&webhook.at()));
    kustomization["images"] =
        json!([{"name": "ghcr.io/skillport/skillport-operator", "newName": name, "newTag": tag}]);
    kustomization["configMapGenerator"] = json!([{
        "name": "registry-ca",
        "namespace": "skillport-system",
        "files": ["ca.crt"],
        "options": {"disableNameSuffixHash": true},
    }]);
    kustomization["secretGenerator"] = json!([{
        "name": "skillport-webhook-tls",
        "namespace": "skillport-system",
        "type": "kubernetes.io/tls",
        "files": ["tls.crt", "tls.key"],
        "options": {"disableNameSuffixHash": true},
    }]);
    let patches = kustomization["patches"].as_array_mut().unwrap();
    patches.push(json!({"target": {"kind": "Deployment", "name": "skillport-operator"}, "patch": patch.to_string()}));
    patches.push(json!({"target": {"kind": "Namespace", "name": "skillport-system"}, "patch": json!([
        {"op": "replace", "path": "/metadata/labels/pod-security.kubernetes.io~1enforce", "value": "privileged"},
    ]).to_string()}));
    write_kustomization(dir, &kustomization);
}

/// `kubectl apply --server-side -k` of deploy/ (through a test overlay) installs the operator;
/// its Deployment runs on the node as the ServiceAccount deploy/ makes, leads, and attaches a
/// SkillSet whose agent then reads the skill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_the_operator_from_deploy_runs_on_the_node_and_attaches() {
    log_to_test_output();
    let (skillport, operator) = (static_skillport(), static_operator());
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let host = registry.host();
    let pdf = push_skill(&registry, work.path(), "pdf", "1", "first body").await;
    push_skill(&registry, work.path(), "review", "1", "review body").await;
    let node = Node::start(NodeOptions::default().trust_registry(&registry)).await;
    let cluster = node.cluster();
    let overlay = work.path().join("overlay");
    let webhook = WebhookFiles::new();
    let api_port = cluster
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    test_overlay(
        &overlay,
        &api_port,
        &node.binary_image("skillport-operator", &operator),
        &node.binary_image("skillport", &skillport),
        registry.ca_file().unwrap(),
        &webhook,
    );
    let output = node
        .kubectl()
        .args(["apply", "--server-side", "-k"])
        .arg(&overlay)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl apply --server-side -k (deploy/ + test overlay): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let admin = node.client();
    wait_for_operator(&node).await;

    tenant_namespace(cluster, &registry, work.path()).await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &agent_deployment(&node, "installed"))
        .await
        .unwrap();
    let spec = json!({"workloadRef": {"kind": "Deployment", "name": "installed"}, "delivery": "InitContainer"});
    skill_sets
        .create(
            &PostParams::default(),
            &skill_set("installed", &host, &spec),
        )
        .await
        .unwrap();
    wait_condition(&skill_sets, "installed", "Ready", "True", "Applied").await;
    let logs = agent_logs(&node, "installed").await;
    check_agent(
        "init container (installed operator)",
        &logs,
        "first body",
        &pdf,
    );
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        admin.clone(),
        "skillport-system",
    )
    .get("skillport-operator")
    .await
    .expect("the operator holds its Lease");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        holder.starts_with("skillport-operator-"),
        "the operator Pod leads: {holder:?}"
    );

    // The webhook as deploy/ registers it: Deployments the operator never edits, their
    // templates labelled skillport.dev/skillset, get the skills in every Pod, in both modes.
    for (name, delivery, mode) in [
        ("injected", "InitContainer", "init container (webhook)"),
        ("injected-iv", "ImageVolume", "image volumes (webhook)"),
    ] {
        skill_sets
            .create(
                &PostParams::default(),
                &skill_set(name, &host, &json!({"delivery": delivery})),
            )
            .await
            .unwrap();
        wait_condition(&skill_sets, name, "Ready", "True", "Resolved").await;
        let mut manifest = agent_deployment(&node, name);
        manifest["spec"]["template"]["metadata"]["labels"]["skillport.dev/skillset"] = json!(name);
        gitops_apply(&deployments, &manifest).await.unwrap();
        let logs = agent_logs(&node, name).await;
        check_agent(mode, &logs, "first body", &pdf);
        let stored = deployments.get(name).await.unwrap();
        assert!(
            skills_digest(stored.spec.unwrap().template.metadata.as_ref()).is_none(),
            "{mode}: the Deployment is left as its owner wrote it"
        );
    }
}

/// Until deploy/'s operator Deployment is available; on timeout, its Pods and logs.
async fn wait_for_operator(node: &Node) {
    let admin = node.client();
    let operators: Api<Deployment> = Api::namespaced(admin.clone(), "skillport-system");
    wait_for(
        "the operator Deployment is available",
        POD_TIMEOUT,
        || async {
            let deployment = operators
                .get("skillport-operator")
                .await
                .map_err(|e| e.to_string())?;
            let available = deployment
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            if available >= 1 {
                return Ok(());
            }
            let kubectl = |args: &[&str]| {
                node.kubectl()
                    .args(args)
                    .output()
                    .map(|o| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .unwrap_or_default()
            };
            let logs = kubectl(&[
                "logs",
                "-n",
                "skillport-system",
                "deploy/skillport-operator",
                "--tail=20",
            ]);
            let pods = kubectl(&[
                "get",
                "pods",
                "-n",
                "skillport-system",
                "-o",
                "jsonpath={.items[*].status}",
            ]);
            Err(format!("pods: {pods}\nlogs: {logs}"))
        },
    )
    .await;
}
