//! One SkillSet's reconcile, as gather → decide → act: [`gather`] reads what the decision needs
//! (the resolution, the cluster's image-volume support, the workload as it stands), the pure
//! [`decide`](super::decide) says what to do, [`act`] does it (release, plan ConfigMap, apply)
//! and [`finish`] writes the status and its Events. The only Kubernetes I/O of the controller.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use skillport_fetch::git::GitCredentials;

use super::decide::{self, Decision, Facts, LiveWorkload, Outcome, PlanStep, Resolution, Workload};
use super::plans;
use super::resolve::{PullSecret, ResolveFailure};
use super::status;
use super::{Context, Error, Tenant};
use crate::api::{
    ResolvedSkill, SkillSet, SkillSetStatus, WorkloadKind, WorkloadRef, condition, reason,
};
use crate::attach::{self, FIELD_MANAGER, Owned};
use crate::translate::{Mode, SkillResources, names};

/// Our finalizer: the SkillSet stays until its fields are off the workload.
pub const FINALIZER: &str = "skillport.dev/cleanup";

/// When a generation of a SkillSet was last resolved, and a hash of what it resolved to: the
/// skills themselves are in its status, and are taken from there only while the status read
/// holds exactly those (a stale read of an older status must not roll the workload back).
#[derive(Clone)]
pub struct CachedResolution {
    generation: Option<i64>,
    /// [`Context::policy_epoch`] when it was resolved.
    epoch: u64,
    at: Instant,
    skills: [u8; 8],
}

/// A short hash of resolved skills.
fn skills_hash(skills: &[ResolvedSkill]) -> [u8; 8] {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(serde_json::to_vec(skills).expect("skills serialise"));
    digest[..8].try_into().expect("8 bytes")
}

#[tracing::instrument(skip_all, fields(skill_set = %ObjectRef::from_obj(skill_set.as_ref())))]
pub async fn reconcile(skill_set: Arc<SkillSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = skill_set.namespace().unwrap_or_default();
    let api: Api<SkillSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, skill_set, |event| async {
        match event {
            Finalize::Apply(skill_set) => attach(&skill_set, &ctx).await,
            Finalize::Cleanup(skill_set) => cleanup(&skill_set, &ctx).await,
        }
    })
    .await;
    ctx.metrics.reconciled(started.elapsed());
    result.map_err(|err| Error::Finalizer(Box::new(err)))
}

async fn attach(skill_set: &SkillSet, ctx: &Context) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(skill_set);
    if ctx.is_settled(skill_set)
        && let Some(due) = resolution_due(skill_set, ctx).await
    {
        // Our own status write coming back: nothing changed since the reconcile that wrote it
        // (the workload and FailedMount watches unsettle what they concern). The copy of the
        // status written is let go now that the watch shows it.
        let _ = ctx.known_status(skill_set);
        return Ok(Action::requeue(due));
    }
    ctx.settle(key.clone(), None);
    // Read before resolving: a policy change during the resolve makes it stale.
    let epoch = ctx.policy_epoch();
    let before = ctx.known_status(skill_set);
    // Everything done for the SkillSet is done as its namespace's ServiceAccount.
    let tenant = ctx.tenant(skill_set);
    let (facts, resolved_now) = gather(skill_set, ctx, &tenant, &before).await?;
    let live_version = match &facts.workload {
        Some(Workload::Live(live)) => live
            .object
            .pointer("/metadata/resourceVersion")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        _ => None,
    };
    let mut decision = decide::decide(facts);
    if let Some(failure) = &decision.resolve_failure {
        tracing::info!(%failure, "resolving failed; kept the skills resolved before, if any");
    }
    let applied_version = act(skill_set, ctx, &tenant, &mut decision).await?;
    ctx.saw_workload(
        ObjectRef::from_obj(skill_set),
        applied_version.or(live_version),
    );
    let pinned = decision.placed.status.skills.clone();
    let ready = [condition::RESOLVED, condition::READY].iter().all(|type_| {
        status::get(&decision.placed.status.conditions, type_).is_some_and(|c| c.status == "True")
    });
    let settled = ready.then(|| decision.placed.status.clone());
    let action = finish(skill_set, ctx, decision.placed, &before, decision.requeue).await?;
    if let Some(status) = &settled {
        ctx.settle(key, Some((skill_set.metadata.generation, status)));
    }
    if let Some(at) = resolved_now {
        // Cached only once the status holding the skills is written: should the write fail,
        // the next reconcile resolves again rather than take the older status for current.
        ctx.resolutions.lock().await.insert(
            ObjectRef::from_obj(skill_set),
            CachedResolution {
                generation: skill_set.metadata.generation,
                epoch,
                at,
                skills: skills_hash(&pinned),
            },
        );
    }
    Ok(action)
}

/// Reads what the decision needs: the resolution (cached for this generation until it is due
/// again), whether the cluster serves image volumes (asked only when the answer matters),
/// image-volume failures, and the workload `workloadRef` names with who holds what of it.
async fn gather<'a>(
    skill_set: &'a SkillSet,
    ctx: &'a Context,
    tenant: &Tenant<'_>,
    before: &'a SkillSetStatus,
) -> Result<(Facts<'a>, Option<Instant>), Error> {
    let (resolution, resolved_now) = resolution(skill_set, ctx, tenant, before).await;
    // InitContainer (or git skills) never needs image volumes. A refused probe Pod counts as
    // "not served" (cached).
    let image_volumes_served = Mode::choose(&skill_set.spec, true) == Mode::ImageVolume
        && ctx.capability.image_volumes_served().await?;
    // Image volumes that failed before (just now, or as status recorded) are not tried again.
    // The one in memory is let go once the watch shows it stored (not once written: a stale
    // read, or a CRD without the field, must not try image volumes again).
    let key = ObjectRef::from_obj(skill_set);
    let stored = skill_set
        .status
        .as_ref()
        .is_some_and(|status| status.image_volume_failure.is_some());
    if stored {
        ctx.image_volume_failure_written(&key);
    }
    let image_volume_failure = ctx
        .image_volume_failure(&key)
        .or_else(|| before.image_volume_failure.clone());
    let workload = match &skill_set.spec.workload_ref {
        Some(named) => Some(workload(skill_set, ctx, tenant, named).await?),
        None => None,
    };
    let facts = Facts {
        skill_set,
        before,
        resolution,
        image_volumes_served,
        image_volume_failure,
        workload,
        options: &ctx.options,
        now: k8s_openapi::jiff::Timestamp::now(),
    };
    Ok((facts, resolved_now))
}

/// The longest skills verified by policies stay pinned without a new look at the policies'
/// key material: a key taken out of its Secret or ConfigMap (which no watch sees) stops
/// counting within this, whatever the SkillSet's update interval.
const POLICY_RECHECK: Duration = Duration::from_secs(600);

/// How long a SkillSet's resolution holds ([`super::resolution_lifetime`]), shorter when a
/// skill policy verified its skills.
fn lifetime(skill_set: &SkillSet) -> Duration {
    let lifetime = super::resolution_lifetime(
        skill_set.metadata.uid.as_deref().unwrap_or_default(),
        super::update_interval(&skill_set.spec),
    );
    let verified = skill_set
        .status
        .as_ref()
        .is_some_and(|status| status.skills.iter().any(|skill| !skill.signers.is_empty()));
    if verified {
        lifetime.min(POLICY_RECHECK)
    } else {
        lifetime
    }
}

/// How long until the SkillSet's resolution is due again, if it is cached for this generation.
async fn resolution_due(skill_set: &SkillSet, ctx: &Context) -> Option<Duration> {
    let lifetime = lifetime(skill_set);
    let cached = ctx
        .resolutions
        .lock()
        .await
        .get(&ObjectRef::from_obj(skill_set))
        .cloned()?;
    (cached.generation == skill_set.metadata.generation
        && cached.epoch == ctx.policy_epoch()
        && cached.at.elapsed() < lifetime)
        .then(|| {
            lifetime
                .saturating_sub(cached.at.elapsed())
                .max(Duration::from_secs(1))
        })
}

/// This generation's skills: as status holds them until due again (the update interval and the
/// SkillSet's phase), else resolved now (with when).
async fn resolution(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
    before: &SkillSetStatus,
) -> (Resolution, Option<Instant>) {
    let lifetime = lifetime(skill_set);
    let key = ObjectRef::from_obj(skill_set);
    let cached = ctx.resolutions.lock().await.get(&key).cloned();
    let pinned = status::get(&before.conditions, condition::RESOLVED).is_some_and(|c| {
        c.status == "True" && c.observed_generation == skill_set.metadata.generation
    });
    if let Some(cached) = cached.filter(|r| {
        pinned
            && r.generation == skill_set.metadata.generation
            && r.epoch == ctx.policy_epoch()
            && r.at.elapsed() < lifetime
            && r.skills == skills_hash(&before.skills)
    }) {
        let resolution = Resolution::Pinned {
            refresh: lifetime.saturating_sub(cached.at.elapsed()),
            skills: before.skills.clone(),
        };
        return (resolution, None);
    }
    let started = Instant::now();
    match resolve(skill_set, ctx, tenant).await {
        Ok(skills) => {
            ctx.failures.lock().await.remove(&key);
            let resolution = Resolution::Pinned {
                skills,
                refresh: lifetime,
            };
            (resolution, Some(started))
        }
        Err(failure) => {
            let failures = ctx.failed_again(&key).await;
            (Resolution::Failed { failure, failures }, None)
        }
    }
}

/// The workload `named`, read as the tenant, and who holds what of it. Other SkillSets that
/// exist hold it (one SkillSet per workload: applying beside them would fight over the
/// pod-level names); what the old shared manager or SkillSets now gone left is taken over.
async fn workload(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
    named: &WorkloadRef,
) -> Result<Workload, Error> {
    let live = match workload_api(tenant, named.kind).get_opt(&named.name).await {
        Ok(Some(live)) => live,
        Ok(None) => return Ok(Workload::Missing),
        Err(kube::Error::Api(status)) if status.is_forbidden() => {
            return Ok(Workload::Forbidden(tenant.forbidden(&status.message)));
        }
        Err(err) => return Err(err.into()),
    };
    let entries = live.metadata.managed_fields.as_deref().unwrap_or(&[]);
    let manager = attach::field_manager(&skill_set.name_any());
    let container = skill_set.spec.container.clone().or_else(|| {
        live.data
            .pointer("/spec/template/spec/containers/0/name")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    });
    let Claimants {
        claiming,
        gone,
        yielding,
    } = claimants(ctx, skill_set, entries, container.as_deref()).await?;
    if !claiming.is_empty() {
        let holding = !Owned::from_managed_fields(entries, &manager)
            .items
            .is_empty();
        return Ok(Workload::Claimed {
            others: claiming,
            holding,
        });
    }
    let (leftovers, taken_over) = leftovers(entries, &gone);
    // Younger SkillSets that applied to this container at the same time give it up (they
    // release what they alone hold); what they hold under the same names is ours to apply over.
    let taken_over = yielding
        .iter()
        .map(|other| Owned::from_managed_fields(entries, &attach::field_manager(other)))
        .fold(taken_over, Owned::union);
    Ok(Workload::Live(LiveWorkload {
        owned: Owned::from_managed_fields(entries, &manager),
        taken_over,
        leftovers,
        object: serde_json::to_value(&live).expect("objects serialise"),
    }))
}

/// Carries the decision out: releases the workload left, syncs the plan ConfigMap (pods must
/// find it before the workload names it), applies. A step refused by RBAC, or a ConfigMap of
/// someone else's by the plan's name, is said on the SkillSet instead.
async fn act(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
    decision: &mut Decision,
) -> Result<Option<String>, Error> {
    let mut released = false;
    let mut applied = None;
    let result = async {
        if let Some(previous) = &decision.release {
            let legacy = decision.release_legacy;
            release(ctx, tenant, previous, &skill_set.name_any(), legacy).await?;
            released = true;
        }
        if let PlanStep::Sync(Some(plan)) = &decision.plan {
            plans::ensure(ctx, tenant, skill_set, plan).await?;
        }
        if let Some(apply) = decision.apply.clone() {
            applied = apply_to(skill_set, ctx, tenant, decision, &apply).await?;
        }
        if let PlanStep::Sync(plan) = &decision.plan {
            let current = plan.as_ref().map(|plan| plan.name.as_str());
            plans::collect(ctx, tenant, skill_set, current).await;
        }
        Ok::<(), Error>(())
    }
    .await;
    match result {
        Ok(()) => Ok(applied),
        Err(Error::Kube(kube::Error::Api(status))) if status.is_forbidden() => {
            let message = tenant.forbidden(&status.message);
            decide::not_placed(decision, released, reason::FORBIDDEN, &message);
            Ok(None)
        }
        Err(Error::Workload(message)) => {
            decide::not_placed(decision, released, reason::TRANSLATE_FAILED, &message);
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Applies to the workload; when the API server dropped the image volumes, takes the rest back
/// off and records the failure (the decision says so). Returns the stored workload's version
/// (none once taken back off: its next event is news).
async fn apply_to(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
    decision: &mut Decision,
    apply: &decide::Apply,
) -> Result<Option<String>, Error> {
    let workload = &apply.workload;
    let stored = workload_api(tenant, workload.kind)
        .patch(
            &workload.name,
            &PatchParams::apply(&apply.manager).force(),
            &Patch::Apply(&apply.body),
        )
        .await?;
    ctx.metrics.wrote(workload.kind.as_str());
    for leftover in &apply.leftovers {
        // Ours now under the SkillSet's manager; the old one lets go of what it alone held.
        apply_nothing(ctx, tenant, workload, leftover).await?;
    }
    if decision.mode == Mode::ImageVolume && !kept_image_volumes(&stored, &apply.resources) {
        // What the server stored is what counts.
        release(ctx, tenant, workload, &skill_set.name_any(), true).await?;
        let failure = decide::image_volumes_dropped(decision, skill_set, workload);
        ctx.record_image_volume_failure(ObjectRef::from_obj(skill_set), failure);
        return Ok(None);
    }
    Ok(stored.metadata.resource_version)
}

/// The other SkillSets with fields on a workload, by what they are to this one.
struct Claimants {
    /// Older, on the same container: this one gives it up.
    claiming: Vec<String>,
    /// Gone: what they left is taken over.
    gone: Vec<String>,
    /// Younger, on the same container: they give it up.
    yielding: Vec<String>,
}

/// The other SkillSets whose field managers hold fields of the object with `entries`: those
/// that exist and hold fields of `container` claim it when older than `skill_set` (created
/// before it, or the same second with a name before its own: of two applied at once, one keeps
/// the container) and yield it when younger; those gone left what is taken over. Those on
/// other containers are left be: their pod-wide names are their own. A manager cut for length
/// ([`attach::field_manager`]) cannot be looked up by name: it counts as claiming.
async fn claimants(
    ctx: &Context,
    skill_set: &SkillSet,
    entries: &[ManagedFieldsEntry],
    container: Option<&str>,
) -> Result<Claimants, Error> {
    let namespace = skill_set.namespace().unwrap_or_default();
    let skill_sets: Api<SkillSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let manager = attach::field_manager(&skill_set.name_any());
    let age = |s: &SkillSet| (s.metadata.creation_timestamp.clone(), s.name_any());
    let (mut claiming, mut gone, mut yielding) = (Vec::new(), Vec::new(), Vec::new());
    for other in attach::other_skill_sets(entries, &manager) {
        let theirs = attach::field_manager(&other);
        let on_container = Owned::from_managed_fields(entries, &theirs)
            .containers()
            .any(|c| Some(c) == container);
        if !theirs.ends_with(&format!("/{other}")) {
            if on_container {
                claiming.push(other);
            }
            continue;
        }
        match skill_sets.get_opt(&other).await? {
            None => gone.push(other),
            Some(found) if on_container && age(&found) < age(skill_set) => claiming.push(other),
            Some(_) if on_container => yielding.push(other),
            Some(_) => {}
        }
    }
    Ok(Claimants {
        claiming,
        gone,
        yielding,
    })
}

/// The field managers whose fields a SkillSet takes over (the old shared one, those of SkillSets
/// `gone`) that hold any, and what they hold together.
fn leftovers(entries: &[ManagedFieldsEntry], gone: &[String]) -> (Vec<String>, Owned) {
    let managers: Vec<String> = std::iter::once(FIELD_MANAGER.to_owned())
        .chain(gone.iter().map(|gone| attach::field_manager(gone)))
        .filter(|manager| {
            !Owned::from_managed_fields(entries, manager)
                .items
                .is_empty()
        })
        .collect();
    let owned = managers
        .iter()
        .map(|manager| Owned::from_managed_fields(entries, manager))
        .fold(Owned::default(), Owned::union);
    (managers, owned)
}

/// Writes the status when it changed, publishes an Event per transition, counts failures.
async fn finish(
    skill_set: &SkillSet,
    ctx: &Context,
    outcome: Outcome,
    before: &SkillSetStatus,
    requeue: Duration,
) -> Result<Action, Error> {
    let reference = skill_set.object_ref(&());
    // A first `Resolved=True` is said by the `Ready` Event that follows it (one API write less
    // per new SkillSet); a recovery from a failure, and every `False`, has its own.
    let first_resolved = |change: &&status::Transition| {
        change.type_ == condition::RESOLVED
            && change.status
            && status::get(&before.conditions, condition::RESOLVED).is_none()
    };
    for change in outcome.transitions.iter().filter(|c| !first_resolved(c)) {
        let event = Event {
            type_: if change.status {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: change.reason.clone(),
            note: Some(status::truncate(&change.message, 1024)),
            action: change.type_.clone(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %err, "could not publish an Event");
        }
    }
    if let Some(ready) = status::get(&outcome.status.conditions, condition::READY)
        && ready.status != "True"
    {
        ctx.metrics.failed(&ready.reason);
    }
    let changed = outcome.status != *before;
    if changed {
        tracing::debug!(skill_set = %skill_set.name_any(), "status changed");
        let api: Api<SkillSet> = Api::namespaced(
            ctx.client.clone(),
            &skill_set.namespace().unwrap_or_default(),
        );
        let body = json!({
            "apiVersion": SkillSet::api_version(&()),
            "kind": SkillSet::kind(&()),
            "status": outcome.status,
        });
        api.patch_status(
            &skill_set.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
        ctx.metrics.wrote("SkillSet/status");
    }
    if changed {
        ctx.wrote_status(skill_set, outcome.status);
    }
    Ok(Action::requeue(requeue))
}

async fn cleanup(skill_set: &SkillSet, ctx: &Context) -> Result<Action, Error> {
    let status = skill_set.status.clone().unwrap_or_default();
    let status_workload = status.workload.clone();
    // Both: the workload attached last, and the one named now (a crash between apply and
    // status write leaves fields there that status does not name yet). Releasing is an apply of
    // nothing under this SkillSet's own field manager: a workload it never touched loses nothing.
    let mut workloads: Vec<WorkloadRef> = status.workload.into_iter().collect();
    if let Some(named) = &skill_set.spec.workload_ref
        && !workloads.contains(named)
    {
        workloads.push(named.clone());
    }
    let tenant = ctx.tenant(skill_set);
    for workload in &workloads {
        // The spec may have been edited after deletion began: only what recorded status names
        // is released of the old shared manager's fields too; elsewhere only this SkillSet's own.
        let recorded = status_workload.as_ref() == Some(workload);
        match release(ctx, &tenant, workload, &skill_set.name_any(), recorded).await {
            // The namespace took the rights away (or is being deleted, its RoleBindings first):
            // what we applied stays on the workload, and the SkillSet goes. Holding it would
            // block the namespace's deletion for good.
            Err(Error::Kube(err)) if crate::tenant::is_forbidden(&err) => {
                let message = format!(
                    "could not take the skills off {} {:?}: {err}; they stay there until \
                     removed by hand",
                    workload.kind.as_str(),
                    workload.name
                );
                tracing::warn!(skill_set = %skill_set.name_any(), %message, "released nothing");
                let event = Event {
                    type_: EventType::Warning,
                    reason: reason::FORBIDDEN.to_owned(),
                    note: Some(status::truncate(&message, 1024)),
                    action: "Cleanup".to_owned(),
                    secondary: None,
                };
                let _ = ctx
                    .recorder
                    .publish(&event, &skill_set.object_ref(&()))
                    .await;
            }
            result => result?,
        }
    }
    let key = ObjectRef::from_obj(skill_set);
    ctx.resolutions.lock().await.remove(&key);
    ctx.image_volume_failures
        .lock()
        .expect("not poisoned")
        .remove(&key);
    ctx.failures.lock().await.remove(&key);
    ctx.written.lock().expect("not poisoned").remove(&key);
    ctx.saw_workload(key.clone(), None);
    ctx.settle(key, None);
    // The plan ConfigMap is owned by the SkillSet: the garbage collector removes it.
    Ok(Action::await_change())
}

/// Takes every field SkillSet `skill_set` owns off `workload` (an apply of nothing under its
/// field manager, and under the old shared one), if it exists.
async fn release(
    ctx: &Context,
    tenant: &Tenant<'_>,
    workload: &WorkloadRef,
    skill_set: &str,
    with_legacy: bool,
) -> Result<(), Error> {
    let api = workload_api(tenant, workload.kind);
    let Some(live) = api.get_opt(&workload.name).await? else {
        return Ok(());
    };
    let entries = live.metadata.managed_fields.as_deref().unwrap_or(&[]);
    let legacy = with_legacy.then(|| FIELD_MANAGER.to_owned());
    for manager in std::iter::once(attach::field_manager(skill_set)).chain(legacy) {
        if !Owned::from_managed_fields(entries, &manager)
            .items
            .is_empty()
        {
            apply_nothing(ctx, tenant, workload, &manager).await?;
            tracing::info!(namespace = %tenant.namespace, workload = %workload.name, %manager, "released");
        }
    }
    Ok(())
}

/// An apply of nothing under `manager`: the API server removes every field only it owns.
async fn apply_nothing(
    ctx: &Context,
    tenant: &Tenant<'_>,
    workload: &WorkloadRef,
    manager: &str,
) -> Result<(), Error> {
    let body = attach::release_body(workload.kind, &tenant.namespace, &workload.name);
    workload_api(tenant, workload.kind)
        .patch(
            &workload.name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&body),
        )
        .await?;
    ctx.metrics.wrote(workload.kind.as_str());
    Ok(())
}

/// Reads the pull and git Secrets (in memory only) and resolves every skill.
async fn resolve(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
) -> Result<Vec<ResolvedSkill>, ResolveFailure> {
    let started = Instant::now();
    // Read as the SkillSet's ServiceAccount: a Secret it may not get is not used.
    let secrets: Api<Secret> = Api::namespaced(tenant.client.clone(), &tenant.namespace);
    let spec = &skill_set.spec;
    let failure = |message: String, transient: bool| ResolveFailure {
        skill: String::new(),
        message,
        transient,
        refused_by_policy: false,
    };
    let read = |name: String| {
        let secrets = secrets.clone();
        async move {
            secrets.get_opt(&name).await.map_err(|err| match err {
                kube::Error::Api(status) if status.is_forbidden() => {
                    failure(tenant.forbidden(&status.message), false)
                }
                err => failure(format!("reading Secret {name:?}: {err}"), true),
            })
        }
    };
    let mut pull_secrets = Vec::new();
    let mut missing = Vec::new();
    for reference in &spec.image_pull_secrets {
        match read(reference.name.clone()).await? {
            None => missing.push(reference.name.clone()),
            Some(secret) => {
                let data = secret_data(&secret);
                let config = data
                    .get(names::DOCKER_CONFIG_KEY)
                    .or_else(|| data.get(".dockercfg"))
                    .ok_or_else(|| {
                        failure(
                            format!(
                                "pull secret {:?} has no .dockerconfigjson key (make it with \
                                 kubectl create secret docker-registry)",
                                reference.name
                            ),
                            false,
                        )
                    })?;
                pull_secrets.push(PullSecret {
                    name: reference.name.clone(),
                    config: config.clone(),
                });
            }
        }
    }
    let git_credentials = match &spec.git_auth_secret_ref {
        Some(reference) if spec.skills.iter().any(|s| s.git.is_some()) => {
            let secret = read(reference.name.clone()).await?.ok_or_else(|| {
                failure(
                    format!("git auth Secret {:?} does not exist", reference.name),
                    false,
                )
            })?;
            Some(
                GitCredentials::from_secret_data(&secret_data(&secret)).map_err(|reason| {
                    failure(
                        format!("git auth Secret {:?}: {reason}", reference.name),
                        false,
                    )
                })?,
            )
        }
        _ => None,
    };
    // The skill policies: if they cannot be read, nothing is resolved (fail closed).
    let policies = super::trust::policies(
        &ctx.client,
        &ctx.namespace,
        &tenant.client,
        &tenant.namespace,
    )
    .await
    .map_err(|super::trust::Unreadable(message)| failure(message, true))?;
    let before = skill_set
        .status
        .as_ref()
        .map(|status| status.skills.as_slice())
        .unwrap_or_default();
    let result = ctx
        .resolver
        .resolve(spec, &pull_secrets, git_credentials, &policies, before)
        .await
        .map_err(|mut failure| {
            if !missing.is_empty() {
                let _ = write!(
                    failure.message,
                    " (pull secrets not found: {})",
                    missing.join(", ")
                );
            }
            failure
        });
    ctx.metrics.resolved(started.elapsed());
    result
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.0.clone()))
        .collect()
}

/// Whether the stored workload still has every image volume and mount we applied.
fn kept_image_volumes(stored: &DynamicObject, resources: &SkillResources) -> bool {
    let body = json!({"spec": {"template": {"spec": {
        "volumes": resources.volumes,
        "containers": [{"name": resources.container, "volumeMounts": resources.volume_mounts}],
    }}}});
    attach::contains(&stored.data, &body)
}

/// The workloads of `kind` in the tenant's namespace, as the tenant.
fn workload_api(tenant: &Tenant<'_>, kind: WorkloadKind) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind.as_str()));
    Api::namespaced_with(tenant.client.clone(), &tenant.namespace, &resource)
}
