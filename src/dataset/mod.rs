//! Dataset chores around training: [`convert`] annotations between labelme, YOLO txt and
//! Pascal VOC, [`split`] image+label pairs into the Ultralytics layout, and [`augment`]
//! labelme-annotated images with their boxes.
//!
//! All three read and check everything first, then write. A file that cannot be used is
//! reported with its path (and line) and skipped while the rest goes on; every output is
//! written atomically and nothing existing is replaced unless the caller says so.

pub mod augment;
pub mod classes;
pub mod convert;
pub mod files;
pub mod geometry;
pub mod photometric;
pub mod rng;
pub mod shapes;
pub mod split;
pub mod transfer;
pub mod warp;
pub mod yolo_txt;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// Something that went wrong with one file or one shape, with where and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based line in `path`, where the format has lines and the problem has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub reason: String,
}

impl Problem {
    pub fn new(path: impl Into<PathBuf>, reason: impl Into<String>) -> Problem {
        Problem { path: path.into(), line: None, reason: reason.into() }
    }

    pub fn at_line(path: impl Into<PathBuf>, line: usize, reason: impl Into<String>) -> Problem {
        Problem { path: path.into(), line: Some(line), reason: reason.into() }
    }

    /// A library error about one file, without repeating the path it already names.
    pub fn from_error(path: &Path, e: &Error) -> Problem {
        Problem::new(e.path().unwrap_or(path), e.reason())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// What a dataset command did. `skipped` files were not converted, split or augmented at
/// all (the exit status says so); `dropped` shapes were left out of files that were written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Annotation or image files read.
    pub read: usize,
    /// Files written, copied or moved.
    pub written: usize,
    pub skipped: Vec<Problem>,
    pub dropped: Vec<Problem>,
    pub output_dir: PathBuf,
}

impl Summary {
    pub fn sort(&mut self) {
        let key = |p: &Problem| (p.path.clone(), p.line);
        self.skipped.sort_by_key(key);
        self.dropped.sort_by_key(key);
    }
}

/// What a command tells its caller as it goes, for a progress bar and live messages.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// This many items are to be done.
    Start(usize),
    /// One item is finished, with the problem if it was skipped.
    Done(Option<&'a Problem>),
}

pub type Progress<'a> = &'a (dyn Fn(Event) + Sync);

/// Creates the folder a file goes into.
pub(crate) fn ensure_parent(p: &Path) -> Result<()> {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => std::fs::create_dir_all(d).map_err(|e| Error::io(d, e)),
        _ => Ok(()),
    }
}

/// An absolute form of `p` without touching the file system beyond the current directory.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
