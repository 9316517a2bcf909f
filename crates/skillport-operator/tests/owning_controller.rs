//! A controller that owns its Deployment and writes the whole spec back (kagent's, issue 19), on
//! a real control plane with the controller-manager, and the webhook called by the real API
//! server.
//!
//! kagent cannot be built here (its Go module is not served), so [`Kagent`] does what its
//! controller does with an Agent's Deployment (v0.10, controller-runtime's `CreateOrUpdate`): it
//! owns the Deployment (an owner reference to the Agent, `controller: true`), watches it, and on
//! every change sets the whole spec to the one it wants, keeping the pod template's annotations
//! (it merges those), with a full `Update` under field manager `kagent-controller`. Its container
//! is `kagent`, and the Agent's `spec.declarative.deployment.labels` go on the Pods.
//!
//! Before the fix the operator and such a controller rolled the Deployment thousands of times a
//! minute while the SkillSet said `Ready=True`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};
use skillport_operator::api::SkillSet;

mod support;

use support::*;

/// The Agent, and its Deployment.
const AGENT: &str = "k8s-agent";
const KAGENT_MANAGER: &str = "kagent-controller";

struct World {
    stage: WebhookStage,
    admin: kube::Client,
    host: String,
    deployments: Api<Deployment>,
    skill_sets: Api<SkillSet>,
    agents: Api<DynamicObject>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_that_writes_the_whole_spec_is_not_fought() {
    log_to_test_output();
    let stage = WebhookStage::start().await;
    let admin = stage.admin.clone();
    let agents = install_agent_crd(&admin).await;
    agents
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "kagent.dev/v1alpha2", "kind": "Agent",
                "metadata": {"name": AGENT, "namespace": NAMESPACE},
                "spec": {"type": "Declarative", "declarative": {"deployment": {}}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let kagent = tokio::spawn(kagent(admin.clone()));
    let operator = Operator::run(&stage.cluster, stage.config()).await;
    let w = World {
        host: stage.registry.host(),
        deployments: Api::namespaced(admin.clone(), NAMESPACE),
        skill_sets: Api::namespaced(admin.clone(), NAMESPACE),
        agents,
        admin,
        stage,
    };
    wait_for(
        "kagent makes the Agent's Deployment",
        Duration::from_secs(30),
        || async {
            let found = w
                .deployments
                .get_opt(AGENT)
                .await
                .map_err(|e| e.to_string())?;
            found.map(drop).ok_or_else(|| "not yet".to_owned())
        },
    )
    .await;

    let operator = std::cell::RefCell::new(Some(operator));
    let stage = &w.stage;
    let left = workload_ref_settles_not_ready(&w, || async {
        let running = operator.borrow_mut().take().unwrap();
        running.stop().await;
        let started = Operator::run(&stage.cluster, stage.config()).await;
        *operator.borrow_mut() = Some(started);
    })
    .await;
    label_door_delivers(&w, &left).await;
    let running = operator.borrow_mut().take().unwrap();
    running.stop().await;
    kagent.abort();
}

/// `workloadRef` to kagent's Deployment: the operator stops after the second removal, with
/// `Ready=False` naming kagent's field manager and the Agent, and the Deployment's generation
/// stays put. Returns the skills-digest annotation left on the template (kagent merges
/// annotations, so it keeps ours while dropping the rest).
async fn workload_ref_settles_not_ready<F: Future<Output = ()>>(
    w: &World,
    restart: impl FnOnce() -> F,
) -> String {
    let spec = json!({
        "workloadRef": {"kind": "Deployment", "name": AGENT},
        "container": "kagent",
        "folderEnv": ["KAGENT_SKILLS_FOLDER"],
    });
    w.skill_sets
        .create(&PostParams::default(), &skill_set("tools", &w.host, &spec))
        .await
        .unwrap();
    let tools = wait_condition(
        &w.skill_sets,
        "tools",
        "Ready",
        "False",
        "WorkloadContested",
    )
    .await;
    let (_, _, message) = condition(&tools, "Ready").unwrap();
    for part in [
        "\"kagent-controller\"",
        "Agent \"k8s-agent\"",
        "skillport.dev/skillset: tools",
    ] {
        assert!(message.contains(part), "contested: {part:?} in {message}");
    }
    let contention = tools.status.unwrap().contention.expect("status.contention");
    assert_eq!(
        (contention.manager.as_str(), contention.removals),
        (KAGENT_MANAGER, 2),
        "contested: who removed the skills, how often"
    );
    let generation = |deployment: &Deployment| deployment.metadata.generation.unwrap();
    // The Deployment's writes but those to its status (the controller-manager's, as Pods come
    // up), the SkillSet's version, the generation.
    let versions = || async {
        let deployment = w.deployments.get(AGENT).await.unwrap();
        let tools = w.skill_sets.get("tools").await.unwrap();
        let writes: Vec<_> = deployment
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|entry| entry.subresource.as_deref() != Some("status"))
            .map(|entry| (entry.manager.clone(), entry.time.clone()))
            .collect();
        (
            writes,
            tools.metadata.resource_version,
            generation(&deployment),
        )
    };
    let settled = versions().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        versions().await,
        settled,
        "contested: nobody writes the Deployment or the SkillSet any more"
    );
    // Created (1), an apply of ours, kagent's write back, our one repair, kagent's write back.
    assert_eq!(settled.2, 5, "contested: settled within two applies");
    // A new operator (a restart, a new leader) reads the count from status: no new fight.
    restart().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        versions().await,
        settled,
        "contested: a restarted operator holds off too"
    );
    let later = w.deployments.get(AGENT).await.unwrap();
    assert!(
        volume_reference(&later, "skill-pdf--kagent").is_none(),
        "contested: kagent's spec stands"
    );
    let events = events_for(&w.admin, "tools").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("WorkloadContested")
                && e.type_.as_deref() == Some("Warning")),
        "contested: a Warning Event says so: {events:?}"
    );
    template(&later)
        .metadata
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("skillport.dev/skills-digest--kagent").cloned())
        .expect("kagent kept our annotation")
}

/// The label door, which kagent's Agent opens (`spec.declarative.deployment.labels`): Pods of the
/// Deployment get the skills at creation, on the `kagent` container, with `KAGENT_SKILLS_FOLDER`
/// — though they carry the annotation `tools` left on the template, and none of its skills.
async fn label_door_delivers(w: &World, stale: &str) {
    // pdf alone: a skills-digest of its own, unlike the one `tools` left on the template.
    let spec = json!({
        "skills": [{"name": "pdf", "image": format!("{}/skills/pdf:1", w.host)}],
        "container": "kagent",
        "folderEnv": ["KAGENT_SKILLS_FOLDER"],
    });
    w.skill_sets
        .create(
            &PostParams::default(),
            &skill_set("kagent-skills", &w.host, &spec),
        )
        .await
        .unwrap();
    let ready = wait_condition(&w.skill_sets, "kagent-skills", "Ready", "True", "Resolved").await;
    w.agents
        .patch(
            AGENT,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"declarative": {"deployment": {
                "labels": {"skillport.dev/skillset": "kagent-skills"},
            }}}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(w.admin.clone(), NAMESPACE);
    let pod = wait_pod(
        &pods,
        "skillport.dev/skillset=kagent-skills",
        "label door: a Pod of the labelled template",
    )
    .await;
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    assert_ne!(
        annotations
            .get("skillport.dev/skills-digest--kagent")
            .map(String::as_str),
        Some(stale),
        "label door: the Pod came with the template's annotation and none of its skills: it is \
         injected, and says so"
    );
    let spec = pod.spec.unwrap();
    let pdf = &ready.status.unwrap().skills[0];
    let reference = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "skill-pdf--kagent")
        .and_then(|v| v.image.as_ref())
        .and_then(|image| image.reference.clone());
    assert_eq!(
        reference,
        Some(format!(
            "{}/skills/pdf@{}",
            w.host,
            pdf.digest.as_deref().unwrap()
        )),
        "label door: the skill volume, pinned by digest"
    );
    let agent = spec.containers.iter().find(|c| c.name == "kagent").unwrap();
    let env: BTreeMap<&str, Option<&str>> = agent
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert_eq!(
        env.get("KAGENT_SKILLS_FOLDER"),
        Some(&Some("/skills")),
        "label door: kagent's runtime is told where the skills are: {env:?}"
    );
    let tools = w.skill_sets.get("tools").await.unwrap();
    assert_eq!(
        condition(&tools, "Ready").map(|(s, r, _)| (s, r)),
        Some(("False".into(), "WorkloadContested".into())),
        "label door: the workloadRef SkillSet still holds off"
    );
}

/// A stand-in for kagent's Agent CRD (any spec).
async fn install_agent_crd(admin: &kube::Client) -> Api<DynamicObject> {
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "agents.kagent.dev"},
        "spec": {
            "group": "kagent.dev",
            "names": {"kind": "Agent", "plural": "agents", "singular": "agent", "listKind": "AgentList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1alpha2", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap();
    Api::<CustomResourceDefinition>::all(admin.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    wait_established(admin, "agents.kagent.dev").await;
    Api::namespaced_with(
        admin.clone(),
        NAMESPACE,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kagent.dev", "v1alpha2", "Agent"),
            "agents",
        ),
    )
}

/// kagent's controller for one Agent: on any change of the Agent or its Deployment, the
/// Deployment made, or its whole spec set back with a full `Update`.
async fn kagent(client: kube::Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let agents = Api::<DynamicObject>::namespaced_with(
        client,
        NAMESPACE,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kagent.dev", "v1alpha2", "Agent"),
            "agents",
        ),
    );
    let own = watcher::Config::default().fields(&format!("metadata.name={AGENT}"));
    let changes = futures_util::stream::select(
        watcher(deployments.clone(), own.clone())
            .default_backoff()
            .map(drop),
        watcher(agents.clone(), own).default_backoff().map(drop),
    );
    let mut changes = std::pin::pin!(changes);
    while changes.next().await.is_some() {
        if let Err(err) = kagent_reconcile(&deployments, &agents).await {
            // A conflict: the write that caused it is another event.
            tracing::info!(%err, "kagent stand-in: reconcile failed");
        }
    }
}

async fn kagent_reconcile(
    deployments: &Api<Deployment>,
    agents: &Api<DynamicObject>,
) -> Result<(), kube::Error> {
    let agent = agents.get(AGENT).await?;
    let mut labels = json!({"app": AGENT});
    if let Some(Value::Object(extra)) = agent.data.pointer("/spec/declarative/deployment/labels") {
        for (key, value) in extra {
            labels[key] = value.clone();
        }
    }
    let mut desired: DeploymentSpec = serde_json::from_value(json!({
        "replicas": 1,
        "selector": {"matchLabels": {"app": AGENT}},
        "template": {
            "metadata": {"labels": labels, "annotations": {"kagent.dev/config-hash": "1"}},
            "spec": {
                "automountServiceAccountToken": false,
                "containers": [{"name": "kagent", "image": "registry.example/kagent-adk:0.10",
                                "env": [{"name": "KAGENT_NAME", "value": AGENT}]}],
            },
        },
    }))
    .unwrap();
    let write = PostParams {
        field_manager: Some(KAGENT_MANAGER.into()),
        ..PostParams::default()
    };
    let Some(existing) = deployments.get_opt(AGENT).await? else {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": AGENT, "namespace": NAMESPACE, "ownerReferences": [{
                "apiVersion": "kagent.dev/v1alpha2", "kind": "Agent", "name": AGENT,
                "uid": agent.metadata.uid, "controller": true, "blockOwnerDeletion": true,
            }]},
            "spec": desired,
        }))
        .unwrap();
        deployments.create(&write, &deployment).await?;
        return Ok(());
    };
    // `existing.Spec = desired.Spec`, the template's annotations merged.
    let mut annotations = template(&existing)
        .metadata
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    let metadata = desired.template.metadata.get_or_insert_default();
    annotations.extend(metadata.annotations.take().unwrap_or_default());
    metadata.annotations = Some(annotations);
    let mut updated = existing.clone();
    updated.spec = Some(desired);
    if updated != existing {
        // Unchanged once defaulted, the API server stores nothing and sends no event.
        deployments.replace(AGENT, &write, &updated).await?;
    }
    Ok(())
}
