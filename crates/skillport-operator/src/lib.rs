//! The Kubernetes half of Skillport: the `SkillSet` API and its generated CRD ([`api`],
//! [`crd`]), the pure translation of a SkillSet into a pod template ([`translate`]), and
//! [`render`], the same translation offline.
//!
//! This crate owns everything that knows about Kubernetes. It must not pull skill content itself
//! (that is `skillport fetch`, in the pod), and the in-pod `skillport` binary must never link it:
//! it brings kube. `translate` does no I/O at all — it takes resolved digests and a pod template
//! and returns what to add — so the operator's reconcile, the webhook and `render` share it.

pub mod api;
pub mod attach;
pub mod controller;
pub mod crd;
pub mod inject;
pub mod policy;
pub mod render;
pub mod runtime;
pub mod tenant;
pub mod translate;
pub mod validate;
pub mod webhook;
