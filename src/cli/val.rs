//! `qdet val`: flags in, the library's [`crate::val::run`] in between, Ultralytics' table out.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::model::{Int8, Model};
use crate::val::{self, ValOptions, ValReport};

use super::agreement::AgreementArgs;
use super::common::exit_status;

/// Problems listed in the text output before the rest is only counted (`--json` lists all).
const MAX_LISTED: usize = 50;

#[derive(Args)]
pub struct ValArgs {
    /// Ultralytics YOLO detection ONNX export (v5u, v8, v10, 11, 26).
    #[arg(long)]
    model: PathBuf,
    /// Ultralytics dataset yaml (`path`, `val`/`test`/`train`, `names` or `nc`). With
    /// --reference only its split's images are used, not its labels.
    #[arg(long, required_unless_present = "images")]
    data: Option<PathBuf>,
    /// Score --model against this model's detections instead of labels (e.g. the fp32 export
    /// of an int8 model): the reference's detections as `qdet detect` gives them (conf > 0.25,
    /// NMS IoU 0.7, max_det 300, predict's letterbox for both models) are the ground truth of
    /// the mAP, which ranks the model's predictions at --conf (single-label NMS). Also reports,
    /// over the reference boxes with conf >= 0.5, the largest and mean confidence drift
    /// (against the model's same-class prediction of highest IoU), the boxes lost (no
    /// same-class model detection, conf > 0.25, at IoU >= 0.5) and added (model detections
    /// >= 0.5 the reference lacks so), and the worst IoU of the matched ones.
    #[arg(long, value_name = "MODEL")]
    reference: Option<PathBuf>,
    /// Unlabelled images for --reference, instead of --data: files, folders (walked
    /// recursively) or glob patterns.
    #[arg(long, num_args = 1.., requires = "reference", conflicts_with = "data")]
    images: Vec<PathBuf>,
    /// Inference size for dynamic models (one number; `H,W` uses the larger); static models
    /// run at their own size [default: the model's metadata imgsz, else 640]. With --reference,
    /// `H,W` is used as `qdet detect --imgsz` uses it.
    #[arg(long, value_parser = crate::options::parse_imgsz)]
    imgsz: Option<(usize, usize)>,
    /// Confidence threshold (strictly above) of the predictions scored (the model's with --reference).
    #[arg(long, default_value_t = val::DEFAULT_CONF, value_parser = crate::options::parse_unit)]
    conf: f32,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = val::DEFAULT_IOU, value_parser = crate::options::parse_unit)]
    iou: f32,
    /// At most this many detections per image [default: 300, or the most labels in one image if more]
    /// (the model's predictions with --reference).
    #[arg(long)]
    max_det: Option<usize>,
    /// Which split of the yaml to score.
    #[arg(long, default_value = "val")]
    split: String,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Worker threads for decoding and inference [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Run a QDQ model's quantized convs as its float graph (Q/DQ simulated) instead of on
    /// qdet's integer kernels.
    #[arg(long)]
    simulate_qdq: bool,
}

pub fn val(a: ValArgs) -> anyhow::Result<ExitCode> {
    if a.max_det == Some(0) {
        bail!("--max-det must be at least 1");
    }
    if let Some(reference) = a.reference {
        return super::agreement::agreement(AgreementArgs {
            model: a.model,
            reference,
            images: a.images,
            data: a.data,
            split: a.split,
            imgsz: a.imgsz,
            conf: a.conf,
            iou: a.iou,
            max_det: a.max_det,
            json: a.json,
            threads: a.threads,
            simulate_qdq: a.simulate_qdq,
        });
    }
    let Some(data) = &a.data else { bail!("--data is required (or --reference with --images)") };
    let data = val::load_data(data, &a.split).context("reading the dataset")?;
    let imgsz = a.imgsz.map(|(h, w)| h.max(w));
    let n_images = val::list_images(&data.sources).context("listing the images")?.len();
    let inflight = super::common::setup_threads(a.threads, None, n_images)?;
    let int8 = if a.simulate_qdq { Int8::Simulated } else { Int8::Native };
    let model = Model::load_with(&a.model, imgsz.map(|n| (n, n)), int8).context("loading the model")?;
    if let (Some(size), Some(n)) = (model.fixed_size(), imgsz) {
        if size != (n, n) {
            eprintln!("qdet: note: --imgsz {n} ignored: the model's input is fixed at {}x{}", size.1, size.0);
        }
    }
    let bar = super::common::progress_bar(n_images as u64, "images");
    let opts = ValOptions { conf: a.conf, iou: a.iou, max_det: a.max_det, imgsz, inflight };
    let report = val::run(&model, &data, &opts, &|problem| {
        if let Some(p) = problem {
            bar.suspend(|| eprintln!("qdet: skipped {}", super::common::with_flag_hint(p)));
        }
        bar.inc(1);
    })
    .context("validating")?;
    bar.finish_and_clear();
    if a.json {
        super::common::print_json(&report)?;
    } else {
        super::common::print_stdout(&table(&report))?;
    }
    if !a.json {
        print_notes(&report);
    }
    Ok(exit_status(!report.skipped.is_empty()))
}

fn table(r: &ValReport) -> String {
    super::common::metrics_table(
        (r.images, r.instances, [r.precision, r.recall, r.map50, r.map50_95]),
        &r.classes,
        r.nc,
    )
}

/// Settings, timings and warnings, on stderr below the table.
fn print_notes(r: &ValReport) {
    if r.instances == 0 {
        eprintln!("qdet: warning: no labels found in the '{}' split, cannot compute metrics without labels", r.split);
    }
    let input = match r.input {
        Some((h, w)) => format!("{w}x{h} input"),
        None => format!("imgsz {} (rectangular inputs)", r.imgsz),
    };
    let m = &r.mean_ms;
    eprintln!(
        "{input}, conf {}, iou {}, max_det {}; mean ms per image: decode {:.1}, preprocess {:.1}, inference {:.1}, postprocess {:.1}",
        r.conf, r.iou, r.max_det, m.decode, m.preprocess, m.inference, m.postprocess
    );
    // Skipped images were reported as they happened.
    for p in r.warnings.iter().take(MAX_LISTED) {
        eprintln!("qdet: warning: {p}");
    }
    if r.warnings.len() > MAX_LISTED {
        eprintln!("qdet: ... and {} more warnings (--json lists all)", r.warnings.len() - MAX_LISTED);
    }
    if !r.skipped.is_empty() {
        eprintln!("{} of {} images were skipped and are not in the scores", r.skipped.len(), r.images_found);
    }
}
