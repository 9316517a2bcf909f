//! Pod injection, pure: the same [`translate`](crate::translate) the `workloadRef` attach
//! applies, turned into a JSON Patch on a Pod at creation — the mutating half of the admission
//! webhook (issue 13), which serves it. One translate, two doors: the Pod's spec after the patch
//! is exactly the pod template the attach would produce for the same SkillSet.
//!
//! A Pod that already carries `skillport.dev/skills-digest` was injected before (or belongs to
//! a workload the operator attached to): it gets an empty patch, so injecting twice changes
//! nothing.

use json_patch::Patch;
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
    let typed = Pod::deserialize(pod).map_err(|err| InjectError::Pod(err.to_string()))?;
    let injected = typed
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(names::SKILLS_DIGEST_ANNOTATION));
    if injected {
        return Ok(Patch(Vec::new()));
    }
    // Diff against the Pod as typed and serialised again, so that only our changes show (the
    // sender's JSON may order or spell defaults differently).
    let before = serde_json::to_value(&typed).expect("a Pod serialises");
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
    Ok(json_patch::diff(&before, &after))
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

    #[test]
    fn one_translate_two_doors_the_injected_pod_equals_the_attached_template() {
        let options = Options::new("r.io/skillport@sha256:".to_owned() + &"f".repeat(64));
        for mode in [Mode::ImageVolume, Mode::InitContainer] {
            let template = template();
            let attached =
                SkillResources::new("tools", &spec(), &resolved(), &template, mode, &options)
                    .unwrap()
                    .apply(&template);
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
