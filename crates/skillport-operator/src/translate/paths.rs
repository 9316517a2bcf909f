//! The rules for `mountPath` and `mountRoot`, in plain code: the CRD's CEL rules (so that
//! `render`, the webhook and translate refuse what the API server refuses, whichever door a
//! SkillSet comes through) and the system folders, which CEL cannot refuse because a cluster
//! setting ([`Options::allow_system_mount_paths`](super::Options)) may allow them.

use crate::api::SkillSetSpec;

/// Folders a skill is never mounted over by default: a read-only mount there hides the image's
/// programs, libraries or configuration (`/usr/local/bin` full of a tenant's files, run under
/// the victim's ServiceAccount), or the kubelet's own mounts.
pub const SYSTEM_FOLDERS: [&str; 11] = [
    "/bin", "/sbin", "/usr", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/boot", "/run",
    "/var/run",
];

/// Never allowed, as the CRD says: the kernel's and the kubelet's.
const FORBIDDEN: [&str; 5] = ["/proc", "/sys", "/dev", "/run/secrets", "/var/run/secrets"];

/// Mounts the kubelet makes in every container: a skill mounted over a parent of one hides it.
const KUBELET_MOUNTS: [&str; 5] = [
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev/termination-log",
];

/// A mount path or root that breaks a rule: the field (`spec.skills[1].mountPath`), the path
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathProblem {
    pub field: String,
    pub path: String,
    pub reason: String,
}

/// Every problem with `spec`'s `mountRoot` and `mountPath`s, in field order.
pub fn check(spec: &SkillSetSpec, allow_system: bool) -> Vec<PathProblem> {
    let mut problems = Vec::new();
    let fields = std::iter::once(("spec.mountRoot".to_owned(), spec.mount_root.as_str())).chain(
        spec.skills.iter().enumerate().filter_map(|(i, skill)| {
            let path = skill.mount_path.as_deref()?;
            Some((format!("spec.skills[{i}].mountPath"), path))
        }),
    );
    for (field, path) in fields {
        if let Some(reason) = problem(path, allow_system) {
            problems.push(PathProblem {
                field,
                path: path.to_owned(),
                reason,
            });
        }
    }
    problems
}

/// Why `path` may not be a mount path, if it may not.
fn problem(path: &str, allow_system: bool) -> Option<String> {
    let under = |folder: &str| path == folder || path.starts_with(&format!("{folder}/"));
    if !path.starts_with('/') {
        return Some("it must be an absolute path".into());
    }
    if path == "/" {
        return Some("it must not be /".into());
    }
    let unclean = path.ends_with('/')
        || path.contains("//")
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..");
    if unclean {
        return Some("it must be a clean path: no . or .. segments, no //, no trailing /".into());
    }
    if let Some(folder) = FORBIDDEN.iter().find(|folder| under(folder)) {
        return Some(format!("it must not be under {folder}"));
    }
    if path.contains(',') {
        return Some("it must not contain a comma (SKILL_FOLDERS is comma-separated)".into());
    }
    if allow_system {
        return None;
    }
    if let Some(folder) = SYSTEM_FOLDERS.iter().find(|folder| under(folder)) {
        return Some(format!(
            "it is under the system folder {folder}, where a read-only mount hides the image's \
             own files; mount skills elsewhere (e.g. /skills), or start the operator with \
             --allow-system-mount-paths"
        ));
    }
    if let Some(mount) = KUBELET_MOUNTS
        .iter()
        .find(|mount| mount.starts_with(&format!("{path}/")))
    {
        return Some(format!(
            "it would hide {mount}, which the kubelet mounts in every container"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(root: &str, paths: &[&str]) -> SkillSetSpec {
        let skills: Vec<_> = paths
            .iter()
            .enumerate()
            .map(|(i, path)| serde_json::json!({"name": format!("s{i}"), "image": "r/x:1", "mountPath": path}))
            .collect();
        serde_json::from_value(serde_json::json!({"skills": skills, "mountRoot": root})).unwrap()
    }

    #[test]
    fn system_folders_and_parents_of_kubelet_mounts_are_refused_unless_allowed() {
        for path in [
            "/usr/local/bin",
            "/usr",
            "/etc/ssl",
            "/bin",
            "/lib64/x",
            "/run/x",
            "/var/run",
            "/var",
        ] {
            let problems = check(&spec("/skills", &[path]), false);
            assert_eq!(problems.len(), 1, "{path}: {problems:?}");
            assert_eq!(problems[0].field, "spec.skills[0].mountPath");
            assert!(check(&spec("/skills", &[path]), true).is_empty(), "{path}");
        }
        for path in [
            "/skills/x",
            "/app/skills",
            "/home/agent/.claude/skills",
            "/var/lib/x",
            "/usrx",
        ] {
            assert!(check(&spec("/skills", &[path]), false).is_empty(), "{path}");
        }
    }

    #[test]
    fn the_crd_rules_hold_whatever_the_setting() {
        for (path, why) in [
            ("/skills/../etc", ".."),
            ("skills", "absolute"),
            ("/", "not be /"),
            ("/a//b", "clean"),
            ("/a/", "clean"),
            ("/proc/x", "/proc"),
            ("/var/run/secrets/x", "/var/run/secrets"),
            ("/a,b", "comma"),
        ] {
            let problems = check(&spec(path, &[]), true);
            assert_eq!(problems.len(), 1, "{path}");
            assert_eq!(problems[0].field, "spec.mountRoot");
            assert!(problems[0].reason.contains(why), "{path}: {problems:?}");
        }
    }
}
