//! The `qdet detect` binary end to end in temporary folders: outputs, bad files, refusals.

use serde_json::Value;

use crate::util::*;

#[test]
fn bad_files_are_reported_and_skipped_and_the_exit_status_says_so() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("imgs");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::copy(val("val_0000.jpg"), src.join("good.jpg")).unwrap();
    std::fs::copy(val("val_0001.jpg"), src.join("sub/good2.jpg")).unwrap();
    std::fs::write(src.join("zero.jpg"), b"").unwrap();
    let jpg = std::fs::read(val("val_0002.jpg")).unwrap();
    std::fs::write(src.join("truncated.jpg"), &jpg[..jpg.len() / 2]).unwrap();
    std::fs::write(src.join("notes.png"), b"just some text, not an image").unwrap();
    let png = std::fs::read(root().join("tests/data/odd/rgba.png")).unwrap();
    std::fs::write(src.join("cut.png"), &png[..png.len() / 3]).unwrap();

    let out = d.path().join("out");
    let o = qdet(&["detect", "--model", &model(), "imgs", "--out", "out", "--save-txt", "--json"], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["images"], 6);
    assert_eq!(summary["processed"], 2);
    assert_eq!(summary["failed"], 4);
    let err = stderr(&o);
    for (name, why) in
        [("zero.jpg", "empty"), ("truncated.jpg", "truncated"), ("notes.png", "not a supported image"), ("cut.png", "")]
    {
        let line = err.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} not reported:\n{err}"));
        assert!(line.contains(why), "{line}");
    }
    // The good images got their outputs, mirrored under OUT.
    assert!(out.join("good.json").is_file());
    assert!(out.join("sub/good2.json").is_file());
    assert!(out.join("labels/sub/good2.txt").is_file());
    assert!(!out.join("zero.json").exists());
}

#[test]
fn labelme_json_points_at_the_image_and_agrees_with_the_yolo_labels() {
    let d = tempfile::tempdir().unwrap();
    let o = qdet(
        &[
            "detect",
            "--model",
            &model(),
            val("val_0003.jpg").to_str().unwrap(),
            "--out",
            "o",
            "--save-txt",
            "--save-conf",
            "--save-img",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_slice(&std::fs::read(d.path().join("o/val_0003.json")).unwrap()).unwrap();
    // labelme resolves imagePath against the JSON's folder.
    let img = d.path().join("o").join(j["imagePath"].as_str().unwrap());
    assert_eq!(std::fs::canonicalize(img).unwrap(), std::fs::canonicalize(val("val_0003.jpg")).unwrap());
    assert_eq!(j["imageData"], Value::Null);
    let (w, h) = (j["imageWidth"].as_f64().unwrap(), j["imageHeight"].as_f64().unwrap());
    let shapes = j["shapes"].as_array().unwrap();
    assert!(!shapes.is_empty());
    let txt = std::fs::read_to_string(d.path().join("o/labels/val_0003.txt")).unwrap();
    let lines: Vec<Vec<f64>> = txt.lines().map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(lines.len(), shapes.len());
    let names = ["circle", "square", "triangle", "star", "hexagon", "cross"];
    for (s, l) in shapes.iter().zip(&lines) {
        assert_eq!(s["label"], names[l[0] as usize]);
        assert_eq!(s["shape_type"], "rectangle");
        let p = s["points"].as_array().unwrap();
        let (x1, y1) = (p[0][0].as_f64().unwrap(), p[0][1].as_f64().unwrap());
        let (x2, y2) = (p[1][0].as_f64().unwrap(), p[1][1].as_f64().unwrap());
        assert!((l[1] - (x1 + x2) / 2.0 / w).abs() < 1e-5 && (l[3] - (x2 - x1) / w).abs() < 1e-5);
        assert!((l[2] - (y1 + y2) / 2.0 / h).abs() < 1e-5 && (l[4] - (y2 - y1) / h).abs() < 1e-5);
        assert!((l[5] - s["score"].as_f64().unwrap()).abs() < 1e-5);
    }
    let drawn = image::open(d.path().join("o/val_0003.jpg")).unwrap();
    assert_eq!((drawn.width() as f64, drawn.height() as f64), (w, h));
}

#[test]
fn beside_mode_never_overwrites_an_existing_annotation_unless_asked() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(val("val_0004.jpg"), d.path().join("a.jpg")).unwrap();
    std::fs::copy(val("val_0005.jpg"), d.path().join("b.jpg")).unwrap();
    let mine = b"{\"hand\": \"made\"}";
    std::fs::write(d.path().join("a.json"), mine).unwrap();
    let o = qdet(&["detect", "--model", &model(), ".", "--beside"], d.path());
    // a.json is a's only output: a counts as done and is not run; nothing failed.
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 images: 1 processed, 1 already done, 0 failed"), "{}", stderr(&o));
    assert!(stderr(&o).contains("labelme JSON beside each image"), "{}", stderr(&o));
    assert_eq!(std::fs::read(d.path().join("a.json")).unwrap(), mine);
    let b: Value = serde_json::from_slice(&std::fs::read(d.path().join("b.json")).unwrap()).unwrap();
    assert_eq!(b["imagePath"], "b.jpg");
    let o = qdet(&["detect", "--model", &model(), ".", "--beside", "--overwrite"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let a: Value = serde_json::from_slice(&std::fs::read(d.path().join("a.json")).unwrap()).unwrap();
    assert_eq!(a["imagePath"], "a.jpg");
}

#[test]
fn unwritable_output_fails_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("file"), b"x").unwrap();
    // A folder cannot be created below a regular file, whoever runs the test (root included).
    let o =
        qdet(&["detect", "--model", &model(), val("val_0000.jpg").to_str().unwrap(), "--out", "file/out"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("file/out"), "{}", stderr(&o));
}

#[test]
fn default_output_folder_increments_like_ultralytics() {
    let d = tempfile::tempdir().unwrap();
    let img = val("val_0000.jpg");
    for _ in 0..2 {
        let o = qdet(&["detect", "--model", &model(), img.to_str().unwrap()], d.path());
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(d.path().join("runs/detect/predict/val_0000.json").is_file());
    assert!(d.path().join("runs/detect/predict2/val_0000.json").is_file());
}

#[test]
fn model_errors_exit_1_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let seg = root().join("tests/data/models/segment.onnx");
    let o = qdet(&["detect", "--model", seg.to_str().unwrap(), val("val_0000.jpg").to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("segment.onnx") && stderr(&o).contains("segment"), "{}", stderr(&o));
}

#[test]
fn model_without_metadata_labels_by_id_or_by_names_file() {
    use prost::Message;
    let d = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(root().join("models/shapes-yolov8n.onnx")).unwrap();
    let mut proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    assert!(!proto.metadata_props.is_empty());
    proto.metadata_props.clear();
    std::fs::write(d.path().join("bare.onnx"), proto.encode_to_vec()).unwrap();
    let img = val("val_0000.jpg");
    let labels = |out: &str| -> Vec<String> {
        let j: Value =
            serde_json::from_slice(&std::fs::read(d.path().join(out).join("val_0000.json")).unwrap()).unwrap();
        j["shapes"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap().to_string()).collect()
    };
    let o = qdet(&["detect", "--model", "bare.onnx", img.to_str().unwrap(), "--out", "ids"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let ids = labels("ids");
    assert!(!ids.is_empty() && ids.iter().all(|l| l.parse::<usize>().is_ok()), "{ids:?}");
    let yaml = root().join("datasets/shapes/data.yaml");
    let o = qdet(
        &["detect", "--model", "bare.onnx", img.to_str().unwrap(), "--out", "named", "--names", yaml.to_str().unwrap()],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let names = ["circle", "square", "triangle", "star", "hexagon", "cross"];
    let want: Vec<String> = ids.iter().map(|i| names[i.parse::<usize>().unwrap()].to_string()).collect();
    assert_eq!(labels("named"), want);
}

/// Rerunning into the same folder (after an interruption, or by habit) runs nothing that is
/// done: every image whose outputs all exist is counted as already done, before decoding,
/// its files untouched, and the run succeeds; `--overwrite` runs them all again.
#[test]
fn a_rerun_into_the_same_folder_skips_what_is_done_before_inference() {
    let d = tempfile::tempdir().unwrap();
    for name in ["val_0001.jpg", "val_0002.jpg", "val_0003.jpg"] {
        std::fs::copy(val(name), d.path().join(name)).unwrap();
    }
    let args = ["detect", "--model", &model(), ".", "--out", "o", "--save-txt", "--json"];
    let first = qdet(&args, d.path());
    assert!(first.status.success(), "{}", stderr(&first));
    std::fs::remove_file(d.path().join("o/labels/val_0002.txt")).unwrap();
    let before = std::fs::metadata(d.path().join("o/val_0001.json")).unwrap().modified().unwrap();
    let again = qdet(&args, d.path());
    assert!(again.status.success(), "{}", stderr(&again));
    let s: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (s["processed"].as_u64(), s["already_done"].as_u64(), s["kept"].as_u64(), s["failed"].as_u64()),
        (Some(1), Some(2), Some(1), Some(0))
    );
    assert!(d.path().join("o/labels/val_0002.txt").is_file());
    assert_eq!(std::fs::metadata(d.path().join("o/val_0001.json")).unwrap().modified().unwrap(), before);
    let forced: Vec<&str> = args.iter().copied().chain(["--overwrite"]).collect();
    let s: Value = serde_json::from_slice(&qdet(&forced, d.path()).stdout).unwrap();
    assert_eq!((s["processed"].as_u64(), s["already_done"].as_u64()), (Some(3), Some(0)));
}

/// `--no-json` with no other output writes nothing, and the summary says so instead of
/// naming a folder that was never made.
#[test]
fn no_json_alone_says_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(val("val_0001.jpg"), d.path().join("a.jpg")).unwrap();
    let o = qdet(&["detect", "--model", &model(), "a.jpg", "--out", "o", "--no-json"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 images: 1 processed, 0 failed"), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing written (--no-json without --save-txt or --save-img)"), "{}", stderr(&o));
    assert!(!d.path().join("o").exists());
}

/// `photo.jpg` and `photo.png` in one folder (an export beside its original) used to stop
/// the run; now the second's outputs carry its whole name, and each JSON points at its image.
#[test]
fn images_with_one_stem_in_a_folder_get_outputs_of_their_own() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("imgs")).unwrap();
    std::fs::copy(val("val_0001.jpg"), d.path().join("imgs/photo.jpg")).unwrap();
    image::open(val("val_0002.jpg")).unwrap().save(d.path().join("imgs/photo.png")).unwrap();
    let o = qdet(&["detect", "--model", &model(), "imgs", "--out", "o", "--save-txt", "--save-img"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    for (json, image) in [("o/photo.json", "photo.jpg"), ("o/photo.png.json", "photo.png")] {
        let v: Value = serde_json::from_slice(&std::fs::read(d.path().join(json)).unwrap()).unwrap();
        assert_eq!(v["imagePath"], format!("../imgs/{image}"), "{json}");
    }
    for f in ["o/labels/photo.txt", "o/labels/photo.png.txt", "o/photo.jpg", "o/photo.png.png"] {
        assert!(d.path().join(f).is_file(), "{f}");
    }
}

/// `--classes` by name (as Ultralytics users think of them) or id, checked against the
/// model: an unknown name or an id past the model's classes is an error naming what exists;
/// a `--names` file shorter than the model's class list is refused.
#[test]
fn classes_are_taken_by_name_or_id_and_checked() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(val("val_0001.jpg"), d.path().join("a.jpg")).unwrap();
    let m = model();
    let run = |extra: &[&str]| {
        let mut args = vec!["detect", "--model", &m, "a.jpg", "--out", "o", "--overwrite", "--json"];
        args.extend_from_slice(extra);
        qdet(&args, d.path())
    };
    let per_class = |o: &std::process::Output| -> Value {
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["per_class"].clone()
    };
    let all = per_class(&run(&[]));
    let by_name = run(&["--classes", "square,Triangle"]);
    assert!(by_name.status.success(), "{}", stderr(&by_name));
    let by_id = run(&["--classes", "1,2"]);
    assert_eq!(per_class(&by_name), per_class(&by_id));
    let kept = per_class(&by_id);
    assert!(kept.as_object().unwrap().keys().all(|k| k == "square" || k == "triangle"), "{kept}");
    assert_eq!(kept.get("square"), all.get("square"));
    let o = run(&["--classes", "dog"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("no class named 'dog'; the model's classes are circle, square, triangle, star, hexagon, cross"),
        "{}",
        stderr(&o)
    );
    let o = run(&["--classes", "0,6"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("class id 6 is out of range: the model has 6 classes (0-5)"), "{}", stderr(&o));
    std::fs::write(d.path().join("names.txt"), "a\nb\nc\n").unwrap();
    let o = run(&["--names", "names.txt"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("names.txt: 3 names for the model's 6 classes"), "{}", stderr(&o));
}

/// `--imgsz` on a static export cannot change its size; qdet says so instead of ignoring it.
#[test]
fn imgsz_on_a_static_model_is_a_notice() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(val("val_0001.jpg"), d.path().join("a.jpg")).unwrap();
    let o = qdet(&["detect", "--model", &model(), "a.jpg", "--out", "o", "--imgsz", "640"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--imgsz 640,640 does not apply: the model's input is fixed at 320x320"),
        "{}",
        stderr(&o)
    );
    let o = qdet(&["detect", "--model", &model(), "a.jpg", "--out", "o2", "--imgsz", "320"], d.path());
    assert!(!stderr(&o).contains("does not apply"), "{}", stderr(&o));
}

/// An output folder inside the source folder, under any name: its annotated images are never
/// the next run's inputs (each output folder carries a `.qdet-output` marker).
#[test]
fn output_folders_are_never_walked_as_input() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("imgs")).unwrap();
    std::fs::copy(val("val_0001.jpg"), d.path().join("imgs/a.jpg")).unwrap();
    let run =
        |out: &str| qdet(&["detect", "--model", &model(), "imgs", "--out", out, "--save-img", "--json"], d.path());
    assert_eq!(summary(&run("imgs/first"))["images"], 1);
    assert!(d.path().join("imgs/first/.qdet-output").is_file() && d.path().join("imgs/first/a.jpg").is_file());
    // A second run under another name sees one image, not first/a.jpg as well.
    assert_eq!(summary(&run("imgs/second"))["images"], 1);
}

/// Up to 10 images (or with --verbose), a line per image as Ultralytics prints it: the
/// image, its size and the detections per class; over 10 only with --verbose.
#[test]
fn small_runs_print_a_line_per_image() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(val("val_0001.jpg"), d.path().join("a.jpg")).unwrap();
    let o = qdet(&["detect", "--model", &model(), "a.jpg", "--out", "o", "--json"], d.path());
    let per_class = summary(&o)["per_class"].clone();
    let line = stderr(&o).lines().find(|l| l.starts_with("image 1/1 a.jpg: ")).map(String::from);
    let line = line.unwrap_or_else(|| panic!("{}", stderr(&o)));
    let (w, h) = image::image_dimensions(d.path().join("a.jpg")).unwrap();
    let mut want: Vec<String> = Vec::new();
    for name in ["circle", "square", "triangle", "star", "hexagon", "cross"] {
        if let Some(n) = per_class.get(name).and_then(|v| v.as_u64()) {
            want.push(format!("{n} {name}{}", if n > 1 { "s" } else { "" }));
        }
    }
    assert_eq!(line, format!("image 1/1 a.jpg: {w}x{h} {}", want.join(", ")));
    let many: Vec<String> = (0..11).map(|i| format!("val_{i:04}.jpg")).collect();
    for f in &many {
        std::fs::copy(val(f), d.path().join(f)).unwrap();
    }
    let mut args = vec!["detect".to_string(), "--model".into(), model(), "--out".into(), "o2".into()];
    args.extend(many.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(!stderr(&qdet(&refs, d.path())).contains("image 1/11"));
    let mut refs = refs.clone();
    refs.extend(["--verbose", "--overwrite"]);
    assert!(stderr(&qdet(&refs, d.path())).contains("image 11/11 "));
}
