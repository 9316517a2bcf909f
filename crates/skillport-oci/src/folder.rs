// Publishing a staged skill folder, shared by every way a skill reaches disk (layer unpacking
// here, git checkouts in skillport-fetch, registry exports): the link checks and the
// "absent or empty destination, then one rename" rule live in one place.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a staged folder could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path} already exists and is not an empty folder")]
    Taken { path: PathBuf },
    #[error("{path}: {action}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PublishError + use<> {
    let path = path.to_path_buf();
    move |source| PublishError::Io {
        action,
        path,
        source,
    }
}

/// Fails when `dest` exists and is not an empty folder; callers check this before any
/// download, and `publish` checks it again.
pub fn check_destination(dest: &Path) -> Result<(), PublishError> {
    match fs::read_dir(dest) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(PublishError::Taken {
                path: dest.to_path_buf(),
            }),
            None => Ok(()),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => Err(PublishError::Taken {
            path: dest.to_path_buf(),
        }),
        Err(err) => Err(io_error("reading", dest)(err)),
    }
}

/// Moves the folder `staged` to `dest` (absent, or an empty folder) in one rename, readable
/// by all (0755).
pub fn publish(staged: &Path, dest: &Path) -> Result<(), PublishError> {
    check_destination(dest)?;
    if dest.is_dir() {
        fs::remove_dir(dest).map_err(io_error("replacing", dest))?;
    }
    fs::set_permissions(staged, fs::Permissions::from_mode(0o755))
        .map_err(io_error("setting permissions of", staged))?;
    fs::rename(staged, dest).map_err(io_error("moving the files to", dest))
}

/// Whether the link at `path` (relative, `/`-separated) with target text `link` stays inside
/// the root, by its text alone.
pub fn link_stays_inside(path: &str, link: &str) -> bool {
    if link.starts_with('/') || link.is_empty() {
        return false;
    }
    let mut depth: Vec<&str> = path.split('/').collect();
    depth.pop(); // the link's own name
    for component in link.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            part => depth.push(part),
        }
    }
    true
}

/// The first of `links` (each a path relative to `root` and its link text) that does not
/// resolve, on disk, to something inside `root`. Each link's text may stay inside
/// ([`link_stays_inside`]) while a chain of them leads out (`d -> .`, `e -> d/..`), so this runs
/// once every link exists. The one rule for links of both skill images and git skills.
pub fn escaping_link<'a>(
    root: &Path,
    links: &'a [(String, String)],
) -> io::Result<Option<&'a (String, String)>> {
    let root = fs::canonicalize(root)?;
    Ok(links.iter().find(|(path, _)| {
        !fs::canonicalize(root.join(path.as_str())).is_ok_and(|real| real.starts_with(&root))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_text_checks() {
        assert!(link_stays_inside("a/b", "c"));
        assert!(link_stays_inside("a/b", "../c"));
        assert!(!link_stays_inside("a/b", "../../c"));
        assert!(!link_stays_inside("a", "/etc/passwd"));
        assert!(!link_stays_inside("a", ".."));
        assert!(link_stays_inside("a", "."));
    }

    #[test]
    fn destinations_and_publishing() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("staged");
        fs::create_dir(&staged).unwrap();
        fs::write(staged.join("SKILL.md"), "x").unwrap();
        let taken = dir.path().join("taken");
        fs::create_dir(&taken).unwrap();
        fs::write(taken.join("mine"), "keep").unwrap();
        assert!(matches!(
            publish(&staged, &taken),
            Err(PublishError::Taken { .. })
        ));
        assert!(matches!(
            check_destination(&taken.join("mine")),
            Err(PublishError::Taken { .. })
        ));
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        publish(&staged, &empty).unwrap();
        assert_eq!(fs::read(empty.join("SKILL.md")).unwrap(), b"x");
        assert!(!staged.exists());
    }

    #[test]
    fn chained_links_are_caught_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(".", root.join("d")).unwrap();
        std::os::unix::fs::symlink("d/..", root.join("e")).unwrap();
        let links = vec![
            ("d".to_owned(), ".".to_owned()),
            ("e".to_owned(), "d/..".to_owned()),
        ];
        assert_eq!(escaping_link(&root, &links).unwrap(), Some(&links[1]));
        assert_eq!(escaping_link(&root, &links[..1]).unwrap(), None);
    }
}
