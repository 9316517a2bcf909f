//! Names of everything `translate` adds to a pod, in one place.
//!
//! Volume and container names are DNS labels (at most 63 characters). None is made from a
//! Secret's name, which may hold dots or be 253 characters long: pull secrets are numbered by
//! their place in the SkillSet. Skill volumes are `skill-<name>`, which is why skill names stop at
//! 57 characters (the CRD says so). Everything else starts with `skillport-`, which no
//! `skill-<name>` does.
//!
//! What is pod-wide (volumes, init containers, annotations) is named per SkillSet by
//! [`PodNames`]: a SkillSet on the first container (no `spec.container`) uses the plain names,
//! one that names its container adds it after `--` (`skillport-skills--proxy`,
//! `skill-pdf--proxy`), which no skill or container name holds. One SkillSet per container of a
//! workload, so two SkillSets on different containers never share a pod-wide name, and
//! server-side apply keeps both (each under its own field manager).

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

/// The prefix of a skill's image volume.
pub const SKILL_VOLUME_PREFIX: &str = "skill-";

/// Where the fetch container sees the skills folder.
pub const FETCH_INTO: &str = "/skills";
/// Where the ServiceAccount admission plugin mounts a pod's API token, unless a container
/// already mounts something there.
pub const SERVICE_ACCOUNT_TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Where the plan ConfigMap is mounted.
pub const PLAN_DIR: &str = "/etc/skillport";
/// The plan's key in the ConfigMap (and file name under [`PLAN_DIR`]).
pub const PLAN_KEY: &str = "plan.json";
/// The CA bundle's key in the ConfigMap.
pub const CA_KEY: &str = "ca.crt";
/// Where pull secret `i` is mounted: `<PULL_SECRETS_DIR>/<i>`.
pub const PULL_SECRETS_DIR: &str = "/var/run/skillport/pull-secrets";
/// The key of a `kubernetes.io/dockerconfigjson` Secret.
pub const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";
/// Where the git credentials Secret is mounted.
pub const GIT_DIR: &str = "/var/run/skillport/git";
/// Where the verify container writes the index.
pub const INDEX_DIR: &str = "/var/run/skillport/index";
/// The index file `fetch` and `verify` write.
pub const INDEX_FILE: &str = skillport_fetch::plan::INDEX_FILE;

/// Pod template annotation (and workload annotation): a JSON array of the skill names
/// (`<this>--<container>` for a SkillSet that names its container).
pub const SKILLS_ANNOTATION: &str = "skillport.dev/skills";
/// Pod template annotation: a digest of what was delivered and how; pods roll when it changes
/// (`<this>--<container>` for a SkillSet that names its container).
pub const SKILLS_DIGEST_ANNOTATION: &str = "skillport.dev/skills-digest";
/// The agent container's list of skill folders (comma-separated mount paths).
pub const SKILL_FOLDERS_ENV: &str = "SKILL_FOLDERS";
/// The agent container's path of the index.
pub const INDEX_ENV: &str = "SKILLPORT_INDEX";

/// Between a name and the container a SkillSet names. Neither skill names nor `spec.container`
/// may hold it (the CRD and translate refuse them), so a name with a container never equals one
/// without, nor one with another container.
pub const SEPARATOR: &str = "--";

/// The pod-wide names of one SkillSet: the plain ones, or each with `--<container>` for a
/// SkillSet that names its container. A name that would pass 63 characters is cut and given a
/// hash of the whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodNames {
    /// Empty, or `--<container>`.
    suffix: String,
}

impl PodNames {
    /// The names of a SkillSet whose `spec.container` is `container`.
    pub fn new(container: Option<&str>) -> PodNames {
        PodNames {
            suffix: container
                .map(|c| format!("{SEPARATOR}{c}"))
                .unwrap_or_default(),
        }
    }

    /// The names of SkillSet `spec`.
    pub fn of(spec: &crate::api::SkillSetSpec) -> PodNames {
        PodNames::new(spec.container.as_deref())
    }

    fn name(&self, base: &str) -> String {
        fit(format!("{base}{}", self.suffix))
    }

    /// A skill's image volume.
    pub fn skill_volume(&self, skill: &str) -> String {
        self.name(&format!("{SKILL_VOLUME_PREFIX}{skill}"))
    }

    /// The `emptyDir` that `skillport fetch` fills (InitContainer).
    pub fn skills_volume(&self) -> String {
        self.name("skillport-skills")
    }

    /// The `emptyDir` the verify container writes the index into (ImageVolume).
    pub fn index_volume(&self) -> String {
        self.name("skillport-index")
    }

    /// The plan ConfigMap's volume (InitContainer).
    pub fn plan_volume(&self) -> String {
        self.name("skillport-plan")
    }

    /// The git credentials Secret's volume (InitContainer).
    pub fn git_volume(&self) -> String {
        self.name("skillport-git")
    }

    /// The empty folder laid over the ServiceAccount token's path in the fetch container, which
    /// has no use for the token (a pod's token is mounted in every container that has nothing
    /// there).
    pub fn no_token_volume(&self) -> String {
        self.name("skillport-no-token")
    }

    /// Pull secret number `index`'s volume.
    pub fn pull_secret_volume(&self, index: usize) -> String {
        self.name(&format!("skillport-pull-{index}"))
    }

    /// The fetch init container.
    pub fn fetch_container(&self) -> String {
        self.name("skillport-fetch")
    }

    /// The verify init container.
    pub fn verify_container(&self) -> String {
        self.name("skillport-verify")
    }

    /// The pod template annotation with the skill names.
    pub fn skills_annotation(&self) -> String {
        format!("skillport.dev/{}", self.name("skills"))
    }

    /// The pod template annotation with the skills' digest.
    pub fn skills_digest_annotation(&self) -> String {
        format!("skillport.dev/{}", self.name("skills-digest"))
    }
}

/// `name`, or when it passes 63 characters (a DNS label, an annotation's name) its first part
/// with a hash of the whole.
fn fit(name: String) -> String {
    const MAX: usize = 63;
    if name.len() <= MAX {
        return name;
    }
    let hash = short_hash(name.as_bytes());
    // Names are ASCII: any byte is a boundary.
    let kept = name[..MAX - 1 - hash.len()].trim_end_matches(['-', '.']);
    format!("{kept}-{hash}")
}

/// Where pull secret number `index` is mounted.
pub fn pull_secret_dir(index: usize) -> String {
    format!("{PULL_SECRETS_DIR}/{index}")
}

/// The plan ConfigMap of SkillSet `skill_set` with `data`: `<skill_set>-skillport-plan-<hash>`,
/// named by its content as kustomize names generated ConfigMaps. A new plan is a new ConfigMap,
/// so Pods of an older template (a scale-up, an eviction, a rollback) still read the plan they
/// were made with. The SkillSet's name is shortened with a hash of it when the whole would pass
/// the 253 characters of an object name.
pub fn plan_config_map(skill_set: &str, data: &BTreeMap<String, String>) -> String {
    let content = short_hash(
        serde_json::to_string(data)
            .expect("strings serialise")
            .as_bytes(),
    );
    let tail = format!("-skillport-plan-{content}");
    if skill_set.len() + tail.len() <= 253 {
        return format!("{skill_set}{tail}");
    }
    let hash = short_hash(skill_set.as_bytes());
    // 253 = kept + "-" + 10 hex + tail; object names are ASCII, so any byte is a boundary.
    let kept = skill_set[..253 - 1 - hash.len() - tail.len()].trim_end_matches(['-', '.']);
    format!("{kept}-{hash}{tail}")
}

/// 10 hex digits of the SHA-256 of `bytes`.
fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_a_container_never_equal_names_without_or_with_another() {
        let plain = PodNames::new(None);
        let proxy = PodNames::new(Some("proxy"));
        let digest = PodNames::new(Some("digest"));
        assert_eq!(proxy.skill_volume("pdf"), "skill-pdf--proxy");
        assert_ne!(proxy.skill_volume("pdf"), plain.skill_volume("pdf-proxy"));
        assert_ne!(
            digest.skills_annotation(),
            plain.skills_digest_annotation(),
            "container \"digest\" and the plain digest annotation"
        );
        assert_eq!(proxy.fetch_container(), "skillport-fetch--proxy");
    }

    #[test]
    fn long_names_are_cut_with_a_hash_and_stay_dns_labels() {
        let long = PodNames::new(Some(&"c".repeat(63)));
        for name in [
            long.skill_volume(&"s".repeat(57)),
            long.skills_volume(),
            long.fetch_container(),
        ] {
            assert!(name.len() <= 63, "{name}");
            assert!(!name.ends_with('-'), "{name}");
        }
        assert_ne!(long.skill_volume("a"), long.skill_volume("b"));
        let annotation = long.skills_digest_annotation();
        let (_, name) = annotation.split_once('/').unwrap();
        assert!(name.len() <= 63, "{annotation}");
    }
}
