//! A reconcile's decisions, pure: from what was read (the SkillSet, its status as last written,
//! how its skills resolved, whether the cluster serves image volumes, the workload as it stands)
//! to what to do (the status and its Events, the workload to release, the plan ConfigMap, the
//! apply) and when to look again. No I/O, no clock (but the conditions' transition times):
//! [`super::reconcile`] gathers the facts and carries the decision out.

use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use serde_json::{Value, json};

use super::contention::{self, Holds, Ours, Seen};
use super::resolve::ResolveFailure;
use super::status::{self, Transition};
use crate::api::{
    Delivery, ImageVolumeFailure, ResolvedSkill, SkillSet, SkillSetStatus, WorkloadRef, condition,
    reason,
};
use crate::attach::{self, Item, Owned};
use crate::translate::{Mode, Options, PlanConfigMap, SkillResources, TranslateError};

/// When to look again at a SkillSet that cannot be attached for a reason a watch event will
/// not end (a workload that is not there is also watched).
pub const RETRY_LATER: Duration = Duration::from_secs(60);

/// The wait before the next attempt after `failures` failures in a row: 5 s doubling to 5 min
/// for a failure that may pass (network, server errors, a failed API call), 1 min doubling to
/// 10 min for one that needs a change. The one backoff schedule of the controller.
pub fn backoff(failures: u32, transient: bool) -> Duration {
    let (first, max) = if transient {
        (Duration::from_secs(5), Duration::from_secs(300))
    } else {
        (Duration::from_secs(60), Duration::from_secs(600))
    };
    first
        .saturating_mul(1 << failures.max(1).saturating_sub(1).min(10))
        .min(max)
}

/// How the SkillSet's skills stand.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// Resolved (now, or earlier for this generation and still fresh); resolve again after
    /// `refresh`.
    Pinned {
        skills: Vec<ResolvedSkill>,
        refresh: Duration,
    },
    /// Resolving failed now, the `failures`-th time in a row.
    Failed {
        failure: ResolveFailure,
        failures: u32,
    },
}

/// The workload `workloadRef` names, as read as the SkillSet's account.
#[derive(Debug, Clone)]
pub enum Workload {
    Missing,
    /// Reading it was refused (the API server's message, with what to grant).
    Forbidden(String),
    /// Older SkillSets that exist hold fields of the same container there; `holding`: this one
    /// holds fields there too (both applied at once), which come off.
    Claimed {
        others: Vec<String>,
        holding: bool,
    },
    Live(LiveWorkload),
}

/// A workload that is there, and who holds what of it.
#[derive(Debug, Clone)]
pub struct LiveWorkload {
    /// The object as the API server returned it.
    pub object: Value,
    /// What this SkillSet's field manager holds.
    pub owned: Owned,
    /// What the managers it takes over hold together (the old shared `skillport`, those of
    /// SkillSets now gone), and those managers.
    pub taken_over: Owned,
    pub leftovers: Vec<String>,
}

/// Everything a decision is made from.
pub struct Facts<'a> {
    pub skill_set: &'a SkillSet,
    /// The status as last written (the watch cache may not show it yet).
    pub before: &'a SkillSetStatus,
    pub resolution: Resolution,
    /// Whether the API server keeps image volumes (only asked when `Auto` or `ImageVolume`
    /// could take them; `false` otherwise).
    pub image_volumes_served: bool,
    /// Image volumes failed for this SkillSet (just now, or as status recorded).
    pub image_volume_failure: Option<ImageVolumeFailure>,
    /// The workload named, when `workloadRef` names one.
    pub workload: Option<Workload>,
    pub options: &'a Options,
    /// For the contention's times.
    pub now: Timestamp,
}

/// A status being made: conditions set on it say which changed (each change is an Event).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: SkillSetStatus,
    pub transitions: Vec<Transition>,
    generation: Option<i64>,
}

impl Outcome {
    fn new(before: &SkillSetStatus, generation: Option<i64>) -> Outcome {
        let mut status = before.clone();
        status.observed_generation = generation;
        Outcome {
            status,
            transitions: Vec::new(),
            generation,
        }
    }

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

    /// `Ready=False` for `why`.
    pub fn not_ready(&mut self, why: &str, message: &str) {
        self.set(condition::READY, false, why, message);
    }
}

/// The plan ConfigMap step.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanStep {
    /// Plans are left as they are (nothing was translated).
    Keep,
    /// Make this plan (or, with none, no plan is in use) and collect the old ones.
    Sync(Option<PlanConfigMap>),
}

/// A server-side apply of the SkillSet's fields to its workload.
#[derive(Debug, Clone)]
pub struct Apply {
    pub workload: WorkloadRef,
    pub manager: String,
    pub body: Value,
    /// Managers taken over, to apply nothing as once this one holds their fields.
    pub leftovers: Vec<String>,
    /// What was applied (to check that image volumes came back).
    pub resources: SkillResources,
}

/// What to do, in order: release, plan, apply; then write `placed` (or, should one of those
/// fail, `unplaced` with the failure said on it).
#[derive(Debug, Clone)]
pub struct Decision {
    /// The status once every step below succeeded.
    pub placed: Outcome,
    /// The status as it stood before the workload steps (resolution and delivery decided).
    pub unplaced: Outcome,
    pub mode: Mode,
    /// The workload the SkillSet left (or lost to an older SkillSet): its fields come off
    /// first.
    pub release: Option<WorkloadRef>,
    /// Also what the old shared `skillport` manager holds there (a workload left; not one lost,
    /// whose owner takes those over).
    pub release_legacy: bool,
    pub plan: PlanStep,
    pub apply: Option<Apply>,
    pub requeue: Duration,
    /// Why resolving failed (the skills resolved before were kept, when they were).
    pub resolve_failure: Option<ResolveFailure>,
}

/// Decides a reconcile of a SkillSet that is not being deleted.
pub fn decide(facts: Facts<'_>) -> Decision {
    let skill_set = facts.skill_set;
    let spec = &skill_set.spec;
    let mut outcome = Outcome::new(facts.before, skill_set.metadata.generation);
    // Kept while the SkillSet names the workload it concerns (a failed step does not wipe it);
    // the attach judges it again.
    if spec.workload_ref.is_none() || spec.workload_ref != facts.before.workload {
        outcome.status.contention = None;
    }

    // 1. The skills.
    let (requeue, resolve_failure) = pin(&mut outcome, facts.before, facts.resolution);
    let requeue = requeue.max(Duration::from_secs(1));

    // 2. The delivery: image volumes where served and not failed before.
    let failure = facts.image_volume_failure.map(|mut failure| {
        failure.message = status::truncate(&failure.message, 1024);
        failure
    });
    outcome.status.image_volume_failure.clone_from(&failure);
    let served = facts.image_volumes_served;
    let mode = Mode::choose(spec, served && failure.is_none());
    let stop = |mut outcome: Outcome, why: &str, message: &str| {
        outcome.not_ready(why, message);
        Decision {
            placed: outcome.clone(),
            unplaced: outcome,
            mode,
            release: None,
            release_legacy: true,
            plan: PlanStep::Keep,
            apply: None,
            requeue: RETRY_LATER,
            resolve_failure: resolve_failure.clone(),
        }
    };
    if mode == Mode::ImageVolume && !served {
        return stop(
            outcome,
            reason::IMAGE_VOLUMES_UNSUPPORTED,
            "delivery is ImageVolume, but the API server drops image volumes (feature gate \
             ImageVolume off, or Kubernetes older than 1.31); use delivery Auto or InitContainer",
        );
    }
    if let Some(failure) = &failure {
        if mode == Mode::ImageVolume {
            return stop(outcome, &failure.reason, &failure.message);
        }
        if facts.before.delivery == Some(Delivery::ImageVolume) {
            // Auto moves this SkillSet to the init container: say why, once.
            outcome.transitions.push(Transition {
                type_: condition::READY.to_owned(),
                status: false,
                reason: failure.reason.clone(),
                message: format!("{}; falling back to InitContainer", failure.message),
            });
        }
    }
    let unplaced = outcome.clone();

    // 3. The workload: release the one left, attach to the one named.
    let mut decision = Decision {
        placed: outcome,
        unplaced,
        mode,
        release: None,
        release_legacy: true,
        plan: PlanStep::Keep,
        apply: None,
        requeue,
        resolve_failure,
    };
    if let Some(previous) = &facts.before.workload
        && spec.workload_ref.as_ref() != Some(previous)
    {
        decision.release = Some(previous.clone());
        decision.placed.status.workload = None;
    }
    let retry = if let (Some(named), Some(workload)) = (&spec.workload_ref, facts.workload) {
        attach(
            &mut decision,
            skill_set,
            facts.before,
            named,
            workload,
            facts.options,
            facts.now,
        )
    } else {
        inject(&mut decision, skill_set, facts.before, facts.options);
        None
    };
    if let Some(retry) = retry {
        decision.requeue = decision.requeue.min(retry);
    }
    decision
}

/// Puts the resolution on `outcome`: the skills pinned, or what this generation pinned before
/// (a registry that is down must not take skills away; a new generation starts from nothing).
/// Returns when to resolve again, and the failure.
fn pin(
    outcome: &mut Outcome,
    before: &SkillSetStatus,
    resolution: Resolution,
) -> (Duration, Option<ResolveFailure>) {
    match resolution {
        Resolution::Pinned { skills, refresh } => {
            let message = format!("{} skills pinned", skills.len());
            outcome.status.skills = skills;
            outcome.set(condition::RESOLVED, true, reason::RESOLVED, &message);
            verified(outcome);
            (refresh, None)
        }
        Resolution::Failed { failure, failures } => {
            let same_spec = status::get(&before.conditions, condition::RESOLVED)
                .is_some_and(|c| c.status == "True" && c.observed_generation == outcome.generation);
            // A policy refusal with nothing verified to stand in: fail closed, whatever this
            // generation delivered before (it was not verified by the policies now in force).
            if !same_spec || failure.refused_by_policy {
                outcome.status.skills.clear();
            }
            let why = if failure.refused_by_policy {
                outcome.set(
                    condition::VERIFIED,
                    false,
                    reason::NOT_VERIFIED,
                    &failure.to_string(),
                );
                reason::NOT_VERIFIED
            } else {
                reason::RESOLVE_FAILED
            };
            outcome.set(condition::RESOLVED, false, why, &failure.to_string());
            (backoff(failures, failure.transient), Some(failure))
        }
    }
}

/// The `Verified` condition from what the policies said of each skill: held back, audited,
/// or signed; no condition when no policy covers any skill.
fn verified(outcome: &mut Outcome) {
    let skills = &outcome.status.skills;
    let said = |field: fn(&ResolvedSkill) -> Option<&String>| {
        skills
            .iter()
            .filter_map(|skill| field(skill).map(|text| format!("skill {:?}: {text}", skill.name)))
            .collect::<Vec<_>>()
    };
    let held = said(|skill| skill.held.as_ref());
    let audited = said(|skill| skill.audit.as_ref());
    let signed = skills
        .iter()
        .filter(|skill| !skill.signers.is_empty())
        .count();
    if !held.is_empty() {
        outcome.set(
            condition::VERIFIED,
            false,
            reason::HELD_BACK,
            &held.join("; "),
        );
    } else if !audited.is_empty() {
        outcome.set(
            condition::VERIFIED,
            false,
            reason::POLICY_AUDIT,
            &audited.join("; "),
        );
    } else if signed > 0 {
        let message = format!(
            "{signed} of {} skills signed as the skill policies require",
            skills.len()
        );
        outcome.set(condition::VERIFIED, true, reason::VERIFIED, &message);
    } else {
        outcome
            .status
            .conditions
            .retain(|c| c.type_ != condition::VERIFIED);
    }
}

/// No `workloadRef`: Pods labelled `skillport.dev/skillset` get the skills at admission. Those
/// of InitContainer mode mount the plan ConfigMap, which admission cannot make: it is made
/// here, from any pod template that has the container named (the plan does not depend on it).
fn inject(
    decision: &mut Decision,
    skill_set: &SkillSet,
    facts_before: &SkillSetStatus,
    options: &Options,
) {
    let spec = &skill_set.spec;
    let outcome = &mut decision.placed;
    outcome.status.delivery = Some(decision.mode.delivery());
    let container = spec.container.as_deref().unwrap_or("agent");
    let placeholder: PodTemplateSpec =
        serde_json::from_value(json!({"spec": {"containers": [{"name": container}]}}))
            .expect("a template");
    match SkillResources::new(
        &skill_set.name_any(),
        spec,
        &outcome.status.skills,
        &placeholder,
        decision.mode,
        options,
    ) {
        Err(err) => outcome.not_ready(translate_reason(&err), &err.to_string()),
        Ok(resources) => {
            outcome.status.plan_config_map = resources.plan.as_ref().map(|p| p.name.clone());
            decision.plan = plan_step(facts_before, resources.plan);
            outcome.set(
                condition::READY,
                true,
                reason::RESOLVED,
                "no workloadRef: Pods labelled skillport.dev/skillset get the skills at \
                 creation",
            );
        }
    }
}

/// `workloadRef` names `named`, read as `workload`: translated against its template as its
/// other managers wrote it, applied when it differs. `Some(retry)` when it cannot be attached
/// (the reason is on the status).
fn attach(
    decision: &mut Decision,
    skill_set: &SkillSet,
    before: &SkillSetStatus,
    named: &WorkloadRef,
    workload: Workload,
    options: &Options,
    now: Timestamp,
) -> Option<Duration> {
    if let Workload::Claimed { holding: true, .. } = &workload {
        // Applied at the same time as an older SkillSet on the same container: it keeps the
        // container, this one's own fields come off.
        decision.release = Some(named.clone());
        decision.release_legacy = false;
        decision.placed.status.workload = None;
    }
    let outcome = &mut decision.placed;
    let spec = &skill_set.spec;
    let namespace = skill_set.namespace().unwrap_or_default();
    let live = match live_or_why(outcome, named, workload, &namespace) {
        Ok(live) => live,
        Err(retry) => return Some(retry),
    };
    let template = match serde_json::from_value::<PodTemplateSpec>(
        live.object
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null),
    ) {
        Ok(template) => template,
        Err(err) => {
            outcome.not_ready(
                reason::TRANSLATE_FAILED,
                &format!("the workload: its spec.template does not parse: {err}"),
            );
            return Some(RETRY_LATER);
        }
    };
    let base = live
        .owned
        .clone()
        .union(live.taken_over.clone())
        .strip(&template);
    let name = skill_set.name_any();
    let resources = match SkillResources::new(
        &name,
        spec,
        &outcome.status.skills,
        &base,
        decision.mode,
        options,
    ) {
        Ok(resources) => resources,
        Err(err) => {
            outcome.not_ready(translate_reason(&err), &err.to_string());
            return Some(RETRY_LATER);
        }
    };
    outcome.status.plan_config_map = resources.plan.as_ref().map(|p| p.name.clone());
    outcome.status.workload = Some(named.clone());
    outcome.status.delivery = Some(decision.mode.delivery());
    let body = attach::apply_body(named.kind, &namespace, &named.name, &resources);
    let desired = Owned::of(&resources);
    let current = attach::is_current(&live.object, &live.owned, &desired, &body);
    let judged = contention::judge(&Seen {
        before,
        named,
        ours: ours_since(before, &outcome.status, outcome.generation),
        holds: holds(current, &desired, &live),
        live: &live.object,
        now,
    });
    outcome.status.contention.clone_from(&judged.contention);
    if let (Some(wait), Some(contention)) = (judged.hold, &judged.contention) {
        // Nothing is written to the workload (what of ours is left there stays until release).
        let message = contention::held_message(named, &name, contention, &live.object);
        outcome.not_ready(reason::WORKLOAD_CONTESTED, &message);
        return Some(wait);
    }
    decision.plan = plan_step(before, resources.plan.clone());
    if !current {
        decision.apply = Some(Apply {
            workload: named.clone(),
            manager: attach::field_manager(&name),
            body,
            leftovers: live.leftovers,
            resources,
        });
    }
    // A controlled workload is attached all the same; its controller may take the skills off.
    let watched = contention::controller(&live.object).map_or_else(String::new, |owner| {
        format!(
            "; its controller is {owner}: should it remove the skills, this SkillSet stops and \
             says so"
        )
    });
    outcome.set(
        condition::READY,
        true,
        reason::APPLIED,
        &format!(
            "{} skills attached to {} {:?} ({}){watched}",
            spec.skills.len(),
            named.kind.as_str(),
            named.name,
            decision.mode.as_str()
        ),
    );
    None
}

/// The workload when it is there to attach to; else the reason is said on `outcome`, and when
/// to look again.
fn live_or_why(
    outcome: &mut Outcome,
    named: &WorkloadRef,
    workload: Workload,
    namespace: &str,
) -> Result<LiveWorkload, Duration> {
    match workload {
        Workload::Missing => {
            outcome.not_ready(
                reason::WORKLOAD_NOT_FOUND,
                &format!(
                    "{} {:?} is not in namespace {namespace:?}; the skills are attached when it \
                     is created",
                    named.kind.as_str(),
                    named.name
                ),
            );
            Err(RETRY_LATER)
        }
        Workload::Forbidden(message) => {
            outcome.not_ready(reason::FORBIDDEN, &message);
            Err(RETRY_LATER)
        }
        Workload::Claimed { others, .. } => {
            outcome.not_ready(reason::WORKLOAD_CLAIMED, &claimed(named, &others));
            Err(RETRY_LATER)
        }
        Workload::Live(live) => Ok(live),
    }
}

/// What changed of the SkillSet since `before` was written, now that it is `now`.
fn ours_since(before: &SkillSetStatus, now: &SkillSetStatus, generation: Option<i64>) -> Ours {
    if before.observed_generation != generation {
        Ours::Spec
    } else if before.skills == now.skills
        && before.delivery == now.delivery
        && before.plan_config_map == now.plan_config_map
    {
        Ours::Same
    } else {
        Ours::Resolved
    }
}

/// What the workload holds of `desired`. Taken: pod-level items this SkillSet applies
/// (volumes, init containers) are no longer its own (nor taken over from a manager it
/// succeeds). Container items are left out: with no `spec.container`, a container the owner
/// puts first makes new ones that no removal took.
fn holds(current: bool, desired: &Owned, live: &LiveWorkload) -> Holds {
    let taken = desired
        .items
        .iter()
        .filter(|item| matches!(item, Item::Volume(_) | Item::InitContainer(_)))
        .any(|item| !live.owned.items.contains(item) && !live.taken_over.items.contains(item));
    if current {
        Holds::All
    } else if taken {
        Holds::Taken
    } else {
        Holds::Differs
    }
}

/// The API server dropped the image volumes just applied to `workload` (its feature gate is
/// off): they come off again (the caller releases), the failure is kept in status — `Auto`
/// falls back to the init container, a forced `ImageVolume` stays unattached rather than be
/// applied again — and the SkillSet is looked at again at once.
pub fn image_volumes_dropped(
    decision: &mut Decision,
    skill_set: &SkillSet,
    workload: &WorkloadRef,
) -> ImageVolumeFailure {
    let fallback = if skill_set.spec.delivery == Delivery::Auto {
        "; falling back to InitContainer"
    } else {
        "; nothing is attached"
    };
    let why = format!(
        "the API server dropped the image volumes from {} {:?} (feature gate ImageVolume \
         off?){fallback}",
        workload.kind.as_str(),
        workload.name
    );
    let failure = ImageVolumeFailure {
        reason: reason::IMAGE_VOLUMES_UNSUPPORTED.to_owned(),
        message: why.clone(),
        node: None,
    };
    let outcome = &mut decision.placed;
    outcome.status.workload = None;
    outcome.status.image_volume_failure = Some(failure.clone());
    outcome.not_ready(reason::IMAGE_VOLUMES_UNSUPPORTED, &why);
    decision.requeue = Duration::from_secs(1);
    failure
}

/// A workload step failed for a reason said on the SkillSet (`why`, `message`): the status is
/// the one before the workload steps, with what was done of them (`released`).
pub fn not_placed(decision: &mut Decision, released: bool, why: &str, message: &str) {
    let mut outcome = decision.unplaced.clone();
    if released {
        outcome.status.workload = None;
    }
    outcome.not_ready(why, message);
    decision.placed = outcome;
    decision.requeue = decision.requeue.min(RETRY_LATER);
}

/// Sync the plan ConfigMaps when there is a plan, or there may be old ones to collect (the
/// SkillSet had one, or delivered with the init container); else nothing to do, not even a
/// list (most SkillSets with image volumes never had a plan).
fn plan_step(before: &SkillSetStatus, plan: Option<PlanConfigMap>) -> PlanStep {
    let had_plans =
        before.plan_config_map.is_some() || before.delivery == Some(Delivery::InitContainer);
    if plan.is_some() || had_plans {
        PlanStep::Sync(plan)
    } else {
        PlanStep::Keep
    }
}

fn translate_reason(err: &TranslateError) -> &'static str {
    match err {
        TranslateError::Unresolved { .. } => reason::RESOLVE_FAILED,
        _ => reason::TRANSLATE_FAILED,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WorkloadKind;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn skill_set(extra: &Value, generation: i64) -> SkillSet {
        let mut value = json!({
            "apiVersion": "skillport.dev/v1alpha1",
            "kind": "SkillSet",
            "metadata": {"name": "tools", "namespace": "team", "uid": "u1", "generation": generation},
            "spec": {"skills": [{"name": "pdf", "image": "r.example/skills/pdf:1"}]},
        });
        for (key, field) in extra.as_object().unwrap() {
            value["spec"][key] = field.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    fn pinned() -> Resolution {
        Resolution::Pinned {
            skills: vec![ResolvedSkill {
                name: "pdf".into(),
                digest: Some(DIGEST.into()),
                ..ResolvedSkill::default()
            }],
            refresh: Duration::from_secs(600),
        }
    }

    fn deployment(name: &str) -> LiveWorkload {
        LiveWorkload {
            object: json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "team"},
                "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "a"}]}}},
            }),
            owned: Owned::default(),
            taken_over: Owned::default(),
            leftovers: Vec::new(),
        }
    }

    fn named(name: &str) -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: name.into(),
        }
    }

    fn facts<'a>(
        skill_set: &'a SkillSet,
        before: &'a SkillSetStatus,
        options: &'a Options,
    ) -> Facts<'a> {
        Facts {
            skill_set,
            before,
            resolution: pinned(),
            image_volumes_served: true,
            image_volume_failure: None,
            workload: None,
            options,
            now: "2026-12-06T10:00:00Z".parse().unwrap(),
        }
    }

    fn ready(outcome: &Outcome) -> (String, String) {
        let ready = status::get(&outcome.status.conditions, condition::READY).unwrap();
        (ready.status.clone(), ready.reason.clone())
    }

    #[test]
    fn one_backoff_schedule_doubles_to_its_cap() {
        let secs = |n, transient| backoff(n, transient).as_secs();
        assert_eq!([secs(1, true), secs(2, true), secs(3, true)], [5, 10, 20]);
        assert_eq!(secs(7, true), 300);
        assert_eq!(secs(0, true), 5, "a first failure however counted");
        assert_eq!(
            [secs(1, false), secs(2, false), secs(9, false)],
            [60, 120, 600]
        );
        assert_eq!(secs(u32::MAX, false), 600);
    }

    #[test]
    fn a_failed_resolve_keeps_what_this_generation_pinned_and_a_new_generation_starts_empty() {
        let options = Options::new("init");
        let first = skill_set(&json!({}), 1);
        let pinned_once = decide(facts(&first, &SkillSetStatus::default(), &options));
        let before = pinned_once.placed.status;
        assert_eq!(before.skills.len(), 1);
        let failed = || Resolution::Failed {
            failure: ResolveFailure {
                skill: "pdf".into(),
                message: "registry down".into(),
                transient: true,
                refused_by_policy: false,
            },
            failures: 2,
        };

        let mut same = facts(&first, &before, &options);
        same.resolution = failed();
        let same = decide(same);
        assert_eq!(same.placed.status.skills, before.skills, "skills kept");
        assert_eq!(ready(&same.placed).0, "True", "still delivered");
        assert_eq!(
            same.requeue,
            Duration::from_secs(10),
            "the second transient failure"
        );
        assert!(same.resolve_failure.is_some());

        let edited = skill_set(&json!({}), 2);
        let mut next = facts(&edited, &before, &options);
        next.resolution = failed();
        let next = decide(next);
        assert!(
            next.placed.status.skills.is_empty(),
            "a new spec starts from nothing"
        );
        assert_eq!(
            ready(&next.placed),
            ("False".into(), reason::RESOLVE_FAILED.into())
        );
    }

    #[test]
    fn a_policy_refusal_delivers_nothing_and_says_which_skill_digest_and_rule() {
        let options = Options::new("init");
        let first = skill_set(&json!({}), 1);
        let before = decide(facts(&first, &SkillSetStatus::default(), &options))
            .placed
            .status;
        assert_eq!(before.skills.len(), 1);
        let mut refused = facts(&first, &before, &options);
        refused.resolution = Resolution::Failed {
            failure: ResolveFailure {
                skill: "pdf".into(),
                message: "sha256:ab is not signed as ClusterSkillPolicy \"corp\" requires".into(),
                transient: false,
                refused_by_policy: true,
            },
            failures: 1,
        };
        let refused = decide(refused);
        assert!(
            refused.placed.status.skills.is_empty(),
            "nothing unverified stays, even for the same spec"
        );
        let verified = status::get(&refused.placed.status.conditions, condition::VERIFIED).unwrap();
        assert_eq!(
            (verified.status.as_str(), verified.reason.as_str()),
            ("False", reason::NOT_VERIFIED)
        );
        assert!(
            verified
                .message
                .contains("skill \"pdf\": sha256:ab is not signed as ClusterSkillPolicy"),
            "{}",
            verified.message
        );

        let mut held = facts(&first, &before, &options);
        let mut kept = before.skills.clone();
        kept[0].signers = vec!["release: key release".into()];
        kept[0].held = Some("moved to sha256:cd, which is not signed; sha256:ab stays".into());
        held.resolution = Resolution::Pinned {
            skills: kept,
            refresh: Duration::from_secs(60),
        };
        let held = decide(held);
        let verified = status::get(&held.placed.status.conditions, condition::VERIFIED).unwrap();
        assert_eq!(
            (verified.status.as_str(), verified.reason.as_str()),
            ("False", reason::HELD_BACK)
        );
        assert_eq!(
            ready(&held.placed).0,
            "True",
            "the verified digest is still delivered"
        );
    }

    #[test]
    fn a_known_image_volume_failure_moves_auto_to_the_init_container_and_keeps_forced_off() {
        let options = Options::new("init");
        let failure = ImageVolumeFailure {
            reason: reason::IMAGE_VOLUME_MOUNT_FAILED.into(),
            message: "node n1 cannot mount".into(),
            node: Some("n1".into()),
        };
        let before = SkillSetStatus {
            delivery: Some(Delivery::ImageVolume),
            ..SkillSetStatus::default()
        };
        let auto = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            1,
        );
        let mut auto_facts = facts(&auto, &before, &options);
        auto_facts.image_volume_failure = Some(failure.clone());
        auto_facts.workload = Some(Workload::Live(deployment("agent")));
        let decision = decide(auto_facts);
        assert_eq!(decision.mode, Mode::InitContainer);
        assert_eq!(
            decision.placed.status.image_volume_failure,
            Some(failure.clone()),
            "kept"
        );
        assert!(
            decision
                .placed
                .transitions
                .iter()
                .any(|t| t.reason == reason::IMAGE_VOLUME_MOUNT_FAILED
                    && t.message.ends_with("falling back to InitContainer"))
        );
        assert!(matches!(decision.plan, PlanStep::Sync(Some(_))));
        assert!(decision.apply.is_some());

        let forced = skill_set(
            &json!({"delivery": "ImageVolume",
            "workloadRef": {"kind": "Deployment", "name": "agent"}}),
            1,
        );
        let mut forced_facts = facts(&forced, &before, &options);
        forced_facts.image_volume_failure = Some(failure);
        forced_facts.workload = Some(Workload::Live(deployment("agent")));
        let decision = decide(forced_facts);
        assert_eq!(
            ready(&decision.placed),
            ("False".into(), reason::IMAGE_VOLUME_MOUNT_FAILED.into())
        );
        assert!(decision.apply.is_none() && decision.release.is_none());
        assert_eq!(decision.plan, PlanStep::Keep);
        assert_eq!(decision.requeue, RETRY_LATER);
    }

    #[test]
    fn a_moved_workload_ref_releases_the_old_one_and_attaches_the_new() {
        let options = Options::new("init");
        let before = SkillSetStatus {
            workload: Some(named("old")),
            ..SkillSetStatus::default()
        };
        let moved = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "new"}}),
            2,
        );
        let mut moved_facts = facts(&moved, &before, &options);
        moved_facts.workload = Some(Workload::Live(deployment("new")));
        let decision = decide(moved_facts);
        assert_eq!(decision.release, Some(named("old")));
        let apply = decision.apply.clone().expect("applied to the new one");
        assert_eq!(apply.workload, named("new"));
        assert_eq!(apply.manager, "skillport/tools");
        assert_eq!(decision.placed.status.workload, Some(named("new")));
        assert_eq!(
            ready(&decision.placed),
            ("True".into(), reason::APPLIED.into())
        );

        // Should the new one's steps fail, the status says so, without the old workload.
        let mut failed = decision.clone();
        failed.apply = None;
        not_placed(&mut failed, true, reason::FORBIDDEN, "no patch");
        assert_eq!(failed.placed.status.workload, None);
        assert_eq!(
            ready(&failed.placed),
            ("False".into(), reason::FORBIDDEN.into())
        );
    }

    #[test]
    fn a_workload_missing_claimed_or_refused_gets_no_write_and_is_looked_at_later() {
        let options = Options::new("init");
        let before = SkillSetStatus::default();
        let spec = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            1,
        );
        for (workload, why) in [
            (Workload::Missing, reason::WORKLOAD_NOT_FOUND),
            (
                Workload::Claimed {
                    others: vec!["other".into()],
                    holding: false,
                },
                reason::WORKLOAD_CLAIMED,
            ),
            (Workload::Forbidden("forbidden".into()), reason::FORBIDDEN),
        ] {
            let mut these = facts(&spec, &before, &options);
            these.workload = Some(workload);
            let decision = decide(these);
            assert_eq!(ready(&decision.placed), ("False".into(), why.into()));
            assert!(decision.apply.is_none(), "{why}");
            assert_eq!(decision.plan, PlanStep::Keep, "{why}");
            assert_eq!(decision.requeue, RETRY_LATER, "{why}");
        }
    }

    /// A controller that writes the whole spec (kagent's) takes the skills off after each apply.
    #[test]
    fn skills_removed_twice_by_another_client_stop_the_applies() {
        let options = Options::new("init");
        let spec = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            1,
        );
        let mut taken_off = deployment("agent");
        taken_off.object["metadata"]["managedFields"] = json!([{"manager": "kagent-controller", "operation": "Update", "time": "2026-12-06T09:59:59Z"}]);
        let mut status = SkillSetStatus::default();
        let mut applies = 0;
        for round in 0..4 {
            let mut these = facts(&spec, &status, &options);
            these.workload = Some(Workload::Live(taken_off.clone()));
            let decision = decide(these);
            applies += usize::from(decision.apply.is_some());
            status = decision.placed.status.clone();
            if round < 2 {
                assert_eq!(ready(&decision.placed).1, reason::APPLIED, "round {round}");
            } else {
                assert_eq!(ready(&decision.placed).1, reason::WORKLOAD_CONTESTED);
                assert_eq!(decision.requeue, Duration::from_secs(600));
                assert_eq!(decision.plan, PlanStep::Keep);
            }
        }
        assert_eq!(
            applies, 2,
            "the first apply, and one to put a removal right"
        );
        let contention = status.contention.expect("recorded");
        assert_eq!(
            (contention.manager.as_str(), contention.removals),
            ("kagent-controller", 2)
        );
        assert_eq!(
            status.workload,
            Some(named("agent")),
            "released only when left"
        );
    }

    /// Fields an older operator applied as `skillport` are taken over, not taken from us; a
    /// step that fails keeps the count.
    #[test]
    fn leftovers_are_no_removal_and_a_failed_step_keeps_the_count() {
        let options = Options::new("init");
        let spec = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            1,
        );
        let empty = SkillSetStatus::default();
        let first = {
            let mut these = facts(&spec, &empty, &options);
            these.workload = Some(Workload::Live(deployment("agent")));
            decide(these)
        };
        let applied = first.apply.expect("a first apply");
        let before = first.placed.status;
        let mut upgraded = deployment("agent");
        upgraded.taken_over = Owned::of(&applied.resources);
        upgraded.leftovers = vec!["skillport".into()];
        let mut these = facts(&spec, &before, &options);
        these.workload = Some(Workload::Live(upgraded));
        let decision = decide(these);
        assert_eq!(decision.placed.status.contention, None);
        assert_eq!(ready(&decision.placed).1, reason::APPLIED);

        let mut counted = before.clone();
        counted.contention = Some(crate::api::Contention {
            manager: "kagent-controller".into(),
            removals: 1,
            last_removal: "2026-12-06T09:59:00Z".into(),
        });
        let mut these = facts(&spec, &counted, &options);
        these.workload = Some(Workload::Forbidden("forbidden".into()));
        let decision = decide(these);
        assert_eq!(decision.placed.status.contention, counted.contention);
    }

    /// Two SkillSets on one container applied at once: the younger's fields come off.
    #[test]
    fn a_skill_set_that_lost_its_container_to_an_older_one_takes_its_fields_off() {
        let options = Options::new("init");
        let spec = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            1,
        );
        let before = SkillSetStatus {
            workload: Some(named("agent")),
            ..SkillSetStatus::default()
        };
        let mut these = facts(&spec, &before, &options);
        these.workload = Some(Workload::Claimed {
            others: vec!["older".into()],
            holding: true,
        });
        let decision = decide(these);
        assert_eq!(decision.release, Some(named("agent")));
        assert!(!decision.release_legacy, "the older one takes those over");
        assert!(decision.apply.is_none());
        assert_eq!(decision.placed.status.workload, None);
        assert_eq!(ready(&decision.placed).1, reason::WORKLOAD_CLAIMED);
    }

    #[test]
    fn a_workload_that_holds_our_fields_already_is_not_applied_again() {
        let options = Options::new("init");
        let before = SkillSetStatus::default();
        let spec = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "agent"},
            "delivery": "InitContainer"}),
            1,
        );
        let mut first = facts(&spec, &before, &options);
        first.workload = Some(Workload::Live(deployment("agent")));
        let apply = decide(first).apply.expect("a first apply");
        // The live object now holds exactly what was applied, under our manager.
        let mut live = deployment("agent");
        live.owned = Owned::of(&apply.resources);
        live.object = apply.body.clone();
        let mut again = facts(&spec, &before, &options);
        again.workload = Some(Workload::Live(live));
        let decision = decide(again);
        assert!(decision.apply.is_none(), "a no-op resync writes nothing");
        assert_eq!(
            ready(&decision.placed),
            ("True".into(), reason::APPLIED.into())
        );
    }

    #[test]
    fn dropped_image_volumes_are_kept_in_status_and_looked_at_again_at_once() {
        let options = Options::new("init");
        let before = SkillSetStatus::default();
        let spec = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            1,
        );
        let mut these = facts(&spec, &before, &options);
        these.workload = Some(Workload::Live(deployment("agent")));
        let mut decision = decide(these);
        assert_eq!(decision.mode, Mode::ImageVolume);
        let failure = image_volumes_dropped(&mut decision, &spec, &named("agent"));
        assert_eq!(failure.reason, reason::IMAGE_VOLUMES_UNSUPPORTED);
        assert!(failure.message.ends_with("falling back to InitContainer"));
        assert_eq!(decision.placed.status.image_volume_failure, Some(failure));
        assert_eq!(decision.placed.status.workload, None);
        assert_eq!(decision.requeue, Duration::from_secs(1));
    }

    #[test]
    fn plans_are_synced_only_where_there_is_or_was_one() {
        let options = Options::new("init");
        let spec = skill_set(
            &json!({"workloadRef": {"kind": "Deployment", "name": "agent"}}),
            1,
        );
        let with_image_volumes = |before: &SkillSetStatus| {
            let mut these = facts(&spec, before, &options);
            these.workload = Some(Workload::Live(deployment("agent")));
            decide(these).plan
        };
        assert_eq!(
            with_image_volumes(&SkillSetStatus::default()),
            PlanStep::Keep,
            "never had a plan: not even a list"
        );
        let was_init = SkillSetStatus {
            delivery: Some(Delivery::InitContainer),
            plan_config_map: Some("tools-skillport-plan-0123456789".into()),
            ..SkillSetStatus::default()
        };
        assert_eq!(
            with_image_volumes(&was_init),
            PlanStep::Sync(None),
            "left the init container: the old plans are collected"
        );
    }
}
