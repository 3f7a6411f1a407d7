//! From raw model output to detections in source-image pixels, as Ultralytics'
//! `non_max_suppression` (single label per box) followed by `scale_boxes`.

use crate::letterbox::Letterbox;
use crate::model::{Head, RawOutput};
use crate::nms::{descending, nms};

/// One detected object, in source-image pixels (after EXIF rotation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    pub score: f32,
    pub class: usize,
}

/// Ultralytics offsets each class's boxes by this much so one NMS pass stays per-class.
const MAX_WH: f32 = 7680.0;
/// Ultralytics keeps at most this many candidates for NMS.
const MAX_NMS: usize = 30_000;

/// Ultralytics' `predict` settings: `conf`, `iou`, `max_det`, `agnostic_nms`, `classes`.
/// Build one from [`NmsOptions::default`] and the `with_` methods or field assignments (the
/// struct grows: no literal outside qdet).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NmsOptions {
    /// Keep scores strictly above this.
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    pub agnostic: bool,
    /// Only these class ids, when set.
    pub classes: Option<Vec<usize>>,
}

impl Default for NmsOptions {
    fn default() -> Self {
        NmsOptions { conf: 0.25, iou: 0.7, max_det: 300, agnostic: false, classes: None }
    }
}

impl NmsOptions {
    /// These options with score threshold `conf`.
    pub fn with_conf(self, conf: f32) -> Self {
        NmsOptions { conf, ..self }
    }

    /// These options with IoU threshold `iou`.
    pub fn with_iou(self, iou: f32) -> Self {
        NmsOptions { iou, ..self }
    }

    fn wants(&self, class: usize) -> bool {
        self.classes.as_ref().is_none_or(|c| c.contains(&class))
    }
}

/// Detections in model-input pixels, best first.
pub fn decode(out: &RawOutput, opts: &NmsOptions) -> Vec<Detection> {
    match out.head() {
        Head::Raw { num_classes } => decode_raw(out, num_classes, opts),
        Head::EndToEnd => decode_end2end(out, opts),
    }
}

fn decode_raw(out: &RawOutput, nc: usize, opts: &NmsOptions) -> Vec<Detection> {
    let (rows, n) = out.dims();
    debug_assert_eq!(rows, 4 + nc);
    let data = out.data();
    let at = |r: usize, i: usize| data[r * n + i];
    let mut cands: Vec<Detection> = Vec::new();
    // Anchors in chunks, classes row by row within a chunk: the score rows are read
    // contiguously (anchor by anchor, each class was a stride of `n` floats) and the
    // comparisons vectorize; each anchor still sees its classes in ascending order.
    const CHUNK: usize = 1024;
    let (mut best, mut class) = (vec![0f32; CHUNK], vec![0usize; CHUNK]);
    for i0 in (0..n).step_by(CHUNK) {
        let len = CHUNK.min(n - i0);
        let (best, class) = (&mut best[..len], &mut class[..len]);
        best.copy_from_slice(&data[4 * n + i0..][..len]);
        class.fill(0);
        for c in 1..nc {
            // First maximum wins, like torch.max on CPU (a NaN first score stays, and fails
            // the threshold below).
            for ((b, k), &s) in best.iter_mut().zip(class.iter_mut()).zip(&data[(4 + c) * n + i0..][..len]) {
                if s > *b {
                    *b = s;
                    *k = c;
                }
            }
        }
        for (j, (&score, &class)) in best.iter().zip(class.iter()).enumerate() {
            // NaN scores fail the threshold too.
            if score.is_nan() || score <= opts.conf || !opts.wants(class) {
                continue;
            }
            let i = i0 + j;
            let (cx, cy, hw, hh) = (at(0, i), at(1, i), at(2, i) / 2.0, at(3, i) / 2.0);
            cands.push(Detection { bbox: [cx - hw, cy - hh, cx + hw, cy + hh], score, class });
        }
    }
    if cands.len() > MAX_NMS {
        cands.sort_by(|a, b| descending(a.score, b.score));
        cands.truncate(MAX_NMS);
    }
    class_aware_nms(&cands, opts).into_iter().take(opts.max_det).map(|i| cands[i]).collect()
}

/// Detections in model-input pixels, best first, with every class scoring above `opts.conf`
/// a candidate of its own: Ultralytics' `non_max_suppression(multi_label=True)`, which
/// `yolo val` uses (predict keeps one label per box, see [`decode`]). Candidates are
/// enumerated as `torch.where(scores > conf)` does, anchor by anchor and classes ascending,
/// which fixes the order of equal scores in NMS. End-to-end heads have no per-class scores
/// and are filtered as in [`decode`].
pub fn decode_multi_label(out: &RawOutput, opts: &NmsOptions) -> Vec<Detection> {
    // `multi_label &= nc > 1` in Ultralytics; with one class both ways give the same boxes.
    let Head::Raw { num_classes: nc } = out.head() else {
        return decode_end2end(out, opts);
    };
    let (rows, n) = out.dims();
    debug_assert_eq!(rows, 4 + nc);
    let data = out.data();
    let at = |r: usize, i: usize| data[r * n + i];
    let mut cands: Vec<Detection> = Vec::new();
    // Class rows read contiguously over chunks of anchors (anchor by anchor, each score was a
    // stride of `n` floats away), then the chunk's hits put back in `torch.where`'s order:
    // a stable sort by anchor keeps each anchor's classes ascending.
    const CHUNK: usize = 1024;
    let mut hits: Vec<(usize, usize, f32)> = Vec::new();
    for i0 in (0..n).step_by(CHUNK) {
        let len = CHUNK.min(n - i0);
        hits.clear();
        for c in (0..nc).filter(|&c| opts.wants(c)) {
            let row = &data[(4 + c) * n + i0..][..len];
            // NaN scores fail the strict threshold too.
            hits.extend(row.iter().enumerate().filter(|&(_, &s)| s > opts.conf).map(|(j, &s)| (i0 + j, c, s)));
        }
        hits.sort_by_key(|&(i, _, _)| i);
        for &(i, class, score) in &hits {
            let (cx, cy, hw, hh) = (at(0, i), at(1, i), at(2, i) / 2.0, at(3, i) / 2.0);
            cands.push(Detection { bbox: [cx - hw, cy - hh, cx + hw, cy + hh], score, class });
        }
    }
    if cands.len() > MAX_NMS {
        cands.sort_by(|a, b| descending(a.score, b.score));
        cands.truncate(MAX_NMS);
    }
    class_aware_nms(&cands, opts).into_iter().take(opts.max_det).map(|i| cands[i]).collect()
}

/// torchvision NMS over class-offset boxes (Ultralytics' `boxes + cls * max_wh`), returning
/// kept indices best first. At val's conf 0.001 there are thousands of candidates, so when
/// the offsets provably keep classes apart the greedy pass runs class by class; the IoUs are
/// still computed on the offset float32 coordinates, so the result is the same.
fn class_aware_nms(cands: &[Detection], opts: &NmsOptions) -> Vec<usize> {
    let offset = |d: &Detection| if opts.agnostic { 0.0 } else { d.class as f32 * MAX_WH };
    let boxes: Vec<[f32; 4]> = cands
        .iter()
        .map(|d| {
            let o = offset(d);
            [d.bbox[0] + o, d.bbox[1] + o, d.bbox[2] + o, d.bbox[3] + o]
        })
        .collect();
    let scores: Vec<f32> = cands.iter().map(|d| d.score).collect();
    if opts.agnostic || !classes_cannot_overlap(cands) {
        return nms(&boxes, &scores, opts.iou);
    }
    // Rank in the global stable score order: the order torchvision visits boxes in.
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|&a, &b| descending(scores[a], scores[b]));
    let mut rank = vec![0usize; cands.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for &i in &order {
        groups.entry(cands[i].class).or_default().push(i);
    }
    let mut keep = Vec::new();
    for members in groups.values() {
        let b: Vec<[f32; 4]> = members.iter().map(|&i| boxes[i]).collect();
        let s: Vec<f32> = members.iter().map(|&i| scores[i]).collect();
        // Members are already in descending order, which nms' stable sort keeps.
        keep.extend(nms(&b, &s, opts.iou).into_iter().map(|k| members[k]));
    }
    keep.sort_by_key(|&i| rank[i]);
    keep
}

/// Whether two boxes of different classes can never overlap once offset by `class * MAX_WH`:
/// true when all boxes fit in a span narrower than the offset (with a pixel to spare for
/// float32 rounding at large offsets).
fn classes_cannot_overlap(cands: &[Detection]) -> bool {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for d in cands {
        if !d.bbox.iter().all(|v| v.is_finite()) {
            return false;
        }
        lo = lo.min(d.bbox[0]).min(d.bbox[1]);
        hi = hi.max(d.bbox[2]).max(d.bbox[3]);
    }
    cands.is_empty() || hi - lo < MAX_WH - 1.0
}

fn decode_end2end(out: &RawOutput, opts: &NmsOptions) -> Vec<Detection> {
    let (k, cols) = out.dims();
    (0..k)
        .map(|i| &out.data()[i * cols..(i + 1) * cols])
        .filter(|r| r[4] > opts.conf && r[5] >= 0.0 && opts.wants(r[5] as usize))
        .take(opts.max_det)
        .map(|r| Detection { bbox: [r[0], r[1], r[2], r[3]], score: r[4], class: r[5] as usize })
        .collect()
}

/// Moves detections from model-input pixels to source pixels, clipped to the image.
pub fn to_source(dets: &mut [Detection], lb: &Letterbox) {
    for d in dets {
        d.bbox = lb.unscale(d.bbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw head output with 2 classes built from per-anchor rows (cx, cy, w, h, s0, s1).
    fn raw(anchors: &[[f32; 6]]) -> RawOutput {
        let n = anchors.len();
        let mut data = vec![0.0; 6 * n];
        for (i, a) in anchors.iter().enumerate() {
            for r in 0..6 {
                data[r * n + i] = a[r];
            }
        }
        RawOutput::new(Head::Raw { num_classes: 2 }, data, (6, n))
    }

    #[test]
    fn strict_conf_threshold_best_class_and_class_aware_nms() {
        let out = raw(&[
            [50.0, 50.0, 20.0, 20.0, 0.9, 0.1], // class 0
            [51.0, 50.0, 20.0, 20.0, 0.2, 0.8], // class 1, overlaps anchor 0 but other class
            [52.0, 50.0, 20.0, 20.0, 0.7, 0.0], // class 0, suppressed by anchor 0
            [10.0, 10.0, 4.0, 4.0, 0.25, 0.0],  // exactly conf: dropped (strict >)
        ]);
        let d = decode(&out, &NmsOptions::default());
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].class, d[0].score, d[0].bbox), (0, 0.9, [40.0, 40.0, 60.0, 60.0]));
        assert_eq!((d[1].class, d[1].score), (1, 0.8));
        // Agnostic: the class-1 box overlaps the class-0 box (IoU 0.9) and goes.
        let d = decode(&out, &NmsOptions { agnostic: true, ..Default::default() });
        assert_eq!(d.iter().map(|d| d.class).collect::<Vec<_>>(), vec![0]);
        // Class filter and max_det.
        let d = decode(&out, &NmsOptions { classes: Some(vec![1]), ..Default::default() });
        assert_eq!(d.iter().map(|d| d.class).collect::<Vec<_>>(), vec![1]);
        let d = decode(&out, &NmsOptions { max_det: 1, ..Default::default() });
        assert_eq!(d.len(), 1);
    }

    /// A raw head of `n` anchors, each a 10 px box 1000 px from the previous (so none
    /// overlap), class `c` of anchor `i` scoring `score(i, c)`.
    fn spaced(n: usize, nc: usize, score: impl Fn(usize, usize) -> f32) -> RawOutput {
        let mut data = vec![0f32; (4 + nc) * n];
        for i in 0..n {
            data[i] = 1000.0 * i as f32;
            data[2 * n + i] = 10.0;
            data[3 * n + i] = 10.0;
            for c in 0..nc {
                data[(4 + c) * n + i] = score(i, c);
            }
        }
        RawOutput::new(Head::Raw { num_classes: nc }, data, (4 + nc, n))
    }

    /// (anchor, class, score bits) of detections from [`spaced`].
    fn anchors(dets: &[Detection]) -> Vec<(usize, usize, u32)> {
        dets.iter().map(|d| ((d.bbox[0] + 5.0) as usize / 1000, d.class, d.score.to_bits())).collect()
    }

    /// More anchors than a chunk of the class-row pass, ties (the first class wins) and NaN
    /// scores (a NaN first score drops the anchor, a later NaN is never the best): the same
    /// candidates as the anchor-by-anchor loop written out here.
    #[test]
    fn best_class_over_chunks_matches_anchor_by_anchor() {
        let (n, nc) = (2500, 3);
        let score = |i: usize, c: usize| match (i % 97, c) {
            (0, 0) | (5, 2) => f32::NAN,
            (7, _) => 0.75,
            _ => ((i * 31 + c * 17) % 101) as f32 / 100.0,
        };
        let out = spaced(n, nc, score);
        let opts = NmsOptions { conf: 0.5, iou: 1.0, max_det: n, ..Default::default() };
        let mut got = anchors(&decode(&out, &opts));
        got.sort();
        let mut want = Vec::new();
        for i in 0..n {
            let (mut best, mut class) = (score(i, 0), 0);
            for c in 1..nc {
                if score(i, c) > best {
                    (best, class) = (score(i, c), c);
                }
            }
            if !best.is_nan() && best > opts.conf {
                want.push((i, class, best.to_bits()));
            }
        }
        assert!(want.len() > 1000 && want.iter().any(|w| w.0 % 97 == 7 && w.1 == 0), "the case covers ties");
        assert_eq!(got, want);
    }

    /// The multi-label candidates over more anchors than a chunk, with NaNs, a class
    /// filter and scores at the threshold: the same list, in the same order (anchor by
    /// anchor, classes ascending), as the anchor-by-anchor loop written out here.
    #[test]
    fn multi_label_over_chunks_matches_anchor_by_anchor() {
        let (n, nc) = (2300, 4);
        let score = |i: usize, c: usize| match (i % 89, c) {
            (0, 1) | (3, 0) => f32::NAN,
            (5, _) => 0.75,
            _ => ((i * 37 + c * 53) % 103) as f32 / 100.0,
        };
        let out = spaced(n, nc, score);
        let opts =
            NmsOptions { conf: 0.5, iou: 1.0, max_det: 4 * n, classes: Some(vec![0, 1, 3]), ..Default::default() };
        let got = anchors(&decode_multi_label(&out, &opts));
        let mut want = Vec::new();
        for i in 0..n {
            for c in [0, 1, 3] {
                let s = score(i, c);
                if !s.is_nan() && s > opts.conf {
                    want.push((i, c, s.to_bits()));
                }
            }
        }
        // Nothing is suppressed at IoU 1: the output is the candidates best first, equal
        // scores in candidate order, which is what the order of the list decides.
        want.sort_by(|a, b| descending(f32::from_bits(a.2), f32::from_bits(b.2)));
        assert!(want.len() > 2000, "{} candidates", want.len());
        assert!(want.windows(2).filter(|w| w[0].2 == w[1].2).count() > 1000, "the case has ties");
        assert_eq!(got, want);
    }

    #[test]
    fn multi_label_makes_one_candidate_per_class_above_conf() {
        let out = raw(&[
            [50.0, 50.0, 20.0, 20.0, 0.9, 0.6],  // both classes, same box: both kept (other class)
            [52.0, 50.0, 20.0, 20.0, 0.7, 0.05], // class 0 suppressed by anchor 0; class 1 below conf
            [10.0, 10.0, 4.0, 4.0, 0.25, 0.3],   // class 0 exactly at conf: dropped (strict >)
        ]);
        let opts = NmsOptions { conf: 0.25, ..Default::default() };
        let d = decode_multi_label(&out, &opts);
        let got: Vec<(usize, f32)> = d.iter().map(|d| (d.class, d.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.6), (1, 0.3)]);
        assert_eq!(d[0].bbox, d[1].bbox);
        // Predict's single-label decode keeps only the best class of anchor 0.
        let single: Vec<usize> = decode(&out, &opts).iter().map(|d| d.class).collect();
        assert_eq!(single, vec![0, 1]);
        // Agnostic: the class-1 copy of anchor 0 is suppressed by its class-0 copy.
        let d = decode_multi_label(&out, &NmsOptions { agnostic: true, ..opts.clone() });
        assert_eq!(d.iter().map(|d| (d.class, d.score)).collect::<Vec<_>>(), vec![(0, 0.9), (1, 0.3)]);
        let d = decode_multi_label(&out, &NmsOptions { max_det: 2, classes: Some(vec![1]), ..opts });
        assert_eq!(d.iter().map(|d| (d.class, d.score)).collect::<Vec<_>>(), vec![(1, 0.6), (1, 0.3)]);
    }

    /// The class-by-class pass must keep exactly what one pass over offset boxes keeps.
    #[test]
    fn per_class_nms_equals_global_nms_on_offset_boxes() {
        // A small LCG: deterministic clustered boxes with many overlaps and equal scores.
        let mut state = 12345u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f32) / (1u64 << 31) as f32
        };
        for nc in [2usize, 5] {
            let cands: Vec<Detection> = (0..400)
                .map(|_| {
                    let (x, y) =
                        ((next() * 8.0).floor() * 30.0 + next() * 6.0, (next() * 4.0).floor() * 30.0 + next() * 6.0);
                    let (w, h) = (20.0 + next() * 10.0, 20.0 + next() * 10.0);
                    let score = (next() * 20.0).floor() / 20.0 + 0.01;
                    Detection { bbox: [x, y, x + w, y + h], score, class: (next() * nc as f32) as usize % nc }
                })
                .collect();
            let opts = NmsOptions { iou: 0.5, ..Default::default() };
            let boxes: Vec<[f32; 4]> = cands
                .iter()
                .map(|d| {
                    let o = d.class as f32 * MAX_WH;
                    [d.bbox[0] + o, d.bbox[1] + o, d.bbox[2] + o, d.bbox[3] + o]
                })
                .collect();
            let scores: Vec<f32> = cands.iter().map(|d| d.score).collect();
            let global = nms(&boxes, &scores, opts.iou);
            assert!(global.len() > 20 && global.len() < 300, "{}", global.len());
            assert!(classes_cannot_overlap(&cands));
            assert_eq!(class_aware_nms(&cands, &opts), global);
        }
        // A box wider than the offset: the global pass is used.
        let huge = [Detection { bbox: [-10.0, 0.0, 8000.0, 10.0], score: 0.5, class: 0 }];
        assert!(!classes_cannot_overlap(&huge));
    }

    #[test]
    fn end_to_end_rows() {
        let out =
            RawOutput::new(Head::EndToEnd, vec![1.0, 2.0, 3.0, 4.0, 0.9, 1.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0], (2, 6));
        let d = decode(&out, &NmsOptions::default());
        assert_eq!(d, vec![Detection { bbox: [1.0, 2.0, 3.0, 4.0], score: 0.9, class: 1 }]);
    }
}
