//! The tree hash: one digest for everything in a folder, so that a folder can be checked
//! against what was recorded when it was written.
//!
//! `skillport fetch` records it per skill in `index.json` and compares it on a re-run; local
//! `install`/`verify` record and compare the same value in the lock; the operator's in-pod
//! `verify` init container compares it against mounted image volumes. They must all agree, so
//! the algorithm below is a **contract**: changing it changes every recorded hash, and needs a
//! new version string (`skillport-tree-v2`).
//!
//! # Algorithm (`skillport-tree-v1`)
//!
//! 1. The root must be a folder (a symbolic link to one is refused: it is not checked content).
//! 2. Every entry below the root is listed, recursively, without following symbolic links. The
//!    root itself is not an entry. Each entry's *path* is its path relative to the root, the raw
//!    bytes of its names joined with `/` (no leading `./`, no trailing `/`).
//! 3. Each entry has a *kind*, one byte:
//!    - `d`: a folder;
//!    - `f`: a regular file with no execute bit;
//!    - `x`: a regular file with any execute bit (`mode & 0o111 != 0`); no other mode bit,
//!      owner, time or extended attribute counts;
//!    - `l`: a symbolic link;
//!    - anything else (FIFO, socket, block or character device) is refused with
//!      [`TreeHashError::Special`]: it is no content a skill can have.
//!
//!    A hard link is a regular file like any other: its bytes count once per path.
//! 4. Entries are sorted by path, comparing the path bytes (so `a-b` < `a/b` < `a0`).
//! 5. The hash is sha256 over, in order: the 18 bytes `skillport-tree-v1\n`, then for each
//!    entry the record
//!
//!    ```text
//!    kind (1 byte) ‖ len(path) (u64, big-endian) ‖ path ‖ payload
//!    ```
//!
//!    where the payload is empty for `d`, the 32-byte sha256 of the file's bytes for `f` and
//!    `x`, and `len(target) (u64, big-endian) ‖ target` for `l` (the link's text as stored,
//!    not what it points to).
//! 6. It is written `sha256:<64 lowercase hex>`, a [`Digest`].
//!
//! Two folders have the same tree hash exactly when they hold the same paths with the same
//! kinds, the same file bytes, the same execute bits and the same link texts. Every length is
//! prefixed, so no two different trees give the same byte stream.
//!
//! # Caveats
//!
//! - Every file is read in full: the cost is one sha256 pass over the folder's bytes.
//! - A folder that changes while it is hashed gives a hash of neither state; callers hash
//!   folders nobody else writes to (a staged skill, a read-only mount).
//! - Empty folders count: `a/` and no `a/` differ.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::Digest;

/// The first bytes hashed: the algorithm's name and version.
const VERSION_LINE: &[u8] = b"skillport-tree-v1\n";

/// Why a folder has no tree hash.
#[derive(Debug, thiserror::Error)]
pub enum TreeHashError {
    #[error("{} is not a folder", path.display())]
    NotAFolder { path: PathBuf },
    /// A FIFO, socket or device: no skill content.
    #[error("{} is a {kind}, not a file, folder or symbolic link", path.display())]
    Special { path: PathBuf, kind: &'static str },
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The tree hash of the folder `root`; see the [module docs](self) for the algorithm.
pub fn tree_hash(root: &Path) -> Result<Digest, TreeHashError> {
    Ok(hash_of(&tree_entries(root)?))
}

/// The tree hash and the entries it was taken over, from one pass over the folder: for
/// callers that record what each path held (a lock file) to say later which ones changed.
pub fn tree_hash_with_entries(root: &Path) -> Result<(Digest, Vec<TreeEntry>), TreeHashError> {
    let entries = tree_entries(root)?;
    Ok((hash_of(&entries), entries))
}

/// One entry of a tree, as hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Relative to the root, names joined with `/` (raw bytes).
    pub path: Vec<u8>,
    pub content: TreeContent,
}

/// What an entry is, with what the hash covers of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeContent {
    Folder,
    /// A regular file's sha256, and whether any execute bit is set.
    File {
        sha256: [u8; 32],
        executable: bool,
    },
    /// A symbolic link's text.
    Link(Vec<u8>),
}

impl TreeEntry {
    /// One line for the entry: `folder`, `file sha256:…`, `exec sha256:…` or `link TARGET`.
    pub fn describe(&self) -> String {
        match &self.content {
            TreeContent::Folder => "folder".to_owned(),
            TreeContent::File { sha256, executable } => format!(
                "{} sha256:{}",
                if *executable { "exec" } else { "file" },
                hex::encode(sha256)
            ),
            TreeContent::Link(target) => format!("link {}", String::from_utf8_lossy(target)),
        }
    }
}

/// Every entry below `root` with its content hashed, sorted by path.
fn tree_entries(root: &Path) -> Result<Vec<TreeEntry>, TreeHashError> {
    let meta = fs::symlink_metadata(root).map_err(io_error("reading", root))?;
    if !meta.is_dir() {
        return Err(TreeHashError::NotAFolder {
            path: root.to_path_buf(),
        });
    }
    let mut entries = list(root)?;
    entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    entries
        .into_iter()
        .map(|entry| {
            let full = root.join(OsStr::from_bytes(&entry.path));
            let content = match entry.kind {
                Kind::Folder => TreeContent::Folder,
                Kind::File | Kind::Executable => TreeContent::File {
                    sha256: file_sha256(&full)?,
                    executable: entry.kind == Kind::Executable,
                },
                Kind::Link => {
                    let target =
                        fs::read_link(&full).map_err(io_error("reading the link", &full))?;
                    TreeContent::Link(target.as_os_str().as_bytes().to_vec())
                }
            };
            Ok(TreeEntry {
                path: entry.path,
                content,
            })
        })
        .collect()
}

/// The tree hash of `entries`, which must be sorted by path and hold every entry of the tree
/// (folders too): for callers that listed the tree as they wrote it.
pub fn hash_entries(entries: &[TreeEntry]) -> Digest {
    debug_assert!(entries.windows(2).all(|pair| pair[0].path < pair[1].path));
    hash_of(entries)
}

fn hash_of(entries: &[TreeEntry]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(VERSION_LINE);
    for entry in entries {
        let kind = match &entry.content {
            TreeContent::Folder => Kind::Folder,
            TreeContent::File {
                executable: false, ..
            } => Kind::File,
            TreeContent::File {
                executable: true, ..
            } => Kind::Executable,
            TreeContent::Link(_) => Kind::Link,
        };
        hasher.update([kind.byte()]);
        update_with_length(&mut hasher, &entry.path);
        match &entry.content {
            TreeContent::Folder => {}
            TreeContent::File { sha256, .. } => hasher.update(sha256),
            TreeContent::Link(target) => update_with_length(&mut hasher, target),
        }
    }
    let hex = hex::encode(hasher.finalize());
    format!("sha256:{hex}")
        .parse()
        .expect("64 lowercase hex digits make a sha256 digest")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Folder,
    File,
    Executable,
    Link,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Folder => b'd',
            Kind::File => b'f',
            Kind::Executable => b'x',
            Kind::Link => b'l',
        }
    }
}

struct Entry {
    /// Relative to the root, names joined with `/`.
    path: Vec<u8>,
    kind: Kind,
}

/// Every entry below `root`, unsorted, links not followed.
fn list(root: &Path) -> Result<Vec<Entry>, TreeHashError> {
    let mut entries = Vec::new();
    // (folder on disk, its path relative to the root)
    let mut pending: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir, relative)) = pending.pop() {
        for item in fs::read_dir(&dir).map_err(io_error("reading", &dir))? {
            let item = item.map_err(io_error("reading", &dir))?;
            let full = item.path();
            let mut path = relative.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(item.file_name().as_bytes());
            // symlink_metadata, not DirEntry::file_type alone: the mode is needed for files.
            let meta = fs::symlink_metadata(&full).map_err(io_error("reading", &full))?;
            let file_type = meta.file_type();
            let kind = if file_type.is_dir() {
                pending.push((full, path.clone()));
                Kind::Folder
            } else if file_type.is_symlink() {
                Kind::Link
            } else if file_type.is_file() {
                if meta.permissions().mode() & 0o111 == 0 {
                    Kind::File
                } else {
                    Kind::Executable
                }
            } else {
                return Err(TreeHashError::Special {
                    path: full,
                    kind: special_kind(file_type),
                });
            };
            entries.push(Entry { path, kind });
        }
    }
    Ok(entries)
}

fn special_kind(file_type: fs::FileType) -> &'static str {
    if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

fn update_with_length(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// The sha256 of the regular file at `path`, read in chunks.
fn file_sha256(path: &Path) -> Result<[u8; 32], TreeHashError> {
    let listed = fs::symlink_metadata(path).map_err(io_error("reading", path))?;
    let mut file = File::open(path).map_err(io_error("opening", path))?;
    // The entry was listed as a regular file; make sure the one opened is that file and not
    // something swapped in since (opening never follows a link we listed: we checked the kind).
    let opened = file.metadata().map_err(io_error("reading", path))?;
    if !opened.is_file() || opened.ino() != listed.ino() || opened.dev() != listed.dev() {
        return Err(TreeHashError::Io {
            action: "hashing",
            path: path.to_path_buf(),
            source: io::Error::other("the file changed while the folder was hashed"),
        });
    }
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(io_error("reading", path)(err)),
        };
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().into())
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TreeHashError + use<> {
    let path = path.to_path_buf();
    move |source| TreeHashError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn write(root: &Path, path: &str, bytes: &[u8], mode: u32) {
        let full = root.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(&full, bytes).unwrap();
        fs::set_permissions(&full, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A small skill: a file, an executable, a folder, a link.
    fn skill(root: &Path) {
        write(root, "SKILL.md", b"---\nname: x\n---\n", 0o644);
        write(root, "scripts/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
        write(root, "references/a.md", b"A", 0o644);
        symlink("references/a.md", root.join("a.md")).unwrap();
    }

    fn hash(root: &Path) -> String {
        tree_hash(root).unwrap().to_string()
    }

    /// The algorithm as the module docs state it, written out by hand for one tree: a test
    /// that the implementation and the contract say the same thing.
    #[test]
    fn follows_the_documented_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "b", b"bee", 0o644);
        write(root, "a/run", b"run", 0o700);
        symlink("../b", root.join("a/up")).unwrap();
        fs::create_dir(root.join("a-empty")).unwrap();

        let record = |kind: u8, path: &str, payload: &[u8]| {
            let mut bytes = vec![kind];
            bytes.extend_from_slice(&(path.len() as u64).to_be_bytes());
            bytes.extend_from_slice(path.as_bytes());
            bytes.extend_from_slice(payload);
            bytes
        };
        let sha = |bytes: &[u8]| Sha256::digest(bytes).to_vec();
        let mut link = 4u64.to_be_bytes().to_vec();
        link.extend_from_slice(b"../b");
        let mut stream = b"skillport-tree-v1\n".to_vec();
        // Byte order of paths: "a" < "a-empty" < "a/run" < "a/up" < "b".
        stream.extend(record(b'd', "a", b""));
        stream.extend(record(b'd', "a-empty", b""));
        stream.extend(record(b'x', "a/run", &sha(b"run")));
        stream.extend(record(b'l', "a/up", &link));
        stream.extend(record(b'f', "b", &sha(b"bee")));
        let expected = format!("sha256:{}", hex::encode(Sha256::digest(&stream)));

        assert_eq!(hash(root), expected);
    }

    #[test]
    fn the_same_tree_anywhere_has_the_same_hash() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        skill(one.path());
        skill(two.path());
        // Times, group/other bits and creation order do not count.
        fs::set_permissions(
            two.path().join("SKILL.md"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs::set_permissions(
            two.path().join("scripts/run.sh"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        assert_eq!(hash(one.path()), hash(two.path()));
        assert!(hash(one.path()).starts_with("sha256:"));
        assert_eq!(hash(one.path()).len(), "sha256:".len() + 64);
    }

    #[test]
    fn a_same_size_edit_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        skill(dir.path());
        let before = hash(dir.path());
        write(dir.path(), "references/a.md", b"B", 0o644);
        assert_ne!(hash(dir.path()), before);
    }

    #[test]
    fn every_kind_of_change_counts() {
        type Change = (&'static str, fn(&Path));
        let changes: [Change; 7] = [
            ("execute bit", |root| {
                fs::set_permissions(root.join("SKILL.md"), fs::Permissions::from_mode(0o744))
                    .unwrap();
            }),
            ("link target", |root| {
                fs::remove_file(root.join("a.md")).unwrap();
                symlink("SKILL.md", root.join("a.md")).unwrap();
            }),
            ("link replaced by the file it points to", |root| {
                fs::remove_file(root.join("a.md")).unwrap();
                fs::write(root.join("a.md"), b"A").unwrap();
            }),
            ("empty folder added", |root| {
                fs::create_dir(root.join("assets")).unwrap();
            }),
            ("hidden file added", |root| {
                fs::write(root.join(".env"), b"").unwrap();
            }),
            ("file renamed", |root| {
                fs::rename(root.join("references/a.md"), root.join("references/b.md")).unwrap();
            }),
            ("bytes moved between files", |root| {
                fs::write(root.join("references/a.md"), b"").unwrap();
                fs::write(root.join("SKILL.md"), b"---\nname: x\n---\nA").unwrap();
            }),
        ];
        let reference = tempfile::tempdir().unwrap();
        skill(reference.path());
        let unchanged = hash(reference.path());
        for (what, change) in changes {
            let dir = tempfile::tempdir().unwrap();
            skill(dir.path());
            change(dir.path());
            assert_ne!(hash(dir.path()), unchanged, "{what}");
        }
    }

    #[test]
    fn names_are_framed_not_concatenated() {
        // "ab" + "c" and "a" + "bc": the same bytes in a row, different trees.
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        write(one.path(), "ab", b"c", 0o644);
        write(two.path(), "a", b"bc", 0o644);
        assert_ne!(hash(one.path()), hash(two.path()));
    }

    #[test]
    fn an_empty_folder_has_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(b"skillport-tree-v1\n"))
        );
        assert_eq!(hash(dir.path()), expected);
    }

    #[test]
    fn special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        skill(dir.path());
        let socket = dir.path().join("references/sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = tree_hash(dir.path()).unwrap_err();
        assert!(
            matches!(&err, TreeHashError::Special { path, kind: "socket" } if *path == socket),
            "{err:?}"
        );
    }

    #[test]
    fn the_root_must_be_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        skill(dir.path());
        let link = dir.path().join("link");
        symlink(dir.path().join("references"), &link).unwrap();
        assert!(matches!(
            tree_hash(&link),
            Err(TreeHashError::NotAFolder { .. })
        ));
        assert!(matches!(
            tree_hash(&dir.path().join("SKILL.md")),
            Err(TreeHashError::NotAFolder { .. })
        ));
        assert!(matches!(
            tree_hash(&dir.path().join("missing")),
            Err(TreeHashError::Io { .. })
        ));
    }
}
