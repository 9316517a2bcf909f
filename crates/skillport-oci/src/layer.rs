// The deterministic tar+gzip layer.
//
// Same files in, same bytes out: entries sorted by path, mtime fixed (0, or
// SOURCE_DATE_EPOCH), uid/gid 0 with no user or group names, modes normalised to 0755 for
// folders and executables and 0644 for other files, no extended attributes, and gzip with no
// file name, mtime 0, "unknown" OS and the default level. The gzip output also depends on the
// compressor's code, which Cargo.lock pins; a golden-digest test notices if it ever changes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use skillport_skill::{Entry, EntryKind};

use crate::Digest;
use crate::digest::HashingWriter;

/// What went into a layer, and its digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Digest of the compressed bytes (the blob).
    pub digest: Digest,
    /// Size of the compressed bytes.
    pub size: u64,
    /// Digest of the uncompressed tar (the image config's `diff_id`).
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Regular files in the layer.
    pub files: usize,
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while it was being read ({expected} bytes expected, {found} read)")]
    Changed {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("writing the layer")]
    Write(#[source] io::Error),
}

/// How a layer is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerOptions {
    /// The mtime of every entry, in seconds since the epoch (SOURCE_DATE_EPOCH, or 0).
    pub mtime: u64,
}

/// A file made during the build rather than read from the skill folder (a generated
/// `skill.yaml`). It replaces a walked entry of the same path.
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub path: String,
    pub content: Vec<u8>,
}

/// Writes the layer for `entries` (plus `generated`) to `out`, calling `progress` with the
/// number of file bytes read so far. Returns `out` and the layer's digests.
pub fn write_layer<W: Write>(
    entries: &[Entry],
    generated: &[GeneratedFile],
    options: LayerOptions,
    out: W,
    progress: &mut dyn FnMut(u64),
) -> Result<(W, Layer), LayerError> {
    enum Item<'a> {
        Walked(&'a Entry),
        Generated(&'a GeneratedFile),
    }
    let mut items: BTreeMap<&str, Item> = entries
        .iter()
        .map(|e| (e.path.as_str(), Item::Walked(e)))
        .collect();
    for file in generated {
        items.insert(file.path.as_str(), Item::Generated(file));
    }

    let gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(HashingWriter::new(out), Compression::default());
    let mut tar = tar::Builder::new(HashingWriter::new(gzip));
    let mut files = 0;
    let mut read_total = 0;
    for (path, item) in items {
        match item {
            Item::Walked(entry) => match &entry.kind {
                EntryKind::Dir => {
                    let mut header = header(tar::EntryType::Directory, 0o755, 0, options);
                    tar.append_data(&mut header, path, io::empty())
                        .map_err(LayerError::Write)?;
                }
                EntryKind::Symlink { target } => {
                    let mut header = header(tar::EntryType::Symlink, 0o777, 0, options);
                    tar.append_link(&mut header, path, target)
                        .map_err(LayerError::Write)?;
                }
                EntryKind::File { size, executable } => {
                    let mode = if *executable { 0o755 } else { 0o644 };
                    let mut header = header(tar::EntryType::Regular, mode, *size, options);
                    let reader = ExactReader::open(&entry.source, *size)?;
                    let mut reader = ProgressReader {
                        inner: reader,
                        read: &mut read_total,
                        progress,
                    };
                    tar.append_data(&mut header, path, &mut reader)
                        .map_err(|err| reader.inner.explain(err))?;
                    files += 1;
                }
            },
            Item::Generated(file) => {
                let size = file.content.len() as u64;
                let mut header = header(tar::EntryType::Regular, 0o644, size, options);
                tar.append_data(&mut header, path, file.content.as_slice())
                    .map_err(LayerError::Write)?;
                files += 1;
            }
        }
    }
    let tar_hashing = tar.into_inner().map_err(LayerError::Write)?;
    let (gzip, diff_id, uncompressed_size) = tar_hashing.finish();
    let out_hashing = gzip.finish().map_err(LayerError::Write)?;
    let (out, digest, size) = out_hashing.finish();
    Ok((
        out,
        Layer {
            digest,
            size,
            diff_id,
            uncompressed_size,
            files,
        },
    ))
}

fn header(kind: tar::EntryType, mode: u32, size: u64, options: LayerOptions) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(options.mtime);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Reads exactly `expected` bytes from a file, and fails if the file turns out shorter or
/// longer: a tar header already promised that size, so a file that changes under us must fail
/// the build rather than write a corrupt layer.
struct ExactReader {
    path: PathBuf,
    file: File,
    expected: u64,
    read: u64,
    failure: Option<LayerError>,
}

impl ExactReader {
    fn open(path: &Path, expected: u64) -> Result<ExactReader, LayerError> {
        let file = File::open(path).map_err(|source| LayerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ExactReader {
            path: path.to_path_buf(),
            file,
            expected,
            read: 0,
            failure: None,
        })
    }

    /// Turns the I/O error `tar` saw back into what happened.
    fn explain(&mut self, err: io::Error) -> LayerError {
        self.failure.take().unwrap_or(LayerError::Write(err))
    }

    fn fail(&mut self, failure: LayerError) -> io::Error {
        let err = io::Error::other(failure.to_string());
        self.failure = Some(failure);
        err
    }
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.expected - self.read;
        if left == 0 {
            // One more byte would mean the file grew.
            let mut probe = [0u8; 1];
            return match self.file.read(&mut probe) {
                Ok(0) => Ok(0),
                Ok(_) => Err(self.fail(LayerError::Changed {
                    path: self.path.clone(),
                    expected: self.expected,
                    found: self.expected + 1,
                })),
                Err(source) => Err(self.fail(LayerError::Read {
                    path: self.path.clone(),
                    source,
                })),
            };
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match self.file.read(&mut buf[..want]) {
            Ok(0) => Err(self.fail(LayerError::Changed {
                path: self.path.clone(),
                expected: self.expected,
                found: self.read,
            })),
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(source) => Err(self.fail(LayerError::Read {
                path: self.path.clone(),
                source,
            })),
        }
    }
}

struct ProgressReader<'a, R> {
    inner: R,
    read: &'a mut u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.read += n as u64;
        (self.progress)(*self.read);
        Ok(n)
    }
}
