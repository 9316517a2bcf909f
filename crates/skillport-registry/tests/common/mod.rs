// Helpers shared by the registry client's integration tests: skills built into a store,
// clients wired to a testkit registry, and before/after snapshots of folders.

#![allow(dead_code)] // each test file uses a different subset

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skillport_oci::{BuildRequest, Built, Reference, Store, build};
use skillport_registry::auth::{AuthFile, Credentials};
use skillport_registry::{Client, ClientOptions, NoProgress, Progress, RegistryError};
use skillport_skill::{Mode, load, walk};
use skillport_testkit::Registry;

/// Options for tests: short timeouts and backoffs, so failures fail in well under a second.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        attempts: 2,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..ClientOptions::default()
    }
}

/// Credentials for `registry` from a Docker config file written into `dir` (empty `auths` for
/// an open registry).
pub fn credentials_for(registry: &Registry, dir: &Path) -> Credentials {
    let file = AuthFile::read(&registry.docker_config(dir)).expect("reading the Docker config");
    Credentials::from_files(vec![file])
}

/// A client for `registry`: its credentials, and its test CA when it speaks TLS.
pub fn client_for(registry: &Registry, dir: &Path) -> Client {
    let options = ClientOptions {
        ca_files: registry
            .ca_file()
            .map(Path::to_path_buf)
            .into_iter()
            .collect(),
        ..fast_options()
    };
    Client::new(credentials_for(registry, dir), options).expect("building the client")
}

pub fn progress() -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}

pub fn reference(text: &str) -> Reference {
    text.parse()
        .unwrap_or_else(|err| panic!("{text:?} is not a reference: {err}"))
}

/// Writes a small skill named `name` into `parent/name` and returns its folder.
pub fn write_skill(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::create_dir_all(dir.join("references")).unwrap();
    fs::write(
        dir.join("SKILL.md"),
        format!(
            "---\nname: {name}\ndescription: Summarises CSV files. Use when the user asks about a .csv file.\nlicense: Apache-2.0\nmetadata:\n  version: 1.2.0\n---\n\n# {name}\n\nRun `scripts/summarize.py FILE`.\n"
        ),
    )
    .unwrap();
    fs::write(
        dir.join("scripts/summarize.py"),
        format!("#!/usr/bin/env python3\nprint('summary from {name}')\n"),
    )
    .unwrap();
    fs::set_permissions(
        dir.join("scripts/summarize.py"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::write(
        dir.join("references/data.bin"),
        (0..=255u8).collect::<Vec<_>>(),
    )
    .unwrap();
    dir
}

/// `len` bytes that gzip cannot shrink (xorshift, seeded: the same every run).
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

/// Builds the skill in `dir` into `store`, named `name`.
pub fn build_skill(store: &Store, dir: &Path, name: &str) -> Built {
    let skill = load(dir, Mode::Strict).unwrap();
    let entries = walk(dir).unwrap();
    let names = [reference(name)];
    build(
        store,
        &BuildRequest {
            skill: &skill,
            entries: &entries,
            generated_card: None,
            source_date_epoch: None,
            names: &names,
        },
        &mut |_| {},
    )
    .unwrap()
}

/// Every file under `root` with its content and mode, and every folder (content `None`), for
/// before/after comparisons. Sorted by path.
pub fn snapshot(root: &Path) -> Vec<(String, Option<Vec<u8>>, u32)> {
    let mut out = Vec::new();
    if !root.exists() {
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let metadata = fs::symlink_metadata(&path).unwrap();
            let mode = metadata.permissions().mode() & 0o777;
            if metadata.is_dir() {
                stack.push(path);
                out.push((relative, None, mode));
            } else {
                out.push((relative, Some(fs::read(&path).unwrap()), mode));
            }
        }
    }
    out.sort();
    out
}

/// The blob file names (`<alg>/<hex>`) in a store.
pub fn blob_names(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = snapshot(&store.root().join("blobs"))
        .into_iter()
        .filter(|(_, content, _)| content.is_some())
        .map(|(path, _, _)| path)
        .collect();
    names.sort();
    names
}

/// Asserts the error's message names `registry` and each of `names`, holds no `secret`, is one
/// line, and that the error has a hint.
#[track_caller]
pub fn assert_reported(err: &RegistryError, registry: &str, names: &[&str], secret: Option<&str>) {
    let message = err.to_string();
    assert!(
        message.contains(registry),
        "the message does not name the registry {registry}: {message}"
    );
    for name in names {
        assert!(
            message.contains(name),
            "the message does not name {name}: {message}"
        );
    }
    assert!(!message.contains('\n'), "not one line: {message:?}");
    let hint = err
        .hint()
        .unwrap_or_else(|| panic!("no hint for: {message}"));
    if let Some(secret) = secret {
        let debug = format!("{err:?}");
        for text in [&message, &hint, &debug] {
            assert!(!text.contains(secret), "the password leaked into: {text}");
        }
    }
}
