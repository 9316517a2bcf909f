//! Registry credentials, found the way docker and podman/skopeo find them.
//!
//! Reads Docker `config.json`, podman/containers `auth.json`, Kubernetes `.dockerconfigjson`
//! pull secrets and legacy `.dockercfg` files; runs Docker credential helpers; merges several
//! files in memory (one per pull secret, in the pod); and writes a Docker `config.json` for
//! `skillport login`. Synchronous: a lookup is a few file reads and at most one helper process.
//!
//! # Expected flow
//!
//! - Laptop: [`Credentials::discover`] reads the files docker and podman would, then the
//!   registry client calls [`Credentials::lookup`] with the registry and repository of each
//!   reference and turns the [`Found`] credential into basic auth or a token request.
//! - Pod: `skillport fetch` reads each mounted pull secret with [`AuthFile::read`] (or
//!   [`AuthFile::parse`] with a label such as `pull secret "artifactory"`), merges them with
//!   [`Credentials::from_files`] and logs [`Credentials::warnings`]. Nothing is written to disk.
//!
//! # Which credential is used
//!
//! Files are consulted in order and **the first file that yields a credential wins**; a later
//! file never overrides an earlier match (it only supplies registries the earlier files lack).
//! Within one file, for `registry` and `repository` (`reg.example.com`, `team-a/tools/pdf`):
//!
//! 1. `credHelpers[registry]`: run `docker-credential-<helper> get`. Its answer is final for
//!    this file (its `auths` are not read for that registry, as in docker and containers/image);
//!    "not found" moves on to the next file.
//! 2. `auths`, most specific key first: `reg.example.com/team-a/tools/pdf`,
//!    `reg.example.com/team-a/tools`, `reg.example.com/team-a`, `reg.example.com`. Path-scoped
//!    keys (Artifactory-style) are a containers/image extension; docker matches hosts only.
//!    Keys are compared after [`normalize_registry`], so `https://index.docker.io/v1/`,
//!    `index.docker.io` and `docker.io` are one registry.
//! 3. `credsStore`: run the store's helper; "not found" moves on to the next file.
//!
//! Where docker and podman disagree:
//!
//! - docker asks `credsStore` *instead of* `auths` (an inline `auth` next to a `credsStore` is
//!   ignored); podman ignores `credsStore` altogether. Here an inline credential wins and the
//!   store is asked when there is none — the file's explicit answer first, and a config copied
//!   from a machine whose store helper is not installed still works for inline entries.
//! - docker reads one file; podman reads several, first match wins. We read several.
//!
//! [`Credentials::discover`] reads, in podman's order (containers-auth.json(5)):
//! `$REGISTRY_AUTH_FILE` **alone** when it is set (as `podman --authfile` and skopeo do); else
//! `$XDG_RUNTIME_DIR/containers/auth.json` (`/run/containers/$UID/auth.json` without
//! `XDG_RUNTIME_DIR`), `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/…`),
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, and `~/.dockercfg`.
//!
//! # Guarantees
//!
//! - No secret in any `Debug` or `Display` output, warning or error: [`Secret`] prints
//!   `<redacted>`, JSON errors carry only a position, warnings name keys and never values, and a
//!   helper's error output is shown only as its first line, and not at all when it looks like it
//!   may hold a token (see [`AuthError::HelperFailed`]).
//! - Helpers get the server URL on stdin and answer on stdout; nothing secret is put in argv or
//!   the environment.
//! - A bad entry (empty, undecodable base64, wrong type) is a warning, never an error; a file
//!   that cannot be read or is not JSON is an error naming the file.
//!
//! # Caveats
//!
//! - Helper answers are cached per `Credentials` value (per helper and server URL), so a helper
//!   runs at most once per registry per pull.
//! - `registrytoken` entries (a raw bearer token) are not supported and are warned about.
//! - `login` writes `auths` even when a `credsStore` is configured (docker would hand the
//!   password to the store); it refuses when `credHelpers` names the registry.

mod file;
mod helper;
mod login;
mod name;
mod secret;
pub(crate) mod session;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

pub use file::{AuthFile, AuthFileFormat};
pub use login::{CredentialStore, login, login_with_helper_path, logout, logout_with_helper_path};
pub use name::{DOCKER_HUB, DOCKER_HUB_KEY, normalize_registry};
pub use secret::{Credential, Secret};

use helper::HelperError;
use name::{ancestors, helper_server_url, host_of, scope_keys};

/// How long a credential helper may take before it is killed. Docker waits forever; an init
/// container must not.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong finding or storing credentials. No message ever contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid credentials file {label}: {reason}")]
    Parse { label: String, reason: String },
    /// `setting` is `credHelpers["<key>"]` or `credsStore`; `file` the label of the file that
    /// set it.
    #[error(
        "credential helper docker-credential-{helper} for {registry} not found on PATH \
         (set by {setting} in {file})"
    )]
    HelperMissing {
        helper: String,
        registry: String,
        setting: String,
        file: String,
    },
    /// `message` is the exit status and the first line of the helper's output, trimmed and cut
    /// to 200 characters; the line is left out when it looks like it may hold a secret.
    #[error("credential helper docker-credential-{helper} failed for {registry}: {message}")]
    HelperFailed {
        helper: String,
        registry: String,
        message: String,
        setting: String,
        file: String,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot log in to {registry}: {reason}")]
    Login { registry: String, reason: String },
}

impl AuthError {
    /// What the user can do about it, for a `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            AuthError::HelperMissing {
                helper,
                setting,
                file,
                ..
            } => Some(format!(
                "install docker-credential-{helper}, or remove {setting} from {file}"
            )),
            AuthError::HelperFailed {
                helper,
                setting,
                file,
                ..
            } => Some(format!(
                "check that docker-credential-{helper} works for this registry, or remove \
                 {setting} from {file}"
            )),
            AuthError::Parse { .. } => Some(
                "a credentials file is a Docker config.json ({\"auths\": {…}}), a podman \
                 auth.json, a .dockerconfigjson or a .dockercfg"
                    .to_owned(),
            ),
            AuthError::Read { .. } | AuthError::Write { .. } | AuthError::Login { .. } => None,
        }
    }
}

/// Where a credential came from, printable without secrets:
/// `auths["reg.example.com/team-a"] in pull secret "artifactory"`, or
/// `docker-credential-ecr-login (credHelpers["…"] in /home/u/.docker/config.json)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSource {
    file: String,
    origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// An `auths` entry, as the file writes its key (`auths["…"]`).
    Entry(String),
    /// A helper, and the setting that chose it (`credHelpers["…"]` or `credsStore`).
    Helper { helper: String, setting: String },
}

impl CredentialSource {
    /// The label of the file (a path, or a caller's label such as `pull secret "ecr"`).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The `auths` entry, as the file writes its key, when the credential was stored inline.
    pub fn entry(&self) -> Option<&str> {
        match &self.origin {
            Origin::Entry(shown) => Some(shown),
            Origin::Helper { .. } => None,
        }
    }

    /// The helper name (`ecr-login` for `docker-credential-ecr-login`), when a helper gave it.
    pub fn helper(&self) -> Option<&str> {
        match &self.origin {
            Origin::Entry(_) => None,
            Origin::Helper { helper, .. } => Some(helper),
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Entry(shown) => write!(f, "{shown} in {}", self.file),
            Origin::Helper { helper, setting } => write!(
                f,
                "credential helper docker-credential-{helper} ({setting} in {})",
                self.file
            ),
        }
    }
}

/// A credential and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub credential: Credential,
    pub source: CredentialSource,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.credential, self.source)
    }
}

/// An ordered list of credentials files, merged: see the [module docs](self) for the rules.
pub struct Credentials {
    files: Vec<AuthFile>,
    merge_warnings: Vec<String>,
    helper_path: Option<OsString>,
    helper_timeout: Duration,
    /// (helper, server URL) → answer. Only answers are cached, never failures.
    helper_answers: Mutex<HashMap<(String, String), Option<Credential>>>,
}

impl Credentials {
    /// No files: every lookup finds nothing.
    pub fn empty() -> Credentials {
        Credentials::from_files(Vec::new())
    }

    /// Merge files in the given order (the in-pod case: one file per pull secret).
    ///
    /// The FIRST file with a matching entry wins; later files never override an earlier match.
    /// Within one file the most specific key wins (`reg/org/repo` beats `reg/org` beats `reg`).
    /// A later entry that can never be used (the same key, or one under a key, that an earlier
    /// file already has) is reported by [`Credentials::warnings`].
    pub fn from_files(files: Vec<AuthFile>) -> Credentials {
        let merge_warnings = shadowed_entries(&files);
        Credentials {
            files,
            merge_warnings,
            helper_path: None,
            helper_timeout: DEFAULT_HELPER_TIMEOUT,
            helper_answers: Mutex::new(HashMap::new()),
        }
    }

    /// Read the files docker and podman read, in podman's order (see the [module docs](self)).
    /// Missing files are skipped; an unreadable or invalid one is an error naming it.
    pub fn discover() -> Result<Credentials, AuthError> {
        Credentials::discover_with(|name| {
            std::env::var_os(name).or_else(|| {
                if name == "HOME" {
                    std::env::home_dir().map(PathBuf::into_os_string)
                } else {
                    None
                }
            })
        })
    }

    /// [`Credentials::discover`] with the environment given as a function, for tests and for
    /// callers that hold their own environment.
    pub fn discover_with(var: impl Fn(&str) -> Option<OsString>) -> Result<Credentials, AuthError> {
        let mut files = Vec::new();
        for path in Credentials::discovery_paths(var) {
            match std::fs::read(&path) {
                Ok(bytes) => files.push(AuthFile::parse(&bytes, path.display().to_string())?),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) => {}
                Err(source) => return Err(AuthError::Read { path, source }),
            }
        }
        Ok(Credentials::from_files(files))
    }

    /// The files [`Credentials::discover_with`] reads, in order, whether they exist or not.
    /// Variables set to the empty string count as unset.
    pub fn discovery_paths(var: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
        let var = |name: &str| {
            var(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        if let Some(file) = var("REGISTRY_AUTH_FILE") {
            return vec![file];
        }
        let home = var("HOME");
        let mut paths = Vec::new();
        match var("XDG_RUNTIME_DIR") {
            Some(dir) => paths.push(dir.join("containers/auth.json")),
            None => paths.extend(
                current_uid().map(|uid| PathBuf::from(format!("/run/containers/{uid}/auth.json"))),
            ),
        }
        if let Some(config) =
            var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")))
        {
            paths.push(config.join("containers/auth.json"));
        }
        if let Some(docker) =
            var("DOCKER_CONFIG").or_else(|| home.as_ref().map(|h| h.join(".docker")))
        {
            paths.push(docker.join("config.json"));
        }
        if let Some(home) = &home {
            paths.push(home.join(".dockercfg"));
        }
        let mut seen = std::collections::HashSet::new();
        paths.retain(|path| seen.insert(path.clone()));
        paths
    }

    /// Search credential helpers on this `PATH`-style list instead of the process's `PATH`; the
    /// helper is also run with it as its `PATH`. The rest of the environment is inherited
    /// (helpers such as ecr-login read their own settings from it).
    #[must_use]
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Credentials {
        self.helper_path = Some(path.into());
        self
    }

    /// How long a helper may run before it is killed ([`DEFAULT_HELPER_TIMEOUT`] by default).
    #[must_use]
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Credentials {
        self.helper_timeout = timeout;
        self
    }

    /// The files, in the order they are consulted.
    pub fn files(&self) -> &[AuthFile] {
        &self.files
    }

    /// The credential for `repository` (`org/repo`) on `registry` (`host[:port]` as in the
    /// reference; `docker.io` or any alias for Docker Hub — official images are `library/…`).
    ///
    /// `Ok(None)` when no file has one: pull anonymously. An error means a configured helper is
    /// missing or failed; a caller pulling a public image may log it and go on anonymously.
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Found>, AuthError> {
        let keys = scope_keys(registry, repository);
        let host = keys.last().map_or("", String::as_str);
        if host.is_empty() {
            return Ok(None);
        }
        for file in &self.files {
            if let Some(entry) = file.helper_for(host) {
                let setting = format!("credHelpers[{:?}]", entry.raw_key);
                if let Some(found) = self.ask_helper(file, &entry.helper, setting, host)? {
                    return Ok(Some(found));
                }
                continue;
            }
            if let Some(entry) = keys.iter().find_map(|key| file.entry(key)) {
                tracing::debug!(registry = host, source = %entry.shown, file = file.label(), "credential found");
                return Ok(Some(Found {
                    credential: entry.credential.clone(),
                    source: CredentialSource {
                        file: file.label().to_owned(),
                        origin: Origin::Entry(entry.shown.clone()),
                    },
                }));
            }
            if let Some(store) = file.creds_store()
                && let Some(found) = self.ask_helper(file, store, "credsStore".to_owned(), host)?
            {
                return Ok(Some(found));
            }
        }
        tracing::debug!(registry = host, repository, "no credential");
        Ok(None)
    }

    /// Every file's warnings, in file order, then the merge's: entries in later files that an
    /// earlier file shadows ("duplicate entry for X in B ignored: A already has one").
    pub fn warnings(&self) -> Vec<String> {
        self.files
            .iter()
            .flat_map(|file| file.warnings().iter().cloned())
            .chain(self.merge_warnings.iter().cloned())
            .collect()
    }

    fn ask_helper(
        &self,
        file: &AuthFile,
        helper: &str,
        setting: String,
        host: &str,
    ) -> Result<Option<Found>, AuthError> {
        let server_url = helper_server_url(host);
        let found = |credential: Credential, setting: String| Found {
            credential,
            source: CredentialSource {
                file: file.label().to_owned(),
                origin: Origin::Helper {
                    helper: helper.to_owned(),
                    setting,
                },
            },
        };
        let cache_key = (helper.to_owned(), server_url.clone());
        if let Some(answer) = self.answers().get(&cache_key) {
            return Ok(answer.clone().map(|credential| found(credential, setting)));
        }
        let at_fault = HelperSetting::new(helper, host, &setting, file.label());
        let program = at_fault.program(self.helper_path.as_deref())?;
        tracing::debug!(
            registry = host,
            helper,
            file = file.label(),
            "asking credential helper"
        );
        let answer = helper::get(
            &program,
            &server_url,
            self.helper_path.as_deref(),
            self.helper_timeout,
            &|line| self.contains_known_secret(line),
        )
        .map_err(|error| at_fault.error(error))?;
        self.answers().insert(cache_key, answer.clone());
        Ok(answer.map(|credential| found(credential, setting)))
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Option<Credential>>> {
        self.helper_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `text` contains a secret this value already holds (inline or from a helper).
    fn contains_known_secret(&self, text: &str) -> bool {
        let holds = |credential: &Credential| {
            let secret = credential.secret().expose();
            secret.len() >= 4 && text.contains(secret)
        };
        self.files
            .iter()
            .flat_map(AuthFile::entries)
            .any(|(_, entry)| holds(&entry.credential))
            || self.answers().values().flatten().any(holds)
    }
}

/// A helper setting (`credHelpers[…]` or `credsStore` in a file) and the registry it serves:
/// what errors name.
pub(crate) struct HelperSetting<'a> {
    pub helper: &'a str,
    pub registry: &'a str,
    pub setting: &'a str,
    pub file: &'a str,
}

impl<'a> HelperSetting<'a> {
    pub(crate) fn new(
        helper: &'a str,
        registry: &'a str,
        setting: &'a str,
        file: &'a str,
    ) -> HelperSetting<'a> {
        HelperSetting {
            helper,
            registry,
            setting,
            file,
        }
    }

    /// `docker-credential-<helper>` on `search_path` (`PATH` when `None`).
    pub(crate) fn program(
        &self,
        search_path: Option<&std::ffi::OsStr>,
    ) -> Result<PathBuf, AuthError> {
        let search_path = search_path
            .map(std::ffi::OsStr::to_os_string)
            .or_else(|| std::env::var_os("PATH"));
        search_path
            .as_deref()
            .and_then(|path| helper::find_program(self.helper, path))
            .ok_or_else(|| self.error(HelperError::Missing))
    }

    pub(crate) fn error(&self, error: HelperError) -> AuthError {
        match error {
            HelperError::Missing => AuthError::HelperMissing {
                helper: self.helper.to_owned(),
                registry: self.registry.to_owned(),
                setting: self.setting.to_owned(),
                file: self.file.to_owned(),
            },
            HelperError::Failed(message) => AuthError::HelperFailed {
                helper: self.helper.to_owned(),
                registry: self.registry.to_owned(),
                message,
                setting: self.setting.to_owned(),
                file: self.file.to_owned(),
            },
        }
    }
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials::empty()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("files", &self.files)
            .field("merge_warnings", &self.merge_warnings)
            .field("helper_path", &self.helper_path)
            .field("helper_timeout", &self.helper_timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.files.is_empty() {
            return f.write_str("no credentials files");
        }
        for (index, file) in self.files.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{file}")?;
        }
        Ok(())
    }
}

/// The path of the Docker config that `docker login` writes: `$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`.
pub fn default_docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        return Some(Path::new(&dir).join("config.json"));
    }
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(std::env::home_dir)?;
    Some(home.join(".docker").join("config.json"))
}

/// Warnings for entries of later files that the first-match rule makes unreachable: the same
/// key in an earlier file, or a key under an earlier file's key (`reg/team-a` after `reg`).
/// An earlier file whose `credHelpers` owns the registry does not shadow anything: its helper
/// may answer "not found", and then the later file is asked.
fn shadowed_entries(files: &[AuthFile]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (index, later) in files.iter().enumerate() {
        for (key, _) in later.entries() {
            let earlier = files[..index]
                .iter()
                .filter(|earlier| earlier.helper_for(host_of(key)).is_none())
                .find_map(|earlier| {
                    std::iter::once(key)
                        .chain(ancestors(key))
                        .find(|candidate| earlier.entry(candidate).is_some())
                        .map(|covering| (earlier, covering))
                });
            match earlier {
                Some((earlier, covering)) if covering == key => warnings.push(format!(
                    "duplicate entry for {key} in {} ignored: {} already has one",
                    later.label(),
                    earlier.label()
                )),
                Some((earlier, covering)) => warnings.push(format!(
                    "entry for {key} in {} is never used: {} has one for {covering}, which \
                     matches first",
                    later.label(),
                    earlier.label()
                )),
                None => {}
            }
        }
    }
    warnings
}

#[cfg(unix)]
fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|meta| meta.uid())
}

#[cfg(not(unix))]
fn current_uid() -> Option<u32> {
    None
}
