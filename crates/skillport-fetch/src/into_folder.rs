// The `--into` folder: locked while we work, temporary folders inside it, skills moved into
// place by rename, and counting what a skill folder holds.
//
// Expected flow: `IntoFolder::open` creates and locks the folder and removes what a crashed run left
// (only names starting with `.skillport-`, which plans cannot use); each skill gets a staging
// folder `<into>/.skillport-staging-XXXX` (same file system, so renames work, and the only
// writable place in the pod); the skill is fetched into `<staging>/<target>`, checked, and
// `swap_in` swaps it with `<into>/<target>` in one `renameat2(RENAME_EXCHANGE)`, so readers
// see the old or the new folder, never none; the old one ends up in the staging folder, which
// is deleted.
//
// Caveats: where the file system lacks RENAME_EXCHANGE, the old folder is renamed away first,
// then the new one in: for a moment there is no folder. A run interrupted by a timeout may
// leave a staging folder behind while an unpack thread finishes; the next run removes it.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

/// Every temporary name we create in `--into` starts with this.
pub(crate) const TEMP_PREFIX: &str = ".skillport-";
const STAGING_PREFIX: &str = ".skillport-staging-";

/// The `--into` folder, locked against a second `skillport fetch` until dropped.
pub(crate) struct IntoFolder {
    path: PathBuf,
    _lock: File,
}

/// Why `--into` cannot be used.
#[derive(Debug)]
pub(crate) enum OpenError {
    Io(&'static str, io::Error),
    Busy,
}

impl IntoFolder {
    /// Creates (if needed) and locks `path`, waiting until `deadline` for another run to end,
    /// then removes what an earlier, interrupted run left.
    pub(crate) async fn open(path: &Path, deadline: Instant) -> Result<IntoFolder, OpenError> {
        fs::create_dir_all(path).map_err(|err| OpenError::Io("creating", err))?;
        // flock(2) on the folder itself: a lock file would be one more file in the folder.
        let lock = File::open(path).map_err(|err| OpenError::Io("opening", err))?;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(TryLockError::WouldBlock) => return Err(OpenError::Busy),
                Err(TryLockError::Error(err)) => return Err(OpenError::Io("locking", err)),
            }
        }
        let into = IntoFolder {
            path: path.to_path_buf(),
            _lock: lock,
        };
        into.remove_leftovers()
            .map_err(|err| OpenError::Io("cleaning up", err))?;
        Ok(into)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A new, empty staging folder inside `--into`; deleted when dropped.
    pub(crate) fn staging(&self) -> io::Result<TempDir> {
        tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(&self.path)
    }

    /// Removes every `.skillport-*` entry: only we make them, and only while holding the lock.
    pub(crate) fn remove_leftovers(&self) -> io::Result<()> {
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                continue;
            }
            let path = entry.path();
            tracing::debug!("removing leftover {}", path.display());
            let result = if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }

    /// Moves the finished folder `staged` (inside `staging`) to `<into>/<target>`, swapping
    /// out whatever is there; the old content lands in `staging`, deleted with it.
    pub(crate) fn swap_in(&self, staged: &Path, staging: &TempDir, target: &str) -> io::Result<()> {
        swap_folder(
            staged,
            &self.path.join(target),
            &staging.path().join(".old"),
        )
    }

    /// Removes `<into>/<name>` (a skill no longer planned) by moving it into a staging folder
    /// first, so that it disappears in one step.
    pub(crate) fn remove(&self, name: &str) -> io::Result<bool> {
        let path = self.path.join(name);
        if fs::symlink_metadata(&path).is_err() {
            return Ok(false);
        }
        let staging = self.staging()?;
        fs::rename(&path, staging.path().join("removed"))?;
        staging.close()?;
        Ok(true)
    }
}

/// Moves the folder `staged` to `dest`, swapping out whatever is there in one step
/// (`RENAME_EXCHANGE`): afterwards the old content is at `staged`'s path. Where the kernel or
/// file system cannot exchange, the old content is renamed to `aside` first, then the new
/// moved in. `staged`, `dest` and `aside` must be on one file system.
pub fn swap_folder(staged: &Path, dest: &Path, aside: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dest) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return fs::rename(staged, dest),
        Err(err) => return Err(err),
        Ok(_) => {}
    }
    match exchange(staged, dest) {
        Ok(()) => Ok(()),
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(code) if code == rustix::io::Errno::INVAL.raw_os_error()
                    || code == rustix::io::Errno::NOSYS.raw_os_error()
            ) =>
        {
            // No RENAME_EXCHANGE here: old away, new in.
            fs::rename(dest, aside)?;
            fs::rename(staged, dest)
        }
        Err(err) => Err(err),
    }
}

fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(io::Error::from)
}

/// Regular files under a folder and their bytes (links are not followed or counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tally {
    pub files: u64,
    pub bytes: u64,
}

pub(crate) fn tally(dir: &Path) -> io::Result<Tally> {
    let mut total = Tally::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                total.files += 1;
                total.bytes += entry.metadata()?.len();
            }
        }
    }
    Ok(total)
}
