//! `qdet bench`: latency on the box itself, where there is no cargo. One image in flight, the
//! given threads inside it; warm-up runs excluded; p50/p90/p99 per stage and the ratio of
//! each model to the first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

use crate::detector::Detector;
use crate::image_io::{read_rgb, RgbImage};
use crate::model::Model;
use crate::postprocess::NmsOptions;

#[derive(Args)]
pub struct BenchArgs {
    /// Models to time (repeatable); ratios are against the first.
    #[arg(long = "model", required = true)]
    models: Vec<PathBuf>,
    /// Images to cycle through (files, folders, globs) [default: one mid-gray image of the
    /// model's input size].
    #[arg(long)]
    images: Vec<PathBuf>,
    /// Threads inside each inference [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs per model.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Also time every op of the inference (mean ms per run, by op).
    #[arg(long)]
    profile: bool,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Clone, Copy)]
struct Percentiles {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
}

#[derive(Serialize)]
struct ModelResult {
    path: PathBuf,
    preprocess: Percentiles,
    inference: Percentiles,
    postprocess: Percentiles,
    total: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_ms: Option<BTreeMap<String, f64>>,
    /// Per op, the sum over its nodes of each node's fastest run.
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_best_ms: Option<BTreeMap<String, f64>>,
    /// The graph passes in the order they ran, each with its count of rewrites.
    #[serde(skip_serializing_if = "Option::is_none")]
    graph_passes: Option<String>,
    /// The kernel most int8 convs run on; `int8_kernels` has every kernel (chosen per conv).
    #[serde(skip_serializing_if = "Option::is_none")]
    int8_kernel: Option<String>,
    /// The fp32 micro-kernel of qdet's float convs, when the model has some.
    #[serde(skip_serializing_if = "Option::is_none")]
    fp32_kernel: Option<&'static str>,
    /// Integer convs per kernel (`maddubs` where the weights keep it exact, `madd16` where not).
    #[serde(skip_serializing_if = "Option::is_none")]
    int8_kernels: Option<BTreeMap<String, usize>>,
    /// What the int8 rewrites did, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    int8_fused: Option<Int8Fused>,
    /// The model's Conv nodes and how many of them run on the integer kernels.
    #[serde(skip_serializing_if = "Option::is_none")]
    convs: Option<ConvCount>,
    /// The CPU class the kernels were capped at (`QDET_CPU`; `native`: every feature).
    cpu: &'static str,
}

/// The int8 rewrites' counts, named (a positional array made readers count positions).
#[derive(Serialize, Default, Clone, Copy)]
struct Int8Fused {
    /// Convs on the integer kernels.
    convs: usize,
    /// SiLUs fused into them.
    silu: usize,
    /// QuantizeLinears done in a conv's epilogue.
    requantized: usize,
    /// uint8 tensors written in their readers' channels-last layout.
    handed_over: usize,
    /// Concats quantized in place.
    concats: usize,
    /// Channel Splits written by their conv.
    splits: usize,
    /// Concat inputs quantized by the conv that writes them.
    concat_inputs: usize,
    /// Residual Adds done in the epilogue of the conv they add.
    residual: usize,
    /// MaxPools run on uint8.
    max_pools: usize,
    /// Nearest Resizes run on uint8.
    resizes: usize,
}

impl Int8Fused {
    fn of(r: &crate::passes::PatchReport) -> Int8Fused {
        Int8Fused {
            convs: r.replaced,
            silu: r.silu_fused,
            requantized: r.requant_fused,
            handed_over: r.handed_over,
            concats: r.concat_fused,
            splits: r.split_fused,
            concat_inputs: r.concat_inputs_requantized,
            residual: r.residual_fused,
            max_pools: r.max_pools_u8,
            resizes: r.resizes_u8,
        }
    }
}

#[derive(Serialize)]
struct ConvCount {
    total: usize,
    int8: usize,
}

/// Conv nodes in the ONNX file (the optimized plan no longer says which ops were convs).
fn conv_count(path: &Path, int8: usize) -> Option<ConvCount> {
    let model = crate::onnx::proto::read_model(path).ok()?;
    let total = model.graph.as_ref()?.node.iter().filter(|n| n.op_type == "Conv").count();
    Some(ConvCount { total, int8 })
}

/// Nearest-rank percentile of sorted `v`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    v.sort_by(f64::total_cmp);
    Percentiles { p50_ms: percentile(&v, 50.0), p90_ms: percentile(&v, 90.0), p99_ms: percentile(&v, 99.0) }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    super::common::setup_threads(a.threads, Some(1), 1)?;
    let images = load_images(&a.images)?;
    let results = a.models.iter().map(|path| time_model(path, &images, &a)).collect::<anyhow::Result<Vec<_>>>()?;
    if a.json {
        super::common::print_json(&results)?;
        return Ok(ExitCode::SUCCESS);
    }
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    super::common::print_stdout(&table(&results, &a, threads))?;
    Ok(ExitCode::SUCCESS)
}

/// The `--images` decoded once, before any timing; unreadable ones are reported and left out.
fn load_images(sources: &[PathBuf]) -> anyhow::Result<Vec<RgbImage>> {
    let mut images = Vec::new();
    if sources.is_empty() {
        return Ok(images);
    }
    let collected = crate::sources::collect(sources).context("collecting images")?;
    for (path, reason) in &collected.skipped {
        eprintln!("qdet: skipped {}: {reason}", path.display());
    }
    for src in collected.images {
        match read_rgb(&src.path) {
            Ok(img) => images.push(img),
            Err(e) => eprintln!("qdet: skipped {e}"),
        }
    }
    if images.is_empty() {
        bail!(
            "no readable images in {}",
            sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(images)
}

/// Times one model over `images` (or a mid-gray image of its input size).
fn time_model(path: &Path, images: &[RgbImage], a: &BenchArgs) -> anyhow::Result<ModelResult> {
    let model = Model::load(path, None).with_context(|| format!("loading {}", path.display()))?;
    let det = Detector::new(model, None, NmsOptions::default());
    let gray;
    let imgs: &[RgbImage] = if images.is_empty() {
        let (h, w) = det.target();
        gray = [RgbImage { width: w, height: h, data: vec![114; w * h * 3] }];
        &gray
    } else {
        images
    };
    // A dynamic model compiles a plan per letterboxed shape on first use (118 ms against 18
    // on the fixture): every shape the timed runs will see runs once first, so they time
    // inference, not compiles (up to the model's plan cache, 32 shapes).
    let mut shapes = std::collections::BTreeSet::new();
    for img in imgs.iter().take(a.warmup + a.runs) {
        let p = det.prepare_decoded(img);
        if shapes.insert(p.letterbox().out) {
            det.infer(&p).with_context(|| format!("running {}", path.display()))?;
        }
    }
    let (mut pre, mut inf, mut post, mut total) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut profile: BTreeMap<usize, crate::model::NodeTime> = BTreeMap::new();
    for i in 0..a.warmup + a.runs {
        let img = &imgs[i % imgs.len()];
        let t0 = Instant::now();
        let p = det.prepare_decoded(img);
        let t1 = Instant::now();
        let raw = det.infer(&p).with_context(|| format!("running {}", path.display()))?;
        let t2 = Instant::now();
        let dets = det.postprocess(&raw, p.letterbox());
        let t3 = Instant::now();
        std::hint::black_box(dets);
        if i >= a.warmup {
            pre.push(ms(t1 - t0));
            inf.push(ms(t2 - t1));
            post.push(ms(t3 - t2));
            total.push(ms(t3 - t0));
            if a.profile {
                det.model().run_profiled(p.chw(), p.letterbox().out, &mut profile)?;
            }
        }
    }
    let runs = a.runs as f64;
    let int8 = det.model().int8_report();
    let convs = conv_count(path, int8.as_ref().map_or(0, |r| r.convs_in_plan));
    Ok(ModelResult {
        convs,
        cpu: crate::runtime::RuntimeOptions::current().cpu.name(),
        path: path.to_path_buf(),
        preprocess: percentiles(pre),
        inference: percentiles(inf),
        postprocess: percentiles(post),
        total: percentiles(total),
        profile_ms: a.profile.then(|| by_op(&profile, |n| ms(n.total) / runs)),
        profile_best_ms: a.profile.then(|| by_op(&profile, |n| ms(n.best))),
        // Each graph pass of the plan, in order, with how many rewrites it did.
        graph_passes: det.model().pass_report().map(|r| r.to_string()),
        int8_kernel: int8.as_ref().and_then(|r| r.most_used_kernel()).map(kernel_name),
        fp32_kernel: fp32_kernel(det.model()),
        int8_kernels: int8
            .as_ref()
            .filter(|r| !r.kernels.is_empty())
            .map(|r| r.kernels.iter().map(|&(k, n)| (kernel_name(k), n)).collect()),
        int8_fused: int8.filter(|r| r.replaced > 0).map(|r| Int8Fused::of(&r)),
    })
}

/// The text table: p50/p90/p99 per stage with the ratio to the first model, then what the
/// int8 rewrites did and, with `--profile`, the slowest ops.
fn table(results: &[ModelResult], a: &BenchArgs, threads: usize) -> String {
    let mut lines = Vec::new();
    lines.push(format!(
        "{} timed runs per model after {} warm-up, {threads} thread(s), one image in flight",
        a.runs, a.warmup
    ));
    lines.push(format!(
        "{:<40} {:>10} {:>22} {:>22} {:>22} {:>8}",
        "model", "stage", "p50 ms", "p90 ms", "p99 ms", "ratio"
    ));
    let base = results.first().map(|r| (r.inference.p50_ms, r.total.p50_ms));
    for r in results {
        let name = r.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for (stage, p) in [
            ("preprocess", r.preprocess),
            ("inference", r.inference),
            ("postprocess", r.postprocess),
            ("total", r.total),
        ] {
            let ratio = match (stage, base) {
                ("inference", Some((b, _))) => format!("{:.2}x", p.p50_ms / b),
                ("total", Some((_, b))) => format!("{:.2}x", p.p50_ms / b),
                _ => String::new(),
            };
            lines.push(format!(
                "{name:<40} {stage:>10} {:>22.2} {:>22.2} {:>22.2} {ratio:>8}",
                p.p50_ms, p.p90_ms, p.p99_ms
            ));
        }
        if let (true, Some(passes)) = (a.profile, &r.graph_passes) {
            lines.push(format!("{name:<40} graph passes: {passes}"));
        }
        if let Some(kernels) = &r.int8_kernels {
            let k: Vec<String> = kernels.iter().map(|(k, n)| format!("{n} on {k}")).collect();
            let Int8Fused {
                convs,
                silu,
                requantized: requant,
                handed_over: packed,
                concats: concat,
                splits: split,
                concat_inputs: concat_in,
                residual,
                max_pools: pools,
                resizes,
            } = r.int8_fused.unwrap_or_default();
            lines.push(format!(
                "{name:<40} {convs} int8 convs ({}), {silu} with SiLU fused, {residual} with their residual Add, {requant} QuantizeLinears in their epilogue, \
                 {packed} of those in their readers' layout; {split} Splits written by their conv; {concat} Concats quantized in place, {concat_in} of their inputs by the conv; {pools} MaxPools and {resizes} Resizes on uint8",
                k.join(", ")
            ));
        }
        if let (Some(prof), Some(best)) = (&r.profile_ms, &r.profile_best_ms) {
            let mut ops: Vec<(&String, &f64)> = prof.iter().collect();
            ops.sort_by(|a, b| b.1.total_cmp(a.1));
            let sum: f64 = prof.values().sum();
            lines.push(format!("{name:<40} {:>24} {:>13} {:>6} {:>13}", "op", "mean", "share", "best"));
            for (op, t) in ops.iter().take(12) {
                lines.push(format!(
                    "{name:<40} {op:>24} {t:>10.2} ms {:>5.1}% {:>10.2} ms",
                    100.0 * **t / sum,
                    best.get(*op).copied().unwrap_or(0.0)
                ));
            }
            lines.push(format!(
                "{name:<40} {:>24} {sum:>10.2} ms {:>6} {:>10.2} ms",
                "all ops",
                "",
                best.values().sum::<f64>()
            ));
        }
    }
    lines.join("\n") + "\n"
}

/// A kernel as the JSON has always named it (`Avx2Maddubs`: CI greps for these).
fn kernel_name(k: crate::runtime::Kernel) -> String {
    format!("{:?}", k.isa())
}

/// The fp32 micro-kernel the model's float convs run on, if qdet runs any.
fn fp32_kernel(model: &crate::model::Model) -> Option<&'static str> {
    let runs_convs = model.pass_report().is_some_and(|r| r.count("f32_conv") > 0);
    crate::kernels::dispatch::fp32_kernel().filter(|_| runs_convs).map(|i| i.name())
}

/// Per op name, `f` summed over the op's nodes.
fn by_op(
    profile: &BTreeMap<usize, crate::model::NodeTime>,
    f: impl Fn(&crate::model::NodeTime) -> f64,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for n in profile.values() {
        *out.entry(n.op.clone()).or_insert(0.0) += f(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest rank, by hand: of 1..=10, p50 is the 5th value, p90 the 9th, p99 the 10th.
    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=10).rev().map(f64::from).collect());
        assert_eq!((p.p50_ms, p.p90_ms, p.p99_ms), (5.0, 9.0, 10.0));
        let one = percentiles(vec![3.5]);
        assert_eq!((one.p50_ms, one.p90_ms, one.p99_ms), (3.5, 3.5, 3.5));
    }
}
