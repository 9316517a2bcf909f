//! InitContainer mode: `skillport fetch` fills an `emptyDir` from a plan in a ConfigMap.
//!
//! Each pull secret is mounted read-only under a numbered volume (`skillport-pull-<i>`, never
//! the Secret's name, which may hold dots or be too long for a volume name), only its
//! `.dockerconfigjson` key; the git secret likewise. The plan names the Secrets, so `fetch`'s
//! messages can, and lists them in the SkillSet's order, which is the order they are tried.
//! The agent gets the folder read-only at `mountRoot`, and each skill with a `mountPath` of its
//! own also there, as a `subPath` of the same volume.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EmptyDirVolumeSource, KeyToPath, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skillport_fetch::FetchOptions;
use skillport_fetch::plan::{
    CredentialFile, FetchPlan, GitSpec, LAYERS_FILE, PlannedLayer, PlannedSkill,
};

use super::{
    Mode, Options, PinnedSource, PlanConfigMap, Planned, SkillResources, TranslateError, mount,
    names, restricted_container,
};
use crate::api::SkillSetSpec;

/// 0644, what the API server would fill in: written out, the template we make is the template
/// it stores, so comparing the two shows only real drift.
const DEFAULT_MODE: i32 = 0o644;

pub(super) fn resources(
    skill_set: &str,
    spec: &SkillSetSpec,
    planned: &[Planned<'_>],
    options: &Options,
) -> Result<SkillResources, TranslateError> {
    let mut plan = FetchPlan::new();
    let pod_names = names::PodNames::of(spec);
    let skills_volume = pod_names.skills_volume();
    let mut volumes = vec![
        empty_dir(skills_volume.clone(), skills_size_limit(planned)),
        empty_dir(pod_names.no_token_volume(), Quantity("1Ki".to_owned())),
    ];
    let mut fetch_mounts = vec![
        mount(&skills_volume, names::FETCH_INTO, false),
        mount(&pod_names.plan_volume(), names::PLAN_DIR, true),
        // fetch never talks to the API server: the pod's token stays out of its reach.
        mount(
            &pod_names.no_token_volume(),
            names::SERVICE_ACCOUNT_TOKEN_DIR,
            true,
        ),
    ];

    plan.skills = planned.iter().map(planned_skill).collect();
    for (index, secret) in spec.image_pull_secrets.iter().enumerate() {
        let volume = pod_names.pull_secret_volume(index);
        let dir = names::pull_secret_dir(index);
        volumes.push(secret_volume(
            &volume,
            &secret.name,
            Some(names::DOCKER_CONFIG_KEY),
        ));
        fetch_mounts.push(mount(&volume, &dir, true));
        plan.pull_secrets.push(CredentialFile {
            name: secret.name.clone(),
            path: format!("{dir}/{}", names::DOCKER_CONFIG_KEY),
        });
    }
    if let Some(secret) = &spec.git_auth_secret_ref
        && plan.has_git_skills()
    {
        let git_volume = pod_names.git_volume();
        volumes.push(secret_volume(&git_volume, &secret.name, None));
        fetch_mounts.push(mount(&git_volume, names::GIT_DIR, true));
        plan.git_credentials = Some(CredentialFile {
            name: secret.name.clone(),
            path: names::GIT_DIR.to_owned(),
        });
    }
    let mut data = BTreeMap::new();
    if let Some(bundle) = &options.ca_bundle {
        plan.ca_files
            .push(format!("{}/{}", names::PLAN_DIR, names::CA_KEY));
        data.insert(names::CA_KEY.to_owned(), bundle.clone());
    }
    plan.validate().map_err(|err| TranslateError::Plan {
        reason: err.to_string(),
    })?;
    data.insert(names::PLAN_KEY.to_owned(), plan.to_json());
    // Beside the plan, where an init image older than the operator does not look.
    if let Some(layers) = plan.layers_json() {
        data.insert(LAYERS_FILE.to_owned(), layers);
    }
    let config_map = names::plan_config_map(skill_set, &data);
    volumes.insert(
        2,
        Volume {
            name: pod_names.plan_volume(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.clone(),
                default_mode: Some(DEFAULT_MODE),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
    );

    let args = [
        "fetch",
        "--plan",
        &format!("{}/{}", names::PLAN_DIR, names::PLAN_KEY),
        "--into",
        names::FETCH_INTO,
    ]
    .map(str::to_owned)
    .to_vec();
    let fetch = restricted_container(&pod_names.fetch_container(), args, fetch_mounts, options);

    Ok(SkillResources {
        mode: Mode::InitContainer,
        container: String::new(),
        init_containers: vec![fetch],
        volumes,
        volume_mounts: agent_mounts(spec, planned),
        env: Vec::new(),
        image_pull_secrets: Vec::new(),
        annotations: BTreeMap::new(),
        plan: Some(PlanConfigMap {
            name: config_map,
            data,
        }),
        names: pod_names,
    })
}

/// The most `skillport fetch` can put in the skills folder with its default limits: each
/// skill's files, and for a git skill its pack beside them while it is checked out. A skill
/// image is unpacked as it downloads (no blob on disk). Bounding the `emptyDir` keeps a hostile
/// source from filling the node's disk: the kubelet evicts the Pod past it.
fn skills_size_limit(planned: &[Planned<'_>]) -> Quantity {
    let limits = FetchOptions::default();
    let bytes: u64 = planned
        .iter()
        .map(|skill| match skill.source {
            PinnedSource::Image(_) => limits.max_skill_bytes,
            PinnedSource::Git { .. } => limits.max_skill_bytes + limits.max_download_bytes,
        })
        .sum();
    binary_quantity(bytes.max(1 << 20))
}

/// `bytes` rounded up to a whole Mi, written as the API server writes it back (the largest
/// binary suffix that divides it: `3Gi`, not `3072Mi`), so the stored template equals ours.
fn binary_quantity(bytes: u64) -> Quantity {
    let mut value = bytes.div_ceil(1 << 20);
    let mut suffixes = ["Mi", "Gi", "Ti", "Pi", "Ei"].into_iter().peekable();
    let mut suffix = suffixes.next().expect("a suffix");
    while value.is_multiple_of(1024) && suffixes.peek().is_some() {
        value /= 1024;
        suffix = suffixes.next().expect("peeked");
    }
    Quantity(format!("{value}{suffix}"))
}

/// The plan's entry for a skill: its pinned source, into the folder named after it.
fn planned_skill(skill: &Planned<'_>) -> PlannedSkill {
    match &skill.source {
        PinnedSource::Image(reference) => PlannedSkill {
            layer: skill.layer.map(|layer| PlannedLayer {
                media_type: layer.media_type.clone(),
                digest: layer.digest.clone(),
                size: layer.size,
                in_folder: layer.in_folder,
            }),
            ..PlannedSkill::image(&skill.skill.name, reference)
        },
        PinnedSource::Git { url, commit, path } => PlannedSkill::git(
            &skill.skill.name,
            GitSpec {
                url: url.clone(),
                reference: commit.clone(),
                path: path.clone(),
            },
        ),
    }
}

/// The folder read-only at `mountRoot`, and each skill with a mount path of its own there too
/// (a mount path that is `<mountRoot>/<name>` anyway needs no mount of its own).
fn agent_mounts(spec: &SkillSetSpec, planned: &[Planned<'_>]) -> Vec<VolumeMount> {
    let skills_volume = names::PodNames::of(spec).skills_volume();
    let mut mounts = vec![mount(&skills_volume, &spec.mount_root, true)];
    for skill in planned {
        let default = format!("{}/{}", spec.mount_root, skill.skill.name);
        if skill.skill.mount_path.is_some() && skill.mount_path != default {
            let mut own = mount(&skills_volume, &skill.mount_path, true);
            own.sub_path = Some(skill.skill.name.clone());
            mounts.push(own);
        }
    }
    mounts
}

#[cfg(test)]
#[test]
fn binary_quantities_are_written_as_the_api_server_writes_them() {
    assert_eq!(binary_quantity(1 << 30).0, "1Gi");
    assert_eq!(binary_quantity(3 << 30).0, "3Gi");
    assert_eq!(binary_quantity(1 << 40).0, "1Ti");
    assert_eq!(binary_quantity((1 << 30) + 1).0, "1025Mi");
    assert_eq!(binary_quantity(1).0, "1Mi");
}

/// An `emptyDir` of at most `size`.
fn empty_dir(name: String, size: Quantity) -> Volume {
    Volume {
        name,
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(size),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A Secret as a read-only volume; with `key`, only that key.
fn secret_volume(volume: &str, secret: &str, key: Option<&str>) -> Volume {
    Volume {
        name: volume.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            default_mode: Some(DEFAULT_MODE),
            items: key.map(|key| {
                vec![KeyToPath {
                    key: key.to_owned(),
                    path: key.to_owned(),
                    mode: None,
                }]
            }),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}
