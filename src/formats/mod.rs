//! Annotation file formats: labelme JSON, YOLO txt and Pascal VOC XML.

pub mod labelme;
pub mod shapes;
pub mod voc;
pub mod yolo;
