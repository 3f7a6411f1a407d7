//! Agreement of a model with a reference model, without labels: how far a quantized model's
//! detections are from its float original's, image by image (`qdet val --reference`, and the
//! `agreement` of `qdet calibrate --report`).
//!
//! The reference's detections, exactly as `qdet detect` gives them, are the labels. The mAP
//! ranks the model's predictions at val's low confidence against them with
//! [`crate::metrics`], so it is the number `qdet val` would print had a labeller drawn what
//! the reference sees. Then, on the boxes that matter to a user (confidence 0.5 or more): how
//! much their confidence drifted, which ones the model lost or added, and how far the kept
//! ones moved.
//!
//! The predictions go through predict's single-label NMS, not val's multi-label one: the
//! labels are single-label, so with multi-label predictions a box's second-best class
//! (circle 0.6 *and* hexagon 0.4) is a false positive the reference could never have
//! labelled, and the fixture model scored only 0.988 mAP50-95 against itself. Single-label,
//! the predictions above 0.25 are exactly the reference's detections when the models agree
//! (greedy NMS keeps a box for the boxes above it only), so a model against itself gets
//! Ultralytics' ceiling, 0.995, in every class.
//!
//! Everything is compared in source-image pixels: the two models may run at different input
//! sizes, and `qdet detect`'s boxes are clipped there.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::ClassRow;
use crate::letterbox::Letterbox;
use crate::metrics::{box_iou, match_boxes, Correct, DetStats};
use crate::model::RawOutput;
use crate::postprocess::{decode, to_source, Detection, NmsOptions};

/// `qdet detect`'s (and Ultralytics predict's) defaults, for both models' detections.
pub const DETECT_CONF: f32 = 0.25;
pub const DETECT_IOU: f32 = 0.7;
pub const DETECT_MAX_DET: usize = 300;
/// Boxes at least this confident are the ones drift, lost, added and IoU look at.
pub const STRONG_CONF: f32 = 0.5;
/// A box has a partner when a box of its class overlaps it at least this much.
pub const MATCH_IOU: f32 = 0.5;

/// Every threshold the numbers depend on, reported with them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Both models' detections: confidence strictly above, NMS IoU, max per image (`qdet
    /// detect`'s defaults).
    pub detect_conf: f32,
    pub detect_iou: f32,
    pub detect_max_det: usize,
    /// The model's predictions the mAP ranks: predict's NMS at these (val's conf).
    pub val_conf: f32,
    pub val_iou: f32,
    pub val_max_det: usize,
    /// Reference boxes (drift, lost, IoU) and model boxes (added) at or above this.
    pub strong_conf: f32,
    /// Same-class IoU at or above which a box has a partner.
    pub match_iou: f32,
}

impl Thresholds {
    /// Predict's defaults for the detections, val's for the predictions.
    pub fn new(val_conf: f32, val_iou: f32, val_max_det: usize) -> Thresholds {
        Thresholds {
            detect_conf: DETECT_CONF,
            detect_iou: DETECT_IOU,
            detect_max_det: DETECT_MAX_DET,
            val_conf,
            val_iou,
            val_max_det,
            strong_conf: STRONG_CONF,
            match_iou: MATCH_IOU,
        }
    }

    pub fn detect_nms(&self) -> NmsOptions {
        NmsOptions { conf: self.detect_conf, iou: self.detect_iou, max_det: self.detect_max_det, ..Default::default() }
    }

    fn val_nms(&self) -> NmsOptions {
        NmsOptions { conf: self.val_conf, iou: self.val_iou, max_det: self.val_max_det, ..Default::default() }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::new(super::DEFAULT_CONF, super::DEFAULT_IOU, super::DEFAULT_MAX_DET)
    }
}

/// One image's detections, in source pixels.
#[derive(Debug, Clone, Default)]
pub struct ImageDetections {
    /// The reference's, as `qdet detect` gives them: the labels.
    pub reference: Vec<Detection>,
    /// The model's, as `qdet detect` gives them.
    pub model: Vec<Detection>,
    /// The model's predictions at val's low confidence (single-label, see the module docs).
    pub model_val: Vec<Detection>,
}

impl ImageDetections {
    /// Decodes both raw outputs, each with the letterbox its model ran at.
    pub fn decode(reference: (&RawOutput, &Letterbox), model: (&RawOutput, &Letterbox), t: &Thresholds) -> Self {
        let in_source = |mut dets: Vec<Detection>, lb: &Letterbox| {
            to_source(&mut dets, lb);
            dets
        };
        let detect = t.detect_nms();
        ImageDetections {
            reference: in_source(decode(reference.0, &detect), reference.1),
            model: in_source(decode(model.0, &detect), model.1),
            model_val: in_source(decode(model.0, &t.val_nms()), model.1),
        }
    }
}

/// A strong reference box and the model's box of its class that overlaps it most.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pairing {
    reference: Detection,
    model: Option<Detection>,
    iou: f32,
}

impl Pairing {
    /// A box the model does not have at all counts as confidence 0.
    fn drift(&self) -> f32 {
        (self.reference.score - self.model.map_or(0.0, |m| m.score)).abs()
    }
}

/// What one image adds to the agreement.
#[derive(Debug, Clone, Default)]
pub struct ImageAgreement {
    correct: Vec<Correct>,
    conf: Vec<f32>,
    pred_cls: Vec<usize>,
    target_cls: Vec<usize>,
    model_boxes: usize,
    /// Every strong reference box with its closest low-confidence prediction.
    drifts: Vec<Pairing>,
    /// Strong reference boxes with their closest partner among the model's detections.
    matched: Vec<Pairing>,
    lost: Vec<Detection>,
    added: Vec<Detection>,
    strong_model: usize,
}

/// The box of `pool` with `d`'s class that overlaps it most (the first of equal IoUs, so the
/// most confident), if any overlaps at all.
fn closest(d: &Detection, pool: &[Detection]) -> Option<(Detection, f32)> {
    let mut best: Option<(Detection, f32)> = None;
    for p in pool.iter().filter(|p| p.class == d.class) {
        let iou = box_iou(&d.bbox, &p.bbox);
        if iou > best.map_or(0.0, |b| b.1) {
            best = Some((*p, iou));
        }
    }
    best
}

/// Compares one image's detections.
pub fn compare(d: &ImageDetections, t: &Thresholds) -> ImageAgreement {
    let boxes = |v: &[Detection]| v.iter().map(|d| d.bbox).collect::<Vec<_>>();
    let classes = |v: &[Detection]| v.iter().map(|d| d.class).collect::<Vec<_>>();
    let (pred_cls, target_cls) = (classes(&d.model_val), classes(&d.reference));
    let correct = match_boxes(&boxes(&d.model_val), &pred_cls, &boxes(&d.reference), &target_cls);
    let mut a = ImageAgreement {
        correct,
        conf: d.model_val.iter().map(|p| p.score).collect(),
        pred_cls,
        target_cls,
        model_boxes: d.model.len(),
        ..Default::default()
    };
    for r in d.reference.iter().filter(|r| r.score >= t.strong_conf) {
        let (model, iou) = closest(r, &d.model_val).map_or((None, 0.0), |(m, iou)| (Some(m), iou));
        a.drifts.push(Pairing { reference: *r, model, iou });
        match closest(r, &d.model) {
            Some((m, iou)) if iou >= t.match_iou => a.matched.push(Pairing { reference: *r, model: Some(m), iou }),
            _ => a.lost.push(*r),
        }
    }
    for m in d.model.iter().filter(|m| m.score >= t.strong_conf) {
        a.strong_model += 1;
        if !closest(m, &d.reference).is_some_and(|(_, iou)| iou >= t.match_iou) {
            a.added.push(*m);
        }
    }
    a
}

/// A detection on an image, named.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Located {
    pub image: PathBuf,
    pub class: usize,
    pub name: String,
    /// `[x1, y1, x2, y2]` in source pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub conf: f32,
}

/// A box and its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scored {
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub conf: f32,
}

/// A reference box and the model's box paired with it (`None`: no box of that class overlaps).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    pub image: PathBuf,
    pub class: usize,
    pub name: String,
    pub reference: Scored,
    pub model: Option<Scored>,
    pub iou: f32,
}

/// Confidence drift of the strong reference boxes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// Strong reference boxes measured.
    pub boxes: usize,
    /// Largest and mean |reference conf - model conf| (`None` without strong boxes).
    pub max: Option<f32>,
    pub mean: Option<f64>,
    /// The 95th and 99th percentiles (nearest rank): one ambiguous box sets the largest, so
    /// these compare two int8 files better.
    pub p95: Option<f32>,
    pub p99: Option<f32>,
    pub worst: Option<Pair>,
}

/// Boxes without a partner on the other side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unpaired {
    pub count: usize,
    /// Strong boxes on that side (the reference's for lost, the model's for added).
    pub of: usize,
    pub boxes: Vec<Located>,
}

/// How well the kept boxes overlap their partners.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlap {
    /// Strong reference boxes with a partner (the ones not lost).
    pub matched: usize,
    pub min: Option<f32>,
    pub mean: Option<f64>,
    pub worst: Option<Pair>,
}

/// The agreement over all images.
#[derive(Debug, Clone, Serialize)]
pub struct AgreementSummary {
    pub thresholds: Thresholds,
    pub images: usize,
    /// Reference detections: the labels.
    pub instances: usize,
    /// The model's detections at the same thresholds.
    pub model_detections: usize,
    pub precision: f64,
    pub recall: f64,
    pub map50: f64,
    pub map75: f64,
    pub map50_95: f64,
    pub best_conf: f64,
    /// Classes the reference detected, ascending id.
    pub classes: Vec<ClassRow>,
    pub drift: Drift,
    /// Strong reference boxes the model has no partner for among its detections.
    pub lost: Unpaired,
    /// Strong model boxes the reference has no partner for among its detections.
    pub added: Unpaired,
    pub iou: Overlap,
}

/// Gathers [`ImageAgreement`]s in image order.
#[derive(Debug, Default)]
pub struct Agreement {
    stats: DetStats,
    model_boxes: usize,
    drift_sum: f64,
    worst_drift: Option<(PathBuf, Pairing)>,
    drifts: usize,
    drift_values: Vec<f32>,
    iou_sum: f64,
    worst_iou: Option<(PathBuf, Pairing)>,
    matched: usize,
    lost: Vec<(PathBuf, Detection)>,
    added: Vec<(PathBuf, Detection)>,
    strong_model: usize,
}

impl Agreement {
    pub fn add(&mut self, image: &Path, a: ImageAgreement) {
        self.stats.add_image(&a.correct, &a.conf, &a.pred_cls, &a.target_cls);
        self.model_boxes += a.model_boxes;
        for p in a.drifts {
            self.drifts += 1;
            self.drift_sum += f64::from(p.drift());
            self.drift_values.push(p.drift());
            // Strictly worse replaces: the first of equals (in image order) is reported.
            if self.worst_drift.as_ref().is_none_or(|(_, w)| p.drift() > w.drift()) {
                self.worst_drift = Some((image.to_path_buf(), p));
            }
        }
        for p in a.matched {
            self.matched += 1;
            self.iou_sum += f64::from(p.iou);
            if self.worst_iou.as_ref().is_none_or(|(_, w)| p.iou < w.iou) {
                self.worst_iou = Some((image.to_path_buf(), p));
            }
        }
        self.lost.extend(a.lost.into_iter().map(|d| (image.to_path_buf(), d)));
        self.added.extend(a.added.into_iter().map(|d| (image.to_path_buf(), d)));
        self.strong_model += a.strong_model;
    }

    /// The summary, classes named after `names` (ids beyond it by number).
    pub fn finish(self, names: &[String], t: Thresholds) -> AgreementSummary {
        let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
        let pair = |(image, p): (PathBuf, Pairing)| Pair {
            image,
            class: p.reference.class,
            name: name(p.reference.class),
            reference: Scored { bbox: p.reference.bbox, conf: p.reference.score },
            model: p.model.map(|m| Scored { bbox: m.bbox, conf: m.score }),
            iou: p.iou,
        };
        let located = |(image, d): (PathBuf, Detection)| Located {
            image,
            class: d.class,
            name: name(d.class),
            bbox: d.bbox,
            conf: d.score,
        };
        let mean = |sum: f64, n: usize| (n > 0).then(|| sum / n as f64);
        let mut drifts = self.drift_values;
        drifts.sort_by(f32::total_cmp);
        let rank = |p: f64| {
            (!drifts.is_empty()).then(|| drifts[((p * drifts.len() as f64).ceil() as usize).clamp(1, drifts.len()) - 1])
        };
        let m = self.stats.compute();
        let strong_reference = self.drifts;
        AgreementSummary {
            thresholds: t,
            images: m.images,
            instances: m.instances,
            model_detections: self.model_boxes,
            precision: m.precision,
            recall: m.recall,
            map50: m.map50,
            map75: m.map75,
            map50_95: m.map50_95,
            best_conf: m.best_conf,
            classes: m.classes.into_iter().map(|c| ClassRow { name: name(c.class), metrics: c }).collect(),
            drift: Drift {
                boxes: self.drifts,
                max: self.worst_drift.as_ref().map(|(_, p)| p.drift()),
                mean: mean(self.drift_sum, self.drifts),
                p95: rank(0.95),
                p99: rank(0.99),
                worst: self.worst_drift.map(pair),
            },
            lost: Unpaired {
                count: self.lost.len(),
                of: strong_reference,
                boxes: self.lost.into_iter().map(located).collect(),
            },
            added: Unpaired {
                count: self.added.len(),
                of: self.strong_model,
                boxes: self.added.into_iter().map(located).collect(),
            },
            iou: Overlap {
                matched: self.matched,
                min: self.worst_iou.as_ref().map(|(_, p)| p.iou),
                mean: mean(self.iou_sum, self.matched),
                worst: self.worst_iou.map(pair),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: usize, score: f32, bbox: [f32; 4]) -> Detection {
        Detection { bbox, score, class }
    }

    fn summary(images: &[ImageDetections]) -> AgreementSummary {
        let t = Thresholds::default();
        let mut a = Agreement::default();
        for (i, d) in images.iter().enumerate() {
            a.add(Path::new(&format!("{i}.jpg")), compare(d, &t));
        }
        a.finish(&["circle".into(), "square".into(), "star".into()], t)
    }

    /// Two images worked by hand.
    ///
    /// Image 0: reference A (circle 0.9) and B (square 0.8). The model sees A' = A at 0.85, B'
    /// (square 0.3, the top 6 of B's 10 rows: IoU 60/100 = 0.6), C (circle 0.2, far from A)
    /// and E (star 0.6, which the reference does not see). Image 1: reference D (circle 0.7),
    /// the model nothing.
    ///
    /// mAP. circle: labels A, D; ranked A' (TP at every IoU), C (FP): recall 0.5 at precision
    /// 1, then precision 0.5. The envelope is 1 up to recall 0.5 and 0 from it (numpy's interp
    /// takes the last of the equal recalls at 0.5), so of the 101-point trapezoid 49 steps
    /// are 0.01 and the one into 0.5 is 0.005: AP 0.495 at every threshold. square: label B,
    /// B' at IoU 0.6 is a TP at 0.50, 0.55, 0.60 (AP 0.995, Ultralytics' ceiling) and an FP
    /// above (AP 0). star has no labels and does not count. mAP50 = (0.495 + 0.995) / 2 =
    /// 0.745; mAP50-95 = (0.495 + 3 * 0.995 / 10) / 2 = 0.39675.
    ///
    /// Drift over A, B, D (>= 0.5): 0.05, 0.5, and 0.7 for D, which the model lacks: max 0.7
    /// (D), mean 1.25 / 3. Lost: D (no circle near it). Added: E (0.6, nothing of its class
    /// in the reference); B' is below 0.5 so not a candidate. IoU of the matched A and B: 1
    /// and 0.6, min 0.6 at B, mean 0.8.
    #[test]
    fn two_images_by_hand() {
        let a = det(0, 0.9, [10.0, 10.0, 30.0, 30.0]);
        let b = det(1, 0.8, [50.0, 50.0, 60.0, 60.0]);
        let a2 = det(0, 0.85, a.bbox);
        let b2 = det(1, 0.3, [50.0, 50.0, 60.0, 56.0]);
        let c = det(0, 0.2, [100.0, 100.0, 120.0, 120.0]);
        let e = det(2, 0.6, [70.0, 10.0, 90.0, 30.0]);
        let d = det(0, 0.7, [5.0, 5.0, 25.0, 25.0]);
        let images = [
            ImageDetections { reference: vec![a, b], model: vec![a2, e, b2], model_val: vec![a2, e, b2, c] },
            ImageDetections { reference: vec![d], model: vec![], model_val: vec![] },
        ];
        let s = summary(&images);
        assert_eq!((s.images, s.instances, s.model_detections), (2, 3, 3));
        assert!((s.map50 - 0.745).abs() < 1e-12, "{}", s.map50);
        assert!((s.map50_95 - 0.39675).abs() < 1e-12, "{}", s.map50_95);
        let rows: Vec<(&str, usize)> = s.classes.iter().map(|c| (c.name.as_str(), c.metrics.instances)).collect();
        assert_eq!(rows, vec![("circle", 2), ("square", 1)]);

        assert_eq!(s.drift.boxes, 3);
        assert!((s.drift.max.unwrap() - 0.7).abs() < 1e-6);
        assert!((s.drift.mean.unwrap() - 1.25 / 3.0).abs() < 1e-6);
        // Nearest rank of 3: the 95th and 99th are the third, 0.7.
        assert_eq!((s.drift.p95, s.drift.p99), (s.drift.max, s.drift.max));
        let w = s.drift.worst.unwrap();
        assert_eq!((w.image, w.name.as_str(), w.model, w.iou), (PathBuf::from("1.jpg"), "circle", None, 0.0));

        assert_eq!((s.lost.count, s.lost.of), (1, 3));
        assert_eq!((s.lost.boxes[0].image.to_str(), s.lost.boxes[0].bbox), (Some("1.jpg"), d.bbox));
        assert_eq!((s.added.count, s.added.of), (1, 2));
        assert_eq!((s.added.boxes[0].name.as_str(), s.added.boxes[0].conf), ("star", 0.6));

        assert_eq!((s.iou.matched, s.iou.min), (2, Some(0.6)));
        assert!((s.iou.mean.unwrap() - 0.8).abs() < 1e-6);
        let w = s.iou.worst.unwrap();
        assert_eq!((w.name.as_str(), w.model.map(|m| m.bbox)), ("square", Some(b2.bbox)));
    }

    #[test]
    fn drift_pairs_with_the_closest_box_of_the_class_even_below_detect_conf() {
        // The model's square over the reference's is only 0.1 now (not a detection: lost),
        // but the drift is measured on it (0.7), not on the farther, more confident square.
        let r = det(1, 0.8, [0.0, 0.0, 10.0, 10.0]);
        let near = det(1, 0.1, [0.0, 0.0, 10.0, 9.0]);
        let far = det(1, 0.9, [5.0, 0.0, 15.0, 10.0]);
        let circle = det(0, 0.8, r.bbox);
        let s = summary(&[ImageDetections {
            reference: vec![r],
            model: vec![far, circle],
            model_val: vec![far, circle, near],
        }]);
        let w = s.drift.worst.unwrap();
        assert_eq!((w.model.map(|m| m.conf), w.iou), (Some(0.1), 0.9));
        assert!((s.drift.max.unwrap() - 0.7).abs() < 1e-6);
        // `far` overlaps it at 1/3 only: lost; `far` and the circle are both added.
        assert_eq!((s.lost.count, s.added.count, s.iou.matched, s.iou.min), (1, 2, 0, None));
    }

    #[test]
    fn nothing_detected_reads_as_nothing_measured() {
        let s = summary(&[ImageDetections::default()]);
        assert_eq!((s.images, s.instances, s.drift.max, s.drift.mean, s.iou.min), (1, 0, None, None, None));
        assert_eq!((s.lost.count, s.added.count, s.map50_95), (0, 0, 0.0));
    }
}
