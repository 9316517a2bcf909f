// Helpers shared by the CLI integration tests.
//
// Every test runs the real `skillport` binary in its own sandbox (a temporary folder holding
// the store, the skill folders and a fake HOME), with the environment cleared so that a
// developer's SOURCE_DATE_EPOCH, SKILLPORT_STORE or XDG_DATA_HOME cannot change a result.
// Peer tools (skopeo, GNU tar, gzip, sha256sum) are real programs found on PATH; a test that
// needs one fails, naming it, when it is missing — scripts/test.sh installs them.
//
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any one process may run before the test kills it and fails. Generous: it only
/// turns a hang (a deadlock on the store lock, say) into a failure instead of a stuck suite.
const DEADLINE: Duration = Duration::from_secs(120);

/// The workspace root (where `examples/` and `Cargo.lock` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/skillport is two levels below the workspace root")
        .to_path_buf()
}

/// A temporary folder for one test: `store/` (created by the first command that opens it),
/// `home/`, and whatever skill folders the test writes.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("skillport-cli-test-")
            .tempdir()
            .expect("creating a temporary folder");
        fs::create_dir(dir.path().join("home")).unwrap();
        Sandbox { dir }
    }

    /// The sandbox folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `<sandbox>/<relative>`.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The store every `skillport` command of this sandbox uses.
    pub fn store(&self) -> PathBuf {
        self.join("store")
    }

    /// `skillport` with a clean environment and no `--store`, run in the sandbox folder.
    pub fn bare(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skillport"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.join("home"))
            .env("TZ", "UTC")
            .current_dir(self.path())
            .args(args);
        command
    }

    /// `skillport --store <sandbox>/store ARGS…` with a clean environment (without `--store`
    /// for the commands that use no store, which refuse it).
    pub fn skillport(&self, args: &[&str]) -> Command {
        const STORELESS: [&str; 11] = [
            "list",
            "uninstall",
            "generate-key-pair",
            "init",
            "validate",
            "demo",
            "fetch",
            "verify",
            "completions",
            "version",
            "logout",
        ];
        if args
            .first()
            .is_some_and(|command| STORELESS.contains(command))
        {
            return self.bare(args);
        }
        let mut command = self.bare(&["--store"]);
        command.arg(self.store()).args(args);
        command
    }

    /// Runs `skillport --store … ARGS` and returns what happened.
    pub fn run(&self, args: &[&str]) -> Run {
        run(self.skillport(args))
    }

    /// Runs `skillport --store … ARGS` and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> Run {
        self.run(args).success()
    }

    /// `skillport build DIR -t TAG`, returning the digest printed on stdout.
    pub fn build(&self, dir: &Path, tag: &str) -> String {
        let run = self.ok(&["build", path_str(dir), "-t", tag]);
        digest_line(&run)
    }

    /// `skillport inspect REFERENCE --json`, parsed.
    pub fn inspect(&self, reference: &str) -> serde_json::Value {
        self.ok(&["inspect", reference, "--json"]).json()
    }

    /// The path of the blob `digest` (`sha256:…`) in this sandbox's store.
    pub fn blob(&self, digest: &str) -> PathBuf {
        blob_path(&self.store(), digest)
    }
}

/// The path of the blob `digest` in the OCI layout at `store`.
pub fn blob_path(store: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest
        .split_once(':')
        .unwrap_or_else(|| panic!("{digest:?} is not a digest"));
    store.join("blobs").join(algorithm).join(hex)
}

/// The one digest a plain `skillport build` prints on stdout.
pub fn digest_line(run: &Run) -> String {
    let digest = run.stdout.trim().to_owned();
    assert!(
        is_sha256_digest(&digest),
        "`build` should print exactly one sha256 digest on stdout\n{run}"
    );
    digest
}

pub fn is_sha256_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Running processes

/// What a finished process did.
pub struct Run {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(self) -> Run {
        assert!(self.status.success(), "expected success\n{self}");
        self
    }

    /// Asserts exit code 1: a reported failure, not a panic (101) or a usage error (2).
    #[track_caller]
    pub fn failure(self) -> Run {
        assert_eq!(
            self.status.code(),
            Some(1),
            "expected a reported failure (exit code 1)\n{self}"
        );
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err})\n{self}"))
    }

    /// The `hint:` line on stderr, without the prefix.
    pub fn hint(&self) -> Option<&str> {
        self.stderr
            .lines()
            .find_map(|line| line.strip_prefix("hint: "))
    }

    /// The `error:` line on stderr (the whole error chain), without the prefix.
    #[track_caller]
    pub fn error(&self) -> &str {
        self.stderr
            .lines()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or_else(|| panic!("no `error:` line on stderr\n{self}"))
    }
}

/// A process started by [`spawn`]; its output goes to anonymous temporary files rather than
/// pipes so that a chatty child can never block on a full pipe.
pub struct Spawned {
    command: String,
    child: Child,
    stdout: File,
    stderr: File,
}

/// Starts `command` with stdin from /dev/null.
pub fn spawn(mut command: Command) -> Spawned {
    let description = describe(&command);
    let stdout = tempfile::tempfile().unwrap();
    let stderr = tempfile::tempfile().unwrap();
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap());
    let child = command
        .spawn()
        .unwrap_or_else(|err| panic!("could not start `{description}`: {err}"));
    Spawned {
        command: description,
        child,
        stdout,
        stderr,
    }
}

impl Spawned {
    /// Waits for the process (killing it and failing the test past [`DEADLINE`]).
    pub fn wait(mut self) -> Run {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "`{}` still ran after {DEADLINE:?}: killed (a hang?)",
                    self.command
                );
            }
            // Polling for exit, not waiting for another process to reach some state.
            std::thread::sleep(Duration::from_millis(5));
        };
        Run {
            command: self.command,
            status,
            stdout: read_all(&mut self.stdout),
            stderr: read_all(&mut self.stderr),
        }
    }
}

fn read_all(file: &mut File) -> String {
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `command` to the end.
pub fn run(command: Command) -> Run {
    spawn(command).wait()
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Peer tools

/// Fails the test, naming `tool`, when it is not on PATH.
#[track_caller]
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not installed, and this test runs it as a real peer: run \
                 scripts/test.sh, which installs it (Debian package `{package}`)"
            )
        })
}

/// A command for a peer tool (checked to exist), in the real environment but with TZ=UTC.
pub fn tool(tool: &str, package: &str) -> Command {
    let mut command = Command::new(require_tool(tool, package));
    command.env("TZ", "UTC");
    command
}

/// `skopeo ARGS` (with `--insecure-policy`, so no /etc/containers/policy.json is needed).
pub fn skopeo(args: &[&str]) -> Run {
    let mut command = tool("skopeo", "skopeo");
    command.arg("--insecure-policy").args(args);
    run(command)
}

/// `sh -c SCRIPT` with `$1…` set to `args`.
pub fn sh(script: &str, args: &[&str]) -> Run {
    let mut command = tool("sh", "dash");
    command.arg("-c").arg(script).arg("sh").args(args);
    run(command)
}

/// The SHA-256 of each file, computed by coreutils' `sha256sum` (not by our code).
pub fn sha256_files(paths: &[PathBuf]) -> Vec<String> {
    if paths.is_empty() {
        return Vec::new();
    }
    let mut command = tool("sha256sum", "coreutils");
    command.arg("--").args(paths);
    let run = run(command).success();
    let sums: Vec<String> = run
        .stdout
        .lines()
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(sums.len(), paths.len(), "one sum per file\n{run}");
    sums
}

/// Asserts that every blob in the layout at `store` hashes to its file name, and returns
/// their digests.
#[track_caller]
pub fn assert_blobs_match_their_names(store: &Path) -> BTreeSet<String> {
    let dir = store.join("blobs/sha256");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("listing {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    let sums = sha256_files(&paths);
    let mut digests = BTreeSet::new();
    for (path, sum) in paths.iter().zip(sums) {
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(
            name,
            sum,
            "blob {} does not hash to its name (sha256sum says {sum})",
            path.display()
        );
        digests.insert(format!("sha256:{name}"));
    }
    digests
}

/// Asserts that the store's scratch folder holds no leftovers of a build or an export.
#[track_caller]
pub fn assert_no_temporary_files(store: &Path) {
    let tmp = store.join(".skillport/tmp");
    if let Ok(entries) = fs::read_dir(&tmp) {
        let left: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.is_empty(),
            "temporary files left in {}: {left:?}",
            tmp.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Skill folders

/// Permission bits used when writing a sample skill. Any choice within the set the layer
/// normalises (0600/0644 files, 0700/0755 folders and executables) gives the same image.
#[derive(Debug, Clone, Copy)]
pub struct Modes {
    pub file: u32,
    pub executable: u32,
    pub dir: u32,
}

pub const USUAL_MODES: Modes = Modes {
    file: 0o644,
    executable: 0o755,
    dir: 0o755,
};
pub const PRIVATE_MODES: Modes = Modes {
    file: 0o600,
    executable: 0o700,
    dir: 0o700,
};

/// Writes `<parent>/<name>/SKILL.md` with a valid frontmatter and returns the folder.
pub fn write_minimal_skill(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("SKILL.md"),
        format!(
            "---\nname: {name}\ndescription: A test skill called {name}, used by the CLI tests.\n---\n\n# {name}\n\nDo the thing.\n"
        ),
    )
    .unwrap();
    dir
}

/// Writes a skill with a bit of everything: nested folders, an empty folder, an executable,
/// an empty file, binary content and a link that stays inside the folder.
pub fn write_sample_skill(parent: &Path, name: &str, modes: Modes) -> PathBuf {
    let dir = parent.join(name);
    let files: [(&str, Vec<u8>, bool); 6] = [
        (
            "SKILL.md",
            format!(
                "---\nname: {name}\ndescription: Sample skill {name} for the CLI tests; use it when testing.\nlicense: Apache-2.0\nmetadata:\n  version: \"1.2.0\"\n  author: Test Author\n---\n\n# {name}\n\nRun `scripts/run.sh`, then read references/guide.md.\n"
            )
            .into_bytes(),
            false,
        ),
        ("scripts/run.sh", b"#!/bin/sh\necho run\n".to_vec(), true),
        ("scripts/helper.py", b"print('helper')\n".to_vec(), false),
        (
            "references/guide.md",
            b"# Guide\n\nSome words.\n".to_vec(),
            false,
        ),
        ("assets/data.bin", (0..=255u8).cycle().take(3000).collect(), false),
        ("assets/empty.txt", Vec::new(), false),
    ];
    for (path, content, executable) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        let mode = if executable {
            modes.executable
        } else {
            modes.file
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::create_dir_all(dir.join("references/empty")).unwrap();
    symlink("references/guide.md", dir.join("alias.md")).unwrap();
    for sub in ["", "scripts", "references", "references/empty", "assets"] {
        fs::set_permissions(dir.join(sub), fs::Permissions::from_mode(modes.dir)).unwrap();
    }
    dir
}

/// The entries of [`write_sample_skill`], sorted as a layer lists them.
pub const SAMPLE_ENTRIES: [&str; 11] = [
    "SKILL.md",
    "alias.md",
    "assets",
    "assets/data.bin",
    "assets/empty.txt",
    "references",
    "references/empty",
    "references/guide.md",
    "scripts",
    "scripts/helper.py",
    "scripts/run.sh",
];

/// A small seeded PRNG (SplitMix64): reproducible test data without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// About `len` bytes of compressible, text-like content.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "skill", "agent", "image", "layer", "digest", "store", "the", "a", "of", "to",
            "registry", "manifest", "folder", "file", "build", "export",
        ];
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            #[allow(clippy::cast_possible_truncation)] // the low bits pick a word
            let word = WORDS[(self.next_u64() % WORDS.len() as u64) as usize];
            out.extend_from_slice(word.as_bytes());
            out.push(if self.next_u64().is_multiple_of(12) {
                b'\n'
            } else {
                b' '
            });
        }
        out.truncate(len);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing folders

/// One entry of a folder tree, as far as a skill image carries it.
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { executable: bool, bytes: Vec<u8> },
    Link(String),
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Dir => write!(f, "dir"),
            Node::File { executable, bytes } => {
                write!(f, "file ({} bytes, executable: {executable})", bytes.len())
            }
            Node::Link(target) => write!(f, "link -> {target}"),
        }
    }
}

/// Every entry below `root`, by `/`-separated relative path.
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    collect_tree(root, "", &mut out);
    out
}

fn collect_tree(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Node>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let node = if meta.file_type().is_symlink() {
            Node::Link(
                fs::read_link(entry.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if meta.is_dir() {
            collect_tree(&entry.path(), &format!("{relative}/"), out);
            Node::Dir
        } else {
            Node::File {
                executable: meta.permissions().mode() & 0o111 != 0,
                bytes: fs::read(entry.path()).unwrap(),
            }
        };
        out.insert(relative, node);
    }
}

/// Asserts two trees are equal, naming only the entries that differ.
#[track_caller]
pub fn assert_same_tree(found: &BTreeMap<String, Node>, expected: &BTreeMap<String, Node>) {
    let mut problems = Vec::new();
    for (path, node) in expected {
        match found.get(path) {
            None => problems.push(format!("missing: {path} ({node:?})")),
            Some(other) if other != node => {
                problems.push(format!("differs: {path}: {other:?}, expected {node:?}"));
            }
            Some(_) => {}
        }
    }
    for (path, node) in found {
        if !expected.contains_key(path) {
            problems.push(format!("unexpected: {path} ({node:?})"));
        }
    }
    assert!(
        problems.is_empty(),
        "trees differ:\n{}",
        problems.join("\n")
    );
}

/// Everything in the store folder except `.skillport/` (its lock and scratch space): each
/// entry's kind, permission bits and content. Two equal snapshots mean an unchanged store.
pub fn store_snapshot(store: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if store.exists() {
        snapshot_into(store, "", &mut out);
    }
    out
}

fn snapshot_into(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefix.is_empty() && name == ".skillport" {
            continue;
        }
        let relative = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let value = if meta.is_dir() {
            snapshot_into(&entry.path(), &format!("{relative}/"), out);
            format!("dir {mode:o}")
        } else if meta.file_type().is_symlink() {
            format!("link {}", fs::read_link(entry.path()).unwrap().display())
        } else {
            // The whole content, not a hash: stores in these tests are small, and a byte
            // comparison needs no code of ours that could share a bug with the code under test.
            let bytes = fs::read(entry.path()).unwrap();
            format!(
                "file {mode:o} {} bytes: {}",
                bytes.len(),
                String::from_utf8_lossy(&bytes)
            )
        };
        out.insert(relative, value);
    }
}

/// Asserts two store snapshots are equal, naming the paths that differ.
#[track_caller]
pub fn assert_store_unchanged(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    what: &str,
) {
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(changed.is_empty(), "{what} changed the store: {changed:?}");
}

/// `names` in a folder, sorted.
pub fn folder_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
