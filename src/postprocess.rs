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

#[derive(Debug, Clone, PartialEq)]
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
    fn wants(&self, class: usize) -> bool {
        self.classes.as_ref().is_none_or(|c| c.contains(&class))
    }
}

/// Detections in model-input pixels, best first.
pub fn decode(out: &RawOutput, opts: &NmsOptions) -> Vec<Detection> {
    match out.head {
        Head::Raw { num_classes } => decode_raw(out, num_classes, opts),
        Head::EndToEnd => decode_end2end(out, opts),
    }
}

fn decode_raw(out: &RawOutput, nc: usize, opts: &NmsOptions) -> Vec<Detection> {
    let (rows, n) = out.dims;
    debug_assert_eq!(rows, 4 + nc);
    let at = |r: usize, i: usize| out.data[r * n + i];
    let mut cands: Vec<Detection> = Vec::new();
    for i in 0..n {
        // First maximum wins, like torch.max on CPU.
        let (mut best, mut class) = (at(4, i), 0);
        for c in 1..nc {
            let s = at(4 + c, i);
            if s > best {
                best = s;
                class = c;
            }
        }
        if !(best > opts.conf) || !opts.wants(class) {
            continue;
        }
        let (cx, cy, hw, hh) = (at(0, i), at(1, i), at(2, i) / 2.0, at(3, i) / 2.0);
        cands.push(Detection { bbox: [cx - hw, cy - hh, cx + hw, cy + hh], score: best, class });
    }
    if cands.len() > MAX_NMS {
        cands.sort_by(|a, b| descending(a.score, b.score));
        cands.truncate(MAX_NMS);
    }
    let offset = |d: &Detection| if opts.agnostic { 0.0 } else { d.class as f32 * MAX_WH };
    let boxes: Vec<[f32; 4]> = cands
        .iter()
        .map(|d| {
            let o = offset(d);
            [d.bbox[0] + o, d.bbox[1] + o, d.bbox[2] + o, d.bbox[3] + o]
        })
        .collect();
    let scores: Vec<f32> = cands.iter().map(|d| d.score).collect();
    nms(&boxes, &scores, opts.iou).into_iter().take(opts.max_det).map(|i| cands[i]).collect()
}

fn decode_end2end(out: &RawOutput, opts: &NmsOptions) -> Vec<Detection> {
    let (k, cols) = out.dims;
    (0..k)
        .map(|i| &out.data[i * cols..(i + 1) * cols])
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
        RawOutput { head: Head::Raw { num_classes: 2 }, data, dims: (6, n) }
    }

    #[test]
    fn strict_conf_threshold_best_class_and_class_aware_nms() {
        let out = raw(&[
            [50.0, 50.0, 20.0, 20.0, 0.9, 0.1],  // class 0
            [51.0, 50.0, 20.0, 20.0, 0.2, 0.8],  // class 1, overlaps anchor 0 but other class
            [52.0, 50.0, 20.0, 20.0, 0.7, 0.0],  // class 0, suppressed by anchor 0
            [10.0, 10.0, 4.0, 4.0, 0.25, 0.0],   // exactly conf: dropped (strict >)
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

    #[test]
    fn end_to_end_rows() {
        let out = RawOutput {
            head: Head::EndToEnd,
            data: vec![1.0, 2.0, 3.0, 4.0, 0.9, 1.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0],
            dims: (2, 6),
        };
        let d = decode(&out, &NmsOptions::default());
        assert_eq!(d, vec![Detection { bbox: [1.0, 2.0, 3.0, 4.0], score: 0.9, class: 1 }]);
    }
}
