//! The library's error type: every variant names the file it is about and why it failed.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OS error is part of the message, not a `source()`: printed with its chain
    /// (`{:#}`), it would otherwise appear twice.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: std::io::Error },

    #[error("{}: not an ONNX model ({reason})", path.display())]
    NotOnnx { path: PathBuf, reason: String },

    #[error("{}: not an Ultralytics YOLO detection model: {reason}", path.display())]
    NotDetect { path: PathBuf, reason: String },

    #[error("{}: unsupported model: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },

    #[error("{}: cannot read image: {reason}", path.display())]
    Image { path: PathBuf, reason: String },

    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },

    /// A file the call would write exists and was asked to be kept (the `qdet` command
    /// adds the flag that replaces it).
    #[error("{}: already exists", path.display())]
    Exists { path: PathBuf },

    #[error("inference failed: {0}")]
    Inference(String),

    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), cause: source }
    }

    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format { path: path.into(), reason: reason.into() }
    }

    /// The file the error is about, when it names one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Image { path, .. }
            | Error::Format { path, .. }
            | Error::Exists { path } => Some(path),
            _ => None,
        }
    }

    /// The reason without the path, for reports that print the path beside it.
    pub fn reason(&self) -> String {
        match self {
            Error::Io { cause, .. } => cause.to_string(),
            Error::Image { reason, .. } | Error::Format { reason, .. } => reason.clone(),
            Error::Exists { .. } => "already exists".into(),
            other => other.to_string(),
        }
    }
}

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
