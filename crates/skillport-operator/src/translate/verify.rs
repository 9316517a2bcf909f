//! The verify init container of ImageVolume mode.
//!
//! Some runtimes mount an image volume *empty* without an error. `skillport verify` (the same
//! static binary as `fetch`) looks at every mounted skill, fails the pod with one
//! termination-log line when a folder is empty, lacks `SKILL.md` or does not match its image,
//! and writes the same `index.json` that `fetch` writes, so agents find skills the same way in
//! both modes. It sees each skill at the agent's own mount path, so the index's paths are right.
//! The index reaches the agent as one file, `<mountRoot>/index.json`, from an `emptyDir`.

use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{Options, PinnedSource, Planned, mount, names, restricted_container};
use crate::api::SkillSetSpec;

pub(super) fn resources(
    spec: &SkillSetSpec,
    planned: &[Planned<'_>],
    options: &Options,
) -> (Container, Volume, VolumeMount) {
    let mut args = vec![
        "verify".to_owned(),
        "--index".to_owned(),
        format!("{}/{}", names::INDEX_DIR, names::INDEX_FILE),
        "--index-root".to_owned(),
        spec.mount_root.clone(),
    ];
    let pod_names = names::PodNames::of(spec);
    let index_volume = pod_names.index_volume();
    let mut mounts = Vec::new();
    for skill in planned {
        let PinnedSource::Image(reference) = &skill.source else {
            continue;
        };
        // Mount paths never hold a comma (the CRD refuses them), nor do names or references.
        args.push("--skill".to_owned());
        args.push(format!(
            "name={},path={},image={reference}",
            skill.skill.name, skill.mount_path
        ));
        mounts.push(mount(
            &pod_names.skill_volume(&skill.skill.name),
            &skill.mount_path,
            true,
        ));
    }
    mounts.push(mount(&index_volume, names::INDEX_DIR, false));
    let container = restricted_container(&pod_names.verify_container(), args, mounts, options);
    let volume = Volume {
        name: index_volume.clone(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: None,
            size_limit: Some(Quantity("1Mi".to_owned())),
        }),
        ..Volume::default()
    };
    let mut index = mount(
        &index_volume,
        &format!("{}/{}", spec.mount_root, names::INDEX_FILE),
        true,
    );
    index.sub_path = Some(names::INDEX_FILE.to_owned());
    (container, volume, index)
}
