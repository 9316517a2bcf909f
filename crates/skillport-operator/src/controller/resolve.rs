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

use crate::api::{
    Delivery, MAX_DESCRIPTION, MAX_VERSION, ResolvedLayer, ResolvedSkill, Skill, SkillSetSpec,
};
use crate::policy::{Policies, Verdict};

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
    /// Digests the policies accepted, by repository, digest and the policies' fingerprint: a
    /// digest is verified once per policy change, not on every resync.
    verdicts: std::sync::Mutex<std::collections::HashMap<(String, String, String), Verdict>>,
    /// Registry clients by the sha256 of their pull secrets (names and bytes, in order):
    /// SkillSets with the same secrets share connections and token sessions. Holds only hashes
    /// as keys; a client keeps its credentials in memory, as it must to use them.
    clients: std::sync::Mutex<std::collections::HashMap<[u8; 32], Client>>,
    /// Each image's skill layer, by repository and digest, as read from its manifests (a
    /// digest's content never changes): a resync reads no manifest again. Never taken from
    /// status, which whoever may write it could edit.
    /// `None` is kept too: an image no skill can be read from stays one.
    layers: std::sync::Mutex<std::collections::HashMap<(String, String), Option<ResolvedLayer>>>,
}

/// The most clients kept; past it the cache starts afresh (secrets rotate, SkillSets go).
const MAX_CLIENTS: usize = 256;
/// The most layers kept; past it the cache starts afresh.
const MAX_LAYERS: usize = 16_384;

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
    /// An enforcing skill policy refused the skill's digest and no digest verified before
    /// could stand in: nothing of the SkillSet may be delivered (fail closed).
    pub refused_by_policy: bool,
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
            verdicts: std::sync::Mutex::new(std::collections::HashMap::new()),
            clients: std::sync::Mutex::new(std::collections::HashMap::new()),
            layers: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The same, each skill's resolve bounded by `deadline` instead of [`SKILL_DEADLINE`].
    #[must_use]
    pub fn with_skill_deadline(mut self, deadline: Duration) -> Resolver {
        self.skill_deadline = deadline;
        self.git.timeout = deadline;
        self
    }

    /// Every skill of `spec`, in spec order, or the first failure (by spec order). Image
    /// digests are judged by `policies`; one they refuse is replaced by the skill's digest in
    /// `before` when that one still passes (a moved tag keeps what was verified).
    pub async fn resolve(
        &self,
        spec: &SkillSetSpec,
        pull_secrets: &[PullSecret],
        git_credentials: Option<GitCredentials>,
        policies: &Policies,
        before: &[ResolvedSkill],
    ) -> Result<Vec<ResolvedSkill>, ResolveFailure> {
        let client = if spec.skills.iter().any(|skill| skill.image.is_some()) {
            Some(self.registry_client(pull_secrets)?)
        } else {
            None
        };
        // Only a fetch plan names layers, and a SkillSet held to image volumes has none.
        let plans = spec.delivery != Delivery::ImageVolume;
        // The futures are made first: a stream of closures borrowing `spec` trips the
        // compiler's higher-ranked lifetime check inside the controller's `Send` bound.
        let lookups: Vec<_> = spec
            .skills
            .iter()
            .map(|skill| {
                let kept = before.iter().find(|b| b.name == skill.name);
                let lookup = self.resolve_skill(
                    skill,
                    client.as_ref(),
                    git_credentials.clone(),
                    (policies, kept, plans),
                );
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
                                refused_by_policy: false,
                            })
                        })
                }
            })
            .collect();
        let all = stream::iter(lookups)
            .buffered(PARALLEL)
            .collect::<Vec<Result<ResolvedSkill, ResolveFailure>>>();
        match tokio::time::timeout(RESOLVE_DEADLINE, all).await {
            // A policy refusal comes first: another skill's (transient) failure must not hide
            // it, since only a refusal stops what was delivered before.
            Ok(results) => match results
                .iter()
                .find(|r| r.as_ref().is_err_and(|failure| failure.refused_by_policy))
            {
                Some(Err(refused)) => Err(refused.clone()),
                _ => results.into_iter().collect(),
            },
            Err(_) => Err(ResolveFailure {
                skill: String::new(),
                message: format!(
                    "resolving the skills took longer than {}s; trying again later",
                    RESOLVE_DEADLINE.as_secs()
                ),
                transient: true,
                refused_by_policy: false,
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
                refused_by_policy: false,
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
            refused_by_policy: false,
        })
    }

    async fn resolve_skill(
        &self,
        skill: &Skill,
        client: Option<&Client>,
        git_credentials: Option<GitCredentials>,
        (policies, kept, plans): (&Policies, Option<&ResolvedSkill>, bool),
    ) -> Result<ResolvedSkill, ResolveFailure> {
        let started = Instant::now();
        let fail = |message: String, transient: bool| ResolveFailure {
            skill: skill.name.clone(),
            message,
            transient,
            refused_by_policy: false,
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
                let digest = document.descriptor.digest.clone();
                let verdict = self
                    .verdict(client, policies, &reference, &digest)
                    .await
                    .map_err(|(message, transient)| fail(message, transient))?;
                if !verdict.refused.is_empty() {
                    return self
                        .hold_back(client, policies, &reference, &digest, kept, &verdict)
                        .await
                        // Signing the image fixes it without a change to the SkillSet: tried
                        // again on the transient schedule.
                        .map_err(|message| ResolveFailure {
                            refused_by_policy: true,
                            ..fail(message, true)
                        });
                }
                ResolvedSkill {
                    name: skill.name.clone(),
                    digest: Some(digest.to_string()),
                    commit: None,
                    // Capped: a registry may send megabytes, which would go into status,
                    // caches and every request that carries them.
                    version: annotations
                        .get(annotation::VERSION)
                        .map(|text| super::status::truncate(text, MAX_VERSION)),
                    description: annotations
                        .get(annotation::DESCRIPTION)
                        .map(|text| super::status::truncate(text, MAX_DESCRIPTION)),
                    signers: verdict.signers,
                    held: None,
                    audit: joined(&verdict.audited),
                    layer: self
                        .layer(client, &reference, document, plans)
                        .await
                        .map_err(|message| fail(message, true))?,
                }
            }
            (None, Some(source), _) => {
                let verdict = policies.judge_git();
                if !verdict.refused.is_empty() {
                    return Err(ResolveFailure {
                        refused_by_policy: true,
                        ..fail(verdict.refused.join("; "), false)
                    });
                }
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
                    audit: joined(&verdict.audited),
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

impl Resolver {
    /// What `policies` say about `digest` of `image`, reading its signatures (with the
    /// SkillSet's credentials, within the skill's deadline) only when a policy needs them;
    /// cached per repository, digest and policies.
    async fn verdict(
        &self,
        client: &Client,
        policies: &Policies,
        image: &Reference,
        digest: &skillport_oci::Digest,
    ) -> Result<Verdict, (String, bool)> {
        if policies.list.is_empty() {
            return Ok(Verdict::default());
        }
        let key = (
            format!(
                "{}/{}",
                image.registry().unwrap_or("docker.io"),
                image.repository()
            ),
            digest.to_string(),
            policies.fingerprint.clone(),
        );
        if let Some(verdict) = self.verdicts.lock().expect("not poisoned").get(&key) {
            return Ok(verdict.clone());
        }
        let now = time::OffsetDateTime::now_utc();
        let verdict = if policies.wants_signatures(image) {
            let read = |err: RegistryError| {
                (
                    format!("reading the signatures of {digest}: {err}"),
                    err.is_transient(),
                )
            };
            // cosign v3's bundles first; the legacy `.sig` tag only when they do not satisfy
            // the policies (one lookup less for images signed the current way).
            let mut attached = client
                .bundle_signatures(image, digest)
                .await
                .map_err(read)?;
            let mut verdict = judge(policies, image, digest, &attached, now);
            if !verdict.refused.is_empty() || !verdict.audited.is_empty() {
                attached.legacy = client
                    .legacy_signatures(image, digest)
                    .await
                    .map_err(read)?
                    .legacy;
                if !attached.legacy.is_empty() {
                    verdict = judge(policies, image, digest, &attached, now);
                }
            }
            verdict
        } else {
            policies.judge(image, digest, None, now)
        };
        // Only a digest that passes is remembered: one that fails may be signed any moment.
        if verdict.refused.is_empty() && verdict.audited.is_empty() {
            let mut verdicts = self.verdicts.lock().expect("not poisoned");
            if verdicts.len() >= MAX_VERDICTS {
                verdicts.clear();
            }
            verdicts.insert(key, verdict.clone());
        }
        Ok(verdict)
    }

    /// The layer of the skill whose top document `top` was just fetched for `reference`, for
    /// the fetch plan: from the cache, else read from the manifests (one request for an index,
    /// none for a manifest). `None` when the image is not one a skill can be read from: the
    /// init container reads the manifests itself and reports what is wrong. A registry error
    /// that may pass is the resolve's failure (the plan does not lose its layers for it).
    /// Nothing is read unless `wanted` (a SkillSet held to image volumes has no plan).
    async fn layer(
        &self,
        client: &Client,
        reference: &Reference,
        top: skillport_oci::Document,
        wanted: bool,
    ) -> Result<Option<ResolvedLayer>, String> {
        if !wanted {
            return Ok(None);
        }
        let key = (
            reference.name().to_owned(),
            top.descriptor.digest.to_string(),
        );
        if let Some(cached) = self.cached_layer(&key) {
            return Ok(cached);
        }
        let layer = match client.skill_layer_of(reference, top).await {
            // The status holds sizes as int64.
            Ok(skill) if i64::try_from(skill.layer.size).is_ok() => Some(ResolvedLayer {
                media_type: skill.layer.media_type,
                digest: skill.layer.digest.to_string(),
                size: skill.layer.size,
                in_folder: skill.format.in_folder,
            }),
            Ok(_) => None,
            Err(err) if err.is_transient() => {
                return Err(registry_message(&reference.to_string(), &err));
            }
            Err(err) => {
                tracing::debug!(image = %reference, "the skill's layer was not read: {err}");
                None
            }
        };
        let mut layers = self
            .layers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if layers.len() >= MAX_LAYERS {
            layers.clear();
        }
        layers.insert(key, layer.clone());
        Ok(layer)
    }

    /// The cache's answer: `None` when it has none, `Some(None)` for an image it knows has no
    /// skill layer.
    #[allow(clippy::option_option)] // the two "none"s above are different answers
    fn cached_layer(&self, key: &(String, String)) -> Option<Option<ResolvedLayer>> {
        self.layers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// `digest` was refused: the digest `kept` from before stands in when the policies still
    /// accept it (a moved tag keeps what was verified), else the refusal, said in full.
    async fn hold_back(
        &self,
        client: &Client,
        policies: &Policies,
        image: &Reference,
        digest: &skillport_oci::Digest,
        kept: Option<&ResolvedSkill>,
        verdict: &Verdict,
    ) -> Result<ResolvedSkill, String> {
        let refused = verdict.refused.join("; ");
        let previous = kept
            .filter(|kept| !kept.signers.is_empty())
            .and_then(|kept| Some((kept, kept.digest.as_deref()?.parse().ok()?)))
            .filter(|(_, old)| old != digest);
        if let Some((kept, old)) = previous {
            let pinned: Reference = format!("{}@{old}", image.name())
                .parse()
                .map_err(|_| refused.clone())?;
            if let Ok(again) = self.verdict(client, policies, &pinned, &old).await
                && again.refused.is_empty()
            {
                // The kept digest's layer, if the registry gives it now; without it the pod
                // reads the manifests, and the verified digest stays either way.
                let key = (image.name().to_owned(), old.to_string());
                let layer = match self.cached_layer(&key) {
                    Some(layer) => layer,
                    None => match client.fetch_manifest(&pinned).await {
                        Ok(document) => self
                            .layer(client, &pinned, document, true)
                            .await
                            .unwrap_or_default(),
                        Err(_) => None,
                    },
                };
                return Ok(ResolvedSkill {
                    layer,
                    signers: again.signers,
                    held: Some(super::status::truncate(
                        &format!("{image} moved to {refused}; {old}, verified before, stays"),
                        1024,
                    )),
                    audit: joined(&again.audited),
                    ..kept.clone()
                });
            }
        }
        Err(format!(
            "{refused}; nothing of this SkillSet is delivered until it is signed"
        ))
    }
}

/// The policies' verdict on the signatures `attached` to `digest`.
fn judge(
    policies: &Policies,
    image: &Reference,
    digest: &skillport_oci::Digest,
    attached: &skillport_registry::Attached,
    now: time::OffsetDateTime,
) -> Verdict {
    let (candidates, unreadable) =
        skillport_sign::bundle::read_all(attached.bundle_parts(), attached.legacy_parts());
    policies.judge(image, digest, Some((&candidates, &unreadable)), now)
}

/// At most this many verdicts are kept; past it the cache starts afresh.
const MAX_VERDICTS: usize = 4096;

/// Findings joined for status, capped, or `None`.
fn joined(findings: &[String]) -> Option<String> {
    (!findings.is_empty()).then(|| super::status::truncate(&findings.join("; "), 1024))
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
