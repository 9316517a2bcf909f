//! Skills into a pod template, as plain data: pure, deterministic, no I/O.
//!
//! [`SkillResources::new`] takes a SkillSet, what its skills resolved to, the pod template it is
//! for, the delivery mode and the operator's options, and returns what to add: volumes, init
//! containers, the agent container's mounts and environment, pull secrets, annotations, and (in
//! InitContainer mode) the plan ConfigMap's data. [`SkillResources::apply`] splices it into a
//! template; [`SkillResources::remove`] takes exactly that back out. The reconciler applies the
//! result with server-side apply, the webhook turns it into a JSON Patch, `render` prints it.
//!
//! Guarantees: the same inputs give the same output, byte for byte (maps are `BTreeMap`s, lists
//! keep SkillSet order, no clock, no randomness). Images are always referenced by digest. Only the
//! agent container (`spec.container`, else the first) gets skills; every other container, init
//! container and volume of the template stays as it was. A name that is already taken in the
//! template is an error, never an overwrite, so `remove` gives back the original template.
//! No credential passes through here: Secrets are referred to by name and mounted as files.

mod image_volume;
mod init_container;
pub mod names;
pub mod paths;
mod verify;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, LocalObjectReference, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use skillport_oci::{Digest, ParseReferenceError, Reference};

use crate::api::{Delivery, ResolvedLayer, ResolvedSkill, Skill, SkillSetSpec};

/// How the skills reach the pod: a concrete mode, never `Auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    ImageVolume,
    InitContainer,
}

impl Mode {
    /// The mode for `spec` on a cluster that does (or does not) serve image volumes. `Auto`
    /// takes image volumes where they are served and every skill is an image; git skills always
    /// need the fetch init container.
    pub fn choose(spec: &SkillSetSpec, image_volumes_served: bool) -> Mode {
        let all_images = spec.skills.iter().all(|skill| skill.git.is_none());
        match spec.delivery {
            Delivery::ImageVolume => Mode::ImageVolume,
            Delivery::Auto if image_volumes_served && all_images => Mode::ImageVolume,
            Delivery::Auto | Delivery::InitContainer => Mode::InitContainer,
        }
    }

    /// The delivery this mode is (what `status.delivery` records).
    pub fn delivery(self) -> Delivery {
        match self {
            Mode::ImageVolume => Delivery::ImageVolume,
            Mode::InitContainer => Delivery::InitContainer,
        }
    }

    /// The mode a delivery names; `None` for `Auto`, which names none.
    pub fn delivered(delivery: Delivery) -> Option<Mode> {
        match delivery {
            Delivery::ImageVolume => Some(Mode::ImageVolume),
            Delivery::InitContainer => Some(Mode::InitContainer),
            Delivery::Auto => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ImageVolume => "ImageVolume",
            Mode::InitContainer => "InitContainer",
        }
    }
}

/// What the operator was started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    /// The image holding the static `skillport` binary (`fetch`, `verify`).
    pub init_image: String,
    /// PEM CA certificates trusted for registries (the operator's `--ca-file`s), handed to
    /// `skillport fetch` through the plan ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Resources of the init containers. [default: [`Options::default_resources`]]
    #[serde(default = "Options::default_resources")]
    pub resources: ResourceRequirements,
    /// Let mount paths under system folders (`/usr`, `/etc`, …: [`paths::SYSTEM_FOLDERS`]) through.
    /// A cluster-wide setting (`--allow-system-mount-paths`), off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_system_mount_paths: bool,
}

impl Options {
    pub fn new(init_image: impl Into<String>) -> Options {
        Options {
            init_image: init_image.into(),
            ca_bundle: None,
            resources: Options::default_resources(),
            allow_system_mount_paths: false,
        }
    }

    /// Requests 50m CPU and 64Mi memory, limited to 256Mi: `fetch` streams layers to disk and
    /// holds little in memory.
    pub fn default_resources() -> ResourceRequirements {
        let quantities = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(key, value)| ((*key).to_owned(), Quantity((*value).to_owned())))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        ResourceRequirements {
            requests: quantities(&[("cpu", "50m"), ("memory", "64Mi")]),
            limits: quantities(&[("memory", "256Mi")]),
            ..ResourceRequirements::default()
        }
    }
}

/// Why a SkillSet cannot be put into a pod template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("skill {skill:?} is not resolved yet (no {what} in status.skills)")]
    Unresolved { skill: String, what: &'static str },
    #[error("skill {skill:?}: image reference {reference:?} does not parse: {reason}")]
    Reference {
        skill: String,
        reference: String,
        reason: String,
    },
    #[error("skill {skill:?} comes from git, which only the InitContainer delivery can fetch")]
    GitNeedsInitContainer { skill: String },
    #[error("the pod template has no container {name:?} (it has: {})", available.join(", "))]
    ContainerNotFound {
        name: String,
        available: Vec<String>,
    },
    #[error("the pod template has no containers")]
    NoContainers,
    #[error("the pod template already has a {what} named {name:?}")]
    NameTaken { what: &'static str, name: String },
    #[error(
        "container {container:?} already mounts {theirs}, which overlaps skill mount {ours}; \
         set spec.mountRoot (or the skill's mountPath) to a folder the container does not use"
    )]
    MountPathTaken {
        container: String,
        ours: String,
        theirs: String,
    },
    #[error(
        "skill mounts {first} and {second} overlap: one would be mounted inside the other, read-only"
    )]
    MountsOverlap { first: String, second: String },
    #[error(
        "{field} {name:?} must not contain \"--\" (it separates the container in the names given to the pod)"
    )]
    DoubleHyphen { field: String, name: String },
    #[error("spec.folderEnv {name:?}: {reason}")]
    FolderEnv { name: String, reason: &'static str },
    #[error("the fetch plan is invalid: {reason}")]
    Plan { reason: String },
    #[error("{field} {path:?}: {reason}")]
    MountPath {
        field: String,
        path: String,
        reason: String,
    },
}

/// The plan ConfigMap of InitContainer mode: its name and data (owned by the SkillSet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanConfigMap {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

impl PlanConfigMap {
    /// The ConfigMap object (labelled `app.kubernetes.io/managed-by: skillport`), in
    /// `namespace`, owned by `owner` when given: what the operator applies and `render` prints.
    pub fn object(
        &self,
        namespace: Option<&str>,
        owner: Option<&OwnerReference>,
    ) -> serde_json::Value {
        let mut object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "labels": {"app.kubernetes.io/managed-by": "skillport"},
            },
            "data": self.data,
        });
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = namespace.into();
        }
        if let Some(owner) = owner {
            object["metadata"]["ownerReferences"] = serde_json::json!([owner]);
        }
        object
    }
}

/// Everything a SkillSet adds to one pod template.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillResources {
    pub mode: Mode,
    /// The agent container's name.
    pub container: String,
    /// Put before the template's own init containers.
    pub init_containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    /// Added to the agent container.
    pub volume_mounts: Vec<VolumeMount>,
    /// Added to the agent container.
    pub env: Vec<EnvVar>,
    /// Added to the pod (ImageVolume mode), those the template does not name already.
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Added to the pod template's metadata.
    pub annotations: BTreeMap<String, String>,
    /// InitContainer mode: the ConfigMap the fetch container reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanConfigMap>,
    /// The SkillSet's pod-wide names.
    #[serde(skip)]
    pub names: names::PodNames,
}

/// One skill as it will be delivered: its spec, its pinned source and its mount path.
pub(crate) struct Planned<'a> {
    pub skill: &'a Skill,
    pub source: PinnedSource,
    pub mount_path: String,
    /// The image's layer, when the resolve read it: the fetch plan names it. Not part of
    /// [`PinnedSource`], so a plan gaining it changes no pod's skills digest.
    pub layer: Option<&'a ResolvedLayer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum PinnedSource {
    /// `name@sha256:…`
    Image(String),
    Git {
        url: String,
        commit: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
}

impl SkillResources {
    /// What SkillSet `name` (with `spec`, resolved as `resolved`) adds to `template`.
    pub fn new(
        name: &str,
        spec: &SkillSetSpec,
        resolved: &[ResolvedSkill],
        template: &PodTemplateSpec,
        mode: Mode,
        options: &Options,
    ) -> Result<SkillResources, TranslateError> {
        if let Some(problem) = paths::check(spec, options.allow_system_mount_paths)
            .into_iter()
            .next()
        {
            return Err(TranslateError::MountPath {
                field: problem.field,
                path: problem.path,
                reason: problem.reason,
            });
        }
        check_folder_env(&spec.folder_env)?;
        check_double_hyphens(spec)?;
        let planned = pin(spec, resolved)?;
        let pod = template.spec.as_ref();
        let containers = pod.map(|pod| pod.containers.as_slice()).unwrap_or_default();
        let container = agent_container(spec, containers)?;

        let mut resources = match mode {
            Mode::ImageVolume => image_volume::resources(spec, &planned, pod, options)?,
            Mode::InitContainer => init_container::resources(name, spec, &planned, options)?,
        };
        resources.container.clone_from(&container.name);
        let folders: Vec<&str> = planned.iter().map(|p| p.mount_path.as_str()).collect();
        resources
            .env
            .push(env(names::SKILL_FOLDERS_ENV, &folders.join(",")));
        for name in &spec.folder_env {
            resources.env.push(env(name, &spec.mount_root));
        }
        // An index is written with fetch always, with image volumes when verify is on.
        if mode == Mode::InitContainer || spec.verify {
            let index = format!("{}/{}", spec.mount_root, names::INDEX_FILE);
            resources.env.push(env(names::INDEX_ENV, &index));
        }
        let skill_names: Vec<&str> = planned.iter().map(|p| p.skill.name.as_str()).collect();
        let pod_names = names::PodNames::of(spec);
        resources.names = pod_names.clone();
        resources.annotations.insert(
            pod_names.skills_annotation(),
            serde_json::to_string(&skill_names).expect("names serialise"),
        );
        resources.annotations.insert(
            pod_names.skills_digest_annotation(),
            skills_digest(mode, &planned),
        );
        resources.check_free(template, container)?;
        Ok(resources)
    }

    /// Refuses names and mount paths the template already uses.
    fn check_free(
        &self,
        template: &PodTemplateSpec,
        agent: &Container,
    ) -> Result<(), TranslateError> {
        let no_spec = PodSpec::default();
        let pod = template.spec.as_ref().unwrap_or(&no_spec);
        let taken = |what, name: &str| TranslateError::NameTaken {
            what,
            name: name.to_owned(),
        };
        for volume in &self.volumes {
            if pod.volumes.iter().flatten().any(|v| v.name == volume.name) {
                return Err(taken("volume", &volume.name));
            }
        }
        for init in &self.init_containers {
            let all = pod.init_containers.iter().flatten().chain(&pod.containers);
            if all.clone().any(|c| c.name == init.name) {
                return Err(taken("container", &init.name));
            }
        }
        for variable in &self.env {
            if agent.env.iter().flatten().any(|e| e.name == variable.name) {
                return Err(taken("environment variable", &variable.name));
            }
        }
        for key in self.annotations.keys() {
            let existing = template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref());
            if existing.is_some_and(|annotations| annotations.contains_key(key)) {
                return Err(taken("annotation", key));
            }
        }
        // A mount inside a read-only mount cannot be made (its mount point cannot be created),
        // and one over an existing mount hides it: no overlap with the agent's own mounts or
        // between ours, equal, inside or containing.
        for ours in &self.volume_mounts {
            if let Some(theirs) = agent
                .volume_mounts
                .iter()
                .flatten()
                .find(|theirs| overlap(&ours.mount_path, &theirs.mount_path))
            {
                return Err(TranslateError::MountPathTaken {
                    container: agent.name.clone(),
                    ours: ours.mount_path.clone(),
                    theirs: theirs.mount_path.clone(),
                });
            }
        }
        for (index, first) in self.volume_mounts.iter().enumerate() {
            for second in &self.volume_mounts[index + 1..] {
                if overlap(&first.mount_path, &second.mount_path) {
                    return Err(TranslateError::MountsOverlap {
                        first: first.mount_path.clone(),
                        second: second.mount_path.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// `template` with the skills attached.
    pub fn apply(&self, template: &PodTemplateSpec) -> PodTemplateSpec {
        self.clone().attach_to(template.clone())
    }

    /// [`apply`](Self::apply), consuming both: what is added is moved, not copied (a `Volume` is
    /// over 3 KB).
    pub fn attach_to(self, mut template: PodTemplateSpec) -> PodTemplateSpec {
        let metadata = template.metadata.get_or_insert_with(Default::default);
        let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.extend(self.annotations);
        let pod = template.spec.get_or_insert_with(PodSpec::default);
        if !self.init_containers.is_empty() {
            let existing = pod.init_containers.take().unwrap_or_default();
            let mut init = self.init_containers;
            init.extend(existing);
            pod.init_containers = Some(init);
        }
        append(&mut pod.volumes, self.volumes);
        append(&mut pod.image_pull_secrets, self.image_pull_secrets);
        if let Some(agent) = pod.containers.iter_mut().find(|c| c.name == self.container) {
            append(&mut agent.volume_mounts, self.volume_mounts);
            append(&mut agent.env, self.env);
        }
        template
    }

    /// `template` (as [`apply`](Self::apply) left it) with exactly what was added taken out.
    /// Lists and maps left empty are dropped, as they were before.
    pub fn remove(&self, template: &PodTemplateSpec) -> PodTemplateSpec {
        let mut template = template.clone();
        if let Some(metadata) = template.metadata.as_mut() {
            if let Some(annotations) = metadata.annotations.as_mut() {
                annotations.retain(|key, _| !self.annotations.contains_key(key));
            }
            if metadata
                .annotations
                .as_ref()
                .is_some_and(BTreeMap::is_empty)
            {
                metadata.annotations = None;
            }
        }
        if template.metadata == Some(ObjectMeta::default()) {
            template.metadata = None;
        }
        if let Some(pod) = template.spec.as_mut() {
            retain(&mut pod.init_containers, |c| {
                !self.init_containers.iter().any(|ours| ours.name == c.name)
            });
            retain(&mut pod.volumes, |v| {
                !self.volumes.iter().any(|ours| ours.name == v.name)
            });
            retain(&mut pod.image_pull_secrets, |s| {
                !self.image_pull_secrets.contains(s)
            });
            if let Some(agent) = pod.containers.iter_mut().find(|c| c.name == self.container) {
                retain(&mut agent.volume_mounts, |m| {
                    !self.volume_mounts.contains(m)
                });
                retain(&mut agent.env, |e| !self.env.contains(e));
            }
        }
        template
    }
}

/// The CRD's rule that skill names and `spec.container` hold no `--` ([`names::SEPARATOR`]).
fn check_double_hyphens(spec: &SkillSetSpec) -> Result<(), TranslateError> {
    let fields = spec
        .container
        .iter()
        .map(|c| ("spec.container".to_owned(), c))
        .chain(
            spec.skills
                .iter()
                .enumerate()
                .map(|(i, skill)| (format!("spec.skills[{i}].name"), &skill.name)),
        );
    for (field, name) in fields {
        if name.contains(names::SEPARATOR) {
            return Err(TranslateError::DoubleHyphen {
                field,
                name: name.clone(),
            });
        }
    }
    Ok(())
}

/// The CRD's rules for `folderEnv`, for the doors that do not pass the API server (`render`):
/// at most 8 names, each an environment variable name, none twice, none of ours.
fn check_folder_env(names_given: &[String]) -> Result<(), TranslateError> {
    let refuse = |name: &str, reason| {
        Err(TranslateError::FolderEnv {
            name: name.to_owned(),
            reason,
        })
    };
    if let Some(ninth) = names_given.get(8) {
        return refuse(ninth, "at most 8 names");
    }
    for (index, name) in names_given.iter().enumerate() {
        let mut chars = name.chars();
        let first = chars.next();
        let valid = name.len() <= 128
            && first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return refuse(
                name,
                "not an environment variable name (letters, digits and _, not starting with a digit)",
            );
        }
        if name == names::SKILL_FOLDERS_ENV || name == names::INDEX_ENV {
            return refuse(name, "Skillport sets this one itself");
        }
        if names_given[..index].contains(name) {
            return refuse(name, "named twice");
        }
    }
    Ok(())
}

/// Whether two absolute paths are equal or one is inside the other.
pub(crate) fn overlap(a: &str, b: &str) -> bool {
    let inside = |child: &str, parent: &str| {
        parent == "/"
            || child
                .strip_prefix(parent)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

fn append<T>(list: &mut Option<Vec<T>>, items: Vec<T>) {
    if !items.is_empty() {
        list.get_or_insert_with(Vec::new).extend(items);
    }
}

fn retain<T>(list: &mut Option<Vec<T>>, keep: impl FnMut(&T) -> bool) {
    if let Some(items) = list.as_mut() {
        items.retain(keep);
        if items.is_empty() {
            *list = None;
        }
    }
}

/// Each skill with its source pinned: images to `name@digest`, git refs to commits.
fn pin<'a>(
    spec: &'a SkillSetSpec,
    resolved: &'a [ResolvedSkill],
) -> Result<Vec<Planned<'a>>, TranslateError> {
    spec.skills
        .iter()
        .map(|skill| {
            let found = resolved.iter().find(|r| r.name == skill.name);
            let source = match (&skill.image, &skill.git) {
                (Some(image), _) => {
                    let digest = found.and_then(|r| r.digest.as_deref()).ok_or_else(|| {
                        TranslateError::Unresolved {
                            skill: skill.name.clone(),
                            what: "digest",
                        }
                    })?;
                    PinnedSource::Image(pinned_reference(&skill.name, image, digest)?)
                }
                (None, Some(git)) => PinnedSource::Git {
                    url: git.url.clone(),
                    commit: found.and_then(|r| r.commit.clone()).ok_or_else(|| {
                        TranslateError::Unresolved {
                            skill: skill.name.clone(),
                            what: "commit",
                        }
                    })?,
                    path: git.path.clone(),
                },
                (None, None) => unreachable!("the CRD requires image or git"),
            };
            Ok(Planned {
                skill,
                source,
                mount_path: spec.mount_path(skill),
                layer: found.and_then(|r| r.layer.as_ref()),
            })
        })
        .collect()
}

/// `registry/repo@digest`: the tag (if any) goes, the resolved digest is what counts.
fn pinned_reference(skill: &str, image: &str, digest: &str) -> Result<String, TranslateError> {
    let fail = |reason: String| TranslateError::Reference {
        skill: skill.to_owned(),
        reference: image.to_owned(),
        reason,
    };
    let reference: Reference = image
        .parse()
        .map_err(|err: ParseReferenceError| fail(err.reason.to_owned()))?;
    let digest: Digest = digest
        .parse()
        .map_err(|_| fail(format!("the resolved digest {digest:?} is not a digest")))?;
    let pinned = format!("{}@{digest}", reference.name());
    Ok(pinned)
}

/// `spec.container`, else the first container.
fn agent_container<'a>(
    spec: &SkillSetSpec,
    containers: &'a [Container],
) -> Result<&'a Container, TranslateError> {
    match &spec.container {
        Some(name) => containers.iter().find(|c| &c.name == name).ok_or_else(|| {
            TranslateError::ContainerNotFound {
                name: name.clone(),
                available: containers.iter().map(|c| c.name.clone()).collect(),
            }
        }),
        None => containers.first().ok_or(TranslateError::NoContainers),
    }
}

/// `sha256:<hex>` over the mode and each skill's name and pinned source, in order: it changes
/// when content or delivery does, and on nothing else (the init image, resources and mount paths
/// show in the template themselves).
fn skills_digest(mode: Mode, planned: &[Planned<'_>]) -> String {
    let skills: Vec<_> = planned
        .iter()
        .map(|p| serde_json::json!({"name": p.skill.name, "source": p.source}))
        .collect();
    let canonical = serde_json::json!({"mode": mode, "skills": skills}).to_string();
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

pub(crate) fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

pub(crate) fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// A container of ours: the init image, the restricted PodSecurity profile (non-root as the
/// image's 65532, read-only root, no privilege escalation, no capabilities, RuntimeDefault
/// seccomp) and the configured resources.
pub(crate) fn restricted_container(
    name: &str,
    args: Vec<String>,
    volume_mounts: Vec<VolumeMount>,
    options: &Options,
) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(options.init_image.clone()),
        args: Some(args),
        volume_mounts: Some(volume_mounts),
        resources: Some(options.resources.clone()),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            run_as_group: Some(65532),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> SkillSetSpec {
        serde_json::from_value(value).expect("a spec")
    }

    fn digest(byte: char) -> String {
        format!("sha256:{}", byte.to_string().repeat(64))
    }

    fn template() -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "agent", "image": "agent:1"}]},
        }))
        .expect("a template")
    }

    fn skills_digest_of(spec: &SkillSetSpec, digest: &str, mode: Mode, image: &str) -> String {
        let resolved = [ResolvedSkill {
            name: "pdf".into(),
            digest: Some(digest.into()),
            ..ResolvedSkill::default()
        }];
        let resources = SkillResources::new(
            "s",
            spec,
            &resolved,
            &template(),
            mode,
            &Options::new(image),
        )
        .expect("translates");
        resources.annotations[names::SKILLS_DIGEST_ANNOTATION].clone()
    }

    #[test]
    fn skills_digest_changes_with_content_and_delivery_only() {
        let base = spec(serde_json::json!({"skills": [{"name": "pdf", "image": "r.io/pdf:1"}]}));
        let moved = spec(serde_json::json!({
            "skills": [{"name": "pdf", "image": "r.io/pdf:2", "mountPath": "/opt/pdf"}],
            "mountRoot": "/agent/skills",
        }));
        let first = skills_digest_of(&base, &digest('a'), Mode::ImageVolume, "sp:1");
        // Another tag resolving to the same digest, other paths, another init image: same.
        assert_eq!(
            first,
            skills_digest_of(&moved, &digest('a'), Mode::ImageVolume, "sp:2")
        );
        // New content, or the other delivery: a new digest, so the pods roll.
        assert_ne!(
            first,
            skills_digest_of(&base, &digest('b'), Mode::ImageVolume, "sp:1")
        );
        assert_ne!(
            first,
            skills_digest_of(&base, &digest('a'), Mode::InitContainer, "sp:1")
        );
    }

    #[test]
    fn the_plan_names_the_resolved_layer_and_the_skills_digest_ignores_it() {
        let spec = spec(serde_json::json!({"skills": [{"name": "pdf", "image": "r.io/pdf:1"}]}));
        let layer = ResolvedLayer {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: digest('d'),
            size: 42,
            in_folder: false,
        };
        let translate = |layer: Option<ResolvedLayer>| {
            let resolved = [ResolvedSkill {
                name: "pdf".into(),
                digest: Some(digest('a')),
                layer,
                ..ResolvedSkill::default()
            }];
            SkillResources::new(
                "s",
                &spec,
                &resolved,
                &template(),
                Mode::InitContainer,
                &Options::new("sp:1"),
            )
            .expect("translates")
        };
        let plan_of = |resources: &SkillResources| {
            let data = &resources.plan.as_ref().expect("a plan").data;
            let mut plan =
                skillport_fetch::FetchPlan::parse(data["plan.json"].as_bytes()).expect("a plan");
            if let Some(layers) = data.get(skillport_fetch::plan::LAYERS_FILE) {
                assert_eq!(plan.apply_layers(layers.as_bytes()), Vec::<String>::new());
            }
            plan
        };
        let (with, without) = (translate(Some(layer.clone())), translate(None));
        let named = plan_of(&with).skills[0].layer.clone().expect("the layer");
        assert_eq!(
            (named.media_type, named.digest, named.size),
            (layer.media_type, layer.digest, layer.size)
        );
        assert_eq!(plan_of(&without).skills[0].layer, None);
        // Learning the layer rolls no pod: the content is the same digest's.
        assert_eq!(
            with.annotations[names::SKILLS_DIGEST_ANNOTATION],
            without.annotations[names::SKILLS_DIGEST_ANNOTATION]
        );
    }

    #[test]
    fn auto_takes_image_volumes_only_where_served_and_all_skills_are_images() {
        let images = spec(serde_json::json!({"skills": [{"name": "a", "image": "r.io/a:1"}]}));
        let mixed = spec(serde_json::json!({"skills": [
            {"name": "a", "image": "r.io/a:1"},
            {"name": "b", "git": {"url": "https://g.io/r.git", "ref": "main"}},
        ]}));
        assert_eq!(Mode::choose(&images, true), Mode::ImageVolume);
        assert_eq!(Mode::choose(&images, false), Mode::InitContainer);
        assert_eq!(Mode::choose(&mixed, true), Mode::InitContainer);
        let forced = spec(serde_json::json!({
            "delivery": "ImageVolume",
            "skills": [{"name": "a", "image": "r.io/a:1"}],
        }));
        // Forced stays forced: the reconciler reports ImageVolumesUnsupported instead.
        assert_eq!(Mode::choose(&forced, false), Mode::ImageVolume);
    }

    #[test]
    fn plan_config_map_names_fit_an_object_name_and_change_with_the_plan() {
        let data = |plan: &str| BTreeMap::from([("plan.json".to_owned(), plan.to_owned())]);
        let name = names::plan_config_map("reviewer", &data("1"));
        assert!(name.starts_with("reviewer-skillport-plan-"), "{name}");
        assert_eq!(name.len(), "reviewer-skillport-plan-".len() + 10);
        assert_eq!(name, names::plan_config_map("reviewer", &data("1")));
        assert_ne!(name, names::plan_config_map("reviewer", &data("2")));
        let long = "a".repeat(253);
        let name = names::plan_config_map(&long, &data("1"));
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.contains("-skillport-plan-"));
        assert_ne!(
            name,
            names::plan_config_map(&format!("{}b", "a".repeat(252)), &data("1"))
        );
    }

    #[test]
    fn a_tag_never_reaches_the_pod() {
        let spec = spec(serde_json::json!({"skills": [
            {"name": "a", "image": "r.io:5000/skills/a:1.0"},
        ]}));
        let resolved = [ResolvedSkill {
            name: "a".into(),
            digest: Some(digest('c')),
            ..ResolvedSkill::default()
        }];
        let resources = SkillResources::new(
            "s",
            &spec,
            &resolved,
            &template(),
            Mode::ImageVolume,
            &Options::new("sp:1"),
        )
        .expect("translates");
        let reference = resources.volumes[0]
            .image
            .as_ref()
            .and_then(|image| image.reference.clone());
        assert_eq!(
            reference,
            Some(format!("r.io:5000/skills/a@{}", digest('c')))
        );
    }

    fn translate_with(
        spec: &SkillSetSpec,
        template: &PodTemplateSpec,
        mode: Mode,
    ) -> Result<SkillResources, TranslateError> {
        let resolved = [ResolvedSkill {
            name: "pdf".into(),
            digest: Some(digest('a')),
            ..ResolvedSkill::default()
        }];
        SkillResources::new("s", spec, &resolved, template, mode, &Options::new("sp:1"))
    }

    #[test]
    fn folder_env_gives_each_named_variable_the_mount_root() {
        let spec = spec(serde_json::json!({
            "skills": [{"name": "pdf", "image": "r.io/pdf:1"}],
            "mountRoot": "/agent/skills",
            "folderEnv": ["KAGENT_SKILLS_FOLDER", "MY_SKILLS"],
        }));
        for mode in [Mode::ImageVolume, Mode::InitContainer] {
            let resources = translate_with(&spec, &template(), mode).expect("translates");
            let value = |name: &str| {
                resources
                    .env
                    .iter()
                    .find(|e| e.name == name)
                    .and_then(|e| e.value.clone())
            };
            assert_eq!(
                value("KAGENT_SKILLS_FOLDER").as_deref(),
                Some("/agent/skills")
            );
            assert_eq!(value("MY_SKILLS").as_deref(), Some("/agent/skills"));
            assert_eq!(value("SKILL_FOLDERS").as_deref(), Some("/agent/skills/pdf"));
        }
    }

    #[test]
    fn folder_env_refuses_what_the_crd_refuses_and_a_variable_the_container_sets() {
        let with = |names: serde_json::Value| {
            spec(serde_json::json!({
                "skills": [{"name": "pdf", "image": "r.io/pdf:1"}],
                "folderEnv": names,
            }))
        };
        for (names, why) in [
            (serde_json::json!(["SKILL_FOLDERS"]), "sets this one itself"),
            (
                serde_json::json!(["1ABC"]),
                "not an environment variable name",
            ),
            (
                serde_json::json!(["A-B"]),
                "not an environment variable name",
            ),
            (serde_json::json!(["A", "A"]), "named twice"),
            (
                serde_json::json!(["A", "B", "C", "D", "E", "F", "G", "H", "I"]),
                "at most 8",
            ),
        ] {
            let err = translate_with(&with(names.clone()), &template(), Mode::ImageVolume)
                .expect_err("refused");
            assert!(err.to_string().contains(why), "{names}: {err}");
        }
        let agent_sets_it: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "agent", "image": "a:1",
                "env": [{"name": "KAGENT_SKILLS_FOLDER", "value": "/skills"}]}]},
        }))
        .unwrap();
        let err = translate_with(
            &with(serde_json::json!(["KAGENT_SKILLS_FOLDER"])),
            &agent_sets_it,
            Mode::InitContainer,
        )
        .expect_err("refused");
        assert_eq!(
            err,
            TranslateError::NameTaken {
                what: "environment variable",
                name: "KAGENT_SKILLS_FOLDER".into()
            }
        );
    }

    /// kagent's own `spec.skills` mounts an `emptyDir` at `/skills`, our default `mountRoot`.
    #[test]
    fn a_mount_root_the_container_already_mounts_is_refused_in_both_modes() {
        let kagent: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "kagent", "image": "a:1",
                "volumeMounts": [{"name": "kagent-skills", "mountPath": "/skills"}]}]},
        }))
        .unwrap();
        let spec = spec(serde_json::json!({"skills": [{"name": "pdf", "image": "r.io/pdf:1"}]}));
        for mode in [Mode::ImageVolume, Mode::InitContainer] {
            let err = translate_with(&spec, &kagent, mode).expect_err("refused");
            assert!(
                matches!(&err, TranslateError::MountPathTaken { theirs, .. } if theirs == "/skills"),
                "{mode:?}: {err}"
            );
            assert!(
                err.to_string().contains("mountRoot"),
                "says what to change: {err}"
            );
        }
    }

    #[test]
    fn skill_and_container_names_with_two_hyphens_are_refused() {
        for (value, field) in [
            (
                serde_json::json!({"skills": [{"name": "pdf--x", "image": "r.io/pdf:1"}]}),
                "spec.skills[0].name",
            ),
            (
                serde_json::json!({"skills": [{"name": "pdf", "image": "r.io/pdf:1"}],
                                   "container": "agent--x"}),
                "spec.container",
            ),
        ] {
            let err =
                translate_with(&spec(value), &template(), Mode::ImageVolume).expect_err("refused");
            assert!(
                matches!(&err, TranslateError::DoubleHyphen { field: f, .. } if f == field),
                "{err}"
            );
        }
    }
}
