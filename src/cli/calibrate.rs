//! `qdet calibrate`: flags in, [`crate::quant::calibrate`] in between, the QDQ model, the
//! report and the error-analysis tables out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use crate::atomic::{self, Existing};
use crate::onnx::proto;
use crate::quant::analysis::bar;
use crate::quant::calibrate::{self, Method, Options, Reconstruct, Report, Rounding, Upstream};
use crate::quant::sites::NamePattern;
use crate::val::agreement::AgreementSummary;

use super::common::exit_status;

/// The calibration images, sorted; those that cannot be read are reported.
fn collect_images(images: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    for dir in images {
        if !dir.exists() && !dir.to_string_lossy().contains(['*', '?', '[']) {
            bail!("{}: no such calibration folder or file", dir.display());
        }
    }
    let collected = crate::sources::collect(images).context("collecting calibration images")?;
    for (path, reason) in &collected.skipped {
        eprintln!("qdet: skipped {}: {reason}", path.display());
    }
    let found: Vec<PathBuf> = collected.images.into_iter().map(|s| s.path).collect();
    if found.is_empty() {
        bail!("no images found in {}", images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    Ok(found)
}

/// Which convs kept their weight pairs free, when pair bounding was asked for.
fn print_pairs(r: &Report) {
    if r.pair_tolerance.is_none() {
        return;
    }
    let costs: Vec<_> = r.convs.iter().filter_map(|c| c.pairs.map(|p| (c, p))).collect();
    let bounded = costs.iter().filter(|(_, p)| p.bounded).count();
    eprintln!("  weight pairs bounded (exact on vpmaddubsw) in {bounded} of {} GPTQ convs", costs.len());
    for (c, p) in costs.iter().filter(|(_, p)| !p.bounded) {
        eprintln!("  pairs kept free: {} (bounding them: {:.2}x its output error)", c.name, p.cost);
    }
}

/// Rows of each error table printed (the report JSON has them all).
const TABLE_ROWS: usize = 12;

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    Minmax,
    Percentile,
    Kl,
    Mse,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoundingArg {
    Nearest,
    Gptq,
}

#[derive(Clone, Copy, ValueEnum)]
enum PairsArg {
    Free,
    Bounded,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimizeArg {
    /// No optimization after the rounding.
    None,
    /// Block reconstruction: each conv (with its SiLU) relearns its rounding against the
    /// float model's output, in graph order, from the already-quantized upstream.
    Reconstruct,
}

#[derive(Clone, Copy, ValueEnum)]
enum UpstreamArg {
    /// The float model's tensor on its uint8 grid.
    Float,
    /// The quantized model's, the blocks before already reconstructed (BRECQ).
    Quantized,
    /// Half and half at random, element by element (QDrop).
    Mixed,
}

/// Adam's rate on the log of the weight scales with --optimize-scales.
const LEARNED_SCALES_LR: f32 = 1e-3;

#[derive(Clone, Copy, ValueEnum)]
enum ConcatArg {
    Input,
    Shared,
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// Ultralytics YOLO detection ONNX export (v5u, v8, v10, 11, 26), fp32, opset 13 or later.
    #[arg(long)]
    model: PathBuf,
    /// Calibration images: files, folders (walked recursively) or glob patterns.
    #[arg(long, required = true, num_args = 1..)]
    images: Vec<PathBuf>,
    /// Where to write the QDQ ONNX model (never the input model).
    #[arg(long)]
    out: PathBuf,
    /// Activation range observer (PPQ's); mse measured best on the fixture (docs/calibrate.md).
    #[arg(long, value_enum, default_value = "mse")]
    method: MethodArg,
    /// Use the first N images (sorted by path) [default: all].
    #[arg(long)]
    num: Option<usize>,
    /// Keep matching Conv nodes in float: a glob on the whole node name, or text found in
    /// it (`model.22` keeps the detect head float). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Keep the K convs the layerwise analysis finds most sensitive in float.
    #[arg(long, value_name = "K", default_value_t = 0)]
    auto_exclude: usize,
    /// Shift each quantized conv's bias per channel to cancel its mean output error on the
    /// calibration images (the default: it halves the worst confidence drift on real photos,
    /// docs/calibrate.md).
    #[arg(long, overrides_with = "no_bias_correct", hide = true)]
    bias_correct: bool,
    /// Leave the biases as quantized (no bias correction).
    #[arg(long, overrides_with = "bias_correct")]
    no_bias_correct: bool,
    /// Weight bits: 8 stores [-127, 127]; 7 stores [-63, 63].
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(7..=8))]
    weight_bits: u32,
    /// How int8 weights are rounded: GPTQ (each conv's rounding errors compensated through
    /// its input Hessian on the calibration images), or to nearest.
    #[arg(long, value_enum, default_value = "gptq")]
    weight_rounding: RoundingArg,
    /// 8-bit weights of each pair of neighbouring input channels: bounded, so that AVX2 and
    /// SSSE3 CPUs run them exactly on `vpmaddubsw` (0.75x of the exact 16-bit path's time;
    /// GPTQ compensates the bound, docs/calibrate.md), or free (slightly closer to fp32, the same speed
    /// on VNNI and ARM CPUs) [default: bounded with GPTQ rounding, free with nearest].
    #[arg(long, value_enum)]
    weight_pairs: Option<PairsArg>,
    /// With bounded weight pairs: keep a conv's pairs free where bounding them raises its
    /// output error (GPTQ's objective) by more than this fraction [default: bound every conv].
    #[arg(long, value_name = "F")]
    pair_tolerance: Option<f64>,
    /// A Concat read by one conv: one grid shared by all its inputs, as ONNX Runtime's
    /// quantizer writes it, or each input on its own uint8 grid (the Concat stays float,
    /// qdet's kernels read the parts; other runtimes run that conv in float). docs/calibrate.md.
    #[arg(long, value_enum, default_value = "shared")]
    concat_scales: ConcatArg,
    /// Train the quantization on the calibration images after rounding: `reconstruct` relearns
    /// each conv's integer weights (AdaRound) against the float model's output of its block,
    /// from the already-quantized upstream (minutes; docs/calibrate.md).
    #[arg(long, value_enum, default_value = "none")]
    optimize: OptimizeArg,
    /// With --optimize reconstruct: Adam steps per block (the time grows with it).
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    optimize_steps: u64,
    /// With --optimize reconstruct: where a block's input comes from while it learns
    /// (docs/calibrate.md has each measured).
    #[arg(long, value_enum, default_value = "quantized")]
    optimize_upstream: UpstreamArg,
    /// With --optimize reconstruct: learn each channel's weight scale too (LSQ's step size on
    /// the fixed integer grid).
    #[arg(long)]
    optimize_scales: bool,
    /// Images used by the error analysis (graphwise and layerwise); 0 skips it. With 48
    /// images or more, as many are also kept out of the calibration to check the result on.
    #[arg(long, default_value_t = 8)]
    analysis_images: usize,
    /// Write the calibration report (ranges, scales, per-conv errors) to this JSON file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Inference size for dynamic models, `640` or `H,W` [default: the model's metadata imgsz, else 640].
    #[arg(long, value_parser = crate::options::parse_imgsz)]
    imgsz: Option<(usize, usize)>,
    /// Replace an existing --out / --report file.
    #[arg(long)]
    overwrite: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

pub fn calibrate(a: CalibrateArgs) -> anyhow::Result<ExitCode> {
    check_outputs(&a)?;
    let existing = if a.overwrite { Existing::Overwrite } else { Existing::Keep };
    let exclude =
        a.exclude.iter().map(|p| NamePattern::parse(p)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    let images = collect_images(&a.images)?;
    warn_if_few(a.num.map_or(images.len(), |n| n.min(images.len())));
    let inflight = super::common::setup_threads(a.threads, None, images.len())?;
    let method = match a.method {
        MethodArg::Minmax => Method::Minmax,
        MethodArg::Percentile => Method::Percentile,
        MethodArg::Kl => Method::Kl,
        MethodArg::Mse => Method::Mse,
    };
    let opts = Options {
        method,
        num: a.num,
        exclude,
        weight_bits: a.weight_bits,
        rounding: match a.weight_rounding {
            RoundingArg::Nearest => Rounding::Nearest,
            RoundingArg::Gptq => Rounding::Gptq,
        },
        pair_tolerance: match (a.weight_pairs, a.weight_rounding) {
            (Some(PairsArg::Free), _) | (None, RoundingArg::Nearest) => None,
            (Some(PairsArg::Bounded), _) | (None, RoundingArg::Gptq) => Some(a.pair_tolerance.unwrap_or(f64::INFINITY)),
        },
        bias_correct: a.bias_correct || !a.no_bias_correct,
        concat_per_input: matches!(a.concat_scales, ConcatArg::Input),
        analysis_images: a.analysis_images,
        auto_exclude: a.auto_exclude,
        imgsz: a.imgsz,
        inflight,
        reconstruct: reconstruct_options(&a),
    };
    let bar = super::common::progress_bar(0, "images");
    let done = calibrate::calibrate(&a.model, &images, &opts, &super::common::ticker(&bar))
        .with_context(|| format!("calibrating {}", a.model.display()))?;
    bar.finish_and_clear();
    atomic::write(&a.out, &proto::encode(&done.model), existing).context("writing the quantized model")?;
    if let Some(path) = &a.report {
        let json = serde_json::to_string_pretty(&done.report)? + "\n";
        atomic::write(path, json.as_bytes(), existing).context("writing the report")?;
    }
    super::common::print_stdout(&tables(&done.report))?;
    let r = &done.report;
    let quantized = r.convs.iter().filter(|c| c.quantized).count();
    eprintln!(
        "qdet: {} of {} convs quantized ({}, {}-bit weights{}{}), {} images at {}x{}, {:.1} ms/image for statistics, {:.1} s in all; wrote {}",
        quantized,
        r.convs.len(),
        r.method.name(),
        r.weight_bits,
        if r.weight_rounding == Rounding::Gptq { " rounded by GPTQ" } else { "" },
        if r.bias_correct { ", bias-corrected" } else { "" },
        r.images,
        r.input_size[1],
        r.input_size[0],
        r.ms_per_image,
        r.seconds,
        a.out.display()
    );
    print_pairs(r);
    print_reconstruction(r);
    for c in r.convs.iter().filter(|c| !c.quantized) {
        eprintln!("  kept float: {} ({})", c.name, c.kept_float.as_deref().unwrap_or("not chosen"));
    }
    if !r.skipped.is_empty() {
        eprintln!("qdet: {} images skipped:", r.skipped.len());
        for f in &r.skipped {
            eprintln!("  {}: {}", f.path.display(), f.reason);
        }
    }
    Ok(exit_status(!r.skipped.is_empty()))
}

/// Before the statistics, not after: the outputs are not the input model, do not exist
/// (without --overwrite), and their folders are made (as detect's --out is) and take a file.
fn check_outputs(a: &CalibrateArgs) -> anyhow::Result<()> {
    if same_file(&a.model, &a.out) {
        bail!("--out {} is the input model: qdet never overwrites the model it calibrates", a.out.display());
    }
    for p in std::iter::once(&a.out).chain(&a.report) {
        if !a.overwrite && p.exists() {
            bail!("{} already exists (pass --overwrite to replace it)", p.display());
        }
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        crate::run::check_writable(dir).with_context(|| format!("{} cannot be written", p.display()))?;
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The two error tables, worst first, each row with a bar scaled to the worst.
fn tables(r: &Report) -> String {
    let mut lines = Vec::new();
    let mut graphwise: Vec<(&str, f64, f64)> =
        r.convs.iter().filter_map(|c| c.graphwise.map(|g| (c.name.as_str(), g.nsr, g.cosine))).collect();
    graphwise.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(&(_, worst, _)) = graphwise.first() {
        lines.push(format!(
            "Graphwise error (all quantized, each conv output vs float), worst {} of {}:",
            TABLE_ROWS.min(graphwise.len()),
            graphwise.len()
        ));
        lines.push(format!("  {:<44} {:>9} {:>9}", "conv", "NSR", "cosine"));
        for (name, nsr, cos) in graphwise.iter().take(TABLE_ROWS) {
            lines.push(format!("  {name:<44} {nsr:>9.5} {cos:>9.5} {}", bar(*nsr, worst, 24)));
        }
    }
    let mut layerwise: Vec<(&str, f64, f64, f64)> = r
        .convs
        .iter()
        .filter_map(|c| c.layerwise.map(|l| (c.name.as_str(), l.key(), l.scores.nsr, l.boxes.nsr)))
        .collect();
    layerwise.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(&(_, worst, _, _)) = layerwise.first() {
        lines.push(format!(
            "Layerwise sensitivity (only this conv quantized, model output vs float), worst {} of {}:",
            TABLE_ROWS.min(layerwise.len()),
            layerwise.len()
        ));
        lines.push(format!("  {:<44} {:>11} {:>11}", "conv", "score NSR", "box NSR"));
        for (name, key, scores, boxes) in layerwise.iter().take(TABLE_ROWS) {
            lines.push(format!("  {name:<44} {scores:>11.3e} {boxes:>11.3e} {}", bar(*key, worst, 24)));
        }
    }
    if let Some(o) = r.output_error {
        lines.push(format!(
            "Model output, all quantized vs float: scores NSR {:.3e} (cosine {:.5}), boxes NSR {:.3e} (cosine {:.6})",
            o.scores.nsr, o.scores.cosine, o.boxes.nsr, o.boxes.cosine
        ));
    }
    if let Some(a) = &r.agreement {
        lines.push(agreement_line(a, r));
    }
    lines.join("\n") + "\n"
}

/// Fewer calibration images than this get a warning (docs/calibrate.md has the measurement).
const MIN_IMAGES: usize = 16;

fn warn_if_few(used: usize) {
    if used < MIN_IMAGES {
        eprintln!(
            "qdet: warning: calibrating on {used} image{}: ranges seen on so few miss what other photos hold \
             (on the COCO yolov8n, 85 photos it was not calibrated on agreed with fp32 at mAP50-95 0.933 \
             after 1 image, 0.970 after 4 to 16, 0.977 after 32); give {MIN_IMAGES} or more like the box will see",
            if used == 1 { "" } else { "s" }
        );
    }
}

/// The agreement of the written model with the float one, in one line, and a verdict.
fn agreement_line(a: &AgreementSummary, r: &Report) -> String {
    let held_out = !r.held_out.is_empty();
    let images = if held_out { r.held_out.len() } else { r.analysis_images };
    let drift = match (a.drift.max, a.drift.mean) {
        (Some(max), Some(mean)) => format!("max {max:.3} (mean {mean:.3})"),
        _ => "none measured".into(),
    };
    let line = format!(
        "Detections vs float on {images} {}images (as qdet val --reference): mAP50-95 {:.3}, mAP50 {:.3}; boxes >= {}: \
         confidence drift {drift}, {} of {} lost, {} added, worst IoU {}",
        if held_out { "held-out " } else { "" },
        a.map50_95,
        a.map50,
        a.thresholds.strong_conf,
        a.lost.count,
        a.lost.of,
        a.added.count,
        a.iou.min.map_or("-".into(), |v| format!("{v:.3}"))
    );
    format!("{line}\n{}", verdict(a, images, held_out))
}

/// One line a newcomer can act on. A check on calibration images flatters the file (the
/// default on the COCO yolov8n scores 0.977 on 85 photos it was not calibrated on), so with
/// enough images it runs on some held out of the calibration.
fn verdict(a: &AgreementSummary, images: usize, held_out: bool) -> String {
    let lost = a.lost.count + a.added.count;
    let val = "`qdet val --model INT8 --reference FP32 --images DIR`";
    let judge = if held_out {
        format!("{images} images kept out of the calibration; judge on more with {val}")
    } else {
        format!("these {images} images were calibrated on; judge on others with {val}")
    };
    if a.map50_95 >= 0.95 && lost == 0 {
        format!("Verdict: close to fp32 ({judge})")
    } else if a.map50_95 >= 0.9 {
        format!("Verdict: some boxes move or change; {judge}, and try more calibration images or --auto-exclude 3")
    } else {
        format!("Verdict: far from fp32; try more calibration images, --auto-exclude 3, or keep fp32 ({judge})")
    }
}

/// How many blocks reconstruction improved, and by how much (the report has each).
fn print_reconstruction(r: &Report) {
    let blocks: Vec<_> = r.convs.iter().filter_map(|c| c.reconstruction).collect();
    if blocks.is_empty() {
        return;
    }
    let mut ratios: Vec<f64> = blocks.iter().map(|b| b.after.min(b.before) / b.before.max(f64::MIN_POSITIVE)).collect();
    ratios.sort_by(f64::total_cmp);
    eprintln!(
        "qdet: reconstruction learned {} of {} blocks; their output error on the sample x{:.2} (median block)",
        blocks.iter().filter(|b| b.kept).count(),
        blocks.len(),
        ratios[ratios.len() / 2]
    );
}

fn reconstruct_options(a: &CalibrateArgs) -> Option<Reconstruct> {
    match a.optimize {
        OptimizeArg::None => None,
        OptimizeArg::Reconstruct => Some(Reconstruct {
            steps: a.optimize_steps as usize,
            upstream: match a.optimize_upstream {
                UpstreamArg::Float => Upstream::Float,
                UpstreamArg::Quantized => Upstream::Quantized,
                UpstreamArg::Mixed => Upstream::Mixed,
            },
            scale_lr: if a.optimize_scales { LEARNED_SCALES_LR } else { 0.0 },
            ..Reconstruct::default()
        }),
    }
}
