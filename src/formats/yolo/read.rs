//! Reading YOLO txt labels, line by line, with errors that name the line.
//!
//! Accepted lines: `class cx cy w h` (Ultralytics detection), `class cx cy w h conf`
//! (`save_conf=True` predictions) and `class x1 y1 x2 y2 x3 y3 ...` (segmentation polygons,
//! more than 6 values, as Ultralytics tells them apart). Blank lines are ignored.

use std::path::Path;

use crate::error::{Error, Result};

/// Normalized coordinates may overshoot [0, 1] by rounding in the tool that wrote them.
const NORM_TOL: f64 = 1e-6;

#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    /// `[cx, cy, w, h]`, normalized.
    Box([f64; 4]),
    /// Polygon vertices, normalized.
    Polygon(Vec<[f64; 2]>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub class: usize,
    pub geometry: Geometry,
    pub conf: Option<f64>,
    /// 1-based line number.
    pub line: usize,
}

impl Label {
    /// The box in pixels, `[x1, y1, x2, y2]`, on a `width` x `height` image.
    pub fn pixel_box(&self, width: u32, height: u32) -> [f64; 4] {
        let (w, h) = (width as f64, height as f64);
        match &self.geometry {
            Geometry::Box([cx, cy, bw, bh]) => {
                [(cx - bw / 2.0) * w, (cy - bh / 2.0) * h, (cx + bw / 2.0) * w, (cy + bh / 2.0) * h]
            }
            Geometry::Polygon(pts) => {
                let b = crate::formats::shapes::bounds(pts.iter().copied()).unwrap_or([0.0; 4]);
                [b[0] * w, b[1] * h, b[2] * w, b[3] * h]
            }
        }
    }
}

/// Reads a label file.
pub fn read(path: &Path) -> Result<Vec<Label>> {
    let text = crate::input::read_text(path, crate::input::TEXT_LIMIT)?;
    parse(&text, path)
}

/// Parses label file text; `path` only names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Label>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let bad = |reason: String| Error::format(path, format!("line {n}: {reason}"));
        let class = parse_class(fields[0])
            .ok_or_else(|| bad(format!("class id {:?} is not a non-negative integer", fields[0])))?;
        let mut nums = Vec::with_capacity(fields.len() - 1);
        for f in &fields[1..] {
            match f.parse::<f64>() {
                Ok(v) if v.is_finite() => nums.push(v),
                _ => return Err(bad(format!("{f:?} is not a number"))),
            }
        }
        let (geometry, conf) = match nums.len() {
            4 | 5 => {
                let [cx, cy, w, h] = [nums[0], nums[1], nums[2], nums[3]];
                check_norm(&[cx, cy, w, h], &fields[1..]).map_err(bad)?;
                (Geometry::Box([cx, cy, w, h].map(clamp01)), nums.get(4).copied())
            }
            k if k >= 6 && k % 2 == 0 => {
                check_norm(&nums, &fields[1..]).map_err(bad)?;
                (Geometry::Polygon(nums.chunks(2).map(|c| [clamp01(c[0]), clamp01(c[1])]).collect()), None)
            }
            k => {
                return Err(bad(format!(
                    "{} values; expected `class cx cy w h`, `class cx cy w h conf` or `class x1 y1 x2 y2 x3 y3 ...`",
                    k + 1
                )))
            }
        };
        out.push(Label { class, geometry, conf, line: n });
    }
    Ok(out)
}

/// `3`, and also `3.0` (written by scripts that keep ids as floats).
fn parse_class(s: &str) -> Option<usize> {
    if let Ok(c) = s.parse::<usize>() {
        return Some(c);
    }
    let v: f64 = s.parse().ok()?;
    (v >= 0.0 && v.fract() == 0.0 && v < 1e9).then_some(v as usize)
}

/// `texts` are the values as the file writes them, quoted in the message (`1e308`, not the
/// 309 digits of its decimal expansion).
fn check_norm(vals: &[f64], texts: &[&str]) -> std::result::Result<(), String> {
    match vals.iter().position(|v| !(-NORM_TOL..=1.0 + NORM_TOL).contains(v)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{} is outside 0..1: YOLO coordinates are fractions of the image size, not pixels",
            texts.get(i).copied().unwrap_or("a value")
        )),
    }
}

fn clamp01(v: f64) -> f64 {
    v.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::yolo::box_line;

    #[test]
    fn boxes_confidences_and_polygons() {
        let text = "0 0.5 0.5 0.2 0.4\n\n  3 0.1 0.2 0.3 0.4 0.875  \n1.0 0 0 1 0 1 1\n";
        let l = parse(text, Path::new("a.txt")).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0], Label { class: 0, geometry: Geometry::Box([0.5, 0.5, 0.2, 0.4]), conf: None, line: 1 });
        assert_eq!((l[1].class, l[1].conf, l[1].line), (3, Some(0.875), 3));
        assert_eq!(l[2].geometry, Geometry::Polygon(vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]));
        // 0.5 +- 0.1 of 100 px, 0.5 +- 0.2 of 50 px.
        assert_eq!(l[0].pixel_box(100, 50), [40.0, 15.0, 60.0, 35.0]);
        assert_eq!(l[2].pixel_box(100, 50), [0.0, 0.0, 100.0, 50.0]);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, want) in [
            ("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2\n", "line 2: 4 values"),
            ("cat 0.5 0.5 0.2 0.2\n", "line 1: class id \"cat\""),
            ("\n\n0 0.5 nan 0.2 0.2\n", "line 3: \"nan\" is not a number"),
            ("0 250 100 20 20\n", "line 1: 250 is outside 0..1"),
            ("-1 0.5 0.5 0.2 0.2\n", "line 1: class id \"-1\""),
            ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n", "line 1: 8 values"),
        ] {
            let e = parse(text, Path::new("labels/x.txt")).unwrap_err().to_string();
            assert!(e.starts_with("labels/x.txt: ") && e.contains(want), "{e} (want {want})");
        }
    }

    #[test]
    fn lines_are_percent_g() {
        // A 20x40 px box centred at (50, 25) on 200 x 100.
        assert_eq!(box_line(2, [40.0, 5.0, 60.0, 45.0], 200, 100), "2 0.25 0.25 0.1 0.4\n");
        assert_eq!(box_line(0, [0.0, 0.0, 1.0, 3.0], 3, 3), "0 0.166667 0.5 0.333333 1\n");
    }
}
