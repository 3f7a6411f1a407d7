//! Ultralytics' detection metrics, reproduced operation by operation from ultralytics 8.4
//! (`utils/metrics.py`: `box_iou`, `compute_ap`, `ap_per_class`, `smooth`, `Metric`,
//! `DetMetrics`; `engine/validator.py`: `BaseValidator.match_predictions`), so that
//! `qdet val` prints the numbers `yolo val` prints for the same predictions.
//!
//! Details that change results and are easy to get wrong, all copied here:
//! * matching is greedy in prediction order (NMS output, best score first), each prediction
//!   taking the best still-unclaimed same-class label at every IoU threshold separately;
//! * IoU in float32 with `eps = 1e-7` in the denominator, thresholds are the float32
//!   values of `torch.linspace(0.5, 0.95, 10)` and compared with `>=`;
//! * `np.interp` picks the *last* of equal x-coordinates (confidence ties, flat recall);
//! * AP is the trapezoid over a 101-point interpolation of the precision envelope;
//! * P and R are read off 1000-point confidence curves at the argmax of the box-filtered
//!   (width 101) mean F1 curve, not at a fixed confidence;
//! * only classes that have labels count; predictions of label-less classes are ignored,
//!   and a class with labels but no predictions scores 0 everywhere;
//! * numpy sums contiguous arrays pairwise, which [`pairwise_sum`] reproduces.
//!
//! One thing cannot be copied: `ap_per_class` sorts by confidence with numpy's default
//! (unstable, SIMD) argsort, so the order of predictions with *equal* confidence depends on
//! the numpy build. qdet uses a stable sort (pycocotools' choice); results differ only when
//! equal-confidence predictions of one class are not all correct or all wrong alike.

use std::collections::BTreeMap;

/// Number of IoU thresholds (0.50:0.05:0.95).
pub const NIOU: usize = 10;

/// `torch.linspace(0.5, 0.95, 10)` as float32: the nearest floats to 0.50, 0.55, ... 0.95.
pub const IOU_THRESHOLDS: [f32; NIOU] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// Which IoU thresholds a prediction is a true positive at.
pub type Correct = [bool; NIOU];

/// `box_iou`'s epsilon, added to the union.
const IOU_EPS: f32 = 1e-7;
/// `ap_per_class`'s epsilon (recall denominator, F1, false-positive count).
const AP_EPS: f64 = 1e-16;
/// Points of the confidence grid of the P, R and F1 curves.
const CURVE_POINTS: usize = 1000;
/// Points of the COCO recall grid AP is integrated over.
const AP_POINTS: usize = 101;

/// Ultralytics `box_iou` for two `[x1, y1, x2, y2]` boxes, in float32 with the same
/// operation order (`inter / (area1 + area2 - inter + eps)`).
pub fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    inter / (area_a + area_b - inter + IOU_EPS)
}

/// `DetectionValidator.match_predictions` without scipy (Ultralytics' default).
///
/// `iou` is row-major `labels x predictions` (`iou[i * n_pred + j]`); predictions must be
/// in NMS output order (descending score), because earlier predictions claim labels first.
pub fn match_predictions(pred_cls: &[usize], true_cls: &[usize], iou: &[f32]) -> Vec<Correct> {
    let (nl, np) = (true_cls.len(), pred_cls.len());
    assert_eq!(iou.len(), nl * np, "iou must be labels x predictions");
    let mut correct = vec![[false; NIOU]; np];
    // `iou * correct_class`: a label of another class counts as IoU 0.
    let masked = |i: usize, j: usize| if true_cls[i] == pred_cls[j] { iou[i * np + j] } else { 0.0 };
    // matched[label][threshold]: claimed by an earlier prediction at that threshold.
    let mut matched = vec![[false; NIOU]; nl];
    for (j, correct) in correct.iter_mut().enumerate() {
        // `np.flatnonzero((iou >= thresholds.min()).any(0))`
        if !(0..nl).any(|i| masked(i, j) >= IOU_THRESHOLDS[0]) {
            continue;
        }
        for (t, &thr) in IOU_THRESHOLDS.iter().enumerate() {
            // `available.argmax(0)`: the first label with the highest unclaimed IoU.
            let avail = |i: usize| if matched[i][t] { 0.0 } else { masked(i, j) };
            let mut k = 0;
            for i in 1..nl {
                if avail(i) > avail(k) {
                    k = i;
                }
            }
            if avail(k) >= thr {
                correct[t] = true;
                matched[k][t] = true;
            }
        }
    }
    correct
}

/// IoU of every label with every prediction, then [`match_predictions`]. Either side may
/// be empty (`_process_batch` then returns all-false rows).
pub fn match_boxes(
    pred_boxes: &[[f32; 4]],
    pred_cls: &[usize],
    label_boxes: &[[f32; 4]],
    label_cls: &[usize],
) -> Vec<Correct> {
    assert_eq!(pred_boxes.len(), pred_cls.len());
    assert_eq!(label_boxes.len(), label_cls.len());
    if pred_boxes.is_empty() || label_boxes.is_empty() {
        return vec![[false; NIOU]; pred_boxes.len()];
    }
    let iou: Vec<f32> = label_boxes.iter().flat_map(|l| pred_boxes.iter().map(move |p| box_iou(l, p))).collect();
    match_predictions(pred_cls, label_cls, &iou)
}

/// `np.linspace(0, 1, n)`: `i * (1 / (n - 1))`, with the last point set to exactly 1.
fn linspace01(n: usize) -> Vec<f64> {
    let step = 1.0 / (n - 1) as f64;
    let mut x: Vec<f64> = (0..n).map(|i| i as f64 * step).collect();
    if let Some(last) = x.last_mut() {
        *last = 1.0;
    }
    x
}

/// `np.interp(x, xp, fp, left, right)` for non-decreasing `xp`, as numpy's C code does it:
/// the segment is the *last* `j` with `xp[j] <= x`, so among equal `xp` the last `fp` wins,
/// and an exact hit returns `fp[j]` without interpolating.
pub fn interp(x: f64, xp: &[f64], fp: &[f64], left: f64, right: f64) -> f64 {
    debug_assert_eq!(xp.len(), fp.len());
    let n = xp.len();
    if x.is_nan() {
        return x;
    }
    if n == 0 || x < xp[0] {
        return left;
    }
    if x > xp[n - 1] {
        return right;
    }
    // Number of xp <= x, minus one (xp is sorted).
    let j = xp.partition_point(|&v| v <= x) - 1;
    if j == n - 1 || xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let y = slope * (x - xp[j]) + fp[j];
    if y.is_nan() {
        // numpy retries from the other end, then falls back to equal neighbours.
        let y2 = slope * (x - xp[j + 1]) + fp[j + 1];
        if y2.is_nan() && fp[j] == fp[j + 1] {
            return fp[j];
        }
        return y2;
    }
    y
}

/// numpy's pairwise summation of a contiguous float64 array (`add.reduce`), which
/// `np.sum`, `np.mean` and `np.trapezoid` use: blocks of up to 128 summed with eight
/// interleaved accumulators, larger arrays split in halves (at multiples of 8).
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        // numpy starts from -0.0 so that an all -0.0 sum stays -0.0.
        return a.iter().fold(-0.0, |s, v| s + v);
    }
    if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for k in 0..8 {
                r[k] += a[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &a[full..] {
            res += v;
        }
        return res;
    }
    let mut n2 = n / 2;
    n2 -= n2 % 8;
    pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
}

fn mean(a: &[f64]) -> f64 {
    if a.is_empty() {
        0.0
    } else {
        pairwise_sum(a) / a.len() as f64
    }
}

/// `compute_ap`: AP from one recall/precision curve, with sentinels, the monotone
/// precision envelope, and a trapezoid over 101 recall points (COCO).
pub fn compute_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let (mrec, mpre) = envelope(recall, precision);
    let x = linspace01(AP_POINTS);
    let y: Vec<f64> = x.iter().map(|&v| interp(v, &mrec, &mpre, mpre[0], mpre[mpre.len() - 1])).collect();
    // np.trapezoid: sum(diff(x) * (y[1:] + y[:-1]) / 2).
    let terms: Vec<f64> = (0..AP_POINTS - 1).map(|i| (x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2.0).collect();
    pairwise_sum(&terms)
}

/// The sentinel-extended recall and the precision envelope of `compute_ap`.
fn envelope(recall: &[f64], precision: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut mrec = Vec::with_capacity(recall.len() + 3);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(recall.last().copied().unwrap_or(1.0));
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(precision.len() + 3);
    mpre.push(1.0);
    mpre.extend_from_slice(precision);
    mpre.extend([0.0, 0.0]);
    // np.flip(np.maximum.accumulate(np.flip(mpre))); np.maximum propagates NaN.
    for i in (0..mpre.len() - 1).rev() {
        let (a, b) = (mpre[i], mpre[i + 1]);
        mpre[i] = if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) };
    }
    (mrec, mpre)
}

/// Python's `round()` on a float: half to even.
fn py_round(v: f64) -> f64 {
    v.round_ties_even()
}

/// `smooth(y, f)`: a box filter `f` of the length wide (odd), edges padded with the end values.
pub fn smooth(y: &[f64], f: f64) -> Vec<f64> {
    if y.is_empty() {
        return Vec::new();
    }
    let nf = (py_round(y.len() as f64 * f * 2.0) as usize) / 2 + 1;
    let pad = nf / 2;
    let mut yp = Vec::with_capacity(y.len() + 2 * pad);
    yp.extend(std::iter::repeat_n(y[0], pad));
    yp.extend_from_slice(y);
    yp.extend(std::iter::repeat_n(y[y.len() - 1], pad));
    let w = 1.0 / nf as f64;
    // np.convolve(..., mode="valid"): one dot product per output. numpy hands it to BLAS,
    // whose summation order differs from this one only in the last bits.
    yp.windows(nf).map(|win| win.iter().fold(0.0, |s, v| s + v * w)).collect()
}

/// First index of the maximum (`np.argmax`; a NaN counts as the maximum).
fn argmax(v: &[f64]) -> usize {
    let mut k = 0;
    for (i, &x) in v.iter().enumerate() {
        if v[k].is_nan() {
            break;
        }
        if x.is_nan() || x > v[k] {
            k = i;
        }
    }
    k
}

/// What `ap_per_class` returns, one entry per class that has labels (ascending class id).
#[derive(Debug, Clone, PartialEq)]
pub struct ApPerClass {
    /// Classes with at least one label, ascending (`unique_classes`).
    pub classes: Vec<usize>,
    /// Labels per class in `classes`.
    pub n_labels: Vec<usize>,
    /// True and false positives at the chosen confidence (rounded, as Ultralytics).
    pub tp: Vec<f64>,
    pub fp: Vec<f64>,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub f1: Vec<f64>,
    /// AP at each IoU threshold.
    pub ap: Vec<[f64; NIOU]>,
    /// Index in the 1000-point confidence grid where P, R, F1 were read
    /// (confidence `index / 999`).
    pub best_index: usize,
}

/// `ap_per_class(tp, conf, pred_cls, target_cls)`: per-class AP at the 10 IoU thresholds and
/// precision/recall/F1 at the confidence maximizing the smoothed mean F1.
///
/// `tp[i]`, `conf[i]` and `pred_cls[i]` describe prediction `i` (any order); `target_cls` has
/// one entry per label.
pub fn ap_per_class(tp: &[Correct], conf: &[f32], pred_cls: &[usize], target_cls: &[usize]) -> ApPerClass {
    assert!(tp.len() == conf.len() && conf.len() == pred_cls.len(), "tp, conf and pred_cls differ in length");
    // np.argsort(-conf), but stable (see the module docs). NaN sorts last as in numpy.
    let mut order: Vec<usize> = (0..conf.len()).collect();
    order.sort_by(|&a, &b| crate::nms::descending(conf[a], conf[b]));

    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for &c in target_cls {
        *counts.entry(c).or_default() += 1;
    }
    let classes: Vec<usize> = counts.keys().copied().collect();
    let n_labels: Vec<usize> = counts.values().copied().collect();
    let nc = classes.len();

    let x = linspace01(CURVE_POINTS);
    let neg_x: Vec<f64> = x.iter().map(|v| -v).collect();
    let mut ap = vec![[0.0; NIOU]; nc];
    let mut p_curve = vec![vec![0.0; CURVE_POINTS]; nc];
    let mut r_curve = vec![vec![0.0; CURVE_POINTS]; nc];
    for (ci, &c) in classes.iter().enumerate() {
        let idx: Vec<usize> = order.iter().copied().filter(|&i| pred_cls[i] == c).collect();
        let n_l = n_labels[ci];
        if idx.is_empty() || n_l == 0 {
            continue;
        }
        // -conf[i]: increasing, the x-coordinates np.interp needs.
        let xp: Vec<f64> = idx.iter().map(|&i| -(conf[i] as f64)).collect();
        let mut recall = vec![[0.0f64; NIOU]; idx.len()];
        let mut precision = vec![[0.0f64; NIOU]; idx.len()];
        let mut tpc = [0u64; NIOU];
        let mut fpc = [0u64; NIOU];
        for (k, &i) in idx.iter().enumerate() {
            for t in 0..NIOU {
                tpc[t] += tp[i][t] as u64;
                fpc[t] += (!tp[i][t]) as u64;
                recall[k][t] = tpc[t] as f64 / (n_l as f64 + AP_EPS);
                precision[k][t] = tpc[t] as f64 / (tpc[t] + fpc[t]) as f64;
            }
        }
        let r0: Vec<f64> = recall.iter().map(|r| r[0]).collect();
        let p0: Vec<f64> = precision.iter().map(|p| p[0]).collect();
        let (r_last, p_last) = (r0[r0.len() - 1], p0[p0.len() - 1]);
        for g in 0..CURVE_POINTS {
            r_curve[ci][g] = interp(neg_x[g], &xp, &r0, 0.0, r_last);
            p_curve[ci][g] = interp(neg_x[g], &xp, &p0, 1.0, p_last);
        }
        for t in 0..NIOU {
            let r: Vec<f64> = recall.iter().map(|r| r[t]).collect();
            let p: Vec<f64> = precision.iter().map(|p| p[t]).collect();
            ap[ci][t] = compute_ap(&r, &p);
        }
    }

    let f1_curve: Vec<Vec<f64>> =
        (0..nc).map(|ci| (0..CURVE_POINTS).map(|g| f1(p_curve[ci][g], r_curve[ci][g])).collect()).collect();
    let best_index = if nc > 0 {
        // f1_curve.mean(0): a reduction across rows, which numpy adds up in row order.
        let mean_f1: Vec<f64> =
            (0..CURVE_POINTS).map(|g| f1_curve.iter().fold(0.0, |s, row| s + row[g]) / nc as f64).collect();
        argmax(&smooth(&mean_f1, 0.1))
    } else {
        0
    };
    let precision: Vec<f64> = p_curve.iter().map(|row| row[best_index]).collect();
    let recall: Vec<f64> = r_curve.iter().map(|row| row[best_index]).collect();
    let f1v: Vec<f64> = f1_curve.iter().map(|row| row[best_index]).collect();
    let tpv: Vec<f64> = recall.iter().zip(&n_labels).map(|(r, &n)| py_round(r * n as f64)).collect();
    let fpv: Vec<f64> = tpv.iter().zip(&precision).map(|(&t, &p)| py_round(t / (p + AP_EPS) - t)).collect();
    ApPerClass { classes, n_labels, tp: tpv, fp: fpv, precision, recall, f1: f1v, ap, best_index }
}

fn f1(p: f64, r: f64) -> f64 {
    2.0 * p * r / (p + r + AP_EPS)
}

/// One class's row of the validation table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassMetrics {
    pub class: usize,
    /// Images with at least one label of this class.
    pub images: usize,
    /// Labels of this class.
    pub instances: usize,
    pub precision: f64,
    pub recall: f64,
    pub map50: f64,
    /// AP averaged over IoU 0.50:0.95.
    pub map50_95: f64,
}

/// The validation result: the "all" row and one row per class that has labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DetMetrics {
    pub images: usize,
    pub instances: usize,
    pub precision: f64,
    pub recall: f64,
    pub map50: f64,
    pub map75: f64,
    pub map50_95: f64,
    /// Confidence at which precision and recall were read (the max-F1 point).
    pub best_conf: f64,
    pub classes: Vec<ClassMetrics>,
}

/// Per-image results gathered over a validation run (`DetMetrics.stats`).
#[derive(Debug, Clone, Default)]
pub struct DetStats {
    tp: Vec<Correct>,
    conf: Vec<f32>,
    pred_cls: Vec<usize>,
    target_cls: Vec<usize>,
    /// Each image's distinct label classes (`target_img`), for the per-class image count.
    target_img: Vec<usize>,
    images: usize,
}

impl DetStats {
    pub fn new() -> DetStats {
        DetStats::default()
    }

    /// Adds one image: its predictions (with their [`Correct`] rows) and its label classes.
    /// Images without labels or without predictions are added too: they still count as
    /// images, and their predictions as false positives.
    pub fn add_image(&mut self, tp: &[Correct], conf: &[f32], pred_cls: &[usize], target_cls: &[usize]) {
        assert!(tp.len() == conf.len() && conf.len() == pred_cls.len(), "tp, conf and pred_cls differ in length");
        self.images += 1;
        self.tp.extend_from_slice(tp);
        self.conf.extend_from_slice(conf);
        self.pred_cls.extend_from_slice(pred_cls);
        self.target_cls.extend_from_slice(target_cls);
        let mut distinct = target_cls.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        self.target_img.extend(distinct);
    }

    pub fn images(&self) -> usize {
        self.images
    }

    /// `DetMetrics.process` and `mean_results` / `class_result`.
    pub fn compute(&self) -> DetMetrics {
        let r = ap_per_class(&self.tp, &self.conf, &self.pred_cls, &self.target_cls);
        let count = |v: &[usize], c: usize| v.iter().filter(|&&x| x == c).count();
        let flat: Vec<f64> = r.ap.iter().flatten().copied().collect();
        let col = |t: usize| r.ap.iter().map(|a| a[t]).collect::<Vec<f64>>();
        let classes = r
            .classes
            .iter()
            .enumerate()
            .map(|(i, &c)| ClassMetrics {
                class: c,
                images: count(&self.target_img, c),
                instances: count(&self.target_cls, c),
                precision: r.precision[i],
                recall: r.recall[i],
                map50: r.ap[i][0],
                map50_95: mean(&r.ap[i]),
            })
            .collect();
        DetMetrics {
            images: self.images,
            instances: self.target_cls.len(),
            precision: mean(&r.precision),
            recall: mean(&r.recall),
            map50: mean(&col(0)),
            map75: mean(&col(5)),
            map50_95: mean(&flat),
            best_conf: linspace01(CURVE_POINTS)[r.best_index],
            classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interp_follows_numpy_on_ties_and_edges() {
        let xp = [0.0, 1.0, 1.0, 2.0];
        let fp = [0.0, 10.0, 20.0, 30.0];
        // Equal xp: the last one's value, and interpolation starts from it.
        assert_eq!(interp(1.0, &xp, &fp, -1.0, 99.0), 20.0);
        assert_eq!(interp(1.5, &xp, &fp, -1.0, 99.0), 25.0);
        assert_eq!(interp(0.5, &xp, &fp, -1.0, 99.0), 5.0);
        assert_eq!(interp(-0.1, &xp, &fp, -1.0, 99.0), -1.0);
        assert_eq!(interp(2.0, &xp, &fp, -1.0, 99.0), 30.0);
        assert_eq!(interp(2.1, &xp, &fp, -1.0, 99.0), 99.0);
    }

    #[test]
    fn pairwise_sum_matches_plain_sum_on_exact_values() {
        for n in [0usize, 1, 7, 8, 9, 16, 127, 128, 129, 1000] {
            let v: Vec<f64> = (0..n).map(|i| i as f64).collect();
            assert_eq!(pairwise_sum(&v), (n * n.saturating_sub(1) / 2) as f64, "n = {n}");
        }
    }

    #[test]
    fn perfect_detector_scores_0995_as_in_ultralytics() {
        // Two labels, two correct predictions. The envelope drops to the sentinel's precision
        // 0 exactly at recall 1, so the last trapezoid step is halved: AP = 0.995, the ceiling
        // every Ultralytics mAP50 table shows.
        let tp = [[true; NIOU], [true; NIOU]];
        let r = ap_per_class(&tp, &[0.9, 0.8], &[0, 0], &[0, 0]);
        assert_eq!(r.classes, vec![0]);
        for a in r.ap[0] {
            assert!((a - 0.995).abs() < 1e-12, "{a}");
        }
        assert!((r.precision[0] - 1.0).abs() < 1e-12 && (r.recall[0] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn greedy_matching_claims_each_label_once() {
        // Two predictions on the same label: the first (higher score) takes it.
        let c =
            match_boxes(&[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]], &[1, 1], &[[0.0, 0.0, 10.0, 10.0]], &[1]);
        assert_eq!(c, vec![[true; NIOU], [false; NIOU]]);
        // Another class never matches.
        let c = match_boxes(&[[0.0, 0.0, 10.0, 10.0]], &[0], &[[0.0, 0.0, 10.0, 10.0]], &[1]);
        assert_eq!(c, vec![[false; NIOU]]);
        // IoU 0.6 (10x10 vs 10x6 inside it): correct at 0.50, 0.55, 0.60 only.
        let c = match_boxes(&[[0.0, 0.0, 10.0, 6.0]], &[0], &[[0.0, 0.0, 10.0, 10.0]], &[0]);
        assert_eq!(c[0], [true, true, true, false, false, false, false, false, false, false]);
    }
}
