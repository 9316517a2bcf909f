//! The OCI distribution client.
//!
//! Owns talking to registries: resolving references to digests, pulling and pushing images
//! and blobs, listing tags, and authenticating the way docker and skopeo do (Docker config
//! files, credential helpers, several pull-secret files merged, bearer tokens), over TLS with
//! timeouts, retries and digest verification on every byte.
//!
//! It must not know about Kubernetes: the operator and `skillport fetch` hand it files and
//! references, nothing more.

pub mod auth;
mod client;
mod error;
mod export;
mod manifest;
mod origin;
mod pull;
mod push;
mod referrers;
mod remote;
mod request;
mod response;
mod transfer;
mod upload;

pub use client::Client;
pub use error::{ErrorKind, RegistryError};
pub use export::{Exported, SkillLayer};
pub use pull::Unpacking;
pub use referrers::{
    Attached, AttachedBundle, AttachedLayer, Attachment, BUNDLE_ARTIFACT_TYPE, fallback_tag,
};
pub use remote::Remote;
pub use request::ClientOptions;
pub use transfer::{NoProgress, Progress};
