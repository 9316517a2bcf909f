//! `skillport fetch` run the way the init container runs it: an empty environment, `/` as the
//! working folder, the plan and the pull secrets mounted read-only in the Kubernetes volume
//! layout, HOME and TMPDIR read-only, a fresh `--into`, and (when the tests run as root) the
//! image's non-root user 65532. Against a real TLS + basic-auth registry.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Run, Sandbox, path_str, write_minimal_skill};
use skillport_testkit::Registry;

/// The user the container image runs as (distroless "nonroot").
const NONROOT: u32 = 65532;

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|meta| std::os::unix::fs::MetadataExt::uid(&meta) == 0)
}

/// A pod's file system in a temporary folder: what the kubelet mounts, read-only, and an
/// emptyDir for the skills.
struct Pod {
    root: tempfile::TempDir,
}

impl Pod {
    fn new() -> Pod {
        let root = tempfile::Builder::new()
            .prefix("skillport-pod-")
            .tempdir()
            .unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for dir in ["etc/skillport", "home", "tmp", "dev"] {
            fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        Pod { root }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    /// Mounts `config` (a Docker config) as the pull secret `name`, the way the kubelet does:
    /// a timestamped folder, `..data` pointing at it, and the key linking through `..data`.
    fn mount_pull_secret(&self, name: &str, config: &Path) -> PathBuf {
        let dir = self.path(&format!("var/run/skillport/pull-secrets/{name}"));
        let data = dir.join("..2026_01_01_00_00_00.1");
        fs::create_dir_all(&data).unwrap();
        fs::copy(config, data.join(".dockerconfigjson")).unwrap();
        symlink("..2026_01_01_00_00_00.1", dir.join("..data")).unwrap();
        symlink("..data/.dockerconfigjson", dir.join(".dockerconfigjson")).unwrap();
        dir.join(".dockerconfigjson")
    }

    fn mount_ca(&self, ca: &Path) -> PathBuf {
        let dir = self.path("var/run/skillport/ca");
        fs::create_dir_all(&dir).unwrap();
        fs::copy(ca, dir.join("ca.crt")).unwrap();
        dir.join("ca.crt")
    }

    fn write_plan(&self, plan: &serde_json::Value) -> PathBuf {
        let path = self.path("etc/skillport/plan.json");
        fs::write(&path, serde_json::to_vec_pretty(plan).unwrap()).unwrap();
        path
    }

    /// Everything but the skills folder becomes read-only; the skills folder and the
    /// termination log belong to the user the fetch runs as.
    fn seal(&self) {
        let uid = if is_root() { Some(NONROOT) } else { None };
        for top in ["etc", "var", "home", "tmp"] {
            if self.path(top).exists() {
                read_only(&self.path(top));
            }
        }
        fs::create_dir_all(self.path("skills")).unwrap();
        fs::write(self.path("dev/termination-log"), b"").unwrap();
        if let Some(uid) = uid {
            std::os::unix::fs::chown(self.path("skills"), Some(uid), Some(uid)).unwrap();
            std::os::unix::fs::chown(self.path("dev/termination-log"), Some(uid), Some(uid))
                .unwrap();
        }
    }

    /// `skillport fetch` as the pod runs it.
    fn fetch(&self) -> Run {
        let binary = env!("CARGO_BIN_EXE_skillport");
        let mut command = if is_root() {
            // Drop to the image's user, so that file permissions apply as in the pod.
            let setpriv = common::require_tool("setpriv", "util-linux");
            let mut command = Command::new(setpriv);
            command
                .arg(format!("--reuid={NONROOT}"))
                .arg(format!("--regid={NONROOT}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(binary);
            command
        } else {
            Command::new(binary)
        };
        command
            .env_clear()
            .env("HOME", self.path("home"))
            .env("TMPDIR", self.path("tmp"))
            .current_dir("/")
            .arg("fetch")
            .arg("--plan")
            .arg(self.path("etc/skillport/plan.json"))
            .arg("--into")
            .arg(self.path("skills"))
            .arg("--termination-log")
            .arg(self.path("dev/termination-log"))
            .arg("--timeout")
            .arg("60s");
        common::run(command)
    }

    /// Kind, mode and content of everything outside the skills folder and the log.
    fn outside(&self) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let relative = path
                    .strip_prefix(self.root.path())
                    .unwrap()
                    .display()
                    .to_string();
                if relative == "skills" || relative == "dev/termination-log" {
                    continue;
                }
                let meta = fs::symlink_metadata(&path).unwrap();
                let content = if meta.is_file() {
                    fs::read(&path).unwrap()
                } else {
                    Vec::new()
                };
                if meta.is_dir() {
                    stack.push(path);
                }
                out.push((relative, meta.permissions().mode(), content));
            }
        }
        out.sort();
        out
    }

    fn termination_log(&self) -> String {
        fs::read_to_string(self.path("dev/termination-log")).unwrap()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Give write access back so that the temporary folder can be removed.
        let mut stack = vec![self.root.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
}

/// `chmod -R a-w`, links left alone.
fn read_only(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o444)).unwrap();
            }
        }
        dirs.push(dir);
    }
    for dir in dirs {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
    }
}

/// Builds a skill and pushes it as `<host>/skills/<name>:1`; returns the reference and digest.
fn push(sandbox: &Sandbox, registry: &Registry, name: &str) -> (String, String) {
    let dir = write_minimal_skill(&sandbox.join("src"), name);
    let digest = sandbox.build(&dir, &format!("{name}:1"));
    let config = registry.docker_config(&sandbox.join("push-auth"));
    let remote = format!("{}/skills/{name}:1", registry.host());
    sandbox.ok(&[
        "--authfile",
        path_str(&config),
        "--ca-file",
        path_str(registry.ca_file().unwrap()),
        "push",
        &format!("{name}:1"),
        &remote,
    ]);
    (remote, digest)
}

/// Files owned by `uid` under the shared temporary folders, except in `pod`: a process
/// running as the pod's user must leave none.
fn owned_by(uid: u32, pod: &Pod) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for root in ["/tmp", "/dev/shm", "/var/tmp"] {
        let mut stack = vec![PathBuf::from(root)];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                    continue;
                };
                if entry.path().starts_with(pod.root.path()) {
                    continue;
                }
                if std::os::unix::fs::MetadataExt::uid(&meta) == uid {
                    found.push(entry.path());
                }
                if meta.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
    }
    found
}

#[test]
fn fetch_runs_as_the_init_container_does_and_writes_only_into_its_folder() {
    let registry = Registry::tls_basic_auth();
    let sandbox = Sandbox::new();
    let (pinned_ref, pinned_digest) = push(&sandbox, &registry, "pdf-tools");
    let (tagged_ref, tagged_digest) = push(&sandbox, &registry, "code-review");
    let pod = Pod::new();
    let secret = pod.mount_pull_secret(
        "artifactory",
        &registry.docker_config(&sandbox.join("secret")),
    );
    let ca = pod.mount_ca(registry.ca_file().unwrap());
    pod.write_plan(&serde_json::json!({
        "apiVersion": "skillport.dev/v1alpha1",
        "kind": "FetchPlan",
        "skills": [
            {"name": "pdf-tools", "image": format!("{pinned_ref}@{pinned_digest}")},
            {"name": "code-review", "image": tagged_ref},
        ],
        "pullSecrets": [{"name": "artifactory", "path": path_str(&secret)}],
        "caFiles": [path_str(&ca)],
    }));
    pod.seal();
    let before = pod.outside();
    let stray_before = if is_root() {
        owned_by(NONROOT, &pod)
    } else {
        Vec::new()
    };

    let run = pod.fetch().success();
    assert!(run.stdout.is_empty(), "data only on request\n{run}");
    assert!(run.stderr.contains("fetched: pdf-tools"), "{run}");
    assert!(run.stderr.contains("fetched: code-review"), "{run}");
    let (_, password) = registry.credentials().unwrap();
    assert!(!run.stderr.contains(password), "{run}");
    let mut names: Vec<String> = fs::read_dir(pod.path("skills"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["code-review", "index.json", "pdf-tools"]);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(pod.path("skills/index.json")).unwrap()).unwrap();
    assert_eq!(index["skills"][0]["digest"], pinned_digest.as_str());
    assert_eq!(index["skills"][1]["digest"], tagged_digest.as_str());
    assert!(pod.path("skills/pdf-tools/SKILL.md").is_file());
    assert_eq!(pod.outside(), before, "nothing outside --into changed");
    assert_eq!(pod.termination_log(), "", "nothing to report on success");
    if is_root() {
        assert_eq!(
            owned_by(NONROOT, &pod),
            stray_before,
            "no temporary files elsewhere"
        );
    }

    // The init container runs again when the pod restarts: nothing to download.
    let run = pod.fetch().success();
    assert!(run.stderr.contains("up to date: pdf-tools"), "{run}");
    assert!(run.stderr.contains("up to date: code-review"), "{run}");
    assert_eq!(pod.outside(), before);
}

#[test]
fn a_failure_writes_one_line_naming_skill_registry_and_cause_and_no_secret() {
    let registry = Registry::tls_basic_auth();
    let sandbox = Sandbox::new();
    let (reference, _) = push(&sandbox, &registry, "guarded");
    let pod = Pod::new();
    // A pull secret for another registry only.
    let other = Registry::basic_auth();
    let secret = pod.mount_pull_secret(
        "artifactory",
        &other.docker_config(&sandbox.join("other-secret")),
    );
    let ca = pod.mount_ca(registry.ca_file().unwrap());
    pod.write_plan(&serde_json::json!({
        "apiVersion": "skillport.dev/v1alpha1",
        "kind": "FetchPlan",
        "skills": [
            {"name": "guarded", "image": reference},
            {"name": "absent", "image": format!("{}/skills/absent:1", registry.host())},
        ],
        "pullSecrets": [{"name": "artifactory", "path": path_str(&secret)}],
        "caFiles": [path_str(&ca)],
    }));
    pod.seal();

    let run = pod.fetch().failure();
    let log = pod.termination_log();
    assert_eq!(log.lines().count(), 1, "exactly one line: {log:?}");
    assert!(log.ends_with('\n'));
    let line = log.trim_end();
    let expected = format!(
        "skill \"guarded\": {}: 401 unauthorized for skills/guarded (pull secret \"artifactory\" \
         has no entry for this host) (also failed: \"absent\")",
        registry.host()
    );
    assert_eq!(line, expected);
    for secret in [
        registry.credentials().unwrap().1,
        other.credentials().unwrap().1,
    ] {
        assert!(
            !log.contains(secret) && !run.stderr.contains(secret),
            "{run}"
        );
    }
    assert!(
        run.stderr
            .contains("hint: list a pull secret with credentials for"),
        "{run}"
    );
    assert!(
        run.stderr.contains("error: 2 of 2 skills not fetched"),
        "{run}"
    );
    let names: Vec<String> = fs::read_dir(pod.path("skills"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["index.json"]);
}

#[test]
fn an_invalid_plan_is_reported_before_anything_is_written() {
    let pod = Pod::new();
    pod.write_plan(&serde_json::json!({
        "apiVersion": "skillport.dev/v1alpha1",
        "kind": "FetchPlan",
        "skills": [
            {"name": "pdf", "image": "registry.example.com/skills/pdf:1"},
            {"name": "pdf", "image": "registry.example.com/skills/other:1", "taget": "x"},
        ],
    }));
    pod.seal();
    fs::remove_dir(pod.path("skills")).unwrap();
    let run = pod.fetch().failure();
    let log = pod.termination_log();
    assert_eq!(
        log,
        "invalid plan: skill \"pdf\": unknown field `taget`, expected one of `name`, `image`, \
         `git`, `target`\n"
    );
    assert!(
        run.hint()
            .is_some_and(|hint| hint.contains("docs/fetch.md")),
        "{run}"
    );
    assert!(!pod.path("skills").exists(), "--into is not even created");
}

/// A pull secret the plan names but the pod does not have (a volume not mounted): reported
/// before the folder is made, as a plan error is.
#[test]
fn a_missing_pull_secret_file_is_reported_before_anything_is_written() {
    let pod = Pod::new();
    pod.write_plan(&serde_json::json!({
        "apiVersion": "skillport.dev/v1alpha1",
        "kind": "FetchPlan",
        "skills": [{"name": "pdf", "image": "registry.example.com/skills/pdf:1"}],
        "pullSecrets": [{"name": "regcred", "path": "/var/run/skillport/pull-secrets/0/.dockerconfigjson"}],
    }));
    pod.seal();
    fs::remove_dir(pod.path("skills")).unwrap();
    let run = pod.fetch().failure();
    assert!(pod.termination_log().contains("regcred"), "{run}");
    assert!(!pod.path("skills").exists(), "--into is not created: {run}");
}

#[test]
fn fetch_takes_registry_settings_from_the_plan_only() {
    let sandbox = Sandbox::new();
    let run = common::run({
        let mut command = sandbox.bare(&[
            "--insecure",
            "fetch",
            "--plan",
            "plan.json",
            "--into",
            "skills",
        ]);
        command.arg("--termination-log").arg(sandbox.join("log"));
        command
    })
    .failure();
    assert!(
        run.error()
            .contains("--insecure does nothing for fetch (its plan names registries"),
        "{run}"
    );
    let run = common::run(sandbox.bare(&[
        "fetch",
        "--plan",
        "plan.json",
        "--into",
        "skills",
        "--timeout",
        "soon",
    ]));
    assert_eq!(run.status.code(), Some(2), "a usage error\n{run}");
    assert!(run.stderr.contains("90s, 5m or 1h"), "{run}");
}

/// `fetch --dry-run` checks the plan, its files and credentials, and resolves every skill,
/// writing nothing; a skill that would fail is named, with the exit code 1.
#[test]
fn dry_run_resolves_every_skill_and_writes_nothing() {
    let registry = Registry::tls_basic_auth();
    let sandbox = Sandbox::new();
    let (reference, digest) = push(&sandbox, &registry, "planned");
    let pod = Pod::new();
    let secret = pod.mount_pull_secret(
        "regcred",
        &registry.docker_config(&sandbox.join("pull-secret")),
    );
    let ca = pod.mount_ca(registry.ca_file().unwrap());
    let mut plan = serde_json::json!({
        "apiVersion": "skillport.dev/v1alpha1",
        "kind": "FetchPlan",
        "skills": [{"name": "planned", "image": reference}],
        "pullSecrets": [{"name": "regcred", "path": path_str(&secret)}],
        "caFiles": [path_str(&ca)],
    });
    let plan_path = pod.write_plan(&plan);
    pod.seal();
    let before = pod.outside();
    let dry = |plan: &Path| {
        common::run({
            let mut command = Command::new(env!("CARGO_BIN_EXE_skillport"));
            command
                .env_clear()
                .args(["fetch", "--dry-run", "--plan"])
                .arg(plan);
            command
        })
    };
    let run = dry(&plan_path).success();
    assert!(
        run.stdout.contains(&format!(
            "would fetch planned ({reference}) -> planned: {digest}"
        )),
        "{run}"
    );
    assert!(run.stderr.contains("nothing was written"), "{run}");
    assert_eq!(pod.outside(), before, "a dry run writes nothing");
    assert!(fs::read_dir(pod.path("skills")).unwrap().next().is_none());

    plan["skills"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "absent", "image": format!("{}/skills/absent:1", registry.host())}));
    let other = sandbox.join("plan-with-absent.json");
    fs::write(&other, serde_json::to_vec(&plan).unwrap()).unwrap();
    let run = dry(&other).failure();
    assert!(run.stderr.contains("error: skill \"absent\""), "{run}");
    assert!(run.stderr.contains("1 of 2 skills would fail"), "{run}");
}
