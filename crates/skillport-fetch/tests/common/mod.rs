// Helpers shared by the fetch tests: skills pushed to real registries (built by skillport, or
// made by hand with hostile layers), pull secrets in the Kubernetes volume layout, plans, and
// folder listings for "nothing else was written" checks.

#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flate2::write::GzEncoder;
use skillport_fetch::plan::{CredentialFile, FetchPlan, PlannedSkill};
use skillport_fetch::{FetchOptions, Report, SkillIndex};
use skillport_oci::spec::{Descriptor, ImageManifest, media};
use skillport_oci::{BuildRequest, Reference, Store};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, NoProgress};
use skillport_testkit::Registry;

/// Short timeouts and backoffs, so that failures fail in seconds.
pub fn fast_options() -> FetchOptions {
    FetchOptions {
        timeout: Duration::from_secs(60),
        attempts: 2,
        backoff: Duration::from_millis(50),
        client: ClientOptions {
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            attempts: 2,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            ..ClientOptions::default()
        },
        ..FetchOptions::default()
    }
}

/// Runs a fetch on a fresh two-thread runtime, as the CLI does.
pub fn run(plan: &FetchPlan, into: &Path, options: &FetchOptions) -> Report {
    try_run(plan, into, options).unwrap_or_else(|err| panic!("fetch failed as a whole: {err}"))
}

pub fn try_run(
    plan: &FetchPlan,
    into: &Path,
    options: &FetchOptions,
) -> Result<Report, skillport_fetch::FetchError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(skillport_fetch::fetch(plan, into, options))
}

/// A registry with TLS and basic auth, its pull secret (mounted the way the kubelet mounts a
/// `kubernetes.io/dockerconfigjson` Secret) and a client to push with.
pub struct Site {
    pub registry: Registry,
    pub secret_name: String,
    pub secret_file: PathBuf,
    pub client: Client,
}

impl Site {
    pub fn start(secrets: &Path, secret_name: &str) -> Site {
        let registry = Registry::tls_basic_auth();
        let secret_file = mount_secret(secrets, secret_name, &registry);
        let client = pusher(&registry, &secret_file);
        Site {
            registry,
            secret_name: secret_name.to_owned(),
            secret_file,
            client,
        }
    }

    pub fn host(&self) -> String {
        self.registry.host()
    }

    pub fn ca_file(&self) -> String {
        self.registry.ca_file().unwrap().display().to_string()
    }

    pub fn pull_secret(&self) -> CredentialFile {
        CredentialFile {
            name: self.secret_name.clone(),
            path: self.secret_file.display().to_string(),
        }
    }

    pub fn password(&self) -> String {
        self.registry.credentials().unwrap().1.to_owned()
    }
}

/// Writes `<secrets>/<name>/` the way the kubelet mounts a Secret: the data in a timestamped
/// folder, `..data` linking to it, and `.dockerconfigjson` linking through `..data`.
pub fn mount_secret(secrets: &Path, name: &str, registry: &Registry) -> PathBuf {
    let dir = secrets.join(name);
    let data = dir.join("..2026_01_01_00_00_00.000000001");
    let config = registry.docker_config(&data);
    fs::rename(&config, data.join(".dockerconfigjson")).unwrap();
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/.dockerconfigjson", dir.join(".dockerconfigjson")).unwrap();
    dir.join(".dockerconfigjson")
}

/// A client that pushes to `registry` with the credentials in `docker_config`.
pub fn pusher(registry: &Registry, docker_config: &Path) -> Client {
    let credentials = Credentials::from_files(vec![AuthFile::read(docker_config).unwrap()]);
    Client::new(
        credentials,
        ClientOptions {
            ca_files: registry
                .ca_file()
                .map(Path::to_path_buf)
                .into_iter()
                .collect(),
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Writes a skill folder `parent/name` holding `files` (path → content) plus a SKILL.md, unless
/// `files` has one.
pub fn write_skill(parent: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(&dir).unwrap();
    if !files.iter().any(|(path, _)| *path == "SKILL.md") {
        fs::write(
            dir.join("SKILL.md"),
            format!(
                "---\nname: {name}\ndescription: Test skill {name}. Use it in tests.\nmetadata:\n  version: 1.0.0\n---\n\n# {name}\n"
            ),
        )
        .unwrap();
    }
    for (path, content) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        if path.extension().is_some_and(|e| e == "sh") {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    dir
}

/// Builds the skill folder `dir` with skillport (lenient, so that tests can publish skills
/// that break rules) and pushes it as `<host>/skills/<repository>:<tag>`; returns the
/// reference and the image digest.
pub fn push_skill(
    site: &Site,
    work: &Path,
    dir: &Path,
    repository: &str,
    tag: &str,
) -> (String, String) {
    let store = Store::open(&work.join(format!("store-{repository}-{tag}"))).unwrap();
    let skill = skillport_skill::load(dir, skillport_skill::Mode::Lenient).unwrap();
    let entries = skillport_skill::walk(dir).unwrap();
    let local: Reference = format!("{repository}:{tag}").parse().unwrap();
    let built = skillport_oci::build(
        &store,
        &BuildRequest {
            skill: &skill,
            entries: &entries,
            generated_card: None,
            source_date_epoch: None,
            names: std::slice::from_ref(&local),
        },
        &mut |_| {},
    )
    .unwrap();
    let remote = format!("{}/skills/{repository}:{tag}", site.host());
    block_on(site.client.push(
        &store,
        &local,
        &remote.parse().unwrap(),
        Arc::new(NoProgress),
    ))
    .unwrap();
    (remote, built.digest().to_string())
}

/// Pushes an image made by hand: one layer of `layer_media_type` holding `layer`, under
/// `<host>/skills/<repository>:<tag>`; returns the reference and the manifest digest.
pub fn push_layer(
    site: &Site,
    work: &Path,
    repository: &str,
    tag: &str,
    layer: &[u8],
    layer_media_type: &str,
) -> (String, String) {
    let store = Store::open(&work.join(format!("raw-{repository}-{tag}"))).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::IMAGE_MANIFEST.to_owned()),
        artifact_type: None,
        config: Descriptor::of(media::IMAGE_CONFIG, &config),
        layers: vec![Descriptor::of(layer_media_type, layer)],
        annotations: BTreeMap::new(),
        subject: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let descriptor = Descriptor::of(media::IMAGE_MANIFEST, &manifest_bytes);
    let pending = vec![
        store.expect_bytes(&manifest.config, &config).unwrap(),
        store.expect_bytes(&manifest.layers[0], layer).unwrap(),
        store.expect_bytes(&descriptor, &manifest_bytes).unwrap(),
    ];
    let key = format!("{repository}:{tag}");
    store
        .commit(pending, &[(key.clone(), descriptor.clone())])
        .unwrap();
    let remote = format!("{}/skills/{repository}:{tag}", site.host());
    block_on(site.client.push(
        &store,
        &key.parse().unwrap(),
        &remote.parse().unwrap(),
        Arc::new(NoProgress),
    ))
    .unwrap();
    (remote, descriptor.digest.to_string())
}

/// A tar entry written with raw header bytes, so that paths the `tar` crate refuses to write
/// (`..`, absolute) can be made.
pub struct RawEntry<'a> {
    pub path: &'a str,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub link: &'a str,
    pub data: &'a [u8],
}

pub fn file<'a>(path: &'a str, data: &'a [u8]) -> RawEntry<'a> {
    RawEntry {
        path,
        kind: tar::EntryType::Regular,
        mode: 0o644,
        link: "",
        data,
    }
}

pub fn symlink<'a>(path: &'a str, target: &'a str) -> RawEntry<'a> {
    RawEntry {
        path,
        kind: tar::EntryType::Symlink,
        mode: 0o777,
        link: target,
        data: b"",
    }
}

pub fn tar_gz(entries: &[RawEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        let linkname = &mut header.as_old_mut().linkname;
        linkname[..entry.link.len()].copy_from_slice(entry.link.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_mode(entry.mode);
        header.set_size(entry.data.len() as u64);
        header.set_cksum();
        builder.append(&header, entry.data).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A SKILL.md for `name`.
pub fn skill_md(name: &str) -> Vec<u8> {
    format!("---\nname: {name}\ndescription: Hand-made skill {name}.\n---\n\n# {name}\n")
        .into_bytes()
}

/// A plan with these skills and pull secrets, trusting these CA files.
pub fn plan(skills: Vec<PlannedSkill>, sites: &[&Site]) -> FetchPlan {
    FetchPlan {
        skills,
        pull_secrets: sites.iter().map(|site| site.pull_secret()).collect(),
        ca_files: sites.iter().map(|site| site.ca_file()).collect(),
        ..FetchPlan::new()
    }
}

/// Every path under `root` (folders end in `/`), sorted, relative.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if !root.exists() {
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.push(format!("{relative}/"));
                stack.push(path);
            } else {
                out.push(relative);
            }
        }
    }
    out.sort();
    out
}

/// The top-level names in `root`, sorted.
pub fn top_level(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file under `root` with its bytes and mode, for comparing a fetched folder with its
/// source.
pub fn contents(root: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    listing(root)
        .into_iter()
        .filter(|path| !path.ends_with('/'))
        .map(|path| {
            let full = root.join(&path);
            let mode = fs::symlink_metadata(&full).unwrap().permissions().mode() & 0o777;
            (path, (fs::read(&full).unwrap_or_default(), mode))
        })
        .collect()
}

/// The index written into `into`.
pub fn index(into: &Path) -> SkillIndex {
    let bytes = fs::read(into.join("index.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `len` bytes gzip cannot shrink (xorshift, seeded).
pub fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Asserts that a report's failure for `name` mentions every one of `needles` and none of
/// `secrets`; returns its message.
#[track_caller]
pub fn failure_of(report: &Report, name: &str, needles: &[&str], secrets: &[&str]) -> String {
    let outcome = report
        .outcomes
        .iter()
        .find(|outcome| outcome.name == name)
        .unwrap_or_else(|| panic!("no outcome for {name}"));
    let failure = outcome
        .result
        .as_ref()
        .err()
        .unwrap_or_else(|| panic!("{name} should have failed: {:?}", outcome.result));
    let message = failure.to_string();
    assert!(
        message.starts_with(&format!("skill {name:?}: ")),
        "{message}"
    );
    for needle in needles {
        assert!(
            message.contains(needle),
            "{message:?} should mention {needle:?}"
        );
    }
    for secret in secrets {
        assert!(!message.contains(secret), "{message:?} leaks a secret");
    }
    message
}
