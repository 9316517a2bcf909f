//! SkillSet checks the CRD's schema and CEL cannot express, because they need other objects:
//! the validating half of the admission webhook (issue 13), pure. The webhook reads the
//! workload, the other SkillSets and the Secrets, and answers with [`validate`]'s verdict.
//!
//! Denied: skill mount paths nested in one another (equal ones the CRD refuses already), a mount
//! path overlapping a mount the target container already has, a container the workload does not
//! have, and a `workloadRef` another SkillSet already claims for the same container. Warned
//! only: pull secrets that do not exist (they may be created later).

use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::api::SkillSetSpec;
use crate::translate::{Options, names, overlap, paths};

/// One reason to deny, with the field it is about (`spec.skills[2].mountPath`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub field: String,
    pub message: String,
}

/// What the webhook answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub denials: Vec<Denial>,
    pub warnings: Vec<String>,
}

/// Another SkillSet in the namespace.
pub struct Other<'a> {
    pub name: &'a str,
    pub spec: &'a SkillSetSpec,
}

/// Checks `spec` against the workload's pod template (when it exists), the other SkillSets of
/// the namespace and the Secrets there (`secret_exists`).
pub fn validate(
    spec: &SkillSetSpec,
    template: Option<&PodTemplateSpec>,
    others: &[Other<'_>],
    secret_exists: impl Fn(&str) -> bool,
    options: &Options,
) -> Verdict {
    let mut verdict = Verdict::default();
    let deny = |verdict: &mut Verdict, field: String, message: String| {
        verdict.denials.push(Denial { field, message });
    };
    for problem in paths::check(spec, options.allow_system_mount_paths) {
        deny(
            &mut verdict,
            problem.field,
            format!("{:?}: {}", problem.path, problem.reason),
        );
    }
    let paths: Vec<String> = spec.skills.iter().map(|s| spec.mount_path(s)).collect();
    for (j, second) in paths.iter().enumerate() {
        for (i, first) in paths[..j].iter().enumerate() {
            if first != second && overlap(first, second) {
                deny(
                    &mut verdict,
                    format!("spec.skills[{j}].mountPath"),
                    format!(
                        "{second} overlaps spec.skills[{i}]'s mount path {first}: one would be \
                         mounted inside the other, read-only"
                    ),
                );
            }
        }
    }
    let container = template.and_then(|template| {
        let containers = template.spec.as_ref().map(|s| s.containers.as_slice())?;
        match &spec.container {
            Some(name) => {
                let found = containers.iter().find(|c| &c.name == name);
                if found.is_none() {
                    let available: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
                    deny(
                        &mut verdict,
                        "spec.container".into(),
                        format!(
                            "the workload has no container {name:?} (it has: {})",
                            available.join(", ")
                        ),
                    );
                }
                found
            }
            None => containers.first(),
        }
    });
    if let Some(container) = container {
        let ours = |volume: &str| {
            volume.starts_with(names::SKILL_VOLUME_PREFIX) || volume.starts_with("skillport-")
        };
        for mount in container
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| !ours(&m.name))
        {
            for (i, path) in paths.iter().enumerate() {
                if overlap(path, &mount.mount_path) {
                    deny(
                        &mut verdict,
                        format!("spec.skills[{i}].mountPath"),
                        format!(
                            "{path} overlaps {}, which container {:?} already mounts",
                            mount.mount_path, container.name
                        ),
                    );
                }
            }
        }
    }
    check_claims(spec, template, others, &mut verdict);
    if let Some(warning) = image_volume_pulls(spec) {
        verdict.warnings.push(warning);
    }
    for (i, secret) in spec.image_pull_secrets.iter().enumerate() {
        if !secret_exists(&secret.name) {
            verdict.warnings.push(format!(
                "spec.imagePullSecrets[{i}]: Secret {:?} does not exist (yet); resolving and \
                 pulling fail until it does",
                secret.name
            ));
        }
    }
    verdict
}

/// The kubelet's default `registryBurst`: pulls it lets through at once before
/// `registryPullQPS` (5 per second) throttles them.
const KUBELET_REGISTRY_BURST: usize = 10;

/// More image skills than a default kubelet pulls at once, where they may become image
/// volumes: the kubelet pulls a Pod's image volumes one after another and refuses those past
/// its rate limit ("pull QPS exceeded"), so on a node without the images the Pod waits out an
/// image back-off (10 s, then longer) before the rest are pulled.
fn image_volume_pulls(spec: &SkillSetSpec) -> Option<String> {
    let images = spec.skills.iter().filter(|s| s.image.is_some()).count();
    // As translate chooses on a cluster that serves image volumes.
    let as_volumes =
        crate::translate::Mode::choose(spec, true) == crate::translate::Mode::ImageVolume;
    // The verify init container's image is one more pull.
    let pulls = images + 1;
    (as_volumes && pulls > KUBELET_REGISTRY_BURST).then(|| {
        format!(
            "spec.skills: {images} image skills as image volumes, with the verify init \
             container, are {pulls} image pulls per Pod, one after another; a kubelet with its \
             default pull limits (registryBurst {KUBELET_REGISTRY_BURST}, registryPullQPS 5) \
             refuses some on a node that lacks the images, and the Pod waits at least 10 s more \
             to start. Set registryPullQPS: 0 in the nodes' KubeletConfiguration, or delivery: \
             InitContainer (one image per Pod)"
        )
    })
}

/// Denies a `workloadRef` another SkillSet already claims for the same container.
fn check_claims(
    spec: &SkillSetSpec,
    template: Option<&PodTemplateSpec>,
    others: &[Other<'_>],
    verdict: &mut Verdict,
) {
    if let Some(workload) = &spec.workload_ref {
        let first = || {
            template
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
        };
        // One SkillSet per container of a workload (the pod-wide names are per container).
        let ours = spec.container.clone().or_else(first);
        for other in others {
            let theirs = other.spec.container.clone().or_else(first);
            if other.spec.workload_ref.as_ref() == Some(workload)
                && theirs != ours
                && (theirs.is_none() || ours.is_none())
            {
                // The workload is not there (or not readable): its first container is unknown.
                verdict.warnings.push(format!(
                    "spec.workloadRef: SkillSet {:?} names {} {:?} too, and without the workload \
                     it cannot be told whether both are for its first container; if they are, \
                     the younger one is WorkloadClaimed",
                    other.name,
                    workload.kind.as_str(),
                    workload.name
                ));
                continue;
            }
            if other.spec.workload_ref.as_ref() == Some(workload) && theirs == ours {
                verdict.denials.push(Denial {
                    field: "spec.workloadRef".into(),
                    message: format!(
                        "{} {:?} is already claimed by SkillSet {:?}{}; one SkillSet per \
                         container: put the skills in that SkillSet, or name another \
                         container (spec.container)",
                        workload.kind.as_str(),
                        workload.name,
                        other.name,
                        theirs
                            .as_deref()
                            .map(|c| format!(" for container {c:?}"))
                            .unwrap_or_default()
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> SkillSetSpec {
        serde_json::from_value(value).unwrap()
    }

    fn template() -> PodTemplateSpec {
        serde_json::from_value(json!({"spec": {"containers": [
            {"name": "agent", "image": "a:1", "volumeMounts": [
                {"name": "data", "mountPath": "/data"},
                {"name": "skill-old", "mountPath": "/skills/old"},
            ]},
            {"name": "proxy", "image": "p:1"},
        ]}}))
        .unwrap()
    }

    fn options() -> Options {
        Options::new("registry.example/skillport@sha256:0")
    }

    #[test]
    fn more_image_skills_than_a_default_kubelet_pulls_at_once_are_warned_about_as_volumes() {
        let skills = |n: usize| -> Vec<serde_json::Value> {
            (0..n)
                .map(|i| json!({"name": format!("s{i}"), "image": format!("r/s{i}:1")}))
                .collect()
        };
        let warned = |value: serde_json::Value| {
            validate(&spec(value), Some(&template()), &[], |_| true, &options())
                .warnings
                .iter()
                .any(|w| w.contains("registryPullQPS: 0"))
        };
        assert!(!warned(json!({"skills": skills(9)})));
        // Ten skills and the verify init container's image: eleven pulls.
        assert!(warned(json!({"skills": skills(10)})));
        assert!(warned(
            json!({"skills": skills(10), "delivery": "ImageVolume"})
        ));
        assert!(!warned(
            json!({"skills": skills(10), "delivery": "InitContainer"})
        ));
        // A git skill makes Auto an init container.
        let mut mixed = skills(12);
        mixed
            .push(json!({"name": "g", "git": {"url": "https://example.com/r.git", "ref": "main"}}));
        assert!(!warned(json!({"skills": mixed})));
    }

    #[test]
    fn a_mount_path_over_a_system_folder_is_denied_unless_the_cluster_allows_it() {
        let candidate = spec(json!({"skills": [
            {"name": "a", "image": "r/a:1", "mountPath": "/usr/local/bin"},
        ]}));
        let verdict = validate(&candidate, Some(&template()), &[], |_| true, &options());
        assert_eq!(verdict.denials.len(), 1, "{verdict:?}");
        assert_eq!(verdict.denials[0].field, "spec.skills[0].mountPath");
        assert!(verdict.denials[0].message.contains("/usr"));
        let mut allowing = options();
        allowing.allow_system_mount_paths = true;
        let verdict = validate(&candidate, Some(&template()), &[], |_| true, &allowing);
        assert!(verdict.denials.is_empty(), "{verdict:?}");
    }

    #[test]
    fn nested_mount_paths_and_the_containers_own_mounts_are_denied_with_their_field() {
        let candidate = spec(json!({"skills": [
            {"name": "a", "image": "r/a:1", "mountPath": "/opt/a"},
            {"name": "b", "image": "r/b:1", "mountPath": "/opt/a/b"},
            {"name": "c", "image": "r/c:1", "mountPath": "/data/c"},
            {"name": "old", "image": "r/old:1"},
        ]}));
        let verdict = validate(&candidate, Some(&template()), &[], |_| true, &options());
        let fields: Vec<&str> = verdict.denials.iter().map(|d| d.field.as_str()).collect();
        // skills[3] (/skills/old) is our own mount from an earlier attach: not a conflict.
        assert_eq!(
            fields,
            ["spec.skills[1].mountPath", "spec.skills[2].mountPath"]
        );
        assert!(
            verdict.denials[1].message.contains("/data"),
            "{:?}",
            verdict.denials[1]
        );
    }

    #[test]
    fn a_container_claimed_by_another_skill_set_is_denied_and_another_container_is_not() {
        let mine = spec(json!({
            "skills": [{"name": "a", "image": "r/a:1"}],
            "workloadRef": {"kind": "Deployment", "name": "agent"},
        }));
        let same = spec(json!({
            "skills": [{"name": "b", "image": "r/b:1"}],
            "workloadRef": {"kind": "Deployment", "name": "agent"},
            "container": "agent",
        }));
        let sidecar = spec(json!({
            "skills": [{"name": "b", "image": "r/b:1"}],
            "workloadRef": {"kind": "Deployment", "name": "agent"},
            "container": "proxy",
        }));
        let denied = validate(
            &mine,
            Some(&template()),
            &[Other {
                name: "first",
                spec: &same,
            }],
            |_| true,
            &options(),
        );
        assert_eq!(denied.denials.len(), 1);
        assert_eq!(denied.denials[0].field, "spec.workloadRef");
        assert!(denied.denials[0].message.contains("\"first\""));
        let allowed = validate(
            &mine,
            Some(&template()),
            &[Other {
                name: "side",
                spec: &sidecar,
            }],
            |_| true,
            &options(),
        );
        assert!(allowed.denials.is_empty(), "{allowed:?}");
        // Without the workload, the first container is unknown: a warning, not a denial.
        let unknown = validate(
            &mine,
            None,
            &[Other {
                name: "first",
                spec: &same,
            }],
            |_| true,
            &options(),
        );
        assert!(unknown.denials.is_empty(), "{unknown:?}");
        assert!(unknown.warnings[0].contains("\"first\""), "{unknown:?}");
    }

    #[test]
    fn a_missing_pull_secret_is_a_warning_and_a_missing_container_a_denial() {
        let candidate = spec(json!({
            "skills": [{"name": "a", "image": "r/a:1"}],
            "imagePullSecrets": [{"name": "here"}, {"name": "later"}],
            "container": "nope",
        }));
        let verdict = validate(
            &candidate,
            Some(&template()),
            &[],
            |name| name == "here",
            &options(),
        );
        assert_eq!(verdict.warnings.len(), 1);
        assert!(verdict.warnings[0].starts_with("spec.imagePullSecrets[1]"));
        assert_eq!(verdict.denials[0].field, "spec.container");
        assert!(verdict.denials[0].message.contains("agent, proxy"));
    }
}
