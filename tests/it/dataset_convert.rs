//! `qdet convert` end to end on hand-written labelme, VOC and YOLO fixtures
//! (tests/data/dataset/); every expected line below is computed by hand in its comment.

use crate::util::*;

#[test]
fn labelme_to_yolo_collects_sorted_classes_and_reports_what_it_leaves_out() {
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("labelme");
    let o = qdet(
        &["convert", "--from", "labelme", "--to", "yolo", src.to_str().unwrap(), "--out", "out", "--json"],
        d.path(),
    );
    // The point shape cannot become a YOLO box: lost, so the status says so.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = d.path().join("out");
    assert_eq!(tree(&out), vec!["a.b.c.txt", "classes.txt", "data.yaml", "sub/rot.txt"]);
    // Classes collected and sorted: bird 0, cat 1, dog 2 ("nose" is a point, not a box).
    assert_eq!(read(&out.join("classes.txt")), "bird\ncat\ndog\n");
    assert_eq!(yaml_names(&out.join("data.yaml")), vec!["bird", "cat", "dog"]);
    // 40 x 30 image. cat (4,3)-(14,13): cx 9/40, cy 8/30, w 10/40, h 10/30.
    // dog given as (30,25),(20,5): (20,5)-(30,25): cx 25/40, cy 15/30, w 10/40, h 20/30.
    // cat polygon, bounding box (22,16)-(36,28): cx 29/40, cy 22/30, w 14/40, h 12/30.
    // dog (-6,20)-(8,34) clipped to (0,20)-(8,30): cx 4/40, cy 25/30, w 8/40, h 10/30.
    assert_eq!(
        read(&out.join("a.b.c.txt")),
        "1 0.225 0.266667 0.25 0.333333\n\
         2 0.625 0.5 0.25 0.666667\n\
         1 0.725 0.733333 0.35 0.4\n\
         2 0.1 0.833333 0.2 0.333333\n"
    );
    // 16 x 24 (the EXIF-rotated size labelme saw). bird (2,4)-(10,20): cx 6/16, cy 12/24, w 8/16, h 16/24.
    assert_eq!(read(&out.join("sub/rot.txt")), "0 0.375 0.5 0.5 0.666667\n");
    let s = summary(&o);
    assert_eq!((s["read"].as_u64(), s["written"].as_u64()), (Some(2), Some(4)));
    let reasons = |key: &str| -> Vec<String> {
        s[key].as_array().unwrap().iter().map(|p| p["reason"].as_str().unwrap().to_string()).collect()
    };
    let (dropped, excluded) = (reasons("dropped"), reasons("excluded"));
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(dropped[0].starts_with("shapes[3] (\"nose\"): point shapes have no box"), "{dropped:?}");
    // An ignore region is not an object: left out by rule, not a failure.
    assert_eq!(excluded.len(), 1, "{excluded:?}");
    assert!(excluded[0].starts_with("shapes[4] (\"__ignore__\"): labelme ignore region"), "{excluded:?}");

    // --rectangles-only leaves the polygon out, and says so (the point is still lost).
    let o = qdet(
        &["convert", "--from", "labelme", "--to", "yolo", src.to_str().unwrap(), "--out", "rects", "--rectangles-only"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(read(&d.path().join("rects/a.b.c.txt")).lines().count(), 3);
    let err = stderr(&o);
    let asked = err.split("shapes left out as asked:").nth(1).unwrap_or_default();
    assert!(asked.contains("shapes[2] (\"cat\"): polygon left out (--rectangles-only)"), "{err}");
    assert!(err.contains("1 shapes lost, 2 left out as asked"), "{err}");
}

#[test]
fn a_label_no_class_list_can_hold_is_lost_and_the_status_says_so() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let shape =
        |label: &str| serde_json::json!({"label": label, "points": [[1, 2], [5, 6]], "shape_type": "rectangle"});
    let file = serde_json::json!({
        "version": "5.5.0", "flags": {}, "imagePath": "a.png", "imageData": null,
        "imageWidth": 10, "imageHeight": 10,
        "shapes": [shape("cat"), shape("two\nlines"), shape(" ")],
    });
    std::fs::write(src.join("a.json"), file.to_string()).unwrap();
    let o = qdet(&["convert", "--from", "labelme", "--to", "yolo", "src", "--out", "out", "--json"], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // cat (1,2)-(5,6) on 10 x 10: cx 0.3, cy 0.4, w 0.4, h 0.4.
    assert_eq!(read(&d.path().join("out/a.txt")), "0 0.3 0.4 0.4 0.4\n");
    assert_eq!(read(&d.path().join("out/classes.txt")), "cat\n");
    let s = summary(&o);
    let dropped: Vec<&str> = s["dropped"].as_array().unwrap().iter().map(|p| p["reason"].as_str().unwrap()).collect();
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert!(dropped.iter().any(|r| r.contains("has a label with a line break")), "{dropped:?}");
    assert!(dropped.iter().any(|r| r.contains("has an empty label")), "{dropped:?}");
}

#[test]
fn unknown_labels_stop_the_run_before_anything_is_written_unless_skipped() {
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("labelme");
    let labels = fixtures().join("labels.txt"); // __ignore__, _background_, cat, dog
    let args = [
        "convert",
        "--from",
        "labelme",
        "--to",
        "yolo",
        src.to_str().unwrap(),
        "--out",
        "out",
        "--classes",
        labels.to_str().unwrap(),
    ];
    let o = qdet(&args, d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("1 label is not in the class list")
            && err.contains("\"bird\" (1 box, first in")
            && err.contains("rot.json"),
        "{err}"
    );
    assert!(!d.path().join("out").exists() || tree(&d.path().join("out")).is_empty());

    let mut args = args.to_vec();
    args.extend(["--skip-unknown", "--json"]);
    let o = qdet(&args, d.path());
    // 2 for the point shape; the skipped bird alone would not make it 2.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // cat and dog keep the ids of the given list: cat 0, dog 1 (the reserved names are not classes).
    assert!(read(&d.path().join("out/a.b.c.txt")).starts_with("0 0.225 0.266667 0.25 0.333333\n1 0.625"));
    assert_eq!(read(&d.path().join("out/sub/rot.txt")), "");
    let s = summary(&o);
    let skipped_bird = s["excluded"].as_array().unwrap().iter().any(|p| {
        p["path"].as_str().unwrap().ends_with("sub/rot.json")
            && p["reason"].as_str().unwrap().contains("bird is not in")
    });
    assert!(skipped_bird, "{s}");
    assert_eq!(read(&d.path().join("out/classes.txt")), "cat\ndog\n");
}

#[test]
fn labelme_to_yolo_to_labelme_round_trip_keeps_boxes_within_1e_6_of_the_image_size() {
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    copy_tree(&fixtures().join("labelme"), &ds);
    // Labels beside the images (same-folder layout), then back to labelme elsewhere.
    let o = qdet(&["convert", "--from", "labelme", "--to", "yolo", "ds", "--out", "ds"], d.path());
    // 2: the point shape has no box.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = qdet(&["convert", "--from", "yolo", "--to", "labelme", "ds", "--out", "back"], d.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (name, w, h) in [("a.b.c", 40.0, 30.0), ("sub/rot", 16.0, 24.0)] {
        let orig = json(&ds.join(format!("{name}.json")));
        let back = json(&d.path().join(format!("back/{name}.json")));
        assert_eq!((back["imageWidth"].as_f64(), back["imageHeight"].as_f64()), (Some(w), Some(h)));
        assert_eq!(back["imageData"], serde_json::Value::Null);
        // imagePath is relative to the JSON and names the image.
        let dir = d.path().join("back").join(name).parent().unwrap().to_path_buf();
        let image = dir.join(back["imagePath"].as_str().unwrap());
        let want_image = ds.join(name).parent().unwrap().join(orig["imagePath"].as_str().unwrap());
        assert_eq!(image.canonicalize().unwrap(), want_image.canonicalize().unwrap());
        // What the YOLO file can hold: boxes (polygons as their box), clipped to the image.
        let want: Vec<(String, [f64; 4])> = orig["shapes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["shape_type"] != "point" && s["label"] != "__ignore__")
            .map(|s| {
                let pts: Vec<[f64; 2]> = s["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()])
                    .collect();
                let b = [
                    pts.iter().map(|p| p[0]).fold(f64::MAX, f64::min).clamp(0.0, w),
                    pts.iter().map(|p| p[1]).fold(f64::MAX, f64::min).clamp(0.0, h),
                    pts.iter().map(|p| p[0]).fold(f64::MIN, f64::max).clamp(0.0, w),
                    pts.iter().map(|p| p[1]).fold(f64::MIN, f64::max).clamp(0.0, h),
                ];
                (s["label"].as_str().unwrap().to_string(), b)
            })
            .collect();
        let got = rects(&back);
        assert_eq!(got.len(), want.len(), "{name}");
        for ((gl, g), (wl, wb)) in got.iter().zip(&want) {
            assert_eq!(gl, wl);
            for i in 0..4 {
                let size = if i % 2 == 0 { w } else { h };
                assert!((g[i] - wb[i]).abs() <= 1e-6 * size, "{name} {gl}: {g:?} vs {wb:?}");
            }
        }
    }
}

#[test]
fn yolo_to_labelme_reads_sizes_from_images_and_keeps_confidences() {
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("yolo");
    let o = qdet(
        &["convert", "--from", "yolo", "--to", "labelme", src.to_str().unwrap(), "--out", "out", "--json"],
        d.path(),
    );
    // labels/train/orphan.txt has no image: reported, the rest converted.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["skipped"].as_array().unwrap().len(), 1);
    let reason = s["skipped"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("no image named orphan.*") && reason.contains("images/train/"), "{reason}");
    let f = json(&d.path().join("out/labels/train/y.1.json"));
    // 40 x 20 image; classes.txt found in SRC: 0 cat, 1 dog.
    // cat 0.5 0.5 0.5 0.5 -> (10,5)-(30,15), confidence 0.91; dog 0.25 0.25 0.1 0.2 -> (8,3)-(12,7).
    assert_eq!(
        rects(&f),
        vec![("cat".to_string(), [10.0, 5.0, 30.0, 15.0]), ("dog".to_string(), [8.0, 3.0, 12.0, 7.0])]
    );
    assert_eq!(f["shapes"][0]["score"].as_f64(), Some(0.91));
    assert!(f["shapes"][1].get("score").is_none());
    assert_eq!((f["imageWidth"].as_u64(), f["imageHeight"].as_u64()), (Some(40), Some(20)));
    let image = d.path().join("out/labels/train").join(f["imagePath"].as_str().unwrap());
    assert_eq!(image.canonicalize().unwrap(), src.join("images/train/y.1.png").canonicalize().unwrap());

    // An EXIF-rotated JPEG (stored 24 x 16, orientation 6): sizes are the upright 16 x 24.
    let ds = d.path().join("rot");
    std::fs::create_dir_all(&ds).unwrap();
    std::fs::copy(fixtures().join("labelme/sub/rot.jpg"), ds.join("rot.jpg")).unwrap();
    std::fs::write(ds.join("rot.txt"), "0 0.5 0.5 0.5 0.5\n0 0.33 0.41 0.17 0.23\n").unwrap();
    std::fs::write(ds.join("classes.txt"), "bird\n").unwrap();
    let o = qdet(&["convert", "--from", "yolo", "--to", "labelme", "rot", "--out", "rot_out"], d.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let f = json(&d.path().join("rot_out/rot.json"));
    assert_eq!((f["imageWidth"].as_u64(), f["imageHeight"].as_u64()), (Some(16), Some(24)));
    // 0.33 0.41 0.17 0.23 on 16 x 24: x (0.33 -+ 0.085) * 16 = 3.92, 6.64; y (0.41 -+ 0.115) * 24
    // = 7.08, 12.6. In f64 they come out as 6.640000000000001 and 12.600000000000001: the
    // file holds the decimals, not that noise.
    assert_eq!(
        rects(&f),
        vec![("bird".to_string(), [4.0, 6.0, 12.0, 18.0]), ("bird".to_string(), [3.92, 7.08, 6.64, 12.6])]
    );
    let text = read(&d.path().join("rot_out/rot.json"));
    assert!(text.contains("6.64") && !text.contains("6.640000000000001"), "{text}");
}

#[test]
fn voc_to_yolo_skips_difficult_reads_missing_sizes_and_clips() {
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("voc/Annotations");
    let o =
        qdet(&["convert", "--from", "voc", "--to", "yolo", src.to_str().unwrap(), "--out", "out", "--json"], d.path());
    // 2: the bird lies outside its image, a broken annotation.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = d.path().join("out");
    // Kept objects' labels, sorted: bird 0, cat 1, person 2 (the difficult dog is left out).
    assert_eq!(read(&out.join("classes.txt")), "bird\ncat\nperson\n");
    // v1, 40 x 30. person (<difficult/>): (5,6)-(25,20): cx 15/40, cy 13/30, w 20/40, h 14/30.
    // cat (30,20)-(45,35) clipped to (30,20)-(40,30): cx 35/40, cy 25/30, w 10/40, h 10/30.
    // bird (50,40)-(60,50) is outside the image: left out.
    assert_eq!(read(&out.join("v1.txt")), "2 0.375 0.433333 0.5 0.466667\n1 0.875 0.833333 0.25 0.333333\n");
    // v2 has no <size>: 20 x 10 from JPEGImages/v2.png. cat (2,2)-(12,8): cx 7/20, cy 5/10, w 10/20, h 6/10.
    assert_eq!(read(&out.join("v2.txt")), "1 0.35 0.5 0.5 0.6\n");
    let s = summary(&o);
    let lines = |key: &str| -> Vec<(u64, String)> {
        s[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["line"].as_u64().unwrap(), p["reason"].as_str().unwrap().to_string()))
            .collect()
    };
    let (excluded, dropped) = (lines("excluded"), lines("dropped"));
    assert_eq!(excluded.len(), 1, "{excluded:?}");
    assert_eq!(excluded[0].0, 22);
    assert!(excluded[0].1.contains("\"dog\" is difficult"), "{excluded:?}");
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].0, 43);
    assert!(dropped[0].1.contains("lies outside the 40x30 image"), "{dropped:?}");

    let o = qdet(
        &["convert", "--from", "voc", "--to", "yolo", src.to_str().unwrap(), "--out", "all", "--keep-difficult"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // bird 0, cat 1, dog 2, person 3. dog (1,1)-(10,10): cx 5.5/40, cy 5.5/30, w 9/40, h 9/30.
    assert_eq!(
        read(&d.path().join("all/v1.txt")),
        "3 0.375 0.433333 0.5 0.466667\n2 0.1375 0.183333 0.225 0.3\n1 0.875 0.833333 0.25 0.333333\n"
    );
}

#[test]
fn voc_to_labelme_points_at_the_jpegimages() {
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("voc/Annotations");
    let o = qdet(&["convert", "--from", "voc", "--to", "labelme", src.to_str().unwrap(), "--out", "out"], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let f = json(&d.path().join("out/v2.json"));
    assert_eq!(rects(&f), vec![("cat".to_string(), [2.0, 2.0, 12.0, 8.0])]);
    assert_eq!((f["imageWidth"].as_u64(), f["imageHeight"].as_u64()), (Some(20), Some(10)));
    let image = d.path().join("out").join(f["imagePath"].as_str().unwrap());
    assert_eq!(image.canonicalize().unwrap(), fixtures().join("voc/JPEGImages/v2.png").canonicalize().unwrap());
    let f = json(&d.path().join("out/v1.json"));
    assert_eq!(rects(&f)[1], ("cat".to_string(), [30.0, 20.0, 40.0, 30.0]));
}

#[test]
fn malformed_files_are_named_with_their_line_and_the_rest_is_converted() {
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("malformed");
    let labels = fixtures().join("labels.txt");
    for (from, good, bad) in [
        (
            "labelme",
            "good.txt",
            vec![
                ("broken.json:3: invalid labelme JSON: EOF while parsing", ""),
                ("nosize.json:", "missing field `imageHeight`"),
            ],
        ),
        (
            "voc",
            "good.txt",
            vec![
                ("bad.xml: line 7: <xmin> is not a number: \"abc\"", ""),
                ("unclosed.xml: line 5: invalid XML", "not 'annotation' at 5:1"),
            ],
        ),
        ("yolo", "good.json", vec![("bad.txt: line 2: 4 values; expected `class cx cy w h`", "")]),
    ] {
        let to = if from == "yolo" { "labelme" } else { "yolo" };
        let out = format!("out_{from}");
        let o = qdet(
            &[
                "convert",
                "--from",
                from,
                "--to",
                to,
                src.to_str().unwrap(),
                "--out",
                &out,
                "--classes",
                labels.to_str().unwrap(),
            ],
            d.path(),
        );
        assert_eq!(o.status.code(), Some(2), "{from}: {}", stderr(&o));
        let err = stderr(&o);
        for (a, b) in &bad {
            assert!(err.lines().any(|l| l.contains(a) && l.contains(b)), "{from}: want {a:?} {b:?} in:\n{err}");
        }
        assert!(d.path().join(&out).join(good).is_file(), "{from}: {:?}", tree(&d.path().join(&out)));
        let outputs = tree(&d.path().join(&out));
        assert!(
            !outputs.iter().any(|f| f.starts_with("bad") || f.starts_with("broken") || f.starts_with("unclosed")),
            "{outputs:?}"
        );
    }
}

#[test]
fn existing_outputs_are_kept_unless_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let src = fixtures().join("labelme");
    let args = ["convert", "--from", "labelme", "--to", "yolo", src.to_str().unwrap(), "--out", "out"];
    // 2 on every run: the fixture's point shape has no box.
    assert_eq!(qdet(&args, d.path()).status.code(), Some(2));
    let mine = d.path().join("out/a.b.c.txt");
    std::fs::write(&mine, "my own edits\n").unwrap();
    let o = qdet(&args, d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("a.b.c.txt: already exists (pass --overwrite to replace it)"), "{}", stderr(&o));
    assert_eq!(read(&mine), "my own edits\n");
    let mut args = args.to_vec();
    args.push("--overwrite");
    let o = qdet(&args, d.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(read(&mine).starts_with("1 0.225"));
    // No temporary file is left behind.
    assert!(tree(&d.path().join("out")).iter().all(|f| !f.contains(".tmp")));
}
