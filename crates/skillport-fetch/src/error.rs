// What can go wrong: the whole run (`FetchError`: the plan, `--into`, a credential file) or
// one skill (`SkillFailure`). Messages are one line, name the skill and the registry or
// repository, and never hold a credential (the errors they wrap never do either).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use skillport_oci::tree_hash::TreeHashError;
use skillport_registry::RegistryError;
use skillport_registry::auth::AuthError;

use crate::git::GitError;
use crate::plan::{PlanError, Source};

/// Why nothing was fetched, or the index could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{action} {}: {source}", path.display())]
    Into {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("another skillport fetch is writing into {} and did not finish in time", path.display())]
    Busy { path: PathBuf },
    /// A pull secret that cannot be read or is not a Docker config.
    #[error("pull secret {name:?}: {}", chain(source))]
    PullSecret {
        name: String,
        #[source]
        source: Box<AuthError>,
    },
    #[error("git credentials {name:?}: {source}")]
    GitCredentials {
        name: String,
        #[source]
        source: Box<GitError>,
    },
    /// The registry client cannot be built (a CA file).
    #[error(transparent)]
    Client(Box<RegistryError>),
    #[error("writing {}: {source}", path.display())]
    Index {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            FetchError::Plan(err) => err.hint(),
            FetchError::Into { .. } => {
                Some("--into must be a writable folder (an emptyDir in the pod)".into())
            }
            FetchError::Busy { .. } => Some("run one skillport fetch per folder at a time".into()),
            FetchError::PullSecret { .. } => Some(
                "pull secrets are kubernetes.io/dockerconfigjson Secrets, mounted so that the \
                 plan's path is their .dockerconfigjson file"
                    .into(),
            ),
            FetchError::GitCredentials { source, .. } => source.hint(),
            FetchError::Client(err) => match **err {
                RegistryError::CaFile { .. } | RegistryError::Io { .. } => {
                    Some("the plan's caFiles must be readable PEM certificate files".into())
                }
                _ => err.hint(),
            },
            FetchError::Index { .. } => None,
        }
    }
}

/// Why one skill was not fetched.
#[derive(Debug)]
pub struct SkillFailure {
    /// The skill's name in the plan.
    pub name: String,
    /// Where it was to come from.
    pub source: Source,
    pub error: SkillError,
    /// How often the failing step was tried (transient failures are retried).
    pub attempts: u32,
}

/// The cause, per kind of failure.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    /// `reference` is the image as fetched (pinned once resolved).
    #[error("{}", registry_message(reference, error))]
    Registry {
        reference: String,
        error: Box<RegistryError>,
    },
    #[error(transparent)]
    Git(Box<GitError>),
    #[error("{origin}: no SKILL.md at the top of the skill")]
    NoSkillMd { origin: String },
    /// A mounted skill folder with nothing in it: some runtimes mount an image volume empty
    /// without reporting an error.
    #[error(
        "{origin}: {} is empty: the image volume was mounted without its content (some container \
         runtimes do this without an error); check the node's runtime, or use delivery \
         InitContainer",
        path.display()
    )]
    EmptyMount { origin: String, path: PathBuf },
    /// The first error, and how many there were.
    #[error("{origin}: SKILL.md cannot be used: {first}{}", more(*count))]
    Unusable {
        origin: String,
        first: String,
        count: usize,
    },
    #[error("{origin}: {action} {}: {source}", path.display())]
    Io {
        origin: String,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The fetched files could not be hashed (a FIFO or device, or an I/O error).
    #[error("{origin}: hashing the fetched files: {source}")]
    Hash {
        origin: String,
        #[source]
        source: TreeHashError,
    },
    /// `last` is the error of the attempt before time ran out, if there was one.
    #[error(
        "{origin}: not fetched within the {}s timeout{}",
        limit.as_secs(),
        last.as_ref().map(|last| format!(" (last error: {last})")).unwrap_or_default()
    )]
    TimedOut {
        origin: String,
        limit: Duration,
        last: Option<String>,
    },
}

fn more(count: usize) -> String {
    match count {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}

/// The registry error, prefixed with the reference when it does not name the registry
/// itself (an unsafe layer entry, a missing SKILL.md, …), with its causes.
fn registry_message(reference: &str, error: &RegistryError) -> String {
    let text = chain(error);
    let registry = reference.split('/').next().unwrap_or(reference);
    if text.starts_with(registry) {
        text
    } else {
        format!("{reference}: {text}")
    }
}

/// An error and its causes on one line, skipping causes its message already includes.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace(['\n', '\r'], " ")
}

impl SkillError {
    /// Whether another attempt may work (the network, the server), rather than needing a
    /// change (credentials, references, content).
    pub fn is_transient(&self) -> bool {
        match self {
            SkillError::Registry { error, .. } => {
                error.is_transient() || matches!(**error, RegistryError::SizeMismatch { .. })
            }
            SkillError::Git(error) => {
                matches!(**error, GitError::Connect { .. } | GitError::Fetch { .. })
            }
            _ => false,
        }
    }
}

impl fmt::Display for SkillFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skill {:?}: {}", self.name, self.error)?;
        if self.attempts > 1 && !matches!(self.error, SkillError::TimedOut { .. }) {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for SkillFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl SkillFailure {
    /// What to do about it, in the pod's terms (pull secrets, the plan), not a laptop's.
    pub fn hint(&self) -> Option<String> {
        match &self.error {
            SkillError::Registry { error, .. } => match &**error {
                RegistryError::Unauthorized { registry, .. } => Some(format!(
                    "list a pull secret with credentials for {registry} in the plan's \
                     pullSecrets (a SkillSet's imagePullSecrets), or fix the one it lists"
                )),
                RegistryError::Tls { registry, .. } => Some(format!(
                    "add {registry}'s CA certificate to the plan's caFiles, or list it in \
                     insecureRegistries"
                )),
                RegistryError::Auth(_) => Some(
                    "pull secrets in the pod cannot use credential helpers; put the credentials \
                     in the secret's auths"
                        .into(),
                ),
                RegistryError::TooLarge { .. } => Some(
                    "a skill image's layer must stay under fetch's download limit (2 GiB unless \
                     set otherwise); check that the reference names a skill image"
                        .into(),
                ),
                RegistryError::Read(_) => Some(
                    "the image is not a skill image Skillport can unpack safely; rebuild it with \
                     `skillport build`"
                        .into(),
                ),
                other => other
                    .hint()
                    .filter(|hint| !hint.contains("skillport login")),
            },
            SkillError::Git(error) => error.hint(),
            SkillError::NoSkillMd { .. } => Some(
                "a skill is a folder with a SKILL.md at its top; check the image, or the git \
                 source's path"
                    .into(),
            ),
            SkillError::Unusable { .. } => {
                Some("SKILL.md needs frontmatter with at least name and description".into())
            }
            SkillError::TimedOut { .. } => {
                Some("raise --timeout, or check that the source is reachable from the pod".into())
            }
            SkillError::Io { .. } | SkillError::Hash { .. } | SkillError::EmptyMount { .. } => None,
        }
    }

    /// The registry host or git URL the skill comes from.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::Image(reference) => reference.split('/').next().unwrap_or("").to_owned(),
            Source::Git(git) => git.url.clone(),
        }
    }
}
