//! `qdet calibrate`: statistics of every quantized tensor over sample images (with `detect`'s
//! exact preprocessing), then the QDQ model, optionally sensitivity-pruned and bias-corrected,
//! and the error analysis of what was written.

mod observer;
mod pass;
mod reconstruct;
mod rounding;
mod stages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tract_onnx::pb;

use self::pass::Setup;
pub use self::reconstruct::{BlockError, Reconstruct, Upstream};
use self::stages::Calibration;
use super::analysis::{ErrorStats, OutputError};
use super::observers::QuantBounds;
use super::qdq;
use super::sites::{self, ConvSite, NamePattern};
use crate::detector::Detector;
use crate::error::{Error, Problem, Result};
use crate::onnx::proto;
use crate::postprocess::NmsOptions;
use crate::progress::Progress;
use crate::val::agreement::AgreementSummary;

/// Activation range calibration method (PPQ's observer names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Minmax,
    Percentile,
    Kl,
    Mse,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Minmax => "minmax",
            Method::Percentile => "percentile",
            Method::Kl => "kl",
            Method::Mse => "mse",
        }
    }
}

/// How the int8 weights are rounded at their per-channel scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rounding {
    /// Each weight to its nearest integer (PPQ's and ONNX Runtime's).
    Nearest,
    /// GPTQ: column by column, each column's error moved onto the next by the conv's input
    /// Hessian on the calibration images ([`crate::quant::gptq`]).
    Gptq,
}

impl Rounding {
    pub fn name(self) -> &'static str {
        match self {
            Rounding::Nearest => "nearest",
            Rounding::Gptq => "gptq",
        }
    }
}

/// Weight bits: 8 is `[-127, 127]`; 7 is `[-63, 63]`, for `vpmaddubsw` kernels whose
/// 16-bit pair sums must not saturate (255 * 63 * 2 < 32767).
pub fn weight_bounds(bits: u32) -> QuantBounds {
    let q = (1 << (bits - 1)) - 1;
    QuantBounds { qmin: -q, qmax: q, symmetric: true }
}

/// `vpmaddubsw`'s limit on a pair's weights of one sign: `255 * 128 < 2^15`.
pub const PAIR_LIMIT: i32 = 128;

/// One conv's GPTQ integers.
pub(crate) struct Rounded {
    pub q: Vec<i8>,
    /// Per-channel weight scales, when not the absmax ones (pair bounding widens some).
    pub scales: Option<Vec<f32>>,
    /// With pair bounding asked for: whether the conv took it, and at what cost.
    pub pairs: Option<PairCost>,
}

/// What bounding a conv's weight pairs costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairCost {
    /// Whether the written weights are pair-bounded (`vpmaddubsw` runs the conv exactly).
    pub bounded: bool,
    /// GPTQ's output error (over the calibration patches) with the bound, over without it.
    pub cost: f64,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub method: Method,
    /// Use the first `num` images (sorted by path); all when `None`.
    pub num: Option<usize>,
    pub exclude: Vec<NamePattern>,
    pub weight_bits: u32,
    pub rounding: Rounding,
    /// Pair-bound the 8-bit weights of each conv GPTQ rounds, so that `vpmaddubsw` (AVX2,
    /// SSSE3) runs it exactly ([`crate::kernels::WeightRange::max_pair`]), where GPTQ's output
    /// error grows by at most this fraction; `None`: no bound. Needs `Rounding::Gptq`.
    pub pair_tolerance: Option<f64>,
    pub bias_correct: bool,
    /// A Concat one conv reads is quantized per input ([`sites::concat_parts`]), not as one
    /// tensor.
    pub concat_per_input: bool,
    /// Images for the error analysis (0: no analysis, and no `auto_exclude`).
    pub analysis_images: usize,
    /// Keep this many of the most sensitive convs (layerwise) in float.
    pub auto_exclude: usize,
    /// Inference size for dynamic models (as `detect`'s `--imgsz`).
    pub imgsz: Option<(usize, usize)>,
    /// Images processed in parallel.
    pub inflight: usize,
    /// Block reconstruction of the chosen convs' integer weights after their rounding
    /// (`--optimize reconstruct`); `None`: none.
    pub reconstruct: Option<Reconstruct>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    pub name: String,
    pub observed_min: f32,
    pub observed_max: f32,
    /// The real range the uint8 grid covers: `[(0 - zp) * scale, (255 - zp) * scale]`.
    pub clip_min: f32,
    pub clip_max: f32,
    pub scale: f32,
    pub zero_point: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConvReport {
    pub name: String,
    pub input: String,
    pub output: String,
    pub quantized: bool,
    /// Why a conv stays float.
    pub kept_float: Option<String>,
    /// Graphwise: this conv's output in the quantized model against the float model.
    pub graphwise: Option<ErrorStats>,
    /// Layerwise: the model output with only this conv quantized.
    pub layerwise: Option<OutputError>,
    /// Largest |bias shift| bias correction applied, in the conv's output units.
    pub bias_shift_max: Option<f64>,
    /// With pair bounding asked for: whether this conv's weights are pair-bounded and what
    /// the bound costs in output error.
    pub pairs: Option<PairCost>,
    /// With `--optimize reconstruct`: the block's output error on its sample before and after.
    pub reconstruction: Option<BlockError>,
}

impl ConvReport {
    fn float(c: sites::FloatConv) -> ConvReport {
        ConvReport {
            name: c.name,
            input: c.input,
            output: c.output,
            quantized: false,
            kept_float: Some(c.why),
            graphwise: None,
            layerwise: None,
            bias_shift_max: None,
            pairs: None,
            reconstruction: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub model: PathBuf,
    pub method: Method,
    pub weight_bits: u32,
    pub weight_rounding: Rounding,
    /// [`Options::pair_tolerance`].
    pub pair_tolerance: Option<f64>,
    pub bias_correct: bool,
    /// Concats one conv reads quantized per input (`--concat-scales input`).
    pub concat_per_input: bool,
    /// [`Options::reconstruct`].
    pub reconstruct: Option<Reconstruct>,
    pub input_size: [usize; 2],
    pub images: usize,
    pub skipped: Vec<Problem>,
    /// Wall time of the statistics pass(es) per image.
    pub ms_per_image: f64,
    pub analysis_images: usize,
    /// The whole quantized model against the float one, at the detect head output.
    pub output_error: Option<OutputError>,
    /// The written model's detections against the float model's, as `qdet val --model OUT
    /// --reference MODEL` measures them: on `held_out` when there are such images, else on
    /// the analysis images (which were calibrated on, and flatter the file).
    pub agreement: Option<AgreementSummary>,
    /// Images kept out of the calibration to check the result on ([`hold_out`]).
    pub held_out: Vec<PathBuf>,
    pub tensors: Vec<TensorReport>,
    pub convs: Vec<ConvReport>,
    pub seconds: f64,
}

pub struct Calibrated {
    pub model: pb::ModelProto,
    pub report: Report,
}

/// Metadata keys qdet adds to the QDQ model.
pub const META_SCHEME: &str = "qdet.quantization";

/// Checks that `model` can be calibrated: an fp32, not yet quantized, opset >= 13 detection
/// export. Returns its protobuf.
pub fn load_float_model(path: &Path) -> Result<pb::ModelProto> {
    let model = proto::read_model(path)?;
    let unsupported = |reason: String| Error::Unsupported { path: path.into(), reason };
    if let Some(op) = sites::quantized_op(&model) {
        return Err(unsupported(format!("it is already quantized (it has {op} nodes); calibrate the float export")));
    }
    if sites::has_f16_weights(&model) {
        return Err(unsupported("it has fp16 weights; calibrate the fp32 export (half=False)".into()));
    }
    let opset = proto::opset(&model);
    if opset < qdq::MIN_OPSET {
        return Err(unsupported(format!(
            "its opset is {opset}; QDQ with per-channel weights needs opset >= {}: export with opset={}",
            qdq::MIN_OPSET,
            qdq::MIN_OPSET
        )));
    }
    Ok(model)
}

/// Calibrates `model_path` over `images` (already listed and sorted by the caller).
pub fn calibrate(model_path: &Path, images: &[PathBuf], opts: &Options, on_event: Progress) -> Result<Calibrated> {
    let start = Instant::now();
    let float = load_float_model(model_path)?;
    let det = Detector::load(model_path, opts.imgsz, NmsOptions::default())?;
    let (images, held_out) = hold_out(check_options(images, opts)?, opts.analysis_images);
    let setup = Setup { det, images, inflight: opts.inflight, on_event };
    let mut cal = Calibration::new(&float, model_path, setup, opts)?;
    let mut kept_float = kept_float(&cal.sites, opts)?;
    let candidates: Vec<usize> = (0..cal.sites.len()).filter(|i| !kept_float.contains_key(i)).collect();
    let stats = cal.statistics(&candidates, opts.method)?;
    let analysis_set: Vec<PathBuf> = stats.good.iter().take(opts.analysis_images).cloned().collect();

    let mut layerwise = BTreeMap::new();
    if !analysis_set.is_empty() {
        layerwise = cal.layerwise(&stats.acts, &candidates, &analysis_set)?;
        let mut ranked: Vec<(usize, f64)> = layerwise.iter().map(|(&i, e)| (i, e.key())).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (rank, (i, _)) in ranked.iter().take(opts.auto_exclude).enumerate() {
            kept_float.insert(*i, format!("--auto-exclude: sensitivity rank {}", rank + 1));
        }
    }
    let chosen = chosen(&candidates, &kept_float)?;
    let reconstruction = round_weights(&mut cal, &stats, &chosen, opts)?;
    let (biases, shifts) =
        if opts.bias_correct { cal.correct_biases(&stats.acts, &chosen, &stats.good)? } else { Default::default() };
    let mut model = cal.build(&stats.acts, &chosen, &biases);
    let (graphwise, output_error) =
        if analysis_set.is_empty() { Default::default() } else { cal.graphwise(&model, &chosen, &analysis_set)? };
    let check_set = Some(if held_out.is_empty() { &analysis_set } else { &held_out }).filter(|s| !s.is_empty());
    let agreement = check_set.map(|s| cal.agreement(&model, s)).transpose()?;

    let mut convs: Vec<(usize, ConvReport)> = cal
        .sites
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let report = ConvReport {
                name: s.name.clone(),
                input: s.input.clone(),
                output: s.output.clone(),
                quantized: chosen.contains(&i),
                kept_float: kept_float.get(&i).cloned(),
                graphwise: graphwise.get(&i).copied(),
                layerwise: layerwise.get(&i).copied(),
                bias_shift_max: shifts.get(&i).copied(),
                pairs: cal.rounded.get(&i).and_then(|r| r.pairs),
                reconstruction: reconstruction.get(&i).copied(),
            };
            (s.node_index, report)
        })
        .collect();
    convs.extend(sites::float_only_convs(&float).into_iter().map(|c| (c.node_index, ConvReport::float(c))));
    convs.sort_by_key(|(node, _)| *node);
    let (size, convs) = (cal.setup.det.target(), convs.into_iter().map(|(_, c)| c).collect());
    let report = Report {
        tool: format!("qdet {}", env!("CARGO_PKG_VERSION")),
        model: model_path.into(),
        method: opts.method,
        weight_bits: opts.weight_bits,
        weight_rounding: opts.rounding,
        pair_tolerance: opts.pair_tolerance,
        bias_correct: opts.bias_correct,
        concat_per_input: opts.concat_per_input,
        reconstruct: opts.reconstruct,
        input_size: size.into(),
        images: stats.good.len(),
        skipped: stats.skipped,
        ms_per_image: stats.ms_per_image,
        analysis_images: analysis_set.len(),
        output_error,
        agreement,
        held_out,
        tensors: stats.tensors,
        convs,
        seconds: start.elapsed().as_secs_f64(),
    };
    set_metadata(&mut model, &report, cal.bounds);
    Ok(Calibrated { model, report })
}

/// The chosen convs' integer weights: GPTQ's if asked, then reconstruction's if asked
/// (returning each block's errors).
fn round_weights(
    cal: &mut Calibration,
    stats: &stages::Statistics,
    chosen: &[usize],
    opts: &Options,
) -> Result<BTreeMap<usize, BlockError>> {
    if opts.rounding == Rounding::Gptq {
        cal.rounded = cal.gptq_weights(&stats.acts, chosen, &stats.good)?;
    }
    opts.reconstruct
        .map(|how| cal.reconstruct(&stats.acts, chosen, &stats.good, how))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// The candidate convs not kept float: those quantized.
fn chosen(candidates: &[usize], kept_float: &BTreeMap<usize, String>) -> Result<Vec<usize>> {
    let chosen: Vec<usize> = candidates.iter().copied().filter(|i| !kept_float.contains_key(i)).collect();
    if chosen.is_empty() {
        return Err(Error::Invalid("every Conv is excluded: nothing to quantize".into()));
    }
    Ok(chosen)
}

/// Calibration keeps at least this many images when it holds some out for its check: the
/// COCO yolov8n's agreement on 85 photos it was not calibrated on stops improving past 32
/// (docs/calibrate.md).
pub const KEEP_FOR_CALIBRATION: usize = 40;

/// Splits `images` into those calibrated on and `k` held out, spread evenly over the sorted
/// list (so over its folders), for the agreement check; none are held out when that would
/// leave fewer than [`KEEP_FOR_CALIBRATION`].
pub fn hold_out(images: Vec<PathBuf>, k: usize) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let n = images.len();
    if k == 0 || n < KEEP_FOR_CALIBRATION + k {
        return (images, Vec::new());
    }
    // The middle of each of k equal slices: distinct, as each slice has at least one image.
    let picked: Vec<usize> = (0..k).map(|j| (2 * j + 1) * n / (2 * k)).collect();
    let (mut kept, mut held) = (Vec::with_capacity(n - k), Vec::with_capacity(k));
    for (i, p) in images.into_iter().enumerate() {
        if picked.contains(&i) {
            held.push(p);
        } else {
            kept.push(p);
        }
    }
    (kept, held)
}

/// The images calibration uses, once the options are checked.
fn check_options(images: &[PathBuf], opts: &Options) -> Result<Vec<PathBuf>> {
    if images.is_empty() {
        return Err(Error::Invalid("no calibration images".into()));
    }
    let images: Vec<PathBuf> = match opts.num {
        Some(0) => return Err(Error::Invalid("--num must be at least 1".into())),
        Some(n) if n > images.len() => {
            return Err(Error::Invalid(format!("--num {n} asks for more images than the {} found", images.len())))
        }
        Some(n) => images[..n].to_vec(),
        None => images.to_vec(),
    };
    if opts.weight_bits != 7 && opts.weight_bits != 8 {
        return Err(Error::Invalid("weight bits must be 8 or 7".into()));
    }
    if opts.pair_tolerance.is_some() && opts.rounding != Rounding::Gptq {
        return Err(Error::Invalid(
            "pair-bounded weights need GPTQ rounding, which compensates the bound (weight rounding gptq)".into(),
        ));
    }
    if opts.pair_tolerance.is_some_and(|t| t.is_nan() || t < 0.0) {
        return Err(Error::Invalid("the pair tolerance must be 0 or more".into()));
    }
    if opts.auto_exclude > 0 && opts.analysis_images == 0 {
        return Err(Error::Invalid("--auto-exclude needs the layerwise analysis (analysis images > 0)".into()));
    }
    Ok(images)
}

/// The convs that stay float before any analysis, with the reason: the DFL decode, and
/// what `--exclude` names (each pattern must match a conv).
fn kept_float(sites: &[ConvSite], opts: &Options) -> Result<BTreeMap<usize, String>> {
    for p in &opts.exclude {
        if !sites.iter().any(|s| p.matches(&s.name)) {
            let example = sites.first().map_or(String::new(), |s| format!(" (names look like {:?})", s.name));
            return Err(Error::Invalid(format!("--exclude {p:?} matches no Conv node{example}")));
        }
    }
    let mut kept = BTreeMap::new();
    for (i, s) in sites.iter().enumerate() {
        if s.dfl {
            kept.insert(i, "DFL decode of the detect head".into());
        } else if opts.exclude.iter().any(|p| p.matches(&s.name)) {
            kept.insert(i, "--exclude".into());
        }
    }
    Ok(kept)
}

/// Records in the model how it was quantized, for whoever runs it later.
fn set_metadata(model: &mut pb::ModelProto, r: &Report, bounds: QuantBounds) {
    let kept: Vec<&str> = r.convs.iter().filter(|c| !c.quantized).map(|c| c.name.as_str()).collect();
    qdq::set_metadata(
        model,
        &[
            (
                META_SCHEME,
                format!(
                    "Conv inputs uint8 per-tensor asymmetric{}; Conv weights int8 per-channel symmetric [{}, {}]; \
                     bias int32 at input_scale*weight_scale; everything else float",
                    if r.concat_per_input { " (a Concat one 1x1 Conv reads: per input)" } else { "" },
                    bounds.qmin,
                    bounds.qmax
                ),
            ),
            ("qdet.method", r.method.name().to_string()),
            ("qdet.calibration_images", r.images.to_string()),
            ("qdet.bias_correct", r.bias_correct.to_string()),
            ("qdet.kept_float", kept.join(",")),
            ("qdet.version", env!("CARGO_PKG_VERSION").to_string()),
        ],
    );
    // Recorded only when not the default, so nearest-rounded files stay as they were.
    if r.weight_rounding != Rounding::Nearest {
        qdq::set_metadata(model, &[("qdet.weight_rounding", r.weight_rounding.name().to_string())]);
    }
    if let Some(t) = r.pair_tolerance {
        let bounded = r.convs.iter().filter(|c| c.pairs.is_some_and(|p| p.bounded)).count();
        qdq::set_metadata(
            model,
            &[("qdet.weight_pairs", format!("bounded to {PAIR_LIMIT} in {bounded} convs (tolerance {t})"))],
        );
    }
}
