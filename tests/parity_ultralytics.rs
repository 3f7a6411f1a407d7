//! qdet's detections against Ultralytics' own on the fixture model (references made by
//! tools/parity/ultralytics_reference.py with the versions in tools/requirements.txt).

mod common;

use common::*;
use qdet::detector::Detector;
use qdet::image_io::read_rgb;
use qdet::postprocess::NmsOptions;

fn check(reference: &str, model: &str) {
    let reference = load_reference(reference);
    let det = Detector::load(&root().join(model), None, NmsOptions { conf: reference.conf, ..Default::default() })
        .expect("fixture model loads");
    let mut problems = Vec::new();
    let mut compared = 0;
    for (rel, want) in &reference.images {
        let path = root().join(rel);
        let img = read_rgb(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((img.width, img.height), (want.width, want.height), "{rel}: size after EXIF orientation");
        let got = det.detect(&img).unwrap_or_else(|e| panic!("{rel}: {e}"));
        problems.extend(compare(&path, &got, &want.detections, reference.conf, BOX_TOL_PX, CONF_TOL));
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
