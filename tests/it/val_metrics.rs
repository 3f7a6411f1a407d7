//! qdet's metric math against Ultralytics' own functions on fixed synthetic inputs
//! (tests/data/metrics/reference.json, written by tools/parity/metrics_reference.py with the
//! versions in tools/requirements.txt; see that script for the cases and for how ties are
//! handled).
//!
//! Tolerance: 1e-9 on every float. qdet copies numpy's operation order (pairwise sums,
//! np.interp's segment choice) everywhere except the box filter of the F1 curve, which numpy
//! computes with BLAS; that only moves the last bits of the smoothed curve, and the index
//! chosen from it is compared exactly.

use qdet::metrics::{ap_per_class, box_iou, match_predictions, Correct, DetStats, IOU_THRESHOLDS, NIOU};
use serde::Deserialize;

use crate::util::*;

const TOL: f64 = 1e-9;

#[derive(Deserialize)]
struct Reference {
    ap_per_class: Vec<ApCase>,
    det_metrics: DetCase,
    #[serde(rename = "match")]
    matching: MatchCases,
}

#[derive(Deserialize)]
struct ApCase {
    name: String,
    tp: Vec<String>,
    conf: Vec<f64>,
    pred_cls: Vec<usize>,
    target_cls: Vec<usize>,
    out: ApOut,
}

#[derive(Deserialize)]
struct ApOut {
    classes: Vec<usize>,
    tp: Vec<f64>,
    fp: Vec<f64>,
    p: Vec<f64>,
    r: Vec<f64>,
    f1: Vec<f64>,
    ap: Vec<Vec<f64>>,
    best_index: usize,
    mp: f64,
    mr: f64,
    map50: f64,
    map75: f64,
    map: f64,
}

#[derive(Deserialize)]
struct DetCase {
    nc: usize,
    images: Vec<DetImage>,
    out: DetOut,
}

#[derive(Deserialize)]
struct DetImage {
    tp: Vec<String>,
    conf: Vec<f64>,
    pred_cls: Vec<usize>,
    target_cls: Vec<usize>,
}

#[derive(Deserialize)]
struct DetOut {
    nt_per_class: Vec<usize>,
    nt_per_image: Vec<usize>,
    ap_class_index: Vec<usize>,
    class_results: Vec<[f64; 4]>,
    mp: f64,
    mr: f64,
    map50: f64,
    map: f64,
}

#[derive(Deserialize)]
struct MatchCases {
    thresholds: Vec<f64>,
    images: Vec<MatchImage>,
}

#[derive(Deserialize)]
struct MatchImage {
    name: String,
    label_boxes: Vec<[f64; 4]>,
    label_cls: Vec<usize>,
    pred_boxes: Vec<[f64; 4]>,
    pred_cls: Vec<usize>,
    iou: Vec<Vec<f64>>,
    correct: Vec<String>,
}

fn reference() -> Reference {
    load_json("tests/data/metrics/reference.json")
}

fn bits(rows: &[String]) -> Vec<Correct> {
    rows.iter()
        .map(|s| {
            assert_eq!(s.len(), NIOU, "{s}");
            let mut c = [false; NIOU];
            for (i, b) in s.bytes().enumerate() {
                c[i] = b == b'1';
            }
            c
        })
        .collect()
}

/// JSON holds the float32 inputs as exact doubles.
fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn close(what: &str, got: f64, want: f64, worst: &mut f64) {
    let d = (got - want).abs();
    *worst = worst.max(d);
    assert!(d <= TOL, "{what}: qdet {got} vs Ultralytics {want} (diff {d:e})");
}

fn close_all(what: &str, got: &[f64], want: &[f64], worst: &mut f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        close(&format!("{what}[{i}]"), *g, *w, worst);
    }
}

#[test]
fn ap_per_class_matches_ultralytics() {
    let r = reference();
    assert!(r.ap_per_class.len() >= 10);
    let mut worst = 0.0f64;
    for case in &r.ap_per_class {
        let n = &case.name;
        let tp = bits(&case.tp);
        let got = ap_per_class(&tp, &f32s(&case.conf), &case.pred_cls, &case.target_cls);
        let want = &case.out;
        assert_eq!(got.classes, want.classes, "{n}: classes");
        assert_eq!(got.best_index, want.best_index, "{n}: max-F1 index");
        close_all(&format!("{n} tp"), &got.tp, &want.tp, &mut worst);
        close_all(&format!("{n} fp"), &got.fp, &want.fp, &mut worst);
        close_all(&format!("{n} p"), &got.precision, &want.p, &mut worst);
        close_all(&format!("{n} r"), &got.recall, &want.r, &mut worst);
        close_all(&format!("{n} f1"), &got.f1, &want.f1, &mut worst);
        assert_eq!(got.ap.len(), want.ap.len(), "{n}: ap rows");
        for (ci, (g, w)) in got.ap.iter().zip(&want.ap).enumerate() {
            close_all(&format!("{n} ap[{ci}]"), g, w, &mut worst);
        }
        // Metric.mean_results over the same output, through DetStats' means.
        let mut stats = DetStats::new();
        stats.add_image(&tp, &f32s(&case.conf), &case.pred_cls, &case.target_cls);
        let m = stats.compute();
        close(&format!("{n} mp"), m.precision, want.mp, &mut worst);
        close(&format!("{n} mr"), m.recall, want.mr, &mut worst);
        close(&format!("{n} map50"), m.map50, want.map50, &mut worst);
        close(&format!("{n} map75"), m.map75, want.map75, &mut worst);
        close(&format!("{n} map"), m.map50_95, want.map, &mut worst);
    }
    eprintln!("ap_per_class: largest difference from Ultralytics {worst:e}");
}

/// The edge cases the reference must contain, so a regenerated file cannot silently drop them.
#[test]
fn reference_covers_the_edge_cases() {
    let r = reference();
    let names: Vec<&str> = r.ap_per_class.iter().map(|c| c.name.as_str()).collect();
    for want in ["random", "all_correct", "no_predictions", "no_labels", "empty", "ties_same_outcome", "ties_mixed"] {
        assert!(names.contains(&want), "missing case {want}");
    }
    let random = r.ap_per_class.iter().find(|c| c.name == "random").unwrap();
    // A class with labels and no predictions scores zero; a class with predictions and no
    // labels is not reported at all.
    assert!(random.target_cls.contains(&3) && !random.pred_cls.contains(&3));
    assert!(random.pred_cls.contains(&5) && !random.out.classes.contains(&5));
    let i3 = random.out.classes.iter().position(|&c| c == 3).unwrap();
    assert_eq!(random.out.ap[i3], vec![0.0; NIOU]);
    let ties = r.ap_per_class.iter().find(|c| c.name == "ties_mixed").unwrap();
    let mut conf = ties.conf.clone();
    conf.sort_by(f64::total_cmp);
    conf.dedup();
    assert!(conf.len() < ties.conf.len() / 4, "the tie case has few distinct confidences");
}

#[test]
fn det_metrics_counts_and_means_match_ultralytics() {
    let r = reference();
    let case = &r.det_metrics;
    let mut stats = DetStats::new();
    for img in &case.images {
        stats.add_image(&bits(&img.tp), &f32s(&img.conf), &img.pred_cls, &img.target_cls);
    }
    let m = stats.compute();
    let mut worst = 0.0f64;
    assert_eq!(m.images, case.images.len());
    assert_eq!(m.instances, case.out.nt_per_class.iter().sum::<usize>());
    let classes: Vec<usize> = m.classes.iter().map(|c| c.class).collect();
    assert_eq!(classes, case.out.ap_class_index);
    for (c, want) in m.classes.iter().zip(&case.out.class_results) {
        assert!(c.class < case.nc);
        assert_eq!(c.instances, case.out.nt_per_class[c.class], "class {} instances", c.class);
        assert_eq!(c.images, case.out.nt_per_image[c.class], "class {} images", c.class);
        close_all(&format!("class {}", c.class), &[c.precision, c.recall, c.map50, c.map50_95], want, &mut worst);
    }
    close_all(
        "all",
        &[m.precision, m.recall, m.map50, m.map50_95],
        &[case.out.mp, case.out.mr, case.out.map50, case.out.map],
        &mut worst,
    );
    eprintln!("DetMetrics: largest difference from Ultralytics {worst:e}");
}

#[test]
fn box_iou_and_greedy_matching_match_ultralytics() {
    let r = reference();
    let m = &r.matching;
    assert_eq!(f32s(&m.thresholds), IOU_THRESHOLDS.to_vec(), "torch.linspace(0.5, 0.95, 10)");
    let mut iou_worst = 0.0f32;
    let mut matched = 0;
    for img in &m.images {
        let lb: Vec<[f32; 4]> = img.label_boxes.iter().map(|b| b.map(|v| v as f32)).collect();
        let pb: Vec<[f32; 4]> = img.pred_boxes.iter().map(|b| b.map(|v| v as f32)).collect();
        let want = bits(&img.correct);
        let mut iou = Vec::new();
        for (i, l) in lb.iter().enumerate() {
            for (j, p) in pb.iter().enumerate() {
                let got = box_iou(l, p);
                let d = (got - img.iou[i][j] as f32).abs();
                iou_worst = iou_worst.max(d);
                assert!(d <= 1e-7, "{}: iou[{i}][{j}] qdet {got} vs {}", img.name, img.iou[i][j]);
                iou.push(got);
            }
        }
        let got = if lb.is_empty() || pb.is_empty() {
            qdet::metrics::match_boxes(&pb, &img.pred_cls, &lb, &img.label_cls)
        } else {
            match_predictions(&img.pred_cls, &img.label_cls, &iou)
        };
        assert_eq!(got, want, "{}: correct matrix", img.name);
        matched += want.iter().filter(|c| c[0]).count();
    }
    assert!(matched > 20, "the reference exercises matching ({matched} matches at 0.5)");
    eprintln!("box_iou: largest difference from Ultralytics {iou_worst:e}");
}
