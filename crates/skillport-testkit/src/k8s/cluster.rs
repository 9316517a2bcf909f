//! A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, and on request
//! kube-controller-manager and kube-scheduler — the "envtest" habit of Go operators.
//!
//! Expected flow: [`Cluster::start`] makes a [`TestCa`] (the API server's serving certificate and
//! every client certificate), an ECDSA service-account key pair and an admin client certificate
//! (`O=system:masters`), writes `admin.kubeconfig`, picks free loopback ports, starts etcd and the
//! API server (`--authorization-mode=Node,RBAC`, `--endpoint-reconciler-type=none`), and waits for
//! `/readyz` (about 3 s). With [`ClusterOptions::controller_manager`] it then starts the
//! controller-manager and waits until its service-account controller has made
//! `default/default`. Tests create what they need in their own namespaces
//! ([`Cluster::create_namespace`]) and act as any ServiceAccount
//! ([`Cluster::service_account`], TokenRequest API), so RBAC is the real thing.
//!
//! Guarantees: drop kills every process (newest first), waits until each has exited, and removes
//! the temporary folders. A watchdog per process does the same when the test process dies without
//! dropping the cluster (a nextest timeout). Nothing listens on anything but 127.0.0.1.
//!
//! Caveats: free ports are found by binding port 0 and closing the listener, so another process
//! can take one before etcd or the API server binds it; `start` then begins again on new ports
//! (a few attempts). There is no node: Pods stay Pending (see `Node`, on top of this, for that).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tempfile::TempDir;

use super::k8s_tool;
use super::process::Process;
use crate::ca::TestCa;

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const START_ATTEMPTS: usize = 4;
const CONTEXT: &str = "skillport-test";
/// What ServiceAccount tokens say they come from; also their default audience.
const ISSUER: &str = "https://kubernetes.default.svc";

/// How to run a [`Cluster`]; the builder methods return the changed options.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ClusterOptions {
    /// `--feature-gates` for every component, e.g. `ImageVolume=false`.
    pub feature_gates: BTreeMap<String, bool>,
    /// Also run kube-controller-manager (all controllers): Deployments get ReplicaSets and Pods,
    /// namespaces get their `default` ServiceAccount.
    pub controller_manager: bool,
    /// Also run kube-scheduler. Without a node it can only report Pods as unschedulable.
    pub scheduler: bool,
    /// More `--flag=value` arguments for kube-apiserver, after ours (a later flag wins).
    pub apiserver_args: Vec<String>,
}

impl ClusterOptions {
    pub fn feature_gate(mut self, name: &str, enabled: bool) -> Self {
        self.feature_gates.insert(name.to_owned(), enabled);
        self
    }

    pub fn with_controller_manager(mut self) -> Self {
        self.controller_manager = true;
        self
    }

    pub fn with_scheduler(mut self) -> Self {
        self.scheduler = true;
        self
    }

    pub fn apiserver_arg(mut self, arg: impl Into<String>) -> Self {
        self.apiserver_args.push(arg.into());
        self
    }

    /// `A=true,B=false`, or `None` without gates.
    fn feature_gates_flag(&self) -> Option<String> {
        (!self.feature_gates.is_empty()).then(|| {
            self.feature_gates
                .iter()
                .map(|(name, enabled)| format!("{name}={enabled}"))
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// A running control plane. Drop stops it and removes its folders.
pub struct Cluster {
    options: ClusterOptions,
    /// Signs the API server's certificate and every client certificate; tests may sign more
    /// (a webhook's serving certificate) and use [`TestCa::ca_pem`] as a `caBundle`.
    ca: TestCa,
    dir: TempDir,
    url: String,
    kubeconfig: PathBuf,
    client: kube::Client,
    /// In start order; stopped in reverse.
    processes: Vec<Process>,
    started_in: Duration,
}

/// A ServiceAccount's credentials: a bound token from the TokenRequest API, as a client and as
/// a kubeconfig file (for a binary under test, or `kubectl`).
#[derive(Clone)]
pub struct ServiceAccountIdentity {
    pub namespace: String,
    pub name: String,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
}

/// Files the API server, the controller-manager and the clients read.
struct Files {
    admin_cert: PathBuf,
    admin_key: PathBuf,
    /// What the API server shows a kubelet (`kubectl logs`, `exec`): `O=system:masters`.
    kubelet_client_cert: PathBuf,
    kubelet_client_key: PathBuf,
    sa_public_key: PathBuf,
    sa_private_key: PathBuf,
}

struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
}

enum StartFailure {
    PortTaken,
}

impl Cluster {
    /// etcd + kube-apiserver with default options.
    pub async fn start_default() -> Cluster {
        Cluster::start(ClusterOptions::default()).await
    }

    /// Starts a control plane and waits until it is ready. Panics with the failing component's
    /// output if it does not come up, and names `scripts/k8s-tools.sh` if a binary is missing.
    /// Must run inside a Tokio runtime (the returned client lives on it).
    pub async fn start(options: ClusterOptions) -> Cluster {
        // kube uses rustls with ring; make ring the process default too, so code under test
        // that relies on the default provider finds the same one. Already set is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Find every binary first: a missing one fails before anything starts.
        let etcd = k8s_tool("etcd");
        let apiserver = k8s_tool("kube-apiserver");
        let controller_manager = options
            .controller_manager
            .then(|| k8s_tool("kube-controller-manager"));
        let scheduler = options.scheduler.then(|| k8s_tool("kube-scheduler"));

        let dir = tempfile::Builder::new()
            .prefix("skillport-cluster-")
            .tempdir()
            .expect("creating a temporary folder for the cluster");
        fs::create_dir(dir.path().join("logs")).expect("creating the logs folder");
        let ca = TestCa::with_server_names(&["127.0.0.1", "localhost"]);
        let files = write_files(dir.path(), &ca);

        let started = Instant::now();
        for attempt in 1..=START_ATTEMPTS {
            let ports = Ports {
                etcd_client: free_port(),
                etcd_peer: free_port(),
                apiserver: free_port(),
            };
            let url = format!("https://127.0.0.1:{}", ports.apiserver);
            let kubeconfig = dir.path().join("admin.kubeconfig");
            write_private(
                &kubeconfig,
                &kubeconfig_yaml(
                    &url,
                    ca.ca_file(),
                    "admin",
                    &UserCredentials::Certificate {
                        cert: &files.admin_cert,
                        key: &files.admin_key,
                    },
                    "default",
                ),
            );
            let client = client_from_kubeconfig(&kubeconfig).await;
            let mut processes = Processes {
                dir: dir.path(),
                ca: &ca,
                list: Vec::new(),
            };
            let launched = processes
                .launch(
                    &client, &options, &etcd, &apiserver, &ports, &files, attempt,
                )
                .await;
            let processes = processes.list;
            match launched {
                Ok(()) => {}
                Err(StartFailure::PortTaken) if attempt < START_ATTEMPTS => continue,
                Err(StartFailure::PortTaken) => panic!(
                    "every free port found for etcd and kube-apiserver was taken before they \
                     could bind ({START_ATTEMPTS} attempts)"
                ),
            }
            let mut cluster = Cluster {
                options: options.clone(),
                ca,
                dir,
                url,
                kubeconfig,
                client,
                processes,
                started_in: started.elapsed(),
            };
            if let Some(program) = &controller_manager {
                cluster.start_controller_manager(program, &files).await;
            }
            if let Some(program) = &scheduler {
                cluster.start_scheduler(program);
            }
            return cluster;
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The admin client (`O=system:masters`: RBAC allows it everything).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig file (client certificate, the test CA, the server URL).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA the API server's certificate chains to.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// From starting etcd to the API server answering `/readyz` (the controller-manager, when
    /// asked for, comes after).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// `kubectl --kubeconfig ADMIN`, ready for more arguments.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(k8s_tool("kubectl"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"));
        command
    }

    /// What a component (`etcd`, `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`)
    /// has written so far; empty if it is not running.
    pub fn log(&self, component: &str) -> String {
        self.processes
            .iter()
            .find(|process| process.name == component)
            .map(Process::log)
            .unwrap_or_default()
    }

    /// Creates namespace `name` and, as the controller-manager would, its `default`
    /// ServiceAccount (Pods cannot be created without it, dry-run or not). Returns `name`.
    pub async fn create_namespace(&self, name: &str) -> String {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|err| panic!("creating namespace {name}: {err}"));
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match Api::<ServiceAccount>::namespaced(self.client(), name)
            .create(&PostParams::default(), &account)
            .await
        {
            Ok(_) => {}
            // The controller-manager, when running, may have been first.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => panic!("creating ServiceAccount {name}/default: {err}"),
        }
        name.to_owned()
    }

    /// A client and a kubeconfig acting as ServiceAccount `namespace/name`, which must exist:
    /// a one-hour bound token from the TokenRequest API, so the API server authenticates it
    /// like any in-cluster workload and RBAC decides what it may do.
    pub async fn service_account(&self, namespace: &str, name: &str) -> ServiceAccountIdentity {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let token = Api::<ServiceAccount>::namespaced(self.client(), namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|err| {
                panic!("requesting a token for ServiceAccount {namespace}/{name}: {err}")
            })
            .status
            .expect("a TokenRequest answer has a status")
            .token;
        let kubeconfig = self
            .dir
            .path()
            .join(format!("serviceaccount-{namespace}-{name}.kubeconfig"));
        write_private(
            &kubeconfig,
            &kubeconfig_yaml(
                &self.url,
                self.ca.ca_file(),
                &format!("system:serviceaccount:{namespace}:{name}"),
                &UserCredentials::Token(&token),
                namespace,
            ),
        );
        ServiceAccountIdentity {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            client: client_from_kubeconfig(&kubeconfig).await,
            kubeconfig,
        }
    }

    async fn start_controller_manager(&mut self, program: &Path, files: &Files) {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut args = vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".to_owned(),
            // No metrics or health endpoint: nothing to scrape, one port less to race for.
            "--secure-port=0".to_owned(),
            format!(
                "--service-account-private-key-file={}",
                files.sa_private_key.display()
            ),
            format!("--root-ca-file={}", self.ca.ca_file().display()),
            "--leader-elect=false".to_owned(),
            "--controllers=*".to_owned(),
            "--profiling=false".to_owned(),
        ];
        if let Some(gates) = self.options.feature_gates_flag() {
            args.push(format!("--feature-gates={gates}"));
        }
        self.spawn("kube-controller-manager", program, &args);

        // Ready enough when its service-account controller has done its first round.
        let accounts = Api::<ServiceAccount>::namespaced(self.client(), "default");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.processes.last_mut().and_then(Process::exited) {
                let tail = self
                    .processes
                    .last()
                    .map(|p| p.log_tail(40))
                    .unwrap_or_default();
                panic!(
                    "kube-controller-manager exited ({status})\n--- output (last 40 lines) ---\n{tail}"
                );
            }
            if matches!(accounts.get_opt("default").await, Ok(Some(_))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-controller-manager did not create ServiceAccount default/default within \
                 {READY_TIMEOUT:?}\n--- output (last 40 lines) ---\n{}",
                self.processes
                    .last()
                    .map(|p| p.log_tail(40))
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn start_scheduler(&mut self, program: &Path) {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut args = vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--secure-port=0".to_owned(),
            "--leader-elect=false".to_owned(),
            "--profiling=false".to_owned(),
        ];
        if let Some(gates) = self.options.feature_gates_flag() {
            args.push(format!("--feature-gates={gates}"));
        }
        self.spawn("kube-scheduler", program, &args);
    }

    fn spawn(&mut self, name: &'static str, program: &Path, args: &[String]) {
        let process = spawn(self.dir.path(), &self.ca, name, program, args);
        self.processes.push(process);
    }

    fn stop_processes(&mut self) {
        stop_all(&mut self.processes);
    }
}

/// The processes of a cluster being started, and where they keep their files.
struct Processes<'a> {
    dir: &'a Path,
    ca: &'a TestCa,
    list: Vec<Process>,
}

impl Processes<'_> {
    /// Runs etcd and the API server on `ports` and waits for `/readyz`.
    #[allow(clippy::too_many_arguments)] // one call site, every argument a different thing
    async fn launch(
        &mut self,
        client: &kube::Client,
        options: &ClusterOptions,
        etcd: &Path,
        apiserver: &Path,
        ports: &Ports,
        files: &Files,
        attempt: usize,
    ) -> Result<(), StartFailure> {
        let dir = self.dir.to_owned();
        let etcd_data = dir.join(format!("etcd-{attempt}"));
        let etcd_client_url = format!("http://127.0.0.1:{}", ports.etcd_client);
        let etcd_peer_url = format!("http://127.0.0.1:{}", ports.etcd_peer);
        let etcd_args = vec![
            "--name=default".to_owned(),
            format!("--data-dir={}", etcd_data.display()),
            format!("--listen-client-urls={etcd_client_url}"),
            format!("--advertise-client-urls={etcd_client_url}"),
            format!("--listen-peer-urls={etcd_peer_url}"),
            format!("--initial-advertise-peer-urls={etcd_peer_url}"),
            format!("--initial-cluster=default={etcd_peer_url}"),
            // Test data: losing it on a crash is fine, waiting for the disk is not.
            "--unsafe-no-fsync".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        self.spawn("etcd", etcd, &etcd_args);

        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_client_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", ports.apiserver),
            format!("--tls-cert-file={}", self.ca.server_cert_file().display()),
            format!(
                "--tls-private-key-file={}",
                self.ca.server_key_file().display()
            ),
            format!("--client-ca-file={}", self.ca.ca_file().display()),
            format!(
                "--service-account-key-file={}",
                files.sa_public_key.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                files.sa_private_key.display()
            ),
            format!("--service-account-issuer={ISSUER}"),
            // Node: a kubelet (`Node`) may read what its own Pods need and nothing else.
            "--authorization-mode=Node,RBAC".to_owned(),
            format!(
                "--kubelet-client-certificate={}",
                files.kubelet_client_cert.display()
            ),
            format!(
                "--kubelet-client-key={}",
                files.kubelet_client_key.display()
            ),
            // A test node's only address is 127.0.0.1 (`--hostname-override=127.0.0.1`).
            "--kubelet-preferred-address-types=InternalIP,Hostname".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            // The default reconciler writes 127.0.0.1 into the `kubernetes` Endpoints and logs
            // an error about it; there is no Service network to point it at anyway.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            "--profiling=false".to_owned(),
        ];
        if let Some(gates) = options.feature_gates_flag() {
            apiserver_args.push(format!("--feature-gates={gates}"));
        }
        apiserver_args.extend(options.apiserver_args.iter().cloned());
        self.spawn("kube-apiserver", apiserver, &apiserver_args);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            for index in 0..self.list.len() {
                if let Some(status) = self.list[index].exited() {
                    let process = &self.list[index];
                    let output = process.log();
                    if output.contains("address already in use") {
                        stop_all(&mut self.list);
                        return Err(StartFailure::PortTaken);
                    }
                    let name = process.name;
                    let tail = process.log_tail(40);
                    stop_all(&mut self.list);
                    panic!(
                        "{name} exited ({status}) before the API server was ready\n--- {name} output (last 40 lines) ---\n{tail}"
                    );
                }
            }
            let last = match get(client, "/readyz").await {
                Ok(_) => return Ok(()),
                Err(err) => err.to_string(),
            };
            if Instant::now() > deadline {
                let apiserver_tail = self.list[1].log_tail(40);
                let etcd_tail = self.list[0].log_tail(20);
                stop_all(&mut self.list);
                panic!(
                    "kube-apiserver on 127.0.0.1:{} not ready after {READY_TIMEOUT:?} (last GET /readyz: \
                     {last})\n--- kube-apiserver (last 40 lines) ---\n{apiserver_tail}\n\
                     --- etcd (last 20 lines) ---\n{etcd_tail}",
                    ports.apiserver
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn spawn(&mut self, name: &'static str, program: &Path, args: &[String]) {
        let process = spawn(self.dir, self.ca, name, program, args);
        self.list.push(process);
    }
}

/// Runs a component in `dir`, its output in `dir/logs/NAME.log`; its watchdog removes `dir` and
/// the CA's folder.
fn spawn(dir: &Path, ca: &TestCa, name: &'static str, program: &Path, args: &[String]) -> Process {
    let log = dir.join("logs").join(format!("{name}.log"));
    Process::spawn(name, program, args, dir, log, &[dir, ca.dir()])
}

/// Stops the newest first: the API server before etcd, controllers before the API server.
fn stop_all(processes: &mut Vec<Process>) {
    while let Some(process) = processes.pop() {
        process.stop();
    }
}

/// `GET path`; the body on a 2xx answer.
pub(crate) async fn get(client: &kube::Client, path: &str) -> kube::Result<String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .expect("a valid request");
    client.request_text(request).await
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_processes();
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cluster")
            .field("url", &self.url)
            .field("options", &self.options)
            .field("kubeconfig", &self.kubeconfig)
            .field(
                "processes",
                &self.processes.iter().map(|p| p.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServiceAccountIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the client's config holds the token.
        formatter
            .debug_struct("ServiceAccountIdentity")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// Admin client certificate and the service-account key pair, next to the CA's files.
fn write_files(dir: &Path, ca: &TestCa) -> Files {
    let pki = dir.join("pki");
    fs::create_dir(&pki).expect("creating the pki folder");
    let admin = ca.issue_client("admin", &["system:masters"]);
    let kubelet_client = ca.issue_client("kube-apiserver-kubelet-client", &["system:masters"]);
    let files = Files {
        admin_cert: pki.join("admin.crt"),
        admin_key: pki.join("admin.key"),
        kubelet_client_cert: pki.join("kubelet-client.crt"),
        kubelet_client_key: pki.join("kubelet-client.key"),
        sa_public_key: pki.join("sa.pub"),
        sa_private_key: pki.join("sa.key"),
    };
    write_private(&files.admin_cert, &admin.cert_pem);
    write_private(&files.admin_key, &admin.key_pem);
    write_private(&files.kubelet_client_cert, &kubelet_client.cert_pem);
    write_private(&files.kubelet_client_key, &kubelet_client.key_pem);
    // ECDSA P-256: Kubernetes signs service-account tokens with ES256 from it, and no RSA key
    // has to be generated (slow in debug builds).
    let service_accounts =
        rcgen::KeyPair::generate().expect("generating the service-account signing key");
    write_private(&files.sa_private_key, &service_accounts.serialize_pem());
    write_private(&files.sa_public_key, &service_accounts.public_key_pem());
    files
}

pub(crate) enum UserCredentials<'a> {
    Certificate { cert: &'a Path, key: &'a Path },
    Token(&'a str),
}

/// A kubeconfig with one cluster, one user and one context (JSON strings are valid YAML, which
/// quotes every path and the token safely).
pub(crate) fn kubeconfig_yaml(
    url: &str,
    ca_file: &Path,
    user: &str,
    credentials: &UserCredentials<'_>,
    namespace: &str,
) -> String {
    let quote = |text: &str| serde_json::to_string(text).expect("JSON");
    let path = |path: &Path| quote(&path.to_string_lossy());
    let mut yaml = String::new();
    let _ = write!(
        yaml,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    \
         server: {}\n    certificate-authority: {}\nusers:\n- name: {}\n  user:\n",
        quote(url),
        path(ca_file),
        quote(user),
    );
    match credentials {
        UserCredentials::Certificate { cert, key } => {
            let _ = writeln!(
                yaml,
                "    client-certificate: {}\n    client-key: {}",
                path(cert),
                path(key)
            );
        }
        UserCredentials::Token(token) => {
            let _ = writeln!(yaml, "    token: {}", quote(token));
        }
    }
    let _ = write!(
        yaml,
        "contexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {}\n    \
         namespace: {}\ncurrent-context: {CONTEXT}\n",
        quote(user),
        quote(namespace),
    );
    yaml
}

pub(crate) async fn client_from_kubeconfig(path: &Path) -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|err| panic!("loading {}: {err}", path.display()));
    kube::Client::try_from(config)
        .unwrap_or_else(|err| panic!("a client from {}: {err}", path.display()))
}

/// Writes a file only its owner can read: keys and tokens.
pub(crate) fn write_private(path: &Path, contents: &str) {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}
