//! Carrying out a plan: [`fetch`].
//!
//! # Expected flow
//!
//! 1. The plan is validated again (it may have been built in code), then `--into` is created
//!    if needed and locked (`flock` on the folder), and what an interrupted run left there
//!    (`.skillport-*`) is removed.
//! 2. The previous `index.json`, if any, is read: it says what each folder holds.
//! 3. Pull secrets are read and merged in memory ([`Credentials::from_files`], first match
//!    wins, each labelled `pull secret "<name>"`); their warnings (empty or shadowed entries)
//!    go into [`Report::warnings`]. Git credentials are read when a skill needs them.
//! 4. Every skill runs as its own task, up to [`FetchOptions::parallel`] at once, each in its
//!    own staging folder under `--into`:
//!    - up to date? (see below) → kept as it is, no download;
//!    - else downloaded into `<staging>/<target>` (images: every digest verified, the layer
//!      unpacked with the registry client's safety rules and [`FetchOptions::max_skill_bytes`];
//!      git: see [`crate::git`]), its SKILL.md checked leniently, then swapped into
//!      `<into>/<target>` by one rename.
//!
//!    Transient failures (connection, timeouts, 5xx, a download cut short) are retried with
//!    backoff, [`FetchOptions::attempts`] times in all, on top of the registry client's own
//!    retries; the whole run is bounded by [`FetchOptions::timeout`].
//! 5. Folders the previous index listed whose skill is no longer planned are removed.
//! 6. `index.json` is written (temporary file + rename).
//!
//! # When a skill is up to date
//!
//! Only when the previous index has an entry with the same name, target and source, its
//! folder is still a folder with a SKILL.md and the same number of files and bytes, and:
//! - image pinned by digest: the digest is the pinned one — no network at all;
//! - image by tag: the tag still resolves (one HEAD request) to the recorded digest;
//! - git at a full commit SHA: the recorded commit is that SHA — no network at all;
//! - git at a branch or tag: never; it is fetched again (refs move, and asking the server
//!   costs about as much as the shallow fetch) and the folder replaced.
//!
//! # Guarantees
//!
//! - A skill's folder is either absent, its previous complete content, or its new complete
//!   content; nothing half-written is ever at `<into>/<target>`.
//! - Nothing is written outside `--into`; inside it, only skill folders and `index.json`
//!   remain afterwards (temporary names start with `.skillport-`, which targets cannot).
//! - Skills that succeed are published even when others fail, and `index.json` lists exactly
//!   the skills whose folders hold what their entry says: the new ones, and, for a skill that
//!   failed, its previous entry when its old folder is still in place. A restart after a
//!   failure therefore skips what already arrived.
//! - No credential is written anywhere or put in a message.
//!
//! # Caveats
//!
//! - A folder that exists at a target but is not in the index is replaced: the plan owns its
//!   targets. Other folders in `--into` are never touched.
//! - A timeout cannot stop an unpack already running on a blocking thread; its staging folder
//!   may stay until the next run removes it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skillport_oci::{Digest, Reference, UnpackLimits};
use skillport_registry::auth::{AuthError, AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, NoProgress, RegistryError};
use skillport_skill::{Diagnostic, LoadError, Mode};
use tempfile::TempDir;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::{FetchError, SkillError, SkillFailure};
use crate::folder::{IntoFolder, OpenError, Tally, intact, tally};
use crate::git::{self, GitCredentials, GitOptions, GitSource};
use crate::index::{IndexEntry, SkillIndex};
use crate::plan::{FetchPlan, GitSpec, PlannedSkill, Source};

/// How a fetch runs.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The whole run, from start to index.
    pub timeout: Duration,
    /// Attempts per skill for failures that may pass (1: no retry). The registry client also
    /// retries each request ([`ClientOptions::attempts`]).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub backoff: Duration,
    /// Skills fetched at once.
    pub parallel: usize,
    /// What one skill may expand to on disk.
    pub max_skill_bytes: u64,
    /// Files, folders and links one skill may hold.
    pub max_skill_entries: u64,
    /// The registry client's settings; the plan's CA files and insecure registries are added.
    pub client: ClientOptions,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            timeout: Duration::from_secs(300),
            attempts: 3,
            backoff: Duration::from_secs(1),
            parallel: 16,
            max_skill_bytes: 1 << 30,
            max_skill_entries: 100_000,
            client: ClientOptions::default(),
        }
    }
}

/// What a run did, skill by skill in plan order.
#[derive(Debug)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// Skills of the previous index no longer planned, whose folders were removed.
    pub removed: Vec<String>,
    /// Problems that did not stop anything (empty or duplicate pull secret entries).
    pub warnings: Vec<String>,
    /// The index written.
    pub index: PathBuf,
}

/// One skill's result.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub result: Result<Done, SkillFailure>,
}

/// A skill in place.
#[derive(Debug, Clone)]
pub struct Done {
    pub action: Action,
    /// Its entry in `index.json`.
    pub entry: IndexEntry,
}

/// What happened to a skill that is in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Downloaded into a folder that did not exist.
    Fetched,
    /// Downloaded, and swapped with the folder that was there.
    Replaced,
    /// Already there, as the previous index says; nothing downloaded.
    UpToDate,
}

/// Kubernetes keeps at most 4096 bytes of a termination message; ours stays well below.
const TERMINATION_MESSAGE_MAX: usize = 1024;

impl Report {
    pub fn is_success(&self) -> bool {
        self.outcomes.iter().all(|outcome| outcome.result.is_ok())
    }

    pub fn failures(&self) -> impl Iterator<Item = &SkillFailure> {
        self.outcomes
            .iter()
            .filter_map(|outcome| outcome.result.as_ref().err())
    }

    /// One line for `/dev/termination-log` when a skill failed: the first failure in plan
    /// order, and how many others there were.
    pub fn termination_message(&self) -> Option<String> {
        let failures: Vec<&SkillFailure> = self.failures().collect();
        let first = failures.first()?;
        let mut line = first.to_string();
        if failures.len() > 1 {
            let others: Vec<String> = failures[1..]
                .iter()
                .map(|failure| format!("{:?}", failure.name))
                .collect();
            let _ = write!(line, " (also failed: {})", others.join(", "));
        }
        Some(one_line(&line))
    }
}

/// `text` on one line of at most 1024 bytes, for a termination message.
pub fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > TERMINATION_MESSAGE_MAX {
        let mut end = TERMINATION_MESSAGE_MAX - 3;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    line
}

/// What every skill task shares.
struct Context {
    client: Client,
    /// The same pull secrets, to say which lacked an entry when a registry refuses us.
    credentials: Credentials,
    secret_names: Vec<String>,
    folder: IntoFolder,
    git_credentials: Option<GitCredentials>,
    ca_files: Vec<PathBuf>,
    options: FetchOptions,
    deadline: Instant,
}

/// Fetches every skill of `plan` into `into`; see the [module docs](self).
///
/// `Err` when nothing could be attempted (an invalid plan, an unusable `--into`, an unreadable
/// credential file or CA file) or the index could not be written; otherwise a [`Report`],
/// which may hold failed skills.
pub async fn fetch(
    plan: &FetchPlan,
    into: &Path,
    options: &FetchOptions,
) -> Result<Report, FetchError> {
    plan.validate()?;
    let deadline = Instant::now() + options.timeout;
    let folder = IntoFolder::open(into, deadline)
        .await
        .map_err(|err| match err {
            OpenError::Io(action, source) => into_error(into, action, source),
            OpenError::Busy => FetchError::Busy {
                path: into.to_path_buf(),
            },
        })?;
    let previous = SkillIndex::read(into)
        .map_err(|source| into_error(into, "reading the index in", source))?
        .unwrap_or_else(|| SkillIndex::new(Vec::new()));
    let (context, mut warnings) = context(plan, folder, options, deadline)?;

    let outcomes = fetch_all(&context, plan, &previous).await;
    let removed = remove_unplanned(&context, plan, &previous, &mut warnings);
    let index = write_index(&context, plan, &previous, &outcomes)?;
    if let Err(err) = context.folder.remove_leftovers() {
        tracing::warn!("cleaning up {}: {err}", into.display());
    }
    Ok(Report {
        outcomes,
        removed,
        warnings,
        index,
    })
}

fn into_error(into: &Path, action: &'static str, source: std::io::Error) -> FetchError {
    FetchError::Into {
        action,
        path: into.to_path_buf(),
        source,
    }
}

/// Reads the credentials and builds the client; returns the credential warnings too.
fn context(
    plan: &FetchPlan,
    folder: IntoFolder,
    options: &FetchOptions,
    deadline: Instant,
) -> Result<(Arc<Context>, Vec<String>), FetchError> {
    let files = read_pull_secrets(plan)?;
    let warnings = Credentials::from_files(files.clone()).warnings();
    // Read only when a source can use them: they are sent over https only.
    let needs_git_credentials = plan.skills.iter().any(|skill| {
        skill
            .git
            .as_ref()
            .is_some_and(|git| sends_credentials(&git.url))
    });
    let git_credentials = match &plan.git_credentials {
        Some(file) if needs_git_credentials => Some(
            GitCredentials::read(Path::new(&file.path)).map_err(|source| {
                FetchError::GitCredentials {
                    name: file.name.clone(),
                    source: Box::new(source),
                }
            })?,
        ),
        _ => None,
    };
    let ca_files: Vec<PathBuf> = plan
        .ca_files
        .iter()
        .map(PathBuf::from)
        .chain(options.client.ca_files.iter().cloned())
        .collect();
    let client_options = ClientOptions {
        ca_files: ca_files.clone(),
        insecure_registries: plan
            .insecure_registries
            .iter()
            .chain(&options.client.insecure_registries)
            .cloned()
            .collect(),
        ..options.client.clone()
    };
    let client = Client::new(Credentials::from_files(files.clone()), client_options)
        .map_err(|err| FetchError::Client(Box::new(err)))?;
    let context = Context {
        client,
        credentials: Credentials::from_files(files),
        secret_names: plan.pull_secrets.iter().map(|s| s.name.clone()).collect(),
        folder,
        git_credentials,
        ca_files,
        options: options.clone(),
        deadline,
    };
    Ok((Arc::new(context), warnings))
}

/// Every skill as its own task, at most `parallel` at once; outcomes in plan order.
async fn fetch_all(
    context: &Arc<Context>,
    plan: &FetchPlan,
    previous: &SkillIndex,
) -> Vec<Outcome> {
    let limit = Arc::new(Semaphore::new(context.options.parallel.max(1)));
    let tasks: Vec<_> = plan
        .skills
        .iter()
        .map(|skill| {
            let context = context.clone();
            let limit = limit.clone();
            let skill = skill.clone();
            let previous = previous.entry(&skill.name).cloned();
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.expect("never closed");
                fetch_skill(context, skill, previous).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for (skill, task) in plan.skills.iter().zip(tasks) {
        let result = task.await.expect("a skill's task does not panic");
        match &result {
            Ok(done) => tracing::info!(skill = skill.name, action = ?done.action, "done"),
            Err(failure) => tracing::debug!("{failure}"),
        }
        outcomes.push(Outcome {
            name: skill.name.clone(),
            result,
        });
    }
    outcomes
}

/// Removes the folders of skills the previous index lists and the plan no longer does. A
/// folder that cannot be removed is a warning: the index must still be written.
fn remove_unplanned(
    context: &Context,
    plan: &FetchPlan,
    previous: &SkillIndex,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let planned: BTreeSet<&str> = plan.skills.iter().map(PlannedSkill::target).collect();
    let mut removed = Vec::new();
    for entry in &previous.skills {
        if planned.contains(entry.path.as_str()) || !is_folder_name(&entry.path) {
            continue;
        }
        match context.folder.remove(&entry.path) {
            Ok(true) => removed.push(entry.name.clone()),
            Ok(false) => {}
            Err(err) => warnings.push(format!(
                "cannot remove {:?}, no longer planned, from {}: {err}",
                entry.path,
                context.folder.path().display()
            )),
        }
    }
    removed
}

/// Writes the index: the skills now in place, and, for a skill that failed, its previous entry
/// when the failed attempt left its folder as that entry describes it.
fn write_index(
    context: &Context,
    plan: &FetchPlan,
    previous: &SkillIndex,
    outcomes: &[Outcome],
) -> Result<PathBuf, FetchError> {
    let entries = plan
        .skills
        .iter()
        .zip(outcomes)
        .filter_map(|(skill, outcome)| match &outcome.result {
            Ok(done) => Some(done.entry.clone()),
            Err(_) => previous
                .entry(&skill.name)
                .filter(|old| old.path == skill.target() && in_place(context, old))
                .cloned(),
        })
        .collect();
    let into = context.folder.path();
    SkillIndex::new(entries)
        .write(into)
        .map_err(|source| FetchError::Index {
            path: into.join(crate::plan::INDEX_FILE),
            source,
        })
}

/// Reads every pull secret, labelled `pull secret "<name>"`. An unreadable or invalid file
/// stops the run: pulling on without it would only fail later with a less useful message.
fn read_pull_secrets(plan: &FetchPlan) -> Result<Vec<AuthFile>, FetchError> {
    plan.pull_secrets
        .iter()
        .map(|secret| {
            let label = format!("pull secret {:?}", secret.name);
            let error = |source| FetchError::PullSecret {
                name: secret.name.clone(),
                source: Box::new(source),
            };
            let bytes = std::fs::read(&secret.path).map_err(|source| {
                error(AuthError::Read {
                    path: PathBuf::from(&secret.path),
                    source,
                })
            })?;
            AuthFile::parse(&bytes, label).map_err(error)
        })
        .collect()
}

fn is_folder_name(path: &str) -> bool {
    !path.is_empty() && path != "." && path != ".." && !path.contains('/') && !path.starts_with('.')
}

/// One skill, bounded by the run's deadline.
async fn fetch_skill(
    context: Arc<Context>,
    skill: PlannedSkill,
    previous: Option<IndexEntry>,
) -> Result<Done, SkillFailure> {
    let source = skill
        .source()
        .expect("a validated plan gives every skill one source");
    // Only an entry for the same source in the same folder can make a download unnecessary.
    let previous = previous.filter(|old| old.path == skill.target() && old.source == source);
    let mut tries = Tries::default();
    let work = async {
        match &source {
            Source::Image(text) => {
                fetch_image(&context, &skill, text, previous.as_ref(), &mut tries).await
            }
            Source::Git(spec) => {
                fetch_git(&context, &skill, spec, previous.as_ref(), &mut tries).await
            }
        }
    };
    let result = match tokio::time::timeout_at(context.deadline, work).await {
        Ok(result) => result,
        Err(_) => Err(SkillError::TimedOut {
            origin: source.to_string(),
            limit: context.options.timeout,
            last: tries.last.take(),
        }),
    };
    result.map_err(|error| SkillFailure {
        name: skill.name.clone(),
        source,
        error,
        attempts: tries.count.max(1),
    })
}

/// How often the current step of a skill was tried, and its latest transient error (for a
/// timeout message).
#[derive(Default)]
struct Tries {
    count: u32,
    last: Option<String>,
}

/// Runs `attempt` until it succeeds, fails for good, or has run `attempts` times.
async fn with_retries<T, F, Fut>(
    context: &Context,
    name: &str,
    tries: &mut Tries,
    mut attempt: F,
) -> Result<T, SkillError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SkillError>>,
{
    tries.count = 0;
    loop {
        tries.count += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_transient() && tries.count < context.options.attempts => {
                let wait = context
                    .options
                    .backoff
                    .saturating_mul(2u32.saturating_pow(tries.count - 1));
                tracing::warn!("skill {name:?}: {err}; trying again in {wait:?}");
                tries.last = Some(err.to_string());
                tokio::time::sleep(wait).await;
            }
            Err(err) => return Err(err),
        }
    }
}

async fn fetch_image(
    context: &Arc<Context>,
    skill: &PlannedSkill,
    text: &str,
    previous: Option<&IndexEntry>,
    tries: &mut Tries,
) -> Result<Done, SkillError> {
    let reference: Reference = text.parse().expect("a validated plan has valid references");
    let unchanged = |digest: &Digest| {
        previous.filter(|old| {
            old.digest.as_deref() == Some(digest.to_string().as_str()) && in_place(context, old)
        })
    };
    if let Some(pinned) = reference.digest()
        && let Some(old) = unchanged(pinned)
    {
        return Ok(up_to_date(old));
    }
    let digest = match reference.digest() {
        Some(digest) => digest.clone(),
        None => {
            with_retries(context, &skill.name, tries, || async {
                context
                    .client
                    .resolve(&reference)
                    .await
                    .map_err(|error| registry_error(context, text, error))
            })
            .await?
            .digest
        }
    };
    if let Some(old) = unchanged(&digest) {
        return Ok(up_to_date(old));
    }
    // Fetch exactly what was resolved, even if the tag moves meanwhile.
    let exact = pinned(&reference, &digest);
    let exact_text = exact.to_string();
    let staging = staging(context, text)?;
    let staged = staging.path().join(skill.target());
    let limits = UnpackLimits {
        max_bytes: context.options.max_skill_bytes,
        max_entries: context.options.max_skill_entries,
    };
    with_retries(context, &skill.name, tries, || async {
        context
            .client
            .export_with_limits(&exact, &staged, limits, Arc::new(NoProgress))
            .await
            .map_err(|error| registry_error(context, &exact_text, error))
    })
    .await?;
    publish(
        context,
        skill,
        staging,
        staged,
        Revision::Digest(digest.to_string()),
        Vec::new(),
    )
    .await
}

async fn fetch_git(
    context: &Arc<Context>,
    skill: &PlannedSkill,
    spec: &GitSpec,
    previous: Option<&IndexEntry>,
    tries: &mut Tries,
) -> Result<Done, SkillError> {
    if is_commit_sha(&spec.reference)
        && let Some(old) = previous
            .filter(|old| old.commit.as_deref() == Some(spec.reference.as_str()))
            .filter(|old| in_place(context, old))
    {
        return Ok(up_to_date(old));
    }
    let origin = format!("{} {}", spec.url, spec.reference);
    let staging = staging(context, &origin)?;
    let staged = staging.path().join(skill.target());
    let source = GitSource {
        url: spec.url.clone(),
        reference: spec.reference.clone(),
        path: spec.path.clone(),
    };
    let fetched = with_retries(context, &skill.name, tries, || {
        let source = source.clone();
        let staged = staged.clone();
        let context = context.clone();
        async move {
            let options = GitOptions {
                timeout: context
                    .deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1)),
                max_bytes: context.options.max_skill_bytes,
                max_entries: context.options.max_skill_entries,
                ca_files: context.ca_files.clone(),
                ..GitOptions::default()
            };
            tokio::task::spawn_blocking(move || {
                // Never over plain http or git:// (git.rs refuses credentials on http).
                let credentials = context
                    .git_credentials
                    .as_ref()
                    .filter(|_| sends_credentials(&source.url));
                git::fetch(&source, credentials, &staged, &options)
            })
            .await
            .expect("git fetch does not panic")
            .map_err(|err| SkillError::Git(Box::new(err)))
        }
    })
    .await?;
    let warnings = fetched
        .submodules
        .iter()
        .map(|path| format!("{path}: submodule skipped (submodules are not fetched)"))
        .collect();
    publish(
        context,
        skill,
        staging,
        staged,
        Revision::Commit(fetched.commit),
        warnings,
    )
    .await
}

/// Whether the plan's git credentials go to this URL: https only.
fn sends_credentials(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// A full commit SHA (SHA-1 or SHA-256), which names content that cannot change.
fn is_commit_sha(reference: &str) -> bool {
    matches!(reference.len(), 40 | 64)
        && reference
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn pinned(reference: &Reference, digest: &Digest) -> Reference {
    let tag = reference
        .tag()
        .map(|tag| format!(":{tag}"))
        .unwrap_or_default();
    format!("{}{tag}@{digest}", reference.name())
        .parse()
        .expect("a valid reference with a valid digest is valid")
}

fn in_place(context: &Context, entry: &IndexEntry) -> bool {
    intact(
        context.folder.path(),
        &entry.path,
        Tally {
            files: entry.files,
            bytes: entry.bytes,
        },
    )
}

fn up_to_date(entry: &IndexEntry) -> Done {
    Done {
        action: Action::UpToDate,
        entry: entry.clone(),
    }
}

fn staging(context: &Context, origin: &str) -> Result<TempDir, SkillError> {
    context.folder.staging().map_err(|source| SkillError::Io {
        origin: origin.to_owned(),
        action: "creating a staging folder in",
        path: context.folder.path().to_path_buf(),
        source,
    })
}

/// A registry error, with the pull secrets named when none had an entry for the registry.
fn registry_error(context: &Context, reference: &str, error: RegistryError) -> SkillError {
    let error = match error {
        RegistryError::Unauthorized {
            registry,
            repository,
            detail: said,
        } if matches!(context.credentials.lookup(&registry, &repository), Ok(None)) => {
            let detail = match context.secret_names.as_slice() {
                [] => "the plan has no pull secrets".to_owned(),
                [only] => format!("pull secret {only:?} has no entry for this host"),
                names => format!(
                    "none of the pull secrets {} has an entry for this host",
                    names
                        .iter()
                        .map(|name| format!("{name:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            tracing::debug!("registry said: {said}; pull secrets: {detail}");
            RegistryError::Unauthorized {
                registry,
                repository,
                detail,
            }
        }
        other => other,
    };
    SkillError::Registry {
        reference: reference.to_owned(),
        error: Box::new(error),
    }
}

/// What the content was fetched at.
enum Revision {
    Digest(String),
    Commit(String),
}

/// Checks the staged skill, then swaps it into `<into>/<target>`; the staging folder (with the
/// old content, if any) is deleted afterwards.
async fn publish(
    context: &Arc<Context>,
    skill: &PlannedSkill,
    staging: TempDir,
    staged: PathBuf,
    revision: Revision,
    extra_warnings: Vec<String>,
) -> Result<Done, SkillError> {
    let context = context.clone();
    let skill = skill.clone();
    tokio::task::spawn_blocking(move || {
        let source = skill.source().expect("validated");
        let origin = source.to_string();
        let checked = check_skill(&staged, &origin)?;
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            let origin = origin.clone();
            move |source| SkillError::Io {
                origin,
                action,
                path,
                source,
            }
        };
        let counted = tally(&staged).map_err(io("reading", &staged))?;
        let target = skill.target();
        let dest = context.folder.path().join(target);
        let existed = std::fs::symlink_metadata(&dest).is_ok();
        context
            .folder
            .publish(&staged, &staging, target)
            .map_err(io("moving the skill to", &dest))?;
        if let Err(err) = staging.close() {
            tracing::warn!("removing the previous {}: {err}", dest.display());
        }
        let (digest, commit) = match revision {
            Revision::Digest(digest) => (Some(digest), None),
            Revision::Commit(commit) => (None, Some(commit)),
        };
        let mut warnings = checked.warnings;
        warnings.extend(extra_warnings);
        Ok(Done {
            action: if existed {
                Action::Replaced
            } else {
                Action::Fetched
            },
            entry: IndexEntry {
                name: skill.name.clone(),
                description: checked.description,
                version: checked.version,
                path: target.to_owned(),
                source,
                digest,
                commit,
                files: counted.files,
                bytes: counted.bytes,
                warnings,
            },
        })
    })
    .await
    .expect("publishing does not panic")
}

/// What lenient validation tells about a fetched skill.
struct Checked {
    description: String,
    version: Option<String>,
    warnings: Vec<String>,
}

/// Loads the staged folder as agents do (leniently). A missing or unusable SKILL.md fails the
/// skill; rule violations become warnings; skill.yaml is optional, so its errors are warnings
/// too.
fn check_skill(dir: &Path, origin: &str) -> Result<Checked, SkillError> {
    match skillport_skill::load(dir, Mode::Lenient) {
        Ok(skill) => Ok(Checked {
            version: skill
                .card
                .as_ref()
                .map(|card| card.metadata.version.clone())
                .filter(|version| !version.is_empty())
                .or_else(|| skill.frontmatter.metadata.get("version").cloned()),
            description: skill.frontmatter.description,
            warnings: skill
                .warnings
                .iter()
                .map(|d| diagnostic_line(dir, d, false))
                .collect(),
        }),
        Err(LoadError::MissingSkillMd { .. } | LoadError::NotADirectory { .. }) => {
            Err(SkillError::NoSkillMd {
                origin: origin.to_owned(),
            })
        }
        Err(LoadError::Read { path, source }) => Err(SkillError::Io {
            origin: origin.to_owned(),
            action: "reading",
            path: path
                .strip_prefix(dir)
                .map(Path::to_path_buf)
                .unwrap_or(path),
            source,
        }),
        Err(LoadError::Invalid { diagnostics, .. }) => {
            let is_skill_md = |d: &&Diagnostic| d.file.file_name() == Some("SKILL.md".as_ref());
            let errors: Vec<&Diagnostic> = diagnostics
                .iter()
                .filter(is_skill_md)
                .filter(|d| d.is_error())
                .collect();
            if let Some(first) = errors.first() {
                return Err(SkillError::Unusable {
                    origin: origin.to_owned(),
                    first: diagnostic_line(dir, first, false),
                    count: errors.len(),
                });
            }
            // Only skill.yaml is wrong: read SKILL.md alone.
            let skill_md = dir.join("SKILL.md");
            let text = std::fs::read_to_string(&skill_md).map_err(|source| SkillError::Io {
                origin: origin.to_owned(),
                action: "reading",
                path: "SKILL.md".into(),
                source,
            })?;
            let folder = dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned());
            let (frontmatter, _, _) =
                skillport_skill::parse_skill_md(&text, &skill_md, folder.as_deref(), Mode::Lenient);
            let frontmatter = frontmatter.ok_or_else(|| SkillError::Unusable {
                origin: origin.to_owned(),
                first: "SKILL.md has no usable frontmatter".into(),
                count: 1,
            })?;
            Ok(Checked {
                version: frontmatter.metadata.get("version").cloned(),
                description: frontmatter.description,
                warnings: diagnostics
                    .iter()
                    .map(|d| diagnostic_line(dir, d, d.is_error()))
                    .collect(),
            })
        }
    }
}

/// `SKILL.md:3:7: message`, the file relative to the skill folder.
fn diagnostic_line(dir: &Path, diagnostic: &Diagnostic, ignored: bool) -> String {
    let file = diagnostic
        .file
        .strip_prefix(dir)
        .unwrap_or(&diagnostic.file)
        .display();
    let mut line = format!("{file}");
    if let Some(number) = diagnostic.line {
        let _ = write!(line, ":{number}");
        if let Some(column) = diagnostic.column {
            let _ = write!(line, ":{column}");
        }
    }
    line.push_str(": ");
    line.push_str(&diagnostic.message);
    if ignored {
        line.push_str(" (skill.yaml ignored)");
    }
    chain_free(&line)
}

/// Diagnostics are one line already; keep them so.
fn chain_free(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
