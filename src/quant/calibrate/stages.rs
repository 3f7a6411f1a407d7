//! The stages of calibration after the model is checked, in the order they run: activation
//! statistics, layerwise sensitivity (which may keep convs float), bias correction, then the
//! graphwise error of the model that is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use tract_onnx::pb;

use super::observer::Observer;
use super::pass::Setup;
use super::{weight_bounds, Method, Options, Rounded, TensorReport};
use crate::error::{Error, Problem, Result};
use crate::image_io::read_rgb;
use crate::model::{Int8, Model};
use crate::onnx::proto;
use crate::progress::Event;
use crate::quant::analysis::{self, ChannelMeanMeter, ErrorMeter, ErrorStats, OutputError, OutputMeter};
use crate::quant::observers::{self, MinMaxObserver, ObserverError, QuantBounds, QuantParams};
use crate::quant::qdq::{self, QuantizedConv};
use crate::quant::runner::{Activation, GraphRunner};
use crate::quant::sites::{self, ConvSite};
use crate::val::agreement::{compare, Agreement, AgreementSummary, ImageDetections, Thresholds};

/// The float model and what every stage reads from it.
pub(super) struct Calibration<'a> {
    pub float: &'a pb::ModelProto,
    pub path: &'a Path,
    pub sites: Vec<ConvSite>,
    pub weights: BTreeMap<String, Vec<f32>>,
    pub setup: Setup<'a>,
    /// The detect head's output, where the model-level errors are measured.
    pub head_output: String,
    pub bounds: QuantBounds,
    /// Weights already rounded (GPTQ) by site; the others are rounded to nearest.
    pub rounded: BTreeMap<usize, Rounded>,
    /// Pair-bound a GPTQ conv's weights where that raises its output error by at most this
    /// fraction ([`Options::pair_tolerance`]).
    pub pair_tolerance: Option<f64>,
    /// Concat parts quantized on another tensor's grid ([`sites::grid_aliases`]).
    pub aliases: BTreeMap<String, String>,
}

/// Bias correction's new biases and the largest shift of each, by conv.
pub(super) type Corrected = (BTreeMap<usize, Vec<f32>>, BTreeMap<usize, f64>);

/// What the statistics stage found.
pub(super) struct Statistics {
    /// uint8 parameters of every activation a candidate conv reads.
    pub acts: BTreeMap<String, QuantParams>,
    pub tensors: Vec<TensorReport>,
    /// The images that could be read, in order.
    pub good: Vec<PathBuf>,
    pub skipped: Vec<Problem>,
    pub ms_per_image: f64,
}

impl<'a> Calibration<'a> {
    pub(super) fn new(float: &'a pb::ModelProto, path: &'a Path, setup: Setup<'a>, opts: &Options) -> Result<Self> {
        let mut sites = sites::conv_sites(float);
        if !opts.concat_per_input {
            for s in &mut sites {
                (s.parts, s.concat) = (vec![s.input.clone()], None);
            }
        }
        let weights = sites::site_tensors(float, &sites);
        let graph =
            float.graph.as_ref().ok_or_else(|| Error::NotOnnx { path: path.into(), reason: "no graph".into() })?;
        let head_output = graph
            .output
            .first()
            .map(|o| o.name.clone())
            .ok_or_else(|| Error::NotDetect { path: path.into(), reason: "the graph has no outputs".into() })?;
        let bounds = weight_bounds(opts.weight_bits);
        // Only Concat parts take another's grid; a pool a conv reads keeps its own.
        let parts: BTreeSet<&String> = sites.iter().filter(|s| s.segmented()).flat_map(|s| &s.parts).collect();
        let mut aliases = sites::grid_aliases(float);
        aliases.retain(|t, _| parts.contains(t));
        Ok(Calibration {
            float,
            path,
            sites,
            weights,
            setup,
            head_output,
            bounds,
            rounded: BTreeMap::new(),
            pair_tolerance: opts.pair_tolerance,
            aliases,
        })
    }

    pub(super) fn input_names(&self) -> BTreeSet<&str> {
        self.float.graph.iter().flat_map(|g| g.input.iter().map(|i| i.name.as_str())).collect()
    }

    /// The tensor whose grid `t` takes: itself, or the input of its pools and upsamplings.
    fn grid_of(&self, t: &str) -> String {
        self.aliases.get(t).cloned().unwrap_or_else(|| t.to_string())
    }

    /// Observes every activation a conv of `candidates` reads, over all images (two passes
    /// for the histogram methods). Unreadable images are skipped and reported.
    pub(super) fn statistics(&self, candidates: &[usize], method: Method) -> Result<Statistics> {
        let setup = &self.setup;
        let input_names = self.input_names();
        let tensors: Vec<String> = candidates
            .iter()
            .flat_map(|&i| self.sites[i].parts.iter().map(|t| self.grid_of(t)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let internal: Vec<String> = tensors.iter().filter(|t| !input_names.contains(t.as_str())).cloned().collect();
        let mut stats_model = self.float.clone();
        analysis::set_outputs(&mut stats_model, &internal);
        let runner = GraphRunner::new(&stats_model, self.path)?;
        let mut observers: Vec<Observer> = tensors.iter().map(|_| Observer::new(method)).collect();
        let mut observed: Vec<MinMaxObserver> = vec![MinMaxObserver::new(); tensors.len()];
        let passes = if matches!(method, Method::Kl | Method::Mse) { 2 } else { 1 };
        let t_stats = Instant::now();
        let mut good = setup.images.clone();
        let mut skipped = Vec::new();
        for pass in 0..passes {
            (setup.on_event)(Event::Stage(if pass == 0 { "statistics" } else { "histograms" }, good.len()));
            let work =
                |p: &crate::detector::Prepared| runner.run(p.chw(), p.letterbox().out).map(|o| (p.chw().to_vec(), o));
            let failed = setup.pass(&good, work, |_, (chw, outputs): (Vec<f32>, Vec<Activation>)| {
                let mut next = outputs.iter();
                for (k, (t, obs)) in tensors.iter().zip(observers.iter_mut()).enumerate() {
                    let values = if input_names.contains(t.as_str()) {
                        &chw
                    } else {
                        &next.next().ok_or_else(|| Error::Inference("missing output".into()))?.data
                    };
                    let failed = |e: ObserverError| Error::Inference(format!("statistics of {t}: {e}"));
                    obs.observe(values).map_err(failed)?;
                    if pass == 0 {
                        observed[k].observe(values).map_err(failed)?;
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
        let (acts, reports) = self.params(&tensors, &observers, &observed, &input_names)?;
        Ok(Statistics { acts, tensors: reports, good, skipped, ms_per_image })
    }

    /// Each observed tensor's uint8 parameters and report, then the aliased parts'.
    fn params(
        &self,
        tensors: &[String],
        observers: &[Observer],
        observed: &[MinMaxObserver],
        input_names: &BTreeSet<&str>,
    ) -> Result<(BTreeMap<String, QuantParams>, Vec<TensorReport>)> {
        let mut reports = Vec::new();
        let mut acts = BTreeMap::new();
        for ((t, o), mm) in tensors.iter().zip(observers).zip(observed) {
            let range_err = |e: ObserverError| Error::Inference(format!("range of {t}: {e}"));
            let r = mm.range().map_err(range_err)?;
            // The image input holds 8-bit pixels / 255 (`detect`'s letterbox and resize work
            // in u8): scale 1/255 and zero point 0 carry it exactly, where an observer may
            // pick a coarser grid (mse: a 1.125 clip on the COCO yolov8n, re-rounding every
            // pixel before the first conv).
            let p = if input_names.contains(t.as_str()) && r.min >= 0.0 && r.max <= 1.0 {
                QuantParams { scale: 1.0 / 255.0, zero_point: 0 }
            } else {
                o.params().map_err(range_err)?
            };
            reports.push(TensorReport {
                name: t.clone(),
                observed_min: r.min,
                observed_max: r.max,
                clip_min: (0 - p.zero_point) as f32 * p.scale,
                clip_max: (255 - p.zero_point) as f32 * p.scale,
                scale: p.scale,
                zero_point: p.zero_point,
            });
            acts.insert(t.clone(), p);
        }
        for (part, root) in &self.aliases {
            if let Some(&p) = acts.get(root) {
                acts.insert(part.clone(), p);
            }
        }
        Ok((acts, reports))
    }

    fn quantize(&self, i: usize, acts: &BTreeMap<String, QuantParams>, bias: Option<&[f32]>) -> QuantizedConv {
        let s = &self.sites[i];
        let b = bias.or_else(|| s.bias.as_ref().and_then(|b| self.weights.get(b)).map(Vec::as_slice));
        let (w, input_scale) = (&self.weights[&s.weight], qdq::input_scale(s, acts));
        match self.rounded.get(&i) {
            Some(r) => {
                let scales = r
                    .scales
                    .clone()
                    .unwrap_or_else(|| observers::weight_scales_per_channel(w, s.out_channels(), self.bounds));
                qdq::with_integers(r.q.clone(), scales, b, input_scale)
            }
            None => qdq::quantize_conv(w, b, s.out_channels(), input_scale, self.bounds),
        }
    }

    /// The QDQ model with the convs `chosen` quantized, with `biases` replacing theirs.
    pub(super) fn build(
        &self,
        acts: &BTreeMap<String, QuantParams>,
        chosen: &[usize],
        biases: &BTreeMap<usize, Vec<f32>>,
    ) -> pb::ModelProto {
        let qs: Vec<QuantizedConv> =
            chosen.iter().map(|&i| self.quantize(i, acts, biases.get(&i).map(Vec::as_slice))).collect();
        let pairs: Vec<(&ConvSite, &QuantizedConv)> =
            chosen.iter().zip(&qs).map(|(&i, q)| (&self.sites[i], q)).collect();
        qdq::build(self.float, &pairs, acts)
    }

    /// Layerwise sensitivity: each candidate quantized alone, the error at the model output.
    pub(super) fn layerwise(
        &self,
        acts: &BTreeMap<String, QuantParams>,
        candidates: &[usize],
        images: &[PathBuf],
    ) -> Result<BTreeMap<usize, OutputError>> {
        let setup = &self.setup;
        let head = std::slice::from_ref(&self.head_output);
        let mut reference_model = self.float.clone();
        analysis::set_outputs(&mut reference_model, head);
        let reference_runner = GraphRunner::new(&reference_model, self.path)?;
        let mut references: Vec<(PathBuf, Activation)> = Vec::new();
        (setup.on_event)(Event::Stage("float reference", images.len()));
        setup.pass(
            images,
            |p| reference_runner.run(p.chw(), p.letterbox().out),
            |i, mut o| {
                references.push((images[i].clone(), o.remove(0)));
                Ok(())
            },
        )?;
        (setup.on_event)(Event::Stage("layerwise analysis", candidates.len()));
        candidates
            .par_iter()
            .map(|&i| {
                let mut m = self.build(acts, &[i], &BTreeMap::new());
                analysis::set_outputs(&mut m, head);
                let runner = GraphRunner::new(&m, self.path)?;
                let mut meter = OutputMeter::default();
                for (path, reference) in &references {
                    let img = read_rgb(path)?;
                    let p = setup.det.prepare_decoded(&img);
                    let out = runner.run(p.chw(), p.letterbox().out)?.remove(0);
                    meter.add(&out.data, &reference.data, out.shape.last().copied().unwrap_or(1));
                }
                (setup.on_event)(Event::Step(None));
                Ok((i, meter.stats().unwrap_or_default()))
            })
            .collect()
    }

    /// Bias correction: per channel, the mean error each chosen conv adds to its own output
    /// (quantized model against the float shadow of that conv) is taken out of its bias.
    /// Returns the new biases and the largest shift of each.
    pub(super) fn correct_biases(
        &self,
        acts: &BTreeMap<String, QuantParams>,
        chosen: &[usize],
        images: &[PathBuf],
    ) -> Result<Corrected> {
        let with_bias: Vec<usize> = chosen.iter().copied().filter(|&i| self.sites[i].bias.is_some()).collect();
        let sites_b: Vec<&ConvSite> = with_bias.iter().map(|&i| &self.sites[i]).collect();
        let mut m = self.build(acts, chosen, &BTreeMap::new());
        analysis::add_shadows(&mut m, self.float, &sites_b);
        let names: Vec<String> = sites_b.iter().flat_map(|s| [s.output.clone(), analysis::shadow_output(s)]).collect();
        analysis::set_outputs(&mut m, &names);
        let runner = GraphRunner::new(&m, self.path)?;
        let mut meters: Vec<ChannelMeanMeter> = vec![ChannelMeanMeter::default(); with_bias.len()];
        (self.setup.on_event)(Event::Stage("bias correction", images.len()));
        self.setup.pass(
            images,
            |p| runner.run(p.chw(), p.letterbox().out),
            |_, outs| {
                for (k, meter) in meters.iter_mut().enumerate() {
                    let (q, f) = (&outs[2 * k], &outs[2 * k + 1]);
                    meter.add(&q.data, &f.data, q.channel_len());
                }
                Ok(())
            },
        )?;
        let (mut biases, mut shifts) = (BTreeMap::new(), BTreeMap::new());
        for (k, &i) in with_bias.iter().enumerate() {
            let s = &self.sites[i];
            let Some(b) = s.bias.as_ref().and_then(|b| self.weights.get(b)) else { continue };
            let means = meters[k].means();
            biases.insert(i, b.iter().zip(&means).map(|(&b, &m)| (f64::from(b) - m) as f32).collect());
            shifts.insert(i, means.iter().fold(0.0f64, |a, m| a.max(m.abs())));
        }
        Ok((biases, shifts))
    }

    /// Graphwise: `model` against the float one, at every chosen conv's output and at the
    /// model output.
    pub(super) fn graphwise(
        &self,
        model: &pb::ModelProto,
        chosen: &[usize],
        images: &[PathBuf],
    ) -> Result<(BTreeMap<usize, ErrorStats>, Option<OutputError>)> {
        let mut names = vec![self.head_output.clone()];
        names.extend(chosen.iter().map(|&i| self.sites[i].output.clone()));
        let (mut fm, mut qm) = (self.float.clone(), model.clone());
        analysis::set_outputs(&mut fm, &names);
        analysis::set_outputs(&mut qm, &names);
        let (fr, qr) = (GraphRunner::new(&fm, self.path)?, GraphRunner::new(&qm, self.path)?);
        let mut meters: Vec<ErrorMeter> = vec![ErrorMeter::default(); chosen.len()];
        let mut out_meter = OutputMeter::default();
        (self.setup.on_event)(Event::Stage("graphwise analysis", images.len()));
        self.setup.pass(
            images,
            |p| Ok((fr.run(p.chw(), p.letterbox().out)?, qr.run(p.chw(), p.letterbox().out)?)),
            |_, (f, q): (Vec<Activation>, Vec<Activation>)| {
                out_meter.add(&q[0].data, &f[0].data, f[0].shape.last().copied().unwrap_or(1));
                for (k, m) in meters.iter_mut().enumerate() {
                    m.add(&q[k + 1].data, &f[k + 1].data);
                }
                Ok(())
            },
        )?;
        let per_conv = chosen.iter().enumerate().filter_map(|(k, &i)| Some((i, meters[k].stats()?))).collect();
        Ok((per_conv, out_meter.stats()))
    }

    /// `model` against the float one as `qdet val --reference` measures it: `model` loaded as
    /// `qdet detect` would load the written file (on the integer kernels, not simulated as
    /// the error analysis runs it), both from the float model's letterbox, which a QDQ copy
    /// of its graph shares.
    pub(super) fn agreement(&self, model: &pb::ModelProto, images: &[PathBuf]) -> Result<AgreementSummary> {
        let det = &self.setup.det;
        let bytes = proto::encode(model);
        let quantized =
            Model::from_bytes(Path::new("(the quantized model)"), &bytes, Some(det.target()), Int8::Native)?;
        let t = Thresholds::default();
        let mut agreement = Agreement::default();
        (self.setup.on_event)(Event::Stage("agreement", images.len()));
        // The analysis images were all read once already; one failing now is left out.
        self.setup.pass(
            images,
            |p| Ok((*p.letterbox(), det.infer(p)?, quantized.run(p.chw(), p.letterbox().out)?)),
            |i, (lb, float, quant)| {
                let dets = ImageDetections::decode((&float, &lb), (&quant, &lb), &t);
                agreement.add(&images[i], compare(&dets, &t));
                Ok(())
            },
        )?;
        Ok(agreement.finish(det.names(), t))
    }
}
