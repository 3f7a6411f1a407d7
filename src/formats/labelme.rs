//! labelme JSON (5.x layout), read and written with the keys labelme itself uses.
//!
//! Unknown keys are kept on read and written back, as labelme does, so files from
//! X-AnyLabeling or newer labelme versions survive a round trip through qdet.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::postprocess::Detection;

/// The labelme version qdet writes; labelme 5.x opens it without conversion.
pub const LABELME_VERSION: &str = "5.5.0";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelmeFile {
    pub version: String,
    #[serde(default)]
    pub flags: Map<String, Value>,
    pub shapes: Vec<Shape>,
    pub image_path: String,
    #[serde(default)]
    pub image_data: Option<String>,
    pub image_height: u32,
    pub image_width: u32,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    pub label: String,
    pub points: Vec<[f64; 2]>,
    #[serde(default)]
    pub group_id: Option<i64>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "rectangle")]
    pub shape_type: String,
    #[serde(default)]
    pub flags: Map<String, Value>,
    #[serde(default)]
    pub mask: Option<Value>,
    /// Detection confidence, stored where X-AnyLabeling stores it; labelme keeps unknown keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn rectangle() -> String {
    "rectangle".into()
}

impl Shape {
    /// A rectangle shape for a detection; coordinates keep the float32 value's shortest
    /// decimal form so files stay readable.
    pub fn from_detection(d: &Detection, label: String) -> Shape {
        let [x1, y1, x2, y2] = d.bbox.map(short);
        Shape {
            label,
            points: vec![[x1, y1], [x2, y2]],
            group_id: None,
            description: String::new(),
            shape_type: rectangle(),
            flags: Map::new(),
            mask: None,
            score: Some(short(d.score)),
            extra: Map::new(),
        }
    }
}

/// `v` without the binary noise of the arithmetic that made it: a YOLO label read into
/// pixels comes out as 197.19367400000002 where the exact product of its decimal numbers
/// is 197.193674. The result is the f64 of the shortest decimal (at most 9 places) within
/// 1e-9 px of `v`, so labelme shows the number a person would write; 1e-9 px is far
/// below anything a label means and far above f64 noise on any image size.
pub fn tidy(v: f64) -> f64 {
    if !v.is_finite() || v.abs() >= 1e12 {
        return v;
    }
    for places in 0..=9 {
        let scale = 10f64.powi(places);
        // An integer over a power of ten below 10^22 is the f64 nearest that decimal.
        let r = (v * scale).round() / scale;
        if (r - v).abs() <= 1e-9 {
            return r;
        }
    }
    v
}

/// The f64 whose decimal form is the f32's shortest round-trip form (0.1f32 -> 0.1).
fn short(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

impl LabelmeFile {
    pub fn new(image_path: String, width: u32, height: u32, shapes: Vec<Shape>) -> LabelmeFile {
        LabelmeFile {
            version: LABELME_VERSION.into(),
            flags: Map::new(),
            shapes,
            image_path,
            image_data: None,
            image_height: height,
            image_width: width,
            extra: Map::new(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data to a Vec cannot fail.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// `target` relative to the directory `from_dir`, as labelme resolves `imagePath`
/// (`join(dirname(json), imagePath)`). Both must be absolute or both relative to the same place.
pub fn relative_path(target: &Path, from_dir: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().filter(|c| *c != Component::CurDir).collect();
    let f: Vec<Component> = from_dir.components().filter(|c| *c != Component::CurDir).collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_removes_float_noise_only() {
        // (0.308128 + 0.2 / 2) * 640 and (0.48 - 0.69 / 2) * 810, computed in f64.
        assert_eq!(tidy((0.308128 + 0.2 / 2.0) * 640.0).to_string(), "261.20192");
        assert_eq!(tidy((0.48 - 0.69 / 2.0) * 810.0).to_string(), "109.35");
        assert_eq!(tidy(0.1 * 3.0).to_string(), "0.3");
        // Real precision is kept: a thousandth of a pixel is not noise.
        assert_eq!(tidy(133.001).to_string(), "133.001");
        // What is not a short decimal is cut at 9 places, 3e-10 px away.
        assert_eq!(tidy(1.0 / 3.0).to_string(), "0.333333333");
        assert!(tidy(f64::NAN).is_nan());
    }

    #[test]
    fn writes_labelme_5_keys() {
        let d = Detection { bbox: [10.5, 20.25, 30.0, 40.125], score: 0.875, class: 0 };
        let f = LabelmeFile::new("a.jpg".into(), 640, 480, vec![Shape::from_detection(&d, "cat".into())]);
        let v: Value = serde_json::from_slice(&f.to_json()).unwrap();
        let want = serde_json::json!({
            "version": "5.5.0", "flags": {},
            "shapes": [{"label": "cat", "points": [[10.5, 20.25], [30.0, 40.125]], "group_id": null,
                        "description": "", "shape_type": "rectangle", "flags": {}, "mask": null, "score": 0.875}],
            "imagePath": "a.jpg", "imageData": null, "imageHeight": 480, "imageWidth": 640
        });
        assert_eq!(v, want);
    }

    #[test]
    fn reads_labelme_4_files_and_keeps_unknown_keys() {
        // Shape of labelme 4.0.0 output: no description, no mask; plus a foreign key.
        let text = r#"{"version": "4.0.0", "flags": {}, "shapes": [{"label": "person", "line_color": null,
            "points": [[1, 2], [3, 4]], "group_id": null, "shape_type": "rectangle", "flags": {}}],
            "imagePath": "x.jpg", "imageData": null, "imageHeight": 10, "imageWidth": 20, "lineColor": [0, 255, 0, 128]}"#;
        let f: LabelmeFile = serde_json::from_str(text).unwrap();
        assert_eq!(f.shapes[0].points, vec![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(f.shapes[0].description, "");
        assert!(f.shapes[0].extra.contains_key("line_color"));
        assert!(f.extra.contains_key("lineColor"));
        let back: Value = serde_json::from_slice(&f.to_json()).unwrap();
        assert_eq!(back["lineColor"], serde_json::json!([0, 255, 0, 128]));
    }

    #[test]
    fn relative_image_paths() {
        assert_eq!(relative_path(Path::new("/d/images/a.jpg"), Path::new("/d/images")), PathBuf::from("a.jpg"));
        assert_eq!(
            relative_path(Path::new("/d/images/sub/a.jpg"), Path::new("/d/runs/predict/sub")),
            PathBuf::from("../../../images/sub/a.jpg")
        );
    }
}
