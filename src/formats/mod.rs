//! Annotation file formats: labelme JSON and YOLO txt.

pub mod labelme;
pub mod voc;
pub mod yolo;
