//! `qdet calibrate`: statistics of every quantized tensor over sample images (with `detect`'s
//! exact preprocessing), then the QDQ model, optionally sensitivity-pruned and bias-corrected,
//! and the error analysis of what was written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use tract_onnx::pb;

use super::analysis::{self, ChannelMeanMeter, ErrorMeter, ErrorStats, OutputError, OutputMeter};
use super::observers::{
    KlObserver, MinMaxObserver, MseObserver, ObserverError, PercentileObserver, QuantBounds, QuantParams,
    DEFAULT_PERCENTILE,
};
use super::proto;
use super::qdq::{self, QuantizedConv};
use super::runner::{Activation, GraphRunner};
use super::sites::{self, ConvSite, NamePattern};
use crate::detector::{Detector, Prepared};
use crate::error::Problem;
use crate::error::{Error, Result};
use crate::image_io::read_rgb;
use crate::pipeline::{self, Clock, Job, Stage};
use crate::postprocess::NmsOptions;
use crate::progress::Event;

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
    pub const ALL: [Method; 4] = [Method::Minmax, Method::Percentile, Method::Kl, Method::Mse];

    pub fn name(self) -> &'static str {
        match self {
            Method::Minmax => "minmax",
            Method::Percentile => "percentile",
            Method::Kl => "kl",
            Method::Mse => "mse",
        }
    }
}

/// Weight bits: 8 is `[-127, 127]`; 7 is `[-63, 63]`, for `vpmaddubsw` kernels whose
/// 16-bit pair sums must not saturate (255 * 63 * 2 < 32767).
pub fn weight_bounds(bits: u32) -> QuantBounds {
    let q = (1 << (bits - 1)) - 1;
    QuantBounds { qmin: -q, qmax: q, symmetric: true }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub method: Method,
    /// Use the first `num` images (sorted by path); all when `None`.
    pub num: Option<usize>,
    pub exclude: Vec<NamePattern>,
    pub weight_bits: u32,
    pub bias_correct: bool,
    /// Images for the error analysis (0: no analysis, and no `auto_exclude`).
    pub analysis_images: usize,
    /// Keep this many of the most sensitive convs (layerwise) in float.
    pub auto_exclude: usize,
    /// Inference size for dynamic models (as `detect`'s `--imgsz`).
    pub imgsz: Option<(usize, usize)>,
    /// Images processed in parallel.
    pub inflight: usize,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub model: PathBuf,
    pub method: Method,
    pub weight_bits: u32,
    pub bias_correct: bool,
    pub input_size: [usize; 2],
    pub images: usize,
    pub skipped: Vec<Problem>,
    /// Wall time of the statistics pass(es) per image.
    pub ms_per_image: f64,
    pub analysis_images: usize,
    /// The whole quantized model against the float one, at the detect head output.
    pub output_error: Option<OutputError>,
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

enum Observer {
    Minmax(MinMaxObserver),
    Percentile(PercentileObserver),
    Kl(KlObserver),
    Mse(MseObserver),
}

impl Observer {
    fn new(method: Method) -> Observer {
        match method {
            Method::Minmax => Observer::Minmax(MinMaxObserver::new()),
            Method::Percentile => Observer::Percentile(PercentileObserver::new(DEFAULT_PERCENTILE)),
            Method::Kl => Observer::Kl(KlObserver::default()),
            Method::Mse => Observer::Mse(MseObserver::new(QuantBounds::ASYM_U8)),
        }
    }

    fn observe(&mut self, v: &[f32]) -> std::result::Result<(), ObserverError> {
        match self {
            Observer::Minmax(o) => o.observe(v),
            Observer::Percentile(o) => o.observe(v),
            Observer::Kl(o) => o.observe(v),
            Observer::Mse(o) => o.observe(v),
        }
    }

    fn start_histogram(&mut self) -> std::result::Result<(), ObserverError> {
        match self {
            Observer::Kl(o) => o.start_histogram(),
            Observer::Mse(o) => o.start_histogram(),
            _ => Ok(()),
        }
    }

    /// The uint8 parameters.
    fn params(&self) -> std::result::Result<QuantParams, ObserverError> {
        let u8b = QuantBounds::ASYM_U8;
        match self {
            Observer::Minmax(o) => o.params(u8b),
            Observer::Percentile(o) => o.params(u8b),
            Observer::Mse(o) => o.params(),
            Observer::Kl(o) => {
                // PPQ's KL is symmetric: it finds a threshold T for |x| on 128 levels. The
                // scheme's uint8 grid takes it as a clip on both sides of the observed range.
                let r = o.hist.range()?;
                let t = o.params(QuantBounds::SYM_I8)?.scale as f64 * 128.0;
                let (lo, hi) = (f64::from(r.min).max(-t), f64::from(r.max).min(t));
                Ok(super::observers::minmax_to_scale_offset(lo, hi, u8b))
            }
        }
    }
}

/// Everything calibration needs that does not change between passes.
struct Setup<'a> {
    det: Detector,
    images: Vec<PathBuf>,
    inflight: usize,
    on_event: &'a (dyn Fn(Event) + Sync),
}

impl Setup<'_> {
    /// Decodes and letterboxes `images` through the batch pipeline, runs `work` on each,
    /// `inflight` at a time, and hands the results to `sink` in image order. Unreadable
    /// images are returned as failures; errors of `work` or `sink` stop the pass.
    fn pass<T: Send>(
        &self,
        images: &[PathBuf],
        work: impl Fn(&Prepared) -> Result<T> + Sync,
        mut sink: impl FnMut(usize, T) -> Result<()>,
    ) -> Result<Vec<Problem>> {
        let mut failures = Vec::new();
        let job = PassJob { det: &self.det, images, work };
        pipeline::run(&job, images.len(), self.inflight, |i, result| match result {
            Ok(value) => {
                sink(i, value)?;
                (self.on_event)(Event::Step(None));
                Ok(())
            }
            Err(PassFailure::Image(f)) => {
                (self.on_event)(Event::Step(Some(&f)));
                failures.push(f);
                Ok(())
            }
            Err(PassFailure::Fatal(e)) => Err(e),
        })?;
        Ok(failures)
    }
}

/// One calibration pass over the images, as the batch pipeline runs it.
struct PassJob<'a, W> {
    det: &'a Detector,
    images: &'a [PathBuf],
    work: W,
}

/// An image that cannot be read is skipped; a model that fails on one stops calibration.
enum PassFailure {
    Image(Problem),
    Fatal(Error),
}

impl<T: Send, W: Fn(&Prepared) -> Result<T> + Sync> Job for PassJob<'_, W> {
    type Decoded = Prepared;
    type Output = T;
    type Failure = PassFailure;

    fn decode(&self, index: usize, clock: &mut Clock) -> std::result::Result<Prepared, PassFailure> {
        let path = &self.images[index];
        let img = read_rgb(path).map_err(|e| PassFailure::Image(Problem::new(path.clone(), e.reason())))?;
        clock.lap(Stage::Decode);
        let prepared = self.det.prepare(&img);
        clock.lap(Stage::Preprocess);
        Ok(prepared)
    }

    fn process(&self, _: usize, prepared: Prepared, clock: &mut Clock) -> std::result::Result<T, PassFailure> {
        let value = (self.work)(&prepared).map_err(PassFailure::Fatal)?;
        clock.lap(Stage::Inference);
        Ok(value)
    }
}

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
pub fn calibrate(
    model_path: &Path,
    images: &[PathBuf],
    opts: &Options,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<Calibrated> {
    let start = Instant::now();
    let float = load_float_model(model_path)?;
    let det = Detector::load(model_path, opts.imgsz, NmsOptions::default())?;
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
    if opts.auto_exclude > 0 && opts.analysis_images == 0 {
        return Err(Error::Invalid("--auto-exclude needs the layerwise analysis (analysis images > 0)".into()));
    }

    let all_sites = sites::conv_sites(&float);
    let graph =
        float.graph.as_ref().ok_or_else(|| Error::NotOnnx { path: model_path.into(), reason: "no graph".into() })?;
    let input_names: BTreeSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    for p in &opts.exclude {
        if !all_sites.iter().any(|s| p.matches(&s.name)) {
            let example = all_sites.first().map_or(String::new(), |s| format!(" (names look like {:?})", s.name));
            return Err(Error::Invalid(format!("--exclude {p:?} matches no Conv node{example}")));
        }
    }
    let mut kept_float: BTreeMap<usize, String> = BTreeMap::new();
    for (i, s) in all_sites.iter().enumerate() {
        if s.dfl {
            kept_float.insert(i, "DFL decode of the detect head".into());
        } else if opts.exclude.iter().any(|p| p.matches(&s.name)) {
            kept_float.insert(i, "--exclude".into());
        }
    }
    let weights = sites::site_tensors(&float, &all_sites);
    let setup = Setup { det, images, inflight: opts.inflight, on_event };

    // Statistics of every activation a candidate conv reads.
    let tensors: Vec<String> = all_sites
        .iter()
        .enumerate()
        .filter(|(i, _)| !kept_float.contains_key(i))
        .map(|(_, s)| s.input.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let internal: Vec<String> = tensors.iter().filter(|t| !input_names.contains(t.as_str())).cloned().collect();
    let mut stats_model = float.clone();
    analysis::set_outputs(&mut stats_model, &internal);
    let stats_runner = GraphRunner::new(&stats_model, model_path)?;
    let mut observers: Vec<Observer> = tensors.iter().map(|_| Observer::new(opts.method)).collect();
    let mut observed: Vec<MinMaxObserver> = vec![MinMaxObserver::new(); tensors.len()];
    let passes = if matches!(opts.method, Method::Kl | Method::Mse) { 2 } else { 1 };
    let t_stats = Instant::now();
    let mut good = setup.images.clone();
    let mut skipped = Vec::new();
    for pass in 0..passes {
        on_event(Event::Stage(if pass == 0 { "statistics" } else { "histograms" }, good.len()));
        let work = |p: &Prepared| stats_runner.run(&p.chw, p.letterbox.out).map(|o| (p.chw.clone(), o));
        let failed = setup.pass(&good, work, |_, (chw, outputs): (Vec<f32>, Vec<Activation>)| {
            let mut next = outputs.iter();
            for (k, (t, obs)) in tensors.iter().zip(observers.iter_mut()).enumerate() {
                let values = if input_names.contains(t.as_str()) {
                    &chw
                } else {
                    &next.next().ok_or_else(|| Error::Inference("missing output".into()))?.data
                };
                obs.observe(values).map_err(|e| Error::Inference(format!("statistics of {t}: {e}")))?;
                if pass == 0 {
                    observed[k].observe(values).map_err(|e| Error::Inference(format!("statistics of {t}: {e}")))?;
                }
            }
            Ok(())
        })?;
        if pass == 0 {
            let bad: BTreeSet<&PathBuf> = failed.iter().map(|f| &f.path).collect();
            good.retain(|p| !bad.contains(p));
            skipped = failed;
            if good.is_empty() {
                return Err(Error::Invalid(format!(
                    "none of the {} calibration images could be read",
                    setup.images.len()
                )));
            }
            for o in observers.iter_mut() {
                o.start_histogram().map_err(|e| Error::Inference(e.to_string()))?;
            }
        }
    }
    let ms_per_image = t_stats.elapsed().as_secs_f64() * 1e3 / good.len() as f64;
    let mut tensor_reports = Vec::new();
    let mut acts: BTreeMap<String, QuantParams> = BTreeMap::new();
    for ((t, o), mm) in tensors.iter().zip(&observers).zip(&observed) {
        let range_err = |e: ObserverError| Error::Inference(format!("range of {t}: {e}"));
        let p = o.params().map_err(range_err)?;
        let r = mm.range().map_err(range_err)?;
        let (min, max) = (r.min, r.max);
        tensor_reports.push(TensorReport {
            name: t.clone(),
            observed_min: min,
            observed_max: max,
            clip_min: (0 - p.zero_point) as f32 * p.scale,
            clip_max: (255 - p.zero_point) as f32 * p.scale,
            scale: p.scale,
            zero_point: p.zero_point,
        });
        acts.insert(t.clone(), p);
    }

    let bounds = weight_bounds(opts.weight_bits);
    let quantize = |i: usize, bias: Option<&[f32]>| -> QuantizedConv {
        let s = &all_sites[i];
        let b = bias.or_else(|| s.bias.as_ref().and_then(|b| weights.get(b)).map(Vec::as_slice));
        qdq::quantize_conv(&weights[&s.weight], b, s.out_channels(), acts[&s.input].scale, bounds)
    };
    let build = |chosen: &[usize], biases: &BTreeMap<usize, Vec<f32>>| -> pb::ModelProto {
        let qs: Vec<QuantizedConv> = chosen.iter().map(|&i| quantize(i, biases.get(&i).map(Vec::as_slice))).collect();
        let pairs: Vec<(&ConvSite, &QuantizedConv)> =
            chosen.iter().zip(&qs).map(|(&i, q)| (&all_sites[i], q)).collect();
        qdq::build(&float, &pairs, &acts)
    };
    let candidates: Vec<usize> = (0..all_sites.len()).filter(|i| !kept_float.contains_key(i)).collect();
    let analysis_set: Vec<PathBuf> = good.iter().take(opts.analysis_images).cloned().collect();
    let head_output = graph
        .output
        .first()
        .map(|o| o.name.clone())
        .ok_or_else(|| Error::NotDetect { path: model_path.into(), reason: "the graph has no outputs".into() })?;

    // Layerwise sensitivity: one conv quantized at a time, error at the model output.
    let mut layerwise: BTreeMap<usize, OutputError> = BTreeMap::new();
    if !analysis_set.is_empty() {
        let mut reference_model = float.clone();
        analysis::set_outputs(&mut reference_model, std::slice::from_ref(&head_output));
        let reference_runner = GraphRunner::new(&reference_model, model_path)?;
        let mut references: Vec<(PathBuf, Activation)> = Vec::new();
        on_event(Event::Stage("float reference", analysis_set.len()));
        setup.pass(
            &analysis_set,
            |p| reference_runner.run(&p.chw, p.letterbox.out),
            |i, mut o| {
                references.push((analysis_set[i].clone(), o.remove(0)));
                Ok(())
            },
        )?;
        on_event(Event::Stage("layerwise analysis", candidates.len()));
        let results: Vec<Result<(usize, OutputError)>> = candidates
            .par_iter()
            .map(|&i| {
                let mut m = build(&[i], &BTreeMap::new());
                analysis::set_outputs(&mut m, std::slice::from_ref(&head_output));
                let runner = GraphRunner::new(&m, model_path)?;
                let mut meter = OutputMeter::default();
                for (path, reference) in &references {
                    let img = read_rgb(path)?;
                    let p = setup.det.prepare(&img);
                    let out = runner.run(&p.chw, p.letterbox.out)?.remove(0);
                    meter.add(&out.data, &reference.data, out.shape.last().copied().unwrap_or(1));
                }
                on_event(Event::Step(None));
                Ok((i, meter.stats().unwrap_or_default()))
            })
            .collect();
        for r in results {
            let (i, e) = r?;
            layerwise.insert(i, e);
        }
        let mut ranked: Vec<(usize, f64)> = layerwise.iter().map(|(&i, e)| (i, e.key())).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (rank, (i, _)) in ranked.iter().take(opts.auto_exclude).enumerate() {
            kept_float.insert(*i, format!("--auto-exclude: sensitivity rank {}", rank + 1));
        }
    }
    let chosen: Vec<usize> = candidates.iter().copied().filter(|i| !kept_float.contains_key(i)).collect();
    if chosen.is_empty() {
        return Err(Error::Invalid("every Conv is excluded: nothing to quantize".into()));
    }

    // Bias correction: cancel each conv's own mean output error per channel.
    let mut biases: BTreeMap<usize, Vec<f32>> = BTreeMap::new();
    let mut shifts: BTreeMap<usize, f64> = BTreeMap::new();
    if opts.bias_correct {
        let with_bias: Vec<usize> = chosen.iter().copied().filter(|&i| all_sites[i].bias.is_some()).collect();
        let sites_b: Vec<&ConvSite> = with_bias.iter().map(|&i| &all_sites[i]).collect();
        let mut m = build(&chosen, &BTreeMap::new());
        analysis::add_shadows(&mut m, &float, &sites_b);
        let names: Vec<String> = sites_b.iter().flat_map(|s| [s.output.clone(), analysis::shadow_output(s)]).collect();
        analysis::set_outputs(&mut m, &names);
        let runner = GraphRunner::new(&m, model_path)?;
        let mut meters: Vec<ChannelMeanMeter> = vec![ChannelMeanMeter::default(); with_bias.len()];
        on_event(Event::Stage("bias correction", good.len()));
        setup.pass(
            &good,
            |p| runner.run(&p.chw, p.letterbox.out),
            |_, outs| {
                for (k, meter) in meters.iter_mut().enumerate() {
                    let (q, f) = (&outs[2 * k], &outs[2 * k + 1]);
                    meter.add(&q.data, &f.data, q.channel_len());
                }
                Ok(())
            },
        )?;
        for (k, &i) in with_bias.iter().enumerate() {
            let s = &all_sites[i];
            let Some(b) = s.bias.as_ref().and_then(|b| weights.get(b)) else { continue };
            let means = meters[k].means();
            biases.insert(i, b.iter().zip(&means).map(|(&b, &m)| (f64::from(b) - m) as f32).collect());
            shifts.insert(i, means.iter().fold(0.0f64, |a, m| a.max(m.abs())));
        }
    }
    let mut model = build(&chosen, &biases);

    // Graphwise: the written model against the float one, every quantized conv's output.
    let mut graphwise: BTreeMap<usize, ErrorStats> = BTreeMap::new();
    let mut output_error = None;
    if !analysis_set.is_empty() {
        let mut names = vec![head_output.clone()];
        names.extend(chosen.iter().map(|&i| all_sites[i].output.clone()));
        let (mut fm, mut qm) = (float.clone(), model.clone());
        analysis::set_outputs(&mut fm, &names);
        analysis::set_outputs(&mut qm, &names);
        let (fr, qr) = (GraphRunner::new(&fm, model_path)?, GraphRunner::new(&qm, model_path)?);
        let mut meters: Vec<ErrorMeter> = vec![ErrorMeter::default(); chosen.len()];
        let mut out_meter = OutputMeter::default();
        on_event(Event::Stage("graphwise analysis", analysis_set.len()));
        setup.pass(
            &analysis_set,
            |p| Ok((fr.run(&p.chw, p.letterbox.out)?, qr.run(&p.chw, p.letterbox.out)?)),
            |_, (f, q): (Vec<Activation>, Vec<Activation>)| {
                out_meter.add(&q[0].data, &f[0].data, f[0].shape.last().copied().unwrap_or(1));
                for (k, m) in meters.iter_mut().enumerate() {
                    m.add(&q[k + 1].data, &f[k + 1].data);
                }
                Ok(())
            },
        )?;
        for (k, &i) in chosen.iter().enumerate() {
            if let Some(s) = meters[k].stats() {
                graphwise.insert(i, s);
            }
        }
        output_error = out_meter.stats();
    }

    let convs = all_sites
        .iter()
        .enumerate()
        .map(|(i, s)| ConvReport {
            name: s.name.clone(),
            input: s.input.clone(),
            output: s.output.clone(),
            quantized: chosen.contains(&i),
            kept_float: kept_float.get(&i).cloned(),
            graphwise: graphwise.get(&i).copied(),
            layerwise: layerwise.get(&i).copied(),
            bias_shift_max: shifts.get(&i).copied(),
        })
        .collect();
    let size = setup.det.target();
    let report = Report {
        tool: format!("qdet {}", env!("CARGO_PKG_VERSION")),
        model: model_path.into(),
        method: opts.method,
        weight_bits: opts.weight_bits,
        bias_correct: opts.bias_correct,
        input_size: [size.0, size.1],
        images: good.len(),
        skipped,
        ms_per_image,
        analysis_images: analysis_set.len(),
        output_error,
        tensors: tensor_reports,
        convs,
        seconds: start.elapsed().as_secs_f64(),
    };
    let excluded: Vec<&str> =
        all_sites.iter().enumerate().filter(|(i, _)| !chosen.contains(i)).map(|(_, s)| s.name.as_str()).collect();
    qdq::set_metadata(
        &mut model,
        &[
            (
                META_SCHEME,
                format!(
                    "Conv inputs uint8 per-tensor asymmetric; Conv weights int8 per-channel symmetric [{}, {}]; bias int32 at input_scale*weight_scale; everything else float",
                    bounds.qmin, bounds.qmax
                ),
            ),
            ("qdet.method", opts.method.name().to_string()),
            ("qdet.calibration_images", good.len().to_string()),
            ("qdet.bias_correct", opts.bias_correct.to_string()),
            ("qdet.kept_float", excluded.join(",")),
            ("qdet.version", env!("CARGO_PKG_VERSION").to_string()),
        ],
    );
    Ok(Calibrated { model, report })
}
