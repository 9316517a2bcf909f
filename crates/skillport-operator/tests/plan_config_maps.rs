//! The plan ConfigMap (issue 22, item 5), on a real control plane with the controller-manager
//! (so ReplicaSets are real). It was one ConfigMap per SkillSet, changed in place: Pods of the
//! old ReplicaSet (a scale-up, an eviction, a rollback) then fetched the new digests under the
//! old `skills-digest`, and switching to ImageVolume deleted it while old Pods still mounted it.
//! Now each plan is a ConfigMap named by its content; an old one stays, as it was, while a
//! ReplicaSet refers to it, and is collected once none does.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use skillport_operator::api::SkillSet;
use skillport_testkit::{Cluster, ClusterOptions, Registry};

mod support;

use support::*;

/// The plan ConfigMap's `plan.json`, or why not.
async fn plan_json(config_maps: &Api<ConfigMap>, name: &str) -> Result<String, String> {
    let config_map = config_maps
        .get_opt(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("ConfigMap {name} is gone"))?;
    Ok(config_map
        .data
        .unwrap_or_default()
        .get("plan.json")
        .cloned()
        .unwrap_or_default())
}

/// The plan the Deployment's template mounts, once it is not `other`.
async fn mounted_plan(deployments: &Api<Deployment>, other: Option<&str>) -> String {
    wait_for(
        "the template mounts a new plan",
        Duration::from_secs(60),
        || async {
            let deployment = deployments.get("agent").await.map_err(|e| e.to_string())?;
            match plan_reference(&deployment) {
                Some(plan) if Some(plan.as_str()) != other => Ok(plan),
                plan => Err(format!("mounts {plan:?}")),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_plan_is_a_new_config_map_and_the_old_one_stays_while_a_replica_set_uses_it() {
    log_to_test_output();
    let cluster = Cluster::start(ClusterOptions::default().with_controller_manager()).await;
    let registry = Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let admin = prepare(&cluster, &registry, work.path()).await;
    let pdf_1 = push_skill(&registry, work.path(), "pdf", "1", "first body").await;
    push_skill(&registry, work.path(), "review", "1", "review body").await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NAMESPACE);
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    // No replicas: rollouts finish without a node, and old ReplicaSets stay (history of 5).
    let mut manifest = deployment_manifest("agent");
    manifest["spec"]["replicas"] = json!(0);
    manifest["spec"]["revisionHistoryLimit"] = json!(5);
    gitops_apply(&deployments, &manifest).await.unwrap();
    let operator = Operator::start(&cluster, &registry).await;
    let host = registry.host();
    let spec = json!({
        "workloadRef": {"kind": "Deployment", "name": "agent"},
        "delivery": "InitContainer",
    });
    skill_sets
        .create(&PostParams::default(), &skill_set("tools", &host, &spec))
        .await
        .unwrap();
    wait_condition(&skill_sets, "tools", "Ready", "True", "Applied").await;
    let first = mounted_plan(&deployments, None).await;
    assert!(
        plan_json(&config_maps, &first)
            .await
            .unwrap()
            .contains(&pdf_1)
    );

    // The tag moves: a second plan, by another name; the first is as it was (the old
    // ReplicaSet's Pods fetch what their skills-digest says).
    let pdf_2 = push_skill(&registry, work.path(), "pdf", "1", "second body").await;
    let second = mounted_plan(&deployments, Some(&first)).await;
    assert!(
        plan_json(&config_maps, &second)
            .await
            .unwrap()
            .contains(&pdf_2)
    );
    let tools = wait_for(
        "status names the new plan",
        Duration::from_secs(30),
        || async {
            let tools = skill_sets.get("tools").await.map_err(|e| e.to_string())?;
            let named = tools
                .status
                .as_ref()
                .and_then(|s| s.plan_config_map.clone());
            if named.as_deref() == Some(second.as_str()) {
                Ok(tools)
            } else {
                Err(format!("{named:?}"))
            }
        },
    )
    .await;
    assert!(tools.status.is_some());
    // Reconciled again (10 s updateInterval): still there, unchanged, while a ReplicaSet uses it.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let old = plan_json(&config_maps, &first)
        .await
        .expect("the old plan stays");
    assert!(old.contains(&pdf_1) && !old.contains(&pdf_2), "{old}");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), NAMESPACE);
    assert!(
        replica_sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
            >= 2
    );

    // The history goes (the Deployment keeps no old ReplicaSet): the old plan is collected, the
    // one in use stays.
    manifest["spec"]["revisionHistoryLimit"] = json!(0);
    gitops_apply(&deployments, &manifest).await.unwrap();
    wait_for(
        "the old plan is collected",
        Duration::from_secs(60),
        || async {
            match plan_json(&config_maps, &first).await {
                Err(gone) if gone.contains("is gone") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(
        plan_json(&config_maps, &second)
            .await
            .unwrap()
            .contains(&pdf_2)
    );
    operator.stop().await;
}
