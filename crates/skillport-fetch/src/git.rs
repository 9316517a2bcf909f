//! Git sources: one folder of a git repository at one ref, fetched with gix (no `git` program).
//!
//! # Expected flow
//!
//! The plan runner reads the source's credential Secret with [`GitCredentials::read`] (if the
//! plan names one) and calls [`fetch`] inside `spawn_blocking`. `fetch`:
//!
//! 1. checks the URL (`https://`, `http://` or `git://`, no password in it) and the ref;
//! 2. makes a work folder `.skillport-git-*` in `dest`'s parent holding an empty bare
//!    repository, configured from nothing on the machine (no system or user git config, no
//!    `GIT_*` variables, no credential helpers);
//! 3. lists the ref on the server (protocol v2 `ls-refs`) and fetches it with depth 1 and no
//!    tags: a branch or tag by name, a full commit SHA by object id (see below);
//! 4. peels the result to a commit (annotated tags included), finds `path` in its tree and writes
//!    that folder's files into the work folder by walking the tree itself;
//! 5. renames the written folder to `dest` and removes the work folder.
//!
//! # Which ref
//!
//! - 40 hex digits: a commit (or tag object) SHA, asked for directly with `want <sha>`. Git
//!   servers speaking protocol v2 (git ≥ 2.18, GitHub, GitLab) answer that for any object they
//!   have; older servers only with `uploadpack.allowAnySHA1InWant` (or
//!   `allowReachableSHA1InWant`). Still shallow: nothing else is fetched.
//! - `refs/…`: that exact ref. `HEAD`: the default branch.
//! - Anything else: `refs/tags/<name>`, else `refs/heads/<name>` (git's order: a tag wins over
//!   a branch of the same name).
//!
//! # Guarantees
//!
//! - `dest` appears in one rename, complete, or not at all; the work folder (repository and
//!   half-written files) is removed on success and on every error.
//! - No `git` program, ssh or credential helper is run; `ssh://`, `file://`, scp-style and
//!   local-path URLs are refused rather than handed to one.
//! - Credentials go only into the `Authorization` header of HTTPS requests to a host the Secret
//!   names (its `host` key; a token for one server is never offered to a URL of another) and
//!   the URL's own host — never over plain `http://` (refused up front), never after a redirect (not
//!   followed when credentials are given), never in argv, the environment, a log line or an
//!   error. Every error names the URL with any `user:password@` and query string removed; a
//!   URL with userinfo is refused (credentials belong in a Secret, not in the plan).
//! - Only files under `path` are written: blobs as 0644 or 0755 (the git mode), folders 0755.
//!   A blob stored whole in the pack is inflated from the (memory-mapped) pack straight into
//!   its file, 64 KiB at a time; only a blob stored as a delta is resolved in memory.
//!   Names `.`, `..`, `.git` (any case), names with `/` or NUL, duplicate names, symbolic links
//!   that leave the skill folder (by text, then on disk once all exist) and blobs past
//!   [`GitOptions::max_bytes`] are refused. Submodules (gitlinks) are skipped and reported in
//!   [`GitFetched::submodules`].
//! - [`GitOptions::timeout`] bounds the whole fetch: socket reads and HTTP requests time out,
//!   and a watchdog interrupts the pack download at the deadline. The same watchdog stops a
//!   download whose pack passes [`GitOptions::max_download_bytes`].
//!
//! # Caveats
//!
//! - A shallow fetch still downloads every file of the commit, not only `path` (gix has no
//!   partial clone); `max_download_bytes` is the guard against a giant repository.
//! - The password is copied into gix's HTTP client for the duration of the fetch, where it is
//!   not zeroed on drop.
//! - Proxies come from reqwest's defaults (`HTTPS_PROXY`, `NO_PROXY`, …), not from git config.

mod credentials;
mod packed;
mod remote;
mod tree;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skillport_oci::folder::{self, PublishError};
use skillport_registry::auth::Secret;

pub use credentials::TOKEN_USERNAME;

/// Where a git skill comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// `https://`, `http://` or `git://` URL of the repository.
    pub url: String,
    /// A branch, a tag, a full ref name (`refs/…`), `HEAD`, or a full 40-hex commit SHA.
    pub reference: String,
    /// The skill's folder inside the repository (`skills/code-review`); `None` for the root.
    pub path: Option<String>,
}

/// HTTP basic credentials for a git server, from a mounted Secret, bound to the hosts they are
/// for: [`fetch`] and [`resolve`] offer them to no other host.
///
/// `{:?}` shows the username and hosts, and `<redacted>` for the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitCredentials {
    pub username: String,
    pub password: Secret,
    /// `host` or `host:port` (lowercase; port 443 when not given), from the Secret's `host` key.
    pub hosts: Vec<String>,
}

/// Limits and TLS settings for [`fetch`].
#[derive(Debug, Clone)]
pub struct GitOptions {
    /// The whole fetch, connection to last byte.
    pub timeout: Duration,
    /// Total bytes of the files written (the checked-out folder).
    pub max_bytes: u64,
    /// Number of files, folders and links written.
    pub max_entries: u64,
    /// Bytes of the pack downloaded (the whole commit's tree, compressed).
    pub max_download_bytes: u64,
    /// Extra PEM CA certificates trusted for `https://` (on top of the system's).
    pub ca_files: Vec<PathBuf>,
    /// Accept any server certificate. For tests and emergencies only.
    pub insecure_skip_tls_verify: bool,
}

impl Default for GitOptions {
    fn default() -> Self {
        GitOptions {
            timeout: Duration::from_secs(300),
            max_bytes: 1 << 30,
            max_entries: 100_000,
            max_download_bytes: 2 << 30,
            ca_files: Vec::new(),
            insecure_skip_tls_verify: false,
        }
    }
}

/// What [`fetch`] published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitFetched {
    /// The commit the ref resolved to, 40 hex digits.
    pub commit: String,
    /// Regular files written (symbolic links not counted).
    pub files: usize,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Submodules (gitlinks) skipped, as paths relative to the skill folder.
    pub submodules: Vec<String>,
}

/// Why a git skill could not be fetched. `url` is always the URL without userinfo or query;
/// no variant ever holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("invalid git URL {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("invalid git ref {reference:?} for {url}: {reason}")]
    Ref {
        url: String,
        reference: String,
        reason: String,
    },
    #[error("invalid path {path:?} for {url}: {reason}")]
    Path {
        url: String,
        path: String,
        reason: String,
    },
    #[error("cannot read git credentials {}: {reason}", path.display())]
    Credentials { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// `with_credentials` says whether credentials were sent, for the hint.
    #[error("{url} refused access: {reason}")]
    Auth {
        url: String,
        reason: String,
        with_credentials: bool,
    },
    #[error("{url} has no branch, tag or commit {reference:?}")]
    RefNotFound { url: String, reference: String },
    #[error("fetching {reference:?} from {url}: {reason}")]
    Fetch {
        url: String,
        reference: String,
        reason: String,
    },
    #[error("{reference:?} in {url} is not a commit: {reason}")]
    NotACommit {
        url: String,
        reference: String,
        reason: String,
    },
    #[error("{url} has no {path:?} at {reference} (commit {commit})")]
    PathNotFound {
        url: String,
        reference: String,
        commit: String,
        path: String,
    },
    #[error("{path:?} in {url} at {reference} is not a folder")]
    NotAFolder {
        url: String,
        reference: String,
        path: String,
    },
    #[error("{url}: {path:?} refused: {reason}")]
    Unsafe {
        url: String,
        path: String,
        reason: String,
    },
    /// `what` is `files` (bytes written), `entries` (files, folders and links written) or
    /// `download` (bytes of the pack).
    #[error("{url}: {} pass the limit of {limit} {}", what.text(), what.unit())]
    TooLarge {
        url: String,
        what: Limit,
        limit: u64,
    },
    #[error("fetching from {url} took longer than {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{} already exists and is not an empty folder", path.display())]
    DestinationExists { path: PathBuf },
    #[error("{}: {action}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The local temporary repository failed (gix); not the server's fault.
    #[error("{action} in {}: {reason}", path.display())]
    Repository {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// Which limit of [`GitOptions`] a fetch passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`GitOptions::max_bytes`].
    Files,
    /// [`GitOptions::max_entries`].
    Entries,
    /// [`GitOptions::max_download_bytes`].
    Download,
}

impl Limit {
    fn text(self) -> &'static str {
        match self {
            Limit::Files => "the skill's files",
            Limit::Entries => "the skill's files, folders and links",
            Limit::Download => "the downloaded objects",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Limit::Files | Limit::Download => "bytes",
            Limit::Entries => "entries",
        }
    }
}

impl GitError {
    /// What the user can do about it, for a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            GitError::Url { .. } => "use an https://, http:// or git:// URL without credentials \
                 in it; credentials belong in a mounted Secret"
                .into(),
            GitError::Ref { .. } => {
                "use a branch or tag name, a full ref (refs/…) or a full 40-hex commit SHA".into()
            }
            GitError::Path { .. } => {
                "give the skill's folder relative to the repository root, e.g. skills/code-review"
                    .into()
            }
            GitError::Credentials { .. } => "mount a Secret holding `username` and `password`, \
                 or `token` (a kubernetes.io/basic-auth Secret works)"
                .into(),
            GitError::CaFile { .. } => "give a PEM file with the CA certificate(s)".into(),
            GitError::Connect { reason, .. } if reason.contains("certificate") => {
                "if the server uses a private CA, pass its certificate as a CA file".into()
            }
            GitError::Connect { reason, .. }
                if reason.contains("404") || reason.contains("no such repository") =>
            {
                "check the repository URL: the server has no repository there".into()
            }
            GitError::Connect { reason, .. } if reason.contains("'smart' protocol") => {
                "the URL does not answer like a git server (a web page, or a redirect — \
                 which is not followed when credentials are given): use the repository's \
                 clone URL"
                    .into()
            }
            GitError::Auth {
                with_credentials: true,
                ..
            } => "check the username and password (or token) in the git credential Secret; \
                  they need read access to the repository"
                .into(),
            GitError::Auth {
                with_credentials: false,
                ..
            } => "the repository needs credentials: mount a Secret with username/password or \
                  token and name it in the skill's git source"
                .into(),
            GitError::RefNotFound { reference, .. } if remote::is_full_sha(reference) => {
                "check the commit SHA; a server speaking only git protocol v0/v1 must also allow \
                 fetching unadvertised commits (uploadpack.allowAnySHA1InWant) — or use a tag"
                    .into()
            }
            GitError::RefNotFound { .. } => {
                "check the branch or tag name (names are case-sensitive)".into()
            }
            GitError::PathNotFound { .. } | GitError::NotAFolder { .. } => {
                "`path` must name a folder in the repository at that ref, relative to its root"
                    .into()
            }
            GitError::TooLarge {
                what: Limit::Download,
                ..
            } => "the whole commit is downloaded, not only `path`: raise the download limit, \
                  or keep skills in a smaller repository"
                .into(),
            GitError::TooLarge { .. } => {
                "point `path` at the skill's own folder, or raise the limit".into()
            }
            GitError::Unsafe { .. } => "fix the repository at that ref: a skill's files must \
                 stay inside its folder, as in skill images"
                .into(),
            GitError::Timeout { .. } => {
                "check that the server is reachable from the pod, or raise the timeout".into()
            }
            GitError::DestinationExists { .. } => {
                "remove the folder, or fetch into an empty one".into()
            }
            _ => return None,
        })
    }
}

/// Fetches `source` and writes the files at `source.path` (or the repository root) into a new
/// folder `dest` (which must not exist, or be empty), via a work folder in `dest`'s parent and
/// one rename. Blocking: run it in `spawn_blocking`.
pub fn fetch(
    source: &GitSource,
    credentials: Option<&GitCredentials>,
    dest: &Path,
    options: &GitOptions,
) -> Result<GitFetched, GitError> {
    let credentials = credentials.filter(|credentials| credentials.is_for(&source.url));
    let target = remote::Target::new(source, credentials.is_some())?;
    let subpath = tree::clean_subpath(source.path.as_deref()).map_err(|reason| GitError::Path {
        url: target.display_url.clone(),
        path: source.path.clone().unwrap_or_default(),
        reason: reason.into(),
    })?;
    // Fail before any network traffic when `dest` is taken.
    folder::check_destination(dest)?;
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let work = tempfile::Builder::new()
        .prefix(".skillport-git-")
        .tempdir_in(parent)
        .map_err(|source| GitError::Io {
            action: "creating a temporary folder in",
            path: parent.to_path_buf(),
            source,
        })?;
    let repo_dir = work.path().join("repo.git");
    let files_dir = work.path().join("files");

    let repo = remote::init_repository(&repo_dir)?;
    let commit = remote::fetch_commit(&repo, &target, credentials, options)?;
    let written = tree::write(&repo, &target, commit, &subpath, &files_dir, options)?;
    drop(repo);

    folder::publish(&files_dir, dest)?;
    // `work` (the repository) is removed here; the files left it by the rename.
    drop(work);
    tracing::debug!(
        url = %target.display_url,
        reference = %source.reference,
        %commit,
        files = written.files,
        "fetched a git skill"
    );
    Ok(GitFetched {
        commit: commit.to_string(),
        files: written.files,
        bytes: written.bytes,
        submodules: written.submodules,
    })
}

/// The commit `source.reference` names on the server, 40 hex digits: a branch, tag (peeled) or
/// `HEAD` is listed with `ls-refs` (no pack is downloaded); a full SHA is returned as given. The
/// operator pins git skills with it. Blocking: run it in `spawn_blocking`.
pub fn resolve(
    source: &GitSource,
    credentials: Option<&GitCredentials>,
    options: &GitOptions,
) -> Result<String, GitError> {
    let credentials = credentials.filter(|credentials| credentials.is_for(&source.url));
    let target = remote::Target::new(source, credentials.is_some())?;
    if remote::is_full_sha(&source.reference) {
        return Ok(source.reference.to_ascii_lowercase());
    }
    // gix lists refs through a repository; an empty one in a temporary folder, removed after.
    let work = tempfile::Builder::new()
        .prefix(".skillport-git-")
        .tempdir()
        .map_err(|source| GitError::Io {
            action: "creating a temporary folder in",
            path: std::env::temp_dir(),
            source,
        })?;
    let repo = remote::init_repository(&work.path().join("repo.git"))?;
    let commit = remote::resolve_commit(&repo, &target, credentials, options)?;
    Ok(commit.to_string())
}

impl From<PublishError> for GitError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Taken { path } => GitError::DestinationExists { path },
            PublishError::Io {
                action,
                path,
                source,
            } => GitError::Io {
                action,
                path,
                source,
            },
        }
    }
}
