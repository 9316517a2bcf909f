//! A real Kubernetes node on 127.0.0.1: kubelet v1.35.4, containerd v2.2.9 and runc v1.3.7 on
//! top of a [`Cluster`], so Pods really run, `image` volumes really mount and init containers
//! really copy files.
//!
//! Expected flow: [`Node::start`] takes the machine-wide node lock, snapshots what a kubelet
//! changes on the host ([`HostState`]), starts the [`Cluster`] (controller-manager and scheduler
//! by default: Pods need no `nodeName`, the `not-ready` taint is lifted, namespaces get their
//! `kube-root-ca.crt`) and, meanwhile, a plain [`Registry`] holding the sandbox (`pause`) and
//! agent (busybox) images made here. It then writes containerd's config (a `hosts.toml` per
//! trusted registry: plain HTTP, or HTTPS with the registry's CA) and the teardown script, starts
//! the watchdog, containerd, and the kubelet (`--hostname-override=127.0.0.1`, its own free
//! ports, the feature gates asked for), and returns once the node is `Ready` and schedulable.
//! Pods run with `hostNetwork: true` (there is no CNI plugin; a loopback-only conflist makes the
//! runtime report its network ready), so a registry on 127.0.0.1 is reachable from inside them.
//!
//! Guarantees: one node per machine at a time (a file lock beside the binaries' cache; nextest
//! runs node tests one at a time in the `k8s-node` group, see `.config/nextest.toml`). Drop
//! stops the kubelet and containerd and runs the teardown script, which kills every container
//! (the `kubepods` cgroups it made) and our shims, unmounts everything under the node's folder,
//! writes back the sysctls the kubelet changed, removes the fixed host paths that were not there
//! before (`/var/lib/kubelet`, `/run/containerd`, `/var/log/containers`, …) and the empty
//! `kubepods` cgroups, then the folder. When the test process dies without dropping the node (a
//! nextest timeout, Ctrl-C), the watchdog — in its own process group, holding the lock — runs
//! the same script. No iptables chains are made (`makeIPTablesUtilChains: false`).
//!
//! Caveats: root only (mounts, cgroups). The node refuses to start where `kubepods` cgroups
//! already exist (another kubelet, or a teardown that failed). Pods without `hostNetwork` do
//! not get a network. containerd's CRI streaming server listens on a random loopback port.

mod host;
mod images;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdin, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::api::Api;
use tempfile::TempDir;

pub use host::HostState;

use super::cluster::{
    Cluster, ClusterOptions, UserCredentials, free_port, kubeconfig_yaml, write_private,
};
use super::process::Process;
use super::{k8s_bin_dir, k8s_tool};
use crate::registry::Registry;

/// The node's name and its only address: `--hostname-override` with an IP makes the Node's
/// InternalIP that IP, and the kubelet refuses a loopback `--node-ip`.
pub const NODE_NAME: &str = "127.0.0.1";
/// Prefix of every node's work folder; the teardown finds what is ours by it.
const WORK_PREFIX: &str = "skillport-node-";
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How to run a [`Node`]; the builder methods return the changed options.
#[derive(Clone, Debug)]
#[must_use]
pub struct NodeOptions {
    /// The control plane. Default: controller-manager and scheduler on, gates as Kubernetes
    /// 1.35 defaults them.
    pub cluster: ClusterOptions,
    /// The kubelet's `featureGates`, e.g. `ImageVolume: false` (the API server's are in
    /// [`NodeOptions::cluster`]).
    pub kubelet_feature_gates: BTreeMap<String, bool>,
    /// Registries containerd may pull from besides the node's own; see [`NodeRegistry`].
    pub registries: Vec<NodeRegistry>,
}

/// A registry the node's containerd pulls from: `host` is `127.0.0.1:PORT`; with `ca_pem`
/// containerd speaks HTTPS and trusts that CA, without it plain HTTP (which containerd only
/// does for 127.0.0.1 with a `hosts.toml` saying so). Credentials are not here: Pods bring
/// them as `imagePullSecrets`, as in a real cluster.
#[derive(Clone, Debug)]
pub struct NodeRegistry {
    pub host: String,
    pub ca_pem: Option<String>,
}

impl NodeRegistry {
    /// What a test [`Registry`] needs: its host, and its test CA when it serves TLS.
    pub fn of(registry: &Registry) -> NodeRegistry {
        NodeRegistry {
            host: registry.host(),
            ca_pem: registry.ca().map(|ca| ca.ca_pem().to_owned()),
        }
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            cluster: ClusterOptions::default()
                .with_controller_manager()
                .with_scheduler(),
            kubelet_feature_gates: BTreeMap::new(),
            registries: Vec::new(),
        }
    }
}

impl NodeOptions {
    /// A kubelet feature gate (`ImageVolume`, …).
    pub fn kubelet_feature_gate(mut self, name: &str, enabled: bool) -> Self {
        self.kubelet_feature_gates.insert(name.to_owned(), enabled);
        self
    }

    /// An API server (and controller) feature gate.
    pub fn cluster_feature_gate(mut self, name: &str, enabled: bool) -> Self {
        self.cluster = self.cluster.feature_gate(name, enabled);
        self
    }

    /// Lets containerd pull from `registry` (plain HTTP, or TLS trusting its CA).
    pub fn trust_registry(mut self, registry: &Registry) -> Self {
        self.registries.push(NodeRegistry::of(registry));
        self
    }

    /// Lets containerd pull from `registry`, e.g. one with a CA a test made itself.
    pub fn with_registry(mut self, registry: NodeRegistry) -> Self {
        self.registries.push(registry);
        self
    }
}

/// How long the parts took to come up.
#[derive(Clone, Copy, Debug)]
pub struct NodeTimings {
    /// etcd + API server to `/readyz` (controller-manager and scheduler after it).
    pub cluster: Duration,
    /// `crane append` + `crane mutate` of the pause and agent images (beside the cluster).
    pub images: Duration,
    /// containerd start → its socket answers.
    pub containerd: Duration,
    /// kubelet start → Node `Ready` and schedulable.
    pub kubelet: Duration,
    /// `Node::start` → returned.
    pub total: Duration,
}

/// A running node and its control plane. Drop tears it all down (see the module docs).
pub struct Node {
    options: NodeOptions,
    /// The watchdog (`sh`) and the pipe whose closing makes it run the teardown script.
    watchdog: Option<(Child, ChildStdin)>,
    /// containerd, then the kubelet.
    processes: Vec<Process>,
    cluster: Option<Cluster>,
    registry: Registry,
    pause_image: String,
    agent_image: String,
    crane_image: Mutex<Option<String>>,
    work: TempDir,
    timings: NodeTimings,
    /// Released after the teardown (the watchdog holds it too while it runs).
    lock: Option<File>,
}

impl Node {
    /// A node with [`NodeOptions::default`].
    pub async fn start_default() -> Node {
        Node::start(NodeOptions::default()).await
    }

    /// Starts a control plane and a node and waits until the node is Ready and schedulable.
    /// Panics with the failing part's output if something does not come up, naming
    /// `scripts/k8s-tools.sh` or `scripts/test.sh` when a binary or package is missing. Must run
    /// inside a multi-threaded Tokio runtime.
    pub async fn start(options: NodeOptions) -> Node {
        let started = Instant::now();
        assert!(
            is_root(),
            "a test node needs root (mounts, cgroups, sysctls): run the tests as root"
        );
        let bin_dir = k8s_bin_dir();
        let containerd = k8s_tool("containerd");
        let kubelet = k8s_tool("kubelet");
        let ctr_shim = k8s_tool("containerd-shim-runc-v2");
        let runc = k8s_tool("runc");
        k8s_tool("crane");
        let cache = bin_dir
            .parent()
            .map_or_else(|| bin_dir.clone(), Path::to_path_buf)
            .join("node");

        let lock = host::lock(&host::lock_path(&cache));
        let before = HostState::capture();
        assert!(
            before.kubepods_cgroups.is_empty(),
            "kubepods cgroups exist ({:?}): another kubelet runs on this machine, or a test \
             node's teardown failed (see {}); remove them before starting a test node",
            before.kubepods_cgroups,
            cache.join("node-teardown.log").display()
        );

        let work = tempfile::Builder::new()
            .prefix(WORK_PREFIX)
            .tempdir()
            .expect("creating the node's folder");
        let dir = work.path().to_owned();
        for sub in [
            "logs",
            "pids",
            "certs.d",
            "cni/net.d",
            "cni/bin",
            "pod-logs",
        ] {
            fs::create_dir_all(dir.join(sub)).expect("creating the node's folders");
        }

        // The registry and its images while the control plane starts: both take seconds.
        let registry = Registry::plain();
        let registry_host = registry.host();
        let image_dir = dir.clone();
        let image_cache = cache.clone();
        let images = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let pause = images::pause(&registry_host, &image_cache);
            let agent = images::agent(&registry_host);
            let references = (pause.reference.clone(), agent.reference.clone());
            images::push_all(&[pause, agent], &image_dir, &[]);
            (references, started.elapsed())
        });
        let cluster = Cluster::start(options.cluster.clone()).await;
        let ((pause_image, agent_image), images_took) = images
            .await
            .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));

        let mut registries = vec![NodeRegistry {
            host: registry.host(),
            ca_pem: None,
        }];
        registries.extend(options.registries.iter().cloned());
        write_containerd_files(&dir, &runc, &pause_image, &registries);

        let teardown = dir.join("teardown.sh");
        fs::write(&teardown, host::teardown_script(&dir, &before))
            .expect("writing the teardown script");
        let watchdog = host::watchdog(&teardown, &lock, &cache.join("node-teardown.log"));

        let mut node = Node {
            options,
            watchdog: Some(watchdog),
            processes: Vec::new(),
            cluster: Some(cluster),
            registry,
            pause_image,
            agent_image,
            crane_image: Mutex::new(None),
            work,
            timings: NodeTimings {
                cluster: Duration::ZERO,
                images: images_took,
                containerd: Duration::ZERO,
                kubelet: Duration::ZERO,
                total: Duration::ZERO,
            },
            lock: Some(lock),
        };
        node.timings.cluster = node.cluster().started_in();

        node.start_containerd(&containerd, &ctr_shim);
        node.start_kubelet(&kubelet).await;
        node.timings.total = started.elapsed();
        node
    }

    /// The control plane the node is registered with.
    pub fn cluster(&self) -> &Cluster {
        self.cluster
            .as_ref()
            .expect("the cluster lives as long as the node")
    }

    /// The admin client.
    pub fn client(&self) -> kube::Client {
        self.cluster().client()
    }

    /// `kubectl --kubeconfig ADMIN`.
    pub fn kubectl(&self) -> Command {
        self.cluster().kubectl()
    }

    /// The node's own plain registry (pause and agent images); tests may push skills to it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The sandbox image containerd is pinned to.
    pub fn pause_image(&self) -> &str {
        &self.pause_image
    }

    /// A static busybox on an empty base, `/bin/sh` its entrypoint, `PATH=/bin`.
    pub fn agent_image(&self) -> &str {
        &self.agent_image
    }

    /// busybox plus a static `/bin/crane`: an init container that pulls like kagent's old
    /// `skills-init` (`crane export REF - | tar -x`). Pushed on first use (~1 s).
    pub fn crane_image(&self) -> String {
        let mut image = self.crane_image.lock().expect("crane image lock");
        if let Some(reference) = &*image {
            return reference.clone();
        }
        let spec = images::crane(&self.registry.host());
        let reference = spec.reference.clone();
        images::push_all(&[spec], self.work.path(), &[]);
        *image = Some(reference.clone());
        reference
    }

    /// An image holding only the static executable `binary` as `/NAME`, its entrypoint (e.g. the
    /// static `skillport` as an init image), pushed to the node's registry; returns its
    /// reference. The binary must be static: the image has no libc.
    pub fn binary_image(&self, name: &str, binary: &Path) -> String {
        let spec = images::binary(&self.registry.host(), name, binary);
        let reference = spec.reference.clone();
        images::push_all(&[spec], self.work.path(), &[]);
        reference
    }

    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    pub fn timings(&self) -> NodeTimings {
        self.timings
    }

    /// Removes from containerd every image whose reference starts with one of `prefixes`
    /// (`127.0.0.1:PORT/` for a registry's images), with every other name of the same image and
    /// its content (`ctr images rm --sync` waits for the garbage collection), so the next Pod
    /// that names them pulls them as on a node that never had them. The kubelet asks the runtime
    /// each time, so it pulls again.
    pub fn remove_images(&self, prefixes: &[&str]) {
        let ctr = || {
            let mut command = Command::new(k8s_tool("ctr"));
            command
                .arg("--address")
                .arg(self.work.path().join("containerd.sock"))
                .args(["--namespace", "k8s.io", "images"]);
            command
        };
        let output = ctr().arg("ls").output().expect("running ctr images ls");
        assert!(
            output.status.success(),
            "ctr images ls: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listing = String::from_utf8_lossy(&output.stdout);
        // REF TYPE DIGEST SIZE PLATFORMS LABELS
        let rows: Vec<(&str, &str)> = listing
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut columns = line.split_whitespace();
                Some((columns.next()?, columns.nth(1)?))
            })
            .collect();
        let digests: Vec<&str> = rows
            .iter()
            .filter(|(reference, _)| prefixes.iter().any(|prefix| reference.starts_with(prefix)))
            .map(|(_, digest)| *digest)
            .collect();
        let references: Vec<&str> = rows
            .iter()
            .filter(|(_, digest)| digests.contains(digest))
            .map(|(reference, _)| *reference)
            .collect();
        if references.is_empty() {
            return;
        }
        let output = ctr()
            .args(["rm", "--sync"])
            .args(&references)
            .output()
            .expect("running ctr images rm");
        assert!(
            output.status.success(),
            "ctr images rm: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// What `kubelet` or `containerd` has written so far.
    pub fn log(&self, component: &str) -> String {
        self.processes
            .iter()
            .find(|process| process.name == component)
            .map(Process::log)
            .unwrap_or_default()
    }

    fn start_containerd(&mut self, containerd: &Path, shim: &Path) {
        let started = Instant::now();
        let config = self.work.path().join("containerd.toml");
        self.spawn(
            "containerd",
            containerd,
            &["--config".to_owned(), config.display().to_string()],
            // containerd finds containerd-shim-runc-v2 on PATH.
            shim.parent(),
        );
        self.wait_for_containerd();
        self.timings.containerd = started.elapsed();
    }

    async fn start_kubelet(&mut self, kubelet: &Path) {
        let started = Instant::now();
        self.write_kubelet_files();
        let dir = self.work.path();
        let args = vec![
            format!("--config={}", dir.join("kubelet.yaml").display()),
            format!("--kubeconfig={}", dir.join("kubelet.kubeconfig").display()),
            format!("--root-dir={}", dir.join("kubelet").display()),
            format!("--cert-dir={}", dir.join("kubelet-pki").display()),
            format!("--hostname-override={NODE_NAME}"),
            "--v=2".to_owned(),
        ];
        self.spawn("kubelet", kubelet, &args, None);
        self.wait_for_node().await;
        self.timings.kubelet = started.elapsed();
    }

    fn spawn(&mut self, name: &'static str, program: &Path, args: &[String], path: Option<&Path>) {
        let dir = self.work.path();
        let log = dir.join("logs").join(format!("{name}.log"));
        let mut process = Process::spawn_unwatched_with_path(name, program, args, dir, log, path);
        // The teardown script kills by this pid (if it still runs from our folder).
        fs::write(dir.join("pids").join(name), process.id().to_string()).expect("recording a pid");
        if let Some(status) = process.exited() {
            panic!("{name} exited at once ({status}): {}", process.log_tail(40));
        }
        self.processes.push(process);
    }

    fn wait_for_containerd(&mut self) {
        let socket = self.work.path().join("containerd.sock");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if UnixStream::connect(&socket).is_ok() {
                return;
            }
            self.check_running("containerd");
            assert!(
                Instant::now() < deadline,
                "containerd did not open {} within {READY_TIMEOUT:?}\n--- containerd ---\n{}",
                socket.display(),
                self.log_tail("containerd")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Until the Node is `Ready` and, with a controller-manager, has lost its `not-ready` taint.
    async fn wait_for_node(&mut self) {
        let nodes = Api::<NodeObject>::all(self.client());
        let untainted = self.options.cluster.controller_manager;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("not registered");
        loop {
            self.check_running("kubelet");
            self.check_running("containerd");
            if let Ok(Some(node)) = nodes.get_opt(NODE_NAME).await {
                let ready = node
                    .status
                    .as_ref()
                    .and_then(|status| status.conditions.as_ref())
                    .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|ready| (ready.status.clone(), ready.message.clone()));
                let taints: Vec<String> = node
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.taints.as_ref())
                    .map(|taints| taints.iter().map(|taint| taint.key.clone()).collect())
                    .unwrap_or_default();
                if matches!(&ready, Some((status, _)) if status == "True")
                    && (!untainted || taints.is_empty())
                {
                    return;
                }
                last = format!("Ready: {ready:?}, taints: {taints:?}");
            }
            assert!(
                Instant::now() < deadline,
                "node {NODE_NAME} not Ready within {READY_TIMEOUT:?} ({last})\n--- kubelet (last \
                 40 lines) ---\n{}\n--- containerd (last 20 lines) ---\n{}",
                self.log_tail("kubelet"),
                self.log_tail("containerd"),
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn check_running(&mut self, name: &str) {
        if let Some(process) = self.processes.iter_mut().find(|p| p.name == name)
            && let Some(status) = process.exited()
        {
            panic!(
                "{name} exited ({status})\n--- {name} (last 40 lines) ---\n{}",
                process.log_tail(40)
            );
        }
    }

    fn log_tail(&self, name: &str) -> String {
        self.processes
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.log_tail(40))
            .unwrap_or_default()
    }

    /// The kubelet's config (free ports, gates, everything under our folder) and its client
    /// identity `system:node:127.0.0.1` in group `system:nodes` (the Node authorizer).
    fn write_kubelet_files(&self) {
        let dir = self.work.path();
        let cluster = self.cluster();
        let identity = cluster
            .ca()
            .issue_client(&format!("system:node:{NODE_NAME}"), &["system:nodes"]);
        let (cert, key) = (
            dir.join("kubelet-client.crt"),
            dir.join("kubelet-client.key"),
        );
        write_private(&cert, &identity.cert_pem);
        write_private(&key, &identity.key_pem);
        write_private(
            &dir.join("kubelet.kubeconfig"),
            &kubeconfig_yaml(
                cluster.url(),
                cluster.ca().ca_file(),
                &format!("system:node:{NODE_NAME}"),
                &UserCredentials::Certificate {
                    cert: &cert,
                    key: &key,
                },
                "default",
            ),
        );
        fs::write(
            dir.join("kubelet.yaml"),
            kubelet_config(
                dir,
                cluster.ca().ca_file(),
                &self.options.kubelet_feature_gates,
            ),
        )
        .expect("writing kubelet.yaml");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The kubelet first (it would restart what the teardown kills), then containerd; both
        // are our children, so reap them here.
        while let Some(process) = self.processes.pop() {
            process.stop();
        }
        // Closing the pipe makes the watchdog run the teardown script; wait for it.
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            drop(stdin);
            match watchdog.wait() {
                Ok(status) if status.success() => {}
                outcome => eprintln!("node teardown script: {outcome:?}"),
            }
        }
        // Only now the control plane and the registry (the script needs neither).
        self.cluster.take();
        self.lock.take();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Node")
            .field("work", &self.work.path())
            .field("options", &self.options)
            .field("registry", &self.registry.host())
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// containerd's config, a `hosts.toml` per registry, and the CNI conflist.
fn write_containerd_files(dir: &Path, runc: &Path, pause_image: &str, registries: &[NodeRegistry]) {
    write_registry_hosts(dir, registries);
    // Never run for hostNetwork Pods, but it makes the runtime report NetworkReady, so the
    // Node turns Ready without a CNI plugin. Pods without hostNetwork get no network.
    fs::write(
        dir.join("cni/net.d/10-loopback.conflist"),
        r#"{"cniVersion":"1.0.0","name":"loopback-only","plugins":[{"type":"loopback"}]}"#,
    )
    .expect("writing the CNI conflist");
    fs::write(
        dir.join("containerd.toml"),
        containerd_config(dir, runc, pause_image),
    )
    .expect("writing containerd.toml");
}

/// `certs.d/HOST/hosts.toml` for each registry (and `ca.crt` beside it for TLS): containerd
/// reads them through `config_path`.
fn write_registry_hosts(dir: &Path, registries: &[NodeRegistry]) {
    for registry in registries {
        let folder = dir.join("certs.d").join(&registry.host);
        fs::create_dir_all(&folder).expect("creating a certs.d folder");
        let host = &registry.host;
        let toml = match &registry.ca_pem {
            Some(ca) => {
                let ca_file = folder.join("ca.crt");
                fs::write(&ca_file, ca).expect("writing a registry CA");
                format!(
                    "server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  capabilities = \
                     [\"pull\", \"resolve\"]\n  ca = {}\n",
                    toml_string(&ca_file)
                )
            }
            None => format!(
                "server = \"http://{host}\"\n\n[host.\"http://{host}\"]\n  capabilities = \
                 [\"pull\", \"resolve\"]\n"
            ),
        };
        fs::write(folder.join("hosts.toml"), toml).expect("writing hosts.toml");
    }
}

fn containerd_config(dir: &Path, runc: &Path, pause_image: &str) -> String {
    let path = |name: &str| toml_string(&dir.join(name));
    format!(
        r#"version = 3
root = {root}
state = {state}
imports = []

[grpc]
  address = {socket}

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = {opt}
  [plugins."io.containerd.nri.v1.nri"]
    disable = true
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = "{pause_image}"
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = {certs}
  [plugins."io.containerd.cri.v1.runtime"]
    disable_apparmor = true
    # Root in a VM may lack CAP_SYS_RESOURCE: runc cannot lower oom_score_adj (-998 for the
    # sandbox) without it.
    restrict_oom_score_adj = true
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          BinaryName = {runc}
          Root = {runc_root}
          SystemdCgroup = false
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = [{cni_bin}]
      conf_dir = {cni_conf}
"#,
        root = path("containerd-root"),
        state = path("containerd-state"),
        socket = path("containerd.sock"),
        opt = path("opt"),
        certs = path("certs.d"),
        runc = toml_string(runc),
        runc_root = path("runc-root"),
        cni_bin = path("cni/bin"),
        cni_conf = path("cni/net.d"),
    )
}

fn kubelet_config(dir: &Path, ca_file: &Path, gates: &BTreeMap<String, bool>) -> String {
    let path = |name: &str| json_string(&dir.join(name));
    let mut yaml = format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# No KUBE-* chains on the host.
makeIPTablesUtilChains: false
containerRuntimeEndpoint: {endpoint}
volumePluginDir: {plugins}
podLogsDir: {pod_logs}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {ca}}}
authorization:
  mode: AlwaysAllow
serializeImagePulls: false
# The kubelet pulls a Pod's image volumes one after another whatever serializeImagePulls says,
# and a pull beyond registryBurst (default 10) within registryPullQPS (default 5/s) fails with
# "pull QPS exceeded": the Pod then waits out ImagePullBackOff (10 s) before the next try.
# 0 lifts the limit (20 skills as image volumes are 20 pulls in about a second).
registryPullQPS: 0
# A test VM's disk and memory are small: never evict or collect images during a test.
evictionHard: {{memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
"#,
        port = free_port(),
        healthz = free_port(),
        endpoint = json_string(Path::new(&format!(
            "unix://{}",
            dir.join("containerd.sock").display()
        ))),
        plugins = path("volume-plugins"),
        pod_logs = path("pod-logs"),
        ca = json_string(ca_file),
    );
    if !gates.is_empty() {
        yaml.push_str("featureGates:\n");
        for (name, enabled) in gates {
            let _ = writeln!(yaml, "  {name}: {enabled}");
        }
    }
    yaml
}

fn toml_string(path: &Path) -> String {
    // A JSON string is a valid TOML basic string for the paths we write.
    json_string(path)
}

fn json_string(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).expect("JSON")
}
