//! The fetch plan: what the operator asks `skillport fetch` to put into a pod's skill folder.
//!
//! The operator writes it as JSON into a ConfigMap (`plan.json`); the init container reads it
//! back with [`FetchPlan::parse`]. The same types serve both sides, so what the operator writes
//! is exactly what the fetcher reads: fields are camelCase, optional fields are left out when
//! empty, lists keep their order, and unknown fields are refused (a typo must not silently
//! drop a skill or a pull secret). `docs/plan.schema.json` describes the same shape as a JSON
//! Schema, and `docs/fetch.md` documents it.
//!
//! ```json
//! {
//!   "apiVersion": "skillport.dev/v1alpha1",
//!   "kind": "FetchPlan",
//!   "skills": [
//!     {"name": "pdf-tools", "image": "registry.example.com/skills/pdf-tools:1.2.0@sha256:…"},
//!     {"name": "code-review", "target": "review",
//!      "git": {"url": "https://git.example.com/org/skills.git", "ref": "v1.0.0",
//!              "path": "skills/code-review"}}
//!   ],
//!   "pullSecrets": [{"name": "artifactory",
//!                    "path": "/var/run/skillport/pull-secrets/artifactory/.dockerconfigjson"}],
//!   "gitCredentials": {"name": "git-token", "path": "/var/run/skillport/git/credentials"},
//!   "insecureRegistries": ["registry.internal:5000"],
//!   "caFiles": ["/var/run/skillport/ca/ca.crt"]
//! }
//! ```
//!
//! Validation ([`FetchPlan::validate`]) checks everything that can be checked without I/O and
//! reports every problem at once, each naming its skill or secret.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use skillport_oci::Reference;

/// The plan's `apiVersion`.
pub const API_VERSION: &str = "skillport.dev/v1alpha1";
/// The plan's `kind`.
pub const KIND: &str = "FetchPlan";
/// The file `skillport fetch` writes next to the skill folders; no skill may be called that.
pub const INDEX_FILE: &str = "index.json";

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchPlan {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The skills, in the order the index lists them.
    pub skills: Vec<PlannedSkill>,
    /// Mounted `kubernetes.io/dockerconfigjson` secrets, consulted in this order: the first
    /// with an entry for a registry wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<CredentialFile>,
    /// A mounted secret with the credentials for every git source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_credentials: Option<CredentialFile>,
    /// Registries (`host[:port]`) reached without TLS verification, or over plain HTTP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM files) trusted for registries, on top of the system's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_files: Vec<String>,
}

/// One skill of the plan: its name, exactly one source, and the folder it goes into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlannedSkill {
    /// A DNS label (`a-z`, `0-9`, `-`, at most 63): it names the skill in every message.
    pub name: String,
    /// An image reference naming its registry, ideally pinned (`…@sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A folder of a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSpec>,
    /// The folder under `--into`: one path component. [default: the name]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The layer the skill's files are in, as the operator read it from the pinned image's
    /// manifests when it resolved the image: with it, `fetch` downloads that blob alone, one
    /// request instead of three (index, manifest, layer). Only with an `image` pinned by digest.
    /// Not part of `plan.json` (a `skillport` older than the operator would refuse the plan):
    /// it travels in [`LAYERS_FILE`] beside it, which older ones do not read.
    #[serde(skip)]
    pub layer: Option<PlannedLayer>,
}

/// The file beside the plan that names each image skill's layer: [`FetchPlan::layers_json`]
/// writes it, [`FetchPlan::read`] applies it.
pub const LAYERS_FILE: &str = "layers.json";

/// The layers file: by skill name, the pinned image each layer belongs to and the layer.
/// Unknown fields are ignored, so that later operators may add to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayersFile {
    layers: BTreeMap<String, ImageLayer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageLayer {
    /// The skill's `image`, exactly as the plan has it: a layer applies to that image only.
    image: String,
    #[serde(flatten)]
    layer: PlannedLayer,
}

/// A skill image's layer: what `fetch` downloads when the plan names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedLayer {
    /// A tar layer's media type (`application/vnd.oci.image.layer.v1.tar+gzip`, …).
    pub media_type: String,
    /// `sha256:<hex>`: the download is checked against it.
    pub digest: String,
    /// Bytes, as the manifest declares them.
    pub size: u64,
    /// The files are under one folder named after the skill (the agentskills.io artifact
    /// layout), not at the layer's root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_folder: bool,
}

/// A git source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSpec {
    /// The repository URL, without credentials (they belong in `gitCredentials`).
    pub url: String,
    /// A branch, a tag or a commit SHA.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The skill's folder inside the repository. [default: the repository root]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A mounted credentials file and the name messages call it by (the Secret's name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialFile {
    pub name: String,
    pub path: String,
}

/// Where a skill comes from; serialised as `{"image": "…"}` or `{"git": {…}}`, the same
/// shape as in the plan (the index records it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Source {
    Image(String),
    Git(GitSpec),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Image(reference) => f.write_str(reference),
            Source::Git(git) => {
                write!(f, "{} {}", git.url, git.reference)?;
                if let Some(path) = &git.path {
                    write!(f, " ({path})")?;
                }
                Ok(())
            }
        }
    }
}

/// One thing wrong with a plan, and which skill or secret it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `skill "pdf-tools"`, `pull secret "ecr"`, `skills[3]`, or nothing for the plan itself.
    pub subject: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Some(subject) => write!(f, "{subject}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why a plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read the plan {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the plan is not valid JSON: {reason}")]
    Syntax { reason: String },
    /// Every problem found, in plan order.
    #[error("{}", summary(problems))]
    Invalid { problems: Vec<Problem> },
}

fn summary(problems: &[Problem]) -> String {
    let shown: Vec<String> = problems.iter().map(Problem::to_string).collect();
    match shown.len() {
        0 => "invalid plan".to_owned(),
        1 => format!("invalid plan: {}", shown[0]),
        n => format!("invalid plan ({n} problems): {}", shown.join("; ")),
    }
}

impl PlanError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            PlanError::Read { .. } => {
                Some("mount the plan ConfigMap and pass its file with --plan".into())
            }
            PlanError::Syntax { .. } | PlanError::Invalid { .. } => Some(format!(
                "the plan is a {KIND} ({API_VERSION}); docs/fetch.md and docs/plan.schema.json \
                 describe it"
            )),
        }
    }
}

impl FetchPlan {
    /// An empty plan of the current version.
    pub fn new() -> FetchPlan {
        FetchPlan {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            skills: Vec::new(),
            pull_secrets: Vec::new(),
            git_credentials: None,
            insecure_registries: Vec::new(),
            ca_files: Vec::new(),
        }
    }

    /// Reads and validates the plan file at `path`, with the layers of [`LAYERS_FILE`] beside
    /// it when there is one (what cannot be used of it is a warning in the log).
    pub fn read(path: &Path) -> Result<FetchPlan, PlanError> {
        let bytes = std::fs::read(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut plan = FetchPlan::parse(&bytes)?;
        let layers = path.with_file_name(LAYERS_FILE);
        if layers.is_file() {
            let warnings = match std::fs::read(&layers) {
                Ok(bytes) => plan.apply_layers(&bytes),
                Err(err) => vec![format!("{LAYERS_FILE} is not read: {err}")],
            };
            for warning in warnings {
                tracing::warn!("{warning}");
            }
        }
        Ok(plan)
    }

    /// Gives each image skill the layer [`LAYERS_FILE`]'s `bytes` name for it, when they name
    /// it for the skill's very `image`; a layer for another image or skill is left out. The
    /// file only saves requests: what this skillport cannot use (a media type it does not
    /// know, say from a newer operator) is left out with a warning, and the skill's manifests
    /// are read instead. Returns the warnings.
    pub fn apply_layers(&mut self, bytes: &[u8]) -> Vec<String> {
        let file: LayersFile = match serde_json::from_slice(bytes) {
            Ok(file) => file,
            Err(err) => return vec![format!("{LAYERS_FILE} is not read: {err}")],
        };
        let mut warnings = Vec::new();
        for skill in &mut self.skills {
            let (Some(image), Some(named)) = (&skill.image, file.layers.get(&skill.name)) else {
                continue;
            };
            if named.image != *image {
                tracing::debug!(skill = %skill.name, "{LAYERS_FILE} names a layer of another image");
                continue;
            }
            let found = check_layer(image, &named.layer);
            if found.is_empty() {
                skill.layer = Some(named.layer.clone());
            }
            warnings.extend(found.into_iter().map(|message| {
                format!(
                    "{LAYERS_FILE}: skill {:?}: {message}; its manifests are read instead",
                    skill.name
                )
            }));
        }
        warnings
    }

    /// [`LAYERS_FILE`] for the skills that have a layer, as the operator writes it beside the
    /// plan; `None` when none has.
    pub fn layers_json(&self) -> Option<String> {
        let layers: BTreeMap<String, ImageLayer> = self
            .skills
            .iter()
            .filter_map(|skill| {
                let layer = ImageLayer {
                    image: skill.image.clone()?,
                    layer: skill.layer.clone()?,
                };
                Some((skill.name.clone(), layer))
            })
            .collect();
        if layers.is_empty() {
            return None;
        }
        let mut text =
            serde_json::to_string_pretty(&LayersFile { layers }).expect("layers serialise");
        text.push('\n');
        Some(text)
    }

    /// Parses and validates a plan. Every problem is reported, each naming its skill.
    pub fn parse(bytes: &[u8]) -> Result<FetchPlan, PlanError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|err| PlanError::Syntax {
            reason: err.to_string(),
        })?;
        let Value::Object(mut root) = value else {
            return Err(invalid(None, "the plan must be a JSON object"));
        };
        // Skills and pull secrets are read one by one, so that a wrong field names its skill or
        // secret; the rest of the plan is read with them left out.
        let skills = root.insert("skills".into(), Value::Array(Vec::new()));
        let secrets = root.remove("pullSecrets");
        let mut problems = Vec::new();
        let mut plan = match serde_json::from_value::<FetchPlan>(Value::Object(root)) {
            Ok(plan) => Some(plan),
            Err(err) => {
                problems.push(problem(None, err.to_string()));
                None
            }
        };
        let parsed = match skills {
            None => {
                problems.push(problem(None, "missing field `skills`"));
                Vec::new()
            }
            Some(items) => each::<PlannedSkill>(items, "skills", "skill", &mut problems),
        };
        let parsed_secrets = match secrets {
            None | Some(Value::Null) => Vec::new(),
            Some(items) => {
                each::<CredentialFile>(items, "pullSecrets", "pull secret", &mut problems)
            }
        };
        if let Some(plan) = &mut plan {
            plan.skills = parsed;
            plan.pull_secrets = parsed_secrets;
            problems.extend(plan.problems());
        }
        match plan {
            Some(plan) if problems.is_empty() => Ok(plan),
            _ => Err(PlanError::Invalid { problems }),
        }
    }

    /// The plan as the operator writes it: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a plan serialises");
        text.push('\n');
        text
    }

    /// Checks everything that can be checked without I/O.
    pub fn validate(&self) -> Result<(), PlanError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PlanError::Invalid { problems })
        }
    }

    /// Every problem, in plan order.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.api_version != API_VERSION {
            problems.push(problem(
                None,
                format!(
                    "apiVersion is {:?}; this skillport reads {API_VERSION}",
                    self.api_version
                ),
            ));
        }
        if self.kind != KIND {
            problems.push(problem(
                None,
                format!("kind is {:?}; expected {KIND}", self.kind),
            ));
        }
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
        for (index, skill) in self.skills.iter().enumerate() {
            let subject = if skill.name.is_empty() {
                format!("skills[{index}]")
            } else {
                format!("skill {:?}", skill.name)
            };
            let mut report =
                |message: String| problems.push(problem(Some(subject.clone()), message));
            if let Err(message) = dns_label(&skill.name) {
                report(format!("name {message}"));
            }
            if names.insert(&skill.name, index).is_some() {
                report("the name is used by another skill too; names must be unique".into());
            }
            for message in source_problems(skill) {
                report(message);
            }
            let target = skill.target();
            match check_target(target) {
                Err(message) => report(message),
                Ok(()) => {
                    if let Some(other) = targets.insert(target, &skill.name) {
                        report(format!(
                            "target folder {target:?} is also skill {other:?}'s; targets must be unique"
                        ));
                    }
                }
            }
        }
        let mut secrets = BTreeSet::new();
        for (index, secret) in self.pull_secrets.iter().enumerate() {
            let subject = if secret.name.is_empty() {
                format!("pullSecrets[{index}]")
            } else {
                format!("pull secret {:?}", secret.name)
            };
            for message in check_credential_file(secret) {
                problems.push(problem(Some(subject.clone()), message));
            }
            if !secrets.insert(&secret.name) {
                problems.push(problem(
                    Some(subject),
                    "listed twice; pull secret names must be unique",
                ));
            }
        }
        if let Some(git) = &self.git_credentials {
            for message in check_credential_file(git) {
                problems.push(problem(Some("gitCredentials".into()), message));
            }
        }
        for registry in &self.insecure_registries {
            if !valid_registry(registry) {
                problems.push(problem(
                    Some("insecureRegistries".into()),
                    format!("{registry:?} is not a registry host[:port] (no scheme, no path)"),
                ));
            }
        }
        for file in &self.ca_files {
            if file.is_empty() || file.contains('\0') {
                problems.push(problem(
                    Some("caFiles".into()),
                    "an entry is empty; give the path of a PEM file",
                ));
            }
        }
        problems
    }

    /// Whether any skill comes from git.
    pub fn has_git_skills(&self) -> bool {
        self.skills.iter().any(|skill| skill.git.is_some())
    }
}

impl Default for FetchPlan {
    fn default() -> Self {
        FetchPlan::new()
    }
}

impl PlannedSkill {
    /// A skill from an image, into the folder named after it.
    pub fn image(name: impl Into<String>, reference: impl Into<String>) -> PlannedSkill {
        PlannedSkill {
            name: name.into(),
            image: Some(reference.into()),
            git: None,
            target: None,
            layer: None,
        }
    }

    /// A skill from git, into the folder named after it.
    pub fn git(name: impl Into<String>, git: GitSpec) -> PlannedSkill {
        PlannedSkill {
            name: name.into(),
            image: None,
            git: Some(git),
            target: None,
            layer: None,
        }
    }

    /// The same skill into another folder.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> PlannedSkill {
        self.target = Some(target.into());
        self
    }

    /// The folder under `--into`: `target`, or the name.
    pub fn target(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.name)
    }

    /// The source, when the skill has exactly one (always, in a validated plan).
    pub fn source(&self) -> Option<Source> {
        match (&self.image, &self.git) {
            (Some(image), None) => Some(Source::Image(image.clone())),
            (None, Some(git)) => Some(Source::Git(git.clone())),
            _ => None,
        }
    }
}

/// Reads the list `field` item by item; a bad item is a problem naming it (`<what> "<name>"`,
/// or `<field>[<index>]` without a name).
fn each<T: serde::de::DeserializeOwned>(
    items: Value,
    field: &str,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let Value::Array(items) = items else {
        problems.push(problem(None, format!("`{field}` must be a list")));
        return Vec::new();
    };
    let mut parsed = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let subject = match item
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => format!("{what} {name:?}"),
            None => format!("{field}[{index}]"),
        };
        match serde_json::from_value::<T>(item) {
            Ok(value) => parsed.push(value),
            Err(err) => problems.push(problem(Some(subject), err.to_string())),
        }
    }
    parsed
}

fn problem(subject: Option<String>, message: impl Into<String>) -> Problem {
    Problem {
        subject,
        message: message.into(),
    }
}

fn invalid(subject: Option<String>, message: &str) -> PlanError {
    PlanError::Invalid {
        problems: vec![problem(subject, message)],
    }
}

/// RFC 1123 label: 1-63 of `a-z0-9-`, starting and ending with a letter or digit.
pub fn dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters".into());
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok || name.starts_with('-') || name.ends_with('-') {
        return Err(
            "is not a DNS label (a-z, 0-9 and -, starting and ending with a letter or digit)"
                .into(),
        );
    }
    Ok(())
}

/// A Kubernetes object name (DNS subdomain): 1-253 of `a-z0-9-.`, each dot-separated part a
/// label.
fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 253 || name.split('.').any(|part| dns_label(part).is_err()) {
        return Err("is not a Kubernetes object name (a-z, 0-9, - and ., at most 253)".into());
    }
    Ok(())
}

/// What is wrong with a skill's source: `image` (and its `layer`) or `git`, exactly one.
fn source_problems(skill: &PlannedSkill) -> Vec<String> {
    match (&skill.image, &skill.git) {
        (Some(image), None) => {
            let mut problems: Vec<String> = check_image(image).err().into_iter().collect();
            if let Some(layer) = &skill.layer {
                problems.extend(check_layer(image, layer));
            }
            problems
        }
        (None, Some(git)) => {
            let mut problems = check_git(git);
            if skill.layer.is_some() {
                problems.push("has a `layer` but no `image`; a layer belongs to an image".into());
            }
            problems
        }
        (Some(_), Some(_)) => vec!["has both `image` and `git`; give exactly one".into()],
        (None, None) => vec!["has no source; give `image` or `git`".into()],
    }
}

fn check_image(image: &str) -> Result<(), String> {
    let reference: Reference = image.parse().map_err(|err| format!("image: {err}"))?;
    if reference.registry().is_none() {
        return Err(format!(
            "image {image:?} names no registry; write REGISTRY/REPOSITORY[:TAG][@DIGEST]"
        ));
    }
    Ok(())
}

fn check_layer(image: &str, layer: &PlannedLayer) -> Vec<String> {
    let mut problems = Vec::new();
    if image
        .parse::<Reference>()
        .is_ok_and(|reference| reference.digest().is_none())
    {
        problems.push(format!(
            "has a `layer` but image {image:?} is not pinned by digest; a layer belongs to \
             one digest"
        ));
    }
    if layer.digest.parse::<skillport_oci::Digest>().is_err() {
        problems.push(format!(
            "layer.digest {:?} is not a digest (sha256:<64 hex>)",
            layer.digest
        ));
    }
    if skillport_oci::Compression::from_media_type(&layer.media_type).is_none() {
        problems.push(format!(
            "layer.mediaType {:?} is not a tar layer",
            layer.media_type
        ));
    }
    problems
}

fn check_git(git: &GitSpec) -> Vec<String> {
    let mut problems = Vec::new();
    let url = git.url.trim();
    if url.is_empty() {
        problems.push("git.url is empty".into());
    } else if url_has_password(url) {
        // The URL is not repeated: it holds a secret.
        problems.push(
            "git.url holds a password or token; put credentials in gitCredentials instead".into(),
        );
    } else if url != git.url || url.chars().any(char::is_control) {
        problems.push(format!(
            "git.url {:?} has spaces or control characters",
            git.url
        ));
    } else if !["https://", "http://", "git://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        // ssh and local paths would need programs and keys the init container does not have.
        problems.push(format!(
            "git.url {url:?} is not an https://, http:// or git:// URL"
        ));
    }
    if git.reference.is_empty() {
        problems.push("git.ref is empty; give a branch, a tag or a commit SHA".into());
    } else if git
        .reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
        || git.reference.starts_with('-')
    {
        problems.push(format!("git.ref {:?} is not a valid ref", git.reference));
    }
    if let Some(path) = &git.path
        && let Err(message) = check_repository_path(path)
    {
        problems.push(format!("git.path {message}"));
    }
    problems
}

/// Whether a URL carries `user:password@` (a user name alone is fine: `ssh://git@host/…`).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// A relative path of normal components inside a repository.
fn check_repository_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty; leave it out for the repository root".into());
    }
    if path.starts_with('/') {
        return Err(format!(
            "{path:?} is absolute; give it relative to the repository root"
        ));
    }
    if path.contains('\0') || path.chars().any(char::is_control) {
        return Err(format!("{path:?} has control characters"));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!(
            "{path:?} goes up with ..; stay inside the repository"
        ));
    }
    Ok(())
}

/// One folder name directly under `--into`.
fn check_target(target: &str) -> Result<(), String> {
    let shown = format!("target folder {target:?}");
    if target.is_empty() {
        return Err("target folder is empty".into());
    }
    if target == "." || target == ".." || target.contains('/') {
        return Err(format!("{shown} must be one folder name, without / or .."));
    }
    if target.starts_with('.') {
        return Err(format!(
            "{shown} starts with a dot; hidden names are reserved for skillport's own temporary folders"
        ));
    }
    if target == INDEX_FILE {
        return Err(format!("{shown} is the index file's name"));
    }
    if target.len() > 255 || target.chars().any(char::is_control) {
        return Err(format!("{shown} is too long or has control characters"));
    }
    Ok(())
}

fn check_credential_file(file: &CredentialFile) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(message) = dns_subdomain(&file.name) {
        problems.push(format!("name {message}"));
    }
    if file.path.is_empty() || file.path.contains('\0') {
        problems.push("path is empty; give the mounted file's path".into());
    }
    problems
}

/// `host[:port]`, as in image references.
fn valid_registry(registry: &str) -> bool {
    // A reference to a repository on that registry parses exactly when the host does.
    !registry.is_empty()
        && !registry.contains('/')
        && format!("{registry}/x")
            .parse::<Reference>()
            .is_ok_and(|reference| reference.registry() == Some(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_found() {
        assert!(url_has_password("https://user:tok@git.example.com/a.git"));
        assert!(url_has_password("https://:tok@git.example.com/a.git"));
        assert!(!url_has_password("https://git.example.com/a.git"));
        assert!(!url_has_password("ssh://git@git.example.com/a.git"));
        assert!(!url_has_password("https://git.example.com/a:b@c"));
    }

    #[test]
    fn registries() {
        assert!(valid_registry("registry.example.com"));
        assert!(valid_registry("127.0.0.1:5000"));
        assert!(valid_registry("localhost:5000"));
        assert!(!valid_registry("https://registry.example.com"));
        assert!(!valid_registry("registry.example.com/path"));
        assert!(!valid_registry(""));
    }
}
