//! Skills for local agents: `skillport install`, `list`, `outdated`, `update`, `verify` and
//! `uninstall` over a manifest and a lock ([`manifest`]), into the folders agents read
//! ([`targets`]).
//!
//! Every skill goes through the local store (images are pulled into it, local folders built
//! into it; git sources are fetched straight), is unpacked with the same safe unpacking as
//! `export`, checked, tree-hashed, and swapped into each target folder in one step. The lock
//! records the digest or commit, the tree hash and every file's hash, so that:
//! - `install` from the lock gives the same bytes on another machine (and says when it would
//!   not), and needs no network when the store already holds the images;
//! - `verify` names each file edited, added or removed since;
//! - `install` never touches a folder it did not write, nor one changed since it wrote it.

pub mod manifest;
mod project;
pub mod targets;

pub use manifest::{Lock, Locked, Manifest, Source, Wanted};
pub use project::{
    Change, Checked, FolderState, InstallError, Installed, Outdated, Project, Request, install,
    outdated, uninstall, verify,
};
pub use targets::{AGENTS, Agent, DEFAULT_TARGET, Target};
