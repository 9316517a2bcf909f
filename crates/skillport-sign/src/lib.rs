//! Signatures on skill images, as cosign makes and reads them, without network: the crate
//! the CLI (`sign`, `verify-signature`, `generate-key-pair`) and the operator's policy share.
//!
//! Expected flow: the registry client finds what is attached to an image (bundles through the
//! referrers API or tag, legacy `.sig` layers) and hands the bytes to [`bundle`], which reads
//! each into a [`Candidate`]; [`verify::check`] then says whether a candidate satisfies a
//! [`Requirement`] for the image's digest. Signing is [`bundle::sign`] with a [`PrivateKey`].

pub mod bundle;
pub mod key;
pub mod root;
pub mod tlog;
pub mod verify;

pub use bundle::Candidate;
pub use key::{PrivateKey, PublicKey};
pub use root::TrustedRoot;
pub use verify::{Matcher, Outcome, Requirement, Signer, Verified, check, evaluate};

/// What went wrong reading keys, roots or requirements. Each names the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{what}: {reason}")]
    Key { what: String, reason: String },
    #[error("{what}: wrong password (set COSIGN_PASSWORD to the key's password)")]
    Password { what: String },
    #[error("trusted root {what}: {reason}")]
    TrustedRoot { what: String, reason: String },
    #[error("{reason}")]
    Requirement { reason: String },
}
