//! The `SkillSet` API (`skillport.dev/v1alpha1`): spec, status, condition and reason names.
//!
//! Everything the API server can check is in the schema: OpenAPI limits for shapes and lengths,
//! CEL rules (`x-kubernetes-validations`) for what relates fields, list-maps for unique names.
//! Every string and list that a CEL rule reads has a `maxLength` / `maxItems`: without them the
//! API server's cost estimator refuses the whole CRD. What CEL cannot see (other objects, the
//! workload's own mounts, overlapping paths) is the webhook's job.
//!
//! The CRD YAML generated from these types is committed as `deploy/crd.yaml`; a test fails when
//! the two drift apart (`skillport-operator crd > deploy/crd.yaml` regenerates it).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group.
pub const GROUP: &str = "skillport.dev";
/// The API version.
pub const VERSION: &str = "v1alpha1";

/// The longest skill name: every volume derived from a skill is `skill-<name>`, and volume
/// names are DNS labels (at most 63 characters).
pub const MAX_SKILL_NAME: usize = 57;
/// The most skills one SkillSet may hold.
pub const MAX_SKILLS: usize = 64;
/// The most pull secrets one SkillSet may name.
pub const MAX_PULL_SECRETS: usize = 32;
/// The longest mount path (and `mountRoot`).
pub const MAX_PATH: usize = 512;
/// The longest version kept from a registry's annotation (status, caches, requests).
pub const MAX_VERSION: usize = 128;
/// The longest description kept from a registry's annotation: a registry may send megabytes.
pub const MAX_DESCRIPTION: usize = 1024;
/// The default `mountRoot`.
pub const DEFAULT_MOUNT_ROOT: &str = "/skills";
/// The default `updateInterval`.
pub const DEFAULT_UPDATE_INTERVAL: &str = "10m";

/// Which skills go into which pods, and how.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "skillport.dev",
    version = "v1alpha1",
    kind = "SkillSet",
    plural = "skillsets",
    shortname = "sks",
    namespaced,
    status = "SkillSetStatus",
    category = "skillport",
    doc = "Skills (OCI images or git folders) delivered into agent pods: pinned by digest, mounted read-only, listed in SKILL_FOLDERS and an index.",
    printcolumn = r#"{"name":"Delivery","type":"string","jsonPath":".status.delivery"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!self.requireDigest || self.skills.all(s, !has(s.image) || s.image.matches('@sha256:[0-9a-f]{64}$'))",
        "message": "requireDigest is true: every image must be pinned by digest (…@sha256:<64 hex>), not a tag",
        "fieldPath": ".skills",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": "self.delivery != 'ImageVolume' || self.skills.all(s, !has(s.git))",
        "message": "delivery ImageVolume cannot deliver git skills; use InitContainer or Auto",
        "fieldPath": ".delivery",
    },
    {
        "rule": "self.skills.all(a, !has(a.mountPath) || self.skills.all(b, a.name == b.name || (has(b.mountPath) ? b.mountPath : self.mountRoot + '/' + b.name) != a.mountPath))",
        "message": "mount paths must be unique: a skill's mountPath equals another skill's mount path (mountRoot/name by default)",
        // No `reason: FieldValueDuplicate`: the server prints that one without the message.
        "fieldPath": ".skills",
    },
]))]
pub struct SkillSetSpec {
    /// The skills; names are unique.
    #[schemars(
        length(min = 1, max = 64),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub skills: Vec<Skill>,

    /// `kubernetes.io/dockerconfigjson` Secrets for the skill images, in the order they are
    /// tried. Added to the pod's `imagePullSecrets` (ImageVolume) or mounted into the fetch init
    /// container (InitContainer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    pub image_pull_secrets: Vec<SecretRef>,

    /// A Secret with git credentials (`username` + `password`, or `token`) for every `https://`
    /// git source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_auth_secret_ref: Option<SecretRef>,

    /// Where skills are mounted by default: `<mountRoot>/<name>`; the index is
    /// `<mountRoot>/index.json`.
    #[serde(default = "default_mount_root")]
    #[schemars(schema_with = "mount_root_schema")]
    pub mount_root: String,

    /// How skills reach the pod.
    #[serde(default)]
    pub delivery: Delivery,

    /// The container that gets the skills. [default: the first container] Its name is added to
    /// the names of what the SkillSet adds to the pod (`skill-pdf--proxy`), so that SkillSets
    /// on different containers of one workload never share one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        extend("x-kubernetes-validations" = [{
            "rule": "!self.contains('--')",
            "message": "container must not contain \"--\", which Skillport's names put before it",
        }])
    )]
    pub container: Option<String>,

    /// Environment variables of the agent container that are set to `mountRoot`, for runtimes
    /// that look for their skills folder in a variable of their own (kagent's reads
    /// `KAGENT_SKILLS_FOLDER`). `SKILL_FOLDERS` is set in any case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 8),
        extend("x-kubernetes-list-type" = "set"),
        extend("x-kubernetes-validations" = [{
            "rule": "self.all(e, e != 'SKILL_FOLDERS' && e != 'SKILLPORT_INDEX')",
            "message": "folderEnv must not name SKILL_FOLDERS or SKILLPORT_INDEX, which Skillport sets itself",
        }]),
        inner(length(min = 1, max = 128), pattern(r"^[A-Za-z_][A-Za-z0-9_]*$"))
    )]
    pub folder_env: Vec<String>,

    /// A Deployment or StatefulSet whose pod template the operator attaches the skills to.
    /// Without it, Pods labelled `skillport.dev/skillset: <name>` get them at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,

    /// The ServiceAccount of this namespace the operator acts as for this SkillSet: it reads the
    /// pull and git Secrets, the workload and the plan ConfigMap with that account's rights, and
    /// no others. [default: the operator's `--default-service-account`, `skillport`]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub service_account_name: Option<String>,

    /// How often tags and git refs are resolved again (`15s`, `10m`, `1h30m`; at least `10s`).
    #[serde(default = "default_update_interval")]
    #[schemars(
        length(min = 2, max = 32),
        pattern(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"),
        extend("x-kubernetes-validations" = [{
            "rule": "duration(self) >= duration('10s')",
            "message": "updateInterval must be at least 10s",
        }])
    )]
    pub update_interval: String,

    /// Refuse image tags: every image must be pinned by digest.
    #[serde(default)]
    pub require_digest: bool,

    /// ImageVolume mode: check every mounted skill in a small init container (and write the
    /// index the agent reads), because some runtimes mount an image volume empty without an error.
    #[serde(default = "default_true")]
    pub verify: bool,

    /// What Pod injection does while the SkillSet is not ready.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
}

/// One skill: a name, exactly one source, and where it is mounted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.image) != has(self.git)",
    "message": "give exactly one of image or git",
    "reason": "FieldValueInvalid",
}]))]
pub struct Skill {
    /// The skill's name: a DNS label of at most 57 characters (its volume is `skill-<name>`)
    /// without `--` (as agentskills.io names), and its folder name.
    #[schemars(
        length(min = 1, max = 57),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        extend("x-kubernetes-validations" = [{
            "rule": "!self.contains('--')",
            "message": "name must not contain \"--\" (agentskills.io names do not)",
        }])
    )]
    pub name: String,

    /// An image reference (`registry/repo:tag` or `…@sha256:…`). Resolved to a digest, which is
    /// what pods use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 1024),
        extend("x-kubernetes-validations" = [{
            "rule": "!self.matches('\\\\s')",
            "message": "image must not contain whitespace",
        }])
    )]
    pub image: Option<String>,

    /// A folder of a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,

    /// The image volume's pull policy (ImageVolume mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,

    /// Where the agent container sees the skill. [default: `<mountRoot>/<name>`]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "mount_path_schema")]
    pub mount_path: Option<String>,
}

/// A git source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// `https://`, `http://` or `git://`, without credentials (they belong in
    /// `gitAuthSecretRef`).
    #[schemars(
        length(min = 1, max = 2048),
        extend("x-kubernetes-validations" = [{
            "rule": "self.matches('^(https|http|git)://[^/@\\\\s]+(/[^\\\\s]*)?$')",
            "message": "url must be https://, http:// or git://, without credentials or whitespace",
        }])
    )]
    pub url: String,

    /// A branch, a tag or a commit SHA.
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = 256))]
    pub reference: String,

    /// The skill's folder in the repository. [default: the repository root]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 1024),
        extend("x-kubernetes-validations" = [{
            "rule": "!self.startsWith('/') && !self.matches('(^|/)\\\\.\\\\.(/|$)')",
            "message": "path must be relative to the repository root, without .. segments",
        }])
    )]
    pub path: Option<String>,
}

/// A Secret in the SkillSet's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The workload the operator attaches skills to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

/// How skills reach the pod.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Delivery {
    /// ImageVolume where the cluster serves it, else InitContainer.
    #[default]
    Auto,
    /// Each skill image is an `image` volume, mounted read-only.
    ImageVolume,
    /// An init container running `skillport fetch` fills an `emptyDir`.
    InitContainer,
}

/// An image volume's pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// What Pod injection does while the SkillSet is not ready.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FailurePolicy {
    /// Admit the Pod without skills, with a warning.
    #[default]
    Ignore,
    /// Deny the Pod.
    Fail,
}

/// What the operator found and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillSetStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Each skill as resolved, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<ResolvedSkill>,
    /// The delivery in use (`ImageVolume` or `InitContainer`; never `Auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// The workload the skills are attached to now; released when `workloadRef` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
    /// InitContainer: the plan ConfigMap Pods made now mount (named by its content; older ones
    /// stay while a ReplicaSet, ControllerRevision or Pod refers to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_config_map: Option<String>,
    /// Image volumes failed for this SkillSet: from then on `Auto` delivers with the init
    /// container, and a forced `ImageVolume` stays unattached. Kept across restarts (so a new
    /// leader does not roll the workload to image volumes and back); remove it from the status
    /// to try image volumes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_volume_failure: Option<ImageVolumeFailure>,
    /// Another client removed the skills this SkillSet attached to its workload (typically the
    /// workload's own controller, writing its whole spec as kagent's does). From the second
    /// removal in a row the skills are not applied again until a wait that doubles with each
    /// removal; forgotten once the spec or the skills change, or an hour after that wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contention: Option<Contention>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Who removed a SkillSet's skills from its workload, how often, and when last.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contention {
    /// The field manager that wrote the workload last when the skills were found gone.
    #[schemars(length(max = 128))]
    pub manager: String,
    /// Removals in a row (each after an apply of ours).
    // Not `minimum: 0`: the CRD's types hold it as a float, which Helm and kustomize print
    // differently.
    #[schemars(with = "i32", extend("x-kubernetes-validations" = [{"rule": "self >= 0", "message": "removals must not be negative"}]))]
    pub removals: u32,
    /// When the skills were last found gone (RFC 3339).
    #[schemars(length(max = 64))]
    pub last_removal: String,
}

/// Why a SkillSet's image volumes failed, and where.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageVolumeFailure {
    /// `ImageVolumesUnsupported` (the API server dropped them from the workload) or
    /// `ImageVolumeMountFailed` (a node could not mount them).
    pub reason: String,
    #[schemars(length(max = 1024))]
    pub message: String,
    /// The node that could not mount them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A skill as resolved: what pods get.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedSkill {
    pub name: String,
    /// The image's digest (index or manifest), for image skills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The commit (40 hex), for git skills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The image's `org.opencontainers.image.version`, cut to [`MAX_VERSION`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub version: Option<String>,
    /// The image's `org.opencontainers.image.description`, cut to [`MAX_DESCRIPTION`]
    /// characters (the agentskills.io limit for a description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Who signed the digest, as the skill policies that cover it checked
    /// (`authority: signer`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub signers: Vec<String>,
    /// The image's tag moved to a digest the policies refuse: the digest verified before is
    /// kept, and this says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub held: Option<String>,
    /// What an `Audit` policy would have refused (the skill is delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub audit: Option<String>,
    /// The layer the image's skill is in, read from the manifests of `digest`: the fetch plan
    /// names it, so the init container downloads it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<ResolvedLayer>,
}

/// A skill image's layer, as its manifests name it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedLayer {
    #[schemars(length(max = 255))]
    pub media_type: String,
    #[schemars(length(max = 135))]
    pub digest: String,
    /// Bytes. Not `minimum: 0`, as for `removals`.
    #[schemars(with = "i64", extend("x-kubernetes-validations" = [{"rule": "self >= 0", "message": "size must not be negative"}]))]
    pub size: u64,
    /// The files are under one folder named after the skill, not at the layer's root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_folder: bool,
}

/// A status condition (the shape of `metav1.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Resolved` or `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why, in PascalCase (`ResolveFailed`, `Applied`, …).
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339.
    pub last_transition_time: String,
}

/// Condition types.
pub mod condition {
    /// Every skill has a digest (or commit).
    pub const RESOLVED: &str = "Resolved";
    /// The skills are attached where the SkillSet says.
    pub const READY: &str = "Ready";
    /// Every skill a skill policy covers satisfies it (set when a policy covers any skill).
    pub const VERIFIED: &str = "Verified";
}

/// Condition and Event reasons.
pub mod reason {
    pub const RESOLVED: &str = "Resolved";
    pub const RESOLVE_FAILED: &str = "ResolveFailed";
    pub const APPLIED: &str = "Applied";
    pub const WORKLOAD_NOT_FOUND: &str = "WorkloadNotFound";
    pub const IMAGE_VOLUMES_UNSUPPORTED: &str = "ImageVolumesUnsupported";
    pub const IMAGE_VOLUME_MOUNT_FAILED: &str = "ImageVolumeMountFailed";
    pub const TRANSLATE_FAILED: &str = "TranslateFailed";
    /// Another SkillSet's skills are on the workload already.
    pub const WORKLOAD_CLAIMED: &str = "WorkloadClaimed";
    /// The SkillSet's ServiceAccount may not do what attaching needs (RBAC).
    pub const FORBIDDEN: &str = "Forbidden";
    /// Another client (the workload's controller) keeps removing the skills: not applied again
    /// for a while.
    pub const WORKLOAD_CONTESTED: &str = "WorkloadContested";
    /// A skill's digest does not satisfy an enforcing skill policy, and no digest verified
    /// before can stand in: nothing is delivered.
    pub const NOT_VERIFIED: &str = "NotVerified";
    /// A tag moved to a digest the policies refuse; the digest verified before is kept.
    pub const HELD_BACK: &str = "HeldBack";
    /// An `Audit` policy would refuse a skill that is delivered.
    pub const POLICY_AUDIT: &str = "PolicyAudit";
    /// Every covered skill is signed as the policies require.
    pub const VERIFIED: &str = "Verified";
}

fn default_mount_root() -> String {
    DEFAULT_MOUNT_ROOT.to_owned()
}

fn default_update_interval() -> String {
    DEFAULT_UPDATE_INTERVAL.to_owned()
}

fn default_true() -> bool {
    true
}

/// The CEL rules shared by `mountPath` and `mountRoot`, each with its own message so a
/// rejection says which one caught it.
fn path_rules(field: &str) -> serde_json::Value {
    serde_json::json!([
        {"rule": "self.startsWith('/')", "message": format!("{field} must be an absolute path")},
        {"rule": "self != '/'", "message": format!("{field} must not be /")},
        {
            "rule": "!self.matches('(^|/)\\\\.\\\\.?(/|$)') && !self.contains('//') && !self.endsWith('/')",
            "message": format!("{field} must be a clean path: no . or .. segments, no //, no trailing /"),
        },
        {
            "rule": "!self.matches('^/(proc|sys|dev|run/secrets|var/run/secrets)(/|$)')",
            "message": format!("{field} must not be under /proc, /sys, /dev, /run/secrets or /var/run/secrets"),
        },
        {
            "rule": "!self.contains(',')",
            "message": format!("{field} must not contain a comma (SKILL_FOLDERS is comma-separated)"),
        },
    ])
}

fn path_schema(field: &str, description: &str) -> schemars::Schema {
    let mut value = serde_json::json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_PATH,
        "description": description,
        "x-kubernetes-validations": path_rules(field),
    });
    if field == "mountRoot" {
        value["default"] = serde_json::json!(DEFAULT_MOUNT_ROOT);
    }
    schemars::Schema::try_from(value).expect("a schema object")
}

fn mount_path_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    path_schema(
        "mountPath",
        "Where the agent container sees the skill. [default: <mountRoot>/<name>]",
    )
}

fn mount_root_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    path_schema(
        "mountRoot",
        "Where skills are mounted by default (<mountRoot>/<name>); the index is <mountRoot>/index.json.",
    )
}

// Keep the constants and the schema attributes (which must be literals) in step.
const _: () = {
    assert!(MAX_SKILL_NAME + "skill-".len() == 63);
    assert!(MAX_SKILLS == 64);
    assert!(MAX_PULL_SECRETS == 32);
    assert!(MAX_VERSION == 128 && MAX_DESCRIPTION == 1024);
};

impl SkillSetSpec {
    /// A skill's mount path: its own, or `<mountRoot>/<name>`.
    pub fn mount_path(&self, skill: &Skill) -> String {
        match &skill.mount_path {
            Some(path) => path.clone(),
            None => format!("{}/{}", self.mount_root, skill.name),
        }
    }
}
