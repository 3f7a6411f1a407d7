//! Calibration observers, each a port of one PPQ 0.6.6 class in
//! `ppq/quantization/observer/range.py`, with the same arithmetic (f32 where PPQ works on f32
//! tensors, f64 where it works on Python floats) so that scales and zero points match PPQ's.
//!
//! Streaming use: call `observe` once per calibration image with that image's activation
//! tensor (flattened), then ask for the result. [`KlObserver`] and [`MseObserver`] need two
//! passes over the same images: pass 1 (`observe`) finds the range, [`HistogramObserver::start_histogram`]
//! fixes the histogram from it, pass 2 (`observe` again) fills the histogram.

use thiserror::Error;

/// PPQ's `OBSERVER_MIN_SCALE`: scales are clamped to at least this.
pub const MIN_SCALE: f64 = 1e-8;
/// PPQ's `OBSERVER_PERCENTILE`.
pub const DEFAULT_PERCENTILE: f64 = 0.9999;
/// PPQ's `OBSERVER_KL_HIST_BINS`.
pub const KL_HIST_BINS: usize = 4096;
/// PPQ's `OBSERVER_MSE_HIST_BINS`.
pub const MSE_HIST_BINS: usize = 2048;
/// PPQ's `OBSERVER_MSE_COMPUTE_INTERVAL`: stride of the MSE search over the range start.
pub const MSE_COMPUTE_INTERVAL: usize = 8;

/// Misuse of an observer or unusable calibration data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ObserverError {
    #[error("observed an empty tensor")]
    EmptyTensor,
    #[error("observed a non-finite value (NaN or infinity)")]
    NonFinite,
    #[error("no tensor observed yet")]
    NoData,
    #[error("observer is in the wrong pass: {0}")]
    WrongPass(&'static str),
    #[error("KL calibration is symmetric-only in PPQ; asymmetric bounds requested")]
    KlAsymmetric,
}

pub type Result<T> = std::result::Result<T, ObserverError>;

/// Integer range and symmetry of a quantized tensor (PPQ's `quant_min`, `quant_max`,
/// `SYMMETRICAL`/`ASYMMETRICAL`). 8 bits throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantBounds {
    pub qmin: i32,
    pub qmax: i32,
    pub symmetric: bool,
}

impl QuantBounds {
    /// Activations: asymmetric uint8 `[0, 255]`.
    pub const ASYM_U8: Self = Self { qmin: 0, qmax: 255, symmetric: false };
    /// Symmetric int8, full range `[-128, 127]` (`scale = absmax / 127.5`).
    pub const SYM_I8: Self = Self { qmin: -128, qmax: 127, symmetric: true };
    /// Symmetric int8, narrow range `[-127, 127]` (`scale = absmax / 127`): weights.
    /// PPQ's narrow int8 scheme, which the observer parity tests run against PPQ.
    #[cfg(test)]
    pub const SYM_I8_NARROW: Self = Self { qmin: -127, qmax: 127, symmetric: true };
}

/// A calibrated real range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Range {
    /// [`minmax_to_scale_offset`] of this range.
    pub fn params(self, bounds: QuantBounds) -> QuantParams {
        minmax_to_scale_offset(f64::from(self.min), f64::from(self.max), bounds)
    }
}

/// Per-tensor quantization parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// PPQ `minmax_to_scale_offset` (no power-of-2 option): see the scheme in [`crate::quant`].
pub fn minmax_to_scale_offset(min: f64, max: f64, bounds: QuantBounds) -> QuantParams {
    let min = if min > 0.0 { 0.0 } else { min };
    let max = if max < 0.0 { 0.0 } else { max };
    let levels = f64::from(bounds.qmax - bounds.qmin);
    if bounds.symmetric {
        let scale = (2.0 * max.abs().max(min.abs()) / levels).max(MIN_SCALE);
        QuantParams { scale: scale as f32, zero_point: 0 }
    } else {
        let scale = ((max - min) / levels).max(MIN_SCALE);
        // PPQ: ppq_numerical_round(-min / scale), Decimal ROUND_HALF_EVEN of the exact f64.
        let zero_point = (-min / scale).round_ties_even() as i32;
        QuantParams { scale: scale as f32, zero_point }
    }
}

/// Quantizes one value as PPQ's linear quantization does (`torch.round(x / scale) + offset`,
/// clamped), in f32.
pub fn quantize(x: f32, params: QuantParams, bounds: QuantBounds) -> i32 {
    let q = (x / params.scale).round_ties_even() as i64 + i64::from(params.zero_point);
    q.clamp(i64::from(bounds.qmin), i64::from(bounds.qmax)) as i32
}

/// Bias scales (`input_scale * weight_scale[c]`, f32 as PPQ's tensor product); biases are
/// int32 with zero point 0.
pub fn bias_scales(input_scale: f32, weight_scales: &[f32]) -> Vec<f32> {
    weight_scales.iter().map(|w| input_scale * w).collect()
}

fn check(values: &[f32]) -> Result<()> {
    if values.is_empty() {
        return Err(ObserverError::EmptyTensor);
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(ObserverError::NonFinite);
    }
    Ok(())
}

fn min_max(values: &[f32]) -> (f32, f32) {
    values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Per-output-channel symmetric weight scales (PPQ `TorchMinMaxObserver`, `PER_CHANNEL`,
/// channel axis 0): `weights` is row-major with the output channel outermost, split into
/// `out_channels` equal chunks. Zero points are all 0.
///
/// # Panics
/// If `bounds` is not symmetric, `out_channels` is 0 or does not divide `weights.len()`, or
/// `weights` is empty (programming errors: the shape comes from the model).
pub fn weight_scales_per_channel(weights: &[f32], out_channels: usize, bounds: QuantBounds) -> Vec<f32> {
    assert!(bounds.symmetric, "weights are quantized symmetrically");
    assert!(
        out_channels > 0 && !weights.is_empty() && weights.len().is_multiple_of(out_channels),
        "weight length {} is not a multiple of {} channels",
        weights.len(),
        out_channels
    );
    weights
        .chunks(weights.len() / out_channels)
        .map(|c| {
            let (lo, hi) = min_max(c);
            minmax_to_scale_offset(f64::from(lo), f64::from(hi), bounds).scale
        })
        .collect()
}

/// PPQ `TorchMinMaxObserver` (per tensor): min and max over all observed values.
#[derive(Debug, Clone, Default)]
pub struct MinMaxObserver {
    range: Option<(f32, f32)>,
}

impl MinMaxObserver {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn observe(&mut self, values: &[f32]) -> Result<()> {
        check(values)?;
        let (lo, hi) = min_max(values);
        self.range = Some(match self.range {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
        Ok(())
    }

    pub fn range(&self) -> Result<Range> {
        self.range.map(|(min, max)| Range { min, max }).ok_or(ObserverError::NoData)
    }

    pub fn params(&self, bounds: QuantBounds) -> Result<QuantParams> {
        Ok(self.range()?.params(bounds))
    }
}

/// PPQ `TorchPercentileObserver` (per tensor). For each observed tensor of `n` values it takes
/// the order statistics (0-based, ascending) `lo = sorted[trunc(n * (1 - p))]` and
/// `hi = sorted[min(trunc(n * p), n - 1)]` (PPQ's `torch.kthvalue` indices); the final range
/// is the f32 mean of the per-tensor `lo`s and of the `hi`s.
#[derive(Debug, Clone)]
pub struct PercentileObserver {
    percentile: f64,
    los: Vec<f32>,
    his: Vec<f32>,
    scratch: Vec<f32>,
}

impl PercentileObserver {
    /// # Panics
    /// If `percentile` is not in `(0, 1]`.
    pub fn new(percentile: f64) -> Self {
        assert!(percentile > 0.0 && percentile <= 1.0, "percentile {percentile} not in (0, 1]");
        Self { percentile, los: Vec::new(), his: Vec::new(), scratch: Vec::new() }
    }

    pub fn observe(&mut self, values: &[f32]) -> Result<()> {
        check(values)?;
        let n = values.len();
        let lo_idx = ((n as f64) * (1.0 - self.percentile)) as usize;
        let hi_idx = (((n as f64) * self.percentile) as usize).min(n - 1);
        self.scratch.clear();
        self.scratch.extend_from_slice(values);
        let (_, &mut lo, _) = self.scratch.select_nth_unstable_by(lo_idx, f32::total_cmp);
        let (_, &mut hi, _) = self.scratch.select_nth_unstable_by(hi_idx, f32::total_cmp);
        self.los.push(lo);
        self.his.push(hi);
        Ok(())
    }

    pub fn range(&self) -> Result<Range> {
        if self.los.is_empty() {
            return Err(ObserverError::NoData);
        }
        // torch mean over dim 0 of a [batches, 2] f32 tensor: f32 sum, then divide.
        let n = self.los.len() as f32;
        let mean = |v: &[f32]| v.iter().fold(0.0f32, |a, &b| a + b) / n;
        Ok(Range { min: mean(&self.los), max: mean(&self.his) })
    }

    pub fn params(&self, bounds: QuantBounds) -> Result<QuantParams> {
        Ok(self.range()?.params(bounds))
    }
}

#[derive(Debug, Clone)]
enum Pass {
    Range(MinMaxObserver),
    Histogram { min: f64, max: f64, hist_scale: f64, lo: f64, hi: f64, counts: Vec<u64> },
}

/// Two-pass histogram collection shared by [`KlObserver`] and [`MseObserver`]
/// (PPQ `TorchHistObserver`'s "Detecting Minmax" and "Collating Hist" phases).
///
/// Pass 2 histograms as `torch.histc` does: symmetric bounds histogram `|x|` over
/// `[0, absmax]`, asymmetric bounds histogram `x` over `[min, max]`, in `bins` equal bins,
/// bin index `trunc((x - lo) * bins / (hi - lo))` in f32, the upper edge in the last bin.
#[derive(Debug, Clone)]
pub struct HistogramObserver {
    bins: usize,
    symmetric: bool,
    pass: Pass,
}

impl HistogramObserver {
    fn new(bins: usize, symmetric: bool) -> Self {
        assert!(bins > 0, "histogram needs bins");
        Self { bins, symmetric, pass: Pass::Range(MinMaxObserver::new()) }
    }

    /// Pass 1: range; pass 2: histogram.
    pub fn observe(&mut self, values: &[f32]) -> Result<()> {
        let symmetric = self.symmetric;
        let bins = self.bins;
        match &mut self.pass {
            Pass::Range(mm) => mm.observe(values),
            Pass::Histogram { lo, hi, counts, .. } => {
                check(values)?;
                let (mut lo, mut hi) = (*lo, *hi);
                let map = |v: f32| if symmetric { v.abs() } else { v };
                if lo == 0.0 && hi == 0.0 {
                    // torch.histc: min == max == 0 means "use the data's range".
                    let (a, b) = values
                        .iter()
                        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(map(v)), b.max(map(v))));
                    (lo, hi) = (f64::from(a), f64::from(b));
                }
                if lo == hi {
                    lo -= 1.0;
                    hi += 1.0;
                }
                let (lo, hi) = (lo as f32, hi as f32);
                let width = hi - lo;
                let nb = bins as f32;
                for &v in values {
                    let v = map(v);
                    if v < lo || v > hi {
                        continue;
                    }
                    let pos = (((v - lo) * nb / width) as usize).min(bins - 1);
                    counts[pos] += 1;
                }
                Ok(())
            }
        }
    }

    /// Ends pass 1 and fixes the histogram range (PPQ: symmetric `hist_scale = absmax / bins`,
    /// asymmetric `hist_scale = (max - min) / bins`, with the raw observed min and max).
    pub fn start_histogram(&mut self) -> Result<()> {
        let Pass::Range(mm) = &self.pass else {
            return Err(ObserverError::WrongPass("start_histogram called twice"));
        };
        let r = mm.range()?;
        let (min, max) = (f64::from(r.min), f64::from(r.max));
        let bins = self.bins as f64;
        let (hist_scale, lo, hi) = if self.symmetric {
            let s = max.abs().max(min.abs()) / bins;
            (s, 0.0, s * bins)
        } else {
            ((max - min) / bins, min, max)
        };
        self.pass = Pass::Histogram { min, max, hist_scale, lo, hi, counts: vec![0; self.bins] };
        Ok(())
    }

    /// Range observed in pass 1.
    pub fn range(&self) -> Result<Range> {
        match &self.pass {
            Pass::Range(mm) => mm.range(),
            Pass::Histogram { min, max, .. } => Ok(Range { min: *min as f32, max: *max as f32 }),
        }
    }

    fn histogram(&self) -> Result<(f64, f64, &[u64])> {
        match &self.pass {
            Pass::Range(_) => Err(ObserverError::WrongPass("histogram not started")),
            Pass::Histogram { counts, .. } if counts.iter().all(|&c| c == 0) => Err(ObserverError::NoData),
            Pass::Histogram { min, hist_scale, counts, .. } => Ok((*min, *hist_scale, counts)),
        }
    }
}

/// PPQ `TorchHistObserver` ("kl"): TensorRT entropy calibration over a 4096-bin histogram of
/// `|x|`; symmetric int8 only (PPQ raises for asymmetric configs).
#[derive(Debug, Clone)]
pub struct KlObserver {
    pub hist: HistogramObserver,
}

impl Default for KlObserver {
    fn default() -> Self {
        Self::new(KL_HIST_BINS)
    }
}

impl KlObserver {
    pub fn new(bins: usize) -> Self {
        Self { hist: HistogramObserver::new(bins, true) }
    }

    pub fn observe(&mut self, values: &[f32]) -> Result<()> {
        self.hist.observe(values)
    }

    pub fn start_histogram(&mut self) -> Result<()> {
        self.hist.start_histogram()
    }

    /// PPQ `TorchHistObserver.hist_to_scale_offset` with 8 bits (128 quantized bins): zero the
    /// first `trunc(0.002 * bins)` bins and set the next to 1; for each candidate clip
    /// `bin_range` in `128, 256, .., bins`, P = histogram[..bin_range] with the tail summed into
    /// its last bin, normalised by the total; Q = P's bins merged 128 ways and spread back
    /// evenly over the non-empty bins, normalised; KL = sum P * (log10(P + 1e-30) -
    /// log10(Q + 1e-30)). The first minimal `bin_range` gives
    /// `scale = bin_range / bins * hist_scale * bins / 128`, at least 1e-8; zero point 0.
    pub fn params(&self, bounds: QuantBounds) -> Result<QuantParams> {
        if !bounds.symmetric {
            return Err(ObserverError::KlAsymmetric);
        }
        let (_, hist_scale, counts) = self.hist.histogram()?;
        let bins = counts.len();
        const QUANT_BINS: usize = 128;
        let mut h: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
        let cut = (bins as f64 * 0.002) as usize;
        h[..cut].iter_mut().for_each(|v| *v = 0.0);
        if cut < bins {
            h[cut] = 1.0;
        }
        let total = h.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
        let mut best: Option<(f64, usize)> = None;
        let mut p = Vec::with_capacity(bins);
        let mut q = Vec::with_capacity(bins);
        let mut bin_range = QUANT_BINS;
        while bin_range < bins + QUANT_BINS - 1 {
            let br = bin_range.min(bins);
            p.clear();
            p.extend_from_slice(&h[..br]);
            let tail = h[br..].iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
            p[br - 1] += tail;
            p.iter_mut().for_each(|v| *v /= total);
            let ratio = br / QUANT_BINS;
            q.clear();
            for g in h[..ratio * QUANT_BINS].chunks(ratio) {
                let sum = g.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
                let cnt = g.iter().filter(|&&v| v > 0.0).count().max(1) as f32;
                let avg = sum / cnt;
                q.extend(g.iter().map(|&v| if v > 0.0 { avg } else { 0.0 }));
            }
            let qsum = q.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
            q.iter_mut().for_each(|v| *v /= qsum);
            let kl: f64 = p
                .iter()
                .zip(&q)
                .map(|(&pv, &qv)| {
                    let (pv, qv) = (f64::from(pv), f64::from(qv));
                    pv * ((pv + 1e-30).log10() - (qv + 1e-30).log10())
                })
                .sum();
            if best.is_none_or(|(b, _)| kl < b) {
                best = Some((kl, bin_range));
            }
            bin_range += QUANT_BINS;
        }
        let (_, best_range) = best.ok_or(ObserverError::NoData)?;
        let scale = (best_range as f64 / bins as f64) * hist_scale * (bins as f64 / QUANT_BINS as f64);
        Ok(QuantParams { scale: scale.max(MIN_SCALE) as f32, zero_point: 0 })
    }
}

/// PPQ `TorchMSEObserver`: grid search over a 2048-bin histogram for the clip range with the
/// least expected squared rounding + clipping error, measured in bins with each bin's values
/// taken as uniform.
#[derive(Debug, Clone)]
pub struct MseObserver {
    pub hist: HistogramObserver,
    bounds: QuantBounds,
}

impl MseObserver {
    pub fn new(bounds: QuantBounds) -> Self {
        Self { hist: HistogramObserver::new(MSE_HIST_BINS, bounds.symmetric), bounds }
    }

    pub fn observe(&mut self, values: &[f32]) -> Result<()> {
        self.hist.observe(values)
    }

    pub fn start_histogram(&mut self) -> Result<()> {
        self.hist.start_histogram()
    }

    /// PPQ `TorchMSEObserver.hist_to_scale_offset`. With `L = qmax - qmin + 1` levels, the
    /// candidates, in order, are `(start 0, step bins/L + 1)` and then, for `start` in
    /// `0, 8, 16, ..` (asymmetric only, stopping once `start * hist_scale + min > 0`; symmetric
    /// uses `start = 0` only) and `step` in `1..=bins/L` (stopping once `end > bins + L`),
    /// `end = start + L * step`. The first candidate of least [`mse_loss`] gives the range
    /// `[start * hist_scale + min, end * hist_scale + min]` (symmetric: `±end * hist_scale`),
    /// turned into parameters by [`minmax_to_scale_offset`].
    pub fn params(&self) -> Result<QuantParams> {
        let (min, hist_scale, counts) = self.hist.histogram()?;
        let bins = counts.len();
        let levels = (self.bounds.qmax - self.bounds.qmin + 1) as usize;
        let mut cands = vec![(0usize, (bins / levels + 1) * levels)];
        let starts: Vec<usize> =
            if self.bounds.symmetric { vec![0] } else { (0..bins).step_by(MSE_COMPUTE_INTERVAL).collect() };
        for start in starts {
            if !self.bounds.symmetric && start as f64 * hist_scale + min > 0.0 {
                break;
            }
            for step in 1..=bins / levels {
                let end = start + levels * step;
                if end > bins + levels {
                    break;
                }
                cands.push((start, end));
            }
        }
        let mut best: Option<(f64, usize, usize)> = None;
        for (start, end) in cands {
            let step = (end - start) / levels;
            let loss = mse_loss(counts, start, step, end);
            if best.is_none_or(|(b, _, _)| loss < b) {
                best = Some((loss, start, end));
            }
        }
        let (_, start, end) = best.ok_or(ObserverError::NoData)?;
        let (lo, hi) = if self.bounds.symmetric {
            (-(end as f64 * hist_scale), end as f64 * hist_scale)
        } else {
            (start as f64 * hist_scale + min, end as f64 * hist_scale + min)
        };
        Ok(minmax_to_scale_offset(lo, hi, self.bounds))
    }
}

/// PPQ `TorchMSEObserver.compute_mse_loss` (CPU path), in f64 and the same summation order:
/// bins below `start` cost `(start - idx - 0.5)^2`, above `end` `(idx - end + 0.5)^2`, inside
/// the distance from the bin centre to the nearest grid point (`(l + 0.25)^2` when centred).
pub fn mse_loss(hist: &[u64], start: usize, step: usize, end: usize) -> f64 {
    let n: u64 = hist.iter().sum();
    let n = n as f64;
    let mut loss = 0.0;
    for (idx, &count) in hist.iter().enumerate() {
        let error = if idx < start {
            (start - idx - 1) as f64 + 0.5
        } else if idx > end {
            (idx - end) as f64 + 0.5
        } else {
            let l = (idx - start) % step;
            let r = step as i64 - l as i64 - 1;
            if l as i64 == r {
                l as f64 + 0.25
            } else {
                (l as f64 + 0.5).min(r as f64 + 0.5)
            }
        };
        loss += (count as f64 * error * error) / n;
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_hand_checked() {
        let mut o = MinMaxObserver::new();
        o.observe(&[-1.0, 0.5, 2.0]).unwrap();
        o.observe(&[3.0, -0.5]).unwrap();
        assert_eq!(o.range().unwrap(), Range { min: -1.0, max: 3.0 });
        let p = o.params(QuantBounds::ASYM_U8).unwrap();
        let scale = 4.0f64 / 255.0;
        assert_eq!(p.scale, scale as f32);
        assert_eq!(p.zero_point, (1.0 / scale).round() as i32); // 63.75 -> 64
        assert_eq!(p.zero_point, 64);
        let s = o.params(QuantBounds::SYM_I8_NARROW).unwrap();
        assert_eq!((s.scale, s.zero_point), ((3.0f64 / 127.0) as f32, 0));
    }

    #[test]
    fn range_widened_to_zero_and_min_scale() {
        let p = minmax_to_scale_offset(0.5, 2.0, QuantBounds::ASYM_U8);
        assert_eq!((p.scale, p.zero_point), ((2.0f64 / 255.0) as f32, 0));
        let p = minmax_to_scale_offset(-2.0, -0.5, QuantBounds::ASYM_U8);
        assert_eq!((p.scale, p.zero_point), ((2.0f64 / 255.0) as f32, 255));
        let p = minmax_to_scale_offset(0.0, 0.0, QuantBounds::ASYM_U8);
        assert_eq!((p.scale, p.zero_point), (1e-8f64 as f32, 0));
    }

    #[test]
    fn zero_point_rounds_half_even() {
        // -min / scale = 2.5 exactly: scale = 0.4 / 255... choose min, max with exact ratio.
        let p = minmax_to_scale_offset(-2.5, 252.5, QuantBounds::ASYM_U8); // scale 1
        assert_eq!((p.scale, p.zero_point), (1.0, 2));
        let p = minmax_to_scale_offset(-3.5, 251.5, QuantBounds::ASYM_U8);
        assert_eq!((p.scale, p.zero_point), (1.0, 4));
        assert_eq!(quantize(0.5, p, QuantBounds::ASYM_U8), 4);
        assert_eq!(quantize(1.5, p, QuantBounds::ASYM_U8), 6);
        assert_eq!(quantize(1e9, p, QuantBounds::ASYM_U8), 255);
    }

    #[test]
    fn percentile_indices() {
        // The index uses f64 `1 - p` as Python does: 1 - 0.999 = 0.0010000000000000009, so
        // n = 10000 gives trunc(10.000000000000009) = 10 and hi = trunc(9990.0) = 9990.
        let v: Vec<f32> = (0..10000).rev().map(|i| i as f32).collect();
        let mut o = PercentileObserver::new(0.999);
        o.observe(&v).unwrap(); // lo = sorted[10], hi = sorted[9990]
        o.observe(&v[..1000]).unwrap(); // values 9999..9000: lo = sorted[1] = 9001, hi = sorted[999] = 9999
        let r = o.range().unwrap();
        assert_eq!(r, Range { min: (10.0 + 9001.0) / 2.0, max: (9990.0 + 9999.0) / 2.0 });
    }

    #[test]
    fn errors() {
        let mut o = MinMaxObserver::new();
        assert_eq!(o.params(QuantBounds::ASYM_U8), Err(ObserverError::NoData));
        assert_eq!(o.observe(&[]), Err(ObserverError::EmptyTensor));
        assert_eq!(o.observe(&[f32::NAN]), Err(ObserverError::NonFinite));
        let mut k = KlObserver::default();
        k.observe(&[1.0]).unwrap();
        assert!(matches!(k.params(QuantBounds::SYM_I8), Err(ObserverError::WrongPass(_))));
        k.start_histogram().unwrap();
        assert!(k.start_histogram().is_err());
        assert_eq!(k.params(QuantBounds::ASYM_U8), Err(ObserverError::KlAsymmetric));
    }

    #[test]
    fn weights_and_bias() {
        let w = [0.5, -1.27, 0.0, 0.0, 0.0, 0.0, 2.54, 1.0];
        let s = weight_scales_per_channel(&w, 4, QuantBounds::SYM_I8_NARROW);
        assert_eq!(
            s,
            vec![
                (1.27f64 as f32 as f64 / 127.0) as f32,
                1e-8f64 as f32,
                1e-8f64 as f32,
                (2.54f32 as f64 / 127.0) as f32
            ]
        );
        assert_eq!(bias_scales(0.5, &s[..1]), vec![0.5 * s[0]]);
    }

    #[test]
    fn mse_loss_hand_checked() {
        // 4 bins, grid start 0 step 2 end 4: bins 0..=3 have l = 0,1,0,1 -> r = 1,0,1,0,
        // error 0.5 each; bin 5 > end costs (5 - 4 + 0.5)^2.
        let h = [1, 1, 1, 1, 0, 1];
        let expect = 4.0 * 0.25 / 5.0 + 1.5 * 1.5 / 5.0;
        assert!((mse_loss(&h, 0, 2, 4) - expect).abs() < 1e-15);
    }
}
