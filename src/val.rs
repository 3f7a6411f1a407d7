//! `qdet val`: a model's accuracy on a labelled split of an Ultralytics dataset, computed
//! the way `yolo val` computes it (ultralytics 8.4), so the numbers can be compared.
//!
//! What has to match Ultralytics, and where it comes from:
//! * the dataset: `check_det_dataset` (yaml keys, `path`, `../` fallback),
//!   `BaseDataset.get_img_files` (folders walked for `*.*`, `.txt` lists with `./`
//!   entries relative to the list, sorted paths), `img2label_paths` (last `/images/` ->
//!   `/labels/`, extension -> `.txt`) and `verify_image_label` (which label files make an
//!   image "corrupt", duplicate rows dropped, polygons turned into their bounding boxes);
//! * the model input: val does *not* use predict's letterbox. `BaseDataset.load_image`
//!   first resizes the long side to `imgsz` with the other side rounded **up**
//!   (`math.ceil`), then `LetterBox(imgsz, scaleup=False)` only pads. Static exports get the
//!   square input (`rect=False`); dynamic ones get Ultralytics' rectangular val shapes
//!   (`batch=1`, `pad=0.5`);
//! * matching happens in model-input pixels: labels are carried through the letterbox in
//!   float32 as `LetterBox`/`Format`/`_prepare_batch` do, predictions are NMS output
//!   before `scale_boxes` (not clipped);
//! * NMS is multi-label ([`crate::postprocess::decode_multi_label`]) with conf 0.001,
//!   IoU 0.7, max_det 300 (raised to the largest label count of an image, as
//!   `_check_max_det` does when max_det is left at its default);
//! * the metrics are [`crate::metrics`].
//!
//! Where qdet deliberately differs: a relative `path:` is looked up beside the yaml first
//! and only then in the current folder (Ultralytics looks only in the current folder, then
//! in its settings' `datasets_dir`), and so are relative entries of `.txt` image lists.
//! A label file Ultralytics would reject makes qdet skip the image too, but qdet says which
//! line is wrong and exits with status 2.

use std::path::{Path, PathBuf, MAIN_SEPARATOR};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use yaml_rust2::{Yaml, YamlLoader};

use crate::dataset::Problem;
use crate::error::{Error, Result};
use crate::image_io::{read_rgb, RgbImage};
use crate::letterbox::Letterbox;
use crate::metrics::{match_boxes, ClassMetrics, Correct, DetStats};
use crate::model::{Model, RawOutput};
use crate::postprocess::{decode_multi_label, NmsOptions};
use crate::resize::resize_linear_u8c3;

/// Ultralytics' `IMG_FORMATS`: these are listed as images (the ones qdet cannot decode are
/// then reported, rather than silently left out of the score).
pub const IMG_FORMATS: &[&str] =
    &["avif", "bmp", "dng", "heic", "heif", "jp2", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp"];

/// Ultralytics' default `max_det`.
pub const DEFAULT_MAX_DET: usize = 300;
/// Ultralytics' val confidence threshold (`conf=None` -> 0.001 for detection).
pub const DEFAULT_CONF: f32 = 0.001;
pub const DEFAULT_IOU: f32 = 0.7;
/// `check_image` rejects images smaller than this in either dimension.
const MIN_IMAGE_SIDE: usize = 10;
/// Rectangular val batches pad by half a stride (`build_yolo_dataset`, mode="val").
const RECT_PAD: f64 = 0.5;
/// `verify_image_label`'s tolerance on normalized coordinates.
const COORD_MAX: f32 = 1.01;
const NEG_TOL: f32 = -0.01;

/// A dataset yaml read for one split.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    pub yaml: PathBuf,
    /// The dataset root the split paths were resolved against.
    pub root: PathBuf,
    /// Class names by id (`names`, or `class_0`... when only `nc` is given).
    pub names: Vec<String>,
    pub split: String,
    /// The split's folders and/or `.txt` image lists, resolved.
    pub sources: Vec<PathBuf>,
}

/// Reads an Ultralytics dataset yaml and resolves `split` (`val`, `test`, `train`, ...).
pub fn load_data(yaml: &Path, split: &str) -> Result<DataConfig> {
    let text = std::fs::read_to_string(yaml).map_err(|e| Error::io(yaml, e))?;
    let bad = |reason: String| Error::format(yaml, reason);
    let docs = YamlLoader::load_from_str(&text).map_err(|e| bad(format!("invalid YAML: {e}")))?;
    let doc = docs.first().filter(|d| matches!(d, Yaml::Hash(_))).ok_or_else(|| bad("not a YAML mapping".into()))?;

    let nc = match &doc["nc"] {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::Integer(n) if *n >= 0 => Some(*n as usize),
        Yaml::Real(r) => r.parse::<f64>().ok().filter(|v| v.fract() == 0.0 && *v >= 0.0).map(|v| v as usize),
        Yaml::String(s) => s.trim().parse::<usize>().ok(),
        _ => None,
    };
    if !matches!(&doc["nc"], Yaml::BadValue) && nc.is_none() {
        return Err(bad("'nc' must be a whole number".into()));
    }
    let names = match &doc["names"] {
        Yaml::BadValue | Yaml::Null => match nc {
            Some(n) => (0..n).map(|i| format!("class_{i}")).collect(),
            None => return Err(bad("either 'names' or 'nc' is required".into())),
        },
        _ => crate::meta::names_from_yaml(&text).map_err(bad)?,
    };
    if let Some(n) = nc.filter(|&n| n != names.len()) {
        return Err(bad(format!("'names' has {} entries but 'nc' is {n}", names.len())));
    }

    // Ultralytics renames `validation:` to `val:`.
    let mut entry = &doc[split];
    if matches!(entry, Yaml::BadValue) && split == "val" {
        entry = &doc["validation"];
    }
    let entries: Vec<String> = match entry {
        Yaml::String(s) if !s.is_empty() => vec![s.clone()],
        Yaml::Array(items) if !items.is_empty() => items
            .iter()
            .map(|y| y.as_str().map(str::to_string).ok_or_else(|| bad(format!("'{split}' entries must be paths"))))
            .collect::<Result<_>>()?,
        Yaml::BadValue | Yaml::Null => return Err(bad(format!("no '{split}:' images in this dataset"))),
        _ => return Err(bad(format!("'{split}' must be a path or a list of paths"))),
    };

    let root = dataset_root(yaml, doc["path"].as_str())?;
    let sources = entries
        .iter()
        .map(|e| {
            let mut p = root.join(e);
            // check_det_dataset: a missing "../x" is retried as "x" under the root.
            if !p.exists() {
                if let Some(rest) = e.strip_prefix("../") {
                    p = root.join(rest);
                }
            }
            if !p.exists() {
                return Err(bad(format!("'{split}' path {} does not exist", root.join(e).display())));
            }
            // Path.resolve(), as Ultralytics: labels are then looked up beside the real folder.
            std::fs::canonicalize(&p).map_err(|err| Error::io(&p, err))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DataConfig { yaml: yaml.to_path_buf(), root, names, split: split.to_string(), sources })
}

/// The dataset root: `path:` (beside the yaml, else from the current folder as Ultralytics
/// reads it), or the yaml's folder when `path:` is absent or empty.
fn dataset_root(yaml: &Path, path: Option<&str>) -> Result<PathBuf> {
    let yaml_dir = match yaml.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(p) = path.filter(|p| !p.is_empty()) else {
        return Ok(yaml_dir);
    };
    let p = Path::new(p);
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    // components() drops the "." of `path: .`, so the root prints as the yaml's folder.
    let beside: PathBuf = yaml_dir.join(p).components().collect();
    if beside.exists() {
        Ok(beside)
    } else if p.exists() {
        Ok(p.to_path_buf())
    } else {
        Err(Error::format(
            yaml,
            format!(
                "dataset path {:?} exists neither beside the yaml ({}) nor in the current folder",
                p,
                beside.display()
            ),
        ))
    }
}

fn has_image_ext(s: &str) -> bool {
    // `x.rpartition(".")[-1].lower() in IMG_FORMATS`, on the whole path string.
    let ext = s.rsplit('.').next().unwrap_or("");
    s.contains('.') && IMG_FORMATS.contains(&ext.to_ascii_lowercase().as_str())
}

/// The split's images as `get_img_files` lists them: folders walked recursively (hidden
/// names skipped, as Python's glob does), `.txt` lists read line by line, then sorted.
pub fn list_images(sources: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = Vec::new();
    for src in sources {
        if src.is_dir() {
            let walker = walkdir::WalkDir::new(src)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
            for entry in walker {
                let entry = entry.map_err(|e| Error::format(e.path().unwrap_or(src).to_path_buf(), e.to_string()))?;
                if entry.file_type().is_file() && has_image_ext(&entry.file_name().to_string_lossy()) {
                    found.push(entry.path().to_path_buf());
                }
            }
        } else if src.is_file() {
            let text = std::fs::read_to_string(src).map_err(|e| Error::io(src, e))?;
            let parent = src.parent().unwrap_or(Path::new(""));
            for line in split_lines(text.trim_start_matches('\u{feff}').trim()) {
                let p = if let Some(rest) = line.strip_prefix("./") {
                    parent.join(rest)
                } else if Path::new(line).is_relative() && parent.join(line).exists() {
                    parent.join(line)
                } else {
                    PathBuf::from(line)
                };
                if has_image_ext(line) {
                    found.push(p);
                }
            }
        } else {
            return Err(Error::io(src, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")));
        }
    }
    // Python sorts the path strings.
    found.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
    Ok(found)
}

/// Python's `str.splitlines()` line boundaries.
fn split_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest
            .find(['\n', '\r', '\u{0b}', '\u{0c}', '\u{1c}', '\u{1d}', '\u{1e}', '\u{85}', '\u{2028}', '\u{2029}'])
        {
            Some(i) => {
                out.push(&rest[..i]);
                let c = rest[i..].chars().next().unwrap_or('\n');
                let mut skip = c.len_utf8();
                if c == '\r' && rest[i + 1..].starts_with('\n') {
                    skip += 1;
                }
                rest = &rest[i + skip..];
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

/// `img2label_paths`: the last `/images/` becomes `/labels/`, the extension `.txt`.
pub fn label_path(image: &Path) -> PathBuf {
    let s = image.to_string_lossy();
    let (sa, sb) =
        (format!("{MAIN_SEPARATOR}images{MAIN_SEPARATOR}"), format!("{MAIN_SEPARATOR}labels{MAIN_SEPARATOR}"));
    let swapped = match s.rfind(&sa) {
        Some(i) => format!("{}{}{}", &s[..i], sb, &s[i + sa.len()..]),
        None => s.into_owned(),
    };
    let stem = match swapped.rfind('.') {
        Some(i) => &swapped[..i],
        None => &swapped,
    };
    PathBuf::from(format!("{stem}.txt"))
}

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
    xywh: [f32; 4],
    line: usize,
    key: Vec<f32>,
}

/// Parses a YOLO label file with `verify_image_label`'s rules; an error names the first
/// offending line. `nc` is the dataset's class count.
pub fn parse_labels(text: &str, path: &Path, nc: usize) -> std::result::Result<Labels, Problem> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<(usize, Vec<&str>)> = split_lines(text)
        .into_iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split_whitespace().collect::<Vec<_>>()))
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let at = |line: usize, reason: String| Problem::at_line(path, line, reason);
    let number = |line: usize, s: &str| -> std::result::Result<f32, Problem> {
        // numpy parses to double, then stores float32.
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v as f32),
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
        rows.push(Row { cls, xywh, line, key });
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
            return Err(at(r.line, format!("class {} is not a whole number", r.cls)));
        }
        if r.cls as usize >= nc {
            return Err(at(
                r.line,
                format!(
                    "class {} is not one of the dataset's {nc} classes (0-{})",
                    r.cls as usize,
                    nc.saturating_sub(1)
                ),
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

/// Where Ultralytics' val dataloader puts an image inside the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValGeometry {
    /// Source `(height, width)` after EXIF orientation.
    pub src: (usize, usize),
    /// After `load_image`: the long side at `imgsz`, the other rounded up.
    pub loaded: (usize, usize),
    /// `LetterBox(new_shape, scaleup=False)` applied to the loaded image (`src` = `loaded`).
    pub letterbox: Letterbox,
    /// LetterBox's scale (at most 1).
    pub ratio: f64,
}

impl ValGeometry {
    /// `load_image(rect_mode=True)` to `imgsz`, then `LetterBox(input, scaleup=False)`.
    pub fn new(src: (usize, usize), input: (usize, usize), imgsz: usize) -> ValGeometry {
        let (h0, w0) = src;
        let r = imgsz as f64 / h0.max(w0) as f64;
        let loaded = if r != 1.0 {
            let up = |v: usize| ((v as f64 * r).ceil() as usize).clamp(1, imgsz);
            (up(h0), up(w0))
        } else {
            src
        };
        let (h1, w1) = (loaded.0 as f64, loaded.1 as f64);
        let ratio = (input.0 as f64 / h1).min(input.1 as f64 / w1).min(1.0);
        let unpad_w = ((w1 * ratio).round_ties_even() as usize).max(1);
        let unpad_h = ((h1 * ratio).round_ties_even() as usize).max(1);
        let dw = (input.1 as f64 - unpad_w as f64) / 2.0;
        let dh = (input.0 as f64 - unpad_h as f64) / 2.0;
        let py_round = |v: f64| v.round_ties_even().max(0.0) as usize;
        let (top, bottom) = (py_round(dh - 0.1), py_round(dh + 0.1));
        let (left, right) = (py_round(dw - 0.1), py_round(dw + 0.1));
        let letterbox = Letterbox {
            src: loaded,
            unpad: (unpad_h, unpad_w),
            top,
            left,
            out: (unpad_h + top + bottom, unpad_w + left + right),
        };
        ValGeometry { src, loaded, letterbox, ratio }
    }

    /// Model input size `(height, width)`.
    pub fn input(&self) -> (usize, usize) {
        self.letterbox.out
    }

    /// The planar 0..1 input tensor, resized with OpenCV's INTER_LINEAR as Ultralytics does.
    pub fn prepare(&self, img: &RgbImage) -> Vec<f32> {
        debug_assert_eq!((img.height, img.width), self.src);
        let mut chw = Vec::new();
        if self.letterbox.unpad == self.loaded {
            // LetterBox does not resize: one resize, src -> loaded, then padding.
            Letterbox { src: self.src, unpad: self.loaded, ..self.letterbox }.apply(img, &mut chw);
        } else {
            // A non-square input can shrink the loaded image once more: two resizes, as in Python.
            let (h, w) = self.loaded;
            let loaded =
                RgbImage { width: w, height: h, data: resize_linear_u8c3(&img.data, img.width, img.height, w, h) };
            self.letterbox.apply(&loaded, &mut chw);
        }
        chw
    }

    /// A label's box in model-input pixels, through the same float32 steps as Ultralytics:
    /// `xywh2xyxy`, `denormalize` to the loaded image, `scale`, `add_padding` (LetterBox),
    /// `xyxy2xywh` and a division by the input size (Format), `xywh2xyxy` times the input size
    /// (_prepare_batch). Python scalars meet float32 arrays as float32 (NumPy 2 promotion).
    pub fn label_box(&self, l: &GtLabel) -> [f32; 4] {
        let [cx, cy, w, h] = l.xywh;
        let xyxy = |cx: f32, cy: f32, w: f32, h: f32| {
            let (hw, hh) = (w / 2.0, h / 2.0);
            [cx - hw, cy - hh, cx + hw, cy + hh]
        };
        let b = xyxy(cx, cy, w, h);
        let (lw, lh) = (self.loaded.1 as f32, self.loaded.0 as f32);
        let r = self.ratio as f32;
        let (pl, pt) = (self.letterbox.left as f32, self.letterbox.top as f32);
        let b = [b[0] * lw * r + pl, b[1] * lh * r + pt, b[2] * lw * r + pl, b[3] * lh * r + pt];
        // Format normalizes in torch by division (`bboxes[:, [0, 2]] /= w`).
        let (iw, ih) = (self.letterbox.out.1 as f32, self.letterbox.out.0 as f32);
        let n = [(b[0] + b[2]) / 2.0 / iw, (b[1] + b[3]) / 2.0 / ih, (b[2] - b[0]) / iw, (b[3] - b[1]) / ih];
        let b = xyxy(n[0], n[1], n[2], n[3]);
        [b[0] * iw, b[1] * ih, b[2] * iw, b[3] * ih]
    }
}

/// The rectangular input Ultralytics' val uses for a dynamic model with `batch=1`
/// (`BaseDataset.set_rectangle`): the aspect ratio kept, each side rounded up to a stride
/// multiple after adding half a stride.
pub fn rect_input(src: (usize, usize), imgsz: usize, stride: usize) -> (usize, usize) {
    let ar = src.0 as f64 / src.1 as f64;
    let shape = if ar < 1.0 {
        [ar, 1.0]
    } else if ar > 1.0 {
        [1.0, 1.0 / ar]
    } else {
        [1.0, 1.0]
    };
    let side = |s: f64| ((s * imgsz as f64 / stride as f64 + RECT_PAD).ceil() as usize) * stride;
    (side(shape[0]), side(shape[1]))
}

#[derive(Debug, Clone)]
pub struct ValOptions {
    pub conf: f32,
    pub iou: f32,
    /// `None`: 300, raised to the most labels any image has (Ultralytics' `_check_max_det`).
    pub max_det: Option<usize>,
    /// Inference size of a dynamic model (the larger side is used, as Ultralytics' val takes
    /// one number); static models run at their own size.
    pub imgsz: Option<usize>,
    /// Images in inference at once (see `qdet detect --inflight`).
    pub inflight: usize,
}

impl Default for ValOptions {
    fn default() -> Self {
        ValOptions { conf: DEFAULT_CONF, iou: DEFAULT_IOU, max_det: None, imgsz: None, inflight: 1 }
    }
}

/// Mean milliseconds per image for each stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageMs {
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
    pub postprocess: f64,
}

/// One class's row with its name.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRow {
    pub name: String,
    #[serde(flatten)]
    pub metrics: ClassMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValReport {
    pub model: PathBuf,
    pub data: PathBuf,
    pub split: String,
    /// Where the split's paths were resolved from.
    pub root: PathBuf,
    /// Square/fixed model input `(height, width)`, or `None` for a dynamic model run with
    /// per-image rectangles.
    pub input: Option<(usize, usize)>,
    pub imgsz: usize,
    /// Classes the model predicts.
    pub nc: usize,
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    /// Images in the split; `images` below counts those validated.
    pub images_found: usize,
    pub images: usize,
    pub instances: usize,
    pub precision: f64,
    pub recall: f64,
    pub map50: f64,
    pub map75: f64,
    pub map50_95: f64,
    /// Confidence where precision and recall were read (Ultralytics' max mean-F1 point).
    pub best_conf: f64,
    /// Classes that have labels, ascending id.
    pub classes: Vec<ClassRow>,
    /// Images left out, and why (unreadable image, label file Ultralytics would reject).
    pub skipped: Vec<Problem>,
    /// Things that did not stop an image (duplicate label rows dropped, classes the model lacks).
    pub warnings: Vec<Problem>,
    pub mean_ms: StageMs,
    pub wall_s: f64,
}

/// Per-image result kept until the end, so the statistics are gathered in dataset order
/// (which decides the order of equal confidences, as in Ultralytics).
struct ImageResult {
    tp: Vec<Correct>,
    conf: Vec<f32>,
    pred_cls: Vec<usize>,
    target_cls: Vec<usize>,
}

/// What the inference workers share.
#[derive(Default)]
struct Acc {
    results: Vec<Option<ImageResult>>,
    skipped: Vec<Problem>,
    totals: StageMs,
    timed: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Multi-label NMS on one image's raw output and matching against its labels, all in
/// model-input pixels as Ultralytics' validator does.
fn score_image(raw: &RawOutput, nms: &NmsOptions, g: &ValGeometry, gt: &[GtLabel]) -> ImageResult {
    let dets = decode_multi_label(raw, nms);
    let gt_boxes: Vec<[f32; 4]> = gt.iter().map(|l| g.label_box(l)).collect();
    let target_cls: Vec<usize> = gt.iter().map(|l| l.class).collect();
    let boxes: Vec<[f32; 4]> = dets.iter().map(|d| d.bbox).collect();
    let pred_cls: Vec<usize> = dets.iter().map(|d| d.class).collect();
    let tp = match_boxes(&boxes, &pred_cls, &gt_boxes, &target_cls);
    ImageResult { tp, conf: dets.iter().map(|d| d.score).collect(), pred_cls, target_cls }
}

struct Decoded {
    index: usize,
    geometry: ValGeometry,
    chw: Vec<f32>,
    decode_ms: f64,
    preprocess_ms: f64,
}

/// Validates `model` on `data`'s split. `on_event` is called once per image (for a progress
/// bar) with the problem, if the image was skipped. Per-image problems never stop the run;
/// errors are returned for what makes the whole run impossible (no images, bad options).
pub fn run(
    model: &Model,
    data: &DataConfig,
    opts: &ValOptions,
    on_event: &(dyn Fn(Option<&Problem>) + Sync),
) -> Result<ValReport> {
    let start = Instant::now();
    if !(0.0..=1.0).contains(&opts.conf) || !(0.0..=1.0).contains(&opts.iou) {
        return Err(Error::Invalid("conf and iou must be between 0 and 1".into()));
    }
    let images = list_images(&data.sources)?;
    if images.is_empty() {
        return Err(Error::format(
            &data.yaml,
            format!("no images found for '{}' in {}", data.split, show(&data.sources)),
        ));
    }
    let stride = model.meta.stride.unwrap_or(32) as usize;
    let (input, imgsz) = match model.fixed_size {
        Some((h, w)) => (Some((h, w)), h.max(w)),
        None => {
            let meta = model.meta.imgsz.map(|(h, w)| h.max(w) as usize);
            let n = opts.imgsz.or(meta).unwrap_or(crate::detector::DEFAULT_IMGSZ);
            // check_imgsz: up to a multiple of the stride.
            (None, n.div_ceil(stride).max(1) * stride)
        }
    };
    let model_nc = model.num_classes();
    let names = if model.meta.names.is_empty() { data.names.clone() } else { model.meta.names.clone() };

    let mut skipped: Vec<Problem> = Vec::new();
    let mut warnings: Vec<Problem> = Vec::new();
    // Labels first: cheap, and max_det depends on them.
    let mut labels: Vec<Option<Vec<GtLabel>>> = Vec::with_capacity(images.len());
    let mut beyond_model = 0usize;
    for img in &images {
        let lp = label_path(img);
        let parsed = match std::fs::read(&lp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Labels::default()),
            Err(e) => Err(Problem::new(&lp, e.to_string())),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => parse_labels(&text, &lp, data.names.len()),
                Err(_) => Err(Problem::new(&lp, "not UTF-8 text")),
            },
        };
        match parsed {
            Ok(mut l) => {
                if l.duplicates > 0 {
                    warnings.push(Problem::new(&lp, format!("{} duplicate label rows ignored", l.duplicates)));
                }
                // Standalone val of a model with fewer classes skips the labels it cannot predict.
                let before = l.boxes.len();
                l.boxes.retain(|b| b.class < model_nc);
                beyond_model += before - l.boxes.len();
                labels.push(Some(l.boxes));
            }
            Err(p) => {
                on_event(Some(&p));
                skipped.push(p);
                labels.push(None);
            }
        }
    }
    if beyond_model > 0 {
        warnings.push(Problem::new(
            &data.yaml,
            format!("{beyond_model} labels of classes the model (nc={model_nc}) cannot predict were left out"),
        ));
    }
    let most_labels = labels.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let max_det = opts.max_det.unwrap_or(DEFAULT_MAX_DET.max(most_labels));
    let nms = NmsOptions { conf: opts.conf, iou: opts.iou, max_det, agnostic: false, classes: None };

    let todo: Vec<usize> = (0..images.len()).filter(|&i| labels[i].is_some()).collect();
    let acc = Mutex::new(Acc { results: (0..images.len()).map(|_| None).collect(), ..Acc::default() });
    let skip = |p: Problem| {
        on_event(Some(&p));
        lock(&acc).skipped.push(p);
    };
    // Bounded queue: decoding runs a few images ahead of inference, not the whole split.
    let (tx, rx) = mpsc::sync_channel::<std::result::Result<Decoded, Problem>>(rayon::current_num_threads() * 2);
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| {
        let (images, todo) = (&images, &todo);
        scope.spawn(move || {
            todo.par_iter().for_each_with(tx, |tx, &index| {
                let path = &images[index];
                let t0 = Instant::now();
                let msg = match read_rgb(path) {
                    Err(e) => Err(Problem::from_error(path, &e)),
                    Ok(img) if img.width < MIN_IMAGE_SIDE || img.height < MIN_IMAGE_SIDE => Err(Problem::new(
                        path,
                        format!(
                            "{}x{} pixels; Ultralytics skips images under {MIN_IMAGE_SIDE} pixels",
                            img.width, img.height
                        ),
                    )),
                    Ok(img) => {
                        let t1 = Instant::now();
                        let src = (img.height, img.width);
                        let target = input.unwrap_or_else(|| rect_input(src, imgsz, stride));
                        let geometry = ValGeometry::new(src, target, imgsz);
                        let chw = geometry.prepare(&img);
                        Ok(Decoded { index, geometry, chw, decode_ms: ms(t1 - t0), preprocess_ms: ms(t1.elapsed()) })
                    }
                };
                // The receivers only go away if an inference worker panicked.
                let _ = tx.send(msg);
            });
        });
        for _ in 0..opts.inflight.max(1) {
            scope.spawn(|| loop {
                // The lock is held only while taking the next image off the queue.
                let Ok(msg) = lock(&rx).recv() else { break };
                let d = match msg {
                    Ok(d) => d,
                    Err(p) => {
                        skip(p);
                        continue;
                    }
                };
                let t0 = Instant::now();
                let raw = match model.run(&d.chw, d.geometry.input()) {
                    Ok(r) => r,
                    Err(e) => {
                        skip(Problem::new(&images[d.index], e.to_string()));
                        continue;
                    }
                };
                let t1 = Instant::now();
                let result = score_image(&raw, &nms, &d.geometry, labels[d.index].as_deref().unwrap_or(&[]));
                let t2 = Instant::now();
                {
                    let mut a = lock(&acc);
                    a.results[d.index] = Some(result);
                    a.totals.decode += d.decode_ms;
                    a.totals.preprocess += d.preprocess_ms;
                    a.totals.inference += ms(t1 - t0);
                    a.totals.postprocess += ms(t2 - t1);
                    a.timed += 1;
                }
                on_event(None);
            });
        }
    });
    let Acc { results, skipped: late, totals, timed } = acc.into_inner().unwrap_or_else(|p| p.into_inner());
    skipped.extend(late);

    let mut stats = DetStats::new();
    for r in results.iter().flatten() {
        stats.add_image(&r.tp, &r.conf, &r.pred_cls, &r.target_cls);
    }
    let m = stats.compute();
    let n = timed.max(1) as f64;
    let mean_ms = StageMs {
        decode: totals.decode / n,
        preprocess: totals.preprocess / n,
        inference: totals.inference / n,
        postprocess: totals.postprocess / n,
    };
    skipped.sort_by(|a, b| a.path.cmp(&b.path).then(a.line.cmp(&b.line)));
    let label = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    Ok(ValReport {
        model: model.path().to_path_buf(),
        data: data.yaml.clone(),
        split: data.split.clone(),
        root: data.root.clone(),
        input,
        imgsz,
        nc: model_nc,
        conf: opts.conf,
        iou: opts.iou,
        max_det,
        images_found: images.len(),
        images: m.images,
        instances: m.instances,
        precision: m.precision,
        recall: m.recall,
        map50: m.map50,
        map75: m.map75,
        map50_95: m.map50_95,
        best_conf: m.best_conf,
        classes: m.classes.into_iter().map(|c| ClassRow { name: label(c.class), metrics: c }).collect(),
        skipped,
        warnings,
        mean_ms,
        wall_s: start.elapsed().as_secs_f64(),
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn show(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<Labels, Problem> {
        parse_labels(text, Path::new("l.txt"), 3)
    }

    #[test]
    fn label_rows_like_verify_image_label() {
        let l = parse("\u{feff}0 0.5 0.5 0.2 0.4\n\n 2 0.1 0.2 0.3 0.4 \r\n1.0 1.005 0.5 0.1 0.1\n").unwrap();
        let got: Vec<(usize, [f32; 4])> = l.boxes.iter().map(|b| (b.class, b.xywh)).collect();
        assert_eq!(got, vec![(0, [0.5, 0.5, 0.2, 0.4]), (2, [0.1, 0.2, 0.3, 0.4]), (1, [1.005, 0.5, 0.1, 0.1])]);
        assert_eq!(l.duplicates, 0);
        // Slightly negative corners are allowed (>= -0.01) when widths are not negative.
        assert!(parse("0 -0.005 0.5 0.1 0.1\n").is_ok());
        assert!(parse("").unwrap().boxes.is_empty());
    }

    #[test]
    fn bad_label_rows_name_their_line() {
        for (text, line, want) in [
            ("0 0.5 0.5 0.2 0.2\n\n0 0.5 0.5 0.2\n", 3, "4 values"),
            ("0 0.5 0.5 0.2 0.2 0.9\n", 1, "6 values"),
            ("cat 0.5 0.5 0.2 0.2\n", 1, "not a finite number"),
            ("0 0.5 nan 0.2 0.2\n", 1, "not a finite number"),
            ("0 0.5 0.5 0.2 0.2\n1 50 60 20 20\n", 2, "above 1.01"),
            ("0 0.5 -0.02 0.2 0.2\n", 1, "negative value"),
            ("0 0.5 0.5 -0.001 0.2\n", 1, "negative width"),
            ("1.5 0.5 0.5 0.2 0.2\n", 1, "not a whole number"),
            ("3 0.5 0.5 0.2 0.2\n", 1, "0-2"),
            ("0 0.1 0.1 0.2 0.1 0.2 0.2\n1 0.5 0.5 0.2 0.2\n", 2, "box row in a file of polygon"),
            ("0 0.1 0.1 0.2 0.1 0.2 0.2\n1 0.5 0.5 0.2 0.2 0.3\n", 2, "5 coordinates"),
        ] {
            let p = parse(text).expect_err(text);
            assert_eq!(p.line, Some(line), "{text:?}: {p}");
            assert!(p.reason.contains(want), "{text:?}: {p}");
        }
    }

    #[test]
    fn polygons_become_boxes_and_duplicates_go() {
        let l = parse("1 0.1 0.2 0.5 0.2 0.3 0.6\n").unwrap();
        // Bounds x 0.1..0.5, y 0.2..0.6.
        let b = l.boxes[0].xywh;
        assert!((b[0] - 0.3).abs() < 1e-7 && (b[1] - 0.4).abs() < 1e-7 && (b[2] - 0.4).abs() < 1e-7);
        // Duplicates are removed and the rest sorted as np.unique sorts rows.
        let l = parse("2 0.5 0.5 0.1 0.1\n0 0.3 0.3 0.1 0.1\n2 0.5 0.5 0.1 0.1\n").unwrap();
        assert_eq!(l.duplicates, 1);
        assert_eq!(l.boxes.iter().map(|b| b.class).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn label_paths_swap_the_last_images_folder() {
        let s = MAIN_SEPARATOR;
        let img = PathBuf::from(format!("{s}d{s}images{s}x{s}images{s}a.b.JPG"));
        assert_eq!(label_path(&img), PathBuf::from(format!("{s}d{s}images{s}x{s}labels{s}a.b.txt")));
        assert_eq!(label_path(Path::new("flat/a.png")), PathBuf::from("flat/a.txt"));
    }

    #[test]
    fn val_geometry_resizes_long_side_then_pads() {
        // 398x448 (h x w) to 320: r = 0.714, h = ceil(284.29) = 285 (predict would round to 284).
        let g = ValGeometry::new((398, 448), (320, 320), 320);
        assert_eq!(g.loaded, (285, 320));
        assert_eq!((g.letterbox.unpad, g.letterbox.top, g.letterbox.left), ((285, 320), 17, 0));
        assert_eq!(g.input(), (320, 320));
        // Smaller than imgsz: scaled up in load_image (LetterBox itself never scales up).
        let g = ValGeometry::new((100, 50), (320, 320), 320);
        assert_eq!((g.loaded, g.letterbox.left, g.ratio), ((320, 160), 80, 1.0));
        // Exactly imgsz on the long side: no resize at all.
        let g = ValGeometry::new((320, 200), (320, 320), 320);
        assert_eq!(g.loaded, (320, 200));
        // A non-square input shrinks the loaded image again.
        let g = ValGeometry::new((480, 640), (384, 640), 640);
        assert_eq!((g.loaded, g.letterbox.unpad, g.letterbox.out), ((480, 640), (384, 512), (384, 640)));
        assert_eq!(g.letterbox.left, 64);
    }

    #[test]
    fn label_boxes_follow_the_letterbox() {
        let g = ValGeometry::new((398, 448), (320, 320), 320);
        // Full-image box: the loaded image's area, shifted down by the 17-pixel top pad.
        let b = g.label_box(&GtLabel { class: 0, xywh: [0.5, 0.5, 1.0, 1.0] });
        let want = [0.0, 17.0, 320.0, 302.0];
        assert!(b.iter().zip(want).all(|(a, w)| (a - w).abs() < 1e-4), "{b:?}");
    }

    #[test]
    fn rect_inputs_for_dynamic_models() {
        // set_rectangle with batch 1: ceil(ar * 480 / 32 + 0.5) * 32 on the short side.
        assert_eq!(rect_input((398, 448), 480, 32), (448, 512));
        assert_eq!(rect_input((448, 398), 480, 32), (512, 448));
        assert_eq!(rect_input((300, 300), 480, 32), (512, 512));
    }

    #[test]
    fn dataset_yaml_paths_resolve_beside_the_yaml() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ds");
        std::fs::create_dir_all(root.join("images/val")).unwrap();
        std::fs::create_dir_all(root.join("images/extra")).unwrap();
        std::fs::write(root.join("list.txt"), "./images/val/a.jpg\nimages/extra/b.png\nnotes.md\n").unwrap();
        let yaml = root.join("data.yaml");
        std::fs::write(&yaml, "path: .\nval: [images/val, list.txt]\ntest: ../images/val\nnc: 2\n").unwrap();
        let c = load_data(&yaml, "val").unwrap();
        assert_eq!(c.names, vec!["class_0", "class_1"]);
        assert_eq!(c.sources.len(), 2);
        // `../images/val` does not exist above the root: retried below it, as Ultralytics does.
        let t = load_data(&yaml, "test").unwrap();
        assert!(t.sources[0].ends_with("images/val"));
        let e = load_data(&yaml, "train").unwrap_err().to_string();
        assert!(e.contains("data.yaml") && e.contains("'train:'"), "{e}");

        std::fs::write(root.join("images/val/a.jpg"), b"x").unwrap();
        std::fs::write(root.join("images/val/.hidden.jpg"), b"x").unwrap();
        std::fs::write(root.join("images/val/c.txt"), b"x").unwrap();
        std::fs::write(root.join("images/extra/b.png"), b"x").unwrap();
        let imgs = list_images(&c.sources).unwrap();
        let names: Vec<String> = imgs.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        // a.jpg from the folder and again from the list (Ultralytics keeps both), b.png.
        assert_eq!(names, vec!["b.png", "a.jpg", "a.jpg"]);

        std::fs::write(&yaml, "names: [a]\nnc: 2\nval: images/val\n").unwrap();
        assert!(load_data(&yaml, "val").unwrap_err().to_string().contains("'nc' is 2"));
    }
}
