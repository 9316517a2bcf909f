//! Which skill images the cluster trusts: the `ClusterSkillPolicy` API (cluster-scoped, what a
//! cluster admin requires everywhere) and `SkillPolicy` (namespaced: what a namespace adds for
//! itself), and judging an image digest against every policy that applies, without I/O.
//!
//! Policies only add up: every policy that applies must be satisfied, so a namespace can make
//! its own rules stricter, never looser. A policy covers the images its `images` globs match
//! (every image when it lists none) and requires `threshold` of its `authorities` (default 1)
//! to have signed them; `allowedRegistries` (when listed) refuses image skills from any other
//! registry. In `Enforce` mode a digest that fails is never delivered; in `Audit` mode it is
//! delivered and reported. Anchors: sigstore policy-controller's `ClusterImagePolicy` (globs,
//! authorities, modes) and Kyverno's `verifyImages` (N of M attestors).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use skillport_oci::{Digest, Reference};
use skillport_sign::{Candidate, Requirement};
use time::OffsetDateTime;

/// Declares the spec struct of one policy kind: both kinds share every field.
macro_rules! policy_spec {
    ($(#[$meta:meta])* $name:ident) => {
        #[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
        $(#[$meta])*
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// `Enforce` (default): an image that fails is never delivered. `Audit`: it is
            /// delivered, and reported in the SkillSet's status and Events.
            #[serde(default)]
            pub mode: PolicyMode,
            /// The images the policy covers, as globs over `registry/repository` (`*` within
            /// one path segment, `**` across segments), e.g.
            /// `registry.example.com/skills/**`. Empty: every image.
            #[serde(default)]
            #[schemars(length(max = 64))]
            pub images: Vec<String>,
            /// The registries (`host[:port]`) image skills may come from at all. Empty: any.
            #[serde(default)]
            #[schemars(length(max = 64))]
            pub allowed_registries: Vec<String>,
            /// Who must have signed the images the policy covers (cosign signatures: keys or
            /// keyless identities). Empty: no signature required.
            #[serde(default)]
            #[schemars(length(max = 16))]
            pub authorities: Vec<Authority>,
            /// How many of the authorities must have signed (N of M). Default 1.
            // A CEL rule, not `minimum`/`maximum`: the CRD's types hold those as floats, which
            // Helm and kustomize print differently.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(with = "Option<i32>", extend("x-kubernetes-validations" = [{"rule": "self >= 1 && self <= 16", "message": "threshold is 1 to 16"}]))]
            pub threshold: Option<u32>,
        }
    };
}

policy_spec! {
    /// What the cluster requires of every skill image.
    #[kube(
        group = "skillport.dev",
        version = "v1alpha1",
        kind = "ClusterSkillPolicy",
        plural = "clusterskillpolicies",
        category = "skillport",
        doc = "Which skill images may be delivered anywhere in the cluster: allowed registries and the cosign signatures required (keys or keyless identities), enforced or audited. Key material comes from Secrets or ConfigMaps in the operator's namespace.",
        printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )]
    ClusterSkillPolicySpec
}

policy_spec! {
    /// What one namespace requires of its skill images, on top of the cluster's policies.
    #[kube(
        group = "skillport.dev",
        version = "v1alpha1",
        kind = "SkillPolicy",
        plural = "skillpolicies",
        namespaced,
        category = "skillport",
        doc = "A namespace's own rules for the skill images its SkillSets deliver, added to every ClusterSkillPolicy (never loosening them). Key material comes from Secrets or ConfigMaps in the same namespace, read as the namespace's skillport ServiceAccount.",
        printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )]
    SkillPolicySpec
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PolicyMode {
    #[default]
    Enforce,
    Audit,
}

/// One signer a policy accepts: a public key, or a keyless identity with its trusted root.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.key) != has(self.keyless)", "message": "an authority is a key or a keyless identity, exactly one"}
]))]
pub struct Authority {
    /// Named in status and messages.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// A cosign public key (PEM, as in cosign.pub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Source>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<Keyless>,
}

/// A keyless signer: who the certificate must name, checked against a trusted root.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.identity) != has(self.identityRegExp)", "message": "give identity or identityRegExp, exactly one"},
    {"rule": "has(self.issuer) != has(self.issuerRegExp)", "message": "give issuer or issuerRegExp, exactly one"}
]))]
pub struct Keyless {
    /// The identity (email or URI) the signing certificate must name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub identity: Option<String>,
    /// A regular expression the certificate's identity must match (cosign's
    /// `--certificate-identity-regexp`: unanchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub identity_reg_exp: Option<String>,
    /// The OIDC issuer the certificate must name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub issuer_reg_exp: Option<String>,
    /// A sigstore trusted root (`trusted_root.json`) the certificate must chain to.
    pub trusted_root: Source,
}

/// A key of a Secret or a ConfigMap: in the operator's namespace for a ClusterSkillPolicy, in
/// the policy's own namespace for a SkillPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.secret) != has(self.configMap)", "message": "give secret or configMap, exactly one"}
]))]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub config_map: Option<String>,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A policy with its key material read and its globs compiled: what [`Policies::judge`] uses.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// `ClusterSkillPolicy "corp"` or `SkillPolicy "team-a/strict"`, for messages.
    pub title: String,
    pub mode: PolicyMode,
    /// The globs as written, and compiled.
    pub images: Vec<(String, regex::Regex)>,
    pub allowed_registries: Vec<String>,
    pub authorities: Vec<(String, Requirement)>,
    pub threshold: usize,
    /// Why its key material could not be read: an `Enforce` policy then refuses every image
    /// it covers (fail closed); an `Audit` one reports it.
    pub broken: Option<String>,
}

impl LoadedPolicy {
    /// `spec` of `title`, its authorities' key material already read by the caller into
    /// `authorities` (or the reason it could not be, in `broken`).
    pub fn new(
        title: String,
        spec: &ClusterSkillPolicySpec,
        authorities: Vec<(String, Requirement)>,
        broken: Option<String>,
    ) -> LoadedPolicy {
        let mut broken = broken;
        let images = spec
            .images
            .iter()
            .filter_map(|glob| match glob_regex(glob) {
                Ok(regex) => Some((glob.clone(), regex)),
                Err(err) => {
                    broken.get_or_insert(format!("images glob {glob:?}: {err}"));
                    None
                }
            })
            .collect();
        let threshold = spec.threshold.map_or(1, |n| n as usize).max(1);
        if !authorities.is_empty() && threshold > authorities.len() {
            broken.get_or_insert(format!(
                "threshold {threshold} is more than its {} authorities",
                authorities.len()
            ));
        }
        LoadedPolicy {
            title,
            mode: spec.mode,
            images,
            allowed_registries: spec.allowed_registries.clone(),
            authorities,
            threshold,
            broken,
        }
    }

    fn covers(&self, repository: &str) -> bool {
        self.images.is_empty()
            || self
                .images
                .iter()
                .any(|(_, regex)| regex.is_match(repository))
    }

    fn wants_signatures(&self, repository: &str) -> bool {
        (!self.authorities.is_empty() || self.broken.is_some()) && self.covers(repository)
    }
}

impl From<&SkillPolicySpec> for ClusterSkillPolicySpec {
    fn from(spec: &SkillPolicySpec) -> ClusterSkillPolicySpec {
        ClusterSkillPolicySpec {
            mode: spec.mode,
            images: spec.images.clone(),
            allowed_registries: spec.allowed_registries.clone(),
            authorities: spec.authorities.clone(),
            threshold: spec.threshold,
        }
    }
}

/// Every policy that applies to one SkillSet.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub list: Vec<LoadedPolicy>,
    /// What identifies this set of policies and their material, for caching verdicts.
    pub fingerprint: String,
}

/// What the policies say about one image digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Who signed, as the policies checked: `authority: signer`, sorted, de-duplicated.
    pub signers: Vec<String>,
    /// Why `Enforce` policies refuse it.
    pub refused: Vec<String>,
    /// Why `Audit` policies would.
    pub audited: Vec<String>,
}

impl Policies {
    /// What the policies say about a git skill: one that covers every image (no `images`
    /// globs) and requires signatures refuses it, as git carries no cosign signature.
    #[must_use]
    pub fn judge_git(&self) -> Verdict {
        let mut verdict = Verdict::default();
        for policy in self
            .list
            .iter()
            .filter(|p| p.images.is_empty() && (!p.authorities.is_empty() || p.broken.is_some()))
        {
            let finding = format!(
                "git skills carry no signature, and {} requires signatures of every skill \
                 (list the image globs it covers in `images` to leave git skills out)",
                policy.title
            );
            match policy.mode {
                PolicyMode::Enforce => verdict.refused.push(finding),
                PolicyMode::Audit => verdict.audited.push(finding),
            }
        }
        verdict
    }

    /// Whether the image's signatures must be read (some policy covering it requires any).
    #[must_use]
    pub fn wants_signatures(&self, image: &Reference) -> bool {
        let repository = repository_of(image);
        self.list.iter().any(|p| p.wants_signatures(&repository))
    }

    /// Judges `digest` of `image` against every policy, given the signatures read (`None`
    /// when none were needed), at `now`.
    #[must_use]
    pub fn judge(
        &self,
        image: &Reference,
        digest: &Digest,
        signatures: Option<(&[Candidate], &[String])>,
        now: OffsetDateTime,
    ) -> Verdict {
        let repository = repository_of(image);
        let registry = registry_of(image);
        let mut verdict = Verdict::default();
        for policy in &self.list {
            let mut findings = Vec::new();
            if !allowed(&policy.allowed_registries, &registry) {
                findings.push(format!(
                    "registry {registry} is not allowed by {} (allowed: {})",
                    policy.title,
                    policy.allowed_registries.join(", ")
                ));
            }
            if let Some(broken) = &policy.broken
                && policy.covers(&repository)
            {
                findings.push(format!("{} cannot be checked: {broken}", policy.title));
            } else if policy.wants_signatures(&repository) {
                let (candidates, unreadable) = signatures.unwrap_or((&[], &[]));
                let signed = signed_by(policy, candidates, unreadable, digest, now);
                match signed {
                    Ok(signers) => verdict.signers.extend(signers),
                    Err(why) => findings.push(why),
                }
            }
            match policy.mode {
                PolicyMode::Enforce => verdict.refused.extend(findings),
                PolicyMode::Audit => verdict.audited.extend(findings),
            }
        }
        verdict.signers.sort();
        verdict.signers.dedup();
        // What status holds (`maxItems`).
        verdict.signers.truncate(32);
        verdict
    }
}

/// The signers of `policy`'s authorities that signed `digest`, when at least its threshold
/// did; else why not (the first reasons, bounded).
fn signed_by(
    policy: &LoadedPolicy,
    candidates: &[Candidate],
    unreadable: &[String],
    digest: &Digest,
    now: OffsetDateTime,
) -> Result<Vec<String>, String> {
    let mut signers = Vec::new();
    let mut reasons: Vec<String> = unreadable.to_vec();
    for (name, requirement) in &policy.authorities {
        let outcome = skillport_sign::evaluate(candidates, Vec::new(), digest, requirement, now);
        match outcome.verified.first() {
            Some(verified) => signers.push(signer_entry(
                &policy.title,
                name,
                &verified.signer.to_string(),
            )),
            None => reasons.extend(outcome.refused),
        }
    }
    if signers.len() >= policy.threshold {
        return Ok(signers);
    }
    let names: Vec<&str> = policy.authorities.iter().map(|(n, _)| n.as_str()).collect();
    let found = if candidates.is_empty() && unreadable.is_empty() {
        "it has no signature".to_owned()
    } else {
        reasons.truncate(3);
        reasons.join("; ")
    };
    Err(format!(
        "{digest} is not signed as {} requires ({} of {}): {found}",
        policy.title,
        policy.threshold,
        names.join(", ")
    ))
}

/// What the webhook checks when it injects a SkillSet's skills into a Pod, without I/O: every
/// `Enforce` policy (`(title, spec)`) covering a skill's `image` allows its registry and finds
/// at least its threshold of its authorities among the signers status records for the skill
/// (the operator verified them). Catches a policy made or tightened since the SkillSet was
/// resolved; the signatures themselves are the operator's to check. `None`: nothing unmet.
#[must_use]
pub fn unmet_at_admission(
    policies: &[(String, &ClusterSkillPolicySpec)],
    image: &Reference,
    signers: &[String],
) -> Option<String> {
    let repository = repository_of(image);
    let registry = registry_of(image);
    for (title, spec) in policies {
        if spec.mode != PolicyMode::Enforce {
            continue;
        }
        if !allowed(&spec.allowed_registries, &registry) {
            return Some(format!("registry {registry} is not allowed by {title}"));
        }
        let covers = spec.images.is_empty()
            || spec
                .images
                .iter()
                .any(|glob| glob_regex(glob).map_or(true, |regex| regex.is_match(&repository)));
        if !covers || spec.authorities.is_empty() {
            continue;
        }
        let signed = spec
            .authorities
            .iter()
            .filter(|authority| {
                let prefix = signer_entry(title, &authority.name, "");
                signers.iter().any(|signer| signer.starts_with(&prefix))
            })
            .count();
        let threshold = spec.threshold.map_or(1, |n| n as usize).max(1);
        if signed < threshold {
            return Some(format!(
                "{image} is not recorded as signed as {title} requires ({threshold} of its \
                 authorities); the operator has not verified it under this policy yet"
            ));
        }
    }
    None
}

/// The webhook's check for a git skill: no enforcing policy requires signatures of every skill.
#[must_use]
pub fn git_unmet_at_admission(policies: &[(String, &ClusterSkillPolicySpec)]) -> Option<String> {
    policies
        .iter()
        .find(|(_, spec)| {
            spec.mode == PolicyMode::Enforce
                && spec.images.is_empty()
                && !spec.authorities.is_empty()
        })
        .map(|(title, _)| {
            format!("git skills carry no signature, and {title} requires signatures of every skill")
        })
}

/// How status records a signer: the policy and authority that accepted it, then who signed,
/// so an authority of one policy never counts for another of the same name.
fn signer_entry(policy: &str, authority: &str, signer: &str) -> String {
    format!("{policy}, authority {authority:?}: {signer}")
}

/// `registry/repository`, as the globs read it: the registry as [`registry_of`] names it, and
/// Docker Hub's official images under `library/`, so no spelling of a reference escapes a glob.
fn repository_of(image: &Reference) -> String {
    let registry = registry_of(image);
    let repository = image.repository();
    if registry == "docker.io" && !repository.contains('/') {
        format!("docker.io/library/{repository}")
    } else {
        format!("{registry}/{repository}")
    }
}

/// The registry of `image` as policies compare it: lower case, without the default HTTPS port,
/// Docker Hub's other names as `docker.io` (`docker.io` when the reference names none).
fn registry_of(image: &Reference) -> String {
    normal_registry(image.registry().unwrap_or("docker.io"))
}

fn normal_registry(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix(":443").unwrap_or(&host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        other => other.to_owned(),
    }
}

/// Whether `registry` is among `allowed` (both as [`normal_registry`] writes them).
fn allowed(allowed: &[String], registry: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|r| normal_registry(r) == registry)
}

/// A glob over `registry/repository` as an anchored regex: `**` any characters, `*` any
/// within one path segment, everything else literal.
fn glob_regex(glob: &str) -> Result<regex::Regex, regex::Error> {
    let mut pattern = String::from("^");
    let mut rest = glob;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("**") {
            pattern.push_str(".*");
            rest = after;
        } else if let Some(after) = rest.strip_prefix('*') {
            pattern.push_str("[^/]*");
            rest = after;
        } else {
            let literal = rest.chars().next().expect("not empty");
            pattern.push_str(&regex::escape(&literal.to_string()));
            rest = &rest[literal.len_utf8()..];
        }
    }
    pattern.push('$');
    regex::Regex::new(&pattern)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skillport_sign::PrivateKey;

    fn spec(value: serde_json::Value) -> ClusterSkillPolicySpec {
        serde_json::from_value(value).unwrap()
    }

    fn image(text: &str) -> Reference {
        text.parse().unwrap()
    }

    fn signed(key: &PrivateKey, digest: &Digest) -> Vec<Candidate> {
        skillport_sign::bundle::read_bundle(
            &skillport_sign::bundle::sign(key, digest),
            "bundle",
            None,
        )
        .unwrap()
    }

    fn key_authority(name: &str, key: &PrivateKey) -> (String, Requirement) {
        (
            name.to_owned(),
            Requirement::Key {
                key: key.public_key(),
                name: name.to_owned(),
            },
        )
    }

    #[test]
    fn admission_finds_what_status_does_not_record() {
        let corp = spec(serde_json::json!({"images": ["r.io/**"], "authorities": [
            {"name": "release", "key": {"secret": "k", "key": "a"}}]}));
        let audit = spec(serde_json::json!({"mode": "Audit", "allowedRegistries": ["x.io"]}));
        let policies = vec![
            ("ClusterSkillPolicy \"corp\"".to_owned(), &corp),
            ("audit".to_owned(), &audit),
        ];
        let pdf = image(
            "r.io/skills/pdf@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        );
        let unmet = unmet_at_admission(&policies, &pdf, &[]).unwrap();
        assert!(
            unmet.contains("ClusterSkillPolicy \"corp\" requires"),
            "{unmet}"
        );
        assert_eq!(
            unmet_at_admission(
                &policies,
                &pdf,
                &["ClusterSkillPolicy \"corp\", authority \"release\": key release".into()]
            ),
            None
        );
        let namesake = "SkillPolicy \"t/own\", authority \"release\": key release".to_owned();
        assert!(
            unmet_at_admission(&policies, &pdf, &[namesake]).is_some(),
            "another policy's authority of the same name counts"
        );
        assert_eq!(
            unmet_at_admission(&policies, &image("s.io/pdf:1"), &[]),
            None,
            "not covered, audit only"
        );
    }

    #[test]
    fn no_spelling_of_a_reference_escapes_a_glob_or_the_allowed_registries() {
        let corp = spec(
            serde_json::json!({"images": ["r.io/skills/**", "docker.io/library/*"],
            "allowedRegistries": ["R.io", "docker.io"],
            "authorities": [{"name": "release", "key": {"secret": "k", "key": "a"}}]}),
        );
        let policies = vec![("corp".to_owned(), &corp)];
        for text in [
            "R.IO/skills/pdf:1",
            "r.io:443/skills/pdf:1",
            "alpine:3",
            "index.docker.io/alpine:3",
        ] {
            let unmet = unmet_at_admission(&policies, &image(text), &[]);
            assert!(
                unmet.is_some_and(|why| why.contains("requires")),
                "{text} escaped"
            );
        }
        assert!(
            unmet_at_admission(&policies, &image("s.io/x:1"), &[])
                .unwrap()
                .contains("not allowed")
        );
    }

    #[test]
    fn git_skills_are_refused_by_a_policy_over_every_image_only() {
        let key = PrivateKey::generate();
        let every = LoadedPolicy::new(
            "every".into(),
            &spec(serde_json::json!({})),
            vec![key_authority("release", &key)],
            None,
        );
        let some = LoadedPolicy::new(
            "some".into(),
            &spec(serde_json::json!({"images": ["r.io/**"]})),
            vec![key_authority("release", &key)],
            None,
        );
        let refused = Policies {
            list: vec![every],
            fingerprint: String::new(),
        }
        .judge_git();
        assert!(
            refused.refused[0].contains("git skills carry no signature"),
            "{refused:?}"
        );
        assert_eq!(
            Policies {
                list: vec![some],
                fingerprint: String::new()
            }
            .judge_git(),
            Verdict::default()
        );
    }

    #[test]
    fn globs_match_by_segment_and_across() {
        let one = glob_regex("r.io/skills/*").unwrap();
        assert!(one.is_match("r.io/skills/pdf"));
        assert!(!one.is_match("r.io/skills/team/pdf"));
        assert!(!one.is_match("r.io/skillsX/pdf"));
        let any = glob_regex("r.io/**").unwrap();
        assert!(any.is_match("r.io/skills/team/pdf"));
        assert!(!any.is_match("s.io/skills"));
    }

    #[test]
    fn an_enforced_policy_refuses_unsigned_and_names_the_digest_and_the_rule() {
        let release = PrivateKey::generate();
        let policy = LoadedPolicy::new(
            "ClusterSkillPolicy \"corp\"".into(),
            &spec(serde_json::json!({"images": ["r.io/skills/**"]})),
            vec![key_authority("release", &release)],
            None,
        );
        let policies = Policies {
            list: vec![policy],
            fingerprint: String::new(),
        };
        let digest = Digest::sha256(b"x");
        let covered = image("r.io/skills/pdf:1");
        assert!(policies.wants_signatures(&covered));
        assert!(!policies.wants_signatures(&image("other.io/pdf:1")));
        let now = OffsetDateTime::now_utc();
        let verdict = policies.judge(&covered, &digest, Some((&[], &[])), now);
        assert_eq!(
            verdict.refused,
            vec![format!(
                "{digest} is not signed as ClusterSkillPolicy \"corp\" requires (1 of release): it has no signature"
            )]
        );
        let candidates = signed(&release, &digest);
        let verdict = policies.judge(&covered, &digest, Some((&candidates, &[])), now);
        assert!(verdict.refused.is_empty(), "{verdict:?}");
        assert_eq!(
            verdict.signers,
            vec!["ClusterSkillPolicy \"corp\", authority \"release\": key release".to_owned()]
        );
        let stranger = signed(&PrivateKey::generate(), &digest);
        let verdict = policies.judge(&covered, &digest, Some((&stranger, &[])), now);
        assert!(
            verdict.refused[0].contains("not signed with the key release"),
            "{verdict:?}"
        );
    }

    #[test]
    fn two_of_three_registries_audit_and_broken_policies() {
        let (a, b, c) = (
            PrivateKey::generate(),
            PrivateKey::generate(),
            PrivateKey::generate(),
        );
        let digest = Digest::sha256(b"x");
        let now = OffsetDateTime::now_utc();
        let two_of_three = LoadedPolicy::new(
            "SkillPolicy \"t/strict\"".into(),
            &spec(serde_json::json!({"threshold": 2, "authorities": [
                {"name": "a", "key": {"secret": "k", "key": "a"}},
                {"name": "b", "key": {"secret": "k", "key": "b"}},
                {"name": "c", "key": {"secret": "k", "key": "c"}}]})),
            vec![
                key_authority("a", &a),
                key_authority("b", &b),
                key_authority("c", &c),
            ],
            None,
        );
        let audit_registries = LoadedPolicy::new(
            "ClusterSkillPolicy \"registries\"".into(),
            &spec(serde_json::json!({"mode": "Audit", "allowedRegistries": ["r.io"]})),
            Vec::new(),
            None,
        );
        let policies = Policies {
            list: vec![two_of_three, audit_registries],
            fingerprint: String::new(),
        };
        let mut candidates = signed(&a, &digest);
        let one = policies.judge(&image("s.io/x:1"), &digest, Some((&candidates, &[])), now);
        assert!(one.refused[0].contains("(2 of a, b, c)"), "{one:?}");
        assert_eq!(
            one.audited,
            vec![
                "registry s.io is not allowed by ClusterSkillPolicy \"registries\" (allowed: r.io)"
                    .to_owned()
            ]
        );
        candidates.extend(signed(&c, &digest));
        let two = policies.judge(&image("r.io/x:1"), &digest, Some((&candidates, &[])), now);
        assert!(two.refused.is_empty() && two.audited.is_empty(), "{two:?}");
        assert_eq!(
            two.signers,
            vec![
                "SkillPolicy \"t/strict\", authority \"a\": key a".to_owned(),
                "SkillPolicy \"t/strict\", authority \"c\": key c".to_owned()
            ]
        );

        let broken = LoadedPolicy::new(
            "ClusterSkillPolicy \"corp\"".into(),
            &spec(serde_json::json!({})),
            Vec::new(),
            Some("Secret \"keys\" has no key \"cosign.pub\"".into()),
        );
        let policies = Policies {
            list: vec![broken],
            fingerprint: String::new(),
        };
        assert!(policies.wants_signatures(&image("r.io/x:1")));
        let closed = policies.judge(&image("r.io/x:1"), &digest, Some((&candidates, &[])), now);
        assert!(
            closed.refused[0].contains("cannot be checked"),
            "{closed:?}"
        );
    }
}
