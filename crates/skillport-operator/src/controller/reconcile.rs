//! One SkillSet's reconcile: resolve → choose the delivery → translate → apply → report. The
//! only Kubernetes I/O of the operator; everything it decides comes from the pure parts
//! ([`translate`](crate::translate), [`attach`](crate::attach), [`status`](super::status)).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};
use skillport_fetch::git::GitCredentials;

use super::plans;
use super::resolve::{PullSecret, ResolveFailure};
use super::status::{self, Transition};
use super::{Context, Error, Tenant};
use crate::api::{
    Delivery, ImageVolumeFailure, ResolvedSkill, SkillSet, SkillSetStatus, WorkloadKind,
    WorkloadRef, condition, reason,
};
use crate::attach::{self, FIELD_MANAGER, Owned};
use crate::translate::{Mode, SkillResources, TranslateError, names};

/// Our finalizer: the SkillSet stays until its fields are off the workload.
pub const FINALIZER: &str = "skillport.dev/cleanup";

/// How long to wait before looking again at a SkillSet that cannot be attached for a reason a
/// watch event will not end (a workload that is not there is also watched).
const RETRY_LATER: Duration = Duration::from_secs(60);

/// Skills resolved for one generation of a SkillSet, and when.
#[derive(Clone)]
pub struct Resolution {
    generation: Option<i64>,
    at: Instant,
    skills: Vec<ResolvedSkill>,
}

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

/// What one reconcile found, to be written as status (only when it changed).
struct Outcome {
    status: SkillSetStatus,
    transitions: Vec<Transition>,
    generation: Option<i64>,
}

impl Outcome {
    fn set(&mut self, type_: &str, ok: bool, why: &str, message: &str) {
        if let Some(change) = status::set(
            &mut self.status.conditions,
            type_,
            ok,
            why,
            message,
            self.generation,
        ) {
            self.transitions.push(change);
        }
    }

    fn not_ready(&mut self, why: &str, message: &str) {
        self.set(condition::READY, false, why, message);
    }

    /// Every skill resolved: `status.skills` and `Resolved=True`.
    fn pinned(&mut self, skills: Vec<ResolvedSkill>) {
        let message = format!("{} skills pinned", skills.len());
        self.status.skills = skills;
        self.set(condition::RESOLVED, true, reason::RESOLVED, &message);
    }
}

async fn attach(skill_set: &SkillSet, ctx: &Context) -> Result<Action, Error> {
    let spec = &skill_set.spec;
    let before = ctx.known_status(skill_set);
    let mut outcome = Outcome {
        status: before.clone(),
        transitions: Vec::new(),
        generation: skill_set.metadata.generation,
    };
    outcome.status.observed_generation = skill_set.metadata.generation;

    // 1. Resolve (cached for updateInterval per generation).
    // Everything done for the SkillSet is done as its namespace's ServiceAccount.
    let tenant = ctx.tenant(skill_set);
    let (resolved_failure, requeue) =
        resolve_step(skill_set, ctx, &tenant, &before, &mut outcome).await;

    // 2. Delivery. The API server is asked only when the answer matters: InitContainer (or git
    // skills) never needs image volumes. A refused probe Pod counts as "not served" (cached).
    let served = Mode::choose(spec, true) == Mode::ImageVolume
        && ctx.capability.image_volumes_served().await?;
    let key = ObjectRef::from_obj(skill_set);
    // Image volumes that failed before (just now, or as status recorded) are not tried again.
    let failed_here = ctx
        .image_volume_failure(&key)
        .or_else(|| before.image_volume_failure.clone())
        .map(|mut failure| {
            failure.message = status::truncate(&failure.message, 1024);
            failure
        });
    outcome.status.image_volume_failure.clone_from(&failed_here);
    let mode = Mode::choose(spec, served && failed_here.is_none());
    if mode == Mode::ImageVolume && !served {
        outcome.not_ready(
            reason::IMAGE_VOLUMES_UNSUPPORTED,
            "delivery is ImageVolume, but the API server drops image volumes (feature gate \
             ImageVolume off, or Kubernetes older than 1.31); use delivery Auto or InitContainer",
        );
        return finish(skill_set, ctx, outcome, &before, RETRY_LATER).await;
    }
    if let Some(failure) = &failed_here {
        if mode == Mode::ImageVolume {
            outcome.not_ready(&failure.reason, &failure.message);
            return finish(skill_set, ctx, outcome, &before, RETRY_LATER).await;
        }
        if before.delivery == Some(Delivery::ImageVolume) {
            // Auto moves this SkillSet to the init container: say why, once.
            outcome.transitions.push(Transition {
                type_: condition::READY.to_owned(),
                status: false,
                reason: failure.reason.clone(),
                message: format!("{}; falling back to InitContainer", failure.message),
            });
        }
    }

    // 3. The workload: release the one we left, attach to the one named.
    let retry = match place(skill_set, ctx, &tenant, mode, &before, &mut outcome).await {
        Ok(retry) => retry,
        Err(Error::Kube(kube::Error::Api(status))) if status.is_forbidden() => {
            outcome.not_ready(reason::FORBIDDEN, &tenant.forbidden(&status.message));
            Some(RETRY_LATER)
        }
        // What the namespace holds stands in the way (a workload that does not parse, a
        // ConfigMap of someone else's by the plan's name): said on the SkillSet.
        Err(Error::Workload(message)) => {
            outcome.not_ready(reason::TRANSLATE_FAILED, &message);
            Some(RETRY_LATER)
        }
        Err(err) => return Err(err),
    };
    if let Some(failure) = &resolved_failure {
        tracing::info!(skill_set = %key, %failure, "kept the skills resolved before");
    }
    finish(
        skill_set,
        ctx,
        outcome,
        &before,
        retry.map_or(requeue, |r| r.min(requeue)),
    )
    .await
}

/// Releases the workload the SkillSet left and attaches to the one it names, or readies it for
/// injection; `Some(retry)` when it could not (the reason is in `outcome`).
async fn place(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
    mode: Mode,
    before: &SkillSetStatus,
    outcome: &mut Outcome,
) -> Result<Option<Duration>, Error> {
    let spec = &skill_set.spec;
    if let Some(previous) = &before.workload
        && spec.workload_ref.as_ref() != Some(previous)
    {
        release(ctx, tenant, previous, &skill_set.name_any(), true).await?;
        outcome.status.workload = None;
    }
    let Some(workload) = spec.workload_ref.clone() else {
        // Pods labelled with the SkillSet get the skills at admission (the webhook).
        ready_for_injection(skill_set, ctx, tenant, mode, before, outcome).await?;
        return Ok(None);
    };
    if let Some(retry) =
        attach_workload(skill_set, ctx, tenant, &workload, mode, before, outcome).await?
    {
        return Ok(Some(retry));
    }
    outcome.status.workload = Some(workload.clone());
    outcome.status.delivery = Some(mode.delivery());
    outcome.set(
        condition::READY,
        true,
        reason::APPLIED,
        &format!(
            "{} skills attached to {} {:?} ({})",
            spec.skills.len(),
            workload.kind.as_str(),
            workload.name,
            mode.as_str()
        ),
    );
    Ok(None)
}

/// No `workloadRef`: Pods labelled `skillport.dev/skillset` get the skills at admission. Those
/// of InitContainer mode mount the plan ConfigMap, which admission cannot make: it is made here,
/// from any pod template (the plan does not depend on it).
async fn ready_for_injection(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
    mode: Mode,
    before: &SkillSetStatus,
    outcome: &mut Outcome,
) -> Result<(), Error> {
    let spec = &skill_set.spec;
    outcome.status.delivery = Some(mode.delivery());
    // Any template will do, as long as it has the container the SkillSet names.
    let container = spec.container.as_deref().unwrap_or("agent");
    let placeholder: PodTemplateSpec =
        serde_json::from_value(json!({"spec": {"containers": [{"name": container}]}}))
            .expect("a template");
    let name = skill_set.name_any();
    match SkillResources::new(
        &name,
        spec,
        &outcome.status.skills,
        &placeholder,
        mode,
        &ctx.options,
    ) {
        Err(err) => {
            let why = match err {
                TranslateError::Unresolved { .. } => reason::RESOLVE_FAILED,
                _ => reason::TRANSLATE_FAILED,
            };
            outcome.not_ready(why, &err.to_string());
        }
        Ok(resources) => {
            sync_plan(ctx, tenant, skill_set, &resources, before, outcome).await?;
            outcome.set(
                condition::READY,
                true,
                reason::RESOLVED,
                "no workloadRef: Pods labelled skillport.dev/skillset get the skills at \
                 creation",
            );
        }
    }
    Ok(())
}

/// Translates against `workload` as its other managers wrote it and applies what differs.
/// `Some(retry)` when it could not be attached (the reason is in `outcome`).
async fn attach_workload(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
    workload: &WorkloadRef,
    mode: Mode,
    before: &SkillSetStatus,
    outcome: &mut Outcome,
) -> Result<Option<Duration>, Error> {
    let namespace = &tenant.namespace;
    let name = skill_set.name_any();
    let spec = &skill_set.spec;
    let api = workload_api(tenant, workload.kind);
    let Some(live) = api.get_opt(&workload.name).await? else {
        outcome.not_ready(
            reason::WORKLOAD_NOT_FOUND,
            &format!(
                "{} {:?} is not in namespace {namespace:?}; the skills are attached when it is created",
                workload.kind.as_str(),
                workload.name
            ),
        );
        return Ok(Some(RETRY_LATER));
    };

    // One SkillSet per workload: another's fields there are not ours to take, and applying
    // ours beside them would fight (the pod-level names are the same).
    // A SkillSet that is gone (deleted while it could not release) claims nothing: what its
    // manager left is taken over like the old shared manager's.
    let entries = live.metadata.managed_fields.as_deref().unwrap_or(&[]);
    let manager = attach::field_manager(&name);
    let (claiming, gone) = claimants(ctx, namespace, entries, &manager).await?;
    if !claiming.is_empty() {
        outcome.not_ready(reason::WORKLOAD_CLAIMED, &claimed(workload, &claiming));
        return Ok(Some(RETRY_LATER));
    }

    // 4. Translate against the template as its other managers wrote it (what an operator
    // before per-SkillSet managers applied as `skillport`, or a SkillSet now gone, is taken over).
    let owned = Owned::from_managed_fields(entries, &manager);
    let (leftovers, legacy) = leftovers(entries, &gone);
    let template: PodTemplateSpec = serde_json::from_value(
        live.data
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null),
    )
    .map_err(|err| Error::Workload(format!("its spec.template does not parse: {err}")))?;
    let base = owned.clone().union(legacy.clone()).strip(&template);
    let resources = match SkillResources::new(
        &name,
        spec,
        &outcome.status.skills,
        &base,
        mode,
        &ctx.options,
    ) {
        Ok(resources) => resources,
        Err(err) => {
            let why = match err {
                TranslateError::Unresolved { .. } => reason::RESOLVE_FAILED,
                _ => reason::TRANSLATE_FAILED,
            };
            outcome.not_ready(why, &err.to_string());
            return Ok(Some(RETRY_LATER));
        }
    };

    // 5. Apply: the plan ConfigMap first (pods must find it), then the workload.
    sync_plan(ctx, tenant, skill_set, &resources, before, outcome).await?;
    let body = attach::apply_body(workload.kind, namespace, &workload.name, &resources);
    let live_value = serde_json::to_value(&live).expect("objects serialise");
    if !attach::is_current(&live_value, &owned, &Owned::of(&resources), &body) {
        let stored = api
            .patch(
                &workload.name,
                &PatchParams::apply(&manager).force(),
                &Patch::Apply(&body),
            )
            .await?;
        ctx.metrics.wrote(workload.kind.as_str());
        for leftover in &leftovers {
            // Ours now under the SkillSet's manager; the old one lets go of what it alone held.
            apply_nothing(ctx, tenant, workload, leftover).await?;
        }
        if mode == Mode::ImageVolume && !kept_image_volumes(&stored, &resources) {
            // What the server stored is what counts: take the rest back off, remember it for
            // this SkillSet (Auto falls back to InitContainer; a forced ImageVolume stays
            // unattached instead of being applied again), and say so.
            release(ctx, tenant, workload, &name, true).await?;
            outcome.status.workload = None;
            let fallback = if spec.delivery == Delivery::Auto {
                "; falling back to InitContainer"
            } else {
                "; nothing is attached"
            };
            let why = format!(
                "the API server dropped the image volumes from {} {:?} (feature gate \
                 ImageVolume off?){fallback}",
                workload.kind.as_str(),
                workload.name
            );
            let failure = ImageVolumeFailure {
                reason: reason::IMAGE_VOLUMES_UNSUPPORTED.to_owned(),
                message: why.clone(),
                node: None,
            };
            ctx.record_image_volume_failure(ObjectRef::from_obj(skill_set), failure.clone());
            outcome.status.image_volume_failure = Some(failure);
            outcome.not_ready(reason::IMAGE_VOLUMES_UNSUPPORTED, &why);
            return Ok(Some(Duration::from_secs(1)));
        }
    }
    Ok(None)
}

/// The other SkillSets whose field managers hold fields of the object with `entries`: those
/// that exist (they claim it), and those that are gone. A manager cut for length
/// ([`attach::field_manager`]) cannot be looked up by name: it counts as existing.
async fn claimants(
    ctx: &Context,
    namespace: &str,
    entries: &[ManagedFieldsEntry],
    manager: &str,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let skill_sets: Api<SkillSet> = Api::namespaced(ctx.client.clone(), namespace);
    let (mut claiming, mut gone) = (Vec::new(), Vec::new());
    for other in attach::other_skill_sets(entries, manager) {
        let exact = attach::field_manager(&other).ends_with(&format!("/{other}"));
        if exact && skill_sets.get_opt(&other).await?.is_none() {
            gone.push(other);
        } else {
            claiming.push(other);
        }
    }
    Ok((claiming, gone))
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

/// Why `workload` is not for this SkillSet: the `others` hold it.
fn claimed(workload: &WorkloadRef, others: &[String]) -> String {
    format!(
        "{} {:?} already has the skills of SkillSet {}; one SkillSet per workload: put these \
         skills in that one, or attach them to another workload",
        workload.kind.as_str(),
        workload.name,
        others.join(", ")
    )
}

/// Resolves the skills (or takes this generation's cached answer) into `outcome`; returns the
/// failure, if any, and when to look again.
async fn resolve_step(
    skill_set: &SkillSet,
    ctx: &Context,
    tenant: &Tenant<'_>,
    before: &SkillSetStatus,
    outcome: &mut Outcome,
) -> (Option<ResolveFailure>, Duration) {
    let interval = super::resolution_lifetime(
        skill_set.metadata.uid.as_deref().unwrap_or_default(),
        super::update_interval(&skill_set.spec),
    );
    let key = ObjectRef::from_obj(skill_set);
    let cached = ctx.resolutions.lock().await.get(&key).cloned();
    let fresh = cached
        .filter(|r| r.generation == skill_set.metadata.generation && r.at.elapsed() < interval);
    let mut next_resolve = interval;
    let resolved_failure = match fresh {
        Some(resolution) => {
            // Status is written whole: say Resolved again (the cached SkillSet this reconcile
            // started from may predate the write that said it first).
            next_resolve = interval.saturating_sub(resolution.at.elapsed());
            outcome.pinned(resolution.skills);
            None
        }
        None => match resolve(skill_set, ctx, tenant).await {
            Ok(skills) => {
                ctx.resolutions.lock().await.insert(
                    key.clone(),
                    Resolution {
                        generation: skill_set.metadata.generation,
                        at: Instant::now(),
                        skills: skills.clone(),
                    },
                );
                ctx.failures.lock().await.remove(&key);
                outcome.pinned(skills);
                None
            }
            Err(failure) => {
                // Keep what this generation resolved to before (a registry that is down must
                // not take skills away); a new generation starts from nothing.
                let same_spec =
                    status::get(&before.conditions, condition::RESOLVED).is_some_and(|c| {
                        c.status == "True" && c.observed_generation == skill_set.metadata.generation
                    });
                if !same_spec {
                    outcome.status.skills.clear();
                }
                outcome.set(
                    condition::RESOLVED,
                    false,
                    reason::RESOLVE_FAILED,
                    &failure.to_string(),
                );
                Some(failure)
            }
        },
    };
    let retry = match &resolved_failure {
        Some(failure) => Some(ctx.backoff(&key, failure.transient).await),
        None => None,
    };
    let requeue = retry.unwrap_or(next_resolve).max(Duration::from_secs(1));

    (resolved_failure, requeue)
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
    for change in &outcome.transitions {
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
    if outcome.status.image_volume_failure.is_some() {
        ctx.image_volume_failure_written(&ObjectRef::from_obj(skill_set));
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
    let result = ctx
        .resolver
        .resolve(spec, &pull_secrets, git_credentials)
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

/// The plan ConfigMap as the delivery needs it ([`plans`]), recorded in status.
async fn sync_plan(
    ctx: &Context,
    tenant: &Tenant<'_>,
    skill_set: &SkillSet,
    resources: &SkillResources,
    before: &SkillSetStatus,
    outcome: &mut Outcome,
) -> Result<(), Error> {
    let plan = resources.plan.as_ref();
    let previous = before.plan_config_map.as_deref();
    plans::sync(ctx, tenant, skill_set, plan, previous).await?;
    outcome.status.plan_config_map = plan.map(|plan| plan.name.clone());
    Ok(())
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
