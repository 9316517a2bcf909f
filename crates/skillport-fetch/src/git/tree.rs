// Writing one folder of a commit's tree to disk, by walking the tree ourselves.
//
// A git tree from a server is untrusted input like a tar layer: names come from the wire and
// can be `..`, hold `/`, repeat, or be `.git`; links can point anywhere. So no worktree
// checkout: every name is checked, every file is created with `create_new`, folders with
// `create_dir` (a duplicate fails instead of merging), and links are made last and then
// resolved on disk, as `skillport_oci`'s unpacking does for layers.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix::objs::tree::EntryKind;
use skillport_oci::folder::{self, link_stays_inside};

use super::packed::{Copied, CopyError, PackedBlobs};
use super::remote::Target;
use super::{GitError, GitOptions, Limit};

/// Folders nested deeper than this are refused (and the walk's recursion stays shallow).
const MAX_DEPTH: usize = 64;
/// A symbolic link's target is a path, not content.
const MAX_LINK_BYTES: u64 = 4096;

/// What [`write`] wrote.
pub(super) struct Written {
    pub files: usize,
    pub bytes: u64,
    pub submodules: Vec<String>,
}

/// `path` as checked components; empty for the repository root (`None`, `""`, `.`, `/`-only
/// is refused as absolute).
pub(super) fn clean_subpath(path: Option<&str>) -> Result<Vec<String>, &'static str> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    if path.starts_with('/') {
        return Err("it must be relative to the repository root");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("it must not contain .."),
            part if part.contains('\0') => return Err("it holds a NUL byte"),
            part if part.eq_ignore_ascii_case(".git") => return Err("it must not name .git"),
            part => parts.push(part.to_owned()),
        }
    }
    Ok(parts)
}

/// Writes the folder `subpath` of `commit`'s tree into the new folder `dest`.
pub(super) fn write(
    repo: &gix::Repository,
    target: &Target,
    commit: ObjectId,
    subpath: &[String],
    dest: &Path,
    options: &GitOptions,
) -> Result<Written, GitError> {
    let packed = PackedBlobs::open(repo.git_dir(), repo.object_hash()).map_err(|reason| {
        GitError::Repository {
            action: "opening the fetched pack",
            path: repo.git_dir().to_path_buf(),
            reason,
        }
    })?;
    let mut writer = Writer {
        repo,
        packed,
        target,
        options,
        prefix: subpath.join("/"),
        root: dest.to_path_buf(),
        entries: 0,
        written: Written {
            files: 0,
            bytes: 0,
            submodules: Vec::new(),
        },
        links: Vec::new(),
    };
    let tree = writer.find_folder(commit, subpath)?;
    fs::create_dir(dest).map_err(io_error("creating", dest))?;
    writer.write_tree(tree, "", 0)?;
    writer.create_links()?;
    Ok(writer.written)
}

struct Writer<'a> {
    repo: &'a gix::Repository,
    /// Where blobs stored whole are copied from without passing through memory.
    packed: PackedBlobs,
    target: &'a Target,
    options: &'a GitOptions,
    /// `subpath` joined, for messages (paths are shown from the repository root).
    prefix: String,
    root: PathBuf,
    entries: u64,
    written: Written,
    /// (path inside the skill, link text), created after everything else.
    links: Vec<(String, String)>,
}

impl Writer<'_> {
    /// The tree of `subpath` in `commit`.
    fn find_folder(&self, commit: ObjectId, subpath: &[String]) -> Result<ObjectId, GitError> {
        let commit_object = self
            .repo
            .find_commit(commit)
            .map_err(|err| self.broken(&format!("reading commit {commit}"), &err))?;
        let mut tree = commit_object
            .tree_id()
            .map_err(|err| self.broken(&format!("reading commit {commit}"), &err))?
            .detach();
        for (depth, part) in subpath.iter().enumerate() {
            let entry = self
                .entries(tree, &subpath[..depth].join("/"))?
                .into_iter()
                .find(|(_, name, _)| name.as_slice() == part.as_bytes());
            match entry {
                Some((EntryKind::Tree, _, id)) => tree = id,
                Some(_) if depth + 1 == subpath.len() => {
                    return Err(GitError::NotAFolder {
                        url: self.target.display_url.clone(),
                        reference: self.target.reference.clone(),
                        path: self.prefix.clone(),
                    });
                }
                _ => {
                    return Err(GitError::PathNotFound {
                        url: self.target.display_url.clone(),
                        reference: self.target.reference.clone(),
                        commit: commit.to_string(),
                        path: self.prefix.clone(),
                    });
                }
            }
        }
        Ok(tree)
    }

    /// The entries of tree `id` (shown as `path` in messages), owned.
    fn entries(
        &self,
        id: ObjectId,
        path: &str,
    ) -> Result<Vec<(EntryKind, Vec<u8>, ObjectId)>, GitError> {
        let tree = self
            .repo
            .find_tree(id)
            .map_err(|err| self.broken(&format!("reading folder {path:?}"), &err))?;
        let decoded = tree
            .decode()
            .map_err(|err| self.broken(&format!("reading folder {path:?}"), &err))?;
        Ok(decoded
            .entries
            .iter()
            .map(|entry| {
                (
                    entry.mode.kind(),
                    entry.filename.to_vec(),
                    entry.oid.to_owned(),
                )
            })
            .collect())
    }

    /// Writes tree `id` into `self.root/relative` (which exists).
    fn write_tree(&mut self, id: ObjectId, relative: &str, depth: usize) -> Result<(), GitError> {
        if depth > MAX_DEPTH {
            return Err(self.refuse(relative, &format!("folders nest deeper than {MAX_DEPTH}")));
        }
        for (kind, name, id) in self.entries(id, &self.shown(relative))? {
            let path = match check_name(&name) {
                Ok(name) if relative.is_empty() => name.to_owned(),
                Ok(name) => format!("{relative}/{name}"),
                Err(reason) => {
                    let name = String::from_utf8_lossy(&name);
                    let shown = if relative.is_empty() {
                        name.into_owned()
                    } else {
                        format!("{relative}/{name}")
                    };
                    return Err(self.refuse(&shown, reason));
                }
            };
            if kind != EntryKind::Commit {
                self.count_entry()?;
            }
            let target = self.root.join(&path);
            match kind {
                EntryKind::Tree => {
                    fs::create_dir(&target)
                        .map_err(|err| self.exists_or_io(err, &path, "creating"))?;
                    set_mode(&target, 0o755)?;
                    self.write_tree(id, &path, depth + 1)?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let mode = if kind == EntryKind::BlobExecutable {
                        0o755
                    } else {
                        0o644
                    };
                    self.write_blob(id, &path, &target, mode)?;
                }
                EntryKind::Link => {
                    let link = self.read_link(id, &path)?;
                    if !link_stays_inside(&path, &link) {
                        return Err(self
                            .refuse(&path, &format!("link to {link:?} points outside the skill")));
                    }
                    self.links.push((path, link));
                }
                EntryKind::Commit => {
                    tracing::warn!(
                        url = %self.target.display_url,
                        path = %self.shown(&path),
                        "skipping a git submodule: submodules are not fetched"
                    );
                    self.written.submodules.push(path);
                }
            }
        }
        Ok(())
    }

    fn write_blob(
        &mut self,
        id: ObjectId,
        path: &str,
        target: &Path,
        mode: u32,
    ) -> Result<(), GitError> {
        let size = self
            .repo
            .find_header(id)
            .map_err(|err| self.broken(&format!("reading {:?}", self.shown(path)), &err))?
            .size();
        self.written.bytes = self.written.bytes.saturating_add(size);
        if self.written.bytes > self.options.max_bytes {
            return Err(GitError::TooLarge {
                url: self.target.display_url.clone(),
                what: Limit::Files,
                limit: self.options.max_bytes,
            });
        }
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .map_err(|err| self.exists_or_io(err, path, "creating"))?;
        match self.packed.copy(&id, size, &mut file) {
            Ok(Copied::Streamed) => {}
            Ok(Copied::NotStoredWhole) => {
                // A delta (or a loose object): gix resolves it in one buffer.
                let blob = self
                    .repo
                    .find_blob(id)
                    .map_err(|err| self.broken(&format!("reading {:?}", self.shown(path)), &err))?;
                file.write_all(&blob.data)
                    .map_err(io_error("writing", target))?;
            }
            Err(CopyError::Write(err)) => return Err(io_error("writing", target)(err)),
            Err(CopyError::Pack(reason)) => {
                return Err(self.broken(&format!("reading {:?}", self.shown(path)), &reason));
            }
        }
        file.flush().map_err(io_error("writing", target))?;
        drop(file);
        set_mode(target, mode)?;
        self.written.files += 1;
        Ok(())
    }

    fn read_link(&self, id: ObjectId, path: &str) -> Result<String, GitError> {
        let size = self
            .repo
            .find_header(id)
            .map_err(|err| self.broken(&format!("reading {:?}", self.shown(path)), &err))?
            .size();
        if size > MAX_LINK_BYTES {
            return Err(self.refuse(path, "the link target is implausibly long"));
        }
        let blob = self
            .repo
            .find_blob(id)
            .map_err(|err| self.broken(&format!("reading {:?}", self.shown(path)), &err))?;
        let link = std::str::from_utf8(&blob.data)
            .map_err(|_| self.refuse(path, "the link target is not UTF-8"))?;
        if link.contains('\0') {
            return Err(self.refuse(path, "the link target holds a NUL byte"));
        }
        Ok(link.to_owned())
    }

    fn create_links(&mut self) -> Result<(), GitError> {
        self.links.sort();
        for (path, link) in &self.links {
            let target = self.root.join(path);
            std::os::unix::fs::symlink(link, &target)
                .map_err(|err| self.exists_or_io(err, path, "linking"))?;
        }
        // Each link's text stays inside; chains of links can still lead out (`d -> .`,
        // `e -> d/..`). Now that all exist, resolve each on disk.
        if let Some((path, link)) = folder::escaping_link(&self.root, &self.links)
            .map_err(io_error("resolving", &self.root))?
        {
            return Err(self.refuse(
                path,
                &format!("link to {link:?} does not resolve to a file inside the skill"),
            ));
        }
        Ok(())
    }

    fn count_entry(&mut self) -> Result<(), GitError> {
        self.entries += 1;
        if self.entries > self.options.max_entries {
            return Err(GitError::TooLarge {
                url: self.target.display_url.clone(),
                what: Limit::Entries,
                limit: self.options.max_entries,
            });
        }
        Ok(())
    }

    /// `path` inside the skill as shown to users: from the repository root.
    fn shown(&self, path: &str) -> String {
        match (self.prefix.is_empty(), path.is_empty()) {
            (true, _) => path.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{path}", self.prefix),
        }
    }

    fn refuse(&self, path: &str, reason: &str) -> GitError {
        GitError::Unsafe {
            url: self.target.display_url.clone(),
            path: self.shown(path),
            reason: reason.to_owned(),
        }
    }

    /// An object the server should have sent is missing or unreadable.
    fn broken(&self, what: &str, err: &dyn std::fmt::Display) -> GitError {
        GitError::Fetch {
            url: self.target.display_url.clone(),
            reference: self.target.reference.clone(),
            reason: format!("{what}: {err}"),
        }
    }

    /// "It appears twice" when the path exists already; otherwise the I/O error.
    fn exists_or_io(&self, err: io::Error, path: &str, action: &'static str) -> GitError {
        if err.kind() == io::ErrorKind::AlreadyExists {
            self.refuse(path, "it appears twice")
        } else {
            io_error(action, &self.root.join(path))(err)
        }
    }
}

/// The entry name as text, or why it is refused.
fn check_name(name: &[u8]) -> Result<&str, &'static str> {
    let name = std::str::from_utf8(name).map_err(|_| "the name is not UTF-8")?;
    match name {
        "" | "." | ".." => Err("the name is empty, . or .."),
        _ if name.contains(['/', '\0']) => Err("the name holds / or NUL"),
        _ if name.eq_ignore_ascii_case(".git") => Err(".git entries are not allowed"),
        _ => Ok(name),
    }
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> GitError + use<> {
    let path = path.to_path_buf();
    move |source| GitError::Io {
        action,
        path,
        source,
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), GitError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_error("setting permissions of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpaths() {
        assert_eq!(clean_subpath(None).unwrap(), Vec::<String>::new());
        assert_eq!(clean_subpath(Some(".")).unwrap(), Vec::<String>::new());
        assert_eq!(
            clean_subpath(Some("./skills//a/")).unwrap(),
            ["skills", "a"]
        );
        assert!(clean_subpath(Some("/etc")).is_err());
        assert!(clean_subpath(Some("a/../b")).is_err());
        assert!(clean_subpath(Some(".GIT/hooks")).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(check_name(b"SKILL.md"), Ok("SKILL.md"));
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"a/b",
            b".git",
            b".Git",
            b"a\0",
            b"\xff",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
