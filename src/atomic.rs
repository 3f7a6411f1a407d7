//! Writing output files so that a crash or a full disk never leaves a half-written
//! annotation behind, and an existing file is never replaced unless the caller says so.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Whether an existing destination may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Keep,
    Overwrite,
}

/// Writes `bytes` to `dest` through a temporary file in the same directory and a rename.
/// With `Existing::Keep` an existing `dest` is an `Error::Exists` and is left untouched;
/// the no-clobber check is a hard link, which fails atomically if `dest` appeared meanwhile.
pub fn write(dest: &Path, bytes: &[u8], existing: Existing) -> Result<()> {
    let (tmp, mut f) = temp_for(dest, existing)?;
    let result = f.write_all(bytes).and_then(|()| f.sync_data());
    drop(f);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(dest, e));
    }
    publish(&tmp, dest, existing)
}

/// A new empty temporary file beside `dest`, for a writer that is not this process (an
/// `ffmpeg` child) to fill before [`publish`] moves it into place.
pub fn reserve(dest: &Path, existing: Existing) -> Result<PathBuf> {
    temp_for(dest, existing).map(|(tmp, _)| tmp)
}

/// The temporary file for `dest`, after refusing an existing `dest` that is to be kept
/// (checked again when publishing; said now so that no work is done for nothing).
fn temp_for(dest: &Path, existing: Existing) -> Result<(PathBuf, std::fs::File)> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if existing == Existing::Keep && dest.exists() {
        return Err(Error::Exists { path: dest.into() });
    }
    create_temp(&dir, dest).map_err(|e| Error::io(dest, e))
}

/// Moves the finished temporary file `tmp` to `dest` (see [`write`] for `existing`); the
/// temporary file is removed when that fails.
pub fn publish(tmp: &Path, dest: &Path, existing: Existing) -> Result<()> {
    let moved = match existing {
        Existing::Overwrite => std::fs::rename(tmp, dest),
        Existing::Keep => match std::fs::hard_link(tmp, dest) {
            Ok(()) => std::fs::remove_file(tmp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(tmp);
                return Err(Error::Exists { path: dest.into() });
            }
            // File systems without hard links: the exists() check above has to do.
            Err(_) => std::fs::rename(tmp, dest),
        },
    };
    moved.map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        Error::io(dest, e)
    })
}

/// A new temporary file beside `dest`. `create_new` is `O_CREAT | O_EXCL`: it never opens a
/// file or follows a symlink already at that name (one planted there would otherwise redirect
/// the write outside the folder); a taken name is skipped for the next.
fn create_temp(dir: &Path, dest: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut last = None;
    for _ in 0..16 {
        let tmp = temp_path(dir, dest);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Removes the temporary files under `dir` that a killed qdet left (`kill -9` mid-write leaves
/// its `.name.qdet-PID-N.tmp`): those of processes no longer running. Symlinks are not
/// followed, and a symlink with such a name is removed as a link. Returns how many went.
pub fn remove_stale_temps(dir: &Path) -> usize {
    if !cfg!(target_os = "linux") || !dir.is_dir() {
        return 0;
    }
    let mut removed = 0;
    for entry in walkdir::WalkDir::new(dir).follow_links(false).into_iter().flatten() {
        let name = entry.file_name().to_string_lossy();
        let Some(pid) = stale_pid(&name) else { continue };
        if pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists()
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The writer's PID in a temporary name `.name.qdet-PID-N.tmp`.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, tail) = rest.rsplit_once(".qdet-")?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn temp_path(dir: &Path, dest: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.qdet-{}-{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn temporaries_of_dead_writers_are_removed_and_others_kept() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        // PIDs above the kernel's pid_max (4194304 at most) never run.
        let dead = d.path().join("sub/.a.json.qdet-4999999-3.tmp");
        let mine = d.path().join(format!(".b.json.qdet-{}-0.tmp", std::process::id()));
        let other = d.path().join(".c.json.tmp");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"half").unwrap();
        }
        assert_eq!(remove_stale_temps(d.path()), 1);
        assert!(!dead.exists() && mine.exists() && other.exists());
    }

    /// A symlink planted at the temporary name (they are predictable) must not redirect the
    /// write: the file it points to, outside the folder, stays as it was.
    #[cfg(unix)]
    #[test]
    fn planted_symlinks_at_temporary_names_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        let out = d.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let dest = out.join("a.json");
        // The next names this process will try (other tests may take some of them).
        let next = temp_path(&out, &dest);
        let n: u64 = next.to_string_lossy().rsplit('-').next().unwrap().trim_end_matches(".tmp").parse().unwrap();
        for k in n + 1..n + 5 {
            let name = out.join(format!(".a.json.qdet-{}-{k}.tmp", std::process::id()));
            std::os::unix::fs::symlink(&victim, name).unwrap();
        }
        write(&dest, b"new", Existing::Keep).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
    }

    #[test]
    fn keeps_existing_files_and_leaves_no_temp_behind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write(&p, b"one", Existing::Keep).unwrap();
        let e = write(&p, b"two", Existing::Keep).unwrap_err();
        assert!(matches!(e, Error::Exists { .. }), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write(&p, b"three", Existing::Overwrite).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn unwritable_destination_names_the_file() {
        let e = write(Path::new("/nonexistent-dir/x.txt"), b"x", Existing::Keep).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x.txt"), "{e}");
    }
}
