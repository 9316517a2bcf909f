// What can go wrong talking to a registry. Every message names the registry (and the
// reference or repository where there is one) and never a credential.

use std::io;
use std::path::PathBuf;

use skillport_oci::{Digest, StoreError};

use crate::auth::AuthError;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry}: cannot connect: {reason}")]
    Connect { registry: String, reason: String },
    #[error("{registry}: TLS: {reason}")]
    Tls { registry: String, reason: String },
    #[error("{registry}: no answer within {seconds} s")]
    Timeout { registry: String, seconds: u64 },
    #[error("{registry}: 401 unauthorized for {repository} ({detail})")]
    Unauthorized {
        registry: String,
        repository: String,
        detail: String,
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

impl RegistryError {
    /// Whether trying again later may work (the network, the server, rate limits) rather than
    /// needing a change (credentials, references, content).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Connect { .. } | RegistryError::Timeout { .. } => true,
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
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
