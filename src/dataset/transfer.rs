//! Copying and moving files without ever losing one: a move first makes the destination
//! (a hard link, or a full copy across file systems) and only then removes the source, and
//! an existing destination is never replaced unless asked. `shutil.move` does neither: on a
//! name clash it replaces the other file.

use std::path::Path;

use crate::atomic::{self, Existing};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Copy,
    Move,
}

/// Makes `dst` hold the content of `src`; `src` is untouched (a move finishes with
/// [`remove_source`] once every file of the item is in place).
pub fn place(src: &Path, dst: &Path, mode: Mode, existing: Existing) -> Result<()> {
    crate::paths::ensure_parent(dst)?;
    if mode == Mode::Move && existing == Existing::Keep {
        // A hard link is atomic and refuses an existing name, and costs no copy.
        match std::fs::hard_link(src, dst) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::Exists { path: dst.into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !src.exists() => return Err(Error::io(src, e)),
            // Another file system, or one without hard links: copy instead.
            Err(_) => {}
        }
    }
    let bytes = crate::input::read(src, u64::MAX)?;
    atomic::write(dst, &bytes, existing)
}

/// Removes a source whose copy is in place.
pub fn remove_source(src: &Path) -> Result<()> {
    std::fs::remove_file(src).map_err(|e| Error::io(src, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_replaces_and_keeps_the_source_until_told() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.jpg"), d.path().join("sub/b.jpg"));
        std::fs::write(&a, b"A").unwrap();
        place(&a, &b, Mode::Move, Existing::Keep).unwrap();
        assert_eq!((std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap()), (b"A".to_vec(), b"A".to_vec()));
        std::fs::write(d.path().join("c.jpg"), b"C").unwrap();
        for mode in [Mode::Move, Mode::Copy] {
            let e = place(&d.path().join("c.jpg"), &b, mode, Existing::Keep).unwrap_err();
            assert!(matches!(e, Error::Exists { .. }), "{e}");
            assert_eq!(std::fs::read(&b).unwrap(), b"A");
        }
        place(&d.path().join("c.jpg"), &b, Mode::Copy, Existing::Overwrite).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"C");
        remove_source(&a).unwrap();
        assert!(!a.exists());
    }
}
