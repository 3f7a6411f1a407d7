//! Path helpers shared by the commands that write files beside or below their inputs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Creates the folder a file goes into.
pub fn ensure_parent(p: &Path) -> Result<()> {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => std::fs::create_dir_all(d).map_err(|e| Error::io(d, e)),
        _ => Ok(()),
    }
}

/// An absolute form of `p` without touching the file system beyond the current directory
/// (no symlinks resolved: a labelme `imagePath` must stay relative to where the user put
/// the files, not to where links point).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
