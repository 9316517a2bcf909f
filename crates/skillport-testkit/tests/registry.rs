//! Every registry flavour works with an independent client (skopeo): push a hand-written image,
//! read it back. TLS is checked with rustls too, since that is what our client uses.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;
use skillport_testkit::{Registry, TestCa, TinyImage, skopeo, write_tiny_image};

struct Run {
    args: Vec<String>,
    output: Output,
}

impl Run {
    fn ok(&self) -> bool {
        self.output.status.success()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn success(self) -> Self {
        assert!(self.ok(), "{self}");
        self
    }
    fn failure(self) -> Self {
        assert!(!self.ok(), "expected a failure: {self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "skopeo {:?}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
}

fn run_skopeo(args: &[String]) -> Run {
    let output = skopeo().args(args).output().expect("running skopeo");
    Run {
        args: args.to_vec(),
        output,
    }
}

fn args(parts: &[&str], flags: Vec<String>) -> Vec<String> {
    let mut all: Vec<String> = parts.iter().map(ToString::to_string).collect();
    all.extend(flags);
    all
}

/// Pushes a fresh tiny image to `registry` as `tiny:1` with skopeo.
fn push(registry: &Registry, scratch: &Path) -> TinyImage {
    let layout = scratch.join("layout");
    let image = write_tiny_image(&layout, "1", b"hello from skillport-testkit\n");
    let mut copy = args(&["copy", "--quiet"], registry.skopeo_flags("dest-"));
    copy.push(format!("oci:{}:1", layout.display()));
    copy.push(format!("docker://{}/tiny:1", registry.host()));
    run_skopeo(&copy).success();
    image
}

fn inspect_raw(registry: &Registry, flags: Vec<String>) -> Run {
    let mut inspect = args(&["inspect", "--raw"], flags);
    inspect.push(format!("docker://{}/tiny:1", registry.host()));
    run_skopeo(&inspect)
}

/// Push, then read the manifest back byte for byte, and find the blobs in storage.
fn round_trip(registry: &Registry) {
    let scratch = tempfile::tempdir().unwrap();
    let image = push(registry, scratch.path());
    let run = inspect_raw(registry, registry.skopeo_flags("")).success();
    assert_eq!(run.stdout().as_bytes(), image.manifest.as_slice(), "{run}");

    let mut inspect = args(&["inspect"], registry.skopeo_flags(""));
    inspect.push(format!("docker://{}/tiny:1", registry.host()));
    let run = run_skopeo(&inspect).success();
    let parsed: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(parsed["Digest"], image.manifest_digest.as_str(), "{run}");
    assert_eq!(parsed["Layers"][0], image.layer_digest.as_str(), "{run}");

    assert_eq!(
        fs::read(registry.blob_file(&image.layer_digest)).unwrap(),
        image.layer
    );
    assert_eq!(
        fs::read(registry.blob_file(&image.config_digest)).unwrap(),
        image.config
    );
}

#[test]
fn plain_registry_takes_a_push_and_gives_it_back() {
    let registry = Registry::plain();
    assert!(registry.url().starts_with("http://127.0.0.1:"));
    assert_eq!(registry.credentials(), None);
    assert_eq!(registry.ca_file(), None);
    round_trip(&registry);
}

#[test]
fn basic_auth_registry_needs_the_credentials() {
    let registry = Registry::basic_auth();
    let (user, password) = registry.credentials().unwrap();
    assert_eq!(user, "skillport");
    assert_eq!(password.len(), 32);
    round_trip(&registry);

    // Without credentials (an empty auth file): refused.
    let scratch = tempfile::tempdir().unwrap();
    let empty = scratch.path().join("empty.json");
    fs::write(&empty, r#"{"auths":{}}"#).unwrap();
    let run = inspect_raw(
        &registry,
        vec![
            "--tls-verify=false".into(),
            format!("--authfile={}", empty.display()),
        ],
    )
    .failure();
    assert!(
        run.stderr().contains("unauthorized") || run.stderr().contains("authentication required"),
        "{run}"
    );

    // The Docker config file is what a client reads.
    let config_path = registry.docker_config(&scratch.path().join("docker"));
    let config: Value = serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    let auth = config["auths"][registry.host()]["auth"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .unwrap();
    assert_eq!(decoded, format!("{user}:{password}").as_bytes());
    let run = inspect_raw(
        &registry,
        vec![
            "--tls-verify=false".into(),
            format!("--authfile={}", config_path.display()),
        ],
    );
    run.success();
}

#[test]
fn tls_registry_is_trusted_with_the_test_ca_only() {
    let registry = Registry::tls();
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    let cert_dir = registry.cert_dir().unwrap();
    assert_eq!(
        fs::read_dir(cert_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect::<Vec<_>>(),
        ["ca.crt"],
        "skopeo trusts every *.crt in --cert-dir"
    );
    assert_eq!(registry.ca_file().unwrap(), cert_dir.join("ca.crt"));
    round_trip(&registry);

    // Without the CA, skopeo refuses the certificate.
    let scratch = tempfile::tempdir().unwrap();
    let run = inspect_raw(
        &registry,
        vec![format!("--cert-dir={}", scratch.path().display())],
    )
    .failure();
    assert!(run.stderr().contains("certificate"), "{run}");

    // rustls (what our client uses) accepts the leaf with the CA and refuses it without.
    let ca = registry.ca().unwrap();
    assert_eq!(https_status(&registry, Some(ca)).unwrap(), 200);
    let refused = https_status(&registry, None).unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // A CA from another test run is no better.
    let other = TestCa::new();
    let refused = https_status(&registry, Some(&other)).unwrap_err();
    assert!(
        refused.contains("BadSignature") || refused.contains("UnknownIssuer"),
        "{refused}"
    );
}

#[test]
fn tls_basic_auth_registry_needs_ca_and_credentials() {
    let registry = Registry::tls_basic_auth();
    assert!(registry.credentials().is_some());
    round_trip(&registry);
    assert_eq!(
        https_status(&registry, Some(registry.ca().unwrap())).unwrap(),
        401
    );
}

#[test]
fn stop_and_restart_keep_port_and_content() {
    let mut registry = Registry::plain();
    let scratch = tempfile::tempdir().unwrap();
    let image = push(&registry, scratch.path());
    let host = registry.host();

    registry.stop();
    assert!(!registry.is_running());
    assert!(
        TcpStream::connect(&host).is_err(),
        "still listening after stop"
    );
    inspect_raw(&registry, registry.skopeo_flags("")).failure();

    registry.restart();
    assert!(registry.is_running());
    assert_eq!(registry.host(), host);
    let run = inspect_raw(&registry, registry.skopeo_flags("")).success();
    assert_eq!(run.stdout().as_bytes(), image.manifest.as_slice(), "{run}");

    // restart on a running registry is stop + start.
    registry.restart();
    inspect_raw(&registry, registry.skopeo_flags("")).success();
}

#[test]
fn a_tampered_blob_is_served_as_is_and_a_verifying_client_rejects_it() {
    let registry = Registry::plain();
    let scratch = tempfile::tempdir().unwrap();
    let image = push(&registry, scratch.path());

    let blob = registry.blob_file(&image.layer_digest);
    let mut tampered = image.layer.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    fs::write(&blob, &tampered).unwrap();

    let mut copy = args(&["copy", "--quiet"], registry.skopeo_flags("src-"));
    copy.push(format!("docker://{}/tiny:1", registry.host()));
    copy.push(format!("oci:{}:1", scratch.path().join("out").display()));
    let run = run_skopeo(&copy).failure();
    assert!(run.stderr().contains("Digest did not match"), "{run}");
}

#[test]
fn two_registries_run_side_by_side() {
    let first = Registry::basic_auth();
    let second = Registry::basic_auth();
    assert_ne!(first.host(), second.host());
    assert_ne!(first.credentials(), second.credentials());
    assert_ne!(first.storage_root(), second.storage_root());
}

#[test]
fn dropping_the_registry_kills_it() {
    let registry = Registry::plain();
    let host = registry.host();
    let storage = registry.storage_root().to_path_buf();
    drop(registry);
    assert!(TcpStream::connect(&host).is_err());
    assert!(!storage.exists());
}

/// `GET /v2/` over rustls trusting `ca` (or nothing): the status, or the TLS error.
fn https_status(registry: &Registry, ca: Option<&TestCa>) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        roots.add(ca.ca_der().to_vec().into()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(registry.host()).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let request = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        registry.host()
    );
    tls.write_all(request.as_bytes())
        .map_err(|err| format!("{err:?}"))?;
    let mut head = [0_u8; 12];
    tls.read_exact(&mut head)
        .map_err(|err| format!("{err:?}"))?;
    let head = String::from_utf8_lossy(&head);
    Ok(head[9..12].parse().unwrap())
}

#[test]
#[should_panic(expected = "run scripts/test.sh")]
fn a_missing_venv_tool_says_what_to_run() {
    skillport_testkit::venv_tool("no-such-tool-for-skillport");
}
