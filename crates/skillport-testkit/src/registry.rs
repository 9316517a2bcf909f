//! A real OCI registry (the CNCF distribution registry, Debian `docker-registry`) on 127.0.0.1.
//!
//! Expected flow: [`Registry::start`] writes a config, an htpasswd file and a certificate into a
//! temporary folder, picks a free port, runs `docker-registry serve CONFIG` and polls
//! `GET /v2/` until it answers 200 or 401 (well under a second). Tests push with a peer
//! client (skopeo, oras) or the code under test, and may stop, restart or tamper with storage.
//!
//! Guarantees: the port and storage survive [`Registry::stop`] + [`Registry::restart`]; the
//! process is killed and reaped on drop; a small watchdog (`sh`) kills it and removes its
//! temporary folders when the test process dies without dropping it (a test timeout), so
//! registries are not left running.
//!
//! Caveats: the free port is found by binding port 0 and closing the listener, so another process
//! can take it before the registry binds; `start` then retries on a new port, but `restart` must
//! reuse its port and panics if it was taken meanwhile.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tempfile::TempDir;

use crate::ca::TestCa;
use crate::http;
use crate::tools::{find_on_path, required_program};

/// The user name of [`Registry::basic_auth`] and [`Registry::tls_basic_auth`].
const USER: &str = "skillport";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const START_ATTEMPTS: usize = 5;

/// How to run a [`Registry`]. `Debug` leaves the password out.
#[derive(Clone, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a leaf certificate from a fresh [`TestCa`].
    pub tls: bool,
    /// Require HTTP basic auth (htpasswd, bcrypt) for this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Serve the OCI 1.1 referrers API: runs `ocireg` (go-containerregistry's registry, built by
    /// `scripts/k8s-tools.sh`, content in memory) instead of the distribution registry 2.8,
    /// which has no referrers API. [`Registry::storage_root`] and [`Registry::restart`] do
    /// not apply to it.
    pub referrers_api: bool,
}

/// A running `docker-registry serve CONFIG` on 127.0.0.1 with its own storage, killed on drop.
pub struct Registry {
    options: RegistryOptions,
    ca: Option<TestCa>,
    dir: TempDir,
    storage: PathBuf,
    port: u16,
    program: PathBuf,
    process: Option<Process>,
}

/// The registry process and its watchdog.
struct Process {
    registry: Child,
    watchdog: Option<(Child, ChildStdin)>,
}

enum StartFailure {
    /// Another process bound the port between our probe and the registry's bind.
    PortTaken,
}

impl Registry {
    /// Starts a registry. Panics with the registry's own output if it does not come up, and
    /// with a hint to run `scripts/test.sh` if `docker-registry` (or `htpasswd`) is missing.
    pub fn start(options: RegistryOptions) -> Registry {
        let program = if options.referrers_api {
            crate::k8s_tool("ocireg")
        } else {
            required_program("docker-registry", "docker-registry")
        };
        let dir = tempfile::Builder::new()
            .prefix("skillport-registry-")
            .tempdir()
            .expect("creating a temporary folder for the registry");
        let ca = options.tls.then(TestCa::new);
        if let Some((user, password)) = &options.basic_auth {
            write_htpasswd(&dir.path().join("htpasswd"), user, password);
            fs::write(dir.path().join("password"), password).expect("writing the password file");
        }
        let storage = dir.path().join("storage");
        let mut registry = Registry {
            options,
            ca,
            dir,
            storage,
            port: 0,
            program,
            process: None,
        };
        for attempt in 1..=START_ATTEMPTS {
            registry.port = free_port();
            registry.write_config();
            registry.write_skopeo_auth_file();
            match registry.launch() {
                Ok(()) => return registry,
                Err(StartFailure::PortTaken) if attempt < START_ATTEMPTS => {}
                Err(StartFailure::PortTaken) => panic!(
                    "docker-registry: every free port found was taken before it could bind \
                     ({START_ATTEMPTS} attempts)"
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Open, plain HTTP.
    pub fn plain() -> Registry {
        Registry::start(RegistryOptions::default())
    }

    /// Plain HTTP, basic auth as user `skillport` with a random password.
    pub fn basic_auth() -> Registry {
        Registry::start(RegistryOptions {
            basic_auth: Some((USER.to_owned(), random_password())),
            ..RegistryOptions::default()
        })
    }

    /// HTTPS with a test CA, basic auth as user `skillport` with a random password.
    pub fn tls_basic_auth() -> Registry {
        Registry::start(RegistryOptions {
            tls: true,
            basic_auth: Some((USER.to_owned(), random_password())),
            ..RegistryOptions::default()
        })
    }

    /// HTTPS with a test CA, basic auth as user `skillport`, and the OCI 1.1 referrers API
    /// (see [`RegistryOptions::referrers_api`]).
    pub fn tls_basic_auth_referrers() -> Registry {
        Registry::start(RegistryOptions {
            tls: true,
            basic_auth: Some((USER.to_owned(), random_password())),
            referrers_api: true,
        })
    }

    /// HTTPS with a test CA, open.
    pub fn tls() -> Registry {
        Registry::start(RegistryOptions {
            tls: true,
            ..RegistryOptions::default()
        })
    }

    /// `127.0.0.1:PORT`, as in image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// User and password when basic auth is on.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.options
            .basic_auth
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// The test CA when TLS is on.
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    /// The test CA certificate (PEM) when TLS is on.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_ref().map(TestCa::ca_file)
    }

    /// A folder holding only the CA certificate as `ca.crt` (for `skopeo --cert-dir`).
    pub fn cert_dir(&self) -> Option<&Path> {
        self.ca.as_ref().map(TestCa::cert_dir)
    }

    /// Writes `dir/config.json`, a Docker config file with an `auths` entry for [`Self::host`]
    /// (`"auth"`: base64 of `user:password`), and returns its path. Without basic auth the file
    /// has an empty `auths` map. Creates `dir` if needed.
    pub fn docker_config(&self, dir: &Path) -> PathBuf {
        fs::create_dir_all(dir).unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
        let path = dir.join("config.json");
        let mut auths = serde_json::Map::new();
        if let Some((user, password)) = self.credentials() {
            auths.insert(
                self.host(),
                serde_json::json!({ "auth": BASE64.encode(format!("{user}:{password}")) }),
            );
        }
        let config = serde_json::json!({ "auths": auths });
        fs::write(&path, serde_json::to_vec_pretty(&config).expect("JSON"))
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
        path
    }

    /// skopeo flags that reach this registry, for the side named by `prefix`: `""` for
    /// `inspect`, `list-tags` and `delete`, `"src-"` or `"dest-"` for `copy`.
    ///
    /// TLS: `--{prefix}tls-verify=false` for plain HTTP (skopeo's only way to speak HTTP), or
    /// `--{prefix}cert-dir=DIR` trusting the test CA. Credentials: always
    /// `--{prefix}authfile=FILE` (empty `auths` without basic auth), so the password never
    /// appears on a command line and the user's own login files are never read.
    pub fn skopeo_flags(&self, prefix: &str) -> Vec<String> {
        let tls = match self.cert_dir() {
            Some(dir) => format!("--{prefix}cert-dir={}", dir.display()),
            None => format!("--{prefix}tls-verify=false"),
        };
        let auth = format!("--{prefix}authfile={}", self.skopeo_auth_file().display());
        vec![tls, auth]
    }

    /// The registry's filesystem storage root (`storage.filesystem.rootdirectory`).
    pub fn storage_root(&self) -> &Path {
        assert!(
            !self.options.referrers_api,
            "the referrers-API registry keeps its content in memory"
        );
        &self.storage
    }

    /// Where the registry keeps the blob `sha256:<hex>`: overwrite it after a push to serve
    /// content that does not match its digest (the registry checks digests only on upload).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("blob_file wants a sha256:<hex> digest, got {digest:?}"));
        assert!(
            hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()),
            "blob_file wants a sha256:<64 hex> digest, got {digest:?}"
        );
        self.storage_root()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// What the registry printed (stdout and stderr, all runs).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the registry (SIGKILL, like a crash: open connections drop mid-transfer) and waits
    /// for it. Content stays. Does nothing if it is not running.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the registry again on the same port and storage (stopping it first if running).
    /// Panics if another process took the port meanwhile.
    pub fn restart(&mut self) {
        assert!(
            !self.options.referrers_api,
            "the referrers-API registry keeps its content in memory: a restart would lose it"
        );
        self.stop();
        // Go's listener uses SO_REUSEADDR, so the port is free again at once unless someone else
        // took it; a short retry covers a slow kernel.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(StartFailure::PortTaken) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(100));
                }
                Err(StartFailure::PortTaken) => panic!(
                    "docker-registry cannot restart: port {} was taken by another process",
                    self.port
                ),
            }
        }
    }

    fn config_file(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    fn skopeo_auth_file(&self) -> PathBuf {
        self.dir.path().join("skopeo").join("config.json")
    }

    fn write_skopeo_auth_file(&self) {
        self.docker_config(&self.dir.path().join("skopeo"));
    }

    fn write_config(&self) {
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: skillport-testkit-not-a-secret\n",
            root = yaml_string(&self.storage),
            port = self.port,
        );
        if let Some(ca) = &self.ca {
            let certificate = yaml_string(ca.server_cert_file());
            let key = yaml_string(ca.server_key_file());
            writeln!(
                config,
                "  tls:\n    certificate: {certificate}\n    key: {key}"
            )
            .expect("writing to a String");
        }
        if self.options.basic_auth.is_some() {
            let htpasswd = yaml_string(&self.dir.path().join("htpasswd"));
            writeln!(
                config,
                "auth:\n  htpasswd:\n    realm: skillport-test\n    path: {htpasswd}"
            )
            .expect("writing to a String");
        }
        let path = self.config_file();
        fs::write(&path, config).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
    }

    /// Runs the registry and waits until it answers `GET /v2/`.
    fn launch(&mut self) -> Result<(), StartFailure> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .expect("opening the registry log");
        let log_offset = log.metadata().map_or(0, |metadata| metadata.len());
        let mut command = Command::new(&self.program);
        if self.options.referrers_api {
            command.args(self.ocireg_args());
        } else {
            command.arg("serve").arg(self.config_file());
        }
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log);
        // The registry reads REGISTRY_* variables as config overrides; keep it to our file.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(name);
            }
        }
        let registry = command.spawn().unwrap_or_else(|err| {
            panic!("running {} serve: {err}", self.program.display());
        });
        let mut process = Process {
            watchdog: watchdog(registry.id(), &self.temporary_folders()),
            registry,
        };

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let ca_der = self.ca.as_ref().map(TestCa::ca_der);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = process.registry.try_wait() {
                let output = self.log_since(log_offset);
                process.kill();
                if output.contains("address already in use") {
                    return Err(StartFailure::PortTaken);
                }
                panic!(
                    "{} exited ({status}) before it was ready\n\
                     config: {}\n--- output ---\n{output}",
                    self.program.display(),
                    self.config_file().display()
                );
            }
            match http::get_status(addr, "/v2/", ca_der) {
                Ok(200 | 401) => break,
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                outcome => {
                    process.kill();
                    panic!(
                        "docker-registry on {} not ready after {READY_TIMEOUT:?} \
                         (last GET /v2/: {outcome:?})\n--- output ---\n{}",
                        self.url(),
                        self.log_since(log_offset)
                    );
                }
            }
        }
        self.process = Some(process);
        Ok(())
    }

    fn ocireg_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["--address".into(), self.host().into()];
        if let Some(ca) = &self.ca {
            args.extend([
                "--tls-cert".into(),
                ca.server_cert_file().into(),
                "--tls-key".into(),
                ca.server_key_file().into(),
            ]);
        }
        if let Some((user, _)) = &self.options.basic_auth {
            args.extend([
                "--user".into(),
                user.into(),
                "--password-file".into(),
                self.dir.path().join("password").into(),
            ]);
        }
        args
    }

    fn temporary_folders(&self) -> Vec<&Path> {
        let mut folders = vec![self.dir.path()];
        folders.extend(self.ca.as_ref().map(TestCa::dir));
        folders
    }

    fn log_since(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.log_file()) {
            let _ = std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset));
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegistryOptions")
            .field("tls", &self.tls)
            .field(
                "basic_auth",
                &self
                    .basic_auth
                    .as_ref()
                    .map(|(user, _)| (user, "<redacted>")),
            )
            .field("referrers_api", &self.referrers_api)
            .finish()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the options hold the password.
        formatter
            .debug_struct("Registry")
            .field("url", &self.url())
            .field("tls", &self.options.tls)
            .field("basic_auth", &self.options.basic_auth.is_some())
            .field("running", &self.is_running())
            .field("storage_root", &self.storage_root())
            .finish_non_exhaustive()
    }
}

impl Process {
    fn kill(mut self) {
        // The watchdog first: once the registry is reaped its pid may be reused.
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
        let _ = self.registry.kill();
        let _ = self.registry.wait();
    }
}

/// `sh` blocked reading a pipe whose only writer is this process: when the test process dies
/// (say, killed on a timeout) without dropping the [`Registry`], the read returns and `sh` kills
/// the registry and removes its temporary `folders`. Best effort: without `sh` there is simply
/// no watchdog.
pub(crate) fn watchdog(pid: u32, folders: &[&Path]) -> Option<(Child, ChildStdin)> {
    let sh = find_on_path("sh")?;
    let mut child = Command::new(sh)
        .arg("-c")
        .arg(format!(
            "read _ignored; kill -9 {pid} 2>/dev/null; sleep 0.2; rm -rf -- \"$@\""
        ))
        .arg("skillport-registry-watchdog")
        .args(folders)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

/// Writes an htpasswd file with a bcrypt entry, using Apache's `htpasswd` with the password on
/// stdin (`-i`), never on its command line.
fn write_htpasswd(path: &Path, user: &str, password: &str) {
    let program = required_program("htpasswd", "apache2-utils");
    let mut child = Command::new(program)
        .args(["-n", "-i", "-B", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running htpasswd");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("writing the password to htpasswd");
    let output = child.wait_with_output().expect("waiting for htpasswd");
    assert!(
        output.status.success(),
        "htpasswd failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    fs::write(path, &output.stdout)
        .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// 32 hex characters from the kernel's random source.
fn random_password() -> String {
    let mut bytes = [0_u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    hex::encode(bytes)
}

/// A path as a double-quoted YAML scalar (JSON strings are valid YAML).
fn yaml_string(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).expect("JSON")
}
