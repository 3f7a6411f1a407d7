//! `qdet val --reference` end to end: a model against itself, the fixture int8 model against
//! its fp32 original (checked against what `qdet detect` writes for each), a reference with
//! another input geometry, bad inputs, and calibrate's report agreeing with `val`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

fn int8() -> String {
    root().join("models/shapes-yolov8n.int8.onnx").to_string_lossy().into_owned()
}

fn val_dir() -> String {
    root().join("datasets/shapes/images/val").to_string_lossy().into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `qdet val args --json` from the repository; the JSON and the exit status.
fn val_json(args: &[&str]) -> (Value, Option<i32>) {
    let mut all = vec!["val"];
    all.extend_from_slice(args);
    all.push("--json");
    let o = qdet(&all, &root());
    (summary(&o), o.status.code())
}

/// One rectangle of a labelme file.
#[derive(Debug, Clone)]
struct Shape {
    label: String,
    bbox: [f64; 4],
    score: f32,
}

/// `qdet detect --model model --conf conf` on the val split: each image's shapes by file stem.
fn detect(model: &str, conf: &str, out: &Path) -> BTreeMap<String, Vec<Shape>> {
    let o = qdet(&["detect", "--model", model, &val_dir(), "--out", s(out), "--conf", conf], &root());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut files = BTreeMap::new();
    for name in tree(out) {
        let file = json(&out.join(&name));
        let scores = file["shapes"].as_array().unwrap().iter().map(|s| s["score"].as_f64().unwrap() as f32);
        let shapes = rects(&file).into_iter().zip(scores).map(|((label, bbox), score)| Shape { label, bbox, score });
        files.insert(name.trim_end_matches(".json").to_string(), shapes.collect());
    }
    assert_eq!(files.len(), 120);
    files
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    w * h / (area(a) + area(b) - w * h)
}

/// The shape of `pool` with `s`'s label that overlaps it most.
fn closest<'a>(s: &Shape, pool: &'a [Shape]) -> Option<(&'a Shape, f64)> {
    let same = pool.iter().filter(|p| p.label == s.label).map(|p| (p, iou(&s.bbox, &p.bbox)));
    same.filter(|(_, v)| *v > 0.0).fold(None, |best, (p, v)| match best {
        Some((_, b)) if b >= v => best,
        _ => Some((p, v)),
    })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn stem(v: &Value) -> String {
    Path::new(v.as_str().unwrap()).file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn a_model_against_itself_agrees_perfectly() {
    // On the yaml's val images, labels ignored.
    let fp32 = model();
    let data = root().join("datasets/shapes/data.yaml");
    let (v, code) = val_json(&["--model", &fp32, "--reference", &fp32, "--data", s(&data)]);
    assert_eq!(code, Some(0));
    assert_eq!((v["images"].as_u64(), v["images_found"].as_u64()), (Some(120), Some(120)));
    // 0.995 is Ultralytics' AP ceiling (a perfect detector's score, see metrics.rs).
    for key in ["map50", "map50_95"] {
        assert!((f(&v[key]) - 0.995).abs() < 1e-9, "{key} = {}", v[key]);
    }
    for c in v["classes"].as_array().unwrap() {
        assert!((f(&c["map50_95"]) - 0.995).abs() < 1e-9, "{c}");
    }
    assert_eq!(v["model_detections"], v["instances"]);
    assert_eq!((f(&v["drift"]["max"]), f(&v["drift"]["mean"])), (0.0, 0.0));
    assert_eq!((v["lost"]["count"].as_u64(), v["added"]["count"].as_u64()), (Some(0), Some(0)));
    assert_eq!(v["lost"]["of"], v["added"]["of"]);
    assert_eq!(f(&v["iou"]["min"]), 1.0);
    assert_eq!(v["iou"]["matched"], v["drift"]["boxes"]);
    let t = &v["thresholds"];
    assert_eq!((f(&t["detect_conf"]), f(&t["strong_conf"]), f(&t["match_iou"])), (0.25, 0.5, 0.5));
}

/// Drift, lost, added and IoU recomputed here from `qdet detect`'s labelme files of both
/// models: the fp32 at detect's conf 0.25 (the labels), the int8 at 0.25 (its detections)
/// and at val's 0.001 (what the drift is measured against).
#[test]
fn int8_against_fp32_matches_both_models_detect_outputs() {
    let d = tempfile::tempdir().unwrap();
    let reference = detect(&model(), "0.25", &d.path().join("fp32"));
    let dets = detect(&int8(), "0.25", &d.path().join("int8"));
    let low = detect(&int8(), "0.001", &d.path().join("int8-low"));
    let (v, code) = val_json(&["--model", &int8(), "--reference", &model(), "--images", &val_dir()]);
    assert_eq!(code, Some(0));

    let count = |m: &BTreeMap<String, Vec<Shape>>| m.values().map(Vec::len).sum::<usize>() as u64;
    assert_eq!(
        (v["instances"].as_u64(), v["model_detections"].as_u64()),
        (Some(count(&reference)), Some(count(&dets)))
    );
    let mut per_class: BTreeMap<String, u64> = BTreeMap::new();
    for s in reference.values().flatten() {
        *per_class.entry(s.label.clone()).or_default() += 1;
    }
    let rows: BTreeMap<String, u64> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["instances"].as_u64().unwrap()))
        .collect();
    assert_eq!(rows, per_class);

    let (mut drift_max, mut drift_sum, mut worst) = (0.0f32, 0.0f64, None);
    let (mut strong, mut lost, mut matched, mut iou_min, mut strong_model, mut added) = (0, 0, 0, 1.0f64, 0, 0);
    for (image, refs) in &reference {
        for r in refs.iter().filter(|r| r.score >= 0.5) {
            strong += 1;
            let drift = (r.score - closest(r, &low[image]).map_or(0.0, |(m, _)| m.score)).abs();
            drift_sum += f64::from(drift);
            if drift > drift_max {
                (drift_max, worst) = (drift, Some((image.clone(), r.clone())));
            }
            match closest(r, &dets[image]) {
                Some((_, v)) if v >= 0.5 => (matched, iou_min) = (matched + 1, iou_min.min(v)),
                _ => lost += 1,
            }
        }
        for m in dets[image].iter().filter(|m| m.score >= 0.5) {
            strong_model += 1;
            added += u64::from(!closest(m, refs).is_some_and(|(_, v)| v >= 0.5));
        }
    }
    let dv = &v["drift"];
    assert_eq!(dv["boxes"], strong);
    assert!(drift_max > 0.0, "int8 and fp32 scores differ");
    assert!((f(&dv["max"]) - f64::from(drift_max)).abs() < 1e-6, "{dv} vs {drift_max}");
    assert!((f(&dv["mean"]) - drift_sum / strong as f64).abs() < 1e-6, "{dv}");
    let (image, r) = worst.unwrap();
    assert_eq!((stem(&dv["worst"]["image"]), dv["worst"]["name"].as_str()), (image, Some(r.label.as_str())));
    assert_eq!(f(&dv["worst"]["reference"]["conf"]) as f32, r.score);

    assert_eq!((v["lost"]["count"].as_u64(), v["lost"]["of"].as_u64()), (Some(lost), Some(strong)));
    assert_eq!((v["added"]["count"].as_u64(), v["added"]["of"].as_u64()), (Some(added), Some(strong_model)));
    assert_eq!(v["iou"]["matched"], matched);
    assert!((f(&v["iou"]["min"]) - iou_min).abs() < 1e-5, "{} vs {iou_min}", v["iou"]);
    // Boxes moved and scores drifted: below the 0.995 of a model against itself.
    assert!(f(&v["map50_95"]) < 0.99, "{}", v["map50_95"]);
}

#[test]
fn each_model_gets_its_own_letterbox() {
    // The dynamic export runs on detect's minimal rectangles, the static one on 320x320; the
    // labels must be the dynamic model's own detections (524 here, 530 for the static one).
    let d = tempfile::tempdir().unwrap();
    let dynamic = root().join("models/variants/shapes-yolov8n-dynamic.onnx");
    let reference = detect(s(&dynamic), "0.25", &d.path().join("dyn"));
    let (v, code) = val_json(&["--model", &model(), "--reference", s(&dynamic), "--images", &val_dir()]);
    assert_eq!(code, Some(0));
    assert_eq!(v["instances"].as_u64(), Some(reference.values().map(Vec::len).sum::<usize>() as u64));
    assert_eq!((v["input"].clone(), v["reference_input"].clone()), (serde_json::json!([320, 320]), Value::Null));
}

#[test]
fn undecodable_images_are_skipped_with_exit_status_2() {
    let d = tempfile::tempdir().unwrap();
    let imgs = d.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    for n in ["val_0000.jpg", "val_0001.jpg"] {
        std::fs::copy(val(n), imgs.join(n)).unwrap();
    }
    std::fs::write(imgs.join("broken.jpg"), b"not a jpeg").unwrap();
    let o = qdet(&["val", "--model", &int8(), "--reference", &model(), "--images", s(&imgs)], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.jpg"), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("mAP50-95)") && table.contains("confidence drift over"), "{table}");
    let (v, code) = val_json(&["--model", &int8(), "--reference", &model(), "--images", s(&imgs)]);
    assert_eq!(code, Some(2));
    assert_eq!((v["images_found"].as_u64(), v["images"].as_u64()), (Some(3), Some(2)));
    let skipped = v["skipped"].as_array().unwrap();
    assert!(skipped.len() == 1 && skipped[0]["path"].as_str().unwrap().ends_with("broken.jpg"), "{skipped:?}");
}

#[test]
fn bad_flags_and_files_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], needles: &[&str]| {
        let o = qdet(args, d.path());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        for n in needles {
            assert!(stderr(&o).contains(n), "{n:?} not in {}", stderr(&o));
        }
    };
    refused(&["val", "--model", &model(), "--images", &val_dir()], &["--reference"]);
    refused(&["val", "--model", &model(), "--reference", &model()], &["--data"]);
    let missing = d.path().join("fp32-missing.onnx");
    refused(&["val", "--model", &int8(), "--reference", s(&missing), "--images", &val_dir()], &["fp32-missing.onnx"]);
    refused(
        &["val", "--model", &int8(), "--reference", &model(), "--images", s(&d.path().join("nowhere"))],
        &["nowhere"],
    );
}

/// `calibrate --report`'s agreement is what `val --reference` says of the written model on
/// the analysis images.
#[test]
fn calibrate_reports_the_agreement_val_measures() {
    let d = tempfile::tempdir().unwrap();
    let calib = d.path().join("calib");
    std::fs::create_dir_all(&calib).unwrap();
    let names = ["calibration_0000.jpg", "calibration_0001.jpg", "calibration_0002.jpg"];
    for n in names {
        std::fs::copy(root().join("calibration").join(n), calib.join(n)).unwrap();
    }
    let (out, report) = (d.path().join("int8.onnx"), d.path().join("report.json"));
    let o = qdet(
        &["calibrate", "--model", &model(), "--images", s(&calib), "--out", s(&out), "--report", s(&report)],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("Detections vs float on 3 images"), "{stdout}");
    // Three images: a warning with the measured cost, and a verdict that says the check ran
    // on the calibration images themselves.
    assert!(stderr(&o).contains("qdet: warning: calibrating on 3 images"), "{}", stderr(&o));
    let verdict = stdout.lines().find(|l| l.starts_with("Verdict: ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(verdict.contains("these 3 images were calibrated on; judge on others with `qdet val"), "{verdict}");
    let mut a = json(&report)["agreement"].clone();
    let first: Vec<PathBuf> = names.iter().map(|n| calib.join(n)).collect();
    let fp32 = model();
    let mut args = vec!["--model", s(&out), "--reference", &fp32, "--images"];
    args.extend(first.iter().map(|p| s(p)));
    let (mut v, code) = val_json(&args);
    assert_eq!(code, Some(0));
    assert_eq!(a["images"], 3);
    // The same numbers; only the report's own fields around them differ.
    for key in ["thresholds", "instances", "model_detections", "map50", "map50_95", "classes", "drift", "lost", "added"]
    {
        assert_eq!(a[key].take(), v[key].take(), "{key}");
    }
    assert_eq!(a["iou"], v["iou"]);
}

/// With 48 images or more, calibrate checks its file on 8 it did not calibrate on, and the
/// numbers are those `val --reference` gives on exactly those 8.
#[test]
fn calibrate_checks_on_images_it_held_out() {
    let d = tempfile::tempdir().unwrap();
    let (out, report) = (d.path().join("int8.onnx"), d.path().join("report.json"));
    let calib = root().join("calibration");
    let o = qdet(
        &[
            "calibrate",
            "--model",
            &model(),
            "--images",
            s(&calib),
            "--num",
            "48",
            "--out",
            s(&out),
            "--report",
            s(&report),
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("Detections vs float on 8 held-out images"), "{stdout}");
    assert!(stdout.contains("8 images kept out of the calibration"), "{stdout}");
    let r = json(&report);
    assert_eq!(r["images"], 40);
    // The middles of 8 slices of the 48 sorted images: 3, 9, ..., 45.
    let held: Vec<String> = r["held_out"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    let want: Vec<String> = (0..8)
        .map(|j| calib.join(format!("calibration_{:04}.jpg", 6 * j + 3)).to_string_lossy().into_owned())
        .collect();
    assert_eq!(held, want);
    let fp32 = model();
    let mut args = vec!["--model", s(&out), "--reference", &fp32, "--images"];
    args.extend(held.iter().map(String::as_str));
    let (mut v, code) = val_json(&args);
    assert_eq!(code, Some(0));
    let mut a = r["agreement"].clone();
    assert_eq!(a["images"], 8);
    for key in ["instances", "model_detections", "map50", "map50_95", "drift", "lost", "added", "iou"] {
        assert_eq!(a[key].take(), v[key].take(), "{key}");
    }
}
