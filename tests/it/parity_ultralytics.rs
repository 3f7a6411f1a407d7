//! qdet's detections against Ultralytics' own on the fixture model (references made by
//! tools/parity/ultralytics_reference.py with the versions in tools/requirements.txt).

use qdet::{read_image, Detector, Int8, Model, NmsOptions};

use crate::util::*;

fn check(reference: &str, model: &str) {
    check_within(reference, model, None, BOX_TOL_PX, CONF_TOL)
}

pub(crate) fn check_within(reference: &str, model: &str, imgsz: Option<(usize, usize)>, box_tol: f32, conf_tol: f32) {
    let reference = load_reference(reference);
    let det = Detector::load(&root().join(model), imgsz, NmsOptions::default().with_conf(reference.conf))
        .expect("fixture model loads");
    let mut problems = Vec::new();
    let mut compared = 0;
    for (rel, want) in &reference.images {
        let path = root().join(rel);
        let img = read_image(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((img.width, img.height), (want.width, want.height), "{rel}: size after EXIF orientation");
        let got = det.detect(&img).unwrap_or_else(|e| panic!("{rel}: {e}"));
        problems.extend(compare(&path, &got, &want.detections, reference.conf, box_tol, conf_tol));
        compared += want.detections.len();
    }
    assert!(compared > 0, "the reference holds no detections");
    assert!(problems.is_empty(), "{} mismatches:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn shapes_val_images_match_ultralytics() {
    check("tests/data/parity/shapes-val.json", "models/shapes-yolov8n.onnx");
}

#[test]
fn odd_inputs_match_ultralytics() {
    check("tests/data/parity/shapes-odd.json", "models/shapes-yolov8n.onnx");
}

/// A `dynamic=True` export at `imgsz=480`: Ultralytics letterboxes to the smallest stride
/// multiple (auto=True) instead of the full square, so most inputs are rectangles.
#[test]
fn dynamic_export_matches_ultralytics() {
    let model = "models/variants/shapes-yolov8n-dynamic.onnx";
    check_within("tests/data/parity/shapes-dynamic-480.json", model, Some((480, 480)), BOX_TOL_PX, CONF_TOL);
    // Without --imgsz a dynamic model runs at the size it was exported for.
    let det = Detector::load(&root().join(model), None, NmsOptions::default()).unwrap();
    assert_eq!(det.target(), (320, 320));
}

/// A `half=True` export: ONNX Runtime rounds activations to fp16 between layers while qdet
/// runs the fp16 weights in f32; measured here 0.77 px and 6e-4 apart at most, inside the
/// same tolerances as fp32.
#[test]
fn fp16_export_matches_ultralytics() {
    check("tests/data/parity/shapes-fp16.json", "models/variants/shapes-yolov8n-fp16.onnx");
}

/// The int8 QDQ file `qdet calibrate` writes (models/shapes-yolov8n.int8.onnx, default
/// settings) against ONNX Runtime running it with graph optimizations off, i.e. the exact
/// semantics of the file (tests/data/parity/shapes-int8-ort.json, from
/// `ultralytics_reference.py models/shapes-yolov8n.int8.onnx ... datasets/shapes/images/val --ort-exact`).
///
/// Exact agreement is not possible: an activation within float noise (~1e-6 relative) of a
/// rounding boundary lands one uint8 step apart in two engines, and such steps compound
/// through the 58 quantized tensors (measured on one image against ONNX Runtime: 1 value in
/// 409600 differs after layer 0, a quarter of them by layer 15, up to 13 steps in the head,
/// for tract's float simulation and qdet's integer kernels alike; each is 4-5% of detections
/// outside issue 4's 2 px / 0.02 on this model). So the bar is those tolerances for at least
/// 92% of the detections, every confident one (>= 0.5) found by both (IoU >= 0.85, conf
/// within 0.1), and the mAP within 0.005 (src/val/parity_tests.rs).
fn check_int8(int8: Int8) -> (usize, usize) {
    let reference = load_reference("tests/data/parity/shapes-int8-ort.json");
    let path = root().join("models/shapes-yolov8n.int8.onnx");
    let model = Model::load_with(&path, None, int8).unwrap();
    let det = Detector::new(model, None, NmsOptions::default().with_conf(reference.conf));
    let (mut total, mut unmatched, mut weak) = (0, 0, Vec::new());
    for (rel, want) in &reference.images {
        let path = root().join(rel);
        let got = det.detect(&read_image(&path).unwrap()).unwrap();
        let problems = compare(&path, &got, &want.detections, reference.conf, 2.0, 0.02);
        total += want.detections.len();
        unmatched += problems.iter().filter(|p| p.contains(": reference ")).count();
        for r in want.detections.iter().filter(|r| r.conf >= 0.5) {
            let best = got
                .iter()
                .filter(|d| d.class == r.class)
                .map(|d| (iou(&d.bbox, &r.bbox), (d.score - r.conf).abs()))
                .fold((0.0f32, 1.0f32), |a, b| if b.0 > a.0 { b } else { a });
            if best.0 < 0.85 || best.1 > 0.1 {
                weak.push(format!("{rel}: {r:?} best partner IoU {:.3}, conf diff {:.3}", best.0, best.1));
            }
        }
    }
    eprintln!(
        "int8 ({int8:?}) vs ONNX Runtime: {unmatched} of {total} detections without a partner within 2 px / 0.02"
    );
    assert!(total > 500, "the reference holds {total} detections");
    assert!(
        unmatched * 100 <= total * 8,
        "{unmatched} of {total} ONNX Runtime detections have no qdet partner within 2 px / 0.02"
    );
    assert!(weak.is_empty(), "confident detections apart:\n{}", weak.join("\n"));
    (unmatched, total)
}

/// qdet's integer kernels, as `qdet detect` runs a QDQ file by default.
#[test]
fn int8_native_matches_onnx_runtime() {
    let det = Model::load(&root().join("models/shapes-yolov8n.int8.onnx"), None).unwrap();
    let report = det.int8_report().expect("the QDQ model runs on the integer kernels");
    // 64 convs: all but the DFL quantized; all but the 6 last head convs followed by SiLU.
    assert_eq!((report.replaced, report.silu_fused), (63, 57), "{report:?}");
    // Each conv runs once, whatever outputs the rewrites gave it.
    assert_eq!(report.convs_in_plan, 63, "{report:?}");
    // The 6 backbone bottlenecks' shortcut Adds in their second conv; the 8 C2f Splits
    // written by their cv1; 44 QuantizeLinears in conv epilogues, all in the reading conv's
    // layout; 33 of the 13 uint8 Concats' inputs quantized by their conv; the SPPF's 3
    // MaxPools and the neck's 2 upsamplings on uint8.
    let fused = (
        report.residual_fused,
        report.split_fused,
        report.requant_fused,
        report.handed_over,
        report.concat_fused,
        report.concat_inputs_requantized,
    );
    assert_eq!(fused, (6, 8, 44, 44, 13, 33), "{report:?}");
    assert_eq!((report.max_pools_u8, report.resizes_u8), (3, 2), "{report:?}");
    check_int8(Int8::Native);
}

/// tract's float simulation of the Q/DQ steps.
#[test]
fn int8_simulated_matches_onnx_runtime() {
    check_int8(Int8::Simulated);
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}
