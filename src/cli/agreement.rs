//! `qdet val --reference`: the images listed, both models loaded, [`crate::val::run_reference`]
//! in between, val's table and the agreement lines out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::common::{exit_status, metrics_table, print_json, print_stdout, progress_bar, setup_threads};
use crate::detector::Detector;
use crate::error::Problem;
use crate::model::{Int8, Model};
use crate::val::agreement::{AgreementSummary, Pair, Thresholds, Unpaired};
use crate::val::{self, AgreementReport};

/// Lost and added boxes listed in the text output (`--json` lists all).
const MAX_LISTED: usize = 20;

/// The `qdet val` flags agreement uses.
pub(super) struct AgreementArgs {
    pub model: PathBuf,
    pub reference: PathBuf,
    /// Unlabelled images; empty: the images of `data`'s split.
    pub images: Vec<PathBuf>,
    pub data: Option<PathBuf>,
    pub split: String,
    pub imgsz: Option<(usize, usize)>,
    pub conf: f32,
    pub iou: f32,
    pub max_det: Option<usize>,
    pub json: bool,
    pub threads: Option<usize>,
    pub simulate_qdq: bool,
}

pub(super) fn agreement(a: AgreementArgs) -> anyhow::Result<ExitCode> {
    let (images, mut unlisted) = list(&a)?;
    let inflight = setup_threads(a.threads, None, images.len())?;
    let int8 = if a.simulate_qdq { Int8::Simulated } else { Int8::Native };
    let t = Thresholds::new(a.conf, a.iou, a.max_det.unwrap_or(val::DEFAULT_MAX_DET));
    let load = |path: &Path, what: &str| -> anyhow::Result<Detector> {
        let model = Model::load_with(path, a.imgsz, int8).with_context(|| format!("loading the {what}"))?;
        Ok(Detector::new(model, a.imgsz, t.detect_nms()))
    };
    let (model, reference) = (load(&a.model, "model")?, load(&a.reference, "reference model")?);
    let bar = progress_bar(images.len() as u64, "images");
    let mut report = val::run_reference(&model, &reference, &images, &t, inflight, &|problem| {
        if let Some(p) = problem {
            bar.suspend(|| eprintln!("qdet: skipped {}", super::common::with_flag_hint(p)));
        }
        bar.inc(1);
    })
    .context("comparing the models")?;
    bar.finish_and_clear();
    report.images_found += unlisted.len();
    report.skipped.append(&mut unlisted);
    if a.json {
        print_json(&report)?;
    } else {
        let s = &report.agreement;
        let all = (s.images, s.instances, [s.precision, s.recall, s.map50, s.map50_95]);
        print_stdout(&(metrics_table(all, &s.classes, report.nc) + &lines(&report)))?;
        print_notes(&report);
    }
    Ok(exit_status(!report.skipped.is_empty()))
}

/// The images to compare on, and the folder entries that could not be read (reported as
/// skipped images, as `detect` reports them).
fn list(a: &AgreementArgs) -> anyhow::Result<(Vec<PathBuf>, Vec<Problem>)> {
    if !a.images.is_empty() {
        let collected = crate::sources::collect(&a.images).context("listing the images")?;
        let images: Vec<PathBuf> = collected.images.into_iter().map(|s| s.path).collect();
        let unlisted: Vec<Problem> = collected.skipped.into_iter().map(|(p, r)| Problem::new(p, r)).collect();
        for p in &unlisted {
            eprintln!("qdet: skipped {}", super::common::with_flag_hint(p));
        }
        if images.is_empty() {
            bail!("no images found in {}", show(&a.images));
        }
        return Ok((images, unlisted));
    }
    let Some(yaml) = &a.data else { bail!("--reference needs --images DIR (or --data with a dataset yaml)") };
    // Only the split's images: the labels play no part.
    let data = val::load_data(yaml, &a.split).context("reading the dataset")?;
    let images = val::list_images(&data.sources).context("listing the images")?;
    if images.is_empty() {
        bail!("{}: no images found for '{}' in {}", yaml.display(), a.split, show(&data.sources));
    }
    Ok((images, Vec::new()))
}

fn show(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// The agreement below the table: thresholds, drift, lost, added, IoU.
fn lines(r: &AgreementReport) -> String {
    let s = &r.agreement;
    let t = &s.thresholds;
    let name = |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut out = format!(
        "Labels: the detections of the reference {} (conf > {}, IoU {}, max_det {}, as qdet detect)\n\
         Agreement of {} on boxes >= {} (a partner: same class, IoU >= {}):\n",
        name(&r.reference),
        t.detect_conf,
        t.detect_iou,
        t.detect_max_det,
        name(&r.model),
        t.strong_conf,
        t.match_iou
    );
    out += &drift_line(s);
    out += &unpaired_lines("lost", "reference boxes the model does not detect", &s.lost);
    out += &unpaired_lines("added", "model boxes the reference does not detect", &s.added);
    out += &match s.iou.min {
        Some(min) => format!(
            "  worst IoU of matched boxes: {min:.3} (mean {:.3}, {} boxes){}\n",
            s.iou.mean.unwrap_or(0.0),
            s.iou.matched,
            s.iou.worst.as_ref().map_or(String::new(), |w| format!(": {}", pair(w)))
        ),
        None => "  worst IoU of matched boxes: none matched\n".into(),
    };
    out
}

fn drift_line(s: &AgreementSummary) -> String {
    let d = &s.drift;
    match (d.max, d.mean, d.p95, &d.worst) {
        (Some(max), Some(mean), Some(p95), Some(w)) => format!(
            "  confidence drift over {} reference boxes: max {max:.4}, p95 {p95:.4}, mean {mean:.4}; worst: {}\n",
            d.boxes,
            pair(w)
        ),
        _ => format!("  confidence drift: no reference box >= {}\n", s.thresholds.strong_conf),
    }
}

/// `image class [x1, y1, x2, y2] conf -> conf (IoU)`.
fn pair(p: &Pair) -> String {
    let b = |v: [f32; 4]| format!("[{:.1}, {:.1}, {:.1}, {:.1}]", v[0], v[1], v[2], v[3]);
    let model = match p.model {
        Some(m) => format!("{:.3} {} (IoU {:.3})", m.conf, b(m.bbox), p.iou),
        None => "nothing of its class".into(),
    };
    format!("{} {} {} {:.3} -> {model}", p.image.display(), p.name, b(p.reference.bbox), p.reference.conf)
}

fn unpaired_lines(what: &str, meaning: &str, u: &Unpaired) -> String {
    let mut out = format!("  {what}: {} of {} ({meaning})\n", u.count, u.of);
    for l in u.boxes.iter().take(MAX_LISTED) {
        let b = l.bbox;
        out += &format!(
            "    {} {} [{:.1}, {:.1}, {:.1}, {:.1}] {:.3}\n",
            l.image.display(),
            l.name,
            b[0],
            b[1],
            b[2],
            b[3],
            l.conf
        );
    }
    if u.boxes.len() > MAX_LISTED {
        out += &format!("    ... and {} more (--json lists all)\n", u.boxes.len() - MAX_LISTED);
    }
    out
}

/// Settings, timings and warnings, on stderr below the table.
fn print_notes(r: &AgreementReport) {
    let input = |fixed: Option<(usize, usize)>, imgsz: usize| match fixed {
        Some((h, w)) => format!("{w}x{h} input"),
        None => format!("imgsz {imgsz} (rectangular inputs)"),
    };
    let (t, m) = (&r.agreement.thresholds, &r.mean_ms);
    eprintln!(
        "model {}, reference {}; model predictions for the mAP: conf {}, iou {}, max_det {}; mean ms per image: \
         decode {:.1}, preprocess {:.1}, inference {:.1} (both models), postprocess {:.1}",
        input(r.input, r.imgsz),
        input(r.reference_input, r.reference_imgsz),
        t.val_conf,
        t.val_iou,
        t.val_max_det,
        m.decode,
        m.preprocess,
        m.inference,
        m.postprocess
    );
    for p in &r.warnings {
        eprintln!("qdet: warning: {p}");
    }
    if !r.skipped.is_empty() {
        eprintln!("{} of {} images were skipped and are not in the scores", r.skipped.len(), r.images_found);
    }
}
