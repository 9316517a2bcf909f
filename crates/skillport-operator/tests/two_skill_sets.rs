//! Two SkillSets naming one Deployment (issue 22, item 4), on a real control plane with the
//! controller-manager (so ReplicaSets are real). Each SkillSet applies under a field manager of
//! its own (`skillport/<name>`) with pod-wide names of its own (`-<container>`), so on different
//! containers both are attached and neither's apply or release takes the other's fields; a
//! third on a container already taken is refused (`WorkloadClaimed`). With one shared manager
//! and one set of names the two undid each other in a loop, a rollout each round.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skillport_operator::api::SkillSet;
use skillport_testkit::{Cluster, ClusterOptions, Registry};

mod support;

use support::*;

fn managers(deployment: &Deployment) -> Vec<String> {
    deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.manager.clone())
        .collect()
}

/// The `SKILL_FOLDERS` values of `container` (none or one).
fn skill_folders(deployment: &Deployment, container: &str) -> Vec<String> {
    template(deployment)
        .spec
        .unwrap()
        .containers
        .into_iter()
        .find(|c| c.name == container)
        .and_then(|c| c.env)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.name == "SKILL_FOLDERS")
        .filter_map(|e| e.value)
        .collect()
}

fn has_volume(deployment: &Deployment, name: &str) -> bool {
    volume_reference(deployment, name).is_some()
}

/// A SkillSet gone without releasing (its finalizer removed while the operator was down, as when
/// its rights were taken away) claims nothing: the next one takes its fields over.
async fn a_gone_skill_set_claims_nothing(
    cluster: &Cluster,
    registry: &Registry,
    operator: Operator,
    skill_sets: &Api<SkillSet>,
    deployments: &Api<Deployment>,
) -> Operator {
    let host = registry.host();
    operator.stop().await;
    skill_sets
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    skill_sets
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert!(has_volume(
        &deployments.get("agent").await.unwrap(),
        "skill-pdf--agent"
    ));
    let operator = Operator::start(cluster, registry).await;
    let third = skill_set(
        "third",
        &host,
        &json!({
            "workloadRef": {"kind": "Deployment", "name": "agent"},
            "skills": [{"name": "review", "image": format!("{host}/skills/review:1")}],
        }),
    );
    skill_sets
        .create(&PostParams::default(), &third)
        .await
        .unwrap();
    wait_condition(skill_sets, "third", "Ready", "True", "Applied").await;
    let taken = deployments.get("agent").await.unwrap();
    assert!(
        has_volume(&taken, "skill-review") && !has_volume(&taken, "skill-pdf--agent"),
        "the gone SkillSet's skills stayed beside the new one's"
    );
    assert!(
        !managers(&taken).iter().any(|m| m == "skillport/first"),
        "{:?}",
        managers(&taken)
    );
    operator
}

/// A third SkillSet on a container already taken (the first container, as `first` names it)
/// is refused and comes and goes without a write.
async fn a_third_on_a_taken_container_is_refused(
    skill_sets: &Api<SkillSet>,
    deployments: &Api<Deployment>,
    host: &str,
    after: &Deployment,
) {
    let clash = skill_set(
        "clash",
        host,
        &json!({
            "workloadRef": {"kind": "Deployment", "name": "agent"},
            "skills": [{"name": "review", "image": format!("{host}/skills/review:1")}],
        }),
    );
    skill_sets
        .create(&PostParams::default(), &clash)
        .await
        .unwrap();
    let refused = wait_condition(skill_sets, "clash", "Ready", "False", "WorkloadClaimed").await;
    let (_, _, message) = condition(&refused, "Ready").unwrap();
    assert!(message.contains("SkillSet first"), "{message}");
    skill_sets
        .delete("clash", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(skill_sets, "clash").await;
    assert_eq!(
        deployments.get("agent").await.unwrap().metadata.generation,
        after.metadata.generation,
        "the refused SkillSet came and went without a write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_skill_sets_on_one_deployment_never_undo_each_other() {
    log_to_test_output();
    let cluster = Cluster::start(ClusterOptions::default().with_controller_manager()).await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let admin = prepare(&cluster, &registry, work.path()).await;
    push_skill(&registry, work.path(), "pdf", "1", "pdf body").await;
    push_skill(&registry, work.path(), "review", "1", "review body").await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    gitops_apply(&deployments, &deployment_manifest("agent"))
        .await
        .unwrap();
    let operator = Operator::start(&cluster, &registry).await;
    let host = registry.host();

    let first = skill_set(
        "first",
        &host,
        &json!({
            "workloadRef": {"kind": "Deployment", "name": "agent"},
            "container": "agent",
            "skills": [{"name": "pdf", "image": format!("{host}/skills/pdf:1")}],
        }),
    );
    skill_sets
        .create(&PostParams::default(), &first)
        .await
        .unwrap();
    wait_condition(&skill_sets, "first", "Ready", "True", "Applied").await;
    let second = skill_set(
        "second",
        &host,
        &json!({
            "workloadRef": {"kind": "Deployment", "name": "agent"},
            "container": "sidecar",
            "skills": [{"name": "review", "image": format!("{host}/skills/review:1")}],
        }),
    );
    skill_sets
        .create(&PostParams::default(), &second)
        .await
        .unwrap();
    wait_condition(&skill_sets, "second", "Ready", "True", "Applied").await;

    // Both attached, each under its own manager and names; settled: over a few seconds of
    // both being reconciled (10 s updateInterval, the Deployment watch), nothing changes.
    let before = deployments.get("agent").await.unwrap();
    assert!(
        has_volume(&before, "skill-pdf--agent") && has_volume(&before, "skill-review--sidecar"),
        "both SkillSets' skills are there"
    );
    assert_eq!(skill_folders(&before, "agent"), ["/skills/pdf"]);
    assert_eq!(skill_folders(&before, "sidecar"), ["/skills/review"]);
    assert!(
        managers(&before).contains(&"skillport/first".to_owned())
            && managers(&before).contains(&"skillport/second".to_owned()),
        "{:?}",
        managers(&before)
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = deployments.get("agent").await.unwrap();
    assert_eq!(
        before.metadata.generation, after.metadata.generation,
        "the Deployment's spec kept changing: the two SkillSets fight"
    );
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let sets = replica_sets
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap();
    assert!(
        sets.items.len() <= 3,
        "one ReplicaSet per real change (the user's, each SkillSet's): {}",
        sets.items.len()
    );

    a_third_on_a_taken_container_is_refused(&skill_sets, &deployments, &host, &after).await;

    // The second goes: its fields come off, the first's stay.
    skill_sets
        .delete("second", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&skill_sets, "second").await;
    let left = deployments.get("agent").await.unwrap();
    assert!(
        has_volume(&left, "skill-pdf--agent") && !has_volume(&left, "skill-review--sidecar"),
        "releasing the second SkillSet took exactly its own skills off"
    );
    assert!(skill_folders(&left, "sidecar").is_empty());
    assert_eq!(skill_folders(&left, "agent"), ["/skills/pdf"]);

    let operator =
        a_gone_skill_set_claims_nothing(&cluster, &registry, operator, &skill_sets, &deployments)
            .await;
    let operator =
        two_at_once_on_one_container(&cluster, &registry, operator, &skill_sets, &deployments)
            .await;
    operator.stop().await;
}

/// Two SkillSets for one container made while the operator was down, the younger's fields
/// already applied (a race): the older (by creation, then name) applies over the names they
/// share and keeps the container, and the younger is `WorkloadClaimed` with its fields off.
async fn two_at_once_on_one_container(
    cluster: &Cluster,
    registry: &Registry,
    operator: Operator,
    skill_sets: &Api<SkillSet>,
    deployments: &Api<Deployment>,
) -> Operator {
    let host = registry.host();
    operator.stop().await;
    for (name, skill) in [("x-older", "pdf"), ("y-younger", "review")] {
        let spec = json!({
            "workloadRef": {"kind": "Deployment", "name": "agent"},
            "container": "sidecar",
            "skills": [{"name": skill, "image": format!("{host}/skills/{skill}:1")}],
        });
        skill_sets
            .create(&PostParams::default(), &skill_set(name, &host, &spec))
            .await
            .unwrap();
    }
    // The younger one applied first (as a race can have it): its fields, under its manager,
    // with the names the older one uses too.
    deployments
        .patch(
            "agent",
            &PatchParams::apply("skillport/y-younger").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "agent", "namespace": NAMESPACE},
                "spec": {"template": {"spec": {
                    "volumes": [{"name": "skillport-index--sidecar", "emptyDir": {}}],
                    "containers": [{"name": "sidecar",
                        "env": [{"name": "SKILL_FOLDERS", "value": "/skills/review"}]}],
                }}},
            })),
        )
        .await
        .unwrap();
    let operator = Operator::start(cluster, registry).await;
    wait_condition(skill_sets, "x-older", "Ready", "True", "Applied").await;
    wait_condition(skill_sets, "y-younger", "Ready", "False", "WorkloadClaimed").await;
    let settled = wait_for(
        "at once: the younger's fields are off",
        Duration::from_secs(30),
        || async {
            let d = deployments.get("agent").await.map_err(|e| e.to_string())?;
            let clean = has_volume(&d, "skill-pdf--sidecar")
                && !has_volume(&d, "skill-review--sidecar")
                && !managers(&d).iter().any(|m| m == "skillport/y-younger");
            let seen = format!("{:?}", managers(&d));
            clean.then_some(d).ok_or(seen)
        },
    )
    .await;
    assert_eq!(skill_folders(&settled, "sidecar"), ["/skills/pdf"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        deployments.get("agent").await.unwrap().metadata.generation,
        settled.metadata.generation,
        "at once: settled"
    );
    operator
}
