//! The plan ConfigMaps of InitContainer delivery. Each is named by its content
//! ([`names::plan_config_map`]), so a new plan is a new ConfigMap and a Pod of an older template
//! (a scale-up of an old ReplicaSet, an eviction, a rollback) still finds the plan it was made
//! with. One is made before the workload names it, and collected (after the workload is
//! attached, best effort) once nothing can start a Pod with it: it is not the plan in use, no
//! ReplicaSet, ControllerRevision or labelled Pod of the namespace names it, and it has been so
//! for the grace (the webhook may be injecting it into a Pod right now).
//!
//! Only ConfigMaps with an owner reference to the SkillSet are changed or deleted, as the
//! SkillSet's ServiceAccount. A namespace whose role does not let it list those objects keeps
//! its old plans (the garbage collector removes them with the SkillSet), as does a SkillSet that
//! left the init container (its last plan stays until the SkillSet goes).

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};

use super::{Context, Error, Tenant};
use crate::api::SkillSet;
use crate::attach::FIELD_MANAGER;
use crate::translate::PlanConfigMap;

/// The label on every plan ConfigMap (the selector that lists them).
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "skillport");

/// When a plan was first found out of use (RFC 3339), on the ConfigMap.
const SUPERSEDED_AT: &str = "skillport.dev/superseded-at";

/// The label that puts a Pod through the webhook door (its value the SkillSet's name).
const SKILL_SET_LABEL: &str = "skillport.dev/skillset";

/// Makes `plan` (owned by the SkillSet) unless it is there with this data: before the workload
/// names it, so that its Pods find it.
pub async fn ensure(
    ctx: &Context,
    tenant: &Tenant<'_>,
    skill_set: &SkillSet,
    plan: &PlanConfigMap,
) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(tenant.client.clone(), &tenant.namespace);
    make(ctx, &api, skill_set, plan).await
}

/// Collects the SkillSet's old plans, after the workload is attached: housekeeping, so a
/// failure is logged and retried at the next reconcile, never in the way of delivery.
pub async fn collect(
    ctx: &Context,
    tenant: &Tenant<'_>,
    skill_set: &SkillSet,
    current: Option<&str>,
) {
    let api: Api<ConfigMap> = Api::namespaced(tenant.client.clone(), &tenant.namespace);
    if let Err(err) = collect_unused(ctx, tenant, &api, skill_set, current).await {
        tracing::info!(error = %err, "old plan ConfigMaps not collected this time");
    }
}

/// Creates the plan ConfigMap (owned by the SkillSet) unless it is there with this data.
async fn make(
    ctx: &Context,
    api: &Api<ConfigMap>,
    skill_set: &SkillSet,
    plan: &PlanConfigMap,
) -> Result<(), Error> {
    let owner = skill_set
        .controller_owner_ref(&())
        .expect("a SkillSet from the API has a name and uid");
    if let Some(existing) = api.get_opt(&plan.name).await? {
        if !owned_by(&existing, &owner.uid) {
            // Someone else's ConfigMap by that name: never changed or taken over.
            return Err(Error::Workload(format!(
                "ConfigMap {:?} exists and is not this SkillSet's (no owner reference to it); \
                 rename or remove it, the plan ConfigMap needs that name",
                plan.name
            )));
        }
        if existing.data.as_ref() == Some(&plan.data) {
            return Ok(());
        }
    }
    let namespace = skill_set.namespace();
    let body = plan.object(namespace.as_deref(), Some(&owner));
    api.patch(
        &plan.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    ctx.metrics.wrote("ConfigMap");
    Ok(())
}

/// Deletes the SkillSet's plan ConfigMaps other than `current` that no ReplicaSet,
/// ControllerRevision or labelled Pod refers to, once they have been out of use for
/// [`super::Settings::plan_grace`]: the first time one is found out of use it is stamped
/// ([`SUPERSEDED_AT`]), and deleted at a later reconcile past the grace. The grace covers Pods
/// being admitted with it right now (the webhook's copy of the SkillSet may lag, and a Pod in
/// admission is in no list yet).
async fn collect_unused(
    ctx: &Context,
    tenant: &Tenant<'_>,
    api: &Api<ConfigMap>,
    skill_set: &SkillSet,
    current: Option<&str>,
) -> Result<(), kube::Error> {
    let uid = skill_set.metadata.uid.clone().unwrap_or_default();
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    // From the API server's watch cache: a list per reconcile costs it little.
    let listed = api
        .list(&ListParams::default().labels(&selector).match_any())
        .await?
        .items;
    let ours: Vec<&ConfigMap> = listed
        .iter()
        .filter(|config_map| owned_by(config_map, &uid))
        .filter(|config_map| Some(config_map.name_any().as_str()) != current)
        .collect();
    if ours.is_empty() {
        return Ok(());
    }
    let referenced = referenced(tenant, &skill_set.name_any()).await?;
    let now = Timestamp::now();
    for config_map in ours {
        let name = config_map.name_any();
        if referenced.contains(&name) {
            continue;
        }
        let superseded = config_map
            .annotations()
            .get(SUPERSEDED_AT)
            .and_then(|at| at.parse::<Timestamp>().ok());
        let Some(superseded) = superseded else {
            let stamp = json!({"metadata": {"annotations": {SUPERSEDED_AT: now.to_string()}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&stamp))
                .await?;
            ctx.metrics.wrote("ConfigMap");
            continue;
        };
        let grace = SignedDuration::try_from(ctx.plan_grace).unwrap_or(SignedDuration::MAX);
        if superseded.checked_add(grace).is_ok_and(|until| until > now) {
            continue;
        }
        // Exactly the one listed: a ConfigMap made again by that name meanwhile stays.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: config_map.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                ctx.metrics.wrote("ConfigMap");
                tracing::info!(namespace = %tenant.namespace, config_map = %name, "collected an old plan");
            }
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The ConfigMaps that the namespace's ReplicaSets, ControllerRevisions and the Pods labelled
/// with SkillSet `skill_set` mount: what a Pod may still be started with.
async fn referenced(tenant: &Tenant<'_>, skill_set: &str) -> Result<BTreeSet<String>, kube::Error> {
    let mut names = BTreeSet::new();
    let cached = ListParams::default().match_any();
    for resource in [
        ApiResource::erase::<ReplicaSet>(&()),
        ApiResource::erase::<ControllerRevision>(&()),
    ] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(tenant.client.clone(), &tenant.namespace, &resource);
        for object in api.list(&cached).await? {
            config_map_volumes(&object.data, &mut names);
        }
    }
    // Pods the webhook gave skills carry the label; a label value has at most 63 characters.
    if skill_set.len() <= 63 {
        let pods: Api<DynamicObject> = Api::namespaced_with(
            tenant.client.clone(),
            &tenant.namespace,
            &ApiResource::erase::<Pod>(&()),
        );
        let labelled = cached
            .clone()
            .labels(&format!("{SKILL_SET_LABEL}={skill_set}"));
        for pod in pods.list(&labelled).await? {
            config_map_volumes(&pod.data, &mut names);
        }
    }
    Ok(names)
}

/// Adds the name of every ConfigMap volume anywhere in `value` (a Pod's spec, a template, a
/// ControllerRevision's data) to `names`.
fn config_map_volumes(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("configMap")
                .and_then(|source| source.get("name"))
                .and_then(Value::as_str)
            {
                names.insert(name.to_owned());
            }
            map.values().for_each(|v| config_map_volumes(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| config_map_volumes(v, names)),
        _ => {}
    }
}

/// Whether `object` has an owner reference to the object with `uid`.
fn owned_by(object: &ConfigMap, uid: &str) -> bool {
    object
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_map_volumes_are_found_in_templates_revisions_and_pods() {
        let mut names = BTreeSet::new();
        let replica_set = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "skillport-plan", "configMap": {"name": "a-skillport-plan-1"}},
            {"name": "other", "secret": {"secretName": "not-a-config-map"}},
        ]}}}});
        // A StatefulSet's revision holds its template as a patch.
        let revision = json!({"data": {"spec": {"template": {"$patch": "replace",
            "spec": {"volumes": [{"name": "p", "configMap": {"name": "a-skillport-plan-2"}}]}}}}});
        let pod = json!({"spec": {"volumes": [
            {"name": "projected", "projected": {"sources": [{"configMap": {"name": "ca"}}]}},
        ]}});
        for object in [&replica_set, &revision, &pod] {
            config_map_volumes(object, &mut names);
        }
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["a-skillport-plan-1", "a-skillport-plan-2", "ca"]
        );
    }
}
