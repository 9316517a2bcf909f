//! Pod injection, pure: the same [`translate`](crate::translate) the `workloadRef` attach
//! applies, turned into a JSON Patch on a Pod at creation — the mutating half of the admission
//! webhook (issue 13), which serves it. One translate, two doors: the Pod's spec after the patch
//! is exactly the pod template the attach would produce for the same SkillSet.
//!
//! A Pod that already carries this SkillSet's skills-digest annotation and its skills (its
//! volumes, mounted in a container, and its fetch init container where it fills them) was
//! injected before, or belongs to a workload the operator attached it to: it gets an empty
//! patch, so injecting twice changes nothing. One with the annotation and not the skills (a
//! controller merged the annotations of a template we attached to but replaced its spec, as
//! kagent's does) gets them.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize as _;
use serde_json::Value;

use crate::api::{ResolvedSkill, SkillSetSpec};
use crate::translate::{Mode, Options, SkillResources, TranslateError, names};

/// The label that asks for injection: `skillport.dev/skillset: <SkillSet name>`.
pub const SKILLSET_LABEL: &str = "skillport.dev/skillset";

/// Why a Pod cannot get its skills.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("the Pod does not parse: {0}")]
    Pod(String),
    #[error(transparent)]
    Translate(#[from] TranslateError),
}

/// The JSON Patch that gives `pod` (as the API server sent it) the skills of SkillSet `name`.
pub fn inject(
    pod: &Value,
    name: &str,
    spec: &SkillSetSpec,
    resolved: &[ResolvedSkill],
    mode: Mode,
    options: &Options,
) -> Result<Patch, InjectError> {
    let mut typed = Pod::deserialize(pod).map_err(|err| InjectError::Pod(err.to_string()))?;
    let pod_names = names::PodNames::of(spec);
    let labelled = typed
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(&pod_names.skills_digest_annotation()));
    if labelled && carries_skills(&typed, spec) {
        return Ok(Patch(Vec::new()));
    }
    // Diff against the Pod as typed and serialised again, so that only our changes show (the
    // sender's JSON may order or spell defaults differently).
    let before = serde_json::to_value(&typed).expect("a Pod serialises");
    if labelled {
        // Our annotations without our skills: a controller that merges annotations but
        // replaces the pod spec (kagent's) kept them from a template we attached to. They are
        // not this Pod's: translate writes them again.
        if let Some(annotations) = typed.metadata.annotations.as_mut() {
            annotations.remove(&pod_names.skills_digest_annotation());
            annotations.remove(&pod_names.skills_annotation());
        }
    }
    let mut after = typed;
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            // All translate reads of the template's metadata.
            annotations: after.metadata.annotations.take(),
            ..ObjectMeta::default()
        }),
        spec: after.spec.take(),
    };
    let resources = SkillResources::new(name, spec, resolved, &template, mode, options)?;
    let attached = resources.attach_to(template);
    after.metadata.annotations = attached.metadata.and_then(|m| m.annotations);
    after.spec = attached.spec;
    let after = serde_json::to_value(&after).expect("a Pod serialises");
    let mut operations = Vec::new();
    additions(&mut PointerBuf::root(), &before, &after, &mut operations);
    Ok(Patch(operations))
}

/// Whether `pod` has the skills of some SkillSet: a skill image volume or the fetch init
/// container (what every delivery adds).
fn carries_skills(pod: &Pod, spec: &SkillSetSpec) -> bool {
    let Some(pod_spec) = &pod.spec else {
        return false;
    };
    let names = names::PodNames::of(spec);
    let skills_volume = names.skills_volume();
    let ours = |volume: &str| {
        volume == skills_volume
            || volume == names.index_volume()
            || spec
                .skills
                .iter()
                .any(|skill| volume == names.skill_volume(&skill.name))
    };
    // The skills' volumes, mounted in a container, and filled where they are filled: a Pod
    // holding only some of it (a controller that kept the volumes but replaced the containers)
    // is injected again, which refuses it by name rather than pass it without skills.
    let volumes = || pod_spec.volumes.iter().flatten();
    let has_volume = volumes().any(|v| ours(&v.name));
    let mounted = pod_spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .any(|m| ours(&m.name));
    let fetches = pod_spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == names.fetch_container());
    let needs_fetch = volumes().any(|v| v.name == skills_volume);
    has_volume && mounted && (fetches || !needs_fetch)
}

/// The operations that turn `before` into `after`, for an `after` that only adds to `before`
/// (translate adds keys and list entries, and never changes or removes what was there).
///
/// Written by hand because a general JSON diff (`json_patch::diff`) compares lists by position:
/// inserting our init containers first would rewrite the Pod's own `initContainers[0]` field by
/// field into ours, and fields the sender has that k8s-openapi does not know (a newer
/// Kubernetes) would stay on our container and be lost from theirs. Here list entries are matched
/// by `name` (else by equality), changes inside a matched entry use its index as sent, and new
/// entries are inserted at their place after those changes.
fn additions(path: &mut PointerBuf, before: &Value, after: &Value, out: &mut Vec<PatchOperation>) {
    match (before, after) {
        (Value::Object(old), Value::Object(new)) => {
            for (key, value) in new {
                path.push_back(key.as_str());
                match old.get(key) {
                    Some(was) => additions(path, was, value, out),
                    None => out.push(PatchOperation::Add(AddOperation {
                        path: path.clone(),
                        value: value.clone(),
                    })),
                }
                path.pop_back();
            }
            for key in old.keys().filter(|key| !new.contains_key(*key)) {
                path.push_back(key.as_str());
                out.push(PatchOperation::Remove(RemoveOperation {
                    path: path.clone(),
                }));
                path.pop_back();
            }
        }
        (Value::Array(old), Value::Array(new)) if old != new => {
            if let Some(matched) = match_entries(old, new) {
                let mut inserted = Vec::new();
                for (index, value) in new.iter().enumerate() {
                    match matched[index] {
                        Some(was) => {
                            path.push_back(was);
                            additions(path, &old[was], value, out);
                            path.pop_back();
                        }
                        None => inserted.push((index, value)),
                    }
                }
                for (index, value) in inserted {
                    path.push_back(index);
                    out.push(PatchOperation::Add(AddOperation {
                        path: path.clone(),
                        value: value.clone(),
                    }));
                    path.pop_back();
                }
            } else {
                out.push(replace(path, after));
            }
        }
        (old, new) if old != new => out.push(replace(path, new)),
        _ => {}
    }
}

/// For each entry of `new`, the index of the same entry in `old` (by `name`, else equal), or
/// `None` for an added one; `None` overall when `old`'s entries are not all kept, in order.
fn match_entries(old: &[Value], new: &[Value]) -> Option<Vec<Option<usize>>> {
    let name = |value: &Value| value.get("name").and_then(Value::as_str).map(str::to_owned);
    let mut next = 0;
    let mut matched = Vec::with_capacity(new.len());
    for value in new {
        let same = old
            .get(next)
            .is_some_and(|was| match (name(was), name(value)) {
                (Some(a), Some(b)) => a == b,
                _ => was == value,
            });
        if same {
            matched.push(Some(next));
            next += 1;
        } else {
            matched.push(None);
        }
    }
    (next == old.len()).then_some(matched)
}

fn replace(path: &PointerBuf, value: &Value) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: path.clone(),
        value: value.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> SkillSetSpec {
        serde_json::from_value(json!({
            "skills": [
                {"name": "pdf", "image": "r.io/skills/pdf:1"},
                {"name": "review", "image": "r.io/skills/review:1", "mountPath": "/opt/review"},
            ],
            "imagePullSecrets": [{"name": "regcred"}],
        }))
        .unwrap()
    }

    fn resolved() -> Vec<ResolvedSkill> {
        ["pdf", "review"]
            .iter()
            .enumerate()
            .map(|(i, name)| ResolvedSkill {
                name: (*name).to_owned(),
                digest: Some(format!("sha256:{:064x}", i + 1)),
                ..ResolvedSkill::default()
            })
            .collect()
    }

    fn template() -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "agent", SKILLSET_LABEL: "tools"}},
            "spec": {
                "containers": [
                    {"name": "agent", "image": "agent:1", "env": [{"name": "A", "value": "b"}]},
                    {"name": "proxy", "image": "proxy:1"},
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
        }))
        .unwrap()
    }

    /// The Pod a ReplicaSet would make from `template`.
    fn pod_of(template: &PodTemplateSpec) -> Value {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod"});
        pod["metadata"] = serde_json::to_value(&template.metadata).unwrap();
        pod["metadata"]["name"] = json!("agent-7d9f-abcde");
        pod["spec"] = serde_json::to_value(&template.spec).unwrap();
        pod
    }

    fn pinned_options() -> Options {
        Options::new("r.io/skillport@sha256:".to_owned() + &"f".repeat(64))
    }

    /// `template` as the `workloadRef` attach gives it the skills.
    fn attached(template: &PodTemplateSpec, mode: Mode, options: &Options) -> PodTemplateSpec {
        SkillResources::new("tools", &spec(), &resolved(), template, mode, options)
            .unwrap()
            .apply(template)
    }

    #[test]
    fn one_translate_two_doors_the_injected_pod_equals_the_attached_template() {
        let options = pinned_options();
        for mode in [Mode::ImageVolume, Mode::InitContainer] {
            let template = template();
            let attached = attached(&template, mode, &options);
            let mut pod = pod_of(&template);
            let patch = inject(&pod, "tools", &spec(), &resolved(), mode, &options).unwrap();
            assert!(!patch.0.is_empty(), "{mode:?}: something to add");
            json_patch::patch(&mut pod, &patch).unwrap();
            let injected: Pod = serde_json::from_value(pod.clone()).unwrap();
            assert_eq!(injected.spec, attached.spec, "{mode:?}: the same pod spec");
            assert_eq!(
                injected.metadata.annotations,
                attached
                    .metadata
                    .as_ref()
                    .and_then(|m| m.annotations.clone()),
                "{mode:?}: the same annotations"
            );
            let again = inject(&pod, "tools", &spec(), &resolved(), mode, &options).unwrap();
            assert!(
                again.0.is_empty(),
                "{mode:?}: injecting twice changes nothing"
            );
        }
    }

    /// Fields the sender has and k8s-openapi does not know (a newer Kubernetes) stay where they
    /// were: on the Pod's own init container (ours are inserted before it, not written over
    /// it) and on the agent.
    #[test]
    fn fields_unknown_to_us_stay_on_their_own_entries() {
        let options = pinned_options();
        for mode in [Mode::ImageVolume, Mode::InitContainer] {
            let mut pod = pod_of(&template());
            pod["spec"]["initContainers"] =
                json!([{"name": "setup", "image": "setup:1", "futureField": {"x": 1}}]);
            pod["spec"]["containers"][0]["futureField"] = json!(true);
            let patch = inject(&pod, "tools", &spec(), &resolved(), mode, &options).unwrap();
            json_patch::patch(&mut pod, &patch).unwrap();
            let init = pod["spec"]["initContainers"].as_array().unwrap();
            let setup = init.iter().position(|c| c["name"] == "setup").unwrap();
            assert_eq!(setup, init.len() - 1, "{mode:?}: ours go first");
            assert_eq!(
                init[setup]["futureField"],
                json!({"x": 1}),
                "{mode:?}: {init:?}"
            );
            assert!(
                init[..setup].iter().all(|c| c.get("futureField").is_none()),
                "{mode:?}: ours have none of theirs: {init:?}"
            );
            assert_eq!(
                pod["spec"]["containers"][0]["futureField"], true,
                "{mode:?}"
            );
            assert_eq!(pod["spec"]["containers"][1]["name"], "proxy", "{mode:?}");
            assert!(
                pod["spec"]["containers"][1].get("volumeMounts").is_none(),
                "{mode:?}: the sidecar is untouched"
            );
        }
    }

    /// kagent merges annotations and replaces the spec: its Pods can carry our skills-digest
    /// with none of our volumes. Those were skipped as "already injected" and got no skills.
    #[test]
    fn a_pod_with_our_annotations_but_not_our_skills_gets_them() {
        let options = pinned_options();
        for mode in [Mode::ImageVolume, Mode::InitContainer] {
            let template = template();
            let attached = attached(&template, mode, &options);
            let mut pod = pod_of(&template);
            let kept = attached
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .clone()
                .unwrap();
            pod["metadata"]["annotations"] = serde_json::to_value(&kept).unwrap();
            let patch = inject(&pod, "tools", &spec(), &resolved(), mode, &options).unwrap();
            json_patch::patch(&mut pod, &patch).unwrap();
            let injected: Pod = serde_json::from_value(pod).unwrap();
            assert_eq!(
                injected.spec, attached.spec,
                "{mode:?}: the skills are added"
            );
            assert_eq!(injected.metadata.annotations, Some(kept), "{mode:?}");
        }
    }

    /// A controller that kept our volumes but replaced the containers: not taken for injected.
    #[test]
    fn a_pod_with_our_volumes_but_not_our_mounts_is_not_passed_as_injected() {
        let options = pinned_options();
        for mode in [Mode::ImageVolume, Mode::InitContainer] {
            let template = template();
            let attached = attached(&template, mode, &options);
            let mut pod = pod_of(&attached);
            pod["spec"]["containers"] = pod_of(&template)["spec"]["containers"].clone();
            let err = inject(&pod, "tools", &spec(), &resolved(), mode, &options)
                .expect_err("translate refuses the half-injected Pod by name");
            assert!(err.to_string().contains("already has a"), "{mode:?}: {err}");
            let whole = pod_of(&attached);
            let patch = inject(&whole, "tools", &spec(), &resolved(), mode, &options).unwrap();
            assert!(
                patch.0.is_empty(),
                "{mode:?}: a whole injected Pod is left alone"
            );
        }
    }

    #[test]
    fn a_pod_that_is_not_a_pod_is_an_error_not_a_panic() {
        let options = Options::new("r.io/skillport:1");
        let err = inject(
            &json!({"spec": {"containers": "nope"}}),
            "tools",
            &spec(),
            &resolved(),
            Mode::ImageVolume,
            &options,
        )
        .unwrap_err();
        assert!(matches!(err, InjectError::Pod(_)), "{err}");
    }
}
