//! ImageVolume mode: each skill image is an `image` volume, by digest, read-only in the agent.

use k8s_openapi::api::core::v1::{ImageVolumeSource, LocalObjectReference, PodSpec, Volume};

use super::{
    Mode, Options, PinnedSource, Planned, SkillResources, TranslateError, mount, names, verify,
};
use crate::api::SkillSetSpec;

pub(super) fn resources(
    spec: &SkillSetSpec,
    planned: &[Planned<'_>],
    pod: Option<&PodSpec>,
    options: &Options,
) -> Result<SkillResources, TranslateError> {
    // Sized up front: a Volume is over 3 KB, and growing the vector moves them all.
    let mut volumes = Vec::with_capacity(planned.len() + 1);
    let mut volume_mounts = Vec::with_capacity(planned.len() + 1);
    let pod_names = names::PodNames::of(spec);
    for skill in planned {
        let PinnedSource::Image(reference) = &skill.source else {
            return Err(TranslateError::GitNeedsInitContainer {
                skill: skill.skill.name.clone(),
            });
        };
        let volume = pod_names.skill_volume(&skill.skill.name);
        volumes.push(Volume {
            name: volume.clone(),
            image: Some(ImageVolumeSource {
                reference: Some(reference.clone()),
                pull_policy: Some(
                    skill
                        .skill
                        .pull_policy
                        .map_or("IfNotPresent", |policy| policy.as_str())
                        .to_owned(),
                ),
            }),
            ..Volume::default()
        });
        volume_mounts.push(mount(&volume, &skill.mount_path, true));
    }
    let mut init_containers = Vec::new();
    if spec.verify {
        let (container, index_volume, index_mount) = verify::resources(spec, planned, options);
        init_containers.push(container);
        volumes.push(index_volume);
        volume_mounts.push(index_mount);
    }
    // The kubelet pulls image volumes with the pod's pull secrets; add those it lacks, in order.
    let existing = pod
        .and_then(|pod| pod.image_pull_secrets.as_deref())
        .unwrap_or_default();
    let image_pull_secrets = spec
        .image_pull_secrets
        .iter()
        .map(|secret| LocalObjectReference {
            name: secret.name.clone(),
        })
        .filter(|secret| !existing.contains(secret))
        .collect();
    Ok(SkillResources {
        mode: Mode::ImageVolume,
        container: String::new(),
        init_containers,
        volumes,
        volume_mounts,
        env: Vec::new(),
        image_pull_secrets,
        annotations: std::collections::BTreeMap::new(),
        plan: None,
        names: pod_names,
    })
}
