//! `translate` snapshots: one fixture file per case under `tests/fixtures/translate/`, the pod
//! template with skills attached (and the plan ConfigMap) committed as insta snapshots.
//!
//! A fixture holds `mode`, `skillSet` (`name`, `spec`), `template` (a pod template), and
//! optionally `options` and `resolved` (what `status.skills` says; by default every skill
//! resolves to a digest or commit made from its name). Every case that translates also checks
//! what the snapshot cannot show at a glance: `remove` gives back the original template exactly,
//! every container but the agent is untouched, the template's own volumes and init containers are
//! kept as they were, and translating twice gives the same bytes.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use skillport_operator::api::{ResolvedSkill, SkillSetSpec};
use skillport_operator::translate::{Mode, Options, PlanConfigMap, SkillResources};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    mode: Mode,
    skill_set: SkillSetFixture,
    template: PodTemplateSpec,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    resolved: Option<Vec<ResolvedSkill>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkillSetFixture {
    name: String,
    spec: SkillSetSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    template: PodTemplateSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_config_map: Option<&'a PlanConfigMap>,
}

/// A digest and a commit made from the skill's name, so fixtures need not spell them out.
fn resolved_by_name(spec: &SkillSetSpec) -> Vec<ResolvedSkill> {
    spec.skills
        .iter()
        .map(|skill| {
            let hash = hex::encode(Sha256::digest(skill.name.as_bytes()));
            ResolvedSkill {
                name: skill.name.clone(),
                digest: skill.image.as_ref().map(|_| format!("sha256:{hash}")),
                commit: skill.git.as_ref().map(|_| hash[..40].to_owned()),
                ..ResolvedSkill::default()
            }
        })
        .collect()
}

#[test]
fn translate() {
    insta::glob!("fixtures/translate/*.yaml", |path| {
        let text = std::fs::read_to_string(path).expect("reading the fixture");
        let case: Case =
            serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let options = case
            .options
            .clone()
            .unwrap_or_else(|| Options::new("registry.example.com/skillport:0.1.0"));
        let resolved = case
            .resolved
            .clone()
            .unwrap_or_else(|| resolved_by_name(&case.skill_set.spec));
        let translate = || {
            SkillResources::new(
                &case.skill_set.name,
                &case.skill_set.spec,
                &resolved,
                &case.template,
                case.mode,
                &options,
            )
        };
        let resources = match translate() {
            Ok(resources) => resources,
            Err(err) => {
                insta::assert_snapshot!(format!("error: {err}\n"));
                return;
            }
        };
        assert_eq!(translate().as_ref(), Ok(&resources), "deterministic");
        let attached = resources.apply(&case.template);
        check_untouched(&case.template, &attached, &resources.container);
        assert_eq!(
            resources.remove(&attached),
            case.template,
            "remove gives back the original template"
        );
        let output = Output {
            template: attached,
            plan_config_map: resources.plan.as_ref(),
        };
        insta::assert_snapshot!(serde_saphyr::to_string(&output).expect("YAML"));
    });
}

/// Containers other than the agent are equal; the template's own volumes come first and its own
/// init containers last, unchanged.
fn check_untouched(original: &PodTemplateSpec, attached: &PodTemplateSpec, agent: &str) {
    let before = original.spec.clone().unwrap_or_default();
    let after = attached.spec.clone().unwrap_or_default();
    assert_eq!(before.containers.len(), after.containers.len());
    for (old, new) in before.containers.iter().zip(&after.containers) {
        if old.name != agent {
            assert_eq!(old, new, "container {} is not the agent's", old.name);
        }
    }
    let old_volumes = before.volumes.unwrap_or_default();
    let new_volumes = after.volumes.unwrap_or_default();
    assert_eq!(old_volumes, new_volumes[..old_volumes.len()]);
    let old_init = before.init_containers.unwrap_or_default();
    let new_init = after.init_containers.unwrap_or_default();
    assert_eq!(old_init, new_init[new_init.len() - old_init.len()..]);
}
