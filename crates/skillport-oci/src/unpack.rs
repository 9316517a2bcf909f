// Safe unpacking of a layer into a folder.
//
// Expected flow: `Staged::unpack` extracts the layer into a temporary folder beside the
// destination; the caller then checks whatever it must (the blob digest, SKILL.md) and calls
// `publish`, which renames the folder into place. An error at any step drops the temporary
// folder, so nobody ever sees half a skill.
//
// Guarantees: entries with absolute paths or `..`, device nodes, FIFOs, setuid/setgid bits,
// hard links to anything but a file already extracted, links that resolve outside the folder
// (checked by text and again on disk, after every entry exists), entries below a link, and
// duplicate entries are refused. Extraction stops once the file bytes pass `max_bytes` or the
// entries pass `max_entries`, and the decompressed stream is capped too, so a decompression
// bomb costs at most about `max_bytes` of disk.
//
// Every file is hashed as it is written, so a staged folder comes with its tree hash (what
// `tree_hash::tree_hash` would compute from the disk) without a second read of its bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use tempfile::TempDir;

use crate::folder::{self, PublishError, link_stays_inside};
use crate::spec::media;
use crate::tree_hash::{TreeContent, TreeEntry, hash_entries};
use crate::{Digest, HashingWriter};

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type declares, if it is a tar layer we can read.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            media::LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => {
                Some(Compression::None)
            }
            media::LAYER_TAR_GZIP | media::DOCKER_LAYER_TAR_GZIP | media::AGENTSKILLS_LAYER => {
                Some(Compression::Gzip)
            }
            media::LAYER_TAR_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// `reader` decompressed: the one place that knows which decoder goes with which layer.
    pub fn decoder<'a, R: Read + 'a>(self, reader: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(reader),
            // 256 KiB of input at a time (flate2's own reader takes 32 KiB): one read of
            // the decoder then gives up to that much, for `copy_sized` to write at once.
            Compression::Gzip => Box::new(flate2::bufread::GzDecoder::new(
                io::BufReader::with_capacity(256 << 10, reader),
            )),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        })
    }
}

/// How a layer is packed: its compression, and whether the skill's files sit inside one
/// top-level folder (`<name>/SKILL.md`, as the agentskills.io OCI artifact proposal has them)
/// rather than at the layer root (our images, skillctl's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFormat {
    pub compression: Compression,
    pub in_folder: bool,
}

impl From<Compression> for LayerFormat {
    fn from(compression: Compression) -> Self {
        LayerFormat {
            compression,
            in_folder: false,
        }
    }
}

/// Limits on what one layer may expand to.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Total bytes of file content.
    pub max_bytes: u64,
    /// Number of entries.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 1 << 30,
            max_entries: 100_000,
        }
    }
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{path}: {action}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {entry:?} refused: {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("layer expands past the limit of {limit} bytes (a decompression bomb?)")]
    TooLarge { limit: u64 },
    #[error("layer has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("layer is not a valid {compression} tar stream")]
    Corrupt {
        compression: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path} already exists and is not an empty folder")]
    DestinationExists { path: PathBuf },
}

/// What a published unpack holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files (a hard link counts as one more).
    pub files: usize,
    /// Bytes of file content, as the folder lists them (a hard link's bytes count again).
    pub bytes: u64,
    /// Every entry as the tree hash takes it, sorted by path: hashed while it was written.
    pub tree: Vec<TreeEntry>,
}

impl Unpacked {
    /// The folder's [tree hash](crate::tree_hash), from the entries hashed while unpacking.
    pub fn tree_hash(&self) -> Digest {
        hash_entries(&self.tree)
    }
}

/// A layer unpacked into a temporary folder, not yet visible at its destination.
#[derive(Debug)]
pub struct Staged {
    dir: TempDir,
    unpacked: Unpacked,
}

impl Staged {
    /// Unpacks the tar stream `reader` (compressed as `compression`) into a new temporary
    /// folder inside `parent`, which must be on the destination's file system.
    pub fn unpack<R: Read>(
        reader: R,
        format: impl Into<LayerFormat>,
        parent: &Path,
        limits: UnpackLimits,
    ) -> Result<Staged, UnpackError> {
        let LayerFormat {
            compression,
            in_folder,
        } = format.into();
        let dir = tempfile::Builder::new()
            .prefix(".skillport-unpack-")
            .tempdir_in(parent)
            .map_err(|source| UnpackError::Io {
                action: "creating a temporary folder in",
                path: parent.to_path_buf(),
                source,
            })?;
        let name = compression.name();
        let decoded = compression
            .decoder(reader)
            .map_err(|source| UnpackError::Corrupt {
                compression: name,
                source,
            })?;
        // Headers and padding come on top of file bytes; allow a generous 1 KiB per entry.
        let cap = limits
            .max_bytes
            .saturating_add(limits.max_entries.saturating_mul(1024));
        let mut extractor = Extractor {
            root: dir.path().to_path_buf(),
            limits,
            files: BTreeMap::new(),
            folders: BTreeSet::new(),
            made: BTreeSet::new(),
            links: Vec::new(),
            link_paths: BTreeSet::new(),
            bytes: 0,
            entries: 0,
            folder: in_folder.then(String::new),
        };
        let mut archive = tar::Archive::new(CappedReader {
            inner: decoded,
            left: cap,
        });
        let entries = archive
            .entries()
            .map_err(|source| corrupt_or_limit(name, source, limits))?;
        for entry in entries {
            let entry = entry.map_err(|source| corrupt_or_limit(name, source, limits))?;
            extractor.extract(entry, name)?;
        }
        extractor.create_links()?;
        Ok(Staged {
            dir,
            unpacked: extractor.into_unpacked()?,
        })
    }

    /// Where the files are now.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What the folder holds: counts, and every entry as hashed while it was written.
    pub fn unpacked(&self) -> &Unpacked {
        &self.unpacked
    }

    /// Moves the folder to `dest` (which must not exist, or be an empty folder) in one rename.
    pub fn publish(self, dest: &Path) -> Result<Unpacked, UnpackError> {
        folder::publish(self.dir.path(), dest)?;
        // Moved away: nothing left for the temporary folder's clean-up to delete.
        let _ = self.dir.keep();
        Ok(self.unpacked)
    }
}

impl From<PublishError> for UnpackError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Taken { path } => UnpackError::DestinationExists { path },
            PublishError::Io {
                action,
                path,
                source,
            } => UnpackError::Io {
                action,
                path,
                source,
            },
        }
    }
}

fn corrupt_or_limit(
    compression: &'static str,
    source: io::Error,
    limits: UnpackLimits,
) -> UnpackError {
    if source.kind() == io::ErrorKind::FileTooLarge {
        UnpackError::TooLarge {
            limit: limits.max_bytes,
        }
    } else {
        UnpackError::Corrupt {
            compression,
            source,
        }
    }
}

/// Fails the read once more than `left` bytes came through.
struct CappedReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::FileTooLarge))?;
        Ok(n)
    }
}

struct Extractor {
    root: PathBuf,
    limits: UnpackLimits,
    /// Regular files (and hard links) extracted so far: what each holds, and its size.
    files: BTreeMap<String, (TreeContent, u64)>,
    /// Folders the layer names; their parents, and every other entry's, are added at the end.
    folders: BTreeSet<String>,
    /// Folders on disk made so far (by path under the root).
    made: BTreeSet<PathBuf>,
    /// Symbolic links, created after everything else.
    links: Vec<(String, String)>,
    link_paths: BTreeSet<String>,
    bytes: u64,
    entries: u64,
    /// For layers with the files in one folder: that folder's name once seen (empty before).
    folder: Option<String>,
}

impl Extractor {
    /// Strips the one top-level folder of an in-folder layer; `None` for the folder itself.
    fn strip_folder(&mut self, path: String) -> Result<Option<String>, &'static str> {
        let Some(folder) = &mut self.folder else {
            return Ok(Some(path));
        };
        let (top, rest) = path.split_once('/').unwrap_or((&path, ""));
        if folder.is_empty() {
            top.clone_into(folder);
        } else if folder != top {
            return Err("the layer should hold one top-level folder and holds more");
        }
        Ok((!rest.is_empty()).then(|| rest.to_owned()))
    }

    /// A hard link's target in an in-folder layer names the folder too (`pdf/SKILL.md`):
    /// strip it the same way, and refuse a target outside it.
    fn strip_link_folder(&self, target: String) -> Option<String> {
        match self.folder.as_deref() {
            None => Some(target),
            Some(folder) => target
                .strip_prefix(folder)
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|rest| !folder.is_empty() && !rest.is_empty())
                .map(str::to_owned),
        }
    }

    fn extract<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        compression: &'static str,
    ) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason: &str| UnpackError::Unsafe {
            entry: raw.clone(),
            reason: reason.to_owned(),
        };
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        let Some(path) = clean_path(&entry.path_bytes()).map_err(refuse)? else {
            return Ok(()); // the archive's own root, "./"
        };
        let Some(path) = self.strip_folder(path).map_err(refuse)? else {
            return Ok(()); // the skill's folder in an in-folder layer
        };
        if self.below_link(&path) {
            return Err(refuse("it lies below a symbolic link"));
        }
        let corrupt = |source| UnpackError::Corrupt {
            compression,
            source,
        };
        let mode = entry.header().mode().map_err(corrupt)?;
        if mode & 0o6000 != 0 {
            return Err(refuse("setuid/setgid bits are not allowed"));
        }
        let target = self.root.join(&path);
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_error("creating", &target))?;
                set_mode(&target, 0o755)?;
                self.made.insert(target);
                self.folders.insert(path);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size().map_err(corrupt)?;
                self.bytes = self.bytes.saturating_add(size);
                if self.bytes > self.limits.max_bytes {
                    return Err(UnpackError::TooLarge {
                        limit: self.limits.max_bytes,
                    });
                }
                self.make_parent(&target)?;
                let written = (&mut entry).take(size);
                let content = write_file(
                    written,
                    &target,
                    size,
                    mode,
                    &refuse,
                    compression,
                    self.limits,
                )?;
                self.files.insert(path, (content, size));
            }
            tar::EntryType::Link => {
                let (source, held) = entry
                    .link_name_bytes()
                    .and_then(|link| clean_path(&link).ok().flatten())
                    .and_then(|link| self.strip_link_folder(link))
                    .and_then(|source| {
                        let held = self.files.get(&source)?.clone();
                        Some((source, held))
                    })
                    .ok_or_else(|| {
                        refuse("hard link to something that is not a file extracted before it")
                    })?;
                self.make_parent(&target)?;
                fs::hard_link(self.root.join(&source), &target)
                    .map_err(|err| exists_or_io(err, &refuse, "linking", &target))?;
                // The same file under a second name: the same bytes and mode.
                self.files.insert(path, held);
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("symbolic link without a target"))?;
                let link = std::str::from_utf8(&link)
                    .map_err(|_| refuse("link target is not UTF-8"))?
                    .to_owned();
                if !link_stays_inside(&path, &link) {
                    return Err(refuse(&format!(
                        "link to {link:?} points outside the skill"
                    )));
                }
                self.link_paths.insert(path.clone());
                self.links.push((path, link));
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refuse("device nodes are not allowed"));
            }
            tar::EntryType::Fifo => return Err(refuse("named pipes are not allowed")),
            _ => return Err(refuse("unsupported entry type")),
        }
        Ok(())
    }

    /// The counts and the sorted tree entries of everything extracted: files and links as
    /// recorded, folders named by the layer, and every entry's parent folders (created on the
    /// way, as `create_dir_all` did).
    fn into_unpacked(self) -> Result<Unpacked, UnpackError> {
        let mut folders = self.folders;
        let paths = self
            .files
            .keys()
            .chain(self.links.iter().map(|(path, _)| path))
            .chain(folders.iter());
        let parents: Vec<String> = paths
            .flat_map(|path| {
                path.match_indices('/')
                    .map(|(at, _)| path[..at].to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        folders.extend(parents);
        let bytes = self.files.values().map(|(_, size)| size).sum();
        let files = self.files.len();
        // A path is a folder, a file or a link, never two: the extraction refused that.
        let mut entries: BTreeMap<String, TreeContent> = self
            .files
            .into_iter()
            .map(|(path, (content, _))| (path, content))
            .collect();
        entries.extend(folders.into_iter().map(|path| (path, TreeContent::Folder)));
        entries.extend(
            self.links
                .into_iter()
                .map(|(path, link)| (path, TreeContent::Link(link.into_bytes()))),
        );
        // Two paths that differ only in case are one on a case-insensitive file system (the
        // second folder merged into the first): the tree is then read from the disk.
        let mut folded = BTreeSet::new();
        if !entries
            .keys()
            .all(|path| folded.insert(path.to_lowercase()))
        {
            let (_, tree) =
                crate::tree_hash::tree_hash_with_entries(&self.root).map_err(|err| {
                    UnpackError::Io {
                        action: "hashing",
                        path: self.root.clone(),
                        source: io::Error::other(err.to_string()),
                    }
                })?;
            return Ok(Unpacked { files, bytes, tree });
        }
        Ok(Unpacked {
            files,
            bytes,
            // A String's order is its bytes' order: the tree hash's order.
            tree: entries
                .into_iter()
                .map(|(path, content)| TreeEntry {
                    path: path.into_bytes(),
                    content,
                })
                .collect(),
        })
    }

    /// Makes `target`'s folder, once: a layer lists many files per folder.
    fn make_parent(&mut self, target: &Path) -> Result<(), UnpackError> {
        match target.parent() {
            Some(parent) if !self.made.contains(parent) => {
                make_parent(target)?;
                self.made.insert(parent.to_path_buf());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn below_link(&self, path: &str) -> bool {
        let mut prefix = String::new();
        for component in path.split('/') {
            if !prefix.is_empty() && self.link_paths.contains(&prefix) {
                return true;
            }
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
        }
        false
    }

    fn create_links(&mut self) -> Result<(), UnpackError> {
        self.links.sort();
        // A link below another link, in either order in the layer: once the upper one exists,
        // making the lower one would go through it, maybe out of the folder.
        if let Some((path, _)) = self.links.iter().find(|(path, _)| self.below_link(path)) {
            return Err(UnpackError::Unsafe {
                entry: path.clone(),
                reason: "it lies below a symbolic link".to_owned(),
            });
        }
        for (path, link) in &self.links {
            let target = self.root.join(path);
            make_parent(&target)?;
            std::os::unix::fs::symlink(link, &target).map_err(|err| {
                let refuse = |reason: &str| UnpackError::Unsafe {
                    entry: path.clone(),
                    reason: reason.to_owned(),
                };
                exists_or_io(err, &refuse, "linking", &target)
            })?;
        }
        // The text of each link stays inside; chains of links can still lead out (`d -> .`,
        // `e -> d/..`). Now that all exist, resolve each on disk.
        if let Some((path, link)) = folder::escaping_link(&self.root, &self.links)
            .map_err(io_error("resolving", &self.root))?
        {
            return Err(UnpackError::Unsafe {
                entry: path.clone(),
                reason: format!("link to {link:?} does not resolve to a file inside the skill"),
            });
        }
        Ok(())
    }
}

/// `io::copy` with a buffer sized to the file, at most 256 KiB: std's copy moves 8 KiB at a
/// time, so a 100 MB file was 12,800 reads, hash updates and writes. Now a small file is one
/// of each, and a large one as many as the decoder needs to fill 256 KiB.
fn copy_sized(reader: &mut impl Read, writer: &mut impl Write, size: u64) -> io::Result<u64> {
    const MOST: usize = 256 << 10;
    let mut buffer = vec![0; usize::try_from(size).map_or(MOST, |size| size.clamp(1, MOST))];
    let mut copied = 0;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        writer.write_all(&buffer[..n])?;
        copied += n as u64;
    }
}

/// Writes the `size` bytes `reader` holds to the new file `target` (its folder made already;
/// executable when `mode` has any execute bit), hashing them on the way.
fn write_file(
    mut reader: impl Read,
    target: &Path,
    size: u64,
    mode: u32,
    refuse: &dyn Fn(&str) -> UnpackError,
    compression: &'static str,
    limits: UnpackLimits,
) -> Result<TreeContent, UnpackError> {
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(|err| exists_or_io(err, refuse, "creating", target))?;
    let mut hashing = HashingWriter::new(file);
    let copied = copy_sized(&mut reader, &mut hashing, size)
        .map_err(|source| corrupt_or_limit(compression, source, limits))?;
    if copied != size {
        return Err(UnpackError::Corrupt {
            compression,
            source: io::ErrorKind::UnexpectedEof.into(),
        });
    }
    let (mut file, digest, _) = hashing.finish();
    file.flush().map_err(io_error("writing", target))?;
    let executable = mode & 0o111 != 0;
    set_mode(target, if executable { 0o755 } else { 0o644 })?;
    let mut sha256 = [0; 32];
    hex::decode_to_slice(digest.hex(), &mut sha256).expect("a sha256 digest is 64 hex digits");
    Ok(TreeContent::File { sha256, executable })
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> UnpackError + use<> {
    let path = path.to_path_buf();
    move |source| UnpackError::Io {
        action,
        path,
        source,
    }
}

/// "It appears twice" when the path exists already; otherwise the I/O error.
fn exists_or_io(
    err: io::Error,
    refuse: &dyn Fn(&str) -> UnpackError,
    action: &'static str,
    path: &Path,
) -> UnpackError {
    if err.kind() == io::ErrorKind::AlreadyExists {
        refuse("it appears twice")
    } else {
        io_error(action, path)(err)
    }
}

fn make_parent(target: &Path) -> Result<(), UnpackError> {
    match target.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(io_error("creating", parent)),
        None => Ok(()),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), UnpackError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_error("setting permissions of", path))
}

/// The entry path made relative and normal (`a/b`), `None` for the root itself, or why it is
/// refused.
fn clean_path(raw: &[u8]) -> Result<Option<String>, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "the path is not UTF-8")?;
    if text.contains('\0') {
        return Err("the path holds a NUL byte");
    }
    if text.starts_with('/') {
        return Err("absolute paths are not allowed");
    }
    let mut parts = Vec::new();
    for component in Path::new(text).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().ok_or("the path is not UTF-8")?),
            Component::CurDir => {}
            Component::ParentDir => return Err("paths with .. are not allowed"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute paths are not allowed");
            }
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path(b"./a/b").unwrap().as_deref(), Some("a/b"));
        assert_eq!(clean_path(b"a//b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(clean_path(b"./").unwrap(), None);
        assert!(clean_path(b"/etc/passwd").is_err());
        assert!(clean_path(b"a/../../b").is_err());
        assert!(clean_path(b"..").is_err());
    }
}
