//! What a node does to the host, and undoing it: the machine-wide lock, a snapshot of the host
//! state a kubelet touches, and the teardown script run by the node's drop or, if the test
//! process dies first, by its watchdog.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use std::os::unix::process::CommandExt as _;

/// Sysctls the kubelet sets at start (`protectKernelDefaults: false`, the default) and never
/// puts back.
pub(super) const SYSCTLS: &[&str] = &[
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// Fixed host paths a kubelet or containerd creates whatever their flags say
/// (`/var/lib/kubelet/device-plugins` and `pod-resources`, `/run/containerd/s` for shim sockets,
/// `/var/log/containers` links). Removed after the node if they were not there before.
pub(super) const HOST_PATHS: &[&str] = &[
    "/var/lib/kubelet",
    "/run/containerd",
    "/var/log/containers",
    "/var/log/pods",
    "/usr/libexec/kubernetes",
    "/etc/kubernetes",
    "/var/lib/containerd",
    "/etc/cni",
    "/opt/cni",
    "/run/netns",
];

/// Folders other tools make as a side effect (`umount` through libmount makes `/run/mount`):
/// removed after the node if they were not there before and are empty.
pub(super) const SIDE_EFFECT_DIRS: &[&str] = &["/run/mount"];

/// The part of the host a node changes, to compare before and after (see
/// `tests/k8s_node.rs`). Equal snapshots mean the node left the host as it found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostState {
    /// `vm/overcommit_memory` → its value, for [`SYSCTLS`].
    pub sysctls: BTreeMap<String, String>,
    /// Which of [`HOST_PATHS`] and [`SIDE_EFFECT_DIRS`] exist.
    pub paths: BTreeSet<String>,
    /// `kubepods` cgroups (any hierarchy).
    pub kubepods_cgroups: BTreeSet<String>,
    /// Every mount point.
    pub mounts: BTreeSet<String>,
    /// `iptables-save` rules and chains (counters left out); empty without `iptables-save`.
    pub iptables: Vec<String>,
    /// Command lines of processes that belong to any test node (kubelet, containerd, shims).
    pub node_processes: Vec<String>,
}

impl HostState {
    pub fn capture() -> HostState {
        let sysctls = SYSCTLS
            .iter()
            .map(|name| ((*name).to_owned(), read_sysctl(name)))
            .collect();
        let paths = HOST_PATHS
            .iter()
            .chain(SIDE_EFFECT_DIRS)
            .filter(|path| Path::new(path).symlink_metadata().is_ok())
            .map(|path| (*path).to_owned())
            .collect();
        HostState {
            sysctls,
            paths,
            kubepods_cgroups: kubepods_cgroups(),
            mounts: mount_points(),
            iptables: iptables_rules(),
            node_processes: node_processes(),
        }
    }
}

fn read_sysctl(name: &str) -> String {
    let path = Path::new("/proc/sys").join(name);
    fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
        .trim()
        .to_owned()
}

/// `/sys/fs/cgroup/kubepods` (cgroup v2) and `/sys/fs/cgroup/HIERARCHY/kubepods` (v1).
fn kubepods_cgroups() -> BTreeSet<String> {
    let root = Path::new("/sys/fs/cgroup");
    let mut found = BTreeSet::new();
    let mut candidates = vec![root.join("kubepods")];
    if let Ok(entries) = fs::read_dir(root) {
        candidates.extend(entries.flatten().map(|entry| entry.path().join("kubepods")));
    }
    for candidate in candidates {
        if candidate.is_dir() {
            found.insert(candidate.display().to_string());
        }
    }
    found
}

fn mount_points() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(ToOwned::to_owned)
        .collect()
}

fn iptables_rules() -> Vec<String> {
    let Ok(output) = Command::new("iptables-save").output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        // `:CHAIN POLICY [packets:bytes]`: the counters change on their own.
        .map(|line| line.split(" [").next().unwrap_or(line).to_owned())
        .collect()
}

/// Every process whose command line names a node's work folder.
pub(super) fn node_processes() -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name
            .to_string_lossy()
            .bytes()
            .all(|byte| byte.is_ascii_digit())
        {
            continue;
        }
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // The teardown script itself names the folder too, and is gone when it is done.
        if cmdline.contains(super::WORK_PREFIX) && !cmdline.contains("teardown.sh") {
            found.push(cmdline.trim().to_owned());
        }
    }
    found.sort();
    found
}

/// Takes the machine-wide node lock (`File::lock`, blocking): one node per machine, because a
/// kubelet's host paths and cgroups are fixed. Prints a line if it has to wait.
pub(super) fn lock(path: &Path) -> File {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .unwrap_or_else(|err| panic!("creating {}: {err}", parent.display()));
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|err| panic!("opening {}: {err}", path.display()));
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "waiting for {}: another test node runs on this machine (node tests must run \
                 one at a time: the `k8s-node` test group in .config/nextest.toml)",
                path.display()
            );
            file.lock()
                .unwrap_or_else(|err| panic!("locking {}: {err}", path.display()));
        }
        Err(std::fs::TryLockError::Error(err)) => {
            panic!("locking {}: {err}", path.display());
        }
    }
    file
}

/// The teardown script for the node working in `work`, which found the host as `before`.
///
/// It is idempotent and kills by recorded pid or by our own unique paths only, never by a
/// program name: other kubelets or containerds on the machine are not ours to stop.
pub(super) fn teardown_script(work: &Path, before: &HostState) -> String {
    let w = shell_quote(&work.display().to_string());
    let mut script = format!(
        r#"#!/bin/sh
# Written by skillport-testkit's Node: puts the host back as the node found it. Run by the node's
# drop, or by its watchdog when the test process died without dropping it. Safe to run twice.
W={w}
trap '' INT TERM HUP
say() {{ printf 'node teardown: %s\n' "$*" >&2; }}

# 1. kubelet and containerd, by recorded pid, if that pid still runs from our folder.
for name in kubelet containerd; do
  pid=$(cat "$W/pids/$name" 2>/dev/null) || continue
  if grep -qF -- "$W" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null
    i=0
    while [ $i -lt 100 ] && grep -qF -- "$W" "/proc/$pid/cmdline" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
  fi
done
"#
    );
    if before.kubepods_cgroups.is_empty() {
        script.push_str(
            r#"
# 2. Containers: every process in the kubepods cgroups this node made.
i=0
while [ $i -lt 20 ]; do
  pids=$(find /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null)
  [ -n "$pids" ] || break
  for pid in $pids; do kill -9 "$pid" 2>/dev/null; done
  sleep 0.05
  i=$((i + 1))
done
"#,
        );
    }
    script.push_str(
        r#"
# 3. Shims of our containerd (their command line carries our socket path).
for dir in /proc/[0-9]*; do
  if grep -qF -- "$W/containerd.sock" "$dir/cmdline" 2>/dev/null; then
    kill -9 "${dir#/proc/}" 2>/dev/null
  fi
done

# 4. Mounts under our folder (overlay root filesystems, image volumes, emptyDirs, the kubelet's
#    bind mount of its root), deepest first, until none are left.
i=0
while [ $i -lt 10 ]; do
  mounts=$(awk -v w="$W/" 'index($5, w) == 1 || $5 == substr(w, 1, length(w) - 1) {print $5}' /proc/self/mountinfo | sort -r)
  [ -n "$mounts" ] || break
  for m in $mounts; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "cannot unmount $m"; done
  i=$((i + 1))
done

# 5. Sysctls the kubelet changed.
"#,
    );
    for (name, value) in &before.sysctls {
        let _ = writeln!(
            script,
            "printf '%s\\n' {} > /proc/sys/{name} 2>/dev/null || say 'cannot restore {name}'",
            shell_quote(value)
        );
    }
    script.push_str("\n# 6. Fixed host paths that were not there before.\n");
    if before.paths.contains("/var/log/containers") {
        script.push_str(
            "find /var/log/containers -maxdepth 1 -type l -lname \"$W/*\" -delete 2>/dev/null\n",
        );
    }
    for path in HOST_PATHS {
        if !before.paths.contains(*path) {
            let _ = writeln!(script, "[ -e {path} ] && rm -rf --one-file-system {path}");
        }
    }
    for dir in SIDE_EFFECT_DIRS {
        if !before.paths.contains(*dir) {
            let _ = writeln!(script, "[ -d {dir} ] && rmdir {dir} 2>/dev/null");
        }
    }
    if before.kubepods_cgroups.is_empty() {
        script.push_str(
            r#"
# 7. The kubepods cgroup trees (the cgroupfs driver leaves them behind, empty).
for g in /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods; do
  [ -d "$g" ] && find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -d "$g" ] && say "cannot remove cgroup $g"
done
"#,
        );
    }
    script.push_str(
        r#"
# 8. Our folder (never across a mount that could not be undone).
rm -rf --one-file-system "$W"
exit 0
"#,
    );
    script
}

/// `sh` in its own process group (so a signal to the test's group, as nextest sends on a
/// timeout, does not reach it) blocked reading a pipe whose only writer is the test process.
/// When the pipe closes — the node's drop, or the test process's death — it runs `script`.
/// Its stdout is the node lock file: an open file description shared with the test process, so
/// the machine-wide lock is held until the teardown is over, whoever runs it.
pub(super) fn watchdog(script: &Path, lock: &File, log: &Path) -> (Child, ChildStdin) {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|err| panic!("opening {}: {err}", log.display()));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("trap '' INT TERM HUP; read _ignored; exec sh \"$0\"")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(lock.try_clone().expect("sharing the node lock"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("starting the node watchdog (sh): {err}"));
    let stdin = child.stdin.take().expect("piped stdin");
    (child, stdin)
}

/// `'text'` for sh, with `'` escaped.
pub(super) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Where the machine-wide node lock lives: beside the Kubernetes binaries' cache.
pub(super) fn lock_path(cache: &Path) -> PathBuf {
    cache.join("node.lock")
}
