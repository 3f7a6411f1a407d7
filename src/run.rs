//! `detect` over many files: decode and letterbox on a rayon pool while the model runs,
//! write every output atomically, report and skip bad images, and time each stage.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::atomic::{self, Existing};
use crate::detector::{Detector, Prepared};
use crate::error::{Error, Problem, Result};
use crate::formats::labelme::{relative_path, LabelmeFile, Shape};
use crate::formats::yolo::detections_to_txt;
use crate::image_io::{read_rgb, RgbImage};
use crate::paths::{absolute, ensure_parent};
use crate::pipeline::{self, Clock, Job, Stage, StageMs};
use crate::postprocess::Detection;
use crate::sources::SourceImage;

/// Where labelme JSON goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonMode {
    Off,
    /// Under the output folder, mirroring the sources.
    OutDir,
    /// Beside each image, for labelme's pre-annotation workflow.
    Beside,
}

#[derive(Debug, Clone)]
pub struct Outputs {
    pub dir: PathBuf,
    pub json: JsonMode,
    pub txt: bool,
    pub txt_conf: bool,
    pub img: bool,
    pub existing: Existing,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectSummary {
    pub images: usize,
    pub processed: usize,
    /// Images whose every output already existed: skipped before decoding (a rerun into the
    /// same folder), unless they are overwritten (`Existing::Overwrite`).
    pub already_done: usize,
    /// Existing output files of processed images left as they were (the rest of their outputs
    /// written): what a run interrupted midway left.
    pub kept: usize,
    pub failed: usize,
    pub detections: usize,
    pub per_class: BTreeMap<String, usize>,
    pub mean_ms: StageMs,
    pub wall_s: f64,
    pub images_per_s: f64,
    pub failures: Vec<Problem>,
    pub output_dir: PathBuf,
}

/// Checks before any work that the output folder can be created and written to.
pub fn check_writable(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let probe = dir.join(format!(".qdet-write-test-{}", std::process::id()));
    // create_new: never through a file or symlink already at that name.
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).map_err(|e| Error::io(dir, e))?;
    std::fs::remove_file(&probe).map_err(|e| Error::io(dir, e))
}

/// One image's result, as `run` reports it when the image is done.
pub enum ImageDone<'a> {
    Detected { src: &'a SourceImage, dets: &'a [Detection], size: (u32, u32) },
    Failed(&'a Problem),
}

/// What `DetectJob::process` gives for an image.
struct Done {
    dets: Vec<Detection>,
    /// Existing outputs kept.
    kept: usize,
    size: (u32, u32),
}

/// Detection on one image, as the batch pipeline runs it.
struct DetectJob<'a> {
    det: &'a Detector,
    images: &'a [SourceImage],
    out: &'a Outputs,
}

impl Job for DetectJob<'_> {
    type Decoded = (RgbImage, Prepared);
    type Output = Done;
    type Failure = Problem;

    fn decode(&self, index: usize, clock: &mut Clock) -> std::result::Result<Self::Decoded, Problem> {
        let src = &self.images[index];
        let image = read_rgb(&src.path).map_err(|e| Problem::new(src.path.clone(), e.reason()))?;
        clock.lap(Stage::Decode);
        let prepared = self.det.prepare_decoded(&image);
        clock.lap(Stage::Preprocess);
        Ok((image, prepared))
    }

    fn process(
        &self,
        index: usize,
        (image, prepared): Self::Decoded,
        clock: &mut Clock,
    ) -> std::result::Result<Self::Output, Problem> {
        let src = &self.images[index];
        let fail = |e: Error| Problem::new(src.path.clone(), e.to_string());
        let raw = self.det.infer(&prepared).map_err(fail)?;
        clock.lap(Stage::Inference);
        let dets = self.det.postprocess(&raw, prepared.letterbox());
        clock.lap(Stage::Postprocess);
        let size = (image.width as u32, image.height as u32);
        let kept = write_outputs(self.det, src, image, &dets, self.out).map_err(fail)?;
        clock.lap(Stage::Write);
        Ok(Done { dets, kept, size })
    }
}

/// Runs detection on every source image. `inflight` images go through inference at once
/// (each on one tract thread when above 1); decoding runs ahead on the rayon pool.
/// `on_event` is called once per image run (for a progress bar and per-image lines).
/// Per-image problems never stop the run. When existing outputs are kept
/// (`Existing::Keep`), images whose every output exists are not run at all.
pub fn run(
    det: &Detector,
    images: &[SourceImage],
    out: &Outputs,
    inflight: usize,
    on_event: &dyn Fn(ImageDone),
) -> DetectSummary {
    let start = Instant::now();
    let (todo, done): (Vec<SourceImage>, Vec<SourceImage>) =
        images.iter().cloned().partition(|src| out.existing == Existing::Overwrite || !all_exist(src, out));
    let job = DetectJob { det, images: &todo, out };
    let (mut processed, mut detections, mut kept) = (0, 0, 0);
    let mut per_class: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let Ok(mean_ms) = pipeline::run(&job, todo.len(), inflight, |i, result| {
        match result {
            Ok(done) => {
                processed += 1;
                kept += done.kept;
                detections += done.dets.len();
                for d in &done.dets {
                    *per_class.entry(det.label(d.class)).or_default() += 1;
                }
                on_event(ImageDone::Detected { src: &todo[i], dets: &done.dets, size: done.size });
            }
            Err(f) => {
                on_event(ImageDone::Failed(&f));
                failures.push(f);
            }
        }
        Ok::<(), Infallible>(())
    });
    failures.sort_by(|a, b| a.path.cmp(&b.path));
    let wall_s = start.elapsed().as_secs_f64();
    DetectSummary {
        images: images.len(),
        processed,
        already_done: done.len(),
        kept,
        failed: failures.len(),
        detections,
        per_class,
        mean_ms,
        wall_s,
        images_per_s: if wall_s > 0.0 { processed as f64 / wall_s } else { 0.0 },
        failures,
        output_dir: out.dir.clone(),
    }
}

/// The files `detect` writes for `src`: labelme JSON, YOLO txt, annotated image (those asked for).
struct OutputPaths {
    json: Option<PathBuf>,
    txt: Option<PathBuf>,
    img: Option<PathBuf>,
}

impl OutputPaths {
    fn of(src: &SourceImage, out: &Outputs) -> OutputPaths {
        OutputPaths {
            json: match out.json {
                JsonMode::Off => None,
                JsonMode::OutDir => Some(with_ext(&out.dir.join(&src.stem), "json")),
                JsonMode::Beside => {
                    Some(with_ext(&src.path.with_file_name(src.stem.file_name().unwrap_or_default()), "json"))
                }
            },
            txt: out.txt.then(|| with_ext(&out.dir.join("labels").join(&src.stem), "txt")),
            img: out.img.then(|| annotated_path(&out.dir.join(&src.stem), &src.rel)),
        }
    }

    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.json, &self.txt, &self.img].into_iter().flatten()
    }
}

/// Whether every output of `src` exists already (and there is one).
fn all_exist(src: &SourceImage, out: &Outputs) -> bool {
    let paths = OutputPaths::of(src, out);
    paths.all().next().is_some() && paths.all().all(|p| p.exists())
}

/// Writes every output asked for and returns how many existed and were kept
/// (`Existing::Keep`): the others are still written, so a rerun after an interrupted run
/// completes the set.
fn write_outputs(
    det: &Detector,
    src: &SourceImage,
    mut image: RgbImage,
    dets: &[Detection],
    out: &Outputs,
) -> Result<usize> {
    let (w, h) = (image.width as u32, image.height as u32);
    let mut kept = 0;
    let mut keep = |r: Result<()>| match r {
        Err(Error::Exists { .. }) => {
            kept += 1;
            Ok(())
        }
        other => other,
    };
    let paths = OutputPaths::of(src, out);
    if let Some(json_path) = paths.json {
        let json_dir = absolute(json_path.parent().unwrap_or(Path::new(".")));
        let image_path = relative_path(&absolute(&src.path), &json_dir);
        let file = labelme_file(det, dets, image_path.to_string_lossy().into_owned(), w, h);
        ensure_parent(&json_path)?;
        keep(atomic::write(&json_path, &file.to_json(), out.existing))?;
    }
    if let Some(txt_path) = paths.txt {
        ensure_parent(&txt_path)?;
        keep(atomic::write(&txt_path, detections_to_txt(dets, w, h, out.txt_conf).as_bytes(), out.existing))?;
    }
    if let Some(img_path) = paths.img {
        if out.existing == Existing::Keep && img_path.exists() {
            keep(Err(Error::Exists { path: img_path }))?;
        } else {
            crate::draw::annotate(&mut image, dets, |d| format!("{} {:.2}", det.label(d.class), d.score));
            ensure_parent(&img_path)?;
            keep(atomic::write(&img_path, &crate::image_io::encode(&image, &img_path)?, out.existing))?;
        }
    }
    Ok(kept)
}

/// The labelme file of `dets` on a `w` x `h` image at `image_path`: what `detect` writes and
/// `serve` answers.
pub(crate) fn labelme_file(det: &Detector, dets: &[Detection], image_path: String, w: u32, h: u32) -> LabelmeFile {
    let shapes = dets.iter().map(|d| Shape::from_detection(d, det.label(d.class))).collect();
    LabelmeFile::new(image_path, w, h, shapes)
}

/// `stem` with the source's extension where qdet can encode that format, else with
/// `.<ext>.jpg` (a JPEG).
fn annotated_path(stem: &Path, source: &Path) -> PathBuf {
    let ext = source.extension().and_then(|e| e.to_str()).unwrap_or("");
    if matches!(ext.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png" | "bmp") {
        with_ext(stem, ext)
    } else {
        with_ext(stem, &format!("{}.jpg", ext.to_ascii_lowercase()))
    }
}

/// `base` + `.` + `ext`, keeping any dot already in `base`'s name (`photo.png` -> `photo.png.json`).
fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}
