// What every request carries, apart from the client that sends it: where it goes and what access
// it needs, and the client's settings. A leaf: the client, its sessions and response reading all
// use it, and it uses none of them.

use skillport_oci::spec::Platform;
use std::path::PathBuf;
use std::time::Duration;

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Extra CA certificates (PEM), trusted on top of the system's.
    pub ca_files: Vec<PathBuf>,
    /// Registries (`host[:port]`) for which TLS is not verified and plain HTTP is allowed.
    /// `localhost` and 127.0.0.0/8 may always fall back to plain HTTP, as docker does.
    pub insecure_registries: Vec<String>,
    /// Connecting, and each read while a response streams in.
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Attempts for a request that fails in a way that may pass (connection errors,
    /// timeouts, 429, 5xx). 1 means no retry.
    pub attempts: u32,
    /// The first backoff; it doubles each attempt, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Largest manifest or index accepted.
    pub max_manifest_bytes: u64,
    /// The platform whose manifest `export`, `skill_manifest` and `pull` read from an index,
    /// exactly (`pull` then fetches and stores that manifest alone, as `crane pull --platform`
    /// does). `None`: linux/amd64, else an index's only entry, and `pull` takes every platform.
    pub platform: Option<Platform>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca_files: Vec::new(),
            insecure_registries: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_manifest_bytes: 4 << 20,
            platform: None,
        }
    }
}

/// The part of a request that says where it goes and what access it needs.
#[derive(Debug, Clone)]
pub(crate) struct Access<'a> {
    /// `host[:port]` as written in references (`docker.io` for Hub).
    pub registry: &'a str,
    /// The repository, for credentials and token scopes.
    pub repository: &'a str,
    /// `pull` or `pull,push`.
    pub actions: &'a str,
    /// What the request is about, for messages (`manifest my/repo:1.0`).
    pub what: &'a str,
}
