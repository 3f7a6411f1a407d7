//! `qdet detect`: images in; labelme JSON, YOLO txt and drawn images out, through the
//! batch pipeline of [`crate::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::common::{exit_status, print_json, progress_bar, setup_threads};
use crate::atomic::Existing;
use crate::detector::Detector;
use crate::options::{parse_imgsz, parse_unit};
use crate::postprocess::NmsOptions;
use crate::run::{DetectSummary, ImageDone, JsonMode, Outputs};

#[derive(Args)]
pub(super) struct DetectArgs {
    /// Ultralytics YOLO detection ONNX export (v5u, v8, v10, 11, 26; fp32 or fp16, static or dynamic input).
    #[arg(long)]
    model: PathBuf,
    /// Image files, folders (walked recursively) or glob patterns; video files (mp4, mkv, avi,
    /// mov, ts, webm, ...), stream URLs (rtsp://, rtmp://, http(s)://, udp://) and cameras
    /// (/dev/video0), decoded by the system ffmpeg.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// Output folder [default: runs/detect/predict, then predict2, predict3, ...].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Inference size for dynamic models, `640` or `H,W` [default: the model's metadata imgsz, else 640].
    #[arg(long, value_parser = parse_imgsz)]
    imgsz: Option<(usize, usize)>,
    /// Keep detections with a confidence strictly above this [default: 0.25; 0.1 with --track].
    #[arg(long, value_parser = parse_unit)]
    conf: Option<f32>,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = 0.7, value_parser = parse_unit)]
    iou: f32,
    /// At most this many detections per image.
    #[arg(long, default_value_t = 300)]
    max_det: usize,
    /// Only these classes, by id or name, e.g. `--classes 0,2` or `--classes person,car`.
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// Class-agnostic NMS (a box may suppress boxes of other classes).
    #[arg(long)]
    agnostic: bool,
    /// Class names for a model without metadata: `names.txt` (one per line) or a `data.yaml`.
    #[arg(long)]
    names: Option<PathBuf>,
    /// Write YOLO txt labels to OUT/labels/.
    #[arg(long)]
    save_txt: bool,
    /// Append the confidence to each YOLO txt line.
    #[arg(long)]
    save_conf: bool,
    /// Write images with boxes, class names and scores drawn.
    #[arg(long)]
    save_img: bool,
    /// Do not write labelme JSON.
    #[arg(long, conflicts_with = "beside")]
    no_json: bool,
    /// Write each labelme JSON beside its image (labelme pre-annotation) instead of under OUT.
    #[arg(long)]
    beside: bool,
    /// Replace existing output files (without it an existing file is kept and the image reported).
    #[arg(long)]
    overwrite: bool,
    /// Worker threads for decoding and inference [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Run a QDQ model's quantized convs as its float graph (Q/DQ simulated) instead of on
    /// qdet's integer kernels.
    #[arg(long)]
    simulate_qdq: bool,
    /// Images in inference at once, each on threads/inflight tract threads [default: one per thread].
    #[arg(long)]
    inflight: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// A line per image (its size and detections per class), as Ultralytics prints
    /// [default: on for up to 10 images].
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    video: super::video::VideoArgs,
}

/// Workers for live sources: `--threads`, or every core.
fn video_workers(a: &DetectArgs) -> usize {
    a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A run with videos and no image; `failed` already when a folder entry was skipped.
fn videos_only(a: &DetectArgs, videos: &[PathBuf], dir: &std::path::Path, failed: bool) -> anyhow::Result<ExitCode> {
    setup_threads(a.threads, None, 1)?;
    let det = load_detector(a)?;
    let videos_failed = super::video::run(&a.video, &det, videos, dir, a.overwrite, video_workers(a))?;
    Ok(exit_status(failed || videos_failed))
}

pub(super) fn detect(a: DetectArgs) -> anyhow::Result<ExitCode> {
    let dir = a.out.clone().unwrap_or_else(|| crate::sources::next_run_dir(&PathBuf::from("runs/detect"), "predict"));
    let (mut videos, sources): (Vec<PathBuf>, Vec<PathBuf>) =
        a.sources.iter().cloned().partition(|s| crate::video::is_video(s));
    if sources.is_empty() {
        return videos_only(&a, &videos, &dir, false);
    }
    let collected =
        crate::sources::collect_excluding(&sources, std::slice::from_ref(&dir)).context("collecting images")?;
    for (path, reason) in &collected.skipped {
        eprintln!("qdet: skipped {}", super::common::with_flag_hint(format!("{}: {reason}", path.display())));
    }
    let images = collected.images;
    videos.extend(collected.videos);
    if images.is_empty() && !videos.is_empty() {
        return videos_only(&a, &videos, &dir, !collected.skipped.is_empty());
    }
    if images.is_empty() {
        bail!("no images found in {}", sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    let inflight = setup_threads(a.threads, a.inflight, images.len())?;
    let det = load_detector(&a)?;
    let videos_failed =
        !videos.is_empty() && super::video::run(&a.video, &det, &videos, &dir, a.overwrite, video_workers(&a))?;
    let writes_to_dir = !a.no_json && !a.beside || a.save_txt || a.save_img;
    if writes_to_dir {
        crate::run::check_writable(&dir).context("output folder is not writable")?;
        mark_output(&dir)?;
        let stale = crate::atomic::remove_stale_temps(&dir);
        if stale > 0 {
            eprintln!("qdet: removed {stale} temporary files an interrupted run left in {}", dir.display());
        }
    }
    let outputs = Outputs {
        dir,
        json: if a.no_json {
            JsonMode::Off
        } else if a.beside {
            JsonMode::Beside
        } else {
            JsonMode::OutDir
        },
        txt: a.save_txt,
        txt_conf: a.save_conf,
        img: a.save_img,
        existing: if a.overwrite { Existing::Overwrite } else { Existing::Keep },
    };
    let bar = progress_bar(images.len() as u64, "images");
    let verbose = a.verbose || images.len() <= 10;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut summary = crate::run::run(&det, &images, &outputs, inflight, &|event| {
        let k = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match event {
            ImageDone::Failed(f) => bar.suspend(|| {
                eprintln!(
                    "qdet: skipped {}",
                    super::common::with_flag_hint(format!("{}: {}", f.path.display(), f.reason))
                )
            }),
            ImageDone::Detected { src, dets, size } if verbose => {
                bar.suspend(|| eprintln!("{}", image_line(k, images.len(), &src.path, size, dets, &det)))
            }
            ImageDone::Detected { .. } => {}
        }
        bar.inc(1);
    });
    // Folder entries that could not be walked count as failed inputs.
    summary.images += collected.skipped.len();
    summary.failed += collected.skipped.len();
    summary
        .failures
        .extend(collected.skipped.into_iter().map(|(path, reason)| crate::error::Problem::new(path, reason)));
    bar.finish_and_clear();
    if a.json {
        print_json(&summary)?;
    } else {
        print_summary(&summary, &where_written(&outputs));
    }
    Ok(exit_status(summary.failed > 0 || videos_failed))
}

/// Marks `dir` as qdet's output, so no later run walks it for input images.
fn mark_output(dir: &std::path::Path) -> anyhow::Result<()> {
    let marker = dir.join(crate::sources::OUTPUT_MARKER);
    if !marker.exists() {
        let text = b"qdet detect writes its results here; qdet never reads this folder's images as input\n";
        crate::atomic::write(&marker, text, crate::atomic::Existing::Keep)
            .with_context(|| format!("marking {} as qdet's output", dir.display()))?;
    }
    Ok(())
}

/// Ultralytics' per-image line: `image 1/3 path: 320x240 1 circle, 2 triangles`.
fn image_line(
    k: usize,
    n: usize,
    path: &std::path::Path,
    (w, h): (u32, u32),
    dets: &[crate::postprocess::Detection],
    det: &Detector,
) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for d in dets {
        *counts.entry(d.class).or_insert(0usize) += 1;
    }
    let found: Vec<String> =
        counts.iter().map(|(&c, &m)| format!("{m} {}{}", det.label(c), if m > 1 { "s" } else { "" })).collect();
    let found = if found.is_empty() { "(no detections)".to_string() } else { found.join(", ") };
    format!("image {k}/{n} {}: {w}x{h} {found}", path.display())
}

/// Where the summary says the outputs went.
fn where_written(o: &Outputs) -> String {
    match (o.json, o.txt || o.img) {
        (JsonMode::Off, false) => "nothing written (--no-json without --save-txt or --save-img)".into(),
        (JsonMode::Beside, false) => "labelme JSON beside each image".into(),
        (JsonMode::Beside, true) => format!("labelme JSON beside each image, the rest in {}", o.dir.display()),
        _ => format!("results in {}", o.dir.display()),
    }
}

/// The model of `a`, with its class names, `--classes` and NMS settings checked against it.
fn load_detector(a: &DetectArgs) -> anyhow::Result<Detector> {
    let int8 = if a.simulate_qdq { crate::model::Int8::Simulated } else { crate::model::Int8::Native };
    let model = crate::model::Model::load_with(&a.model, a.imgsz, int8).context("loading the model")?;
    if let (Some((h, w)), Some((fh, fw))) = (a.imgsz, model.fixed_size()) {
        if (h, w) != (fh, fw) {
            eprintln!(
                "qdet: note: --imgsz {h},{w} does not apply: the model's input is fixed at {fh}x{fw} (export with \
                 imgsz=N, or dynamic=True, for another size)"
            );
        }
    }
    let nc = model.num_classes();
    let names = match &a.names {
        Some(file) => Some(checked_names(file, nc)?),
        None => None,
    };
    let mut det = Detector::new(model, a.imgsz, NmsOptions::default());
    if let Some(names) = names {
        // `checked_names` made sure there is one per class.
        det.set_names(names)?;
    }
    let classes = match &a.classes {
        Some(given) => Some(resolve_classes(given, det.names(), nc)?),
        None => None,
    };
    let conf = a.conf.unwrap_or(if a.video.track { 0.1 } else { 0.25 });
    det.set_nms(NmsOptions { conf, iou: a.iou, max_det: a.max_det, agnostic: a.agnostic, classes });
    Ok(det)
}

/// The names of a `--names` file, which must name every class of the model.
fn checked_names(file: &std::path::Path, nc: usize) -> anyhow::Result<Vec<String>> {
    let names = crate::meta::read_names_file(file).context("reading class names")?;
    if names.len() < nc {
        bail!("{}: {} names for the model's {nc} classes", file.display(), names.len());
    }
    if nc > 0 && names.len() > nc {
        eprintln!(
            "qdet: {} has {} names, the model {nc} classes: the first {nc} are used",
            file.display(),
            names.len()
        );
    }
    Ok(names)
}

/// `--classes` as ids: each entry an id below `nc` or one of `names`.
fn resolve_classes(given: &[String], names: &[String], nc: usize) -> anyhow::Result<Vec<usize>> {
    given
        .iter()
        .map(|g| {
            let g = g.trim();
            if let Ok(id) = g.parse::<usize>() {
                if nc > 0 && id >= nc {
                    bail!("--classes: class id {id} is out of range: the model has {nc} classes (0-{})", nc - 1);
                }
                return Ok(id);
            }
            match names.iter().position(|n| n == g).or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(g))) {
                Some(id) => Ok(id),
                None if names.is_empty() => {
                    bail!("--classes: '{g}' is not a class id, and the model names no classes (give ids, or --names)")
                }
                None => bail!("--classes: no class named '{g}'; the model's classes are {}", names.join(", ")),
            }
        })
        .collect()
}

fn print_summary(s: &DetectSummary, written: &str) {
    let done = if s.already_done > 0 { format!(", {} already done", s.already_done) } else { String::new() };
    eprintln!(
        "{} images: {} processed{done}, {} failed, {} detections; {written}",
        s.images, s.processed, s.failed, s.detections
    );
    if s.already_done + s.kept > 0 {
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        eprintln!(
            "  kept what existed: {} with all outputs (not run again), {} of other images; --overwrite replaces them",
            plural(s.already_done, "image"),
            plural(s.kept, "file")
        );
    }
    for (class, n) in &s.per_class {
        eprintln!("  {n:>6}  {class}");
    }
    let m = &s.mean_ms;
    eprintln!(
        "mean ms per image: decode {:.1}, preprocess {:.1}, inference {:.1}, postprocess {:.2}, write {:.1}; {:.2} images/s",
        m.decode,
        m.preprocess,
        m.inference,
        m.postprocess,
        m.write.unwrap_or(0.0),
        s.images_per_s
    );
    if s.failed > 0 {
        eprintln!("{} images could not be processed (each reported above)", s.failed);
    }
}
