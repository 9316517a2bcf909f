//! The admission webhook through a real API server (kube-apiserver, etcd, controller-manager):
//! deploy/'s two webhook configurations, as they are, but sent to the operator's webhook on
//! 127.0.0.1 (`clientConfig.url` and the test CA instead of the in-cluster Service). The
//! operator runs in this process as deploy/'s ServiceAccount; the registry has TLS and auth.
//!
//! One cluster for the whole story; each step is named in its assertion messages.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use skillport_operator::api::SkillSet;

mod support;

use support::*;

struct World {
    /// Kept running for the whole story.
    _stage: WebhookStage,
    admin: kube::Client,
    host: String,
    deployments: Api<Deployment>,
    skill_sets: Api<SkillSet>,
    pods: Api<Pod>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_validates_and_injects_through_the_real_api_server() {
    log_to_test_output();
    let stage = WebhookStage::start().await;
    let operator = Operator::run(&stage.cluster, stage.config()).await;
    let admin = stage.admin.clone();
    let w = World {
        host: stage.registry.host(),
        deployments: Api::namespaced(admin.clone(), NAMESPACE),
        skill_sets: Api::namespaced(admin.clone(), NAMESPACE),
        pods: Api::namespaced(admin.clone(), NAMESPACE),
        admin,
        _stage: stage,
    };
    // The Pods of these steps run nowhere (no node): what matters is what the API server stores.
    gitops_apply(&w.deployments, &agent_manifest("agent", None))
        .await
        .unwrap();

    denied_skill_sets(&w).await;
    let tools = injected_pod_equals_attached_template(&w).await;
    deployment_pods_are_injected(&w, &tools).await;
    not_ready_skill_sets_follow_their_failure_policy(&w).await;
    operator.stop().await;
    webhook_down(&w).await;
}

/// A Deployment whose agent mounts /data; `label` puts `skillport.dev/skillset` in its template.
fn agent_manifest(name: &str, label: Option<&str>) -> Value {
    let mut manifest = deployment_manifest(name);
    manifest["spec"]["template"]["spec"]["automountServiceAccountToken"] = json!(false);
    if let Some(skill_set) = label {
        manifest["spec"]["template"]["metadata"]["labels"]["skillport.dev/skillset"] =
            json!(skill_set);
    }
    manifest
}

/// A bare Pod with the Deployment's template, labelled for SkillSet `skill_set`.
fn labelled_pod(name: &str, skill_set: &str) -> Pod {
    let manifest = agent_manifest("agent", Some(skill_set));
    let template = &manifest["spec"]["template"];
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!(name);
    serde_json::from_value(json!({"metadata": metadata, "spec": template["spec"]})).unwrap()
}

/// Error text of a create that must fail.
fn refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, step: &str) -> String {
    match result {
        Ok(created) => panic!("{step}: admitted, but must be refused: {created:?}"),
        Err(kube::Error::Api(status)) => format!("{} {:?}", status.message, status.details),
        Err(err) => panic!("{step}: not an API error: {err}"),
    }
}

/// Mount paths overlapping the agent's own mounts, and a workload already claimed for the same
/// container: denied, naming the field.
async fn denied_skill_sets(w: &World) {
    let clash = skill_set(
        "clash",
        &w.host,
        &json!({
            "workloadRef": {"kind": "Deployment", "name": "agent"},
            "skills": [{"name": "pdf", "image": format!("{}/skills/pdf:1", w.host), "mountPath": "/data/pdf"}],
        }),
    );
    // The operator's webhook starts with the operator: wait until it answers.
    let message = wait_for(
        "denied: the webhook answers",
        Duration::from_secs(30),
        || async {
            match w.skill_sets.create(&PostParams::default(), &clash).await {
                Ok(_) => panic!("denied: a mount path inside the agent's /data is admitted"),
                Err(kube::Error::Api(status)) if status.message.contains("denied the request") => {
                    Ok(format!("{} {:?}", status.message, status.details))
                }
                Err(err) => Err(err.to_string()),
            }
        },
    )
    .await;
    assert!(
        message.contains("spec.skills[0].mountPath") && message.contains("/data"),
        "denied: names the field and the mount it overlaps: {message}"
    );

    w.skill_sets
        .create(
            &PostParams::default(),
            &skill_set(
                "tools",
                &w.host,
                &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            ),
        )
        .await
        .expect("denied: a valid SkillSet is admitted");
    let second = skill_set(
        "second",
        &w.host,
        &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}, "container": "agent"}),
    );
    let message = refused(
        w.skill_sets.create(&PostParams::default(), &second).await,
        "claimed",
    );
    assert!(
        message.contains("spec.workloadRef") && message.contains("\"tools\""),
        "claimed: names the field and the SkillSet that claims the workload: {message}"
    );
}

/// What the API server's admission adds to a Pod but never to a pod template.
const POD_ONLY: [&str; 6] = [
    "tolerations",
    "priority",
    "serviceAccount",
    "serviceAccountName",
    "enableServiceLinks",
    "preemptionPolicy",
];

/// One translate, two doors: a bare Pod labelled with SkillSet `tools` is stored with the same
/// spec (and skillport annotations) as the pod template the `workloadRef` attach wrote.
async fn injected_pod_equals_attached_template(w: &World) -> SkillSet {
    let tools = wait_condition(&w.skill_sets, "tools", "Ready", "True", "Applied").await;
    let created = w
        .pods
        .create(&PostParams::default(), &labelled_pod("direct", "tools"))
        .await
        .expect("two doors: the labelled Pod is admitted");
    let attached = template(&w.deployments.get("agent").await.unwrap());
    let mut pod_spec = serde_json::to_value(created.spec.as_ref().unwrap()).unwrap();
    let template_spec = serde_json::to_value(attached.spec.as_ref().unwrap()).unwrap();
    for key in POD_ONLY {
        if template_spec.get(key).is_none() {
            pod_spec.as_object_mut().unwrap().remove(key);
        }
    }
    assert!(
        pod_spec["volumes"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["name"] == "skill-pdf")),
        "two doors: the stored Pod has the skill volumes: {pod_spec:#}"
    );
    assert_eq!(
        pod_spec, template_spec,
        "two doors: the injected Pod's spec equals the attached template's"
    );
    let ours = |annotations: Option<&std::collections::BTreeMap<String, String>>| {
        annotations
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.starts_with("skillport.dev/"))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect::<Vec<_>>()
    };
    let pod_annotations = ours(created.metadata.annotations.as_ref());
    assert!(!pod_annotations.is_empty(), "two doors: annotations added");
    assert_eq!(
        pod_annotations,
        ours(
            attached
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
        ),
        "two doors: the same skillport annotations"
    );
    tools
}

/// A Deployment of someone else's (its template labelled, never edited by the operator): the
/// Pods its ReplicaSet makes carry the skills.
async fn deployment_pods_are_injected(w: &World, tools: &SkillSet) {
    gitops_apply(&w.deployments, &agent_manifest("labelled", Some("tools")))
        .await
        .unwrap();
    let pdf = &tools.status.as_ref().unwrap().skills[0];
    let pod = wait_pod(&w.pods, "app=labelled", "deployment: its Pod exists").await;
    let reference = pod
        .spec
        .unwrap()
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "skill-pdf")
        .and_then(|v| v.image)
        .and_then(|image| image.reference);
    assert_eq!(
        reference,
        Some(format!(
            "{}/skills/pdf@{}",
            w.host,
            pdf.digest.as_deref().unwrap()
        )),
        "deployment: the ReplicaSet's Pod has the skill volume, pinned by digest"
    );
    let stored = w.deployments.get("labelled").await.unwrap();
    assert!(
        volume_reference(&stored, "skill-pdf").is_none(),
        "deployment: the Deployment itself is left as its owner wrote it"
    );
}

/// A SkillSet that is not ready: Ignore admits labelled Pods without skills, Fail refuses them;
/// a SkillSet that does not exist admits them without skills.
async fn not_ready_skill_sets_follow_their_failure_policy(w: &World) {
    for (name, policy) in [("lenient", "Ignore"), ("strict", "Fail")] {
        let spec = json!({
            "failurePolicy": policy,
            "skills": [{"name": "gone", "image": format!("{}/skills/gone:1", w.host)}],
        });
        w.skill_sets
            .create(&PostParams::default(), &skill_set(name, &w.host, &spec))
            .await
            .unwrap();
        wait_condition(&w.skill_sets, name, "Ready", "False", "ResolveFailed").await;
    }
    let skill_volumes = |pod: &Pod| {
        pod.spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .filter(|v| v.name.starts_with("skill"))
            .count()
    };
    let lenient = w
        .pods
        .create(&PostParams::default(), &labelled_pod("lenient", "lenient"))
        .await
        .expect("Ignore: the Pod is admitted");
    assert_eq!(skill_volumes(&lenient), 0, "Ignore: without skills");
    let missing = w
        .pods
        .create(
            &PostParams::default(),
            &labelled_pod("missing", "nonexistent"),
        )
        .await
        .expect("missing SkillSet: the Pod is admitted");
    assert_eq!(
        skill_volumes(&missing),
        0,
        "missing SkillSet: without skills"
    );
    let message = refused(
        w.pods
            .create(&PostParams::default(), &labelled_pod("strict", "strict"))
            .await,
        "Fail",
    );
    assert!(
        message.contains("failurePolicy: Fail") && message.contains("strict"),
        "Fail: says which SkillSet and why: {message}"
    );
}

/// With the webhook down, deploy/'s failurePolicy Fail: labelled Pods and SkillSets are refused
/// (nothing starts without the skills it asked for, nothing is admitted unchecked); Pods without
/// the label are never sent.
async fn webhook_down(w: &World) {
    let message = refused(
        w.pods
            .create(&PostParams::default(), &labelled_pod("down", "tools"))
            .await,
        "down: labelled Pod",
    );
    assert!(
        message.contains("failed calling webhook") && message.contains("pods.skillport.dev"),
        "down: the API server says the webhook could not be called: {message}"
    );
    let mut plain = labelled_pod("plain", "tools");
    plain
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("skillport.dev/skillset");
    w.pods
        .create(&PostParams::default(), &plain)
        .await
        .expect("down: a Pod without the label is never sent to the webhook");
    // (That namespace enforces the restricted Pod Security Standard.)
    let mut own = serde_json::to_value(labelled_pod("own", "tools")).unwrap();
    own["spec"]["securityContext"] =
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
    for container in own["spec"]["containers"].as_array_mut().unwrap() {
        container["securityContext"] =
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    }
    Api::<Pod>::namespaced(w.admin.clone(), "skillport-system")
        .create(
            &PostParams::default(),
            &serde_json::from_value(own).unwrap(),
        )
        .await
        .expect("down: the operator's own namespace is never sent (namespaceSelector)");
    let message = refused(
        w.skill_sets
            .create(
                &PostParams::default(),
                &skill_set("later", &w.host, &json!({})),
            )
            .await,
        "down: SkillSet",
    );
    assert!(
        message.contains("skillsets.skillport.dev"),
        "down: the SkillSet is refused by the validating webhook's failurePolicy: {message}"
    );
    // matchConditions: an update that leaves the spec alone is never sent, so labels (and the
    // operator's finalizer) can change while the webhook is down.
    w.skill_sets
        .patch(
            "tools",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "agents"}}})),
        )
        .await
        .expect("down: a metadata-only SkillSet update is not sent to the webhook");
    let changed = json!({"spec": {"updateInterval": "20s"}});
    let message = refused(
        w.skill_sets
            .patch("tools", &PatchParams::default(), &Patch::Merge(&changed))
            .await,
        "down: spec update",
    );
    assert!(
        message.contains("skillsets.skillport.dev"),
        "down: a spec update is sent, and refused: {message}"
    );
}
