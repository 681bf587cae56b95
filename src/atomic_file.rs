//! Atomic file writes: a temporary file in the target's directory, synced, then renamed over
//! the target, so readers see the old file or the new one and never a part of either.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `bytes` to `path` atomically, creating the parent directory if needed. On failure
/// the file at `path` (if any) is untouched and no temporary file is left behind.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // Readable by everyone, like a file written with the usual umask: a container's non-root
    // user must be able to read a model that root trained (tempfile's default is 0600).
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
