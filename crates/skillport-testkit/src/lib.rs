//! Test support for Skillport: real parts on 127.0.0.1 and a fake for what real parts never do.
//!
//! - [`Registry`] runs the CNCF distribution registry (`docker-registry serve CONFIG`) plain,
//!   with htpasswd basic auth, with TLS from a fresh [`TestCa`], or both; it can be stopped and
//!   restarted on the same port and storage, and its blob files can be edited to make content
//!   that lies about its digest.
//! - [`FakeRegistry`] is an in-process HTTP server scripted per request: truncated, stalled and
//!   endless bodies, delays, any status and headers; it logs what the client sent.
//! - [`skopeo`], [`venv_tool`] and [`write_tiny_image`] give tests independent peer clients and
//!   something small to push with them.
//!
//! This crate is for tests only (`dev-dependencies`): it panics instead of returning errors, with
//! a message that says what to install (`scripts/test.sh`) when a real part is missing. It must
//! not depend on any Skillport crate, so every crate can test against it.

mod ca;
mod fake;
mod http;
mod layout;
mod registry;
mod tools;

pub use ca::TestCa;
pub use fake::{FakeRegistry, FakeRequest, FakeResponse, NO_HEADERS};
pub use layout::{TinyImage, write_tiny_image};
pub use registry::{Registry, RegistryOptions};
pub use tools::{skopeo, venv_tool, workspace_root};
