//! Reading a user's file within bounds: only a regular file (a FIFO would block the run, a
//! symlink to /dev/zero would never end), and never more bytes than the caller allows for
//! that kind of file, checked before anything is allocated. The file is opened without
//! blocking and checked on the open handle, so what is read is what was checked.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Label, annotation, class-list and dataset files: a few KB each in practice.
pub const TEXT_LIMIT: u64 = 64 << 20;
/// ONNX models: protobuf's own 2 GiB limit.
pub const MODEL_LIMIT: u64 = 2 << 30;

/// The bytes of `path`, if it is a regular file of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > limit {
        return Err(too_big(path, len, limit));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take`: a file that grows while it is read still stops at the limit.
    (&mut file).take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_big(path, bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|e| Error::format(path, format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to())))
}

/// Opens `path` for reading if it is a regular file (following symlinks); a FIFO, device,
/// socket or folder is refused by name.
pub fn open_regular(path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading waits for a writer; non-blocking returns at once (and
        // changes nothing for a regular file).
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let kind = file.metadata().map_err(|e| Error::io(path, e))?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(Error::format(path, format!("not a regular file ({})", kind_name(kind))))
}

fn kind_name(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

fn too_big(path: &Path, len: u64, limit: u64) -> Error {
    Error::format(path, format!("{len} bytes, more than the {limit}-byte limit for this kind of file"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_folders_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("labels.txt");
        let fifo_type = rustix::fs::FileType::Fifo;
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, fifo_type, rustix::fs::Mode::from(0o600), 0).unwrap();
        let err = read(&fifo, TEXT_LIMIT).unwrap_err().to_string();
        assert!(err.contains("labels.txt") && err.contains("not a regular file (a FIFO)"), "{err}");
        let zero = dir.path().join("zero.txt");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(read(&zero, TEXT_LIMIT).unwrap_err().to_string().contains("(a device)"));
        assert!(read(dir.path(), TEXT_LIMIT).unwrap_err().to_string().contains("(a folder)"));
    }

    #[test]
    fn files_over_the_limit_are_refused_and_others_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read(&p, 10).unwrap(), b"0123456789");
        let err = read(&p, 9).unwrap_err().to_string();
        assert!(err.contains("10 bytes, more than the 9-byte limit"), "{err}");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_text(&p, 10).unwrap_err().to_string().contains("not UTF-8"));
    }
}
