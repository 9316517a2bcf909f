//! Test support for Skillport: real parts on 127.0.0.1 and a fake for what real parts never do.
//!
//! - [`Registry`] runs the CNCF distribution registry (`docker-registry serve CONFIG`) plain,
//!   with htpasswd basic auth, with TLS from a fresh [`TestCa`], or both; it can be stopped and
//!   restarted on the same port and storage, and its blob files can be edited to make content
//!   that lies about its digest.
//! - [`Cluster`] runs a real Kubernetes control plane (etcd, kube-apiserver, optionally
//!   kube-controller-manager and kube-scheduler, v1.35.4) on 127.0.0.1 with an admin client and
//!   clients for any ServiceAccount; [`Node`] adds a real node on top (kubelet, containerd, runc:
//!   Pods run, `image` volumes mount), one per machine at a time; [`k8s_tool`] finds the Go binaries `scripts/k8s-tools.sh`
//!   builds (Kubernetes, etcd, crane, oras, helm, containerd, runc).
//! - [`SigningCa`] issues Fulcio-style signing certificates and the `trusted_root.json` trusting
//!   them, for keyless-signature tests with the real cosign.
//! - [`TlsServer`] serves an axum router over HTTPS with a certificate from a [`TestCa`] (an
//!   admission webhook the API server calls, say).
//! - [`FakeRegistry`] is an in-process HTTP server scripted per request: truncated, stalled and
//!   endless bodies, delays, any status and headers; it logs what the client sent.
//! - [`skopeo`], [`venv_tool`] and [`write_tiny_image`] give tests independent peer clients and
//!   something small to push with them.
//!
//! This crate is for tests only (`dev-dependencies`): it panics instead of returning errors, with
//! a message that says what to install or build (`scripts/test.sh`, `scripts/k8s-tools.sh`) when
//! a real part is missing. It must not depend on any Skillport crate, so every crate can test
//! against it.

pub mod bench;
mod ca;
mod fake;
mod http;
mod k8s;
mod layout;
mod registry;
mod sigstore;
mod tls_server;
mod tools;

pub use ca::{IssuedCert, TestCa};
pub use fake::{FakeRegistry, FakeRequest, FakeResponse, NO_HEADERS};
pub use k8s::{
    Cluster, ClusterOptions, HostState, K8S_VERSION, NODE_NAME, Node, NodeOptions, NodeRegistry,
    NodeTimings, ServiceAccountIdentity, k8s_bin_dir, k8s_tool, k8s_tool_in,
};
pub use layout::{TinyImage, write_tiny_image};
pub use registry::{Registry, RegistryOptions};
pub use sigstore::{SigningCa, SigningCert};
pub use tls_server::TlsServer;
pub use tools::{skopeo, venv_tool, workspace_root};
