//! YOLO txt labels: one `class cx cy w h [conf]` line per box, normalized to the image size.

mod read;
mod verify;

pub use read::{parse, read, Geometry, Label};
pub use verify::{parse_labels, GtLabel, Labels};

use crate::postprocess::Detection;
use crate::python::format_g;

/// The label file text for detections on an image of `width` x `height` pixels.
/// No detections gives an empty string (an empty file: a background image for training).
pub fn detections_to_txt(dets: &[Detection], width: u32, height: u32, with_conf: bool) -> String {
    let (w, h) = (width as f32, height as f32);
    let mut out = String::new();
    for d in dets {
        let [x1, y1, x2, y2] = d.bbox;
        let nums = [((x1 + x2) / 2.0) / w, ((y1 + y2) / 2.0) / h, (x2 - x1) / w, (y2 - y1) / h];
        out.push_str(&d.class.to_string());
        for n in nums {
            out.push(' ');
            out.push_str(&format_g(n as f64, 6));
        }
        if with_conf {
            out.push(' ');
            out.push_str(&format_g(d.score as f64, 6));
        }
        out.push('\n');
    }
    out
}

/// One `class cx cy w h` line for a pixel box on a `width` x `height` image, numbers as
/// Ultralytics writes them (`%g`).
pub fn box_line(class: usize, b: [f64; 4], width: u32, height: u32) -> String {
    let (w, h) = (width as f64, height as f64);
    let nums = [(b[0] + b[2]) / 2.0 / w, (b[1] + b[3]) / 2.0 / h, (b[2] - b[0]) / w, (b[3] - b[1]) / h];
    let mut s = class.to_string();
    for v in nums {
        s.push(' ');
        s.push_str(&format_g(v, 6));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_lines() {
        let d = Detection { bbox: [10.0, 20.0, 30.0, 60.0], score: 0.5, class: 3 };
        assert_eq!(detections_to_txt(&[d], 100, 200, false), "3 0.2 0.2 0.2 0.2\n");
        assert_eq!(detections_to_txt(&[d], 100, 200, true), "3 0.2 0.2 0.2 0.2 0.5\n");
        assert_eq!(detections_to_txt(&[], 100, 200, true), "");
    }
}
