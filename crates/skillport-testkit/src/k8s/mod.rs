//! A real Kubernetes control plane for tests, and the Go binaries it is built from.
//!
//! The binaries (Kubernetes v1.35.4, etcd 3.6.5, and the Go peers crane, oras, helm, containerd,
//! runc) are built by `scripts/k8s-tools.sh` from the Go modules under `test/k8s/` into a cache
//! outside the checkout; `scripts/test.sh` runs it and exports `SKILLPORT_K8S_BIN`. This module
//! only finds them ([`k8s_tool`]) and runs them ([`Cluster`], [`Node`]); it never builds anything, so a
//! test that needs a binary that is not there fails at once and says which script to run.

mod cluster;
mod node;
mod process;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use cluster::{Cluster, ClusterOptions, ServiceAccountIdentity};
pub use node::{HostState, NODE_NAME, Node, NodeOptions, NodeRegistry, NodeTimings};

use crate::tools::workspace_root;

/// The Kubernetes version the test binaries are built at (`scripts/k8s-tools.sh`).
pub const K8S_VERSION: &str = "1.35.4";

const BUILD_HINT: &str = "run scripts/k8s-tools.sh (scripts/test.sh runs it) to build the \
                          Kubernetes test binaries; about 9 minutes the first time on 2 cores, \
                          then cached";

/// The folder holding the binaries `scripts/k8s-tools.sh` builds.
///
/// In order: `$SKILLPORT_K8S_BIN` (what `scripts/test.sh` exports); what
/// `scripts/k8s-tools.sh --bin-dir` prints (it only prints, never builds); the script's default,
/// `${XDG_CACHE_HOME:-$HOME/.cache}/skillport/k8s-1.35.4/bin`.
pub fn k8s_bin_dir() -> PathBuf {
    if let Some(dir) = env::var_os("SKILLPORT_K8S_BIN").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let script = workspace_root().join("scripts").join("k8s-tools.sh");
    if let Ok(output) = Command::new("bash").arg(&script).arg("--bin-dir").output()
        && output.status.success()
    {
        let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !dir.is_empty() {
            return PathBuf::from(dir);
        }
    }
    let cache = env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("neither XDG_CACHE_HOME nor HOME is set: cannot find the Kubernetes test binaries");
    cache
        .join("skillport")
        .join(format!("k8s-{K8S_VERSION}"))
        .join("bin")
}

/// The path of `name` (`kube-apiserver`, `etcd`, `kubectl`, `crane`, `oras`, `helm`, `containerd`,
/// `runc`, …) in [`k8s_bin_dir`]. Panics, naming `scripts/k8s-tools.sh`, if it is not there.
pub fn k8s_tool(name: &str) -> PathBuf {
    k8s_tool_in(&k8s_bin_dir(), name)
}

/// The path of `name` in `dir`; panics, naming `scripts/k8s-tools.sh`, if it is not an
/// executable file there.
pub fn k8s_tool_in(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    let executable = path
        .metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0);
    assert!(
        executable,
        "{name} is not built: {} is not an executable file; {BUILD_HINT} \
         (SKILLPORT_K8S_BIN, when set, names another folder)",
        path.display()
    );
    path
}
