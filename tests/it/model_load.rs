//! Loading refuses what is not an Ultralytics YOLO detection export, with a message naming the file
//! and the reason (the wrong-task models come from tools/fixtures/make_wrong_models.py and
//! have the output shapes of real Ultralytics cls/seg/pose exports).

use qdet::{Head, Model, Precision};

use crate::util::*;

fn load_err(rel: &str) -> String {
    let path = root().join(rel);
    match Model::load(&path, None) {
        Ok(m) => panic!("{rel} loaded as {m:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(path.file_name().unwrap().to_str().unwrap()), "message does not name the file: {msg}");
            msg
        }
    }
}

#[test]
fn wrong_tasks_are_refused_with_the_reason() {
    assert!(load_err("tests/data/models/classify.onnx").contains("task=\"classify\""));
    assert!(load_err("tests/data/models/classify-nometa.onnx").contains("classification"));
    assert!(load_err("tests/data/models/segment.onnx").contains("task=\"segment\""));
    assert!(load_err("tests/data/models/segment-nometa.onnx").contains("segmentation"));
    assert!(load_err("tests/data/models/pose.onnx").contains("task=\"pose\""));
    assert!(load_err("tests/data/models/pose-names-only.onnx").contains("53 class scores but its metadata names 2"));
    assert!(load_err("tests/data/models/nms-export.onnx").contains("nms=True"));
}

#[test]
fn missing_empty_and_non_onnx_files() {
    let msg = load_err("tests/data/models/does-not-exist.onnx");
    assert!(msg.contains("No such file"), "{msg}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let e = Model::load(&empty, None).unwrap_err().to_string();
    assert!(e.contains("empty.onnx") && e.contains("not an ONNX model"), "{e}");
    let text = dir.path().join("notes.onnx");
    std::fs::write(&text, b"this is not a protobuf at all, just some text\n").unwrap();
    let e = Model::load(&text, None).unwrap_err().to_string();
    assert!(e.contains("notes.onnx") && e.contains("not an ONNX model"), "{e}");
    // An image renamed to .onnx.
    let img = dir.path().join("photo.onnx");
    std::fs::copy(root().join("datasets/shapes/images/val/val_0000.jpg"), &img).unwrap();
    let e = Model::load(&img, None).unwrap_err().to_string();
    assert!(e.contains("photo.onnx") && e.contains("not an ONNX model"), "{e}");
}

#[test]
fn fixture_model_metadata() {
    let m = Model::load(&root().join("models/shapes-yolov8n.onnx"), None).unwrap();
    assert_eq!(m.meta().names, vec!["circle", "square", "triangle", "star", "hexagon", "cross"]);
    assert_eq!(m.meta().stride, Some(32));
    assert_eq!(m.fixed_size(), Some((320, 320)));
    assert_eq!(m.precision(), Precision::F32);
    assert_eq!(m.head(), Head::Raw { num_classes: 6 });
}

/// The image's fields are public: a buffer that does not match its size is an error from
/// `detect`, not an index out of bounds.
#[test]
fn inconsistent_images_are_errors_not_panics() {
    let det =
        qdet::Detector::load(&root().join("models/shapes-yolov8n.onnx"), None, qdet::NmsOptions::default()).unwrap();
    let short = qdet::RgbImage { width: 4, height: 4, data: vec![0; 47] };
    let e = det.detect(&short).unwrap_err().to_string();
    assert!(e.contains("an RGB image of 4 x 4 pixels needs 48 bytes, not 47"), "{e}");
    // The step-by-step API checks too: `prepare` is where the letterbox reads the buffer.
    let e = det.prepare(&short).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("needs 48 bytes, not 47"), "{e}");
    assert!(det.detect(&qdet::RgbImage { width: 0, height: 3, data: Vec::new() }).is_err());
    let e = qdet::RgbImage::new(usize::MAX, 3, Vec::new()).unwrap_err().to_string();
    assert!(e.contains("needs more than usize::MAX bytes"), "{e}");
    let ok = qdet::RgbImage::new(2, 1, vec![7; 6]).unwrap();
    assert!(det.detect(&ok).is_ok());
}
