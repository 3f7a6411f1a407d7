//! Hostile and broken inputs, crafted here (no big files committed): each ends in a named,
//! bounded outcome, either skipped with the file and the reason while the rest of the run is
//! done, or refused with a clear message before any work. Nothing aborts, hangs or allocates
//! what a file merely claims.

use std::process::Command;

use crate::util::*;

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A 154-byte BMP whose header claims 60000 x 60000 pixels (10.8 GB decoded).
fn bmp_bomb() -> Vec<u8> {
    let mut b = b"BM".to_vec();
    b.extend(154u32.to_le_bytes());
    b.extend([0; 4]);
    b.extend(54u32.to_le_bytes());
    b.extend(40u32.to_le_bytes());
    b.extend(60000i32.to_le_bytes());
    b.extend(60000i32.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(24u16.to_le_bytes());
    b.extend([0; 24]);
    b.extend([0x7f; 100]);
    b
}

/// A PNG whose IHDR claims 60000 x 60000 RGB, with a valid (tiny) IDAT and IEND.
pub(crate) fn png_bomb() -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let body: Vec<u8> = kind.iter().chain(data).copied().collect();
        c.extend(&body);
        c.extend(crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = 60000u32.to_be_bytes().to_vec();
    ihdr.extend(60000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut p = b"\x89PNG\r\n\x1a\n".to_vec();
    p.extend(chunk(b"IHDR", &ihdr));
    // zlib stream of one empty stored block.
    p.extend(chunk(b"IDAT", &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01]));
    p.extend(chunk(b"IEND", &[]));
    p
}

/// A real JPEG whose frame header is patched to claim 60000 x 60000.
fn jpeg_claiming_huge() -> Vec<u8> {
    let mut j = std::fs::read(val("val_0003.jpg")).unwrap();
    let sof =
        (0..j.len() - 1).find(|&i| j[i] == 0xFF && (j[i + 1] == 0xC0 || j[i + 1] == 0xC2)).expect("a frame header");
    j[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
    j
}

#[test]
fn images_claiming_huge_sizes_are_skipped_from_their_header() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("imgs");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(val("val_0000.jpg"), src.join("good.jpg")).unwrap();
    std::fs::write(src.join("bomb.bmp"), bmp_bomb()).unwrap();
    std::fs::write(src.join("zbomb.png"), png_bomb()).unwrap();
    std::fs::write(src.join("huge.jpg"), jpeg_claiming_huge()).unwrap();
    let out = d.path().join("out");
    let o = qdet(
        &["detect", "--model", &model(), src.to_str().unwrap(), "--out", out.to_str().unwrap(), "--json"],
        d.path(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for name in ["bomb.bmp", "zbomb.png", "huge.jpg"] {
        let line = err.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} not reported:\n{err}"));
        assert!(line.contains("60000 x 60000 pixels, more than the limit of 100000000 (--max-pixels)"), "{line}");
    }
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["processed"], 1, "{summary}");
    assert!(out.join("good.json").is_file());
    // A lower limit refuses the good image too, by the same rule (it is 347 x 359); the
    // run itself finished, so the status is 2, as for any image that failed.
    let o = qdet(
        &[
            "--max-pixels",
            "1000",
            "detect",
            "--model",
            &model(),
            src.join("good.jpg").to_str().unwrap(),
            "--out",
            d.path().join("o2").to_str().unwrap(),
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("347 x 359 pixels, more than the limit of 1000"), "{}", stderr(&o));
}

/// `--max-pixels` bounds memory: a 16-bit RGBA image decodes to 8 bytes a pixel, so it may
/// have 3/8 of the pixels of an 8-bit RGB one.
#[test]
fn deep_images_count_their_decoded_bytes_against_the_pixel_limit() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    image::ImageBuffer::<image::Rgba<u16>, _>::from_pixel(100, 100, image::Rgba([9000, 30000, 500, 65535]))
        .save(src.join("deep.png"))
        .unwrap();
    image::RgbImage::from_pixel(100, 100, image::Rgb([40, 120, 2])).save(src.join("flat.png")).unwrap();
    let out = d.path().join("out");
    let o = qdet(
        &[
            "--max-pixels",
            "20000",
            "detect",
            "--model",
            &model(),
            src.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("deep.png")
            && err.contains("100 x 100 pixels of Rgba16 take 80000 bytes decoded, more than the 60000"),
        "{err}"
    );
    assert!(out.join("flat.json").is_file(), "{err}");
}

/// Nine levels of ten aliases: 10^9 strings if expanded, 437 bytes on disk.
fn yaml_bomb() -> String {
    let mut s =
        String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"]) {
        s += &format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 10].join(","));
    }
    s + "names: *i\nval: images\n"
}

#[test]
fn yaml_alias_bombs_and_absurd_class_counts_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let bomb = d.path().join("data.yaml");
    std::fs::write(&bomb, yaml_bomb()).unwrap();
    let o = qdet(&["val", "--model", &model(), "--data", bomb.to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("data.yaml") && stderr(&o).contains("alias"), "{}", stderr(&o));
    // The same file as a class list for convert.
    std::fs::create_dir_all(d.path().join("ann")).unwrap();
    std::fs::write(d.path().join("ann/a.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
    let o = qdet(
        &["convert", "--from", "yolo", "--to", "labelme", "ann", "--out", "lm", "--classes", "data.yaml"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("alias"), "{}", stderr(&o));
    // And as the data.yaml convert finds beside YOLO labels when --classes is not given.
    std::fs::copy(&bomb, d.path().join("ann/data.yaml")).unwrap();
    let o = qdet(&["convert", "--from", "yolo", "--to", "labelme", "ann", "--out", "lm"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("ann/data.yaml") && stderr(&o).contains("alias"), "{}", stderr(&o));

    let nc = d.path().join("nc.yaml");
    std::fs::write(&nc, "nc: 1000000000\nval: images\n").unwrap();
    let o = qdet(&["val", "--model", &model(), "--data", nc.to_str().unwrap()], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("'nc' is 1000000000, more than 100000 classes"), "{}", stderr(&o));
}

#[test]
fn image_sizes_out_of_range_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let dynamic = root().join("models/variants/shapes-yolov8n-dynamic.onnx");
    let img = val("val_0000.jpg");
    for (imgsz, says) in [
        ("4294967296", "larger than 4096"),
        ("16384", "larger than 4096"),
        ("33", "image size 33 is not a multiple of the model's stride 32 (try 64)"),
    ] {
        let o = qdet(
            &["detect", "--model", dynamic.to_str().unwrap(), "--imgsz", imgsz, img.to_str().unwrap(), "--out", "o"],
            d.path(),
        );
        assert_eq!(o.status.code(), Some(1), "--imgsz {imgsz}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "--imgsz {imgsz}: {}", stderr(&o));
    }
}

#[test]
fn bad_flags_exit_1_as_documented_and_help_exits_0() {
    let d = tempfile::tempdir().unwrap();
    let o = qdet(&["detect", "--bogus"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--bogus"));
    assert_eq!(qdet(&["detect", "--help"], d.path()).status.code(), Some(0));
}

#[test]
fn os_errors_are_printed_once() {
    let d = tempfile::tempdir().unwrap();
    let o = qdet(
        &["detect", "--model", d.path().to_str().unwrap(), val("val_0000.jpg").to_str().unwrap(), "--out", "o"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("not a regular file (a folder)"), "{err}");
    let missing =
        qdet(&["detect", "--model", "missing.onnx", val("val_0000.jpg").to_str().unwrap(), "--out", "o"], d.path());
    let err = stderr(&missing);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// A FIFO (or a symlink to /dev/zero) where a label file should be: reported and the image
/// left out, not a hang or an endless read.
#[cfg(unix)]
#[test]
fn special_files_as_labels_are_skipped_not_read() {
    let d = tempfile::tempdir().unwrap();
    let images = d.path().join("ds/images/val");
    let labels = d.path().join("ds/labels/val");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    for name in ["val_0000", "val_0001", "val_0002"] {
        std::fs::copy(val(&format!("{name}.jpg")), images.join(format!("{name}.jpg"))).unwrap();
    }
    std::fs::copy(root().join("datasets/shapes/labels/val/val_0000.txt"), labels.join("val_0000.txt")).unwrap();
    assert!(Command::new("mkfifo").arg(labels.join("val_0001.txt")).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", labels.join("val_0002.txt")).unwrap();
    let yaml = d.path().join("ds/data.yaml");
    std::fs::write(&yaml, "path: .\nval: images/val\nnames: [circle, square, triangle, star, hexagon, cross]\n")
        .unwrap();
    let o = qdet(&["val", "--model", &model(), "--data", yaml.to_str().unwrap()], d.path());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("val_0001.txt") && err.contains("a FIFO"), "{err}");
    assert!(err.contains("val_0002.txt") && err.contains("a device"), "{err}");
}

#[test]
fn output_folder_inside_the_source_is_not_read_back_as_input() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("imgs");
    std::fs::create_dir_all(&src).unwrap();
    for name in ["val_0000.jpg", "val_0001.jpg", "val_0002.jpg"] {
        std::fs::copy(val(name), src.join(name)).unwrap();
    }
    for run in 0..2 {
        let o = qdet(
            &["detect", "--model", &model(), "imgs", "--out", "imgs/out", "--save-img", "--overwrite", "--json"],
            d.path(),
        );
        assert!(o.status.success(), "run {run}: {}", stderr(&o));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(summary["images"], 3, "run {run}: {summary}");
    }
}

/// kill -9 between the JSON and the annotated image: a rerun keeps the JSON (reported, as
/// an existing file is) and still writes the missing image.
#[test]
fn a_rerun_completes_the_outputs_an_interrupted_run_left_missing() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(val("val_0006.jpg"), d.path().join("a.jpg")).unwrap();
    let run = || qdet(&["detect", "--model", &model(), "a.jpg", "--out", "out", "--save-img", "--save-txt"], d.path());
    assert!(run().status.success());
    let json = std::fs::read(d.path().join("out/a.json")).unwrap();
    std::fs::remove_file(d.path().join("out/a.jpg")).unwrap();
    std::fs::remove_file(d.path().join("out/labels/a.txt")).unwrap();
    let o = run();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 images: 1 processed, 0 failed"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("kept what existed: 0 images with all outputs (not run again), 1 file of"),
        "{}",
        stderr(&o)
    );
    assert!(d.path().join("out/a.jpg").is_file() && d.path().join("out/labels/a.txt").is_file());
    assert_eq!(std::fs::read(d.path().join("out/a.json")).unwrap(), json);
}

#[cfg(unix)]
#[test]
fn broken_symlinks_and_loops_among_the_images_are_skipped_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("imgs");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::copy(val("val_0000.jpg"), src.join("good.jpg")).unwrap();
    std::os::unix::fs::symlink(d.path().join("nowhere.jpg"), src.join("broken.jpg")).unwrap();
    std::os::unix::fs::symlink(&src, src.join("sub/loop")).unwrap();
    let o = qdet(&["detect", "--model", &model(), "imgs", "--out", "out", "--json"], d.path());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.jpg: a broken symlink"), "{err}");
    assert!(err.contains("loop: a symlink loop back to"), "{err}");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((summary["processed"].as_u64(), summary["failed"].as_u64()), (Some(1), Some(2)), "{summary}");
}

fn labelme_json(image: &str, labels: &[&str]) -> String {
    let shapes: Vec<serde_json::Value> = labels
        .iter()
        .map(|l| serde_json::json!({"label": l, "points": [[10.0, 10.0], [50.0, 60.0]], "shape_type": "rectangle", "group_id": null, "flags": {}}))
        .collect();
    serde_json::json!({"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image, "imageData": null, "imageHeight": 100, "imageWidth": 200}).to_string()
}

/// A label with a line break would be two lines of classes.txt, shifting every later id.
#[test]
fn labels_that_cannot_be_a_class_list_line_are_left_out_and_reported() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("ann")).unwrap();
    std::fs::write(d.path().join("ann/a.json"), labelme_json("a.jpg", &["cat", "do\ng", " ", "zebra"])).unwrap();
    let o = qdet(&["convert", "--from", "labelme", "--to", "yolo", "ann", "--out", "yolo"], d.path());
    let err = stderr(&o);
    assert!(err.contains("line break") && err.contains("empty label"), "{err}");
    assert_eq!(std::fs::read_to_string(d.path().join("yolo/classes.txt")).unwrap(), "cat\nzebra\n");
    let txt = std::fs::read_to_string(d.path().join("yolo/a.txt")).unwrap();
    let ids: Vec<&str> = txt.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(ids, ["0", "1"], "{txt}");
}

/// Converting into a folder whose class list fixes another order: its list is used when it
/// holds every class, else nothing is written.
#[test]
fn converting_into_a_folder_with_another_class_list_keeps_ids_consistent() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("ann")).unwrap();
    std::fs::create_dir_all(d.path().join("yolo")).unwrap();
    std::fs::write(d.path().join("yolo/classes.txt"), "dog\ncat\n").unwrap();
    std::fs::write(d.path().join("ann/a.json"), labelme_json("a.jpg", &["cat"])).unwrap();
    let o = qdet(&["convert", "--from", "labelme", "--to", "yolo", "ann", "--out", "yolo"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(d.path().join("yolo/a.txt")).unwrap().starts_with("1 "), "cat is class 1 there");
    assert_eq!(std::fs::read_to_string(d.path().join("yolo/classes.txt")).unwrap(), "dog\ncat\n");

    std::fs::write(d.path().join("ann/b.json"), labelme_json("b.jpg", &["bird"])).unwrap();
    let o = qdet(&["convert", "--from", "labelme", "--to", "yolo", "ann", "--out", "yolo2"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(d.path().join("yolo2/classes.txt"), "dog\ncat\n").unwrap();
    std::fs::remove_file(d.path().join("yolo2/data.yaml")).unwrap();
    std::fs::remove_file(d.path().join("yolo2/a.txt")).unwrap();
    let o = qdet(&["convert", "--from", "labelme", "--to", "yolo", "ann", "--out", "yolo2"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("classes.txt: already lists 2 classes"), "{}", stderr(&o));
    assert!(!d.path().join("yolo2/a.txt").exists(), "nothing is written before the refusal");
}

/// `<filename>` can only name a file in the annotation's image folders: `/etc/passwd` is
/// looked for as `passwd` there (and not found), never opened where it points.
#[test]
fn voc_filenames_cannot_point_outside_the_dataset() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("voc/Annotations")).unwrap();
    std::fs::create_dir_all(d.path().join("voc/JPEGImages")).unwrap();
    std::fs::copy(val("val_0007.jpg"), d.path().join("voc/JPEGImages/x.jpg")).unwrap();
    let xml = "<annotation><filename>/etc/passwd</filename><size><width>10</width><height>10</height></size>\
        <object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>";
    std::fs::write(d.path().join("voc/Annotations/x.xml"), xml).unwrap();
    let o = qdet(&["convert", "--from", "voc", "--to", "labelme", "voc/Annotations", "--out", "lm"], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("x.xml: no image named passwd.* in voc/JPEGImages/"), "{}", stderr(&o));
    assert!(!d.path().join("lm/x.json").exists());
    // Named by its file name, the image is found.
    std::fs::write(d.path().join("voc/Annotations/x.xml"), xml.replace("/etc/passwd", "../../elsewhere/x.jpg"))
        .unwrap();
    let o = qdet(&["convert", "--from", "voc", "--to", "labelme", "voc/Annotations", "--out", "lm"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let lm: serde_json::Value = serde_json::from_slice(&std::fs::read(d.path().join("lm/x.json")).unwrap()).unwrap();
    assert!(lm["imagePath"].as_str().unwrap().ends_with("JPEGImages/x.jpg"), "{lm}");
}

/// Messages quote the file's own text: a class `1e20` is not "class 18446744073709551615",
/// a coordinate `1e308` not "inf" or its 309-digit expansion.
#[test]
fn out_of_range_label_values_are_reported_as_written() {
    let d = tempfile::tempdir().unwrap();
    let (images, labels) = (d.path().join("ds/images/val"), d.path().join("ds/labels/val"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    for name in ["val_0000", "val_0001"] {
        std::fs::copy(val(&format!("{name}.jpg")), images.join(format!("{name}.jpg"))).unwrap();
    }
    std::fs::write(labels.join("val_0000.txt"), "1e20 0.5 0.5 0.1 0.1\n").unwrap();
    std::fs::write(labels.join("val_0001.txt"), "0 0.5 1e308 0.1 0.1\n").unwrap();
    let yaml = d.path().join("ds/data.yaml");
    std::fs::write(&yaml, "path: .\nval: images/val\nnames: [circle, square, triangle, star, hexagon, cross]\n")
        .unwrap();
    let o = qdet(&["val", "--model", &model(), "--data", yaml.to_str().unwrap()], d.path());
    let err = stderr(&o);
    assert!(err.contains("class 1e20 is not one of the dataset's 6 classes"), "{err}");
    assert!(err.contains("\"1e308\" is out of range"), "{err}");
    // convert reads YOLO labels with its own rules, and quotes the same text.
    std::fs::write(d.path().join("classes.txt"), "a\n").unwrap();
    let o = qdet(
        &["convert", "--from", "yolo", "--to", "labelme", "ds/labels/val", "--out", "lm", "--classes", "classes.txt"],
        d.path(),
    );
    let err = stderr(&o);
    assert!(err.contains("\"1e20\" is not a non-negative integer"), "{err}");
    assert!(err.contains("1e308 is outside 0..1"), "{err}");
}

/// An --out that cannot be written is refused before the statistics pass, not after; a
/// missing folder is made, as detect's --out is.
#[test]
fn calibrate_checks_its_outputs_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("file"), b"x").unwrap();
    let calib = root().join("calibration");
    let o = qdet(
        &["calibrate", "--model", &model(), "--images", calib.to_str().unwrap(), "--out", "file/sub/x.onnx"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("file/sub/x.onnx cannot be written"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("calibration images"), "refused before reading any image: {}", stderr(&o));
    let o = qdet(
        &[
            "calibrate",
            "--model",
            &model(),
            "--images",
            calib.to_str().unwrap(),
            "--num",
            "2",
            "--analysis-images",
            "0",
            "--out",
            "new/dir/x.onnx",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.path().join("new/dir/x.onnx").is_file());
}

/// The dataset chores and val walk folders too: an entry they cannot walk is reported and
/// skipped, the rest done.
#[cfg(unix)]
#[test]
fn dataset_commands_skip_entries_they_cannot_walk() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("ann/sub")).unwrap();
    std::fs::write(d.path().join("ann/a.json"), labelme_json("a.jpg", &["cat"])).unwrap();
    std::os::unix::fs::symlink(d.path().join("gone.json"), d.path().join("ann/broken.json")).unwrap();
    std::os::unix::fs::symlink(d.path().join("ann"), d.path().join("ann/sub/loop")).unwrap();
    let o = qdet(&["convert", "--from", "labelme", "--to", "yolo", "ann", "--out", "yolo"], d.path());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.json") && err.contains("a broken symlink"), "{err}");
    assert!(err.contains("a symlink loop"), "{err}");
    assert!(d.path().join("yolo/a.txt").is_file());

    let (images, labels) = (d.path().join("ds/images/val"), d.path().join("ds/labels/val"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    std::fs::copy(val("val_0000.jpg"), images.join("val_0000.jpg")).unwrap();
    std::fs::copy(root().join("datasets/shapes/labels/val/val_0000.txt"), labels.join("val_0000.txt")).unwrap();
    std::os::unix::fs::symlink(d.path().join("gone.jpg"), images.join("broken.jpg")).unwrap();
    let yaml = d.path().join("ds/data.yaml");
    std::fs::write(&yaml, "path: .\nval: images/val\nnames: [circle, square, triangle, star, hexagon, cross]\n")
        .unwrap();
    let o = qdet(&["val", "--model", &model(), "--data", yaml.to_str().unwrap()], d.path());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("broken.jpg"), "{err}");
}
