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
//! `--reference` scores a model against another model's detections instead of labels
//! ([`agreement`], run by [`run_reference`]).
//!
//! Where qdet deliberately differs: a relative `path:` is looked up beside the yaml first
//! and only then in the current folder (Ultralytics looks only in the current folder, then
//! in its settings' `datasets_dir`), and so are relative entries of `.txt` image lists.
//! A label file Ultralytics would reject makes qdet skip the image too, but qdet says which
//! line is wrong and exits with status 2.

pub mod agreement;
mod data;
mod geometry;
#[cfg(test)]
mod parity_tests;
mod reference;

pub use crate::formats::yolo::{parse_labels, GtLabel, Labels};
pub use data::{label_path, list_images, load_data, DataConfig};
pub use geometry::{rect_input, ValGeometry};
pub use reference::{run as run_reference, AgreementReport};

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::error::Problem;
use crate::error::{Error, Result};
use crate::image_io::read_rgb;
use crate::metrics::{match_boxes, ClassMetrics, Correct, DetStats};
use crate::model::{Model, RawOutput};
use crate::pipeline::{self, Clock, Job, Stage};
use crate::postprocess::{decode_multi_label, NmsOptions};

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
    pub mean_ms: crate::pipeline::StageMs,
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

/// Scoring one image, as the batch pipeline runs it: `todo[k]` is the k-th image it runs.
struct ValJob<'a> {
    model: &'a Model,
    images: &'a [PathBuf],
    todo: &'a [usize],
    labels: &'a [Option<Vec<GtLabel>>],
    nms: &'a NmsOptions,
    /// The fixed input of a static model.
    input: Option<(usize, usize)>,
    imgsz: usize,
    stride: usize,
}

impl Job for ValJob<'_> {
    type Decoded = (ValGeometry, Vec<f32>);
    type Output = ImageResult;
    type Failure = Problem;

    fn decode(&self, k: usize, clock: &mut Clock) -> std::result::Result<Self::Decoded, Problem> {
        let path = &self.images[self.todo[k]];
        let img = read_rgb(path).map_err(|e| Problem::from_error(path, &e))?;
        if img.width < MIN_IMAGE_SIDE || img.height < MIN_IMAGE_SIDE {
            return Err(Problem::new(
                path,
                format!("{}x{} pixels; Ultralytics skips images under {MIN_IMAGE_SIDE} pixels", img.width, img.height),
            ));
        }
        clock.lap(Stage::Decode);
        let src = (img.height, img.width);
        let target = self.input.unwrap_or_else(|| rect_input(src, self.imgsz, self.stride));
        let geometry = ValGeometry::new(src, target, self.imgsz);
        let chw = geometry.prepare(&img);
        clock.lap(Stage::Preprocess);
        Ok((geometry, chw))
    }

    fn process(
        &self,
        k: usize,
        (geometry, chw): Self::Decoded,
        clock: &mut Clock,
    ) -> std::result::Result<ImageResult, Problem> {
        let index = self.todo[k];
        let raw =
            self.model.run(&chw, geometry.input()).map_err(|e| Problem::new(&self.images[index], e.to_string()))?;
        clock.lap(Stage::Inference);
        let result = score_image(&raw, self.nms, &geometry, self.labels[index].as_deref().unwrap_or(&[]));
        clock.lap(Stage::Postprocess);
        Ok(result)
    }
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
    let stride = model.meta().stride.unwrap_or(32) as usize;
    let (input, imgsz) = input_size(model, opts.imgsz, stride);
    let model_nc = model.num_classes();
    let names = if model.meta().names.is_empty() { data.names.clone() } else { model.meta().names.clone() };
    // Labels first: cheap, and max_det depends on them.
    let GroundTruth { labels, mut skipped, mut warnings } = read_labels(&images, data, model_nc, on_event);
    warnings.splice(0..0, names_mismatch(&model.meta().names, &data.names).map(|w| Problem::new(&data.yaml, w)));
    let most_labels = labels.iter().flatten().map(Vec::len).max().unwrap_or(0);
    let max_det = opts.max_det.unwrap_or(DEFAULT_MAX_DET.max(most_labels));
    let nms = NmsOptions { conf: opts.conf, iou: opts.iou, max_det, agnostic: false, classes: None };

    let todo: Vec<usize> = (0..images.len()).filter(|&i| labels[i].is_some()).collect();
    let job = ValJob { model, images: &images, todo: &todo, labels: &labels, nms: &nms, input, imgsz, stride };
    let mut results: Vec<ImageResult> = Vec::with_capacity(todo.len());
    let Ok(mean_ms) = pipeline::run(&job, todo.len(), opts.inflight, |_, result| {
        match result {
            Ok(r) => {
                results.push(r);
                on_event(None);
            }
            Err(p) => {
                on_event(Some(&p));
                skipped.push(p);
            }
        }
        Ok::<(), Infallible>(())
    });

    let mut stats = DetStats::new();
    for r in &results {
        stats.add_image(&r.tp, &r.conf, &r.pred_cls, &r.target_cls);
    }
    let m = stats.compute();
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

/// The fixed input of a static model, and the `imgsz` val letterboxes to: the model's, or
/// (dynamic) the option, its metadata or 640, up to a multiple of the stride as
/// Ultralytics' `check_imgsz` does.
fn input_size(model: &Model, imgsz: Option<usize>, stride: usize) -> (Option<(usize, usize)>, usize) {
    match model.fixed_size() {
        Some((h, w)) => (Some((h, w)), h.max(w)),
        None => {
            let meta = model.meta().imgsz.map(|(h, w)| h.max(w) as usize);
            let n = imgsz.or(meta).unwrap_or(crate::detector::DEFAULT_IMGSZ);
            (None, n.div_ceil(stride).max(1) * stride)
        }
    }
}

/// Every image's labels (`None`: the image is skipped, its problem reported).
struct GroundTruth {
    labels: Vec<Option<Vec<GtLabel>>>,
    skipped: Vec<Problem>,
    warnings: Vec<Problem>,
}

/// Reads the label file of each image as `verify_image_label` does; a missing file is an
/// image without objects. Labels of classes the model cannot predict are left out (with a
/// warning), as a standalone val of a model with fewer classes does.
fn read_labels(
    images: &[PathBuf],
    data: &DataConfig,
    model_nc: usize,
    on_event: &(dyn Fn(Option<&Problem>) + Sync),
) -> GroundTruth {
    let mut gt = GroundTruth { labels: Vec::with_capacity(images.len()), skipped: Vec::new(), warnings: Vec::new() };
    let mut beyond_model = 0usize;
    for img in images {
        let lp = label_path(img);
        let parsed = match crate::input::read(&lp, crate::input::TEXT_LIMIT) {
            Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => Ok(Labels::default()),
            Err(e) => Err(Problem::from_error(&lp, &e)),
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => parse_labels(&text, &lp, data.names.len()),
                Err(_) => Err(Problem::new(&lp, "not UTF-8 text")),
            },
        };
        match parsed {
            Ok(mut l) => {
                if l.duplicates > 0 {
                    gt.warnings.push(Problem::new(&lp, format!("{} duplicate label rows ignored", l.duplicates)));
                }
                let before = l.boxes.len();
                l.boxes.retain(|b| b.class < model_nc);
                beyond_model += before - l.boxes.len();
                gt.labels.push(Some(l.boxes));
            }
            Err(p) => {
                on_event(Some(&p));
                gt.skipped.push(p);
                gt.labels.push(None);
            }
        }
    }
    if beyond_model > 0 {
        gt.warnings.push(Problem::new(
            &data.yaml,
            format!("{beyond_model} labels of classes the model (nc={model_nc}) cannot predict were left out"),
        ));
    }
    gt
}

/// When the model and the dataset name their classes differently (a model trained with
/// another class order, or on another dataset): which ids differ. The scores match class ids,
/// so they are then meaningless for the classes listed.
fn names_mismatch(model: &[String], data: &[String]) -> Option<String> {
    if model.is_empty() || data.is_empty() || model == data {
        return None;
    }
    let differ: Vec<String> = (0..model.len().max(data.len()))
        .filter(|&i| model.get(i) != data.get(i))
        .map(|i| {
            let name = |n: Option<&String>| n.map_or("none".to_string(), |n| format!("'{n}'"));
            format!("id {i} is {} in the model, {} here", name(model.get(i)), name(data.get(i)))
        })
        .collect();
    let shown = differ.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    let more = if differ.len() > 5 { format!("; and {} more", differ.len() - 5) } else { String::new() };
    Some(format!(
        "the model's class names differ from this dataset's ({shown}{more}): labels are matched by id, so the \
         scores of those classes compare different things; retrain, or reorder names in the data YAML"
    ))
}

fn show(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, MAIN_SEPARATOR};

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
