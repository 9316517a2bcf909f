// Walking a skill folder: which files make up the skill.
//
// Hidden files and folders (which covers `.git`, `.hg`, `.svn` and `.skillignore` itself) are
// left out, and so is whatever a `.skillignore` (gitignore syntax, any level) names. Links are
// kept as links only when they resolve inside the folder; special files are refused, since an
// image layer that carries a FIFO or a device node is never what a skill author meant.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One thing inside a skill folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the skill folder, `/`-separated, never empty, never `.` or `..`.
    pub path: String,
    /// Where it is on disk.
    pub source: PathBuf,
    /// What it is.
    pub kind: EntryKind,
}

/// The kinds of entries a skill may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A folder.
    Dir,
    /// A regular file; `executable` when any execute bit is set.
    File { size: u64, executable: bool },
    /// A symbolic link whose target resolves inside the skill folder.
    Symlink { target: String },
}

/// Why a skill folder could not be walked.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: link to {target} points outside the skill folder")]
    EscapingLink { path: PathBuf, target: String },
    #[error("{path}: link to {target} points to nothing")]
    DanglingLink { path: PathBuf, target: String },
    #[error("{path}: {kind} cannot be part of a skill")]
    SpecialFile { path: PathBuf, kind: &'static str },
    #[error("{path}: file name is not valid UTF-8")]
    NonUtf8Name { path: PathBuf },
    #[error("{path}: {message}")]
    Ignore { path: PathBuf, message: String },
}

/// Lists the entries of the skill folder `dir`, sorted by path, folders included.
pub fn walk(dir: &Path) -> Result<Vec<Entry>, WalkError> {
    let meta = fs::metadata(dir).map_err(|source| WalkError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(WalkError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let root = fs::canonicalize(dir).map_err(|source| WalkError::Read {
        path: dir.to_path_buf(),
        source,
    })?;

    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .hidden(true)
        .parents(false)
        .follow_links(false)
        .add_custom_ignore_filename(".skillignore")
        .build();

    let mut entries = Vec::new();
    for item in walker {
        let item = item.map_err(|err| ignore_error(dir, &err))?;
        if item.depth() == 0 {
            continue;
        }
        let source = item.path().to_path_buf();
        let relative = source.strip_prefix(dir).unwrap_or(&source);
        let path = relative_path(relative).ok_or_else(|| WalkError::NonUtf8Name {
            path: source.clone(),
        })?;
        let kind = entry_kind(&root, &source)?;
        entries.push(Entry { path, source, kind });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

fn relative_path(relative: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = relative.iter().map(|part| part.to_str()).collect();
    Some(parts?.join("/"))
}

fn entry_kind(root: &Path, source: &Path) -> Result<EntryKind, WalkError> {
    let read_err = |source_err| WalkError::Read {
        path: source.to_path_buf(),
        source: source_err,
    };
    let meta = fs::symlink_metadata(source).map_err(read_err)?;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        Ok(EntryKind::Dir)
    } else if file_type.is_file() {
        Ok(EntryKind::File {
            size: meta.len(),
            executable: meta.permissions().mode() & 0o111 != 0,
        })
    } else if file_type.is_symlink() {
        let target = fs::read_link(source).map_err(read_err)?;
        let target_text = target
            .to_str()
            .ok_or_else(|| WalkError::NonUtf8Name {
                path: source.to_path_buf(),
            })?
            .to_owned();
        // Resolve on disk rather than by text: a chain of links inside the folder can still
        // lead out of it (`d -> .`, `e -> d/..`), and only the real file system knows.
        let resolved = match fs::canonicalize(source) {
            Ok(resolved) => resolved,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(WalkError::DanglingLink {
                    path: source.to_path_buf(),
                    target: target_text,
                });
            }
            Err(err) => return Err(read_err(err)),
        };
        if target.is_absolute() || !resolved.starts_with(root) {
            return Err(WalkError::EscapingLink {
                path: source.to_path_buf(),
                target: target_text,
            });
        }
        Ok(EntryKind::Symlink {
            target: target_text,
        })
    } else {
        let kind = if file_type.is_fifo() {
            "a named pipe (FIFO)"
        } else if file_type.is_socket() {
            "a socket"
        } else if file_type.is_block_device() {
            "a block device"
        } else if file_type.is_char_device() {
            "a character device"
        } else {
            "a special file"
        };
        Err(WalkError::SpecialFile {
            path: source.to_path_buf(),
            kind,
        })
    }
}

fn ignore_error(dir: &Path, err: &ignore::Error) -> WalkError {
    // The ignore crate wraps I/O errors with the path they happened at; keep both.
    let path = ignore_error_path(err).unwrap_or_else(|| dir.to_path_buf());
    match err.io_error() {
        Some(io_err) => WalkError::Read {
            path,
            source: io::Error::new(io_err.kind(), io_err.to_string()),
        },
        None => WalkError::Ignore {
            path,
            message: err.to_string(),
        },
    }
}

fn ignore_error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            ignore_error_path(err)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn paths(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn lists_sorted_and_leaves_out_hidden_vcs_and_skillignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("SKILL.md"), "x").unwrap();
        fs::create_dir_all(root.join("scripts/build")).unwrap();
        fs::write(root.join("scripts/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            root.join("scripts/run.sh"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        fs::write(root.join("scripts/build/out.o"), "o").unwrap();
        fs::create_dir_all(root.join(".git/objects")).unwrap();
        fs::write(root.join(".git/HEAD"), "ref").unwrap();
        fs::write(root.join(".env"), "SECRET=1").unwrap();
        fs::write(root.join("notes.tmp"), "t").unwrap();
        fs::write(root.join(".skillignore"), "*.tmp\nscripts/build/\n").unwrap();

        let entries = walk(root).unwrap();
        assert_eq!(paths(&entries), ["SKILL.md", "scripts", "scripts/run.sh"]);
        assert_eq!(
            entries[2].kind,
            EntryKind::File {
                size: 10,
                executable: true
            }
        );
        assert_eq!(entries[1].kind, EntryKind::Dir);
    }

    #[test]
    fn keeps_links_inside_and_refuses_links_outside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("skill");
        fs::create_dir_all(root.join("references")).unwrap();
        fs::write(root.join("references/a.md"), "a").unwrap();
        symlink("references/a.md", root.join("alias.md")).unwrap();
        let entries = walk(&root).unwrap();
        assert_eq!(
            entries[0].kind,
            EntryKind::Symlink {
                target: "references/a.md".into()
            }
        );

        symlink("/etc/passwd", root.join("passwd")).unwrap();
        let err = walk(&root).unwrap_err();
        assert!(matches!(err, WalkError::EscapingLink { .. }), "{err}");
        fs::remove_file(root.join("passwd")).unwrap();

        // Each link alone stays inside the folder by its text, but the chain leads out.
        symlink(".", root.join("here")).unwrap();
        symlink("here/..", root.join("out")).unwrap();
        let err = walk(&root).unwrap_err();
        assert!(matches!(err, WalkError::EscapingLink { .. }), "{err}");
        fs::remove_file(root.join("out")).unwrap();

        symlink("missing.md", root.join("dangling")).unwrap();
        let err = walk(&root).unwrap_err();
        assert!(matches!(err, WalkError::DanglingLink { .. }), "{err}");
    }

    #[test]
    fn refuses_fifo() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("SKILL.md"), "x").unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(dir.path().join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let err = walk(dir.path()).unwrap_err();
        assert!(
            matches!(err, WalkError::SpecialFile { kind, .. } if kind.contains("FIFO")),
            "{err}"
        );
    }

    #[test]
    fn not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), "x").unwrap();
        assert!(matches!(
            walk(&dir.path().join("file")),
            Err(WalkError::NotADirectory { .. })
        ));
        assert!(matches!(
            walk(&dir.path().join("missing")),
            Err(WalkError::Read { .. })
        ));
    }
}
