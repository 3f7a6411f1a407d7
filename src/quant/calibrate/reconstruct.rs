//! The reconstruction stage of calibration (`--optimize reconstruct`): each chosen conv, with
//! the SiLU after it where there is one, relearns its integer weights and its bias against
//! the float model's output of that block (AdaRound, [`crate::quant::reconstruct::block`]) on
//! random output positions of the calibration images. With the quantized upstream (BRECQ) it
//! goes level by level: the blocks of one level read none of each other's outputs, and their
//! inputs come from the quantized model with every block of the levels before already
//! learned, so each corrects the error that reaches it. Learning blocks that feed each other
//! at once (each correcting an upstream that is changing under it) measured far worse.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rayon::prelude::*;
use serde::Serialize;
use tract_onnx::prelude::tract_ndarray::ArrayView2;

use super::rounding::{concat_channels, fake_quantize};
use super::stages::Calibration;
use super::{Rounded, PAIR_LIMIT};
use crate::error::{Error, Result};
use crate::progress::Event;
use crate::quant::analysis;
use crate::quant::gptq::{self, ConvGeometry};
use crate::quant::observers::{self, QuantParams};
use crate::quant::reconstruct::block::{Block, Schedule};
use crate::quant::reconstruct::grad::silu;
use crate::quant::runner::{Activation, GraphRunner};
use crate::quant::sites;

/// How the reconstruction runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reconstruct {
    /// Adam steps per block.
    pub steps: usize,
    /// Output positions sampled per image and block.
    pub positions: usize,
    /// Where a block's input comes from.
    pub upstream: Upstream,
    /// Adam's learning rate for the biases (0: they stay).
    pub bias_lr: f32,
    /// Adam's learning rate for the log of the weights' scales (0: they stay).
    pub scale_lr: f32,
}

/// A block's input during reconstruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Upstream {
    /// The float model's tensor through its uint8 grid (only this block's input quantization
    /// is seen).
    Float,
    /// The quantized model's, with the blocks before already reconstructed, through its
    /// uint8 grid (BRECQ).
    Quantized,
    /// Element by element at random, half the quantized model's (as `Quantized`) and half
    /// the float model's, not quantized (QDrop).
    Mixed,
}

impl Default for Reconstruct {
    fn default() -> Self {
        Reconstruct { steps: 500, positions: 64, upstream: Upstream::Quantized, bias_lr: 1e-3, scale_lr: 0.0 }
    }
}

/// One block's output error (mean square, on its sample) before and after.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlockError {
    pub before: f64,
    /// With the learned integers (pair-bounded where the conv's are).
    pub after: f64,
    /// The learned integers were written (else the block's error did not drop).
    pub kept: bool,
}

/// One block's result: its site, integers, learned bias (if any) and errors.
type Learned = (usize, Rounded, Option<Vec<f32>>, BlockError);

/// One block: its site, geometry, SiLU, and the float model's output at the sampled
/// positions of every image (`[out][positions]`, concatenated over images).
struct Target {
    site: usize,
    /// The most blocks on a path from the model input to this one, itself excluded.
    level: usize,
    geometry: ConvGeometry,
    silu: bool,
    dim: usize,
    outputs: Vec<Vec<f32>>,
}

impl Calibration<'_> {
    /// Relearns the integer weights of the `chosen` convs that have a plain geometry, in
    /// graph order; returns each block's error before and after.
    pub(super) fn reconstruct(
        &mut self,
        acts: &BTreeMap<String, QuantParams>,
        chosen: &[usize],
        images: &[PathBuf],
        how: Reconstruct,
    ) -> Result<BTreeMap<usize, BlockError>> {
        let mut targets = self.block_targets(chosen);
        targets.sort_by_key(|t| (t.level, self.sites[t.site].node_index));
        self.float_outputs(&mut targets, images, how.positions)?;
        let mut errors = BTreeMap::new();
        // A group is the blocks none of which reads another's output (one level of the
        // graph): learning them together is learning each after all its upstream. The float
        // upstream does not change as blocks learn: one pass serves them all.
        let sequential = how.upstream != Upstream::Float;
        for group in targets.chunk_by(|a, b| !sequential || a.level == b.level) {
            let inputs = self.block_inputs(acts, chosen, group, images, how.positions, how.upstream)?;
            (self.setup.on_event)(Event::Stage("reconstruction", group.len()));
            let learned: Vec<Learned> = group
                .par_iter()
                .zip(&inputs)
                .map(|(t, cols)| {
                    let r = self.learn(t, cols, how);
                    (self.setup.on_event)(Event::Step(None));
                    r
                })
                .collect::<Result<_>>()?;
            for (site, rounded, bias, error) in learned {
                self.rounded.insert(site, rounded);
                if let (Some(b), Some(name)) = (bias, &self.sites[site].bias) {
                    // The model built from here on (later groups' inputs, bias correction,
                    // the file) reads the learned bias.
                    self.weights.insert(name.clone(), b);
                }
                errors.insert(site, error);
            }
        }
        Ok(errors)
    }

    fn block_targets(&self, chosen: &[usize]) -> Vec<Target> {
        let nodes = self.float.graph.as_ref().map(|g| g.node.as_slice()).unwrap_or_default();
        let mut targets: Vec<Target> = chosen
            .iter()
            .filter_map(|&i| {
                let s = &self.sites[i];
                let geometry = ConvGeometry::of(nodes.get(s.node_index)?, &s.weight_dims)?;
                let dim = s.weight_dims.iter().skip(1).product::<i64>() as usize;
                let silu = sites::silu_follows(self.float, &s.output);
                Some(Target { site: i, level: 0, geometry, silu, dim, outputs: vec![Vec::new(); s.out_channels()] })
            })
            .collect();
        // Nodes are in topological order (ONNX requires it): a tensor's level is the largest
        // of its node's inputs', plus one after a block.
        let mut levels: HashMap<&str, usize> = HashMap::new();
        for (index, node) in nodes.iter().enumerate() {
            let level = node.input.iter().filter_map(|i| levels.get(i.as_str())).copied().max().unwrap_or(0);
            let block = targets.iter_mut().find(|t| self.sites[t.site].node_index == index);
            let out = match block {
                Some(t) => {
                    t.level = level;
                    level + 1
                }
                None => level,
            };
            for o in &node.output {
                levels.insert(o, out);
            }
        }
        targets
    }

    /// The float model's output of each block at its sampled positions, SiLU applied.
    fn float_outputs(&self, targets: &mut [Target], images: &[PathBuf], n: usize) -> Result<()> {
        let names: Vec<String> = targets.iter().map(|t| self.sites[t.site].output.clone()).collect();
        let mut model = self.float.clone();
        analysis::set_outputs(&mut model, &names);
        let runner = GraphRunner::new(&model, self.path)?;
        (self.setup.on_event)(Event::Stage("reconstruction targets", images.len()));
        self.setup.pass(
            images,
            |p| runner.run(p.chw(), p.letterbox().out),
            |i, outs: Vec<Activation>| {
                for ((t, a), name) in targets.iter_mut().zip(outs).zip(&names) {
                    let [1, c, h, w] = a.shape[..] else {
                        return Err(Error::Inference(format!("{name}: shape {:?}, not NCHW", a.shape)));
                    };
                    for &p in &sample(i, t.site, h * w, n) {
                        for (ch, out) in t.outputs.iter_mut().enumerate().take(c) {
                            let v = a.data[ch * h * w + p];
                            out.push(if t.silu { silu(v) } else { v });
                        }
                    }
                }
                Ok(())
            },
        )?;
        Ok(())
    }

    /// Each block's input patches (`[positions][dim]`, concatenated over images) as the
    /// quantized model with the weights learned so far reads them.
    fn block_inputs(
        &self,
        acts: &BTreeMap<String, QuantParams>,
        chosen: &[usize],
        group: &[Target],
        images: &[PathBuf],
        n: usize,
        upstream: Upstream,
    ) -> Result<Vec<Vec<f32>>> {
        let input_names = self.input_names();
        let mut names: Vec<String> = Vec::new();
        for t in group {
            for p in &self.sites[t.site].parts {
                if !input_names.contains(p.as_str()) && !names.contains(p) {
                    names.push(p.clone());
                }
            }
        }
        let mut model = match upstream {
            Upstream::Float => self.float.clone(),
            Upstream::Quantized | Upstream::Mixed => self.build(acts, chosen, &BTreeMap::new()),
        };
        analysis::set_outputs(&mut model, &names);
        let runner = GraphRunner::new(&model, self.path)?;
        let mut float = self.float.clone();
        analysis::set_outputs(&mut float, &names);
        let float = if upstream == Upstream::Mixed { Some(GraphRunner::new(&float, self.path)?) } else { None };
        (self.setup.on_event)(Event::Stage("reconstruction inputs", images.len()));
        let mut cols: Vec<Vec<f32>> = vec![Vec::new(); group.len()];
        self.setup.pass(
            images,
            |p| {
                let (h, w) = p.letterbox().out;
                let run = |r: &GraphRunner| if names.is_empty() { Ok(Vec::new()) } else { r.run(p.chw(), (h, w)) };
                let outs = run(&runner)?;
                let floats = float.as_ref().map(run).transpose()?;
                let mut tensors: BTreeMap<&str, (Vec<f32>, [usize; 3])> = BTreeMap::new();
                for (k, (name, a)) in names.iter().zip(outs).enumerate() {
                    let [1, c, h, w] = a.shape[..] else {
                        return Err(Error::Inference(format!("{name}: shape {:?}, not NCHW", a.shape)));
                    };
                    let mut q = fake_quantize(&a.data, acts[name]);
                    if let Some(f) = floats.as_ref().and_then(|f| f.get(k)) {
                        drop_quantization(&mut q, &f.data, k);
                    }
                    tensors.insert(name, (q, [c, h, w]));
                }
                for name in &input_names {
                    if let Some(q) = acts.get(*name) {
                        tensors.insert(name, (fake_quantize(p.chw(), *q), [3, h, w]));
                    }
                }
                Ok(tensors.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>())
            },
            |i, tensors| {
                for (k, t) in group.iter().enumerate() {
                    let (data, shape) = concat_channels(&self.sites[t.site].parts, &tensors)?;
                    let at = sample(i, t.site, t.geometry.positions(shape[1], shape[2]), n);
                    cols[k].extend(gptq::patches_at(&data, shape, &t.geometry, &at));
                }
                Ok(())
            },
        )?;
        Ok(cols)
    }
}

impl Calibration<'_> {
    /// One block's AdaRound from its current integers (GPTQ's, else nearest on the absmax
    /// scales), keeping them where the learned ones are no better on the sample or break the
    /// pair bound the conv keeps.
    fn learn(&self, t: &Target, cols: &[f32], how: Reconstruct) -> Result<Learned> {
        let s = &self.sites[t.site];
        let w = &self.weights[&s.weight];
        let o = s.out_channels();
        let current = self.rounded.get(&t.site);
        let scales = current
            .and_then(|r| r.scales.clone())
            .unwrap_or_else(|| observers::weight_scales_per_channel(w, o, self.bounds));
        let bad = |what: &str| Error::Inference(format!("{}: {what} do not match its weights", s.name));
        let p = cols.len() / t.dim.max(1);
        let cols = ArrayView2::from_shape((p, t.dim), cols).map_err(|_| bad("input patches"))?.t().to_owned();
        let target: Vec<f32> = t.outputs.concat();
        let target = ArrayView2::from_shape((o, p), &target[..]).map_err(|_| bad("sampled outputs"))?;
        let wf = ArrayView2::from_shape((o, t.dim), &w[..]).map_err(|_| bad("weight dims"))?;
        let zero = vec![0f32; o];
        let bias = s.bias.as_ref().and_then(|b| self.weights.get(b)).map_or(&zero[..], Vec::as_slice);
        let block = Block {
            cols: cols.view(),
            target,
            w: wf,
            scales: &scales,
            bias,
            silu: t.silu,
            qmax: self.bounds.qmax as f32,
        };
        let start = current.map_or_else(|| block.nearest(), |r| r.q.clone());
        let schedule =
            Schedule { steps: how.steps, bias_lr: how.bias_lr, scale_lr: how.scale_lr, ..Schedule::default() };
        let mut learned = block.adaround(&schedule);
        let bounded = current.and_then(|r| r.pairs).is_some_and(|c| c.bounded);
        if bounded {
            block.bound_pairs(&mut learned.q, t.geometry.kernel[0] * t.geometry.kernel[1], PAIR_LIMIT);
        }
        let before = f64::from(block.error(&start, &scales, bias));
        let after = f64::from(block.error(&learned.q, &learned.scales, &learned.bias));
        let error = BlockError { before, after, kept: after < before };
        if !error.kept {
            let rounded = Rounded {
                q: start,
                scales: current.and_then(|r| r.scales.clone()),
                pairs: current.and_then(|r| r.pairs),
            };
            return Ok((t.site, rounded, None, error));
        }
        let new_scales = (how.scale_lr > 0.0 || current.is_some_and(|r| r.scales.is_some())).then_some(learned.scales);
        let bias = (s.bias.is_some() && how.bias_lr > 0.0).then_some(learned.bias);
        Ok((t.site, Rounded { q: learned.q, scales: new_scales, pairs: current.and_then(|r| r.pairs) }, bias, error))
    }
}

/// QDrop: about half the elements of `q` (chosen at random, a fixed seed per `tensor`)
/// replaced by the float model's.
fn drop_quantization(q: &mut [f32], float: &[f32], tensor: usize) {
    let mut state = 0x2545_F491_4F6C_DD1D ^ tensor as u64;
    for (chunk, f) in q.chunks_mut(64).zip(float.chunks(64)) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        for (j, (v, &x)) in chunk.iter_mut().zip(f).enumerate() {
            if state >> j & 1 == 1 {
                *v = x;
            }
        }
    }
}

/// `n` output positions of `positions` for image `image` and block `site`: the same in the
/// float and the quantized runs, spread at random (a fixed seed) so that no row or column of
/// the map is favoured.
fn sample(image: usize, site: usize, positions: usize, n: usize) -> Vec<usize> {
    if positions == 0 {
        return Vec::new();
    }
    let mut state = (image as u64) << 32 ^ site as u64 ^ 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % positions as u64) as usize
        })
        .collect()
}
