//! YOLO label files as `verify_image_label` reads them: which rows make an image "corrupt",
//! duplicate rows dropped, polygons turned into their bounding boxes.

use std::path::Path;

use crate::error::Problem;

/// `verify_image_label`'s tolerance on normalized coordinates.
const COORD_MAX: f32 = 1.01;
const NEG_TOL: f32 = -0.01;

/// One ground-truth box as Ultralytics keeps it: class and normalized float32 `cx, cy, w, h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GtLabel {
    pub class: usize,
    pub xywh: [f32; 4],
}

/// A label file's boxes, and how many exact duplicate rows were dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Labels {
    pub boxes: Vec<GtLabel>,
    pub duplicates: usize,
}

/// One parsed row: class (float, as numpy holds it), box, line number, and for polygon rows
/// the points (duplicates are judged on those).
struct Row {
    cls: f32,
    /// The class as the file writes it, for messages (`1e20` is not 18446744073709551615).
    cls_text: String,
    xywh: [f32; 4],
    line: usize,
    key: Vec<f32>,
}

/// Parses a YOLO label file with `verify_image_label`'s rules; an error names the first
/// offending line. `nc` is the dataset's class count.
pub fn parse_labels(text: &str, path: &Path, nc: usize) -> std::result::Result<Labels, Problem> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<(usize, Vec<&str>)> = crate::python::split_lines(text)
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split_whitespace().collect::<Vec<_>>()))
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let at = |line: usize, reason: String| Problem::at_line(path, line, reason);
    let number = |line: usize, s: &str| -> std::result::Result<f32, Problem> {
        // numpy parses to double, then stores float32.
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v.abs() <= f64::from(f32::MAX) => Ok(v as f32),
            Ok(v) if v.is_finite() => Err(at(line, format!("{s:?} is out of range for a label value"))),
            _ => Err(at(line, format!("{s:?} is not a finite number"))),
        }
    };
    // More than 6 values on any line: the file holds polygons (segments).
    let polygons = lines.iter().any(|(_, f)| f.len() > 6);
    let mut rows = Vec::with_capacity(lines.len());
    for (line, f) in &lines {
        let line = *line;
        let cls = number(line, f[0])?;
        let vals = f[1..].iter().map(|s| number(line, s)).collect::<std::result::Result<Vec<f32>, Problem>>()?;
        let (xywh, key) = if polygons {
            if f.len() == 5 {
                return Err(at(line, "a box row in a file of polygon rows (Ultralytics rejects the mix)".into()));
            }
            if vals.is_empty() || vals.len() % 2 != 0 {
                return Err(at(
                    line,
                    format!("{} coordinates; a polygon row is `class x1 y1 x2 y2 ...` (pairs)", vals.len()),
                ));
            }
            // segments2boxes: the polygon's bounding box, then xyxy2xywh, in float32.
            let (mut x1, mut y1, mut x2, mut y2) = (f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY);
            for p in vals.chunks(2) {
                (x1, x2) = (x1.min(p[0]), x2.max(p[0]));
                (y1, y2) = (y1.min(p[1]), y2.max(p[1]));
            }
            ([(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1], vals.clone())
        } else {
            if f.len() != 5 {
                return Err(at(
                    line,
                    format!("{} values; a label row is `class x_center y_center width height`", f.len()),
                ));
            }
            ([vals[0], vals[1], vals[2], vals[3]], vals.clone())
        };
        rows.push(Row { cls, cls_text: f[0].to_string(), xywh, line, key });
    }
    for r in &rows {
        // The asserts of verify_image_label, row by row.
        if let Some(v) = r.xywh.iter().find(|&&v| v > COORD_MAX) {
            return Err(at(
                r.line,
                format!("coordinate {v} is above 1.01: YOLO labels are fractions of the image size"),
            ));
        }
        if let Some(v) = std::iter::once(&r.cls).chain(&r.xywh).find(|&&v| v < NEG_TOL) {
            return Err(at(r.line, format!("negative value {v}")));
        }
        if r.xywh[2] < 0.0 || r.xywh[3] < 0.0 {
            return Err(at(r.line, format!("negative width or height ({} x {})", r.xywh[2], r.xywh[3])));
        }
        if r.cls.fract() != 0.0 {
            return Err(at(r.line, format!("class {} is not a whole number", r.cls_text)));
        }
        if f64::from(r.cls) >= nc as f64 {
            return Err(at(
                r.line,
                format!("class {} is not one of the dataset's {nc} classes (0-{})", r.cls_text, nc.saturating_sub(1)),
            ));
        }
    }
    // np.unique(lb, axis=0): exact duplicate rows go, and the survivors come out sorted.
    let n = rows.len();
    let mut order: Vec<usize> = (0..n).collect();
    let row_key = |r: &Row| -> Vec<f32> { std::iter::once(r.cls).chain(r.key.iter().copied()).collect() };
    let keys: Vec<Vec<f32>> = rows.iter().map(row_key).collect();
    // Values are finite, so partial_cmp is total here; -0.0 == 0.0 as in numpy.
    let cmp = |a: &Vec<f32>, b: &Vec<f32>| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal))
            .find(|o| o.is_ne())
            .unwrap_or(a.len().cmp(&b.len()))
    };
    order.sort_by(|&a, &b| cmp(&keys[a], &keys[b]).then(a.cmp(&b)));
    order.dedup_by(|b, a| keys[*a] == keys[*b]);
    let duplicates = n - order.len();
    if duplicates == 0 {
        order = (0..n).collect();
    }
    let boxes = order.iter().map(|&i| GtLabel { class: rows[i].cls as usize, xywh: rows[i].xywh }).collect();
    Ok(Labels { boxes, duplicates })
}
