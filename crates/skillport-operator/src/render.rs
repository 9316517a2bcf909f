//! `render`: a workload with skills attached, offline — the same [`translate`](crate::translate)
//! the operator applies, for GitOps users who render in CI and run no operator.
//!
//! Inputs are text (a SkillSet, a workload, optionally a lock); the output is YAML: the workload,
//! then (InitContainer mode) the plan ConfigMap it mounts. No cluster, no registry: every skill
//! must be pinned already — by the lock (`skills: [{name, digest}|{name, commit}]`, the shape of
//! a SkillSet's `status.skills`), by the SkillSet's own `status.skills` (as `kubectl get -o yaml`
//! prints it), or by an image reference written with a digest.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{Delivery, ResolvedSkill, SkillSet};
use crate::translate::{Mode, Options, SkillResources, TranslateError};

/// The workload kinds `render` attaches skills to: everything with a pod template at
/// `spec.template`.
pub const WORKLOAD_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
];

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read the {what}: {reason}")]
    Parse { what: &'static str, reason: String },
    #[error("the workload is a {kind}; render attaches skills to {}", WORKLOAD_KINDS.join(", "))]
    WorkloadKind { kind: String },
    #[error("the workload has no spec.template")]
    NoTemplate,
    #[error(
        "skill {skill:?} is not pinned: no digest or commit in the lock or the SkillSet's status"
    )]
    Unpinned { skill: String },
    #[error(transparent)]
    Translate(#[from] TranslateError),
}

impl RenderError {
    /// What to do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            RenderError::Unpinned { .. } => Some(
                "pass --lock FILE with `skills: [{name: NAME, digest: sha256:…}]` (commit: for git \
                 skills), or write the image with its digest (image@sha256:…)",
            ),
            RenderError::WorkloadKind { .. } | RenderError::NoTemplate => {
                Some("pass the Deployment or StatefulSet whose pods should get the skills")
            }
            _ => None,
        }
    }
}

/// What `render` takes.
pub struct RenderRequest<'a> {
    pub skill_set: &'a str,
    pub workload: &'a str,
    pub lock: Option<&'a str>,
    /// Overrides the SkillSet's `delivery`; `Auto` offline means InitContainer, which works on
    /// every cluster (whether image volumes work is only known on the cluster).
    pub delivery: Option<Delivery>,
    pub options: &'a Options,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lock {
    skills: Vec<ResolvedSkill>,
}

/// The workload with skills attached, then the plan ConfigMap if there is one, as YAML
/// documents.
pub fn render(request: &RenderRequest<'_>) -> Result<String, RenderError> {
    let skill_set: SkillSet =
        serde_saphyr::from_str(request.skill_set).map_err(|err| RenderError::Parse {
            what: "SkillSet",
            reason: err.to_string(),
        })?;
    let mut workload: Value =
        serde_saphyr::from_str(request.workload).map_err(|err| RenderError::Parse {
            what: "workload",
            reason: err.to_string(),
        })?;
    let lock = request
        .lock
        .map(|text| {
            serde_saphyr::from_str::<Lock>(text).map_err(|err| RenderError::Parse {
                what: "lock",
                reason: err.to_string(),
            })
        })
        .transpose()?;
    let kind = workload["kind"].as_str().unwrap_or_default().to_owned();
    if !WORKLOAD_KINDS.contains(&kind.as_str()) {
        return Err(RenderError::WorkloadKind { kind });
    }
    let template_value = workload
        .pointer("/spec/template")
        .cloned()
        .ok_or(RenderError::NoTemplate)?;
    let template: PodTemplateSpec =
        serde_json::from_value(template_value).map_err(|err| RenderError::Parse {
            what: "workload's pod template",
            reason: err.to_string(),
        })?;

    let resolved = pinned(&skill_set, lock.as_ref())?;
    let spec = &skill_set.spec;
    let mode = match request.delivery.unwrap_or(spec.delivery) {
        Delivery::ImageVolume => Mode::ImageVolume,
        Delivery::InitContainer | Delivery::Auto => Mode::InitContainer,
    };
    let name = skill_set.metadata.name.clone().unwrap_or_default();
    let resources = SkillResources::new(&name, spec, &resolved, &template, mode, request.options)?;
    let attached = resources.apply(&template);
    workload["spec"]["template"] = serde_json::to_value(&attached).expect("a template serialises");
    let annotations = &mut workload["metadata"]["annotations"];
    if !annotations.is_object() {
        *annotations = Value::Object(serde_json::Map::new());
    }
    let key = resources.names.skills_annotation();
    annotations[&key] = Value::String(resources.annotations[&key].clone());

    let mut out = serde_saphyr::to_string(&workload).expect("YAML");
    if let Some(plan) = &resources.plan {
        let namespace = workload["metadata"]["namespace"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| skill_set.metadata.namespace.clone());
        let value = plan.object(namespace.as_deref(), None);
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&value).expect("YAML"));
    }
    Ok(out)
}

/// Each skill's digest or commit: the lock first, then the SkillSet's status, then a digest
/// written in the image reference.
fn pinned(skill_set: &SkillSet, lock: Option<&Lock>) -> Result<Vec<ResolvedSkill>, RenderError> {
    let status = skill_set
        .status
        .as_ref()
        .map(|status| status.skills.as_slice())
        .unwrap_or_default();
    skill_set
        .spec
        .skills
        .iter()
        .map(|skill| {
            let known = lock
                .into_iter()
                .flat_map(|lock| &lock.skills)
                .chain(status)
                .find(|r| r.name == skill.name && (r.digest.is_some() || r.commit.is_some()));
            if let Some(found) = known {
                return Ok(found.clone());
            }
            let written = skill
                .image
                .as_deref()
                .and_then(|image| image.parse::<skillport_oci::Reference>().ok())
                .and_then(|reference| reference.digest().map(ToString::to_string));
            match written {
                Some(digest) => Ok(ResolvedSkill {
                    name: skill.name.clone(),
                    digest: Some(digest),
                    ..ResolvedSkill::default()
                }),
                None => Err(RenderError::Unpinned {
                    skill: skill.name.clone(),
                }),
            }
        })
        .collect()
}
