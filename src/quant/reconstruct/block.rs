//! One conv + SiLU block's reconstruction: AdaRound (Nagel et al. 2020) of its int8 weights
//! against the float block's output, on a fixed sample of input patches. The input patches
//! come from the quantized upstream and the targets from the float model, so the rounding
//! corrects the error that reaches this block, as BRECQ and QDrop do.

use tract_onnx::prelude::tract_ndarray::{Array2, ArrayView2};

use super::grad::{conv, conv_weight_grad, silu, silu_grad, AdaRound, Adam};

/// The problem: `cols` (`[k][p]`, the block's input patches), `target` (`[out][p]`, the
/// float block's output), the float weights `w` (`[out][k]`), their per-channel scales and
/// the bias; SiLU after the conv if `silu`.
pub struct Block<'a> {
    pub cols: ArrayView2<'a, f32>,
    pub target: ArrayView2<'a, f32>,
    pub w: ArrayView2<'a, f32>,
    pub scales: &'a [f32],
    pub bias: &'a [f32],
    pub silu: bool,
    /// The integer grid's largest magnitude (127 for 8-bit weights).
    pub qmax: f32,
}

/// How AdaRound runs: steps, learning rate, the regulariser's weight and its `beta` annealed
/// from `beta.0` to `beta.1` after the first `warmup` share of the steps (the paper's 20 to 2
/// after 20%).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub steps: usize,
    pub lr: f32,
    pub lambda: f32,
    pub beta: (f32, f32),
    pub warmup: f32,
    /// Adam's learning rate for the bias, learned with the rounding (0: the bias stays):
    /// the block's input from a quantized upstream is shifted on average, which the bias
    /// absorbs more cheaply than the rounding.
    pub bias_lr: f32,
    /// Adam's learning rate for the log of each channel's weight scale (0: they stay).
    pub scale_lr: f32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { steps: 1000, lr: 1e-2, lambda: 0.01, beta: (20.0, 2.0), warmup: 0.2, bias_lr: 0.0, scale_lr: 0.0 }
    }
}

/// What [`Block::adaround`] learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    /// The integers, `[out][k]`.
    pub q: Vec<i8>,
    pub bias: Vec<f32>,
    /// Per output channel.
    pub scales: Vec<f32>,
}

/// The block's loss and its gradients at one point ([`Block::loss_and_grads`]).
pub struct Grads {
    pub loss: f32,
    /// By the (soft) level of each weight.
    pub levels: Vec<f32>,
    pub bias: Vec<f32>,
    /// By each channel's scale.
    pub scales: Vec<f32>,
}

impl Block<'_> {
    /// The block's output with weights `wq` (`[out][k]`) and bias `bias`, before and after
    /// the SiLU.
    fn output(&self, wq: &Array2<f32>, bias: &[f32]) -> (Array2<f32>, Array2<f32>) {
        let pre = conv(wq.view(), self.cols, bias);
        let out = if self.silu { pre.mapv(silu) } else { pre.clone() };
        (pre, out)
    }

    /// Mean square error of the block's output with integer weights `q` on `scales`, and
    /// bias `bias`, against the target.
    pub fn error(&self, q: &[i8], scales: &[f32], bias: &[f32]) -> f32 {
        let levels: Vec<f32> = q.iter().map(|&v| f32::from(v)).collect();
        self.loss_and_grads(&levels, scales, bias).loss
    }

    fn dequantize(&self, levels: &[f32], scales: &[f32]) -> Array2<f32> {
        let (o, k) = self.w.dim();
        Array2::from_shape_fn((o, k), |(r, c)| levels[r * k + c] * scales[r])
    }

    /// The mean square error with weights `levels * scales` (levels need not be whole) and
    /// `bias`, and its gradients by the levels, the bias and the scales.
    pub fn loss_and_grads(&self, levels: &[f32], scales: &[f32], bias: &[f32]) -> Grads {
        let k = self.w.ncols();
        let wq = self.dequantize(levels, scales);
        let (pre, out) = self.output(&wq, bias);
        let n = self.target.len() as f32;
        let diff = &out - &self.target;
        let loss = diff.iter().map(|d| d * d).sum::<f32>() / n;
        let mut dy = diff.mapv(|d| 2.0 * d / n);
        if self.silu {
            dy.zip_mut_with(&pre, |g, &p| *g *= silu_grad(p));
        }
        let dw = conv_weight_grad(dy.view(), self.cols);
        let by_level = dw.iter().enumerate().map(|(i, &g)| g * scales[i / k]).collect();
        let by_scale = dw
            .rows()
            .into_iter()
            .enumerate()
            .map(|(r, row)| row.iter().zip(&levels[r * k..(r + 1) * k]).map(|(g, l)| g * l).sum());
        Grads {
            loss,
            levels: by_level,
            bias: dy.rows().into_iter().map(|r| r.sum()).collect(),
            scales: by_scale.collect(),
        }
    }

    /// Nearest rounding, within `[-qmax, qmax]`.
    pub fn nearest(&self) -> Vec<i8> {
        let k = self.w.ncols();
        self.w
            .iter()
            .enumerate()
            .map(|(i, &x)| (x / self.scales[i / k]).round_ties_even().clamp(-self.qmax, self.qmax) as i8)
            .collect()
    }

    /// AdaRound's integers: `floor(w / s) + h(v)` learned by Adam on the output's mean square
    /// error plus the annealed regulariser, then `h` rounded to 0 or 1; with them the bias
    /// (if `schedule.bias_lr > 0`) and the channels' scales (LSQ's step sizes on the fixed
    /// integer grid, if `schedule.scale_lr > 0`).
    pub fn adaround(&self, schedule: &Schedule) -> Learned {
        let a = AdaRound::default();
        let k = self.w.ncols();
        let floor: Vec<f32> = self.w.iter().enumerate().map(|(i, &x)| (x / self.scales[i / k]).floor()).collect();
        let mut v: Vec<f32> =
            self.w.iter().enumerate().map(|(i, &x)| a.init(x / self.scales[i / k] - floor[i])).collect();
        let mut opt = Adam::new(v.len(), schedule.lr);
        let (mut bias, mut scales) = (self.bias.to_vec(), self.scales.to_vec());
        let mut bias_opt = Adam::new(bias.len(), schedule.bias_lr);
        // Scales move in relative steps: Adam on the log of each.
        let mut log_scales: Vec<f32> = scales.iter().map(|s| s.max(f32::MIN_POSITIVE).ln()).collect();
        let mut scale_opt = Adam::new(scales.len(), schedule.scale_lr);
        for step in 0..schedule.steps {
            let t = step as f32 / schedule.steps as f32;
            let reg_on = t >= schedule.warmup;
            let beta = if reg_on {
                let u = (t - schedule.warmup) / (1.0 - schedule.warmup);
                schedule.beta.1 + (schedule.beta.0 - schedule.beta.1) * (1.0 - u)
            } else {
                schedule.beta.0
            };
            let levels: Vec<f32> =
                floor.iter().zip(&v).map(|(f, &x)| (f + a.h(x)).clamp(-self.qmax, self.qmax)).collect();
            let g = self.loss_and_grads(&levels, &scales, &bias);
            let grads: Vec<f32> = g
                .levels
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    let reg = if reg_on { schedule.lambda * a.reg_grad(v[i], beta) } else { 0.0 };
                    d * a.h_grad(v[i]) + reg
                })
                .collect();
            opt.step(&mut v, &grads);
            if schedule.bias_lr > 0.0 {
                bias_opt.step(&mut bias, &g.bias);
            }
            if schedule.scale_lr > 0.0 {
                let by_log: Vec<f32> = g.scales.iter().zip(&scales).map(|(d, s)| d * s).collect();
                scale_opt.step(&mut log_scales, &by_log);
                scales = log_scales.iter().map(|l| l.exp()).collect();
            }
        }
        let q = floor
            .iter()
            .zip(&v)
            .map(|(f, &x)| (f + if a.h(x) >= 0.5 { 1.0 } else { 0.0 }).clamp(-self.qmax, self.qmax) as i8)
            .collect();
        Learned { q, bias, scales }
    }
}

impl Block<'_> {
    /// Brings learned integers `q` (`[out][in_c][taps]`) within the pair bound `vpmaddubsw`
    /// needs ([`crate::kernels::WeightRange::max_pair`] at most `limit`): in a pair whose
    /// same-sign weights sum past `limit`, the weight rounded furthest away from zero (the
    /// largest `|q| - |w / s|`) loses one step, until the pair fits.
    pub fn bound_pairs(&self, q: &mut [i8], taps: usize, limit: i32) {
        let k = self.w.ncols();
        if taps == 0 || !k.is_multiple_of(taps) {
            return;
        }
        let in_c = k / taps;
        for (r, row) in q.chunks_exact_mut(k).enumerate() {
            let real = |i: usize| self.w[[r, i]] / self.scales[r];
            for c in (0..in_c).step_by(2) {
                for t in 0..taps {
                    let members: Vec<usize> = (c..(c + 2).min(in_c)).map(|ch| ch * taps + t).collect();
                    for sign in [1i32, -1] {
                        loop {
                            let sum: i32 = members.iter().map(|&i| (sign * i32::from(row[i])).max(0)).sum();
                            if sum <= limit {
                                break;
                            }
                            let Some(&i) =
                                members.iter().filter(|&&i| sign * i32::from(row[i]) > 0).max_by(|&&a, &&b| {
                                    let over = |i: usize| (sign * i32::from(row[i])) as f32 - sign as f32 * real(i);
                                    over(a).total_cmp(&over(b))
                                })
                            else {
                                break;
                            };
                            row[i] = (i32::from(row[i]) - sign) as i8;
                        }
                    }
                }
            }
        }
    }
}
