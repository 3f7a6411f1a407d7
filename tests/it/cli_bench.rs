//! `qdet bench --json`: one object per model, with its path and p50/p90/p99 per stage.

use crate::util::*;

#[test]
fn bench_json_has_every_stage_for_every_model() {
    let fp32 = root().join("models/shapes-yolov8n.onnx");
    let int8 = root().join("models/shapes-yolov8n.int8.onnx");
    let images = root().join("datasets/shapes/images/val/val_0000.jpg");
    let o = command()
        .args(["bench", "--model"])
        .arg(&fp32)
        .arg("--model")
        .arg(&int8)
        .arg("--images")
        .arg(&images)
        .args(["--runs", "3", "--warmup", "1", "--threads", "1", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let models = v.as_array().unwrap();
    assert_eq!(models.len(), 2);
    for (m, path) in models.iter().zip([&fp32, &int8]) {
        assert_eq!(m["path"].as_str().unwrap(), path.to_str().unwrap());
        for stage in ["preprocess", "inference", "postprocess"] {
            let p: Vec<f64> = ["p50_ms", "p90_ms", "p99_ms"].iter().map(|k| m[stage][k].as_f64().unwrap()).collect();
            assert!(p[0] > 0.0 && p[0] <= p[1] && p[1] <= p[2], "{stage}: {p:?}");
        }
    }
    assert!(models[0]["int8_kernel"].is_null());
    assert!(models[1]["int8_kernel"].is_string(), "the QDQ model runs on an integer kernel");
}

/// `--profile --json`: per op, the mean time per run and the sum of its nodes' fastest runs,
/// which can only be lower; the int8 fixture's time is mostly its integer convs, and its DFL
/// runs as one op.
#[test]
fn bench_profile_reports_mean_and_best_per_op() {
    let int8 = root().join("models/shapes-yolov8n.int8.onnx");
    let o = command()
        .args(["bench", "--model"])
        .arg(&int8)
        .args(["--runs", "4", "--warmup", "1", "--threads", "1", "--profile", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (mean, best) = (v[0]["profile_ms"].as_object().unwrap(), v[0]["profile_best_ms"].as_object().unwrap());
    assert_eq!(mean.keys().collect::<Vec<_>>(), best.keys().collect::<Vec<_>>());
    for (op, m) in mean {
        let (m, b) = (m.as_f64().unwrap(), best[op].as_f64().unwrap());
        assert!(b > 0.0 && b <= m * 1.0001, "{op}: best {b} ms, mean {m} ms");
    }
    let total: f64 = mean.values().map(|t| t.as_f64().unwrap()).sum();
    assert!(mean["QdetConvU8"].as_f64().unwrap() > 0.5 * total, "{mean:?}");
    assert!(mean.contains_key("QdetDfl") && !mean.contains_key("QdetSoftmax"), "{mean:?}");
}
