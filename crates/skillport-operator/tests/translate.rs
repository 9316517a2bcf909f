//! `translate` snapshots: one fixture file per case under `tests/fixtures/translate/`, the pod
//! template with skills attached (and the plan ConfigMap) committed as insta snapshots.
//!
//! A fixture holds `mode`, `skillSet` (`name`, `spec`), `template` (a pod template), and
//! optionally `options` and `resolved` (what `status.skills` says; by default every skill
//! resolves to a digest or commit made from its name). Every case that translates also checks
//! what the snapshot cannot show at a glance: `remove` gives back the original template exactly,
//! every container but the agent is untouched, the template's own volumes and init containers are
//! kept as they were, and translating twice gives the same bytes.

mod common;

use common::Case;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Serialize;
use skillport_operator::translate::PlanConfigMap;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    template: PodTemplateSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan_config_map: Option<&'a PlanConfigMap>,
}

#[test]
fn translate() {
    insta::glob!("fixtures/translate/*.yaml", |path| {
        let case = Case::read(path);
        let resources = match case.translate() {
            Ok(resources) => resources,
            Err(err) => {
                insta::assert_snapshot!(format!("error: {err}\n"));
                return;
            }
        };
        assert_eq!(case.translate().as_ref(), Ok(&resources), "deterministic");
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

/// The oldest Kubernetes minor whose schema has `image` volumes (alpha in 1.31).
const OLDEST: u32 = 31;
/// The newest schema kubernetes-validate (pinned in scripts/test.sh) ships.
const NEWEST: u32 = 37;

/// Every object translate emits — each fixture's template with skills attached, as a
/// Deployment, and its plan ConfigMap — validates (strictly: no unknown fields) with the
/// kubernetes-validate schemas of Kubernetes 1.31 through 1.37.
#[test]
fn every_emitted_object_validates_for_kubernetes_1_31_to_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, case) in common::all() {
        let Ok(resources) = case.translate() else {
            continue;
        };
        let labels = serde_json::json!({"app": name});
        let mut template = serde_json::to_value(resources.apply(&case.template)).unwrap();
        template["metadata"]["labels"] = labels.clone();
        let deployment = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels}, "template": template},
        });
        let path = dir.path().join(format!("{name}.deployment.json"));
        std::fs::write(&path, deployment.to_string()).unwrap();
        files.push(path);
        if let Some(plan) = &resources.plan {
            let config_map = serde_json::json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": plan.name},
                "data": plan.data,
            });
            let path = dir.path().join(format!("{name}.configmap.json"));
            std::fs::write(&path, config_map.to_string()).unwrap();
            files.push(path);
        }
    }
    assert!(
        files.len() > 20,
        "the fixtures give objects: {}",
        files.len()
    );
    let validator = skillport_testkit::venv_tool("kubernetes-validate");
    let mut failures = Vec::new();
    for minor in OLDEST..=NEWEST {
        let output = std::process::Command::new(&validator)
            .args(["--strict", "--quiet", "-k", &format!("1.{minor}.0")])
            .args(&files)
            .output()
            .expect("running kubernetes-validate");
        if !output.status.success() {
            failures.push(format!(
                "1.{minor}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "kubernetes-validate refused:\n{}",
        failures.join("\n")
    );
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
