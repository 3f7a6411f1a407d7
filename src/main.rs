//! The `qdet` command line: parses flags, builds the library objects once, dispatches.

mod cli_bench;
mod cli_calibrate;
mod cli_dataset;
mod cli_val;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use qdet::atomic::Existing;
use qdet::detector::Detector;
use qdet::postprocess::NmsOptions;
use qdet::run::{JsonMode, Outputs, Summary};

/// Exit status when the run finished but some images could not be processed.
const EXIT_SOME_FAILED: u8 = 2;

#[derive(Parser)]
#[command(
    name = "qdet",
    version,
    about = "Quantized YOLOv8 detection on the CPU: Ultralytics-exact boxes, labelme and YOLO outputs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Largest image to decode, in pixels (width x height after decoding); larger files are
    /// reported and skipped from their header, before any memory is allocated for them.
    #[arg(long, global = true, default_value_t = qdet::image_io::DEFAULT_MAX_PIXELS, value_name = "N")]
    max_pixels: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects in images and write labelme JSON / YOLO txt / annotated images.
    Detect(DetectArgs),
    /// Convert annotations: labelme JSON, YOLO txt, Pascal VOC XML -> YOLO txt or labelme JSON.
    Convert(cli_dataset::ConvertArgs),
    /// Split images and labels into Ultralytics images/{train,val} + labels/{train,val} with a data.yaml.
    Split(cli_dataset::SplitArgs),
    /// Make augmented copies of labelme-annotated images, with their shapes moved along.
    Augment(cli_dataset::AugmentArgs),
    /// Time models on this machine: latency per stage (p50/p90/p99) and the ratio between them.
    Bench(cli_bench::BenchArgs),
    /// Quantize a model to int8 (QDQ ONNX) from sample images, with per-layer error analysis.
    Calibrate(cli_calibrate::CalibrateArgs),
    /// Score a model on a labelled dataset split: P, R, mAP50, mAP50-95 as Ultralytics computes them.
    Val(cli_val::ValArgs),
}

#[derive(Args)]
struct DetectArgs {
    /// Ultralytics YOLOv8 detection ONNX export (fp32 or fp16, static or dynamic input).
    #[arg(long)]
    model: PathBuf,
    /// Image files, folders (walked recursively) or glob patterns.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// Output folder [default: runs/detect/predict, then predict2, predict3, ...].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Inference size for dynamic models, `640` or `H,W` [default: the model's metadata imgsz, else 640].
    #[arg(long, value_parser = parse_imgsz)]
    imgsz: Option<(usize, usize)>,
    /// Keep detections with a confidence strictly above this.
    #[arg(long, default_value_t = 0.25)]
    conf: f32,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = 0.7)]
    iou: f32,
    /// At most this many detections per image.
    #[arg(long, default_value_t = 300)]
    max_det: usize,
    /// Only these class ids, e.g. `--classes 0,2`.
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<usize>>,
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
}

fn parse_imgsz(s: &str) -> Result<(usize, usize), String> {
    let parts: Vec<&str> = s.split([',', 'x']).map(str::trim).collect();
    let nums: Vec<usize> = parts
        .iter()
        .map(|p| p.parse::<usize>().map_err(|_| format!("{s:?} is not a size like 640 or 384,640")))
        .collect::<Result<_, _>>()?;
    let max = qdet::model::MAX_IMGSZ;
    if nums.iter().any(|&n| n > max) {
        return Err(format!("{s:?} is larger than {max}"));
    }
    match nums.as_slice() {
        [n] if *n > 0 => Ok((*n, *n)),
        [h, w] if *h > 0 && *w > 0 => Ok((*h, *w)),
        _ => Err(format!("{s:?} is not a size like 640 or 384,640")),
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on a bad flag; the README's table says 1 ("nothing done: bad flags").
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
            // Printing fails only when stdout/stderr is closed; nothing is left to report to.
            let _ = e.print();
            return code;
        }
    };
    qdet::image_io::set_max_pixels(cli.max_pixels);
    let result = match cli.command {
        Command::Detect(args) => detect(args),
        Command::Convert(args) => cli_dataset::convert(args),
        Command::Split(args) => cli_dataset::split(args),
        Command::Augment(args) => cli_dataset::augment(args),
        Command::Val(args) => cli_val::val(args),
        Command::Calibrate(args) => cli_calibrate::calibrate(args),
        Command::Bench(args) => cli_bench::bench(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qdet: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the rayon pool (decoding) and tract's executor (inference); returns how many
/// images go through inference at once.
///
/// By default every thread gets its own image: on 2 cores that gave 1.72x the images/s of
/// one image on 2 tract threads for the COCO yolov8n at 640 and 1.85x for the fixture model
/// at 320 (README, "Throughput"), because tract's intra-op threading scales poorly there.
/// A single image gets all threads instead, for the lowest latency.
fn setup_threads(threads: Option<usize>, inflight: Option<usize>, images: usize) -> anyhow::Result<usize> {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if n == 0 || inflight == Some(0) {
        bail!("--threads and --inflight must be at least 1");
    }
    let inflight = inflight.unwrap_or(n).min(n).min(images.max(1));
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("starting the worker pool")?;
    let per_image = n / inflight;
    if per_image > 1 {
        use tract_linalg::multithread::{set_default_executor, Executor};
        set_default_executor(Executor::multithread(per_image));
        qdet::kernels::threads::set_threads_for(per_image, inflight);
    }
    Ok(inflight)
}

fn detect(a: DetectArgs) -> anyhow::Result<ExitCode> {
    let nms = NmsOptions { conf: a.conf, iou: a.iou, max_det: a.max_det, agnostic: a.agnostic, classes: a.classes };
    if !(0.0..=1.0).contains(&nms.conf) || !(0.0..=1.0).contains(&nms.iou) {
        bail!("--conf and --iou must be between 0 and 1");
    }
    let dir = a.out.clone().unwrap_or_else(|| qdet::sources::next_run_dir(&PathBuf::from("runs/detect"), "predict"));
    let collected =
        qdet::sources::collect_excluding(&a.sources, std::slice::from_ref(&dir)).context("collecting images")?;
    for (path, reason) in &collected.skipped {
        eprintln!("qdet: skipped {}: {reason}", path.display());
    }
    let images = collected.images;
    if images.is_empty() {
        bail!(
            "no images found in {}",
            a.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let inflight = setup_threads(a.threads, a.inflight, images.len())?;
    let int8 = if a.simulate_qdq { qdet::model::Int8::Simulated } else { qdet::model::Int8::Native };
    let model = qdet::model::Model::load_with(&a.model, a.imgsz, int8).context("loading the model")?;
    let mut det = Detector::new(model, a.imgsz, nms);
    if let Some(names) = &a.names {
        det.names = qdet::meta::read_names_file(names).context("reading class names")?;
    }
    let writes_to_dir = !a.no_json && !a.beside || a.save_txt || a.save_img;
    if writes_to_dir {
        qdet::run::check_writable(&dir).context("output folder is not writable")?;
        let stale = qdet::atomic::remove_stale_temps(&dir);
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
    let bar = progress_bar(images.len() as u64);
    let mut summary = qdet::run::run(&det, &images, &outputs, inflight, &|failure| {
        if let Some(f) = failure {
            bar.suspend(|| eprintln!("qdet: skipped {}: {}", f.path.display(), f.reason));
        }
        bar.inc(1);
    });
    // Folder entries that could not be walked count as failed inputs.
    summary.images += collected.skipped.len();
    summary.failed += collected.skipped.len();
    summary.failures.extend(collected.skipped.into_iter().map(|(path, reason)| qdet::run::Failure { path, reason }));
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(if summary.failed > 0 { ExitCode::from(EXIT_SOME_FAILED) } else { ExitCode::SUCCESS })
}

fn progress_bar(n: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}") {
        bar.set_style(style);
    }
    bar
}

fn print_summary(s: &Summary) {
    eprintln!(
        "{} images: {} processed, {} failed, {} detections; results in {}",
        s.images,
        s.processed,
        s.failed,
        s.detections,
        s.output_dir.display()
    );
    for (class, n) in &s.per_class {
        eprintln!("  {n:>6}  {class}");
    }
    let m = &s.mean_ms;
    eprintln!(
        "mean ms per image: decode {:.1}, preprocess {:.1}, inference {:.1}, postprocess {:.2}, write {:.1}; {:.2} images/s",
        m.decode, m.preprocess, m.inference, m.postprocess, m.write, s.images_per_s
    );
    if s.failed > 0 {
        eprintln!("{} images could not be processed:", s.failed);
        for f in &s.failures {
            eprintln!("  {}: {}", f.path.display(), f.reason);
        }
    }
}
