// Blobs from the fetched pack straight into their files, without holding them in memory.
//
// gix reads an object into one buffer, so a 500 MB file in a skill would need 500 MB of the
// init container's memory. A blob stored whole in the pack (not as a delta) is one zlib
// stream at a known offset of the pack, which is memory-mapped: it is inflated from there into
// its file 64 KiB at a time. The pack's index was computed here, by gix, from the pack's own
// bytes while it was received, so the id → offset mapping is as trustworthy as the content.
//
// Caveat: a blob stored as a delta needs its base and the delta together; gix resolves it in
// memory (`copy` says so, and the caller falls back to gix). Servers deltify similar versions
// of a file; with a depth-1 fetch there is one version of each, so most blobs arrive whole.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use gix::odb::pack;

/// Bytes inflated at a time.
const CHUNK: usize = 64 * 1024;

/// The packs of one repository, opened once.
pub(super) struct PackedBlobs {
    packs: Vec<(pack::index::File, pack::data::File)>,
}

/// What [`PackedBlobs::copy`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Copied {
    /// The whole blob is in the writer.
    Streamed,
    /// Nothing was written: the blob is stored as a delta, or not in a pack.
    NotStoredWhole,
}

impl PackedBlobs {
    /// Opens every pack of the repository whose git folder is `git_dir`.
    pub(super) fn open(git_dir: &Path, object_hash: gix::hash::Kind) -> Result<Self, String> {
        let dir = git_dir.join("objects").join("pack");
        let mut packs = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Self { packs }),
            Err(err) => return Err(format!("reading {}: {err}", dir.display())),
        };
        for entry in entries {
            let path = entry
                .map_err(|err| format!("reading {}: {err}", dir.display()))?
                .path();
            if path.extension().is_none_or(|ext| ext != "idx") {
                continue;
            }
            let index = pack::index::File::at(&path, object_hash)
                .map_err(|err| format!("opening {}: {err}", path.display()))?;
            let data_path = path.with_extension("pack");
            let data = pack::data::File::at(&data_path, object_hash)
                .map_err(|err| format!("opening {}: {err}", data_path.display()))?;
            packs.push((index, data));
        }
        Ok(Self { packs })
    }

    /// Writes blob `id`, `size` bytes, into `out` when a pack stores it whole.
    pub(super) fn copy(
        &self,
        id: &gix::hash::oid,
        size: u64,
        out: &mut impl Write,
    ) -> Result<Copied, CopyError> {
        for (index, data) in &self.packs {
            let Some(position) = index.lookup(id) else {
                continue;
            };
            let offset = index.pack_offset_at_index(position);
            let entry = data
                .entry(offset)
                .map_err(|err| CopyError::Pack(format!("reading the pack entry of {id}: {err}")))?;
            if entry.header != pack::data::entry::Header::Blob {
                return Ok(Copied::NotStoredWhole);
            }
            if entry.decompressed_size != size {
                return Err(CopyError::Pack(format!(
                    "blob {id} is {} bytes in the pack, {size} expected",
                    entry.decompressed_size
                )));
            }
            let end = u64::try_from(data.pack_end()).expect("usize fits in u64");
            let compressed = data.entry_slice(entry.data_offset..end).ok_or_else(|| {
                CopyError::Pack(format!("the pack entry of {id} lies outside the pack"))
            })?;
            let mut inflated = flate2::read::ZlibDecoder::new(compressed).take(size);
            let mut buffer = vec![0; CHUNK];
            let mut written = 0u64;
            loop {
                let read = match inflated.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => {
                        return Err(CopyError::Pack(format!("inflating blob {id}: {err}")));
                    }
                };
                out.write_all(&buffer[..read]).map_err(CopyError::Write)?;
                written += read as u64;
            }
            if written != size {
                return Err(CopyError::Pack(format!(
                    "blob {id} ends after {written} of its {size} bytes"
                )));
            }
            return Ok(Copied::Streamed);
        }
        Ok(Copied::NotStoredWhole)
    }
}

/// Why a blob could not be copied out of the pack.
#[derive(Debug)]
pub(super) enum CopyError {
    /// The pack is damaged or says something else than its index.
    Pack(String),
    /// Writing the file failed.
    Write(io::Error),
}
