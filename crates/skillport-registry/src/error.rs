// What can go wrong talking to a registry. Every message names the registry (and the
// reference or repository where there is one) and never a credential.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use skillport_oci::{Digest, StoreError};

use crate::auth::AuthError;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}: cannot connect: {reason}")]
    Connect {
        registry: String,
        reason: String,
        #[source]
        source: reqwest::Error,
    },
    /// The reason is the TLS library's own (the innermost cause): the HTTP client's error
    /// around it would only say it again.
    #[error("{registry}: TLS: {reason}")]
    Tls { registry: String, reason: String },
    #[error("{registry}: no answer within {seconds} s")]
    Timeout {
        registry: String,
        seconds: u64,
        #[source]
        source: reqwest::Error,
    },
    /// Setting up the HTTP client failed (before any registry was asked).
    #[error("setting up HTTPS: {reason}")]
    Setup { reason: String },
    #[error("{registry}: 401 unauthorized for {repository} ({detail})")]
    Unauthorized {
        registry: String,
        repository: String,
        detail: String,
        /// Whether any credential was found for the registry (and refused), as opposed to
        /// none at all.
        had_credentials: bool,
    },
    #[error("{registry}: 403 denied: {repository}: {message}")]
    Denied {
        registry: String,
        repository: String,
        message: String,
    },
    #[error("{registry}: {what} not found: {message}")]
    NotFound {
        registry: String,
        what: String,
        message: String,
    },
    #[error("{registry}: {status} {what}: {message}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        message: String,
        /// What the registry's `Retry-After` asked for.
        retry_after: Option<Duration>,
    },
    /// The registry sent us (a redirect, an upload location, a token realm) from HTTPS to
    /// plain HTTP, where credentials and content could be read or changed on the way.
    #[error("{registry}: {what}: refusing to go on over plain HTTP to {to}")]
    Downgrade {
        registry: String,
        what: String,
        to: String,
    },
    #[error("{registry}: {what}: {reason}")]
    Protocol {
        registry: String,
        what: String,
        reason: String,
    },
    #[error("{registry}: {what} does not match its digest: expected {expected}, got {found}")]
    DigestMismatch {
        registry: String,
        what: String,
        expected: Digest,
        found: Digest,
    },
    #[error("{registry}: {what} is {found} bytes, {expected} expected")]
    SizeMismatch {
        registry: String,
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{registry}: {what} is larger than the {limit}-byte limit")]
    TooLarge {
        registry: String,
        what: String,
        limit: u64,
    },
    #[error("{registry}: {media_type} is not an image we can read ({what})")]
    UnsupportedMediaType {
        registry: String,
        what: String,
        media_type: String,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("reading CA certificates from {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Read(#[from] skillport_oci::ReadError),
}

/// What kind of failure an error is, for callers that act on it (retry, exit code, condition
/// reason) without matching every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer: connection refused or reset, DNS, timeouts.
    Network,
    /// The TLS handshake or certificate failed.
    Tls,
    /// Credentials missing, refused, or lacking permission.
    Auth,
    /// The registry has no such repository, tag, manifest or blob.
    NotFound,
    /// The registry answered with an unexpected status (5xx and 429 among them).
    Server,
    /// Content that does not match its digest or size, or exceeds a limit.
    Integrity,
    /// An answer that breaks the distribution protocol, an unreadable or unsupported
    /// document, or a move to plain HTTP.
    Protocol,
    /// Something on this machine: files, the store, unpacking, CA files, credential files.
    Local,
}

impl RegistryError {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Connect { .. } | RegistryError::Timeout { .. } => ErrorKind::Network,
            RegistryError::Tls { .. } => ErrorKind::Tls,
            RegistryError::Unauthorized { .. } | RegistryError::Denied { .. } => ErrorKind::Auth,
            RegistryError::NotFound { .. } => ErrorKind::NotFound,
            RegistryError::Status { .. } => ErrorKind::Server,
            RegistryError::DigestMismatch { .. }
            | RegistryError::SizeMismatch { .. }
            | RegistryError::TooLarge { .. } => ErrorKind::Integrity,
            RegistryError::Protocol { .. }
            | RegistryError::UnsupportedMediaType { .. }
            | RegistryError::Downgrade { .. } => ErrorKind::Protocol,
            RegistryError::Auth(_)
            | RegistryError::CaFile { .. }
            | RegistryError::Setup { .. }
            | RegistryError::Io { .. }
            | RegistryError::Store(_)
            | RegistryError::Read(_) => ErrorKind::Local,
        }
    }

    /// Whether trying again later may work (the network, the server, rate limits) rather than
    /// needing a change (credentials, references, content).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => self.kind() == ErrorKind::Network,
        }
    }

    /// What a user can do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Connect { registry, .. } => Some(format!(
                "check that {registry} is the right host and port and that it is reachable"
            )),
            RegistryError::Tls { .. } => Some(
                "pass --ca-file with the registry's CA certificate, or --insecure if you trust the network"
                    .into(),
            ),
            RegistryError::Unauthorized { registry, .. } => Some(format!(
                "log in with `skillport login {registry}`, or check the credentials for {registry} in your Docker config or pull secret"
            )),
            RegistryError::Downgrade { .. } => Some(
                "the registry pointed a request at a plain-HTTP address; credentials are never sent there. Use an HTTPS endpoint, or list the registry as insecure if the network is trusted"
                    .into(),
            ),
            RegistryError::Denied { .. } => {
                Some("the credentials work but lack permission for this repository".into())
            }
            RegistryError::NotFound { .. } => {
                Some("check the repository and tag; `skillport tags REPOSITORY` lists the tags".into())
            }
            RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. } => Some(
                "the registry served content that does not match what it promised; nothing was kept"
                    .into(),
            ),
            // `Auth` is transparent, so a caller walking the error chain never sees the
            // `AuthError` itself: its hint (install the credential helper, …) must come from here.
            RegistryError::Auth(err) => err.hint(),
            _ => None,
        }
    }
}
