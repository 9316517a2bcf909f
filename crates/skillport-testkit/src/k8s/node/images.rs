//! The images every test node needs, made here without a Docker engine: a static C `pause` (the
//! sandbox image), a static busybox (the agent image), and on request busybox + crane (an init
//! container that pulls the way kagent's `skills-init` did). Each is one layer on an empty base,
//! assembled and pushed with `crane append` + `crane mutate`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};

use crate::k8s::k8s_tool;
use crate::tools::required_program;

/// A sandbox process that does nothing until it is told to stop, and reaps orphans (what
/// Kubernetes' own `pause` does).
const PAUSE_C: &str = r"#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
";

/// The busybox applets the agent image links in `/bin`.
const APPLETS: &[&str] = &[
    "sh",
    "ls",
    "cat",
    "cp",
    "mkdir",
    "sleep",
    "grep",
    "touch",
    "find",
    "wc",
    "echo",
    "test",
    "head",
    "tail",
    "stat",
    "id",
    "tar",
    "rm",
    "mount",
    "sha256sum",
    "true",
    "false",
];

/// The static busybox Debian's `busybox-static` installs.
const BUSYBOX: &str = "/bin/busybox";

/// One image to assemble: a layer and what `crane mutate` sets.
pub(super) struct ImageSpec {
    pub(super) reference: String,
    pub(super) layer: Vec<u8>,
    pub(super) entrypoint: String,
}

/// `REGISTRY/skillport-test/pause:3.10`, its layer holding `/pause` built (once per machine, in
/// `cache`) with `gcc -static`.
pub(super) fn pause(registry: &str, cache: &Path) -> ImageSpec {
    let binary = pause_binary(cache);
    let mut layer = Layer::new();
    layer.file(
        "pause",
        &fs::read(&binary).unwrap_or_else(|err| panic!("reading {}: {err}", binary.display())),
        0o755,
    );
    ImageSpec {
        reference: format!("{registry}/skillport-test/pause:3.10"),
        layer: layer.finish(),
        entrypoint: "/pause".to_owned(),
    }
}

/// `REGISTRY/skillport-test/agent:busybox`: `/bin/busybox` with its applets, `/tmp`.
pub(super) fn agent(registry: &str) -> ImageSpec {
    let mut layer = busybox_layer();
    layer.dir("tmp", 0o1777);
    ImageSpec {
        reference: format!("{registry}/skillport-test/agent:busybox"),
        layer: layer.finish(),
        entrypoint: "/bin/sh".to_owned(),
    }
}

/// `REGISTRY/skillport-test/crane:VERSION`: busybox and `/bin/crane` (static Go).
pub(super) fn crane(registry: &str) -> ImageSpec {
    let crane = k8s_tool("crane");
    let mut layer = busybox_layer();
    layer.dir("tmp", 0o1777);
    layer.file(
        "bin/crane",
        &fs::read(&crane).unwrap_or_else(|err| panic!("reading {}: {err}", crane.display())),
        0o755,
    );
    ImageSpec {
        reference: format!("{registry}/skillport-test/crane:v0.22.1"),
        layer: layer.finish(),
        entrypoint: "/bin/sh".to_owned(),
    }
}

/// `REGISTRY/skillport-test/NAME:<sha256 of the binary, 12 hex>`: one static binary as
/// `/NAME` on an empty base, its entrypoint; nothing else (no shell, no libc).
pub(super) fn binary(registry: &str, name: &str, binary: &Path) -> ImageSpec {
    let bytes =
        fs::read(binary).unwrap_or_else(|err| panic!("reading {}: {err}", binary.display()));
    let tag = &hex::encode(Sha256::digest(&bytes))[..12];
    let mut layer = Layer::new();
    layer.file(name, &bytes, 0o755);
    ImageSpec {
        reference: format!("{registry}/skillport-test/{name}:{tag}"),
        layer: layer.finish(),
        entrypoint: format!("/{name}"),
    }
}

fn busybox_layer() -> Layer {
    let output = Command::new("ldd").arg(BUSYBOX).output();
    let is_static = output.is_ok_and(|output| {
        String::from_utf8_lossy(&output.stdout).contains("not a dynamic executable")
            || String::from_utf8_lossy(&output.stderr).contains("not a dynamic executable")
    });
    assert!(
        is_static,
        "{BUSYBOX} is missing or not static: install Debian `busybox-static` (scripts/test.sh \
         does)"
    );
    let mut layer = Layer::new();
    layer.dir("bin", 0o755);
    layer.file(
        "bin/busybox",
        &fs::read(BUSYBOX).unwrap_or_else(|err| panic!("reading {BUSYBOX}: {err}")),
        0o755,
    );
    for applet in APPLETS {
        layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    layer
}

/// Writes each image's layer into `dir` and pushes it to its registry with crane, every image
/// at once (they are independent). `env` is what crane needs to reach the registry.
pub(super) fn push_all(images: &[ImageSpec], dir: &Path, env: &[(&str, &Path)]) {
    std::thread::scope(|scope| {
        let pushes: Vec<_> = images
            .iter()
            .enumerate()
            .map(|(index, image)| scope.spawn(move || push(image, dir, index, env)))
            .collect();
        for push in pushes {
            push.join().expect("a crane push panicked");
        }
    });
}

fn push(image: &ImageSpec, dir: &Path, index: usize, env: &[(&str, &Path)]) {
    let layer = dir.join(format!("image-{index}.tar"));
    fs::write(&layer, &image.layer)
        .unwrap_or_else(|err| panic!("writing {}: {err}", layer.display()));
    let crane = k8s_tool("crane");
    let reference = &image.reference;
    run(
        Command::new(&crane)
            .args(["append", "--oci-empty-base", "-f"])
            .arg(&layer)
            .args(["-t", reference])
            .envs(env.iter().copied()),
        "crane append",
    );
    run(
        Command::new(&crane)
            .args(["mutate", "--set-platform", "linux/amd64", "--entrypoint"])
            .arg(&image.entrypoint)
            .args(["--env", "PATH=/bin", "-t", reference, reference])
            .envs(env.iter().copied()),
        "crane mutate",
    );
    let _ = fs::remove_file(&layer);
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("running {what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `cache/pause-<hash of the source>`, compiled on first use with `gcc -static`.
fn pause_binary(cache: &Path) -> PathBuf {
    let hash = hex::encode(Sha256::digest(PAUSE_C.as_bytes()));
    let binary = cache.join(format!("pause-{}", &hash[..16]));
    if binary.is_file() {
        return binary;
    }
    let gcc = required_program("gcc", "gcc");
    fs::create_dir_all(cache).unwrap_or_else(|err| panic!("creating {}: {err}", cache.display()));
    let work = tempfile::Builder::new()
        .prefix("pause-build-")
        .tempdir_in(cache)
        .expect("a temporary folder for building pause");
    let source = work.path().join("pause.c");
    fs::write(&source, PAUSE_C).expect("writing pause.c");
    let built = work.path().join("pause");
    run(
        Command::new(gcc)
            .args(["-static", "-Os", "-s", "-o"])
            .arg(&built)
            .arg(&source),
        "gcc -static pause.c (Debian gcc and libc6-dev; scripts/test.sh installs them)",
    );
    // Rename into place: a concurrent build (another test binary) loses the race harmlessly.
    fs::rename(&built, &binary)
        .unwrap_or_else(|err| panic!("moving pause into {}: {err}", binary.display()));
    binary
}

/// An uncompressed tar layer, entries owned by root with mtime 0.
struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Layer {
    fn new() -> Layer {
        Layer {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn file(&mut self, path: &str, contents: &[u8], mode: u32) {
        let mut header = Layer::header(tar::EntryType::Regular, mode, contents.len() as u64);
        self.builder
            .append_data(&mut header, path, contents)
            .expect("tar into memory");
    }

    fn dir(&mut self, path: &str, mode: u32) {
        let mut header = Layer::header(tar::EntryType::Directory, mode, 0);
        self.builder
            .append_data(&mut header, path, std::io::empty())
            .expect("tar into memory");
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let mut header = Layer::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder
            .append_link(&mut header, path, target)
            .expect("tar into memory");
    }

    fn finish(self) -> Vec<u8> {
        let mut bytes = self.builder.into_inner().expect("tar into memory");
        bytes.flush().expect("a Vec does not fail");
        bytes
    }
}
