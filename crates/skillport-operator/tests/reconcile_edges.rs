//! Reconcile edge cases from issue 22, on a real API server:
//!
//! - item 7: a SkillSet without `workloadRef` (its Pods injected by the webhook) naming
//!   `container: app` becomes Ready — it was translated against a placeholder Pod whose only
//!   container was `agent`, and never was;
//! - item 9: when the image-volume probe Pod is refused (here: the operator's namespace has no
//!   `default` ServiceAccount; a policy engine would do the same), an InitContainer SkillSet
//!   does not need the probe at all, and an Auto one takes the init container — neither fails
//!   its reconcile with a raw `Status { … }` dump;
//! - item 10: a ConfigMap by the plan's name that is not the SkillSet's is never changed.

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skillport_operator::api::SkillSet;
use skillport_testkit::Cluster;

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_only_named_container_refused_probe_and_a_foreign_plan_config_map() {
    log_to_test_output();
    let cluster = Cluster::start_default().await;
    let registry = skillport_testkit::Registry::tls_basic_auth();
    let work = tempfile::tempdir().unwrap();
    let admin = prepare(&cluster, &registry, work.path()).await;
    push_skill(&registry, work.path(), "pdf", "1", "pdf body").await;
    push_skill(&registry, work.path(), "review", "1", "review body").await;
    // The probe Pod needs the operator namespace's `default` account: without it, refused.
    Api::<ServiceAccount>::namespaced(admin.clone(), "skillport-system")
        .delete("default", &DeleteParams::default())
        .await
        .unwrap();
    let operator = Operator::start(&cluster, &registry).await;
    let skill_sets: Api<SkillSet> = Api::namespaced(admin.clone(), NAMESPACE);
    let host = registry.host();

    for (name, extra) in [
        (
            "app",
            json!({"container": "app", "delivery": "InitContainer"}),
        ),
        ("forced", json!({"delivery": "InitContainer"})),
        ("auto", json!({})),
    ] {
        skill_sets
            .create(&PostParams::default(), &skill_set(name, &host, &extra))
            .await
            .unwrap();
    }
    wait_condition(&skill_sets, "app", "Ready", "True", "Resolved").await;
    wait_condition(&skill_sets, "forced", "Ready", "True", "Resolved").await;
    let auto = wait_condition(&skill_sets, "auto", "Ready", "True", "Resolved").await;
    assert_eq!(
        auto.status.unwrap().delivery,
        Some(skillport_operator::api::Delivery::InitContainer),
        "a refused probe: Auto takes the init container"
    );

    foreign_plan_config_map(&admin, &skill_sets, &host).await;
    operator.stop().await;
}

/// Someone's own ConfigMap by the name the plan of SkillSet "taken" has (content-named, so
/// known once it was made: made, then its owner reference dropped and its data replaced, as if
/// another had made it): the next reconcile is refused, and the ConfigMap stays as it is.
async fn foreign_plan_config_map(admin: &kube::Client, skill_sets: &Api<SkillSet>, host: &str) {
    let taken = skill_set("taken", host, &json!({"delivery": "InitContainer"}));
    skill_sets
        .create(&PostParams::default(), &taken)
        .await
        .unwrap();
    let ready = wait_condition(skill_sets, "taken", "Ready", "True", "Resolved").await;
    let plan = ready
        .status
        .unwrap()
        .plan_config_map
        .expect("status names the plan");
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), NAMESPACE);
    config_maps
        .patch(
            &plan,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"ownerReferences": null},
                "data": {"mine": "keep me", "plan.json": null},
            })),
        )
        .await
        .unwrap();

    let refused = wait_condition(skill_sets, "taken", "Ready", "False", "TranslateFailed").await;
    let (_, _, message) = condition(&refused, "Ready").unwrap();
    assert!(
        message.contains(&plan) && message.contains("not this SkillSet's"),
        "{message}"
    );
    let kept = config_maps.get(&plan).await.unwrap();
    assert_eq!(
        kept.data.unwrap().get("mine").map(String::as_str),
        Some("keep me"),
        "another's ConfigMap was changed"
    );
}
