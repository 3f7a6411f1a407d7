//! The `qdet calibrate` binary on bad input: every refusal names the file and the reason, the
//! source model is never overwritten, corrupt images are skipped and listed (exit status 2).

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::*;

/// Runs `qdet args` (every path in them absolute) from the repository.
fn qdet(args: &[&str]) -> Output {
    crate::util::qdet(args, &root())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `n` fixture calibration images (the first by name; the folder holds only images) copied
/// into `dir/calib`.
fn calib(dir: &Path, n: usize) -> PathBuf {
    let out = dir.join("calib");
    std::fs::create_dir_all(&out).unwrap();
    let src = root().join("calibration");
    for name in tree(&src).iter().take(n) {
        std::fs::copy(src.join(name), out.join(name)).unwrap();
    }
    out
}

fn refused(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let err = stderr(o);
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

#[test]
fn corrupt_images_are_skipped_and_listed_and_the_model_is_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let c = calib(dir.path(), 3);
    std::fs::write(c.join("broken.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let out = dir.path().join("int8.onnx");
    let report = dir.path().join("report.json");
    let o = qdet(&[
        "calibrate",
        "--model",
        &model(),
        "--images",
        s(&c),
        "--out",
        s(&out),
        "--report",
        s(&report),
        "--analysis-images",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken.jpg"), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["images"], 3);
    assert!(r["skipped"][0]["path"].as_str().unwrap().ends_with("broken.jpg"));
    assert_eq!(r["method"], "mse", "the default method");
    // The tables name convs, worst first.
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("Layerwise sensitivity") && table.contains("/model."), "{table}");
    // The result is a model qdet loads, and calibrating it again is refused.
    qdet::Model::load(&out, None).unwrap();
    let again = qdet(&["calibrate", "--model", s(&out), "--images", s(&c), "--out", s(&dir.path().join("x.onnx"))]);
    refused(&again, &["int8.onnx", "already quantized"]);
}

#[test]
fn bad_inputs_are_refused_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let c = calib(dir.path(), 2);
    let out = dir.path().join("int8.onnx");
    let m = model();
    // Never the source model, even spelled differently.
    let same = root().join("models/../models/shapes-yolov8n.onnx");
    refused(&qdet(&["calibrate", "--model", &m, "--images", s(&c), "--out", s(&same)]), &["is the input model"]);
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    refused(
        &qdet(&["calibrate", "--model", &m, "--images", s(&empty), "--out", s(&out)]),
        &["no images found", "empty"],
    );
    let missing = dir.path().join("missing");
    refused(&qdet(&["calibrate", "--model", &m, "--images", s(&missing), "--out", s(&out)]), &["missing", "no such"]);
    refused(
        &qdet(&["calibrate", "--model", &m, "--images", s(&c), "--out", s(&out), "--num", "5"]),
        &["--num 5", "2 found"],
    );
    refused(
        &qdet(&["calibrate", "--model", &m, "--images", s(&c), "--out", s(&out), "--exclude", "nothing-like-this"]),
        &["nothing-like-this", "matches no Conv"],
    );
    let fp16 = root().join("models/variants/shapes-yolov8n-fp16.onnx");
    refused(
        &qdet(&["calibrate", "--model", s(&fp16), "--images", s(&c), "--out", s(&out)]),
        &["shapes-yolov8n-fp16.onnx", "fp16"],
    );
    let cls = root().join("tests/data/models/classify.onnx");
    refused(
        &qdet(&["calibrate", "--model", s(&cls), "--images", s(&c), "--out", s(&out)]),
        &["classify.onnx", "not an Ultralytics YOLO detection model"],
    );
    assert!(!out.exists(), "nothing written on refusal");
    std::fs::write(&out, b"keep me").unwrap();
    refused(
        &qdet(&["calibrate", "--model", &m, "--images", s(&c), "--out", s(&out)]),
        &["int8.onnx", "already exists"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}
