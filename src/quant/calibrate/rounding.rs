//! The GPTQ stage of calibration: each chosen conv's input Hessian over the calibration
//! images, then its weights rounded by [`crate::quant::gptq`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use rayon::prelude::*;

use super::stages::Calibration;
use super::{PairCost, Rounded, PAIR_LIMIT};
use crate::error::{Error, Result};
use crate::kernels::WeightRange;
use crate::progress::Event;
use crate::quant::analysis;
use crate::quant::gptq::{self, ConvGeometry, Hessian, PairBound};
use crate::quant::observers::{self, QuantBounds, QuantParams};
use crate::quant::runner::GraphRunner;

/// One conv GPTQ rounds: its site, where its kernel reads, its weights' row length.
struct Target {
    site: usize,
    geometry: ConvGeometry,
    dim: usize,
}

impl Calibration<'_> {
    /// GPTQ's integer weights of the `chosen` convs it handles (not grouped, not dilated),
    /// by site. Each conv's Hessian is taken over its input as the quantized model reads it
    /// from an exact upstream: the float model's tensor through its uint8 QuantizeLinear and
    /// DequantizeLinear (`acts`). A conv whose Hessian cannot be inverted keeps
    /// round-to-nearest.
    pub(super) fn gptq_weights(
        &self,
        acts: &BTreeMap<String, QuantParams>,
        chosen: &[usize],
        images: &[PathBuf],
    ) -> Result<BTreeMap<usize, Rounded>> {
        let nodes = self.float.graph.as_ref().map(|g| g.node.as_slice()).unwrap_or_default();
        let targets: Vec<Target> = chosen
            .iter()
            .filter_map(|&i| {
                let s = &self.sites[i];
                let geometry = ConvGeometry::of(nodes.get(s.node_index)?, &s.weight_dims)?;
                let dim = s.weight_dims.iter().skip(1).product::<i64>() as usize;
                Some(Target { site: i, geometry, dim })
            })
            .collect();
        let tensors: Vec<String> = targets
            .iter()
            .flat_map(|t| self.sites[t.site].parts.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let input_names = self.input_names();
        let internal: Vec<String> = tensors.iter().filter(|t| !input_names.contains(t.as_str())).cloned().collect();
        let mut model = self.float.clone();
        analysis::set_outputs(&mut model, &internal);
        let runner = GraphRunner::new(&model, self.path)?;
        (self.setup.on_event)(Event::Stage("GPTQ Hessians", images.len()));
        // The products run in the pass's workers (the sink runs while the rayon pool decodes
        // ahead, so it must not wait on the pool); the sink only sums them.
        let work = |p: &crate::detector::Prepared| {
            let (h, w) = p.letterbox().out;
            let mut next = runner.run(p.chw(), p.letterbox().out)?.into_iter();
            let mut inputs: BTreeMap<&str, (Vec<f32>, [usize; 3])> = BTreeMap::new();
            for t in &tensors {
                let (data, shape) = if input_names.contains(t.as_str()) {
                    (p.chw().to_vec(), [3, h, w])
                } else {
                    let a = next.next().ok_or_else(|| Error::Inference("missing output".into()))?;
                    match a.shape[..] {
                        [1, c, h, w] => (a.data, [c, h, w]),
                        _ => return Err(Error::Inference(format!("{t}: shape {:?}, not NCHW", a.shape))),
                    }
                };
                inputs.insert(t, (fake_quantize(&data, acts[t]), shape));
            }
            targets
                .iter()
                .map(|t| {
                    let (data, shape) = concat_channels(&self.sites[t.site].parts, &inputs)?;
                    let (x, rows) = gptq::patches(&data, shape, &t.geometry);
                    gptq::gram(&x, rows, t.dim)
                        .map_err(|e| Error::Inference(format!("{}: {e}", self.sites[t.site].name)))
                })
                .collect::<Result<Vec<Vec<f32>>>>()
        };
        let mut sums: Vec<Hessian> = targets.iter().map(|t| Hessian::new(t.dim)).collect();
        self.setup.pass(images, work, |_, grams| {
            for (h, g) in sums.iter_mut().zip(&grams) {
                h.add_gram(g);
            }
            Ok(())
        })?;
        (self.setup.on_event)(Event::Stage("GPTQ rounding", targets.len()));
        let rounded = targets
            .par_iter()
            .zip(&sums)
            .filter_map(|(t, hessian)| {
                let s = &self.sites[t.site];
                let w = &self.weights[&s.weight];
                let scales = observers::weight_scales_per_channel(w, s.out_channels(), self.bounds);
                let rounded = self.round_conv(w, &scales, hessian, t.geometry.kernel[0] * t.geometry.kernel[1]);
                (self.setup.on_event)(Event::Step(None));
                Some((t.site, rounded?))
            })
            .collect();
        Ok(rounded)
    }

    /// One conv's GPTQ integers, pair-bounded if [`Calibration::pair_tolerance`] accepts
    /// what the bound costs; `None` if its Hessian cannot be inverted.
    ///
    /// Clamping each pair at the absmax scales (`|w| / 127`) multiplied GPTQ's output error
    /// by 42 (median conv of the COCO yolov8n, up to 1700): a pair of two large weights
    /// loses most of one. So the bound is met mostly by the scale: per channel, between the
    /// absmax scale and the one that puts its largest same-sign pair at 128 (no clamp at all;
    /// a channel of two equal large weights then has 7-bit steps), the blend of least output
    /// error for that channel, its few clamps compensated by GPTQ.
    fn round_conv(&self, w: &[f32], scales: &[f32], hessian: &Hessian, taps: usize) -> Option<Rounded> {
        let factor = gptq::Factor::new(hessian).ok()?;
        let free = factor.round(w, scales, self.bounds, None).ok()?;
        let Some(tolerance) = self.pair_tolerance else { return Some(Rounded { q: free, scales: None, pairs: None }) };
        let in_c = w.len() / scales.len() / taps;
        if WeightRange::of(&free, in_c, taps).max_pair <= PAIR_LIMIT {
            return Some(Rounded { q: free, scales: None, pairs: Some(PairCost { bounded: true, cost: 1.0 }) });
        }
        let free_error = gptq::output_error(w, scales, &free, hessian).max(f64::MIN_POSITIVE);
        let unclamped = pair_scales(w, scales, in_c, taps);
        let bound = PairBound { taps, limit: PAIR_LIMIT };
        let d = w.len() / scales.len();
        // Rows are rounded independently: each keeps the blend of its least error.
        let (mut q, mut s, mut row_error) = (vec![0i8; w.len()], scales.to_vec(), vec![f64::INFINITY; scales.len()]);
        for blend in PAIR_BLENDS {
            let bs: Vec<f32> = scales.iter().zip(&unclamped).map(|(&a, &b)| a + (b - a) * blend).collect();
            let bq = factor.round(w, &bs, self.bounds, Some(bound)).ok()?;
            for (r, e) in gptq::row_errors(w, &bs, &bq, hessian).into_iter().enumerate() {
                if e < row_error[r] {
                    (row_error[r], s[r]) = (e, bs[r]);
                    q[r * d..(r + 1) * d].copy_from_slice(&bq[r * d..(r + 1) * d]);
                }
            }
        }
        let e: f64 = row_error.iter().sum();
        let cost = e / free_error;
        Some(if cost <= 1.0 + tolerance {
            Rounded { q, scales: Some(s), pairs: Some(PairCost { bounded: true, cost }) }
        } else {
            Rounded { q: free, scales: None, pairs: Some(PairCost { bounded: false, cost }) }
        })
    }
}

/// The blends of absmax and unclamped scales tried ([`Calibration::round_conv`]).
const PAIR_BLENDS: [f32; 9] = [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0];

/// Per output channel of `w` (`[out][in_c][taps]`), the scale at which its largest sum of
/// same-sign weights of a pair ([`WeightRange::max_pair`]) is [`PAIR_LIMIT`] steps, and never
/// finer than its absmax scale in `scales`.
fn pair_scales(w: &[f32], scales: &[f32], in_c: usize, taps: usize) -> Vec<f32> {
    w.chunks_exact(in_c * taps)
        .zip(scales)
        .map(|(row, &s)| {
            let mut most = 0f32;
            for c in (0..in_c).step_by(2) {
                for t in 0..taps {
                    let a = row[c * taps + t];
                    let b = if c + 1 < in_c { row[(c + 1) * taps + t] } else { 0.0 };
                    most = most.max(a.max(0.0) + b.max(0.0)).max(-(a.min(0.0) + b.min(0.0)));
                }
            }
            s.max(most / PAIR_LIMIT as f32)
        })
        .collect()
}

/// The channels of `parts` one after the other, as the Concat a segmented conv reads joins
/// them (a single part: itself).
pub(super) fn concat_channels<K: std::borrow::Borrow<str> + Ord>(
    parts: &[String],
    inputs: &BTreeMap<K, (Vec<f32>, [usize; 3])>,
) -> Result<(Vec<f32>, [usize; 3])> {
    let (mut data, mut shape) = (Vec::new(), [0, 0, 0]);
    for t in parts {
        let (d, [c, h, w]) = &inputs[t.as_str()];
        if shape[0] > 0 && (shape[1], shape[2]) != (*h, *w) {
            return Err(Error::Inference(format!("{t}: {h}x{w}, not the {}x{} of the Concat", shape[1], shape[2])));
        }
        data.extend_from_slice(d);
        shape = [shape[0] + c, *h, *w];
    }
    Ok((data, shape))
}

/// `values` through a uint8 QuantizeLinear and DequantizeLinear.
pub(super) fn fake_quantize(values: &[f32], p: QuantParams) -> Vec<f32> {
    let zp = p.zero_point as f32;
    values.iter().map(|&v| (observers::quantize(v, p, QuantBounds::ASYM_U8) as f32 - zp) * p.scale).collect()
}
