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
pub mod split;
pub mod transfer;
pub mod warp;

use std::path::PathBuf;

use serde::Serialize;

pub use crate::error::Problem;

/// What a dataset command did. `skipped` files were not converted, split or augmented at
/// all; `dropped` shapes were lost from files that were written (a shape the output format
/// cannot hold, a label that cannot be written, a box outside its image): both make the
/// exit status 2. `excluded` shapes were left out by a rule the user chose or the command
/// documents (labelme ignore regions, VOC difficult objects, `--skip-unknown`,
/// `--rectangles-only`, shapes an augmentation moved out of the frame): listed, not failures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatasetSummary {
    /// Annotation or image files read.
    pub read: usize,
    /// Files written, copied or moved.
    pub written: usize,
    pub skipped: Vec<Problem>,
    pub dropped: Vec<Problem>,
    pub excluded: Vec<Problem>,
    pub output_dir: PathBuf,
}

impl DatasetSummary {
    /// Whether anything was lost that the user did not ask to leave out.
    pub fn lost_any(&self) -> bool {
        !self.skipped.is_empty() || !self.dropped.is_empty()
    }

    pub fn sort(&mut self) {
        let key = |p: &Problem| (p.path.clone(), p.line);
        self.skipped.sort_by_key(key);
        self.dropped.sort_by_key(key);
        self.excluded.sort_by_key(key);
    }
}

use crate::progress::{Event, Progress};
