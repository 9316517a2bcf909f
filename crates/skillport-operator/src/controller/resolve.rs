//! Resolving a SkillSet's sources: image tags to digests (with version and description from the
//! same manifest fetch) and git refs to commits. Registry and git I/O only; the Secrets are read
//! by the reconciler and handed over as bytes, merged in memory, never written or logged.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream;
use sha2::{Digest as _, Sha256};
use skillport_fetch::git::{self, GitCredentials, GitOptions, GitSource};
use skillport_oci::Reference;
use skillport_oci::spec::annotation;
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, RegistryError};

use crate::api::{MAX_DESCRIPTION, MAX_VERSION, ResolvedSkill, Skill, SkillSetSpec};

/// Skills resolved at once.
const PARALLEL: usize = 8;
/// The longest one skill's resolve may take (a registry or git server may answer slowly on
/// purpose); per-read timeouts alone do not bound a server that drips.
pub const SKILL_DEADLINE: Duration = Duration::from_secs(30);
/// The longest a whole SkillSet's resolve may take: past it the reconcile goes on (status,
/// finalizers, other SkillSets) and tries again later.
pub const RESOLVE_DEADLINE: Duration = Duration::from_secs(90);

/// Resolves skills with the operator's CA files.
pub struct Resolver {
    registry: ClientOptions,
    git: GitOptions,
    /// [`SKILL_DEADLINE`], shorter in tests.
    skill_deadline: Duration,
    /// Registry clients by the sha256 of their pull secrets (names and bytes, in order):
    /// SkillSets with the same secrets share connections and token sessions. Holds only hashes
    /// as keys; a client keeps its credentials in memory, as it must to use them.
    clients: std::sync::Mutex<std::collections::HashMap<[u8; 32], Client>>,
}

/// The most clients kept; past it the cache starts afresh (secrets rotate, SkillSets go).
const MAX_CLIENTS: usize = 256;

/// A pull secret's `.dockerconfigjson`, as read from the API.
pub struct PullSecret {
    pub name: String,
    pub config: Vec<u8>,
}

/// Why a skill could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveFailure {
    /// The skill, or empty when the failure is the SkillSet's (an unreadable pull secret).
    pub skill: String,
    /// What happened and what to do; never a credential.
    pub message: String,
    /// Whether trying again may work without a change (network, server errors).
    pub transient: bool,
}

impl std::fmt::Display for ResolveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.skill.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "skill {:?}: {}", self.skill, self.message)
        }
    }
}

impl Resolver {
    pub fn new(ca_files: Vec<PathBuf>) -> Resolver {
        let registry = ClientOptions {
            ca_files: ca_files.clone(),
            // The operator retries on its own schedule (with backoff between reconciles):
            // a short in-request retry is enough here.
            attempts: 2,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(15),
            ..ClientOptions::default()
        };
        let git = GitOptions {
            timeout: SKILL_DEADLINE,
            ca_files,
            ..GitOptions::default()
        };
        Resolver {
            registry,
            git,
            skill_deadline: SKILL_DEADLINE,
            clients: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The same, each skill's resolve bounded by `deadline` instead of [`SKILL_DEADLINE`].
    #[must_use]
    pub fn with_skill_deadline(mut self, deadline: Duration) -> Resolver {
        self.skill_deadline = deadline;
        self.git.timeout = deadline;
        self
    }

    /// Every skill of `spec`, in spec order, or the first failure (by spec order).
    pub async fn resolve(
        &self,
        spec: &SkillSetSpec,
        pull_secrets: &[PullSecret],
        git_credentials: Option<GitCredentials>,
    ) -> Result<Vec<ResolvedSkill>, ResolveFailure> {
        let client = if spec.skills.iter().any(|skill| skill.image.is_some()) {
            Some(self.registry_client(pull_secrets)?)
        } else {
            None
        };
        // The futures are made first: a stream of closures borrowing `spec` trips the
        // compiler's higher-ranked lifetime check inside the controller's `Send` bound.
        let lookups: Vec<_> = spec
            .skills
            .iter()
            .map(|skill| {
                let lookup = self.resolve_skill(skill, client.as_ref(), git_credentials.clone());
                let deadline = self.skill_deadline;
                async move {
                    tokio::time::timeout(deadline, lookup)
                        .await
                        .unwrap_or_else(|_| {
                            Err(ResolveFailure {
                                skill: skill.name.clone(),
                                message: format!(
                                    "resolving took longer than {}s; the server is slow or \
                                     stalling, trying again later",
                                    deadline.as_secs()
                                ),
                                transient: true,
                            })
                        })
                }
            })
            .collect();
        let all = stream::iter(lookups)
            .buffered(PARALLEL)
            .collect::<Vec<Result<ResolvedSkill, ResolveFailure>>>();
        match tokio::time::timeout(RESOLVE_DEADLINE, all).await {
            Ok(results) => results.into_iter().collect(),
            Err(_) => Err(ResolveFailure {
                skill: String::new(),
                message: format!(
                    "resolving the skills took longer than {}s; trying again later",
                    RESOLVE_DEADLINE.as_secs()
                ),
                transient: true,
            }),
        }
    }

    fn registry_client(&self, pull_secrets: &[PullSecret]) -> Result<Client, ResolveFailure> {
        let mut hasher = Sha256::new();
        for secret in pull_secrets {
            for part in [secret.name.as_bytes(), &secret.config] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part);
            }
        }
        let key: [u8; 32] = hasher.finalize().into();
        if let Some(client) = self.clients.lock().expect("not poisoned").get(&key) {
            return Ok(client.clone());
        }
        let client = self.new_client(pull_secrets)?;
        let mut clients = self.clients.lock().expect("not poisoned");
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn new_client(&self, pull_secrets: &[PullSecret]) -> Result<Client, ResolveFailure> {
        let mut files = Vec::with_capacity(pull_secrets.len());
        for secret in pull_secrets {
            let label = format!("pull secret {:?}", secret.name);
            let file = AuthFile::parse(&secret.config, label).map_err(|err| ResolveFailure {
                skill: String::new(),
                message: err.to_string(),
                transient: false,
            })?;
            files.push(file);
        }
        // A pull secret naming a credential helper must not make the operator run a program:
        // helpers are searched on an empty path, so using one fails with a clear error.
        let credentials = Credentials::from_files(files).with_helper_path("");
        Client::new(credentials, self.registry.clone()).map_err(|err| ResolveFailure {
            skill: String::new(),
            message: err.to_string(),
            transient: false,
        })
    }

    async fn resolve_skill(
        &self,
        skill: &Skill,
        client: Option<&Client>,
        git_credentials: Option<GitCredentials>,
    ) -> Result<ResolvedSkill, ResolveFailure> {
        let started = Instant::now();
        let fail = |message: String, transient: bool| ResolveFailure {
            skill: skill.name.clone(),
            message,
            transient,
        };
        let resolved = match (&skill.image, &skill.git, client) {
            (Some(image), _, Some(client)) => {
                let reference: Reference =
                    image
                        .parse()
                        .map_err(|err: skillport_oci::ParseReferenceError| {
                            fail(format!("image {image:?}: {}", err.reason), false)
                        })?;
                let document = client
                    .fetch_manifest(&reference)
                    .await
                    .map_err(|err| fail(registry_message(image, &err), err.is_transient()))?;
                let annotations = annotations(&document.bytes);
                ResolvedSkill {
                    name: skill.name.clone(),
                    digest: Some(document.descriptor.digest.to_string()),
                    commit: None,
                    // Capped: a registry may send megabytes, which would go into status,
                    // caches and every request that carries them.
                    version: annotations
                        .get(annotation::VERSION)
                        .map(|text| super::status::truncate(text, MAX_VERSION)),
                    description: annotations
                        .get(annotation::DESCRIPTION)
                        .map(|text| super::status::truncate(text, MAX_DESCRIPTION)),
                }
            }
            (None, Some(source), _) => {
                let source = GitSource {
                    url: source.url.clone(),
                    reference: source.reference.clone(),
                    path: source.path.clone(),
                };
                let options = self.git.clone();
                let result = tokio::task::spawn_blocking(move || {
                    git::resolve(&source, git_credentials.as_ref(), &options)
                })
                .await
                .map_err(|err| fail(format!("resolving the git ref failed: {err}"), true))?;
                let commit = result.map_err(|err| {
                    let transient = matches!(
                        err,
                        git::GitError::Connect { .. } | git::GitError::Timeout { .. }
                    );
                    let message = match err.hint() {
                        Some(hint) => format!("{err} ({hint})"),
                        None => err.to_string(),
                    };
                    fail(message, transient)
                })?;
                ResolvedSkill {
                    name: skill.name.clone(),
                    commit: Some(commit),
                    ..ResolvedSkill::default()
                }
            }
            _ => unreachable!("the CRD requires image or git, and images get a client"),
        };
        tracing::debug!(
            skill = %skill.name,
            elapsed_ms = started.elapsed().as_millis(),
            "resolved"
        );
        Ok(resolved)
    }
}

/// The registry's error, with what to do when we know (hints name no secret).
fn registry_message(image: &str, err: &RegistryError) -> String {
    let hint = match err {
        RegistryError::Unauthorized {
            had_credentials: false,
            ..
        } => Some(
            "add a kubernetes.io/dockerconfigjson Secret with credentials for this registry to \
             spec.imagePullSecrets"
                .to_owned(),
        ),
        RegistryError::Unauthorized {
            had_credentials: true,
            ..
        } => Some("the registry refused the credentials in spec.imagePullSecrets".to_owned()),
        RegistryError::Tls { .. } => Some(
            "start the operator with --ca-file holding the registry's CA certificate".to_owned(),
        ),
        other => other.hint(),
    };
    match hint {
        Some(hint) => format!("image {image:?}: {err} ({hint})"),
        None => format!("image {image:?}: {err}"),
    }
}

/// A manifest's or index's annotations; empty when it has none or is not JSON.
fn annotations(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: std::collections::BTreeMap<String, String>,
    }
    serde_json::from_slice::<Annotated>(bytes)
        .map(|document| document.annotations)
        .unwrap_or_default()
}
