//! `qdet val` against `yolo val` on the fixture model and dataset.
//!
//! tests/data/parity/shapes-val-metrics.json comes from
//!   tools/parity/val_reference.py models/shapes-yolov8n.onnx datasets/shapes/data.yaml \
//!       tests/data/parity/shapes-val-metrics.json
//! and tests/data/parity/shapes-dynamic-480-val-metrics.json from
//!   tools/parity/val_reference.py models/variants/shapes-yolov8n-dynamic.onnx \
//!       datasets/shapes/data.yaml tests/data/parity/shapes-dynamic-480-val-metrics.json --imgsz 480
//! (ONNX Runtime, versions in tools/requirements.txt). Rerun them whenever the fixture models
//! change: the metrics depend on the model, the per-image geometry does not.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::image_io::upright_dimensions;
use crate::model::{Int8, Model};
use crate::tests::{load_json, root};
use crate::val::{label_path, load_data, parse_labels, rect_input, run, ValGeometry, ValOptions};

/// Allowed distance from Ultralytics on every P, R, mAP50 and mAP50-95. ONNX Runtime and
/// tract round differently, which moves low scores by ~1e-6 and can reorder near-equal
/// predictions; the metrics themselves are computed identically (tests/it/val_metrics.rs).
const METRIC_TOL: f64 = 0.005;

#[derive(Deserialize)]
struct Reference {
    images: usize,
    instances: usize,
    precision: f64,
    recall: f64,
    map50: f64,
    map50_95: f64,
    classes: Vec<RefClass>,
    per_image: BTreeMap<String, RefImage>,
}

#[derive(Deserialize)]
struct RefClass {
    class: usize,
    name: String,
    images: usize,
    instances: usize,
    precision: f64,
    recall: f64,
    map50: f64,
    map50_95: f64,
}

#[derive(Deserialize)]
struct RefImage {
    src: [usize; 2],
    input: [usize; 2],
    gain: [f64; 2],
    pad: [usize; 2],
    labels: Vec<[f64; 5]>,
}

const STATIC_REF: &str = "tests/data/parity/shapes-val-metrics.json";
const DYNAMIC_REF: &str = "tests/data/parity/shapes-dynamic-480-val-metrics.json";

fn reference(rel: &str) -> Reference {
    load_json(rel)
}

#[test]
fn shapes_val_metrics_match_ultralytics() {
    let _team = crate::tests::team();
    check_metrics(STATIC_REF, "models/shapes-yolov8n.onnx", None);
}

/// A dynamic export gets Ultralytics' rectangular val inputs (aspect ratio kept, sides
/// rounded up to a stride multiple after half a stride of padding).
#[test]
fn dynamic_export_val_metrics_match_ultralytics() {
    let _team = crate::tests::team();
    check_metrics(DYNAMIC_REF, "models/variants/shapes-yolov8n-dynamic.onnx", Some(480));
}

/// The int8 QDQ fixture (`qdet calibrate`'s default output) on qdet's integer kernels against
/// `yolo val` running the file on ONNX Runtime with graph optimizations off
/// (tests/data/parity/shapes-int8-val-metrics.json, `val_reference.py ... --ort-exact`), and
/// against tract's float simulation of the same file: issue 4 asks for 0.003.
#[test]
fn int8_val_metrics_match_onnx_runtime_and_the_float_simulation() {
    let _team = crate::tests::team();
    // The engines' one-step rounding differences (see int8_native_matches_onnx_runtime) move
    // P and R, read at the one confidence of best mean F1 (a step function of the scores),
    // more than the areas: measured 0.0055 for the overall P and 0.025 (P), 0.022 (R) per
    // class with one calibration of the fixture; 0.017 (overall R) and 0.024 (P), 0.038 (R)
    // per class with the next, whose areas still agree to 0.003 (mAP50) and 0.004 (mAP50-95).
    // So the areas are held to METRIC_TOL overall and 0.01 per class, P and R to 0.02 and 0.05.
    check_metrics_within(
        "tests/data/parity/shapes-int8-val-metrics.json",
        "models/shapes-yolov8n.int8.onnx",
        None,
        Tolerances { all_pr: 0.02, class_pr: 0.05, all_map: METRIC_TOL, class_map: 0.01 },
    );
    let data = load_data(&root().join("datasets/shapes/data.yaml"), "val").unwrap();
    let path = root().join("models/shapes-yolov8n.int8.onnx");
    let map = |int8| {
        let model = Model::load_with(&path, None, int8).unwrap();
        run(&model, &data, &ValOptions { inflight: 2, ..ValOptions::default() }, &|_| {}).unwrap().map50_95
    };
    let (native, simulated) = (map(Int8::Native), map(Int8::Simulated));
    eprintln!("int8 mAP50-95: native {native:.5}, simulated {simulated:.5}");
    assert!((native - simulated).abs() <= 0.003, "native {native:.5} vs simulated {simulated:.5}");
}

fn check_metrics(reference_file: &str, model: &str, imgsz: Option<usize>) {
    let t = METRIC_TOL;
    check_metrics_within(reference_file, model, imgsz, Tolerances { all_pr: t, class_pr: t, all_map: t, class_map: t })
}

/// Largest differences allowed: P and R, and the mAPs, on the "all" row and per class.
struct Tolerances {
    all_pr: f64,
    class_pr: f64,
    all_map: f64,
    class_map: f64,
}

fn check_metrics_within(reference_file: &str, model: &str, imgsz: Option<usize>, tol: Tolerances) {
    let want = reference(reference_file);
    let model = Model::load(&root().join(model), imgsz.map(|n| (n, n))).expect("fixture model loads");
    let data = load_data(&root().join("datasets/shapes/data.yaml"), "val").expect("fixture dataset");
    let got = run(&model, &data, &ValOptions { imgsz, ..ValOptions::default() }, &|_| {}).expect("val runs");
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
    assert_eq!((got.images, got.instances), (want.images, want.instances));

    let mut diffs: BTreeMap<&str, f64> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut check = |what: &'static str, row: &str, g: f64, w: f64| {
        let d = (g - w).abs();
        let worst = diffs.entry(what).or_default();
        *worst = worst.max(d);
        let pr = what == "P" || what == "R";
        let limit = match (row == "all", pr) {
            (true, true) => tol.all_pr,
            (true, false) => tol.all_map,
            (false, true) => tol.class_pr,
            (false, false) => tol.class_map,
        };
        if d > limit {
            problems.push(format!("{row} {what}: qdet {g:.5} vs Ultralytics {w:.5}"));
        }
    };
    check("P", "all", got.precision, want.precision);
    check("R", "all", got.recall, want.recall);
    check("mAP50", "all", got.map50, want.map50);
    check("mAP50-95", "all", got.map50_95, want.map50_95);
    assert_eq!(got.classes.len(), want.classes.len());
    for (g, w) in got.classes.iter().zip(&want.classes) {
        let m = &g.metrics;
        assert_eq!(
            (m.class, g.name.as_str(), m.images, m.instances),
            (w.class, w.name.as_str(), w.images, w.instances)
        );
        check("P", &w.name, m.precision, w.precision);
        check("R", &w.name, m.recall, w.recall);
        check("mAP50", &w.name, m.map50, w.map50);
        check("mAP50-95", &w.name, m.map50_95, w.map50_95);
    }
    eprintln!("{reference_file}: largest difference from Ultralytics (all rows and classes): {diffs:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The model input and the label boxes the validator compares, image by image: val's own
/// letterbox (long side resized with the short side rounded up, then padded), and labels
/// carried into input pixels through Ultralytics' float32 steps.
#[test]
fn val_letterbox_and_label_boxes_match_ultralytics() {
    let _team = crate::tests::team();
    check_geometry(STATIC_REF, None);
}

#[test]
fn rectangular_val_inputs_match_ultralytics() {
    let _team = crate::tests::team();
    check_geometry(DYNAMIC_REF, Some(480));
}

/// `dynamic`: the imgsz of a dynamic model (rectangular inputs); `None` for the static fixture.
fn check_geometry(reference_file: &str, dynamic: Option<usize>) {
    let want = reference(reference_file);
    let dataset = root().join("datasets/shapes");
    let mut worst = 0.0f32;
    let mut labels = 0;
    let mut ceil_differs_from_round = 0;
    for (rel, w) in &want.per_image {
        let image = dataset.join(rel);
        let (width, height) = upright_dimensions(&image).unwrap_or_else(|e| panic!("{e}"));
        let src = (height as usize, width as usize);
        assert_eq!([src.0, src.1], w.src, "{rel}: source size");
        let (input, imgsz) = match dynamic {
            Some(n) => (rect_input(src, n, 32), n),
            None => ((w.input[0], w.input[1]), w.input[0].max(w.input[1])),
        };
        let g = ValGeometry::new(src, input, imgsz);
        assert_eq!([g.input().0, g.input().1], w.input, "{rel}: input size");
        assert_eq!([g.letterbox.left, g.letterbox.top], w.pad, "{rel}: padding");
        let gain = [g.loaded.0 as f64 / src.0 as f64 * g.ratio, g.loaded.1 as f64 / src.1 as f64 * g.ratio];
        // 1e-12, not equality: serde_json (without float_roundtrip) may misread the last bit.
        assert!(
            (gain[0] - w.gain[0]).abs() < 1e-12 && (gain[1] - w.gain[1]).abs() < 1e-12,
            "{rel}: gain {gain:?} vs {:?}",
            w.gain
        );
        // Predict's letterbox would round the short side instead of rounding it up.
        let r = imgsz as f64 / src.0.max(src.1) as f64;
        if g.loaded != ((src.0 as f64 * r).round() as usize, (src.1 as f64 * r).round() as usize) {
            ceil_differs_from_round += 1;
        }

        let lp = label_path(&image);
        let text = std::fs::read_to_string(&lp).unwrap_or_default();
        let parsed = parse_labels(&text, Path::new(&lp), 6).unwrap_or_else(|p| panic!("{p}"));
        assert_eq!(parsed.boxes.len(), w.labels.len(), "{rel}: label count");
        for (l, wl) in parsed.boxes.iter().zip(&w.labels) {
            assert_eq!(l.class, wl[0] as usize, "{rel}: label class");
            let b = g.label_box(l);
            for (v, wv) in b.iter().zip(&wl[1..]) {
                let d = (v - *wv as f32).abs();
                worst = worst.max(d);
                assert!(d <= 1e-4, "{rel}: label box {b:?} vs Ultralytics {:?}", &wl[1..]);
            }
            labels += 1;
        }
    }
    assert_eq!(want.per_image.len(), want.images);
    // The fixture must exercise the case where val's letterbox differs from predict's.
    assert!(ceil_differs_from_round > 10, "only {ceil_differs_from_round} images where ceil != round");
    eprintln!("{reference_file}: {labels} label boxes, largest difference from Ultralytics {worst:e} px");
}
