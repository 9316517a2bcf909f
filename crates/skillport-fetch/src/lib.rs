//! Fetching skills into a folder, as `skillport fetch` does in an agent pod's init container.
//!
//! Owns the fetch plan (the versioned JSON the operator writes into a ConfigMap: which skills,
//! from which image or git source, into which folder, with which mounted credentials) and
//! carrying it out: every skill fetched concurrently, verified, unpacked safely, published by
//! rename, validated leniently, and listed in `<into>/index.json`.
//!
//! It must not know about Kubernetes objects: it reads files (the plan, mounted secrets) and
//! writes one folder.
//!
//! - [`plan`] holds the plan's types (shared with the operator, which writes them), parsing
//!   and validation;
//! - [`fetch`] and [`FetchOptions`] carry a plan out (see [`run`] for the flow and the
//!   guarantees);
//! - [`index`] is `<into>/index.json`;
//! - [`git`] fetches git sources;
//! - [`verify`] checks skills mounted as image volumes and writes the same index.

mod error;
pub mod git;
pub mod index;
mod into_folder;
pub mod plan;
pub mod run;
pub mod verify;

pub use error::{FetchError, SkillError, SkillFailure, chain as error_chain};
pub use index::{IndexEntry, SkillIndex};
pub use into_folder::swap_folder;
pub use plan::{FetchPlan, PlanError, PlannedLayer, PlannedSkill, Source};
pub use run::{
    Action, Done, FetchOptions, Outcome, Planned, Report, dry_run, fetch, termination_line,
};
