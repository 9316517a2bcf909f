//! Carrying out a plan: [`fetch`].
//!
//! # Expected flow
//!
//! 1. The plan is validated again (it may have been built in code), then `--into` is created
//!    if needed and locked (`flock` on the folder), and what an interrupted run left there
//!    (`.skillport-*`) is removed.
//! 2. The previous `index.json`, if any, is read: it says what each folder holds.
//! 3. Pull secrets are read and merged in memory, once ([`Credentials::from_files`], first
//!    match wins, each labelled `pull secret "<name>"`); their warnings (empty or shadowed
//!    entries) go into [`Report::warnings`], and the registries of the plan's images that no
//!    secret covers are noted for the 401 message, before the credentials go to the client.
//!    Git credentials are read when a skill needs them.
//! 4. Every skill runs as its own task, up to [`FetchOptions::parallel`] at once, each in its
//!    own staging folder under `--into`:
//!    - up to date? (see below) → kept as it is, no download;
//!    - else downloaded into `<staging>/<target>` (images: every digest verified, a layer
//!      declared larger than [`FetchOptions::max_download_bytes`] refused before its download,
//!      the layer unpacked with the registry client's safety rules and
//!      [`FetchOptions::max_skill_bytes`]; git: see [`crate::git`]), its SKILL.md checked
//!      leniently, its tree hash taken, then swapped into `<into>/<target>` by one rename.
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
//! folder's [tree hash](skillport_oci::tree_hash) is the one recorded (every path, kind,
//! execute bit, link text and file byte as fetched: an edit of any size, a file added or
//! removed, a `chmod` all make it differ; the cost is reading the folder once), and:
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
//!   failed, its previous entry when its old folder still has the recorded tree hash. A
//!   restart after a failure therefore skips what already arrived.
//! - No credential is written anywhere or put in a message.
//!
//! # Caveats
//!
//! - An index written before tree hashes were recorded has entries without `treeHash`; those
//!   skills are fetched again once.
//! - A folder that exists at a target but is not in the index is replaced: the plan owns its
//!   targets. Other folders in `--into` are never touched.
//! - A timeout cannot stop an unpack already running on a blocking thread; its staging folder
//!   may stay until the next run removes it.

mod git_skill;
mod image_skill;
pub(crate) mod publish;
mod retry;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skillport_registry::auth::{AuthError, AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions};
use tempfile::TempDir;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::{FetchError, SkillError, SkillFailure};
use crate::git::{self, GitCredentials};
use crate::index::{IndexEntry, SkillIndex};
use crate::into_folder::{IntoFolder, OpenError};
use crate::plan::{FetchPlan, PlannedSkill, Source};
use retry::{RetryPolicy, Tries};

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
    /// What one skill may download: an image's layer as stored (compressed), refused before
    /// the download when the registry declares more, and cut off when more arrives; a git
    /// source's pack (the whole commit, compressed).
    pub max_download_bytes: u64,
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
            // Compressed content is smaller than what it expands to; a git pack holds the
            // whole commit, not only the skill's folder, hence the headroom.
            max_download_bytes: 2 << 30,
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
        Some(termination_line(&line))
    }
}

/// `text` on one line of at most 1024 bytes, for a termination message.
pub fn termination_line(text: &str) -> String {
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
    // Credentials and the client first: a Secret file that is not there must leave no folder.
    let (prepared, mut warnings) = prepare(plan, options)?;
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
    let context = Arc::new(Context {
        client: prepared.client,
        secret_names: plan.pull_secrets.iter().map(|s| s.name.clone()).collect(),
        folder,
        git_credentials: prepared.git_credentials,
        ca_files: prepared.ca_files,
        options: options.clone(),
        deadline,
    });

    let outcomes = fetch_all(&context, plan, &previous).await;
    let removed = remove_unplanned(&context, plan, &previous, &mut warnings);
    let index = write_index(&context, plan, &previous, &outcomes).await?;
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

/// What a fetch needs before it touches the folder: the client with the pull secrets, the git
/// credentials, the CA files.
struct Prepared {
    client: Client,
    git_credentials: Option<GitCredentials>,
    ca_files: Vec<PathBuf>,
}

/// Reads the credentials and builds the client; returns the credential warnings too.
fn prepare(
    plan: &FetchPlan,
    options: &FetchOptions,
) -> Result<(Prepared, Vec<String>), FetchError> {
    let credentials = Credentials::from_files(read_pull_secrets(plan)?);
    let warnings = credentials.warnings();
    // Read only when a source can use them: they are sent over https only.
    let needs_git_credentials = plan.skills.iter().any(|skill| {
        skill
            .git
            .as_ref()
            .is_some_and(|git| git_skill::sends_credentials(&git.url))
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
    let client = Client::new(credentials, client_options)
        .map_err(|err| FetchError::Client(Box::new(err)))?;
    let prepared = Prepared {
        client,
        git_credentials,
        ca_files,
    };
    Ok((prepared, warnings))
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
async fn write_index(
    context: &Context,
    plan: &FetchPlan,
    previous: &SkillIndex,
    outcomes: &[Outcome],
) -> Result<PathBuf, FetchError> {
    let mut entries = Vec::new();
    for (skill, outcome) in plan.skills.iter().zip(outcomes) {
        match &outcome.result {
            Ok(done) => entries.push(done.entry.clone()),
            Err(_) => {
                if let Some(old) = previous
                    .entry(&skill.name)
                    .filter(|old| old.path == skill.target())
                    && in_place(context, old).await
                {
                    entries.push(old.clone());
                }
            }
        }
    }
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
                image_skill::fetch_image(&context, &skill, text, previous.as_ref(), &mut tries)
                    .await
            }
            Source::Git(spec) => {
                git_skill::fetch_git(&context, &skill, spec, previous.as_ref(), &mut tries).await
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

impl Context {
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.options.attempts,
            backoff: self.options.backoff,
        }
    }
}

/// Whether the folder of `entry` still holds what it did when the entry was written: the same
/// tree hash. Reads every file, on a blocking thread. An entry without a tree hash (from an
/// older index) is never in place.
async fn in_place(context: &Context, entry: &IndexEntry) -> bool {
    let Some(recorded) = entry.tree_hash.clone() else {
        return false;
    };
    let dir = context.folder.path().join(&entry.path);
    let name = entry.name.clone();
    tokio::task::spawn_blocking(move || match skillport_oci::tree_hash::tree_hash(&dir) {
        Ok(found) if found == recorded => true,
        Ok(found) => {
            tracing::info!(
                skill = name,
                "folder changed since it was fetched ({found}, {recorded} recorded)"
            );
            false
        }
        Err(err) => {
            tracing::info!(skill = name, "folder not usable as it is: {err}");
            false
        }
    })
    .await
    .expect("hashing does not panic")
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

/// What `fetch --dry-run` found for one skill: the digest or commit its source resolves to
/// now (checking the credentials the plan names), or why it would fail.
#[derive(Debug)]
pub struct Planned {
    pub name: String,
    pub target: String,
    pub source: String,
    pub resolved: Result<String, String>,
}

/// Everything `fetch` checks before it writes, and nothing written: the plan is valid, its
/// credential and CA files read, and every source resolves (image references to digests with
/// the plan's pull secrets, git refs to commits). `Err` as [`fetch`] for what stops it all.
pub async fn dry_run(plan: &FetchPlan, options: &FetchOptions) -> Result<Vec<Planned>, FetchError> {
    plan.validate()?;
    let (prepared, _) = prepare(plan, options)?;
    let prepared = Arc::new(prepared);
    let checks: Vec<_> = plan
        .skills
        .iter()
        .map(|skill| {
            let prepared = prepared.clone();
            let skill = skill.clone();
            let timeout = options.timeout;
            async move {
                let source = skill.source();
                let resolved = match &source {
                    Some(Source::Image(reference)) => {
                        match reference.parse::<skillport_oci::Reference>() {
                            Ok(parsed) => prepared
                                .client
                                .resolve(&parsed)
                                .await
                                .map(|descriptor| descriptor.digest.to_string())
                                .map_err(|err| match err.hint() {
                                    Some(hint) => format!("{err} ({hint})"),
                                    None => err.to_string(),
                                }),
                            Err(err) => Err(err.to_string()),
                        }
                    }
                    Some(Source::Git(spec)) => {
                        let source = git::GitSource {
                            url: spec.url.clone(),
                            reference: spec.reference.clone(),
                            path: spec.path.clone(),
                        };
                        let options = git::GitOptions {
                            timeout,
                            ca_files: prepared.ca_files.clone(),
                            ..git::GitOptions::default()
                        };
                        let prepared = prepared.clone();
                        tokio::task::spawn_blocking(move || {
                            let credentials = prepared
                                .git_credentials
                                .as_ref()
                                .filter(|_| git_skill::sends_credentials(&source.url));
                            git::resolve(&source, credentials, &options)
                                .map_err(|err| err.to_string())
                        })
                        .await
                        .unwrap_or_else(|err| Err(err.to_string()))
                    }
                    None => Err("the plan names no source".to_owned()),
                };
                Planned {
                    name: skill.name.clone(),
                    target: skill.target().to_owned(),
                    source: source.map(|s| s.to_string()).unwrap_or_default(),
                    resolved,
                }
            }
        })
        .map(tokio::spawn)
        .collect();
    let mut planned = Vec::with_capacity(checks.len());
    for check in checks {
        planned.push(check.await.expect("a dry-run check does not panic"));
    }
    Ok(planned)
}
