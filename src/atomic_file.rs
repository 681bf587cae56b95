//! Atomic file writes: a temporary file in the target's directory, synced, then renamed over
//! the target, so readers see the old file or the new one and never a part of either. Only a
//! regular file (or nothing) is ever replaced; temporaries carry a fixed prefix so a killed
//! run's leftovers are recognisable, and old ones are removed.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Every temporary file starts with this, followed by the target's file name and a random part.
pub const TEMP_PREFIX: &str = ".ml-serving-tmp-";

/// A leftover temporary for the same target untouched for this long belongs to a run that was
/// killed (a live run writes to its temporary far more often), and is removed.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A file being written: a temporary beside the target until [`AtomicFile::commit`] renames it
/// over the target. Dropped without a commit, the temporary is deleted.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Creates the temporary for `path` (and the parent directory if needed). Fails, creating
    /// nothing, when `path` exists and is not a regular file.
    pub fn create(path: &Path) -> io::Result<Self> {
        check_replaceable(path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!("{TEMP_PREFIX}{name}-");
        remove_stale(dir, &prefix);
        let tmp = tempfile::Builder::new().prefix(&prefix).tempfile_in(dir)?;
        // Readable by everyone, like a file written with the usual umask: a container's non-root
        // user must be able to read a model that root trained (tempfile's default is 0600).
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        Ok(Self {
            target: path.to_path_buf(),
            tmp,
        })
    }

    /// The temporary file, to write to.
    pub fn file(&self) -> &File {
        self.tmp.as_file()
    }

    /// Syncs the temporary and renames it over the target, checking again that the target is
    /// still replaceable. On failure the temporary is deleted and the target is untouched.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        check_replaceable(&self.target)?;
        self.tmp.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically, creating the parent directory if needed. On failure
/// the file at `path` (if any) is untouched and no temporary file is left behind.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file = AtomicFile::create(path)?;
    file.file().write_all(bytes)?;
    file.commit()
}

/// `Ok` when `path` does not exist or is a regular file; a clear error for a symbolic link, a
/// directory, a device (such as /dev/full), a FIFO or a socket, none of which a rename should
/// replace.
pub fn check_replaceable(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "a symbolic link (give the path it points to, if that file is meant)"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} exists and is {what}; refusing to replace it (only a regular file is replaced)",
            path.display()
        ),
    ))
}

/// Removes this target's temporaries that nothing has written to for [`STALE_AFTER`]: the
/// leftovers of a killed run. Best effort; a temporary still being written is never that old.
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= STALE_AFTER);
        if meta.file_type().is_file() && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
