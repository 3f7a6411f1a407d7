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
    let rows = parse_rows(text, path)?;
    for r in &rows {
        check_row(r, nc).map_err(|reason| Problem::at_line(path, r.line, reason))?;
    }
    let (order, duplicates) = unique(&rows);
    let boxes = order.iter().map(|&i| GtLabel { class: rows[i].cls as usize, xywh: rows[i].xywh }).collect();
    Ok(Labels { boxes, duplicates })
}

/// The rows of the file, numbers as numpy reads them; polygon rows as their bounding boxes.
fn parse_rows(text: &str, path: &Path) -> std::result::Result<Vec<Row>, Problem> {
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
        let xywh = if polygons { polygon_box(f.len(), &vals) } else { box_row(f.len(), &vals) };
        let xywh = xywh.map_err(|reason| at(line, reason))?;
        rows.push(Row { cls, cls_text: f[0].to_string(), xywh, line, key: vals });
    }
    Ok(rows)
}

/// segments2boxes: a polygon row's bounding box, then xyxy2xywh, in float32.
fn polygon_box(fields: usize, vals: &[f32]) -> std::result::Result<[f32; 4], String> {
    if fields == 5 {
        return Err("a box row in a file of polygon rows (Ultralytics rejects the mix)".into());
    }
    if vals.is_empty() || !vals.len().is_multiple_of(2) {
        return Err(format!("{} coordinates; a polygon row is `class x1 y1 x2 y2 ...` (pairs)", vals.len()));
    }
    let (mut x1, mut y1, mut x2, mut y2) = (f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY);
    for p in vals.chunks(2) {
        (x1, x2) = (x1.min(p[0]), x2.max(p[0]));
        (y1, y2) = (y1.min(p[1]), y2.max(p[1]));
    }
    Ok([(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1])
}

fn box_row(fields: usize, vals: &[f32]) -> std::result::Result<[f32; 4], String> {
    if fields != 5 {
        return Err(format!("{fields} values; a label row is `class x_center y_center width height`"));
    }
    Ok([vals[0], vals[1], vals[2], vals[3]])
}

/// The asserts of verify_image_label, for one row.
fn check_row(r: &Row, nc: usize) -> std::result::Result<(), String> {
    if let Some(v) = r.xywh.iter().find(|&&v| v > COORD_MAX) {
        return Err(format!("coordinate {v} is above 1.01: YOLO labels are fractions of the image size"));
    }
    if let Some(v) = std::iter::once(&r.cls).chain(&r.xywh).find(|&&v| v < NEG_TOL) {
        return Err(format!("negative value {v}"));
    }
    if r.xywh[2] < 0.0 || r.xywh[3] < 0.0 {
        return Err(format!("negative width or height ({} x {})", r.xywh[2], r.xywh[3]));
    }
    if r.cls.fract() != 0.0 {
        return Err(format!("class {} is not a whole number", r.cls_text));
    }
    if f64::from(r.cls) >= nc as f64 {
        return Err(format!(
            "class {} is not one of the dataset's {nc} classes (0-{})",
            r.cls_text,
            nc.saturating_sub(1)
        ));
    }
    Ok(())
}

/// np.unique(lb, axis=0): exact duplicate rows go, and the survivors come out sorted (in
/// file order when nothing was dropped). Returns the rows kept and how many went.
fn unique(rows: &[Row]) -> (Vec<usize>, usize) {
    let n = rows.len();
    let mut order: Vec<usize> = (0..n).collect();
    let keys: Vec<Vec<f32>> =
        rows.iter().map(|r| std::iter::once(r.cls).chain(r.key.iter().copied()).collect()).collect();
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
    (order, duplicates)
}
